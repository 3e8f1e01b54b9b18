"""The sufficient-statistics engine: chunking, sample weights, numerics wherever clusters sit."""

import functools
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
from sklearn.mixture import GaussianMixture

from bgmm import fit_em, simulate
from bgmm.em.solver import _singular_message
from tests.conftest import make_params


def two_pass_covariances(X, resp, sample_weight=None):
    """W_k / N_k computed directly from x - mu (independent of the engine)."""
    w = np.ones(len(X)) if sample_weight is None else sample_weight
    wr = w[:, None] * resp
    nk = wr.sum(axis=0)
    means = wr.T @ X / nk[:, None]
    covs = []
    for k in range(resp.shape[1]):
        diff = X - means[k]
        covs.append((diff * wr[:, [k]]).T @ diff / nk[k])
    return nk / w.sum(), means, np.array(covs)


def start_of(params):
    return {
        "weights_init": params.weights,
        "means_init": params.means,
        "covariances_init": params.covariances,
    }


@pytest.fixture(scope="module")
def problem():
    params = make_params(3, 2, seed=21, spread=3.0)
    data = simulate(params, 301, random_state=22).data
    return data, make_params(3, 2, seed=23, spread=2.0)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 301])
def test_any_chunking_gives_the_same_fit(problem, chunk_size):
    data, start = problem
    # Chunks change only the order of the sums: round-off, which EM's iterations carry on.
    ref = fit_em(data, 3, max_iter=3, tol=0.0, reg_covar=1e-4, **start_of(start))
    res = fit_em(
        data, 3, max_iter=3, tol=0.0, reg_covar=1e-4, chunk_size=chunk_size, **start_of(start)
    )
    for name in ("weights", "means", "covariances", "resp"):
        np.testing.assert_allclose(getattr(res, name), getattr(ref, name), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.history_frame(), ref.history_frame(), rtol=1e-11, atol=1e-9)


def test_integer_sample_weights_equal_repeated_rows(problem):
    data, start = problem
    counts = np.random.default_rng(1).integers(0, 4, size=data.n_samples)
    repeated = np.repeat(np.asarray(data.values), counts, axis=0)
    a = fit_em(data, 3, max_iter=12, tol=0.0, sample_weight=counts, **start_of(start))
    b = fit_em(repeated, 3, max_iter=12, tol=0.0, **start_of(start))
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-10)
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=1e-12)
    np.testing.assert_allclose(a.history_frame(), b.history_frame(), rtol=1e-9, atol=1e-8)
    assert a.total_weight == counts.sum()


@pytest.mark.parametrize(
    ("sample_weight", "exc", "match"),
    [
        ([1.0, 2.0], ValueError, "sample_weight must have shape (n_samples,) = (301,), got (2,)"),
        ("neg", ValueError, "sample_weight must be finite and >= 0, got -1.0 at row 3"),
        ("zero", ValueError, "sample_weight is zero for every row"),
    ],
)
def test_bad_sample_weight(problem, sample_weight, exc, match):
    data, _ = problem
    if sample_weight == "neg":
        sample_weight = np.ones(data.n_samples)
        sample_weight[3] = -1.0
    elif sample_weight == "zero":
        sample_weight = np.zeros(data.n_samples)
    with pytest.raises(exc, match=re.escape(match)):
        fit_em(data, 3, sample_weight=sample_weight)


