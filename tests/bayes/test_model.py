import re

import numpy as np
import pymc as pm
import pytest
from pymc.initial_point import make_initial_point_fn

from bgmm import GMMParams, fit_em, load_old_faithful, simulate
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


def family_params(params, name):
    """``params`` with covariances of the family ``name`` (a different matrix per entry)."""
    cov = np.asarray(params.covariances)
    d = cov.shape[1]
    variances = np.diagonal(cov, axis1=1, axis2=2)
    spherical = variances.mean(axis=1)
    eye = np.eye(d)
    structured = {
        "full": cov,
        "tied": np.broadcast_to(cov[0], cov.shape),
        "diag": variances[:, :, None] * eye,
        "EEI": np.broadcast_to(variances[0] * eye, cov.shape),
        "spherical": spherical[:, None, None] * eye,
        "EII": np.broadcast_to(spherical[0] * eye, cov.shape),
    }[name]
    return GMMParams.from_arrays(params.weights, params.means, structured.copy())


FREE = {
    "full": {"chol_cov_0": (), "chol_cov_1": ()},
    "tied": {"chol_cov": ()},
    "diag": {"sds": ("component", "feature")},
    "EEI": {"sds": ("feature",)},
    "spherical": {"sds": ("component",)},
    "EII": {"sds": ()},
}


@pytest.mark.parametrize("name", list(FREE))
def test_every_family_has_em_log_likelihood_and_its_free_variables(name):
    """PyMC's ln p(X | theta) equals EM's at the same theta of each family (1e-8)."""
    from bgmm import evaluate

    params = family_params(make_params(2, 3, seed=4), name)
    data = simulate(params, 60, random_state=2).data
    model = build_model(data, 2, covariance_type=name)
    np.testing.assert_allclose(
        model_log_likelihood(model, params), evaluate(params, data)[1].sum(), rtol=1e-8
    )
    free = {v.name for v in model.free_RVs} - {"weights", "means"}
    assert free == set(FREE[name])
    for var, dims in FREE[name].items():
        assert model.named_vars_to_dims.get(var, ()) == dims
    # the start is the same theta: the covariances at initial_values are params'
    point = make_initial_point_fn(
        model=model,
        overrides=initial_values(model, params),
        jitter_rvs=set(),
        return_transformed=True,
    )(0)
    (at_values,) = model.replace_rvs_by_values([model["covariances"]])
    covariances = model.compile_fn(
        at_values,
        inputs=model.value_vars,
        on_unused_input="ignore",
        mode="FAST_COMPILE",
    )(point)
    np.testing.assert_allclose(covariances, params.covariances, rtol=1e-12)


@pytest.mark.parametrize(
    ("name", "letter"), [("E", "E"), ("V", "V"), ("tied", "E"), ("diag", "V")]
)
def test_one_feature_families_are_mclust_e_and_v(name, letter):
    from bgmm import evaluate

    params = make_params(2, 1, seed=5)
    if letter == "E":
        params = GMMParams.from_arrays(
            params.weights, params.means, np.broadcast_to(params.covariances[0], (2, 1, 1))
        )
    data = simulate(params, 50, random_state=3).data
    model = build_model(data, 2, covariance_type=name)
    assert model.bgmm_family.name[0] == letter
    sds = model.named_vars_to_dims["sds"]
    assert sds == (("feature",) if letter == "E" else ("component", "feature"))
    np.testing.assert_allclose(
        model_log_likelihood(model, params), evaluate(params, data)[1].sum(), rtol=1e-8
    )


@pytest.mark.parametrize("name", ["tied", "diag", "EEI", "spherical", "EII"])
def test_prior_draws_have_the_family_structure(name):
    data = load_old_faithful()
    model = build_model(data, 3, covariance_type=name)
    with model:
        prior = pm.sample_prior_predictive(
            draws=20, random_seed=1, compile_kwargs={"mode": "FAST_COMPILE"}
        )
    cov = prior["prior"]["covariances"].values[0]  # (draw, K, d, d)
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    off = cov[..., 0, 1]
    if name in ("tied", "EEI", "EII"):
        np.testing.assert_array_equal(cov, np.broadcast_to(cov[:, :1], cov.shape))
    if name != "tied":
        np.testing.assert_array_equal(off, 0.0)
    else:
        assert np.all(off != 0.0)
    if name in ("spherical", "EII"):
        np.testing.assert_array_equal(cov[..., 0, 0], cov[..., 1, 1])
    else:
        assert np.all(cov[..., 0, 0] != cov[..., 1, 1])


def test_a_family_the_model_lacks_is_refused_with_the_list():
    with pytest.raises(
        ValueError,
        match=re.escape(
            "the Bayesian model has no covariance_type='VEV'; it has full (VVV), tied (EEE), "
            "diag (VVI), spherical (VII), EII, EEI, E, V. Fit VEV by EM"
        ),
    ):
        build_model(load_old_faithful(), 2, covariance_type="VEV")
    with pytest.raises(ValueError, match="covariance_type must be one of scikit-learn's"):
        build_model(load_old_faithful(), 2, covariance_type="wishart")


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


def test_the_two_alternative_weight_priors():
    data = load_old_faithful()
    populated = Priors.populated().resolve(data, 3)
    np.testing.assert_array_equal(populated.weights_concentration, [4.0] * 3)
    sparse = Priors.sparse(lkj_eta=3.0)
    assert sparse.is_sparse and not Priors().is_sparse and not Priors.populated().is_sparse
    assert sparse.lkj_eta == 3.0 and sparse.resolve(data, 2).weights_concentration[0] == 0.01
    with pytest.raises(ValueError, match=r"a populated prior needs a concentration above 1"):
        Priors.populated(0.5)
    with pytest.raises(ValueError, match=r"a sparse prior needs a concentration in \(0, 1\)"):
        Priors.sparse(2.0)
    # the Dirichlet's own density: alpha = 0.01 puts its mass near the simplex's corners
    with build_model(data, 3, Priors.sparse()):
        draws = pm.draw(pm.modelcontext(None)["weights"], draws=2000, random_seed=1)
    assert np.mean(draws.max(axis=1) > 0.99) > 0.9
