"""EM with missing values (MAR): the statistics, the fit, its outputs and its messages."""

import re

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bgmm import GaussianMixtureEM, as_data, fit_em, simulate
from bgmm.em import evaluate, impute, solver
from bgmm.em.missing import missingness_patterns
from bgmm.params import GMMParams

TRUE = GMMParams(
    weights=np.array([0.3, 0.3, 0.4]),
    means=np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 0.0], [0.0, 5.0, 5.0]]),
    covariances=np.stack(
        [
            np.eye(3) + 0.5 * np.ones((3, 3)),
            np.array([[1.0, -0.6, 0.2], [-0.6, 1.5, 0.3], [0.2, 0.3, 0.8]]),
            np.diag([0.5, 1.0, 2.0]) + 0.3,
        ]
    ),
)


def remove(X, share, rng):
    """MCAR: each entry missing with probability ``share``, one entry kept in every row."""
    M = X.copy()
    M[rng.random(M.shape) < share] = np.nan
    empty = np.isnan(M).all(axis=1)
    M[empty, 0] = X[empty, 0]
    return M


@pytest.fixture(scope="module")
def incomplete():
    X = np.asarray(simulate(TRUE, 300, random_state=0).data.values)
    return X, remove(X, 0.25, np.random.default_rng(1))


def reference_statistics(M, weights, means, covariances, sample_weight=None):
    """N_k, S1, S2 (about mu_k), ln p and H of one E step, row by row with sub-matrices."""
    n, d = M.shape
    k = len(weights)
    w = np.ones(n) if sample_weight is None else sample_weight
    nk, s1, s2 = np.zeros(k), np.zeros((k, d)), np.zeros((k, d, d))
    ll = h = 0.0
    for i in range(n):
        o = ~np.isnan(M[i])
        m = ~o
        log_phi = np.array(
            [
                multivariate_normal(means[j][o], covariances[j][np.ix_(o, o)]).logpdf(M[i][o])
                for j in range(k)
            ]
        )
        a = np.log(weights) + log_phi
        norm = logsumexp(a)
        gamma = np.exp(a - norm)
        ll += w[i] * norm
        h -= w[i] * np.sum(gamma * np.log(gamma))
        for j in range(k):
            sig = covariances[j]
            x_hat = M[i].copy()
            cond = np.zeros((d, d))
            if m.any():
                gain = sig[np.ix_(m, o)] @ np.linalg.inv(sig[np.ix_(o, o)])
                x_hat[m] = means[j][m] + gain @ (M[i][o] - means[j][o])
                cond[np.ix_(m, m)] = sig[np.ix_(m, m)] - gain @ sig[np.ix_(o, m)]
                h += (
                    w[i]
                    * gamma[j]
                    * 0.5
                    * (
                        m.sum() * (1 + np.log(2 * np.pi))
                        + np.linalg.slogdet(cond[np.ix_(m, m)])[1]
                    )
                )
            diff = x_hat - means[j]
            nk[j] += w[i] * gamma[j]
            s1[j] += w[i] * gamma[j] * diff
            s2[j] += w[i] * gamma[j] * (np.outer(diff, diff) + cond)
    return nk, s1, s2, ll, h


def engine_statistics(M, thetas, chunk_rows, sample_weight=None, patterns=True):
    """The compiled statistics of the engine (one E step, every restart in ``thetas``)."""
    n, d = M.shape
    k = thetas[0].n_components
    found = missingness_patterns(M) if patterns else None
    device = solver._to_device(M, sample_weight, chunk_rows, "float64", found)
    shapes = solver.Shapes(
        d,
        k,
        len(thetas),
        "float64",
        n_chunks=n // chunk_rows,
        chunk_rows=chunk_rows,
        n_rest=n % chunk_rows,
        weighted=sample_weight is not None,
        n_patterns=0 if found is None else found.n_patterns,
    )
    theta = [
        np.stack([getattr(t, name) for t in thetas])
        for name in ("weights", "means", "covariances")
    ]
    return [np.asarray(a) for a in solver._compiled_statistics(shapes)(*device.inputs(), *theta)]


def test_statistics_match_a_row_by_row_computation(incomplete):
    _, M = incomplete
    other = GMMParams(
        np.array([0.5, 0.2, 0.3]), TRUE.means + 0.5, TRUE.covariances * 1.3
    )  # a second restart, elsewhere
    w = np.random.default_rng(2).uniform(0.5, 2.0, len(M))
    got = engine_statistics(M, [TRUE, other], chunk_rows=64, sample_weight=w)
    for r, theta in enumerate([TRUE, other]):
        expected = reference_statistics(
            M, theta.weights, theta.means, theta.covariances, sample_weight=w
        )
        for name, a, b in zip(["nk", "s1", "s2", "ll", "H"], got, expected, strict=True):
            np.testing.assert_allclose(a[r], b, rtol=1e-10, atol=1e-9, err_msg=name)


