r"""EM with missing coordinates (missing at random): the E step of each missingness pattern.

The missing coordinates of a row are one more latent variable. For a row :math:`x_n` whose
coordinates :math:`o` are observed and :math:`m` missing, and a component :math:`k`,

.. math::
    p(x_{n,o} \mid z_n = k) = \mathcal{N}(x_{n,o} \mid \mu_{k,o}, \Sigma_{k,oo}), \qquad
    x_{n,m} \mid x_{n,o}, z_n = k \sim \mathcal{N}(\hat x_{nk,m}, C_{k,m}),

.. math::
    \hat x_{nk,m} = \mu_{k,m} + \Sigma_{k,mo} \Sigma_{k,oo}^{-1} (x_{n,o} - \mu_{k,o}), \qquad
    C_{k,m} = \Sigma_{k,mm} - \Sigma_{k,mo} \Sigma_{k,oo}^{-1} \Sigma_{k,om}.

The E step's responsibilities come from the observed coordinates' densities, and the
statistics of :mod:`bgmm.em.stats` take the expected complete rows: with
:math:`d_{nk} = \hat x_{nk} - c_k` (the observed coordinates of :math:`\hat x_{nk}` are
:math:`x_{n,o}`),

.. math::
    S^{(1)}_k = \sum_n w_n \gamma_{nk} d_{nk}, \qquad
    S^{(2)}_k = \sum_n w_n \gamma_{nk} \left( d_{nk} d_{nk}^T + \tilde C_{nk} \right),

:math:`\tilde C_{nk}` being :math:`C_{k,m}` in the missing block and zero elsewhere. The M
step (:func:`bgmm.em.step.m_step`, every covariance family) is unchanged. The
log-likelihood is the observed-data one, :math:`\sum_n w_n \ln p(x_{n,o} \mid \theta)`,
and the entropy of :math:`q(z, x_m)` adds to the memberships' the conditional Gaussians'
:math:`\tfrac12 \left(|m| (1 + \ln 2\pi) + \ln|C_{k,m}|\right)`, so that the history's
:math:`\ln p = L + \mathrm{KL}` holds with the expectations over both latent variables
(``docs/derivation.md``, "Missing values").

Rows that share a pattern (the same observed coordinates) share :math:`\Sigma_{k,oo}`'s
factor, the regression :math:`\Sigma_{k,mo}\Sigma_{k,oo}^{-1}` and :math:`C_{k,m}`: they are
computed once per pattern and component (:func:`pattern_factors`), in the full
dimension, by embedding :math:`\Sigma_{k,oo}` as
:math:`\tilde\Sigma = O \Sigma_k O + (I - O)` with :math:`O` the diagonal 0/1 matrix of
the observed coordinates (its Cholesky factor is :math:`\Sigma_{k,oo}`'s, with ones on the
missing diagonal). Every pattern then has the same shapes, and one compiled graph serves
any set of patterns; each row reads its pattern's matrices.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytensor.tensor as pt

from bgmm.em import graph
from bgmm.em.stats import SufficientStats

__all__ = [
    "PatternFactors",
    "Patterns",
    "chunk_statistics",
    "complete_statistics",
    "missingness_patterns",
    "observed_log_density",
    "pattern_factors",
    "row_e_step",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


def _sum(x, axis=None):
    """``x.sum(axis)`` in ``x``'s dtype (JAX would sum float32 as float64, past the casts)."""
    return x.sum(axis=axis, acc_dtype=x.dtype)


class Patterns(NamedTuple):  # numpydoc ignore=PR01
    """The missingness patterns of a data set (host side).

    Attributes
    ----------
    observed : ndarray of bool, shape (n_patterns, n_features)
        Each pattern's observed coordinates (sorted; a pattern with every coordinate
        observed is the complete rows).
    index : ndarray of int64, shape (n_samples,)
        The pattern of each row.
    """

    observed: np.ndarray
    index: np.ndarray

    @property
    def n_patterns(self) -> int:
        """The number of distinct patterns."""
        return self.observed.shape[0]


