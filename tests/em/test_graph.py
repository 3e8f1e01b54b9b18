"""Each graph builder against independent code or the identity it implements."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bgmm.em import graph
from bgmm.em.stats import SufficientStats, combine
from bgmm.em.step import m_step
from tests.conftest import make_params

GRID = [(1, 1), (2, 2), (3, 2), (4, 3)]


def compile_fn(inputs, outputs):
    # The Python linker compiles in milliseconds; these tests check the math, not the backend.
    return pytensor.function(inputs, outputs, mode="FAST_COMPILE", on_unused_input="ignore")


def symbols(d):
    return (
        pt.matrix("X", shape=(None, d)),
        pt.vector("weights"),
        pt.matrix("means"),
        pt.tensor3("covariances"),
    )


def weighted_log_phi(d):
    """Symbols and ln pi_k + ln phi_k(x_n) built from them."""
    Xs, w, mu, cov = symbols(d)
    log_phi = graph.log_gaussian_density(Xs, mu, graph.cholesky_factors(cov))
    return Xs, w, mu, cov, graph.weighted_log_density(log_phi, w)


def scipy_log_phi(params, X):
    return np.stack(
        [
            multivariate_normal(m, c).logpdf(X)
            for m, c in zip(params.means, params.covariances, strict=True)
        ],
        axis=1,
    ).reshape(len(X), params.n_components)


def problem(k, d, n=60, seed=0):
    params = make_params(k, d, seed=seed)
    X = np.random.default_rng(seed + 1).normal(scale=4.0, size=(n, d))
    return params, X


@pytest.mark.parametrize(("k", "d"), GRID)
def test_log_gaussian_density_matches_scipy(k, d):
    params, X = problem(k, d)
    Xs, _, mu, cov = symbols(d)
    f = compile_fn([Xs, mu, cov], graph.log_gaussian_density(Xs, mu, graph.cholesky_factors(cov)))
    got = f(X, params.means, params.covariances)
    want = scipy_log_phi(params, X)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("k", "d"), GRID)
def test_e_step_against_numpy_and_rows_sum_to_one(k, d):
    params, X = problem(k, d)
    Xs, w, mu, cov, wlp = weighted_log_phi(d)
    step = graph.e_step(wlp)
    f = compile_fn([Xs, w, mu, cov], [*step, graph.log_likelihood(step.log_norm)])
    lr, r, ln, ll = f(X, params.weights, params.means, params.covariances)
    dens = scipy_log_phi(params, X) + np.log(params.weights)
    np.testing.assert_allclose(ln, logsumexp(dens, axis=1), rtol=1e-11)
    np.testing.assert_allclose(lr, dens - logsumexp(dens, axis=1)[:, None], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(r, np.exp(lr), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(r.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(ll, ln.sum(), rtol=1e-13)


def test_e_step_survives_underflow():
    # phi_men(A) = 1.1e-29 in the worked example; far points underflow to 0 in linear space.
    Xs, w, mu, cov, wlp = weighted_log_phi(1)
    f = compile_fn([Xs, w, mu, cov], list(graph.e_step(wlp)))
    lr, _, ln = f(
        np.array([[1e3]]), np.array([0.5, 0.5]), np.array([[0.0], [1.0]]), np.ones((2, 1, 1))
    )
    assert np.isfinite(lr).all() and np.isfinite(ln).all()
    np.testing.assert_allclose(np.exp(lr), [[0.0, 1.0]], atol=1e-300)


def statistics_of(X, resp, shift, sample_weight=None):
    """Sufficient statistics of given responsibilities, in numpy (two independent lines)."""
    w = np.ones(len(X)) if sample_weight is None else sample_weight
    wr = w[:, None] * resp
    diff = X[:, None, :] - shift[None]
    return SufficientStats(
        nk=wr.sum(axis=0),
        s1=np.einsum("nk,nki->ki", wr, diff),
        s2=np.einsum("nk,nki,nkj->kij", wr, diff, diff),
        shift=shift,
        log_likelihood=None,
        entropy=None,
        total_weight=w.sum(),
    )


def m_step_fn(d, reg=0.0):
    symbolic = SufficientStats(
        pt.vector("nk"),
        pt.matrix("s1"),
        pt.tensor3("s2"),
        pt.matrix("shift"),
        None,
        None,
        pt.scalar("total"),
    )
    new = m_step(symbolic, reg)
    f = compile_fn(
        [symbolic.nk, symbolic.s1, symbolic.s2, symbolic.shift, symbolic.total_weight],
        [new.weights, new.means, new.covariances, symbolic.nk],
    )

    def run(X, resp, shift=None):
        shift = np.zeros((resp.shape[1], d)) if shift is None else shift
        st = statistics_of(X, resp, shift)
        return f(st.nk, st.s1, st.s2, st.shift, st.total_weight)

    return run


@pytest.mark.parametrize("d", [1, 2, 3])
def test_single_component_gives_sample_mean_and_biased_covariance(d):
    X = np.random.default_rng(d).normal(size=(40, d)) * [3.0, 0.5, 2.0][:d] + 10.0
    w, mu, cov, nk = m_step_fn(d)(X, np.ones((40, 1)))
    np.testing.assert_allclose(w, [1.0])
    np.testing.assert_allclose(nk, [40.0])
    np.testing.assert_allclose(mu[0], X.mean(axis=0), rtol=1e-13)
    want = np.cov(X.T, bias=True).reshape(d, d)
    np.testing.assert_allclose(cov[0], want, rtol=1e-11, atol=1e-12 * np.abs(want).max())


def test_one_hot_responsibilities_give_per_cluster_statistics():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(90, 2))
    labels = rng.integers(0, 3, size=90)
    w, mu, cov, nk = m_step_fn(2)(X, np.eye(3)[labels])
    for j in range(3):
        Xj = X[labels == j]
        np.testing.assert_allclose(nk[j], len(Xj))
        np.testing.assert_allclose(w[j], len(Xj) / 90)
        np.testing.assert_allclose(mu[j], Xj.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(cov[j], np.cov(Xj.T, bias=True), rtol=1e-10, atol=1e-14)


def test_reg_covar_is_added_to_the_diagonal():
    X = np.random.default_rng(0).normal(size=(30, 2))
    resp = np.random.default_rng(1).dirichlet([1.0, 1.0], size=30)
    cov0 = m_step_fn(2, 0.0)(X, resp)[2]
    cov1 = m_step_fn(2, 0.25)(X, resp)[2]
    np.testing.assert_allclose(cov1 - cov0, 0.25 * np.stack([np.eye(2)] * 2), atol=1e-14)


@pytest.mark.parametrize(("k", "d"), [(2, 2), (3, 3)])
def test_closed_form_m_step_is_stationary_point_of_lagrangian(k, d):
    """dLagrangian/d(pi, mu, Sigma) = 0 at the M-step output, computed by pytensor.grad."""
    params, _ = problem(k, d)
    X = np.random.default_rng(5).normal(scale=3.0, size=(80, d))
    # Responsibilities from an E step at theta_old = params.
    Xs, w, mu, cov, wlp = weighted_log_phi(d)
    resp = compile_fn([Xs, w, mu, cov], graph.e_step(wlp).resp)(
        X, params.weights, params.means, params.covariances
    )
    w_new, mu_new, cov_new, _ = m_step_fn(d)(X, resp)
    # Q(theta, theta_old) - lambda (1^T pi - 1), lambda = N.
    g = pt.matrix("resp")
    q = graph.q_value(g, wlp)
    lagrangian = q - X.shape[0] * (w.sum() - 1.0)
    grads = pytensor.grad(lagrangian, [w, mu, cov])
    gw, gmu, gcov = compile_fn([Xs, g, w, mu, cov], grads)(X, resp, w_new, mu_new, cov_new)
    scale = X.shape[0]
    np.testing.assert_allclose(gw, 0.0, atol=1e-9 * scale)
    np.testing.assert_allclose(gmu, 0.0, atol=1e-9 * scale)
    np.testing.assert_allclose(gcov, 0.0, atol=1e-9 * scale)
    # And it is a maximum: moving any parameter lowers Q.
    qf = compile_fn([Xs, g, w, mu, cov], q)
    q_star = qf(X, resp, w_new, mu_new, cov_new)
    assert qf(X, resp, w_new, mu_new + 0.1, cov_new) < q_star
    assert qf(X, resp, w_new, mu_new, cov_new * 1.1) < q_star


@pytest.mark.parametrize(("k", "d"), GRID)
def test_log_likelihood_equals_q_plus_entropy_after_e_step(k, d):
    """ln p(X|theta) = Q(theta, theta) + H(q) when q = p(Z|X, theta)."""
    params, X = problem(k, d)
    Xs, w, mu, cov, wlp = weighted_log_phi(d)
    step = graph.e_step(wlp)
    q = graph.q_value(step.resp, wlp)
    h = graph.entropy(step.resp, step.log_resp)
    f = compile_fn(
        [Xs, w, mu, cov],
        [
            graph.log_likelihood(step.log_norm),
            graph.lower_bound(q, h),
            h,
            graph.kl_divergence(step.resp, step.log_resp, step.log_resp),
        ],
    )
    ll, lb, h_val, kl = f(X, params.weights, params.means, params.covariances)
    np.testing.assert_allclose(ll, lb, rtol=1e-11)
    assert h_val >= 0.0
    assert kl == pytest.approx(0.0, abs=1e-12)


def test_entropy_and_kl_handle_exact_zeros():
    r = pt.matrix("r")
    lr = pt.matrix("lr")
    lp = pt.matrix("lp")
    f = compile_fn([r, lr, lp], [graph.entropy(r, lr), graph.kl_divergence(r, lr, lp)])
    resp = np.array([[1.0, 0.0], [0.5, 0.5]])
    with np.errstate(divide="ignore"):
        log_resp = np.log(resp)
    log_p = np.log(np.array([[0.9, 0.1], [0.25, 0.75]]))
    h, kl = f(resp, log_resp, log_p)
    np.testing.assert_allclose(h, np.log(2.0))
    want = np.log(1 / 0.9) + 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)
    np.testing.assert_allclose(kl, want)


def test_pivot_ratios_flag_singular_and_are_scale_free():
    cov = pt.tensor3("cov")
    f = compile_fn([cov], graph.pivot_ratios(graph.cholesky_factors(cov), cov))
    good = np.array([[[4.0, 1.0], [1.0, 1.0]]])
    scaled = good * np.array([1e6, 1e-3])[:, None] * np.array([1e6, 1e-3])[None, :]
    np.testing.assert_allclose(f(good), f(scaled), rtol=1e-10)
    np.testing.assert_allclose(f(good), [0.75])
    singular = np.array([[[16.0, 16.0], [16.0, 16.0]]])
    assert not f(singular)[0] >= 1e-12


def test_regularization_gap_zero_without_reg_and_positive_with():
    cov, best, scatter = pt.tensor3("cov"), pt.tensor3("best"), pt.tensor3("scatter")
    nk = pt.vector("nk")
    reg = pt.scalar("reg")
    f = compile_fn(
        [nk, scatter, cov, best, reg], graph.regularization_gap(nk, scatter, cov, best, reg)
    )
    s = np.array([[[2.0, 0.3], [0.3, 1.0]]])
    n = np.array([10.0])
    assert f(n, 10.0 * s, s, s, 0.0) == 0.0
    eps = 0.1
    gap = f(n, 10.0 * s, s + eps * np.eye(2), s, eps)
    lam = np.linalg.eigvalsh(s[0])
    want = 5.0 * np.sum(np.log1p(eps / lam) + lam / (lam + eps) - 1.0)
    np.testing.assert_allclose(gap, want, rtol=1e-10)
    assert gap > 0
    singular = np.array([[[1.0, 1.0], [1.0, 1.0]]])
    assert f(n, 10.0 * singular, singular + eps * np.eye(2), singular, eps) == np.inf


# ---------------------------------------------------------------- sufficient statistics


def chunk_statistics_fn(r, k, d):
    Xs = pt.matrix("X", shape=(None, d))
    sw = pt.vector("sample_weight")
    w = pt.tensor("weights", shape=(r, k))
    mu = pt.tensor("means", shape=(r, k, d))
    cov = pt.tensor("covariances", shape=(r, k, d, d))
    st = graph.chunk_statistics(Xs, sw, w, mu, graph.factorize(cov))
    f = compile_fn([Xs, sw, w, mu, cov], [x for x in st if x is not mu])
    return lambda *args: SufficientStats(*f(*args)[:3], args[3], *f(*args)[3:])


@pytest.mark.parametrize(("k", "d"), GRID)
def test_chunk_statistics_match_numpy_from_scipy_responsibilities(k, d):
    params, X = problem(k, d)
    sw = np.random.default_rng(7).uniform(0.0, 3.0, size=len(X))
    st = chunk_statistics_fn(1, k, d)(
        X, sw, params.weights[None], params.means[None], params.covariances[None]
    )
    dens = scipy_log_phi(params, X) + np.log(params.weights)
    log_norm = logsumexp(dens, axis=1)
    resp = np.exp(dens - log_norm[:, None])
    want = statistics_of(X, resp, params.means, sw)
    np.testing.assert_allclose(st.nk[0], want.nk, rtol=1e-10)
    np.testing.assert_allclose(st.s1[0], want.s1, rtol=1e-9, atol=1e-9 * np.abs(want.s1).max())
    np.testing.assert_allclose(st.s2[0], want.s2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(st.log_likelihood[0], sw @ log_norm, rtol=1e-11)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(resp > 0, resp * np.log(resp), 0.0).sum(axis=1)
    np.testing.assert_allclose(st.entropy[0], sw @ h, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(st.total_weight, sw.sum(), rtol=1e-14)


def test_restarts_batched_give_each_restart_its_own_statistics():
    a, X = problem(3, 2, seed=1)
    b, _ = problem(3, 2, seed=2)
    f1, f2 = chunk_statistics_fn(1, 3, 2), chunk_statistics_fn(2, 3, 2)
    sw = np.ones(len(X))
    both = f2(
        X,
        sw,
        np.stack([a.weights, b.weights]),
        np.stack([a.means, b.means]),
        np.stack([a.covariances, b.covariances]),
    )
    for r, p in enumerate((a, b)):
        one = f1(X, sw, p.weights[None], p.means[None], p.covariances[None])
        for name in ("nk", "s1", "s2", "log_likelihood", "entropy"):
            np.testing.assert_allclose(
                getattr(both, name)[r], getattr(one, name)[0], rtol=1e-12, atol=1e-12
            )


def test_chunk_statistics_of_disjoint_rows_add_up():
    params, X = problem(3, 2, n=90)
    f = chunk_statistics_fn(1, 3, 2)
    theta = (params.weights[None], params.means[None], params.covariances[None])
    whole = f(X, np.ones(90), *theta)
    parts = [f(X[i : i + 7], np.ones(len(X[i : i + 7])), *theta) for i in range(0, 90, 7)]
    summed = parts[0]
    for p in parts[1:]:
        summed = combine(summed, p)
    for name in ("nk", "s1", "s2", "log_likelihood", "entropy", "total_weight"):
        np.testing.assert_allclose(getattr(summed, name), getattr(whole, name), rtol=1e-12)


def test_m_step_does_not_depend_on_the_shift():
    """Moments about any shift c_k give the same M step (the shift only conditions the sums)."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(50, 2)) + 1e3
    resp = rng.dirichlet([1.0, 1.0], size=50)
    f = m_step_fn(2)
    near = f(X, resp, np.full((2, 2), 1e3) + rng.normal(size=(2, 2)))
    elsewhere = f(X, resp, X[:2] + rng.normal(scale=3.0, size=(2, 2)))
    for a, b in zip(near, elsewhere, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11)
    # About the origin, 1e3 away, the raw moments cancel: digits are lost (what the shift
    # exists to prevent).
    origin = f(X, resp, np.zeros((2, 2)))
    assert np.abs(origin[2] - near[2]).max() > 1e-13


@pytest.mark.parametrize(("k", "d"), GRID)
def test_q_from_statistics_equals_the_direct_sum(k, d):
    """Q(theta_new, theta_old) in closed form from (N_k, W_k) = sum_n gamma [ln pi + ln phi]."""
    old, X = problem(k, d)
    resp = np.exp(
        scipy_log_phi(old, X)
        + np.log(old.weights)
        - logsumexp(scipy_log_phi(old, X) + np.log(old.weights), axis=1)[:, None]
    )
    new = make_params(k, d, seed=9)
    st = statistics_of(X, resp, new.means)
    scatter = st.s2  # the second moments about theta's own means
    nk, W, w, cov = pt.vector("nk"), pt.tensor3("W"), pt.vector("w"), pt.tensor3("cov")
    f = compile_fn(
        [nk, W, w, cov], graph.q_value_from_statistics(nk, W, w, graph.cholesky_factors(cov))
    )
    got = f(st.nk, scatter, new.weights, new.covariances)
    want = (resp * (scipy_log_phi(new, X) + np.log(new.weights))).sum()
    np.testing.assert_allclose(got, want, rtol=1e-11)