def test_complete_rows_give_the_statistics_of_the_standard_engine(incomplete):
    X, _ = incomplete
    with_patterns = engine_statistics(X, [TRUE], chunk_rows=50)
    without = engine_statistics(X, [TRUE], chunk_rows=50, patterns=False)
    for a, b in zip(with_patterns, without, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-10)


def test_no_missing_value_is_the_standard_fit(incomplete):
    X, _ = incomplete
    plain = fit_em(X, 3, n_init=2, random_state=0)
    em = fit_em(X, 3, n_init=2, random_state=0, missing="em")
    for name in ("weights", "means", "covariances", "resp"):
        np.testing.assert_array_equal(getattr(em, name), getattr(plain, name))
    np.testing.assert_array_equal(em.history_frame(), plain.history_frame())


@pytest.fixture(scope="module")
def mar():
    """MAR: x1 and x2 go missing more often when x0 is large (20% of all entries).

    (At 30%, the component at large x0 keeps so few of its x1 and x2 that EM without
    reg_covar drives its covariance to singular: the likelihood has no maximum there.)
    """
    from bgmm.datasets import remove_values

    data = simulate(TRUE, 300, random_state=5).data
    M = np.asarray(remove_values(data, 0.2, mechanism="MAR", random_state=6).values)
    return np.asarray(data.values), M


@pytest.fixture(params=["incomplete", "mar"])
def either(request):
    """The MCAR and the MAR data sets."""
    return request.getfixturevalue(request.param)


def test_log_likelihood_never_decreases_and_the_bound_is_tight(either):
    _, M = either
    res = fit_em(M, 3, n_init=2, random_state=0, missing="em", tol=1e-12, max_iter=5000)
    h = res.history_frame()
    ll = h["log_likelihood"].to_numpy()
    assert res.converged and len(ll) > 5
    assert np.all(np.diff(ll) >= -1e-9 * np.abs(ll[1:]))
    # KL(q || p) >= 0, and 0 at a fixed point: the entropy of the missing coordinates'
    # conditional Gaussians is in L (leaving it out would shift KL by a constant).
    assert np.all(h["kl"] >= -1e-8) and h["kl"].iloc[-1] < 1e-6
    np.testing.assert_allclose(h["lower_bound"] + h["kl"], ll, rtol=1e-13)
    np.testing.assert_allclose(
        h["lower_bound"], h["q_value"] + h["entropy"], rtol=1e-13
    )  # L = Q + H


def observed_log_likelihood(M, weights, means, covariances):
    """ln p(X_obs | theta), written independently in JAX for its gradient."""
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp as jlogsumexp
    from jax.scipy.stats import multivariate_normal as jmvn

    total = 0.0
    patterns = missingness_patterns(M)
    for p, o in enumerate(patterns.observed):
        rows = M[patterns.index == p][:, o]
        log_phi = jnp.stack(
            [
                jmvn.logpdf(rows, means[j][o], covariances[j][np.ix_(o, o)])
                for j in range(len(means))
            ],
            axis=1,
        )
        total = total + jlogsumexp(jnp.log(weights) + log_phi, axis=1).sum()
    return total


def test_the_fit_is_a_stationary_point_of_the_observed_data_likelihood(either):
    jax = pytest.importorskip("jax")
    _, M = either
    res = fit_em(
        M, 3, n_init=2, random_state=0, missing="em", tol=1e-14, reg_covar=0.0, max_iter=5000
    )
    np.testing.assert_allclose(
        float(observed_log_likelihood(M, res.weights, res.means, res.covariances)),
        res.log_likelihood,
        rtol=1e-12,
    )
    # gradient on the unconstrained scale: log-weights (softmax) and Cholesky factors
    chol = np.linalg.cholesky(res.covariances)

    def f(logits, means, chol):
        cov = chol @ jax.numpy.swapaxes(chol, -1, -2)
        return observed_log_likelihood(M, jax.nn.softmax(logits), means, cov)

    grads = jax.grad(f, argnums=(0, 1, 2))(np.log(res.weights), res.means, chol)
    n = len(M)
    for g in grads:
        assert np.abs(np.tril(g) if g.ndim == 3 else g).max() / n < 1e-6


