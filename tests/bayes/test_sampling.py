"""Sampling tests: few and short, since compilation dominates their time."""

import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import xarray as xr

from bgmm import GMMParams, as_data, fit_em, load_old_faithful, simulate
from bgmm.bayes import (
    SamplingWarning,
    assignment_costs,
    match_to_reference,
    sample_posterior,
)
from bgmm.diagnostics import Diagnostics
from tests.conftest import SAMPLING_SETTINGS as SETTINGS
from tests.conftest import SAMPLING_TRUTH as TRUTH


def test_groups_names_and_dims(tree, simulated):
    sim, _ = simulated
    for group in (
        "posterior",
        "sample_stats",
        "log_likelihood",
        "observed_data",
        "relabeling",
        "em",
        "membership",
    ):
        assert group in tree.children, group
    post = tree["posterior"]
    assert set(post.data_vars) == {"weights", "means", "covariances"}
    assert post["weights"].dims == ("chain", "draw", "component")
    assert post["means"].dims == ("chain", "draw", "component", "feature")
    assert post["covariances"].dims == ("chain", "draw", "component", "feature", "feature_bis")
    assert post["means"].shape == (2, 300, 2, 2)
    assert list(post["feature"].values) == ["a", "b"]
    assert tree["log_likelihood"]["x"].dims == ("chain", "draw", "obs_id")
    assert tree["log_likelihood"]["x"].shape == (2, 300, 150)
    np.testing.assert_array_equal(tree["observed_data"]["x"].values, sim.data.values)
    for name in ("weights", "means", "covariances"):
        assert tree["em"][name].dims == post[name].dims[2:]
    settings = json.loads(tree.attrs["bgmm_settings"])
    assert settings["draws"] == 300 and settings["sampler"] == "nutpie"
    assert settings["random_seed"] == 3
    versions = json.loads(tree.attrs["bgmm_versions"])
    assert {"bgmm", "pymc", "pytensor", "arviz", "nutpie"} <= set(versions)


def test_pointwise_log_likelihood_matches_em_formula(tree, simulated):
    """log_likelihood/x at a draw is ln p(x_n | theta_draw), computed independently."""
    from bgmm import evaluate

    sim, _ = simulated
    post = tree["posterior"]
    draw = {"chain": 1, "draw": 17}
    params = GMMParams(
        post["weights"].sel(draw).values,
        post["means"].sel(draw).values,
        post["covariances"].sel(draw).values,
    )
    np.testing.assert_allclose(
        tree["log_likelihood"]["x"].sel(draw).values, evaluate(params, sim.data)[1], rtol=1e-8
    )


def test_relabeling_records_permutation_cost_margin_and_rhat(tree):
    rel = tree["relabeling"]
    assert rel["permutation"].dims == ("chain", "draw", "component")
    assert np.all(np.sort(rel["permutation"].values, axis=-1) == [0, 1])
    assert rel["cost"].dims == rel["cost_margin"].dims == ("chain", "draw")
    assert np.all(rel["cost_margin"].values >= 0)
    before, after = json.loads(rel.attrs["r_hat_before"]), json.loads(rel.attrs["r_hat_after"])
    assert set(before) == set(after) == {"weights", "means", "covariances"}
    assert max(after.values()) < 1.05


def test_recovers_the_truth(tree, simulated):
    _, em = simulated
    # EM's labels are arbitrary: align the truth to them, then compare with the posterior.
    source, _, _ = match_to_reference(assignment_costs(TRUTH.means[None], em.params))
    truth_means = TRUTH.means[source[0]]
    truth_weights = TRUTH.weights[source[0]]
    post = tree["posterior"]
    mean, sd = post["means"].mean(("chain", "draw")), post["means"].std(("chain", "draw"))
    assert np.all(np.abs(mean.values - truth_means) < 4 * sd.values)
    w_mean, w_sd = post["weights"].mean(("chain", "draw")), post["weights"].std(("chain", "draw"))
    assert np.all(np.abs(w_mean.values - truth_weights) < 4 * w_sd.values)
    cov = post["covariances"].mean(("chain", "draw")).values
    np.testing.assert_allclose(cov, TRUTH.covariances[source[0]], atol=0.5)


