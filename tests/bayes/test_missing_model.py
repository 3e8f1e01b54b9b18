"""The Bayesian model of data with missing values: the same likelihood as EM's."""

import numpy as np
import pytest

from bgmm import as_data, fit_em, simulate
from bgmm.bayes import build_model
from bgmm.em import evaluate
from tests.bayes.test_model import model_log_likelihood
from tests.em.test_missing import TRUE, remove


@pytest.fixture(scope="module")
def incomplete():
    X = np.asarray(simulate(TRUE, 300, random_state=0).data.values)
    return X, remove(X, 0.25, np.random.default_rng(1))


@pytest.mark.parametrize("family", ["full", "diag", "tied"])
def test_pymc_log_likelihood_equals_em_with_missing_values(incomplete, family):
    """The Bayesian model integrates the missing coordinates out exactly: EM's ln p (1e-8)."""
    _, M = incomplete
    data = as_data(M, missing="allow")
    em = fit_em(data, 3, covariance_type=family, random_state=0, missing="em")
    model = build_model(data, 3, covariance_type=family)
    np.testing.assert_allclose(
        model_log_likelihood(model, em.params), em.log_likelihood, rtol=1e-8
    )
    if family == "full":  # away from the optimum too
        np.testing.assert_allclose(
            model_log_likelihood(model, TRUE), evaluate(TRUE, M, missing="em")[1].sum(), rtol=1e-8
        )


def _repeated(params, n_draws):
    """A 'posterior' whose every draw is ``params`` (one chain)."""
    import xarray as xr

    k, d = params.means.shape
    dims = ("chain", "draw")
    return xr.Dataset(
        {
            "weights": ((*dims, "component"), np.broadcast_to(params.weights, (1, n_draws, k))),
            "means": (
                (*dims, "component", "feature"),
                np.broadcast_to(params.means, (1, n_draws, k, d)),
            ),
            "covariances": (
                (*dims, "component", "feature", "feature_bis"),
                np.broadcast_to(params.covariances, (1, n_draws, k, d, d)),
            ),
        },
        coords={"chain": [0], "draw": np.arange(n_draws)},
    )


def test_imputation_draws_at_one_theta_have_ems_conditional_mean_and_variance(incomplete):
    """The NumPy sampler of x_m | x_o, theta against EM's closed form (Monte Carlo error)."""
    from bgmm.bayes.imputation import imputation_summary, impute_draws
    from bgmm.em import impute

    _, M = incomplete
    M = M[:40]
    draws = impute_draws(_repeated(TRUE, 20000), as_data(M, missing="allow"), random_seed=0)
    em = impute(TRUE, M)
    assert draws.sizes["entry"] == np.isnan(M).sum()
    summary = imputation_summary(draws, em=em)
    se = summary["em_sd"] / np.sqrt(20000)
    z = (summary["mean"] - summary["em"]) / se
    assert float(np.abs(z).max()) < 4.5
    np.testing.assert_allclose(summary["sd"], summary["em_sd"], rtol=0.03)
    # seeded
    again = impute_draws(_repeated(TRUE, 50), as_data(M, missing="allow"), random_seed=1)
    np.testing.assert_array_equal(
        again.values,
        impute_draws(_repeated(TRUE, 50), as_data(M, missing="allow"), random_seed=1).values,
    )


def test_the_posterior_of_data_with_missing_values(incomplete):
    from bgmm.bayes import SamplingWarning, sample_posterior
    from bgmm.compare import compare

    _, M = incomplete
    data = as_data(M[:150], missing="allow")
    em = fit_em(data, 3, random_state=0, missing="em", n_init=2)
    with pytest.warns(SamplingWarning):  # short chains
        tree = sample_posterior(data, 3, em=em, draws=100, tune=150, chains=2, random_seed=1)
    observed = tree["observed_data"]["x"].values
    np.testing.assert_array_equal(np.isnan(observed), np.isnan(M[:150]))  # NaN kept
    # the per-row log-likelihood of a draw is EM's observed-data one at that theta
    post = tree["posterior"].to_dataset().isel(chain=0, draw=-1)
    from bgmm import GMMParams

    theta = GMMParams(post["weights"].values, post["means"].values, post["covariances"].values)
    ll = tree["log_likelihood"]["x"].isel(chain=0, draw=-1).values
    # the log-likelihood group is in the sampled labels; the sum does not depend on them
    np.testing.assert_allclose(ll.sum(), evaluate(theta, data, missing="em")[1].sum(), rtol=1e-8)
    imputation = tree["imputation"].to_dataset()
    assert imputation.sizes["entry"] == np.isnan(M[:150]).sum()
    assert float(imputation["em_in_hdi"].mean()) > 0.9
    assert bool((imputation["sd"] > 0).all())
    result = compare(em, tree)
    table = result.to_dataframe(masked=False)
    assert table["em_se"].notna().all() and len(table) == 3 + 9 + 18