def test_chunking_does_not_change_the_fit(incomplete):
    _, M = incomplete
    a = fit_em(M, 3, random_state=0, missing="em", chunk_size=7, max_iter=30, tol=0)
    b = fit_em(M, 3, random_state=0, missing="em", max_iter=30, tol=0)
    np.testing.assert_allclose(a.covariances, b.covariances, rtol=1e-10)
    np.testing.assert_allclose(a.history_frame(), b.history_frame(), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("family", ["VVI", "EEE", "VII", "VEV"])
def test_every_family_takes_the_expected_scatter(incomplete, family):
    _, M = incomplete
    res = fit_em(M, 3, covariance_type=family, random_state=0, missing="em", max_iter=200)
    ll = res.history_frame()["log_likelihood"].to_numpy()
    assert np.all(np.diff(ll) >= -1e-9 * np.abs(ll[1:]))
    assert res.covariance_type == family and np.isfinite(res.log_likelihood)


def test_imputation_is_the_conditional_mean_under_the_mixture(incomplete):
    X, M = incomplete
    res = fit_em(M, 3, random_state=0, missing="em")
    ds = impute(res.params, M)
    assert (
        ds["x"].dims == ("obs_id", "feature") and ds["missing"].values.sum() == np.isnan(M).sum()
    )
    filled, var = ds["x"].values, ds["variance"].values
    observed = ~np.isnan(M)
    np.testing.assert_array_equal(filled[observed], M[observed])
    assert np.all(var[observed] == 0) and np.all(var[~observed] > 0)
    # one row by hand: sum_k gamma_k x^_k and the law of total variance
    i = int(np.flatnonzero(np.isnan(M).sum(axis=1) == 1)[0])
    o = observed[i]
    w, mu, cov = res.weights, res.means, res.covariances
    a = [
        np.log(w[k]) + multivariate_normal(mu[k][o], cov[k][np.ix_(o, o)]).logpdf(M[i][o])
        for k in range(3)
    ]
    gamma = np.exp(np.array(a) - logsumexp(a))
    x_hat, cond = [], []
    for k in range(3):
        gain = cov[k][np.ix_(~o, o)] @ np.linalg.inv(cov[k][np.ix_(o, o)])
        x_hat.append(mu[k][~o] + gain @ (M[i][o] - mu[k][o]))
        cond.append(np.diag(cov[k][np.ix_(~o, ~o)] - gain @ cov[k][np.ix_(o, ~o)]))
    mean = sum(g * x for g, x in zip(gamma, x_hat, strict=True))
    second = sum(g * (c + x**2) for g, c, x in zip(gamma, cond, x_hat, strict=True))
    np.testing.assert_allclose(filled[i][~o], mean, rtol=1e-10)
    np.testing.assert_allclose(var[i][~o], second - mean**2, rtol=1e-8)
    # the truth lies within a few conditional sds of the imputation, as it should
    z = (filled - X)[~observed] / np.sqrt(var[~observed])
    assert 0.6 < np.std(z) < 1.4


def test_the_estimator_predicts_rows_with_missing_values(incomplete):
    _, M = incomplete
    model = GaussianMixtureEM(3, random_state=0, missing="em").fit(M)
    proba = model.predict_proba(M)
    assert isinstance(proba, np.ndarray) and np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba, model.result_.resp, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(M), proba.argmax(axis=1))
    complete = ~np.isnan(M).any(axis=1)  # rows without a missing value: the usual E step
    np.testing.assert_allclose(
        model.score_samples(M)[complete],
        evaluate(model.result_.params, M[complete])[1],
        rtol=1e-12,
    )
    ds = model.impute(pd.DataFrame(M, columns=["a", "b", "c"]))
    assert list(ds["feature"].values) == ["a", "b", "c"]
    with pytest.raises(ValueError, match=re.escape("missing='em'")):
        GaussianMixtureEM(3, random_state=0).fit(M)
    from sklearn.utils import get_tags

    assert get_tags(model).input_tags.allow_nan
    assert not get_tags(GaussianMixtureEM(3)).input_tags.allow_nan


