import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
from sklearn.mixture import GaussianMixture

from bgmm import (
    ConvergenceWarning,
    LikelihoodDecreaseError,
    SingularCovarianceError,
    SingularCovarianceWarning,
    fit_em,
    load_old_faithful,
    load_worked_example,
    simulate,
)
from bgmm.em.solver import HISTORY_FIELDS
from tests.conftest import make_params


def fit_worked_example(max_iter, reg_covar=0.0):
    ex = load_worked_example()
    return fit_em(
        ex.data,
        2,
        max_iter=max_iter,
        tol=0.0,
        reg_covar=reg_covar,
        weights_init=ex.initial.weights,
        means_init=ex.initial.means,
        covariances_init=ex.initial.covariances,
    )


# ---------------------------------------------------------------- the worked example


def test_worked_example_one_iteration_golden_numbers():
    with pytest.warns(SingularCovarianceWarning, match=r"component\(s\) \[0, 1\] is singular"):
        res = fit_worked_example(max_iter=1)
    # The document's numbers ...
    np.testing.assert_allclose(res.weights, [0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(res.means, [[165, 60], [185, 80]], atol=1e-6)
    np.testing.assert_allclose(res.covariances, np.full((2, 2, 2), 16.67), atol=5e-3)
    # ... and the exact ones (DERIVATION.md table, independent numpy/scipy computation).
    np.testing.assert_allclose(res.weights, [0.49999998303, 0.50000001697], rtol=1e-10)
    np.testing.assert_allclose(res.covariances[0], np.full((2, 2), 16.6666663838), rtol=1e-10)
    np.testing.assert_allclose(res.covariances[1], np.full((2, 2), 16.6666737379), rtol=1e-10)
    assert res.n_iter == 1 and not res.converged
    # The returned covariances are singular, so the likelihood there is undefined: NaN,
    # announced by the warning, never silent.
    assert np.isnan(res.log_likelihood)
    ex = load_worked_example()
    phi = np.stack(
        [
            multivariate_normal(m, c).pdf(ex.data.values)
            for m, c in zip(ex.initial.means, ex.initial.covariances, strict=True)
        ],
        axis=1,
    )
    np.testing.assert_allclose(res.log_likelihood_init, np.log(0.5 * phi.sum(axis=1)).sum())


def test_worked_example_responsibilities_at_start():
    from bgmm import GMMParams, evaluate

    ex = load_worked_example()
    log_resp, _ = evaluate(ex.initial, ex.data)
    resp = np.exp(log_resp)
    np.testing.assert_allclose(resp[:, 0], [1, 1, 0.999999898, 0, 0, 0], atol=1e-9)
    assert resp[2, 1] == pytest.approx(1.018260266e-07, rel=1e-8)
    assert isinstance(ex.initial, GMMParams)


def test_worked_example_second_iteration_stops_with_singular_error():
    msg = "the covariance of component(s) [0, 1] is singular after the M step of iteration 1"
    with pytest.raises(SingularCovarianceError, match=re.escape(msg)) as info:
        fit_worked_example(max_iter=2)
    assert "Increase reg_covar" in str(info.value)


def test_worked_example_with_reg_covar_keeps_going():
    res = fit_worked_example(max_iter=5, reg_covar=1e-3)
    assert np.isfinite(res.log_likelihood) and res.n_iter == 5


# ---------------------------------------------------------------- against scikit-learn


@pytest.mark.parametrize("n_iter", [1, 15])
def test_matches_sklearn_from_same_start(n_iter):
    params = make_params(3, 3, seed=11, spread=3.0)
    data = simulate(params, 300, random_state=12).data
    start = make_params(3, 3, seed=13, spread=2.0)
    reg = 1e-4
    res = fit_em(
        data,
        3,
        max_iter=n_iter,
        tol=0.0,
        reg_covar=reg,
        weights_init=start.weights,
        means_init=start.means,
        covariances_init=start.covariances,
    )
    sk = GaussianMixture(
        3,
        max_iter=n_iter,
        tol=0.0,
        reg_covar=reg,
        weights_init=start.weights,
        means_init=start.means,
        precisions_init=np.linalg.inv(start.covariances),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)  # tol=0: it cannot converge
        sk.fit(data.values)
    np.testing.assert_allclose(res.weights, sk.weights_, rtol=1e-8)
    np.testing.assert_allclose(res.means, sk.means_, rtol=1e-8)
    np.testing.assert_allclose(res.covariances, sk.covariances_, rtol=1e-8)
    np.testing.assert_allclose(res.resp, sk.predict_proba(data.values), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(
        res.log_likelihood, sk.score(data.values) * data.n_samples, rtol=1e-10
    )


def test_default_tol_reaches_the_optimum():
    """Continuing from the returned fit changes nothing that matters: it is the optimum."""
    data = load_old_faithful()
    res = fit_em(data, 2, random_state=0)
    assert res.converged
    more = fit_em(
        data,
        2,
        tol=0.0,
        max_iter=500,
        weights_init=res.weights,
        means_init=res.means,
        covariances_init=res.covariances,
    )
    np.testing.assert_allclose(res.means, more.means, rtol=1e-6)
    np.testing.assert_allclose(res.covariances, more.covariances, rtol=1e-5)
    assert more.log_likelihood - res.log_likelihood < 1e-7


# ---------------------------------------------------------------- EM properties


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    k=st.integers(1, 4),
    d=st.integers(1, 3),
    n_per=st.integers(15, 60),
    init=st.sampled_from(["random", "kmeans", "k-means++"]),
)
def test_log_likelihood_never_decreases_and_bound_holds(seed, k, d, n_per, init):
    data = simulate(make_params(k, d, seed=seed, spread=2.0), n_per * k, random_state=seed).data
    res = fit_em(
        data, k, max_iter=25, tol=0.0, reg_covar=1e-3, init_params=init, random_state=seed
    )
    h = res.history
    ll = np.concatenate([[res.log_likelihood_init], h["log_likelihood"]])
    roundoff = 1e-9 * np.maximum(data.n_samples, np.abs(ll[:-1]))
    assert np.all(np.diff(ll) >= -(h["regularization_gap"] + roundoff))
    # ln p(X | theta^t) = L(q^{t-1}, theta^t) + KL(q^{t-1} || p(Z | X, theta^t)), KL >= 0.
    np.testing.assert_allclose(
        h["log_likelihood"], h["lower_bound"] + h["kl"], rtol=1e-9, atol=1e-8
    )
    assert np.all(h["kl"] >= -1e-8)
    np.testing.assert_allclose(h["lower_bound"], h["q_value"] + h["entropy"], rtol=1e-12)
    np.testing.assert_allclose(res.resp.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(np.linalg.eigvalsh(res.covariances) > 0)


def test_history_has_documented_fields_and_is_immutable():
    res = fit_em(load_old_faithful(), 2, random_state=0)
    assert res.history.dtype.names == HISTORY_FIELDS
    assert len(res.history) == res.n_iter
    assert res.history_frame().index[0] == 1
    with pytest.raises(ValueError, match="read-only"):
        res.history["kl"][0] = 1.0
    with pytest.raises(AttributeError):
        res.n_iter = 3


def test_same_seed_same_result_and_restarts_keep_the_best():
    data = simulate(make_params(4, 2, seed=3, spread=2.5), 300, random_state=4).data
    a = fit_em(data, 4, n_init=4, init_params="random", random_state=9)
    b = fit_em(data, 4, n_init=4, init_params="random", random_state=9)
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.init_log_likelihoods, b.init_log_likelihoods)
    assert a.log_likelihood == pytest.approx(a.init_log_likelihoods.max(), rel=1e-14)
    assert len(a.init_log_likelihoods) == 4


def test_convergence_warning_when_max_iter_too_small():
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=2"):
        fit_em(load_old_faithful(), 2, max_iter=2, random_state=0)


def test_empty_component_is_a_clear_error():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match=re.escape("component(s) [1] received no responsibility")):
        fit_em(
            X,
            2,
            reg_covar=1e-3,
            max_iter=3,
            weights_init=[0.5, 0.5],
            means_init=[[0.5, 0.5], [1e6, 1e6]],
            covariances_init=[np.eye(2), 1e-3 * np.eye(2)],
        )


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"tol": -1.0}, ValueError, "tol must be a finite number >= 0.0, got -1.0"),
        ({"reg_covar": float("nan")}, ValueError, "reg_covar must be a finite number >= 0.0"),
        ({"max_iter": 0}, ValueError, "max_iter must be an integer >= 1, got 0"),
        ({"n_init": 1.5}, TypeError, "n_init must be an integer, got 1.5 (float)"),
        (
            {"init_params": "foo"},
            ValueError,
            "init_params must be one of ('kmeans', 'k-means++', 'random', 'hierarchical', "
            "'auto'), got 'foo'",
        ),
        ({"covariance_type": "ful"}, ValueError, "or 'E' / 'V' for one feature; got 'ful'"),
        ({"weights_init": [0.2, 0.2]}, ValueError, "weights must sum to 1, got sum 0.4"),
        (
            {"means_init": [[0.0, 0.0]]},
            ValueError,
            "means must have shape (n_components, n_features) = (2, 2), got (1, 2)",
        ),
        (
            {"covariances_init": [np.eye(2), -np.eye(2)]},
            ValueError,
            "covariances[1] is not positive definite",
        ),
    ],
)
def test_bad_settings(kwargs, exc, match):
    with pytest.raises(exc, match=re.escape(match)):
        fit_em(load_old_faithful(), 2, **kwargs)