def test_memberships(tree, simulated):
    _, em = simulated
    m = tree["membership"]
    assert m["mean"].dims == ("obs_id", "component")
    np.testing.assert_allclose(m["mean"].sum("component"), 1.0, rtol=1e-10)
    assert np.all((0 <= m["lower"]) & (m["lower"] <= m["upper"]) & (m["upper"] <= 1))
    assert np.all(m["entropy"] >= 0) and np.all(m["entropy"] <= np.log(2) + 1e-12)
    np.testing.assert_array_equal(m["em_resp"].values, em.resp)
    assert float(m["same_component"].mean()) > 0.95


def test_same_seed_same_draws(tree, simulated):
    sim, em = simulated
    again = sample_posterior(sim.data, 2, em=em, **SETTINGS)
    # identical values; only the timing attributes differ
    xr.testing.assert_equal(again["posterior"].to_dataset(), tree["posterior"].to_dataset())


def test_pymc_nuts_is_selectable():
    data = simulate(TRUTH, 60, random_state=2).data
    with pytest.warns(SamplingWarning, match="ESS per chain"):  # 30 draws: too few
        out = sample_posterior(
            data,
            2,
            em=TRUTH,
            draws=30,
            tune=30,
            chains=1,
            sampler="pymc",
            random_seed=1,
            progressbar=False,
        )
    assert out["posterior"]["means"].shape == (1, 30, 2, 2)
    assert json.loads(out.attrs["bgmm_settings"])["sampler"] == "pymc"


@pytest.mark.slow  # 30 s of numba compilation
def test_numba_backend_is_selectable():
    # A small model (K = 1): numba compiles every new model for tens of seconds.
    data = as_data(np.random.default_rng(0).normal(size=(40, 2)))
    with pytest.warns(SamplingWarning, match="ESS per chain"):  # 50 draws: too few
        out = sample_posterior(
            data,
            1,
            em=fit_em(data, 1),
            draws=50,
            tune=50,
            chains=1,
            backend="numba",
            random_seed=1,
            progressbar=False,
        )
    settings = json.loads(out.attrs["bgmm_settings"])
    assert settings["backend"] == "numba" and settings["sampler"] == "nutpie"
    assert abs(float(out["posterior"]["means"].mean()) - data.values.mean()) < 0.5


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"sampler": "stan"}, ValueError, "sampler must be one of ('nutpie', 'pymc'), got 'stan'"),
        ({"backend": "c"}, ValueError, "backend must be one of ('jax', 'numba'), got 'c'"),
        ({"draws": 0}, ValueError, "draws must be an integer >= 1, got 0"),
        ({"chains": 2.5}, TypeError, "chains must be an integer, got 2.5 (float)"),
        (
            {"em": "fit"},
            TypeError,
            "em must be an EMResult, a fitted GaussianMixtureEM or GMMParams, got str",
        ),
        (
            {"em": TRUTH, "n_components": 3},
            ValueError,
            "em has 2 components and 2 features, but n_components=3",
        ),
        (
            {"covariance_type": "VEV"},
            ValueError,
            "the Bayesian model has no covariance_type='VEV'; it has full (VVV), tied (EEE)",
        ),
        ({"em": None}, TypeError, "em must be an EMResult, a fitted GaussianMixtureEM"),
        ({"relabel": "kl"}, ValueError, "relabel must be one of ('em', 'stephens', 'ecr')"),
        (
            {"resp": np.full((5, 2), 0.5)},
            ValueError,
            "resp must have shape (n_samples, n_components) = (272, 2), got (5, 2)",
        ),
    ],
)
def test_bad_input(kwargs, exc, match):
    kwargs = {"n_components": 2, "em": TRUTH, **kwargs}
    with pytest.raises(exc, match=re.escape(match)):
        sample_posterior(load_old_faithful(), **kwargs)


def test_the_diagnostics_group_is_clean_on_well_separated_data(tree):
    # The session's sample raised no SamplingWarning (warnings are errors in the suite).
    diag = Diagnostics.from_dataset(tree["diagnostics"].to_dataset())
    assert diag.clean, diag.message()
    ds = tree["diagnostics"].to_dataset()
    assert float(ds["r_hat"].max()) <= 1.01 and float(ds["ess_tail_per_chain"].min()) >= 100
    assert ds["divergences"].values.tolist() == [0, 0]