def missingness_patterns(values: np.ndarray) -> Patterns:
    """The patterns of NaN in ``values`` and the pattern of each row.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        The data, NaN where missing.

    Returns
    -------
    Patterns
        The distinct observed-coordinate masks and each row's.
    """
    mask = ~np.isnan(values)
    observed, index = np.unique(mask, axis=0, return_inverse=True)
    return Patterns(observed, np.asarray(index, dtype=np.int64).reshape(-1))


class PatternFactors(NamedTuple):  # numpydoc ignore=PR01
    r"""What the E step of a pattern needs, per (restart, pattern, component).

    Attributes
    ----------
    inv_chol : tensor of shape (R, P, K, d, d)
        :math:`\tilde L^{-1}`, the inverse Cholesky factor of the embedded
        :math:`\Sigma_{k,oo}`.
    log_det : tensor of shape (R, P, K)
        :math:`\ln|\Sigma_{k,oo}|`.
    gain : tensor of shape (R, P, K, d, d)
        :math:`I + (I - O)\Sigma_k O \tilde\Sigma^{-1} O`: maps the observed differences
        :math:`O(x_n - \mu_k)` to :math:`\hat x_{nk} - \mu_k`.
    cond_cov : tensor of shape (R, P, K, d, d)
        :math:`\tilde C_k`: :math:`C_{k,m}` in the missing block, zero elsewhere.
    cond_log_det : tensor of shape (R, P, K)
        :math:`\ln|C_{k,m}| = \ln|\Sigma_k| - \ln|\Sigma_{k,oo}|` (0 with nothing missing).
    n_observed : tensor of shape (P,)
        :math:`|o|` of each pattern.
    """

    inv_chol: pt.TensorVariable
    log_det: pt.TensorVariable
    gain: pt.TensorVariable
    cond_cov: pt.TensorVariable
    cond_log_det: pt.TensorVariable
    n_observed: pt.TensorVariable


def pattern_factors(covariances, factors: graph.Factorization, observed) -> PatternFactors:
    r"""Each pattern's factor of :math:`\Sigma_{k,oo}`, its regression and :math:`C_{k,m}`.

    .. math::
        \tilde\Sigma = O \Sigma_k O + (I - O), \quad
        G = (I - O) \Sigma_k O \tilde\Sigma^{-1} O, \quad
        \tilde C = (I - O)(\Sigma_k - \Sigma_k O \tilde\Sigma^{-1} O \Sigma_k)(I - O)

    Parameters
    ----------
    covariances : tensor of shape (R, K, d, d)
        :math:`\Sigma_k` of every restart.
    factors : graph.Factorization
        ``graph.factorize(covariances)`` (for :math:`\ln|\Sigma_k|`).
    observed : tensor of shape (P, d)
        1.0 where a pattern's coordinate is observed, 0.0 where missing.

    Returns
    -------
    PatternFactors
        Shapes ``(R, P, K, ...)``.
    """
    d = covariances.shape[-1]
    o = observed[None, :, None, :]  # (1, P, 1, d)
    m = 1.0 - o
    sigma = covariances[:, None]  # (R, 1, K, d, d)
    eye = pt.eye(d, dtype=covariances.dtype)
    oo = o[..., :, None] * o[..., None, :]
    embedded = sigma * oo + eye * m[..., None, :]
    chol = graph.cholesky_factors(embedded)
    inv_chol = graph.inverse_cholesky(chol)
    log_det_oo = graph.log_det(chol)
    # O Sigma~^{-1} O: Sigma_oo^{-1} in the observed block, zero elsewhere.
    precision_oo = (pt.swapaxes(inv_chol, -1, -2) @ inv_chol) * oo
    regression = m[..., :, None] * (sigma @ precision_oo)  # Sigma_mo Sigma_oo^{-1}, embedded
    conditional = sigma - sigma @ precision_oo @ sigma
    cond_cov = conditional * (m[..., :, None] * m[..., None, :])
    return PatternFactors(
        inv_chol=inv_chol,
        log_det=log_det_oo,
        gain=eye + regression,
        cond_cov=0.5 * (cond_cov + pt.swapaxes(cond_cov, -1, -2)),
        cond_log_det=factors.log_det[:, None, :] - log_det_oo,
        n_observed=_sum(observed, -1),
    )


