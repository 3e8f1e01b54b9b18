import numpy as np
import pytest
from scipy.special import logsumexp, softmax
from scipy.stats import multivariate_normal

from bgmm import GMMParams, fit_em, load_old_faithful, simulate
from bgmm.em.uncertainty import standard_errors, to_unconstrained

TRUTH = GMMParams.from_arrays(
    [0.35, 0.65], [[0.0, 0.0], [4.0, 2.0]], [[[1.0, 0.4], [0.4, 0.8]], [[0.6, -0.1], [-0.1, 1.0]]]
)


def numpy_log_likelihood(phi, X, k, d):
    """ln p(X | theta(phi)) with scipy, independent of the PyTensor graph."""
    w = softmax(np.append(phi[: k - 1], 0.0))
    mu = phi[k - 1 : k - 1 + k * d].reshape(k, d)
    rows, cols = np.tril_indices(d)
    packed = phi[k - 1 + k * d :].reshape(k, rows.size)
    chol = np.zeros((k, d, d))
    chol[:, rows, cols] = np.where(rows == cols, np.exp(packed), packed)
    cov = chol @ chol.transpose(0, 2, 1)
    lp = np.stack([multivariate_normal(mu[j], cov[j]).logpdf(X) for j in range(k)], axis=1)
    return logsumexp(lp + np.log(w), axis=1).sum()


def numerical_hessian(f, x, h=1e-4):
    n = x.size
    H = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            e_i, e_j = np.eye(n)[i] * h, np.eye(n)[j] * h
            H[i, j] = (
                f(x + e_i + e_j) - f(x + e_i - e_j) - f(x - e_i + e_j) + f(x - e_i - e_j)
            ) / (4 * h * h)
    return H


def test_observed_information_matches_numerical_hessian():
    data = simulate(TRUTH, 120, random_state=3).data
    em = fit_em(data, 2, random_state=0)
    se = standard_errors(em.params, data)
    X = np.asarray(data.values) - np.asarray(data.values).mean(axis=0)
    shifted = GMMParams(
        em.weights, em.means - np.asarray(data.values).mean(axis=0), em.covariances
    )
    H = numerical_hessian(lambda p: numpy_log_likelihood(p, X, 2, 2), to_unconstrained(shifted))
    np.testing.assert_allclose(se.information, -H, rtol=1e-4, atol=1e-4 * np.abs(H).max())


def test_weight_standard_error_matches_binomial_for_separated_components():
    data = load_old_faithful()
    em = fit_em(data, 2, random_state=0)
    se = standard_errors(em.params, data)
    w = em.weights[0]
    binomial = np.sqrt(w * (1 - w) / data.n_samples)  # memberships are nearly certain here
    np.testing.assert_allclose(se.weights, binomial, rtol=0.05)
    assert se.means.shape == (2, 2) and se.covariances.shape == (2, 2, 2)
    np.testing.assert_allclose(se.covariances, se.covariances.transpose(0, 2, 1))


def wald_coverage(n_rep, seed0=1000):
    hits = []
    for rep in range(n_rep):
        data = simulate(TRUTH, 400, random_state=seed0 + rep).data
        em = fit_em(
            data,
            2,
            weights_init=TRUTH.weights,
            means_init=TRUTH.means,
            covariances_init=TRUTH.covariances,
        )
        se = standard_errors(em.params, data)
        est = np.concatenate([em.weights, em.means.ravel(), em.covariances.ravel()])
        sd = np.concatenate([se.weights, se.means.ravel(), se.covariances.ravel()])
        truth = np.concatenate([TRUTH.weights, TRUTH.means.ravel(), TRUTH.covariances.ravel()])
        hits.append(np.abs(est - truth) <= 1.959964 * sd)
    return np.mean(hits, axis=0)


@pytest.mark.slow  # 50 s; the SEs are checked against a numerical Hessian in the default suite
def test_wald_intervals_cover_the_truth_at_the_nominal_rate():
    coverage = wald_coverage(150)
    assert 0.92 <= coverage.mean() <= 0.975, coverage
    assert np.all(coverage >= 0.87), coverage


@pytest.mark.slow
def test_wald_coverage_with_many_replicates():
    coverage = wald_coverage(1000, seed0=50_000)
    assert 0.935 <= coverage.mean() <= 0.965, coverage
    assert np.all(coverage >= 0.91), coverage


def test_not_a_maximum_is_a_clear_error():
    data = simulate(TRUTH, 120, random_state=3).data
    far = GMMParams.from_arrays([0.5, 0.5], [[10.0, 10.0], [-10.0, -10.0]], [np.eye(2), np.eye(2)])
    with pytest.raises(ValueError, match="observed information is not positive definite"):
        standard_errors(far, data)


@pytest.mark.parametrize("name", ["VVI", "EEE", "VEV"])
def test_family_standard_errors_match_a_numerical_hessian(name):
    """The family's information by autodiff and the chain rule, against finite differences.

    Standard errors of theta do not depend on the coordinates at a maximum, so the test's
    own coordinates of the family (tests/covariance) check the package's chart.
    """
    from tests.covariance.test_families import family_perturbation

    data = load_old_faithful()
    X = np.asarray(data.values) - np.asarray(data.values).mean(axis=0)
    em = fit_em(X, 2, covariance_type=name, reg_covar=0.0, random_state=0)
    se = standard_errors(em.params, X, covariance_type=name)
    size, build = family_perturbation(name, em.covariances)

    def theta(phi):
        w = softmax(np.append(phi[:1], 0.0))
        return w, phi[1:5].reshape(2, 2), build(phi[5:])

    def log_lik(phi):
        w, mu, cov = theta(phi)
        lp = np.stack([multivariate_normal(mu[j], cov[j]).logpdf(X) for j in range(2)], axis=1)
        return logsumexp(lp + np.log(w), axis=1).sum()

    w = em.weights
    phi0 = np.concatenate([[np.log(w[0] / w[1])], em.means.ravel(), np.zeros(size)])
    info = -numerical_hessian(log_lik, phi0)
    h = 1e-6
    jac = np.stack(
        [
            (
                np.concatenate([a.ravel() for a in theta(phi0 + h * e)])
                - np.concatenate([a.ravel() for a in theta(phi0 - h * e)])
            )
            / (2 * h)
            for e in np.eye(phi0.size)
        ],
        axis=1,
    )
    want = np.sqrt(np.clip(np.diag(jac @ np.linalg.inv(info) @ jac.T), 0.0, None))
    got = np.concatenate([se.weights, se.means.ravel(), se.covariances.ravel()])
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-8)