def test_singular_start_is_a_clear_error():
    ex = load_worked_example()
    with pytest.raises(ValueError, match="covariances\\[0\\] is not positive definite"):
        fit_em(
            ex.data,
            2,
            covariances_init=[np.ones((2, 2)), np.eye(2)],
            weights_init=[0.5, 0.5],
            means_init=[[0, 0], [1, 1]],
        )


def test_likelihood_decrease_is_detected(monkeypatch):
    """A step that lowers ln p beyond round-off (a bug) raises instead of passing silently."""
    from bgmm.em import solver

    real = solver._compiled_block

    def broken_block(shapes):
        block = real(shapes)

        def run(*args):
            out = solver.BlockOutputs(*block(*args))
            # each iteration 10 nats lower than the one before
            steps = np.arange(1, len(out.log_likelihood) + 1)[:, None]
            return out._replace(log_likelihood=np.asarray(out.log_likelihood) - 10.0 * steps)

        return run

    monkeypatch.setattr(solver, "_compiled_block", broken_block)
    with pytest.raises(LikelihoodDecreaseError, match="the log-likelihood decreased from"):
        fit_em(load_old_faithful(), 2, reg_covar=0.0, random_state=0)


def test_likelihood_decrease_inside_a_later_block_names_its_iteration(monkeypatch):
    """The checks read blocks in bulk: a fall at one iteration mid-block is still caught."""
    from bgmm.em import solver

    real = solver._compiled_block
    calls = []

    def broken_block(shapes):
        block = real(shapes)

        def run(*args):
            out = solver.BlockOutputs(*block(*args))
            ll = np.array(out.log_likelihood)
            t = solver.BLOCK_SIZE * len(calls) + np.arange(len(ll))
            calls.append(1)
            ll[t >= 21] -= 10.0  # ln p(theta^21) falls 10 nats, then climbs as before
            return out._replace(log_likelihood=ll)

        return run

    monkeypatch.setattr(solver, "_compiled_block", broken_block)
    with pytest.raises(LikelihoodDecreaseError, match="at iteration 21,"):
        fit_em(load_old_faithful(), 3, reg_covar=0.0, tol=0.0, max_iter=40, random_state=0)


