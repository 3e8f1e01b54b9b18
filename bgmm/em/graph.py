r"""Pure PyTensor graph builders, one per equation of the EM derivation.

Every function takes symbolic tensors and returns symbolic tensors; nothing is compiled,
validated or printed here (validation happens at the public entry points). Shapes follow
the ecosystem convention: ``X`` is ``(n_samples, n_features)`` and ``resp`` is
``(n_samples, n_components)``, the transposes of the derivation's :math:`X` (``l x N``)
and :math:`\gamma` (``K x N``). See ``docs/derivation.md`` for the equations.

Differences, not raw moments. The Mahalanobis distance of the E step and the statistics of
the M step (:mod:`bgmm.em.stats`) are both written through the differences
:math:`d_{kn} = x_n - \mu_k` and their whitened form :math:`y_{kn} = L_k^{-1} d_{kn}`
(:func:`whiten`), where :math:`\Sigma_k = L_k L_k^T`. Nothing squares a raw coordinate, so
a cluster far from the origin relative to its width loses no digits (the expansion
:math:`E[xx^T] - \mu\mu^T` would), and nothing of size ``(n_samples, n_features**2)`` is
formed: a chunk of rows costs ``(n_components, chunk, n_features)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytensor.tensor as pt
from pytensor.tensor.linalg import cholesky, solve_triangular

from bgmm.em.stats import SufficientStats

__all__ = [
    "EStep",
    "Factorization",
    "chunk_statistics",
    "cholesky_factors",
    "e_step",
    "entropy",
    "factorize",
    "inverse_cholesky",
    "kl_divergence",
    "log_det",
    "log_gaussian_density",
    "log_likelihood",
    "lower_bound",
    "pivot_ratios",
    "precisions",
    "q_value",
    "q_value_from_statistics",
    "regularization_gap",
    "weighted_log_density",
    "whiten",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


class EStep(NamedTuple):  # numpydoc ignore=PR01
    r"""The E step's outputs for a set of rows.

    Attributes
    ----------
    log_resp : tensor of shape (n_samples, ..., n_components)
        :math:`\ln \gamma_{nk}`.
    resp : tensor of shape (n_samples, ..., n_components)
        :math:`\gamma_{nk}`; each row sums to 1.
    log_norm : tensor of shape (n_samples, ...)
        :math:`\ln p(x_n \mid \theta)`.
    """

    log_resp: pt.TensorVariable
    resp: pt.TensorVariable
    log_norm: pt.TensorVariable


class Factorization(NamedTuple):  # numpydoc ignore=PR01
    r"""What an E step needs of the covariances, computed once per iteration.

    Attributes
    ----------
    chol : tensor of shape (..., n_features, n_features)
        :math:`L_k`, lower triangular, :math:`\Sigma_k = L_k L_k^T`.
    inv_chol : tensor of shape (..., n_features, n_features)
        :math:`L_k^{-1}`.
    log_det : tensor of shape (...)
        :math:`\ln|\Sigma_k|`.
    pivots : tensor of shape (...)
        Smallest relative Cholesky pivot (:func:`pivot_ratios`).
    """

    chol: pt.TensorVariable
    inv_chol: pt.TensorVariable
    log_det: pt.TensorVariable
    pivots: pt.TensorVariable


def cholesky_factors(covariances):
    r"""Lower Cholesky factors :math:`\Sigma_k = L_k L_k^T`.

    A matrix that is not positive definite gives NaN entries (PyTensor does not raise);
    ``pivot_ratios`` turns that into a per-component diagnostic.

    Parameters
    ----------
    covariances : tensor of shape (..., n_features, n_features)
        :math:`\Sigma_k`.

    Returns
    -------
    tensor of shape (..., n_features, n_features)
        :math:`L_k`, lower triangular.
    """
    return cholesky(covariances, lower=True, check_finite=False, on_error="nan")


def log_det(chol):
    r"""Log determinants from Cholesky factors, :math:`\ln|\Sigma_k| = 2 \sum_i \ln (L_k)_{ii}`.

    Parameters
    ----------
    chol : tensor of shape (..., n_features, n_features)
        :math:`L_k` (``cholesky_factors``).

    Returns
    -------
    tensor of shape (...)
        :math:`\ln|\Sigma_k|`.
    """
    # acc_dtype: PyTensor's JAX backend would return a float32 sum as float64.
    log_diagonal = pt.log(pt.diagonal(chol, axis1=-2, axis2=-1))
    return 2.0 * pt.sum(log_diagonal, axis=-1, acc_dtype=chol.dtype)


def inverse_cholesky(chol):
    r"""Inverse Cholesky factors :math:`L_k^{-1}`, by triangular solves against the identity.

    .. math::
        L_k L_k^{-1} = I

    Parameters
    ----------
    chol : tensor of shape (..., n_features, n_features)
        :math:`L_k` (``cholesky_factors``).

    Returns
    -------
    tensor of shape (..., n_features, n_features)
        :math:`L_k^{-1}`, lower triangular.
    """
    eye = pt.broadcast_to(pt.eye(chol.shape[-1], dtype=chol.dtype), chol.shape)
    return solve_triangular(chol, eye, lower=True, check_finite=False)


def precisions(chol):
    r"""Precision matrices :math:`\Lambda_k = \Sigma_k^{-1} = L_k^{-T} L_k^{-1}`.

    Parameters
    ----------
    chol : tensor of shape (..., n_features, n_features)
        :math:`L_k` (``cholesky_factors``).

    Returns
    -------
    tensor of shape (..., n_features, n_features)
        :math:`\Lambda_k`.
    """
    inv_chol = inverse_cholesky(chol)
    return pt.swapaxes(inv_chol, -1, -2) @ inv_chol


def pivot_ratios(chol, covariances):
    r"""Smallest relative Cholesky pivot of each covariance, a scale-free rank check.

    :math:`(L_k)_{ii}^2 / (\Sigma_k)_{ii}` is the share of feature *i*'s variance that the
    features before it do not explain (:math:`1 - R^2`). It is 1 for uncorrelated features
    and reaches 0 (or NaN, when the factorisation fails) when :math:`\Sigma_k` is singular.
    Rescaling a feature leaves it unchanged.

    Parameters
    ----------
    chol : tensor of shape (..., n_features, n_features)
        :math:`L_k` (``cholesky_factors``).
    covariances : tensor of shape (..., n_features, n_features)
        :math:`\Sigma_k`.

    Returns
    -------
    tensor of shape (...)
        :math:`\min_i (L_k)_{ii}^2 / (\Sigma_k)_{ii}`.
    """
    pivots = pt.diagonal(chol, axis1=-2, axis2=-1) ** 2
    variances = pt.diagonal(covariances, axis1=-2, axis2=-1)
    return (pivots / variances).min(axis=-1)


def factorize(covariances) -> Factorization:
    r"""Cholesky factor, its inverse, the log determinant and the pivots of each covariance.

    .. math::
        \Sigma_k = L_k L_k^T, \qquad \ln|\Sigma_k| = 2 \sum_i \ln (L_k)_{ii}

    Parameters
    ----------
    covariances : tensor of shape (..., n_features, n_features)
        :math:`\Sigma_k`.

    Returns
    -------
    Factorization
        ``chol``, ``inv_chol``, ``log_det`` and ``pivots``.
    """
    chol = cholesky_factors(covariances)
    return Factorization(
        chol=chol,
        inv_chol=inverse_cholesky(chol),
        log_det=log_det(chol),
        pivots=pivot_ratios(chol, covariances),
    )


def whiten(X, means, inv_chol):
    r"""Differences to every mean and their whitened form, component-major.

    .. math::
        d_{kn} = x_n - \mu_k, \qquad y_{kn} = L_k^{-1} d_{kn}, \qquad
        (x_n - \mu_k)^T \Sigma_k^{-1} (x_n - \mu_k) = \lVert y_{kn} \rVert^2

    The component comes first, so that the whitening here and the moments of
    ``chunk_statistics`` are plain batched matrix products over the components.

    Parameters
    ----------
    X : tensor of shape (n_samples, n_features)
        The data.
    means : tensor of shape (n_components, n_features)
        :math:`\mu_k`.
    inv_chol : tensor of shape (n_components, n_features, n_features)
        :math:`L_k^{-1}` (``inverse_cholesky``).

    Returns
    -------
    diff : tensor of shape (n_components, n_samples, n_features)
        :math:`d_{kn}`.
    white : tensor of shape (n_components, n_samples, n_features)
        :math:`y_{kn}`.
    """
    diff = X[None, :, :] - means[:, None, :]
    white = diff @ pt.swapaxes(inv_chol, -1, -2)
    return diff, white


def _log_density_from_white(white, log_dets, n_features: int):
    """``(n_components, n_samples)`` log densities from whitened differences."""
    mahalanobis = (white**2).sum(axis=-1)
    return -0.5 * (n_features * _LOG_2PI + log_dets[:, None] + mahalanobis)


def log_gaussian_density(X, means, chol):
    r"""Log density of every sample under every component, :math:`\ln \phi_k(x_n)`.

    .. math::
        \ln \phi_k(x) = -\tfrac{l}{2} \ln(2\pi) - \tfrac12 \ln|\Sigma_k|
                        - \tfrac12 \lVert L_k^{-1}(x - \mu_k) \rVert^2

    Parameters
    ----------
    X : tensor of shape (n_samples, n_features)
        The data, with a static number of features.
    means : tensor of shape (n_components, n_features)
        :math:`\mu_k`.
    chol : tensor of shape (n_components, n_features, n_features)
        Lower Cholesky factors of the covariances (``cholesky_factors``).

    Returns
    -------
    tensor of shape (n_samples, n_components)
        :math:`\ln \phi_k(x_n)`.
    """
    n_features = X.type.shape[1]
    if n_features is None:
        raise TypeError("X must have a static number of features (pt.matrix(shape=(None, d)))")
    _, white = whiten(X, means, inverse_cholesky(chol))
    return _log_density_from_white(white, log_det(chol), n_features).T


def weighted_log_density(log_phi, weights):
    r"""Add the log weights, :math:`\ln \pi_k + \ln \phi_k(x_n)`.

    Parameters
    ----------
    log_phi : tensor of shape (n_samples, ..., n_components)
        :math:`\ln \phi_k(x_n)` (``log_gaussian_density``).
    weights : tensor of shape (..., n_components)
        :math:`\pi_k`.

    Returns
    -------
    tensor of shape (n_samples, ..., n_components)
        :math:`\ln \pi_k \phi_k(x_n)`.
    """
    return log_phi + pt.log(weights)[None]


def e_step(weighted_log_phi, axis=-1) -> EStep:
    r"""Responsibilities and per-sample log-likelihoods (E step, in log space).

    .. math::
        \gamma_{nk} = \frac{\exp(a_{nk} - m_n)}{\sum_j \exp(a_{nj} - m_n)}, \quad
        \ln p(x_n \mid \theta) = m_n + \ln \textstyle\sum_j \exp(a_{nj} - m_n)

    with :math:`a_{nk} = \ln \pi_k + \ln \phi_k(x_n)` and :math:`m_n = \max_k a_{nk}`: one
    exponential per entry, and no underflow however far a sample is from every component.

    Parameters
    ----------
    weighted_log_phi : tensor of shape (n_samples, ..., n_components)
        :math:`\ln \pi_k \phi_k(x_n)` (``weighted_log_density``).
    axis : int, default -1
        The axis of the components; the others are sample and batch axes.

    Returns
    -------
    EStep
        ``log_resp``, ``resp`` (summing to 1 along ``axis``) and ``log_norm``
        (:math:`\ln p(x_n|\theta)`, without ``axis``).
    """
    top = pt.max(weighted_log_phi, axis=axis, keepdims=True)
    scaled = pt.exp(weighted_log_phi - top)
    total = scaled.sum(axis=axis, keepdims=True)
    log_norm = top + pt.log(total)
    return EStep(
        log_resp=weighted_log_phi - log_norm,
        resp=scaled / total,
        log_norm=pt.squeeze(log_norm, axis=axis),
    )


def log_likelihood(log_norm, sample_weight=None):
    r"""The log-likelihood, a (weighted) sum over samples.

    .. math::
        \ln p(X \mid \theta) = \sum_n w_n \ln \sum_k \pi_k \phi_k(x_n)

    Parameters
    ----------
    log_norm : tensor of shape (n_samples, ...)
        :math:`\ln p(x_n \mid \theta)` (``e_step``).
    sample_weight : tensor of shape (n_samples,), optional
        :math:`w_n`, repetition counts (1 by default).

    Returns
    -------
    tensor of shape (...)
        :math:`\ln p(X \mid \theta)`.
    """
    if sample_weight is None:
        return log_norm.sum(axis=0)
    extra = (None,) * (log_norm.ndim - 1)
    return (sample_weight[(slice(None), *extra)] * log_norm).sum(axis=0)


def entropy(resp, log_resp, sample_weight=None):
    r"""The entropy of the E step's distribution over the memberships.

    .. math::
        H(q) = -\sum_n w_n \sum_k \gamma_{nk} \ln \gamma_{nk} \quad (0 \ln 0 = 0)

    Parameters
    ----------
    resp : tensor of shape (n_samples, ..., n_components)
        :math:`\gamma`.
    log_resp : tensor of shape (n_samples, ..., n_components)
        :math:`\ln \gamma` (exact where :math:`\gamma` underflows).
    sample_weight : tensor of shape (n_samples,), optional
        :math:`w_n` (1 by default).

    Returns
    -------
    tensor of shape (...)
        :math:`H(q)`, summed over samples and components.
    """
    per_sample = -pt.switch(pt.gt(resp, 0.0), resp * log_resp, 0.0).sum(axis=-1)
    return log_likelihood(per_sample, sample_weight)


def chunk_statistics(X, sample_weight, weights, means, factors: Factorization) -> SufficientStats:
    r"""E step on a chunk of rows and its sufficient statistics, for a batch of mixtures.

    .. math::
        N_k = \sum_n w_n \gamma_{nk}, \quad
        S^{(1)}_k = \sum_n w_n \gamma_{nk} d_{nk}, \quad
        S^{(2)}_k = \sum_n w_n \gamma_{nk} d_{nk} d_{nk}^T, \quad d_{nk} = x_n - \mu_k

    with the log-likelihood and the entropy of the chunk (:mod:`bgmm.em.stats`). The shift of
    the moments is :math:`c_k = \mu_k`, the means of this E step.

    Parameters
    ----------
    X : tensor of shape (n_samples, n_features)
        A chunk of rows.
    sample_weight : tensor of shape (n_samples,) or None
        :math:`w_n`; None for unit weights (no array of ones is stored).
    weights : tensor of shape (n_restarts, n_components)
        :math:`\pi`, one mixture per restart.
    means : tensor of shape (n_restarts, n_components, n_features)
        :math:`\mu_k`, with a static shape.
    factors : Factorization
        ``factorize(covariances)`` of the covariances, shape ``(n_restarts, n_components, ...)``.

    Returns
    -------
    SufficientStats
        ``nk (R, K)``, ``s1 (R, K, d)``, ``s2 (R, K, d, d)``, ``shift (R, K, d)``,
        ``log_likelihood (R,)``, ``entropy (R,)`` and ``total_weight`` (scalar).
    """
    n_restarts, n_components, n_features = means.type.shape
    flat, n_rows = n_restarts * n_components, X.shape[0]
    diff, white = whiten(
        X,
        means.reshape((flat, n_features)),
        factors.inv_chol.reshape((flat, n_features, n_features)),
    )  # (R K, n, d)
    log_phi = _log_density_from_white(white, factors.log_det.reshape((flat,)), n_features)
    weighted = log_phi.reshape((n_restarts, n_components, n_rows)) + pt.log(weights)[:, :, None]
    step = e_step(weighted, axis=1)  # over the components of each restart
    per_row = step.log_norm, -pt.switch(pt.gt(step.resp, 0.0), step.resp * step.log_resp, 0.0)
    if sample_weight is None:
        weighted_resp = step.resp.reshape((flat, n_rows))
        log_norm, terms = per_row
        total_weight = pt.cast(n_rows, X.dtype)
    else:
        weighted_resp = (step.resp * sample_weight).reshape((flat, n_rows))
        log_norm, terms = step.log_norm * sample_weight, per_row[1] * sample_weight
        total_weight = sample_weight.sum()
    weighted_diff = weighted_resp[:, :, None] * diff
    s1 = weighted_diff.sum(axis=1)
    s2 = pt.swapaxes(weighted_diff, -1, -2) @ diff
    return SufficientStats(
        nk=weighted_resp.sum(axis=-1).reshape((n_restarts, n_components)),
        s1=s1.reshape((n_restarts, n_components, n_features)),
        s2=s2.reshape((n_restarts, n_components, n_features, n_features)),
        shift=means,
        log_likelihood=log_norm.sum(axis=-1),
        entropy=terms.sum(axis=(1, 2)),
        total_weight=total_weight,
    )


def q_value(resp, weighted_log_phi):
    r"""The expected complete-data log-likelihood that the M step maximises (direct form).

    .. math::
        Q(\theta, \theta^{old}) = \sum_n \sum_k \gamma_{kn} [\ln \pi_k + \ln \phi_k(x_n)]

    The solver uses the closed form of :func:`q_value_from_statistics`; this direct form
    checks it in the tests.

    Parameters
    ----------
    resp : tensor of shape (n_samples, n_components)
        :math:`\gamma`, computed at :math:`\theta^{old}`.
    weighted_log_phi : tensor of shape (n_samples, n_components)
        :math:`\ln \pi_k \phi_k(x_n)`, evaluated at :math:`\theta`.

    Returns
    -------
    scalar tensor
        :math:`Q(\theta, \theta^{old})`.
    """
    return (resp * weighted_log_phi).sum()


def q_value_from_statistics(nk, scatter, weights, chol):
    r"""Q from the sufficient statistics, without a second pass over the data.

    .. math::
        Q(\theta, \theta^{old}) = \sum_k \Big[ N_k \ln \pi_k - \tfrac{N_k l}{2} \ln 2\pi
            - \tfrac{N_k}{2} \ln|\Sigma_k| - \tfrac12 \operatorname{tr}(\Sigma_k^{-1} W_k) \Big]

    where :math:`W_k = \sum_n w_n \gamma_{nk} (x_n - \mu_k)(x_n - \mu_k)^T` is the scatter
    about the new means and :math:`N_k`, :math:`\gamma` come from the E step at
    :math:`\theta^{old}`.

    Parameters
    ----------
    nk : tensor of shape (..., n_components)
        :math:`N_k`.
    scatter : tensor of shape (..., n_components, n_features, n_features)
        :math:`W_k` (``bgmm.em.step.m_step``).
    weights : tensor of shape (..., n_components)
        :math:`\pi_k` of :math:`\theta`.
    chol : tensor of shape (..., n_components, n_features, n_features)
        Cholesky factors of the covariances of :math:`\theta`.

    Returns
    -------
    tensor of shape (...)
        :math:`Q(\theta, \theta^{old})`.
    """
    n_features = chol.shape[-1]
    trace = (precisions(chol) * scatter).sum(axis=(-2, -1))
    per_component = (
        nk * pt.log(weights) - 0.5 * nk * (n_features * _LOG_2PI + log_det(chol)) - 0.5 * trace
    )
    return per_component.sum(axis=-1)


def lower_bound(q, h):
    r"""The lower bound, :math:`\mathcal{L}(q, \theta) = Q(\theta, \theta^{old}) + H(q)`.

    Parameters
    ----------
    q : tensor
        :math:`Q(\theta, \theta^{old})` (``q_value``).
    h : tensor
        :math:`H(q)` (``entropy``).

    Returns
    -------
    tensor
        :math:`\mathcal{L}(q, \theta) \le \ln p(X \mid \theta)`.
    """
    return q + h


def kl_divergence(resp_q, log_resp_q, log_resp_p):
    r"""The gap between the bound and the log-likelihood (direct form).

    .. math::
        \mathrm{KL}(q \| p) = \sum_n \sum_k q_{kn} (\ln q_{kn} - \ln p_{kn})

    The solver records :math:`\mathrm{KL} = \ln p(X|\theta) - \mathcal{L}(q, \theta)`; this
    direct form checks it in the tests.

    Parameters
    ----------
    resp_q : tensor of shape (n_samples, n_components)
        :math:`q`, the E step's responsibilities at :math:`\theta^{old}`.
    log_resp_q : tensor of shape (n_samples, n_components)
        :math:`\ln q`.
    log_resp_p : tensor of shape (n_samples, n_components)
        :math:`\ln p(Z \mid X, \theta)` at the new parameters.

    Returns
    -------
    scalar tensor
        :math:`\mathrm{KL}(q \| p) = \ln p(X \mid \theta) - \mathcal{L}(q, \theta) \ge 0`.
    """
    return pt.switch(pt.gt(resp_q, 0.0), resp_q * (log_resp_q - log_resp_p), 0.0).sum()


def regularization_gap(nk, scatter, covariances_reg, covariances_best, reg_covar):
    r"""How much ``reg_covar`` keeps :math:`Q` below its maximum in the family.

    With :math:`\hat\Sigma_k` the family's unregularised M step and :math:`\Sigma_k` the
    regularised one, from the same :math:`N_k` and scatter :math:`W_k`,

    .. math::
        Q(\hat\theta) - Q(\theta_\epsilon) = \sum_k \Big[ \frac{N_k}{2}
            \ln\frac{|\Sigma_k|}{|\hat\Sigma_k|}
            + \frac12 \operatorname{tr}\big((\Sigma_k^{-1} - \hat\Sigma_k^{-1}) W_k\big)
            \Big] \ge 0 .

    For full covariances, :math:`\hat\Sigma_k = S_k = W_k / N_k` and
    :math:`\Sigma_k = S_k + \epsilon I`, this is
    :math:`\sum_k \frac{N_k}{2} [\ln(|S_k + \epsilon I| / |S_k|)
    + \operatorname{tr}((S_k + \epsilon I)^{-1} S_k) - l]`. EM guarantees
    :math:`\ln p(X|\theta^{t+1}) \ge \ln p(X|\theta^t) - \text{gap}`; the gap is 0 when
    ``reg_covar`` is 0 and infinite when :math:`\hat\Sigma_k` is singular.

    Parameters
    ----------
    nk : tensor of shape (..., n_components)
        :math:`N_k`.
    scatter : tensor of shape (..., n_components, n_features, n_features)
        :math:`W_k`.
    covariances_reg : tensor of shape (..., n_components, n_features, n_features)
        :math:`\Sigma_k`, the regularised M step.
    covariances_best : tensor of shape (..., n_components, n_features, n_features)
        :math:`\hat\Sigma_k`, the unregularised M step.
    reg_covar : scalar tensor
        :math:`\epsilon`.

    Returns
    -------
    tensor of shape (...)
        The gap, :math:`\ge 0` (up to round-off).
    """
    chol_reg = cholesky_factors(covariances_reg)
    chol_best = cholesky_factors(covariances_best)
    dtype = covariances_reg.dtype
    trace = pt.sum(
        (precisions(chol_reg) - precisions(chol_best)) * scatter, axis=(-2, -1), acc_dtype=dtype
    )
    per_component = 0.5 * (nk * (log_det(chol_reg) - log_det(chol_best)) + trace)
    gap = pt.sum(per_component, axis=-1, acc_dtype=dtype)
    exact = pt.eq(reg_covar, 0.0)
    # Constants in the gap's dtype: JAX would promote a float32 gap to float64.
    infinite = pt.switch(pt.isnan(gap), pt.full_like(gap, np.inf), gap)
    return pt.switch(exact, pt.zeros_like(gap), infinite)
