import re

import numpy as np
import pymc as pm
import pytest
from pymc.initial_point import make_initial_point_fn

from bgmm import fit_em, load_old_faithful, simulate
from bgmm.bayes import Priors, build_model, initial_values
from tests.conftest import make_params


def model_log_likelihood(model, params):
    """ln p(X | theta) from the PyMC model's observed variable, at theta = params."""
    point_fn = make_initial_point_fn(
        model=model,
        overrides=initial_values(model, params),
        jitter_rvs=set(),
        return_transformed=True,
    )
    # The Python linker: compiles in a second where numba takes a minute on a cold cache.
    logp = model.compile_logp(vars=[model["x"]], jacobian=False, mode="FAST_COMPILE")
    return float(logp(point_fn(0)))


@pytest.mark.parametrize(("k", "d"), [(1, 1), (2, 2), (3, 3)])
def test_model_log_likelihood_equals_em(k, d):
    truth = make_params(k, d, seed=k + d)
    data = simulate(truth, 80, random_state=1).data
    em = fit_em(data, k, random_state=0)
    model = build_model(data, k)
    np.testing.assert_allclose(
        model_log_likelihood(model, em.params), em.log_likelihood, rtol=1e-8
    )
    # at parameters other than the optimum too
    from bgmm import evaluate

    np.testing.assert_allclose(
        model_log_likelihood(model, truth), evaluate(truth, data)[1].sum(), rtol=1e-8
    )


def test_names_dims_and_coords_are_the_contract():
    data = load_old_faithful()
    model = build_model(data, 2)
    assert model.named_vars_to_dims["weights"] == ("component",)
    assert model.named_vars_to_dims["means"] == ("component", "feature")
    assert model.named_vars_to_dims["covariances"] == ("component", "feature", "feature_bis")
    assert model.named_vars_to_dims["x"] == ("obs_id", "feature")
    assert list(model.coords["feature"]) == ["eruptions", "waiting"]
    assert len(model.coords["obs_id"]) == 272
    assert {v.name for v in model.free_RVs} == {"weights", "means", "chol_cov_0", "chol_cov_1"}


def test_prior_predictive_shapes():
    data = load_old_faithful()
    model = build_model(data, 3)
    with model:
        prior = pm.sample_prior_predictive(
            draws=50, random_seed=1, compile_kwargs={"mode": "FAST_COMPILE"}
        )
    assert prior["prior"]["weights"].shape == (1, 50, 3)
    assert prior["prior"]["means"].shape == (1, 50, 3, 2)
    cov = prior["prior"]["covariances"].values
    assert cov.shape == (1, 50, 3, 2, 2)
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    assert prior["prior_predictive"]["x"].shape == (1, 50, 272, 2)
    np.testing.assert_allclose(prior["prior"]["weights"].sum("component"), 1.0)


def test_default_priors_are_scaled_to_the_data():
    data = load_old_faithful()
    p = Priors().resolve(data, 2)
    sd = np.asarray(data.values).std(axis=0)
    np.testing.assert_allclose(p.means_loc, np.asarray(data.values).mean(axis=0))
    np.testing.assert_allclose(p.means_scale, 2 * sd)
    np.testing.assert_allclose(p.sd_scale, sd)
    np.testing.assert_array_equal(p.weights_concentration, [1.0, 1.0])
    assert p.lkj_eta == 2.0


@pytest.mark.parametrize(
    ("priors", "exc", "match"),
    [
        (
            Priors(weights_concentration=-1.0),
            ValueError,
            "prior weights_concentration must be positive and finite, got -1.0.",
        ),
        (
            Priors(weights_concentration=[1.0, 2.0, 3.0]),
            ValueError,
            "prior weights_concentration must be a scalar or have shape (2,), got shape (3,)",
        ),
        (
            Priors(means_scale=0.0),
            ValueError,
            "prior means_scale must be positive and finite, got 0.0.",
        ),
        (
            Priors(sd_scale=[1.0, np.inf]),
            ValueError,
            "prior sd_scale must be positive and finite, got [1.0, inf]",
        ),
        (
            Priors(means_loc=[1.0, 2.0, 3.0]),
            ValueError,
            "prior means_loc must be finite with shape (2,)",
        ),
        (Priors(lkj_eta=0.0), ValueError, "prior lkj_eta must be a positive number, got 0.0"),
        (
            Priors(sd_scale="wide"),
            TypeError,
            "prior sd_scale must be a number or an array of numbers, got 'wide'",
        ),
    ],
)
def test_bad_priors(priors, exc, match):
    with pytest.raises(exc, match=re.escape(match)):
        build_model(load_old_faithful(), 2, priors)


def test_bad_model_input():
    with pytest.raises(
        ValueError, match=re.escape("n_components=300 is more than the 272 samples")
    ):
        build_model(load_old_faithful(), 300)
    with pytest.raises(TypeError, match=re.escape("priors must be a bgmm.bayes.Priors, got dict")):
        build_model(load_old_faithful(), 2, {"lkj_eta": 1.0})