class _RowTerms(NamedTuple):
    step: graph.EStep  # over the components, (R, n, K)
    diff: pt.TensorVariable  # x^_nk - mu_k, (R, n, K, d)


def _observed_differences(X, pattern, observed, means):
    r""":math:`O(x_n - \mu_k)`, ``(R, n, K, d)``: zero in the missing coordinates."""
    o = observed[pattern]  # (n, d)
    return o[None, :, None, :] * (X[None, :, None, :] - means[:, None, :, :])


def _log_density(r, pattern, pf: PatternFactors):
    r""":math:`\ln \phi_k(x_{n,o})` from the observed differences, ``(R, n, K)``."""
    white = (pf.inv_chol[:, pattern] @ r[..., None])[..., 0]
    return -0.5 * (
        pf.n_observed[pattern][None, :, None] * _LOG_2PI
        + pf.log_det[:, pattern]
        + _sum(white**2, -1)
    )


def observed_log_density(X, pattern, observed, means, covariances):
    r"""Log density of each row's observed coordinates under each component.

    .. math::
        \ln \phi_k(x_{n,o}) = -\tfrac{|o|}{2} \ln 2\pi - \tfrac12 \ln|\Sigma_{k,oo}|
        - \tfrac12 (x_{n,o} - \mu_{k,o})^T \Sigma_{k,oo}^{-1} (x_{n,o} - \mu_{k,o})

    Written through the inverse and the determinant of the embedded
    :math:`\tilde\Sigma` rather than its Cholesky factor: the form the observed
    information (:func:`bgmm.em.standard_errors`) differentiates twice, whose graph
    compiles in a second where the factor's second derivatives take a minute. EM's own E
    step uses the factor; a test checks that the two agree.

    Parameters
    ----------
    X : tensor of shape (n, d)
        The rows, missing values replaced by 0.
    pattern : int tensor of shape (n,)
        Each row's pattern.
    observed : tensor of shape (P, d)
        1.0 where each pattern's coordinate is observed.
    means : tensor of shape (K, d)
        :math:`\mu_k`.
    covariances : tensor of shape (K, d, d)
        :math:`\Sigma_k`.

    Returns
    -------
    tensor of shape (n, K)
        :math:`\ln \phi_k(x_{n,o})` (the full density where nothing is missing).
    """
    d = covariances.shape[-1]
    o = observed[:, None, :]  # (P, 1, d)
    oo = o[..., :, None] * o[..., None, :]
    embedded = (
        covariances[None] * oo + pt.eye(d, dtype=covariances.dtype) * (1.0 - o)[..., None, :]
    )
    precision = pt.linalg.inv(embedded) * oo  # Sigma_oo^{-1}, embedded: (P, K, d, d)
    log_det = pt.log(pt.linalg.det(embedded))  # ln|Sigma_oo|
    r = observed[pattern][:, None, :] * (X[:, None, :] - means[None])  # (n, K, d)
    mahalanobis = (r[..., :, None] * precision[pattern] * r[..., None, :]).sum(axis=(-2, -1))
    n_observed = observed.sum(axis=-1)[pattern][:, None]
    return -0.5 * (n_observed * _LOG_2PI + log_det[pattern] + mahalanobis)