def test_history_identity_and_q_against_direct_sum(problem):
    """ln p = L + KL on every row, with KL computed directly from the responsibilities."""
    from bgmm.em import log_component_densities

    data, start = problem
    X = np.asarray(data.values)
    runs = [
        fit_em(data, 3, max_iter=t, tol=0.0, reg_covar=1e-4, **start_of(start)) for t in (3, 4)
    ]
    h = runs[1].history
    np.testing.assert_allclose(h["log_likelihood"], h["lower_bound"] + h["kl"], rtol=1e-12)
    # Row 4: q = gamma at theta^3 (the 3-iteration fit), p at theta^4.
    q, p = runs[0].resp, runs[1].resp
    log_pi_phi = log_component_densities(runs[1].params, X) + np.log(runs[1].weights)
    np.testing.assert_allclose(h["q_value"][3], (q * log_pi_phi).sum(), rtol=1e-11)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(q > 0, q * (np.log(q) - np.log(p)), 0.0).sum()
    np.testing.assert_allclose(h["kl"][3], kl, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("n_init", [1, 3])
def test_batched_restarts_equal_separate_fits(n_init):
    data = simulate(make_params(3, 2, seed=5, spread=2.5), 200, random_state=6).data
    both = fit_em(data, 3, n_init=n_init, init_params="random", random_state=4)
    rng = np.random.default_rng(4)
    for i in range(n_init):
        from bgmm.covariance import FAMILIES
        from bgmm.em.solver import _check_user_init, _initial_params

        VVV = FAMILIES["VVV"]

        user = _check_user_init(None, None, None, 3, 2)
        start = _initial_params(
            np.asarray(data.values), None, 3, "random", rng, 1e-6, user, "float64", VVV
        )
        single = fit_em(
            data,
            3,
            **dict(zip(("weights_init", "means_init", "covariances_init"), start, strict=True)),
        )
        np.testing.assert_allclose(both.init_log_likelihoods[i], single.log_likelihood, rtol=1e-10)


# ---------------------------------------------------------------- numerics


def test_far_apart_tight_clusters_are_exact():
    """Two unit-variance clusters 1e7 apart: covariances as a two-pass computation gives."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 1e7])
    res = fit_em(X, 2, reg_covar=0.0, random_state=0)
    _, means, covs = two_pass_covariances(X, res.resp)
    np.testing.assert_allclose(res.means, means, rtol=1e-12)
    np.testing.assert_allclose(res.covariances, covs, rtol=1e-7)
    sk = GaussianMixture(2, reg_covar=0.0, random_state=0, tol=1e-12, max_iter=500).fit(X)
    np.testing.assert_allclose(res.log_likelihood, sk.score(X) * len(X), rtol=1e-10)


def test_constant_feature_is_regularised_not_a_crash():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=300), np.full(300, 5.0)])
    res = fit_em(X, 2, random_state=0)
    assert np.isfinite(res.log_likelihood)
    np.testing.assert_allclose(res.covariances[:, 1, 1], 1e-6, rtol=1e-6)


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_extreme_scales_give_scikit_learns_answer(scale):
    data = simulate(make_params(2, 2, seed=3, spread=4.0), 300, random_state=4).data
    X = np.asarray(data.values) * scale
    start = make_params(2, 2, seed=5, spread=3.0)
    kw = {"max_iter": 20, "tol": 0.0, "reg_covar": 0.0}
    res = fit_em(
        X,
        2,
        weights_init=start.weights,
        means_init=start.means * scale,
        covariances_init=start.covariances * scale**2,
        **kw,
    )
    sk = GaussianMixture(
        2,
        weights_init=start.weights,
        means_init=start.means * scale,
        precisions_init=np.linalg.inv(start.covariances) / scale**2,
        **kw,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)
        sk.fit(X)
    np.testing.assert_allclose(res.means / scale, sk.means_ / scale, rtol=1e-7)
    np.testing.assert_allclose(res.covariances / scale**2, sk.covariances_ / scale**2, rtol=1e-7)


def test_data_whose_squares_overflow_are_refused_with_the_scale_named():
    X = np.random.default_rng(0).normal(size=(100, 2)) * 1e300
    with pytest.raises(ValueError, match=r"values as large as .*e\+300 .*standardize=True"):
        fit_em(X, 2)


def test_standardize_rescues_huge_data():
    from bgmm import as_data

    X = np.random.default_rng(0).normal(size=(100, 2)) * 1e300 + 1e301
    data = as_data(X, standardize=True)
    assert np.isfinite(data.values).all()
    np.testing.assert_allclose(data.values.std(axis=0), 1.0, rtol=1e-12)
    res = fit_em(data, 2, random_state=0)
    assert np.isfinite(res.log_likelihood)


def test_singular_message_never_fails_on_non_finite_matrices():
    cov = np.array([[[np.nan, 0.0], [0.0, 1.0]], [[np.inf, 1.0], [1.0, 1.0]]])
    msg = _singular_message([0, 1], cov, "after the M step of iteration 2")
    assert "component 0: entries not finite" in msg and "component 1" in msg


def test_float32_agrees_with_float64_on_well_scaled_data(problem):
    data, start = problem
    a = fit_em(data, 3, max_iter=30, tol=0.0, **start_of(start))
    b = fit_em(data, 3, max_iter=30, tol=0.0, dtype="float32", **start_of(start))
    assert b.means.dtype == np.float64
    np.testing.assert_allclose(b.means, a.means, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(b.covariances, a.covariances, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(b.log_likelihood, a.log_likelihood, rtol=1e-5)


def test_bad_dtype_is_refused(problem):
    with pytest.raises(
        ValueError, match=re.escape("dtype must be one of ('float64', 'float32'), got 'int8'")
    ):
        fit_em(problem[0], 3, dtype="int8")


def test_em_package_imports_neither_pymc_nor_arviz():
    code = (
        "import sys, bgmm.em; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pymc', 'arviz', 'arviz_base', "
        "'arviz_stats', 'arviz_plots')]; print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# ---------------------------------------------------------------- blocks, weights, memory


def test_stopping_is_exact_across_blocks_and_idle_iterations(problem):
    """max_iter = t gives the first t iterations of a longer run, on either side of a block
    boundary (the iterations a block runs after every restart stopped change nothing)."""
    from bgmm.em.solver import BLOCK_SIZE

    data, start = problem
    kw = {"tol": 0.0, "reg_covar": 1e-4, "n_init": 1, **start_of(start)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = fit_em(data, 3, max_iter=2 * BLOCK_SIZE + 3, **kw)
        for t in (1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 2 * BLOCK_SIZE + 2):
            part = fit_em(data, 3, max_iter=t, **kw)
            assert part.n_iter == t
            np.testing.assert_array_equal(part.history_frame(), full.history_frame()[:t])
    # tol: the returned iteration is the first whose change is below tol
    changes = np.abs(np.diff(full.history["log_likelihood"])) / data.n_samples
    tol = float(np.sort(changes)[len(changes) // 2])
    first = int(np.flatnonzero(changes < tol)[0]) + 2  # change t-1 -> t is at index t-2
    res = fit_em(data, 3, max_iter=500, **{**kw, "tol": tol})
    assert res.converged and res.n_iter == first


def test_unit_weights_need_no_weight_array(problem):
    data, start = problem
    kw = {"max_iter": 5, "tol": 0.0, "reg_covar": 1e-4, **start_of(start)}
    plain = fit_em(data, 3, **kw)
    ones = fit_em(data, 3, sample_weight=np.ones(data.n_samples), **kw)
    for name in ("weights", "means", "covariances", "resp"):
        np.testing.assert_allclose(getattr(plain, name), getattr(ones, name), rtol=1e-12)
    # KL and the regularisation gap are differences of terms of ln p's size (about 1e3), so
    # the two summation orders may differ in them by 1e-12 of ln p, not of themselves
    history = plain.history_frame()
    scale = float(np.abs(history["log_likelihood"]).max())
    np.testing.assert_allclose(history, ones.history_frame(), rtol=1e-12, atol=1e-12 * scale)


def test_the_cpu_device_reads_the_data_in_place():
    """No second copy of the data for the JAX CPU device: the chunks alias as_data's copy."""
    jax = pytest.importorskip("jax")
    from bgmm import as_data
    from bgmm.em import solver

    if solver.COMPILE_MODE != "JAX" or jax.default_backend() != "cpu":
        pytest.skip("aliasing applies to JAX's CPU device")
    values = as_data(np.random.default_rng(0).normal(size=(1000, 3))).values
    device = solver._to_device(values, None, 128, "float64")
    assert device.chunk_weights is None and device.rest_weights is None
    assert device.chunks.unsafe_buffer_pointer() == values.ctypes.data


def test_fit_releases_its_copy_of_a_float64_array_before_resp():
    """The final E step reads the caller's array; results equal those of a GMMData input."""
    from bgmm import as_data

    X = simulate(make_params(2, 2, seed=8, spread=4.0), 500, random_state=9).data.values
    X = np.array(X)
    a = fit_em(X, 2, random_state=0, max_iter=30)
    b = fit_em(as_data(X), 2, random_state=0, max_iter=30)
    np.testing.assert_array_equal(a.resp, b.resp)
    np.testing.assert_array_equal(a.means, b.means)


# ---------------------------------------------------------------- location and scale


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    log_scale=st.floats(min_value=-100.0, max_value=100.0),
    log_shift=st.floats(min_value=0.0, max_value=7.0),
    sign=st.sampled_from([-1.0, 1.0]),
)
def test_fit_is_equivariant_under_location_and_scale(log_scale, log_shift, sign):
    """Fitting s X + c from the moved start gives the moved fit of X, to 1e-7 relative,
    for scales 1e-100 .. 1e100 and shifts up to 1e7 cluster widths."""
    X, start = _equivariance_problem()
    s, c = 10.0**log_scale, sign * 10.0**log_shift * 10.0**log_scale
    kw = {"max_iter": 8, "tol": 0.0, "reg_covar": 0.0}
    ref = fit_em(X, 2, **start_of(start), **kw)
    moved = fit_em(
        s * X + c,
        2,
        weights_init=start.weights,
        means_init=s * start.means + c,
        covariances_init=start.covariances * s**2,
        **kw,
    )
    np.testing.assert_allclose(moved.weights, ref.weights, rtol=1e-7)
    np.testing.assert_allclose((moved.means - c) / s, ref.means, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(moved.covariances / s**2, ref.covariances, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(moved.resp, ref.resp, atol=1e-7)
    n, d = X.shape
    np.testing.assert_allclose(
        moved.log_likelihood + n * d * np.log(s), ref.log_likelihood, rtol=1e-9, atol=1e-6
    )


@functools.cache
def _equivariance_problem():
    data = simulate(make_params(2, 2, seed=31, spread=3.0), 200, random_state=32).data
    return np.array(data.values), make_params(2, 2, seed=33, spread=2.0)