@pytest.mark.parametrize("sampler", ["nutpie", "pymc"])
def test_chains_start_at_the_em_estimate_jittered_per_chain(sampler, simulated):
    from pymc.initial_point import make_initial_point_fn

    from bgmm.bayes import build_model, initial_values
    from bgmm.bayes.sampling import _start_kwargs

    sim, em = simulated
    model = build_model(sim.data, 2)
    kwargs = _start_kwargs(model, sampler, "jax", jitter=True)
    assert kwargs["compile_kwargs"]["mode"] == "JAX"
    if sampler == "nutpie":
        jitter = kwargs["compile_kwargs"]["jitter_rvs"]
        assert jitter == set(model.free_RVs)
    else:
        # PyMC's "jitter+..." inits jitter every free variable around the initvals; the
        # points below check what that does to the EM start.
        assert kwargs["init"].startswith("jitter")
        jitter = set(model.free_RVs)
    exact = make_initial_point_fn(
        model=model, overrides=initial_values(model, em.params), jitter_rvs=set()
    )(0)
    point_fn = make_initial_point_fn(
        model=model, overrides=initial_values(model, em.params), jitter_rvs=jitter
    )
    chain_a, chain_b = point_fn(1), point_fn(2)
    for name, value in exact.items():
        assert np.all(np.abs(chain_a[name] - value) <= 1.0)  # around the EM estimate
        assert not np.array_equal(chain_a[name], chain_b[name])  # different per chain


def test_diagonal_family_end_to_end(simulated):
    """diag: sds per component and feature; the comparison lists only the free variances."""
    from bgmm import fit_em
    from bgmm.compare import compare

    sim, full = simulated
    em = fit_em(sim.data, 2, n_init=3, covariance_type="diag", random_state=0)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "em is a fit with covariance_type='VVV' but the model's is 'VVI'; fit EM with "
            "covariance_type='VVI', or leave covariance_type out"
        ),
    ):
        sample_posterior(sim.data, 2, em=full, covariance_type="diag")
    tree = sample_posterior(sim.data, 2, em=em, **SETTINGS)  # the family comes from em
    assert json.loads(tree.attrs["bgmm_settings"])["covariance_type"] == "VVI"
    cov = tree["posterior"]["covariances"]
    np.testing.assert_array_equal(cov.sel(feature="a", feature_bis="b"), 0.0)
    # the posterior sits around the EM estimate of the same family
    np.testing.assert_allclose(
        cov.mean(("chain", "draw")).values, em.covariances, rtol=0.35, atol=0.05
    )
    table = compare(em, tree).to_dataframe()
    rows = [r for r in table.index if r.startswith("covariances")]
    assert rows == [
        "covariances[0, a, a]",
        "covariances[0, b, b]",
        "covariances[1, a, a]",
        "covariances[1, b, b]",
    ]
    assert table.loc[rows, "em_in_hdi"].all()
    with pytest.raises(ValueError, match="sampled with covariance_type='VVI' but the EM fit"):
        compare(full, tree)


def test_number_of_nonempty_components_counts_drawn_allocations():
    from bgmm.bayes import n_clusters
    from bgmm.plots import plot_n_clusters

    # Two clusters, a posterior of three components whose third is empty in every draw
    # (weight 1e-12) except a tenth of the draws, where it takes a share of cluster 0.
    sim = simulate(TRUTH, 200, random_state=4)
    n_chain, n_draw = 2, 50
    shape = (n_chain, n_draw)
    w = np.broadcast_to([0.4, 0.6 - 1e-12, 1e-12], (*shape, 3)).copy()
    w[:, :5] = [0.2, 0.6, 0.2]
    means = np.broadcast_to(np.r_[TRUTH.means, TRUTH.means[:1]], (*shape, 3, 2))
    cov = np.broadcast_to(np.r_[TRUTH.covariances, TRUTH.covariances[:1]], (*shape, 3, 2, 2))
    post = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), w),
            "means": (("chain", "draw", "component", "feature"), means),
            "covariances": (("chain", "draw", "component", "feature", "feature_bis"), cov),
        },
        coords={"chain": [0, 1], "draw": np.arange(n_draw), "component": [0, 1, 2]},
    )
    out = n_clusters(post, sim.data, random_seed=0)
    assert out["n_nonempty"].shape == shape
    np.testing.assert_allclose(out["probability"].values, [0.0, 0.9, 0.1])
    assert out.attrs["mode"] == 2
    xr.testing.assert_identical(out, n_clusters(post, sim.data, random_seed=0))
    fig = plot_n_clusters(out)
    assert len(fig.axes[0].patches) == 3