def test_starts_are_shared_by_fits_of_the_same_data_and_k(monkeypatch):
    """select_model's families reuse one K's partitions; the result is as if recomputed."""
    from bgmm.em import solver

    data = load_old_faithful()
    solver._START_CACHE.clear()
    first = fit_em(data, 3, covariance_type="VVI", init_params="auto", n_init=4, random_state=2)
    cached = len(solver._START_CACHE)
    assert cached == 4  # the agglomeration, k-means and two k-means++ seeds
    computed = []
    real = solver._initial_partition
    monkeypatch.setattr(
        solver, "_initial_partition", lambda *a, **k: computed.append(1) or real(*a, **k)
    )
    again = fit_em(data, 3, covariance_type="VVI", init_params="auto", n_init=4, random_state=2)
    assert computed == [] and len(solver._START_CACHE) == cached
    np.testing.assert_array_equal(again.init_log_likelihoods, first.init_log_likelihoods)
    # Without the cache (data too large to fingerprint) the same starts are computed.
    monkeypatch.setattr(solver, "START_CACHE_VALUES", 0)
    fresh = fit_em(data, 3, covariance_type="VVI", init_params="auto", n_init=4, random_state=2)
    assert len(computed) == 4
    np.testing.assert_array_equal(fresh.init_log_likelihoods, first.init_log_likelihoods)
    np.testing.assert_array_equal(fresh.covariances, first.covariances)
    # Other data, weights or seeds are other keys.
    fit_em(data, 3, covariance_type="VVI", init_params="auto", n_init=4, random_state=3)
    monkeypatch.setattr(solver, "START_CACHE_VALUES", 2**20)
    fit_em(data, 3, covariance_type="VVI", init_params="auto", n_init=4, random_state=3)
    assert len(solver._START_CACHE) == cached + 3  # k-means and k-means++ seeds differ