def _row_terms(X, pattern, observed, weights, means, pf: PatternFactors) -> _RowTerms:
    """Responsibilities from the observed coordinates, and the expected differences."""
    r = _observed_differences(X, pattern, observed, means)  # (R, n, K, d)
    log_phi = _log_density(r, pattern, pf)
    step = graph.e_step(log_phi + pt.log(weights)[:, None, :], axis=-1)
    diff = (pf.gain[:, pattern] @ r[..., None])[..., 0]
    return _RowTerms(step, diff)


class MissingStats(NamedTuple):  # numpydoc ignore=PR01
    r"""A chunk's statistics before the conditional covariances are added.

    Attributes
    ----------
    stats : SufficientStats
        With :math:`S^{(2)}` of the expected differences alone, and the memberships'
        entropy alone.
    n_pk : tensor of shape (P, R, K)
        :math:`\sum_{n \in p} w_n \gamma_{nk}`, what :func:`complete_statistics` weights
        each pattern's :math:`\tilde C_k` and conditional entropy by.
    """

    stats: SufficientStats
    n_pk: pt.TensorVariable


def chunk_statistics(
    X, pattern, observed, sample_weight, weights, means, pf: PatternFactors
) -> MissingStats:
    r"""The E step on a chunk of rows with missing coordinates, and its statistics.

    Parameters
    ----------
    X : tensor of shape (n, d)
        The rows, missing values replaced by 0 (they are never read).
    pattern : int tensor of shape (n,)
        Each row's pattern.
    observed : tensor of shape (P, d)
        1.0 where each pattern's coordinate is observed.
    sample_weight : tensor of shape (n,) or None
        :math:`w_n`; None for unit weights.
    weights : tensor of shape (R, K)
        :math:`\pi`.
    means : tensor of shape (R, K, d)
        :math:`\mu_k`, also the shift :math:`c_k`.
    pf : PatternFactors
        :func:`pattern_factors` at the covariances.

    Returns
    -------
    MissingStats
        The statistics, to be summed over chunks and completed by
        :func:`complete_statistics`.
    """
    terms = _row_terms(X, pattern, observed, weights, means, pf)
    resp, n_rows = terms.step.resp, X.shape[0]
    h = -_sum(pt.switch(pt.gt(resp, 0.0), resp * terms.step.log_resp, 0.0), -1)
    log_norm = terms.step.log_norm
    if sample_weight is None:
        total_weight = pt.cast(n_rows, X.dtype)
    else:
        resp = resp * sample_weight[None, :, None]
        log_norm, h = log_norm * sample_weight, h * sample_weight
        total_weight = _sum(sample_weight)
    weighted_diff = resp[..., None] * terms.diff  # (R, n, K, d)
    s2 = pt.swapaxes(weighted_diff, 1, 2).transpose(0, 1, 3, 2) @ pt.swapaxes(terms.diff, 1, 2)
    n_patterns = observed.shape[0]
    zeros = pt.zeros((n_patterns, *weights.shape), dtype=X.dtype)
    n_pk = pt.inc_subtensor(zeros[pattern], pt.cast(pt.swapaxes(resp, 0, 1), X.dtype))
    stats = SufficientStats(
        nk=_sum(resp, 1),
        s1=_sum(weighted_diff, 1),
        s2=s2,
        shift=means,
        log_likelihood=_sum(log_norm, -1),
        entropy=_sum(h, -1),
        total_weight=total_weight,
    )
    return MissingStats(stats, n_pk)