def test_em_recovers_covariances_better_than_complete_cases_or_mean_imputation():
    """MAR: x1 is missing more often when x0 is large; deleting or mean-filling biases Sigma."""
    one = GMMParams(np.array([1.0]), np.zeros((1, 2)), np.array([[[1.0, 0.8], [0.8, 1.0]]]))
    X = np.asarray(simulate(one, 2000, random_state=3).data.values)
    rng = np.random.default_rng(4)
    M = X.copy()
    M[rng.random(len(X)) < 1 / (1 + np.exp(-2.5 * X[:, 0])), 1] = np.nan  # depends on x0
    em = fit_em(M, 1, missing="em").covariances[0]
    cc = np.cov(M[~np.isnan(M).any(axis=1)].T, bias=True)
    mean = np.where(np.isnan(M), np.nanmean(M, axis=0), M)
    mi = np.cov(mean.T, bias=True)

    def error(cov):
        return np.linalg.norm(cov - one.covariances[0])

    assert error(em) < 0.5 * error(cc) and error(em) < 0.5 * error(mi)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ([[1.0, np.inf], [2.0, 3.0], [1.0, 1.0]], "inf in 1 row(s) (rows 0)"),
        ([[1.0, 2.0], [np.nan, np.nan], [3.0, 1.0]], "1 row(s) with every value missing (rows 1)"),
        ([[1.0, np.nan], [2.0, np.nan], [3.0, np.nan]], "no observed value in column(s) ['x1']"),
    ],
)
def test_bad_missing_input_is_refused_with_its_message(values, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        fit_em(np.array(values), 1, missing="em")


def test_missing_settings_are_checked_and_the_default_names_the_fix():
    M = np.array([[1.0, 2.0], [np.nan, 1.0], [3.0, 1.5]])
    with pytest.raises(ValueError, match=re.escape("missing must be one of ('raise', 'em')")):
        fit_em(M, 1, missing="drop")
    with pytest.raises(ValueError, match=re.escape("fit with missing='em'")):
        fit_em(M, 1)
    data = as_data(M, missing="allow")
    assert data.has_missing and data.observed.sum() == 5
    with pytest.raises(ValueError, match=re.escape("fit with missing='em'")):
        fit_em(data, 1)  # the container does not carry the choice


def test_empty_csv_cells_are_missing_values(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1.0,2.0\n,1.0\n3.0,1.5\n2.0,\n")
    with pytest.raises(ValueError, match=re.escape("fit them with missing='em'")):
        fit_em(path, 1)
    data = as_data(path, missing="allow")
    np.testing.assert_array_equal(np.isnan(data.values), [[0, 0], [1, 0], [0, 0], [0, 1]])
    empty = tmp_path / "e.csv"
    empty.write_text("a,b\n1.0,2.0\n,\n3.0,1.5\n2.0,1.0\n")
    with pytest.raises(
        ValueError, match=re.escape("no value in the columns used on 1 line(s) (3)")
    ):
        as_data(empty, missing="allow")


def test_standard_errors_are_the_observed_data_information(incomplete):
    """The Hessian of ln p(X_obs) in the unconstrained coordinates, against JAX's."""
    jax = pytest.importorskip("jax")
    from bgmm.em import standard_errors
    from bgmm.em.uncertainty import _derivatives, to_unconstrained

    _, M = incomplete
    M = M[:120, :2]
    M = M[~np.isnan(M).all(axis=1)]
    res = fit_em(M, 2, random_state=0, missing="em", reg_covar=0.0, tol=1e-14)
    phi = to_unconstrained(res.params)
    rows, cols = np.tril_indices(2)

    def log_likelihood(phi):
        jnp = jax.numpy
        weights = jax.nn.softmax(jnp.concatenate([phi[:1], jnp.zeros(1)]))
        packed = phi[5:].reshape(2, 3)
        packed = jnp.where(rows == cols, jnp.exp(packed), packed)
        chol = jnp.zeros((2, 2, 2)).at[:, rows, cols].set(packed)
        covariances = chol @ jnp.swapaxes(chol, -1, -2)
        return observed_log_likelihood(M, weights, phi[1:5].reshape(2, 2), covariances)

    got = _derivatives(M, phi, 2, 2)
    assert got.log_likelihood == pytest.approx(res.log_likelihood, rel=1e-12)
    np.testing.assert_allclose(got.hessian, jax.hessian(log_likelihood)(phi), atol=1e-9)
    se = standard_errors(res.params, M)
    assert se.available and np.all(np.isfinite(se.means)) and np.all(se.means > 0)


def test_dask_input_gives_the_in_memory_fit(incomplete):
    """Lazy data with missing values: the same iterations, block by block."""
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    from bgmm.em import standard_errors

    _, M = incomplete
    lazy = as_data(da.from_array(M, chunks=(70, 3)), missing="allow")
    assert lazy.lazy and lazy.has_missing
    kwargs = {"n_init": 2, "random_state": 0, "missing": "em", "max_iter": 40, "tol": 0.0}
    with dask.config.set(scheduler="synchronous"):
        a = fit_em(lazy, 3, **kwargs)
        b = fit_em(M, 3, **kwargs)
        for name in ("weights", "means", "covariances"):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-10)
        np.testing.assert_allclose(a.history_frame(), b.history_frame(), rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(a.resp.compute(), b.resp, rtol=1e-9, atol=1e-12)
        lazy_imputed = impute(a.params, lazy)
        np.testing.assert_allclose(
            lazy_imputed["x"].values, impute(b.params, M)["x"].values, rtol=1e-9
        )
        np.testing.assert_allclose(
            evaluate(a.params, lazy, missing="em")[1].compute(),
            evaluate(b.params, M, missing="em")[1],
            rtol=1e-10,
        )
        np.testing.assert_allclose(
            standard_errors(a.params, lazy).means, standard_errors(b.params, M).means, rtol=1e-7
        )


def test_lazy_data_with_missing_values_are_checked_in_their_one_pass():
    da = pytest.importorskip("dask.array")
    X = np.arange(40.0).reshape(20, 2)
    X[13] = np.nan
    with pytest.raises(ValueError, match=re.escape("1 row(s) with every value missing (rows 13)")):
        as_data(da.from_array(X, chunks=(5, 2)), missing="allow")
    X[13] = [1.0, np.inf]
    with pytest.raises(ValueError, match="replace the infinite values"):
        as_data(da.from_array(X, chunks=(5, 2)), missing="allow")
    X[:, 1] = np.nan
    with pytest.raises(ValueError, match=re.escape("no observed value in column(s) ['x1']")):
        as_data(da.from_array(X, chunks=(5, 2)), missing="allow")


def test_float32_and_integer_weights_with_missing_values(incomplete):
    _, M = incomplete
    full = fit_em(M, 3, random_state=0, missing="em")
    single = fit_em(M, 3, random_state=0, missing="em", dtype="float32")
    np.testing.assert_allclose(single.means, full.means, atol=1e-3)
    assert single.log_likelihood == pytest.approx(full.log_likelihood, rel=1e-6)
    # integer weights are repeated rows, here too
    w = np.random.default_rng(0).integers(1, 4, len(M))
    start = {
        "weights_init": full.weights,
        "means_init": full.means + 0.3,
        "covariances_init": full.covariances,
        "max_iter": 20,
        "tol": 0.0,
        "missing": "em",
    }
    weighted = fit_em(M, 3, sample_weight=w.astype(float), **start)
    repeated = fit_em(np.repeat(M, w, axis=0), 3, **start)
    np.testing.assert_allclose(weighted.covariances, repeated.covariances, rtol=1e-10)
    assert weighted.log_likelihood == pytest.approx(repeated.log_likelihood, rel=1e-12)


def test_what_reads_the_data_knows_about_missing_values(incomplete):
    """Densities per component refuse gaps; subsamples and the pairs plot handle them."""
    from bgmm import plots
    from bgmm.em import log_component_densities

    _, M = incomplete
    data = as_data(M, missing="allow")
    res = fit_em(data, 3, random_state=0, missing="em")
    with pytest.raises(ValueError, match=re.escape("use bgmm.evaluate(params, X, missing='em')")):
        log_component_densities(res.params, data)
    # the diagonal's densities are drawn over the observed values (NaN would blank them)
    (page,) = plots.data_pages(data, res.params, res.resp.argmax(axis=1))
    fig = page.draw()
    curves = [line.get_ydata() for ax in fig.axes for line in ax.get_lines()]
    assert curves and all(np.isfinite(y).all() for y in curves)
    # a subsample without any value of a column is refused, naming it
    sparse = M.copy()
    sparse[5:, 2] = np.nan
    sparse[np.isnan(sparse).all(axis=1), 0] = 1.0
    with pytest.raises(ValueError, match=re.escape("no observed value in column(s) ['x2']")):
        as_data(sparse, missing="allow").sample_rows(3, random_state=0)


def test_functions_without_missing_say_how_to_keep_missing_values(incomplete):
    pytest.importorskip("pymc")
    from bgmm.bayes import build_model

    _, M = incomplete
    with pytest.raises(ValueError, match=re.escape("bgmm.as_data(X, missing='allow')")):
        build_model(M, 2)


def test_an_empty_block_and_infinite_values_in_lazy_data():
    da = pytest.importorskip("dask.array")
    X = np.arange(300.0).reshape(100, 3)
    data = as_data(da.from_array(X, chunks=((50, 0, 50), (3,))))  # an empty partition
    assert data.n_samples == 100 and not data.has_missing
    X[2, 0], X[13, 1] = np.nan, np.inf
    with pytest.raises(ValueError, match=re.escape("inf in 1 row(s) (rows 13)")):
        as_data(da.from_array(X, chunks=(5, 3)), missing="allow")