def test_fits_in_threads_share_the_start_cache_safely():
    """Fits running in threads (a Dask threaded scheduler) read and fill one cache."""
    from concurrent.futures import ThreadPoolExecutor

    from bgmm.em import solver

    data = load_old_faithful()

    def fit(seed):
        em = fit_em(
            data, 2, covariance_type="EII", init_params="auto", n_init=3, random_state=seed
        )
        return em.init_log_likelihoods

    solver._START_CACHE.clear()
    alone = [fit(seed) for seed in range(6)]
    solver._START_CACHE.clear()
    with ThreadPoolExecutor(max_workers=3) as pool:
        together = list(pool.map(fit, [*range(6), *range(6)]))
    for i, lls in enumerate(together):
        np.testing.assert_array_equal(lls, alone[i % 6])


def test_small_problems_compile_without_ynnpack_fusions():
    """d <= SMALL_FEATURES compiles with XLA's YNNPACK fusions off (twice as fast at d=2)."""
    import pytensor.tensor as pt

    from bgmm.em import solver

    if not solver._no_ynn_fusions_supported():
        pytest.skip("this jaxlib has no xla_cpu_experimental_ynn_fusion_type option")
    for d, linker in [(2, solver._SmallFeaturesJAXLinker), (solver.SMALL_FEATURES + 1, None)]:
        x = pt.matrix("x", shape=(None, d))
        fn = solver._function([x], (x @ x.T).sum(), solver.COMPILE_MODE, d)
        assert (type(fn.maker.linker) is linker) == (linker is not None)
        assert float(fn(np.ones((3, d)))) == 9.0 * d


def test_fit_on_standardized_data_maps_back_to_the_raw_fit():
    """EM is affine-equivariant: fit on z-scores, map back with the recorded transform."""
    raw = load_old_faithful()
    std = load_old_faithful(standardize=True)
    start = fit_em(raw, 2, max_iter=1, tol=0.0, reg_covar=0.0, random_state=0)
    tr = std.standardization
    a = fit_em(
        raw,
        2,
        reg_covar=0.0,
        weights_init=start.weights,
        means_init=start.means,
        covariances_init=start.covariances,
    )
    b = fit_em(
        std,
        2,
        reg_covar=0.0,
        weights_init=start.weights,
        means_init=tr.transform(start.means),
        covariances_init=start.covariances / np.multiply.outer(tr.scale, tr.scale),
    )
    np.testing.assert_allclose(tr.inverse_means(b.means), a.means, rtol=1e-7)
    np.testing.assert_allclose(tr.inverse_covariances(b.covariances), a.covariances, rtol=1e-6)
    np.testing.assert_allclose(b.weights, a.weights, rtol=1e-7)


def test_callback_reports_every_restart():
    seen = []
    res = fit_em(
        load_old_faithful(),
        2,
        n_init=3,
        random_state=0,
        callback=lambda i, n, ll: seen.append((i, n, ll)),
    )
    assert [(i, n) for i, n, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    np.testing.assert_array_equal([ll for _, _, ll in seen], res.init_log_likelihoods)


def test_compiled_mode_does_not_change_the_result(monkeypatch):
    """The JAX-compiled graphs give the numbers of PyTensor's reference Python linker."""
    from bgmm import load_old_faithful
    from bgmm.em import solver

    data = load_old_faithful()
    fast = fit_em(data, 2, max_iter=15, tol=0.0, random_state=0)
    monkeypatch.setattr(solver, "COMPILE_MODE", "FAST_COMPILE")
    reference = fit_em(data, 2, max_iter=15, tol=0.0, random_state=0)
    assert solver.COMPILE_MODE == "FAST_COMPILE" and fast.n_iter == reference.n_iter == 15
    for name in ("weights", "means", "covariances", "resp"):
        np.testing.assert_allclose(getattr(fast, name), getattr(reference, name), rtol=1e-9)
    # KL and gaps near 0 agree to round-off (1e-13), not relatively
    np.testing.assert_allclose(
        fast.history_frame(), reference.history_frame(), rtol=1e-9, atol=1e-9
    )