def complete_statistics(part: MissingStats, pf: PatternFactors, observed) -> SufficientStats:
    r"""Add each pattern's conditional covariance and conditional entropy to the sums.

    .. math::
        S^{(2)}_k \mathrel{+}= \sum_p N_{pk} \tilde C_{pk}, \qquad
        H \mathrel{+}= \sum_p \sum_k N_{pk} \tfrac12 \left(|m_p|(1 + \ln 2\pi) +
        \ln|C_{pk}|\right)

    Parameters
    ----------
    part : MissingStats
        Summed over every chunk.
    pf : PatternFactors
        Of the same E step.
    observed : tensor of shape (P, d)
        1.0 where each pattern's coordinate is observed.

    Returns
    -------
    SufficientStats
        The statistics of :mod:`bgmm.em.stats` for the expected complete data.
    """
    stats = part.stats
    n_pk = pt.swapaxes(part.n_pk, 0, 1)  # (R, P, K)
    extra = _sum(n_pk[..., None, None] * pf.cond_cov, 1)
    n_missing = observed.shape[-1] - _sum(observed, -1)  # (P,)
    per_pattern = 0.5 * (n_missing[None, :, None] * (1.0 + _LOG_2PI) + pf.cond_log_det)
    # A complete pattern has no missing block: its ln|C| is 0 by definition (the difference
    # of two log determinants would leave round-off).
    per_pattern = pt.switch(pt.gt(n_missing, 0)[None, :, None], per_pattern, 0.0)
    entropy = stats.entropy + _sum(n_pk * per_pattern, (1, 2))
    dtype = stats.s2.dtype
    return stats._replace(
        s2=pt.cast(stats.s2 + extra, dtype), entropy=pt.cast(entropy, stats.entropy.dtype)
    )


class RowEStep(NamedTuple):  # numpydoc ignore=PR01
    r"""The E step on rows with missing coordinates, with the imputation it implies.

    Attributes
    ----------
    log_resp : tensor of shape (n, K)
        :math:`\ln \gamma_{nk}` from the observed coordinates.
    log_norm : tensor of shape (n,)
        :math:`\ln p(x_{n,o} \mid \theta)`.
    imputed : tensor of shape (n, d)
        :math:`E[x_n \mid x_{n,o}] = \sum_k \gamma_{nk} \hat x_{nk}` (the observed values
        where observed).
    variance : tensor of shape (n, d)
        :math:`\mathrm{Var}[x_{nj} \mid x_{n,o}] = \sum_k \gamma_{nk}\left(C_{k,jj} +
        (\hat x_{nkj} - E[x_{nj} \mid x_{n,o}])^2\right)` (0 where observed).
    """

    log_resp: pt.TensorVariable
    log_norm: pt.TensorVariable
    imputed: pt.TensorVariable
    variance: pt.TensorVariable


def row_e_step(X, pattern, observed, weights, means, covariances) -> RowEStep:
    r"""The E step of one mixture on rows with missing coordinates, and the imputation.

    Parameters
    ----------
    X : tensor of shape (n, d)
        The rows, missing values replaced by 0.
    pattern : int tensor of shape (n,)
        Each row's pattern.
    observed : tensor of shape (P, d)
        1.0 where each pattern's coordinate is observed.
    weights : tensor of shape (K,)
        :math:`\pi`.
    means : tensor of shape (K, d)
        :math:`\mu_k`.
    covariances : tensor of shape (K, d, d)
        :math:`\Sigma_k`.

    Returns
    -------
    RowEStep
        Log responsibilities, the observed-data log-likelihood of each row, the imputed
        values and their conditional variances.
    """
    factors = graph.factorize(covariances[None])
    pf = pattern_factors(covariances[None], factors, observed)
    terms = _row_terms(X, pattern, observed, weights[None], means[None], pf)
    resp = terms.step.resp[0]  # (n, K)
    expected = terms.diff[0] + means[None]  # x^_nk, (n, K, d)
    o = observed[pattern]
    # the observed values as they are (the sum over k would only round them)
    imputed = o * X + (1.0 - o) * (resp[..., None] * expected).sum(axis=1)
    cond_var = pt.diagonal(pf.cond_cov[0], axis1=-2, axis2=-1)[pattern]  # (n, K, d)
    # the law of total variance about the imputed value (no E[x^2] - E[x]^2 cancellation)
    spread = (expected - imputed[:, None, :]) ** 2
    variance = (resp[..., None] * (cond_var + spread)).sum(axis=1) * (1.0 - o)
    return RowEStep(terms.step.log_resp[0], terms.step.log_norm[0], imputed, variance)