@pytest.mark.parametrize("method", ["em", "stephens", "ecr"])
@pytest.mark.parametrize("switching", ["per draw", "per chain"])
def test_every_relabelling_recovers_a_known_permutation(method, switching):
    """Draws near the truth whose labels are permuted (known): each method undoes it and
    names the components after EM's (here: the truth)."""
    from bgmm.bayes.sampling import _whole_sample_source

    truth = GMMParams.from_arrays(
        [0.3, 0.3, 0.4],
        [[0.0, 0.0], [5.0, 0.0], [2.0, 5.0]],
        [np.eye(2) * 0.6, np.eye(2) * 0.8, [[1.0, 0.3], [0.3, 0.7]]],
    )
    data = simulate(truth, 150, random_state=3).data
    rng = np.random.default_rng(7)
    n_chain, n_draw, k = 2, 40, 3
    if switching == "per draw":
        perms = np.array([rng.permutation(k) for _ in range(n_chain * n_draw)])
    else:
        perms = np.repeat([[0, 1, 2], [2, 0, 1]], n_draw, axis=0)
    shape = (n_chain, n_draw)
    means = truth.means[perms] + rng.normal(scale=0.05, size=(n_chain * n_draw, k, 2))
    raw = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), truth.weights[perms].reshape(*shape, k)),
            "means": (("chain", "draw", "component", "feature"), means.reshape(*shape, k, 2)),
            "covariances": (
                ("chain", "draw", "component", "feature", "feature_bis"),
                truth.covariances[perms].reshape(*shape, k, 2, 2),
            ),
        },
        coords={"chain": [0, 1], "draw": np.arange(n_draw), "component": np.arange(k)},
    )
    stacked = raw["means"].stack(sample=("chain", "draw")).transpose("sample", ...)
    em_source, _, _ = match_to_reference(assignment_costs(stacked.values, truth))
    if method == "em":
        source = em_source
    else:  # the whole-sample algorithms start from a poor guess: the identity
        start = np.tile(np.arange(k), (len(perms), 1))
        source = _whole_sample_source(raw, data, truth, None, start, method)
    np.testing.assert_array_equal(source, np.argsort(perms, axis=1))


def test_a_start_no_jitter_can_use_is_nudged_instead(monkeypatch, simulated):
    """A narrow component: every jittered start fails (seen in the SBC run); the chains
    then start at the EM estimate moved by a thousandth of an sd, and the run says so."""
    import pymc as pm

    import bgmm.bayes.sampling as sampling

    sim, em = simulated
    calls, real = [], pm.sample

    def sample(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise RuntimeError("All initialization points failed\n\nCaused by: ...")
        return real(**kwargs)

    monkeypatch.setattr(sampling.pm, "sample", sample)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # r_hat near 1.01 is not the point
        tree = sample_posterior(sim.data, 2, em=em, **SETTINGS)
    first, second = calls
    assert first["compile_kwargs"]["jitter_rvs"] and not second["compile_kwargs"]["jitter_rvs"]
    np.testing.assert_allclose(second["initvals"]["means"], em.means, atol=1e-2)
    assert not np.array_equal(second["initvals"]["means"], em.means)
    assert "moved by 1e-3 sd" in json.loads(tree.attrs["bgmm_settings"])["start"]

    def broken(**kwargs):
        raise RuntimeError("something else")

    monkeypatch.setattr(sampling.pm, "sample", broken)
    with pytest.raises(RuntimeError, match="something else"):  # not retried
        sample_posterior(sim.data, 2, em=em, **SETTINGS)


def test_no_blas_warning_reaches_a_library_user():
    """PyTensor's "could not link to a BLAS" is for C-backend users; bgmm compiles with JAX.

    In a fresh interpreter (the flags are resolved once per process), with every warning
    an error: building the model and compiling its log density with PyTensor's default
    (C) linker, which is where PyTensor looks for a BLAS, warns nothing.
    """
    code = (
        "import warnings; warnings.simplefilter('error')\n"
        "import bgmm; from bgmm.bayes import build_model\n"
        "model = build_model(bgmm.load_old_faithful(), 2)\n"
        "import pytensor; print(repr(pytensor.config.blas__ldflags))\n"
        "print(model.compile_logp()(model.initial_point()))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "BLAS" not in proc.stderr
