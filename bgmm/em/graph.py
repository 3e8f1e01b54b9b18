r"""Pure PyTensor graph builders, one per equation of the EM derivation.

Every function takes symbolic tensors and returns symbolic tensors; nothing is compiled,
validated or printed here (validation happens at the public entry points). Shapes follow
the ecosystem convention: ``X`` is ``(n_samples, n_features)`` and ``resp`` is
``(n_samples, n_components)``, the transposes of the derivation's :math:`X` (``l x N``)
and :math:`\gamma` (``K x N``). See ``docs/derivation.md`` for the equations.

Second moments. The Mahalanobis distances of the E step and the covariances of the
M step are both written through the per-sample second moments
:math:`z_n = \operatorname{triu}(x_n x_n^T)` (``outer_products``), using the
derivation's second form of the covariance update,

.. math::
    \Sigma_k = X \operatorname{diag}(\gamma_k) X^T / N_k - \mu_k \mu_k^T ,

and the matching expansion of the quadratic form,

.. math::
    (x - \mu_k)^T \Sigma_k^{-1} (x - \mu_k)
        = \langle z_n, \operatorname{triu}(\Lambda_k) \rangle - 2 x_n^T \Lambda_k \mu_k
          + \mu_k^T \Lambda_k \mu_k, \qquad \Lambda_k = \Sigma_k^{-1} .

Both are then products of an ``(n_samples, n_moments)`` matrix with a small one, so one
iteration never materialises an ``(n_components, n_samples, n_features)`` array. The
expansion cancels when a component's mean lies far from the origin relative to its
spread, so the solver centres the data at their mean first (a shift that leaves every
covariance unchanged); see ``bgmm.em.solver``.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.tensor.linalg import cholesky, solve_triangular
from pytensor.tensor.special import logsumexp

__all__ = [
    "cholesky_factors",
    "entropy",
    "e_step",
    "kl_divergence",
    "log_det",
    "log_gaussian_density",
    "log_likelihood",
    "lower_bound",
    "m_step",
    "moment_matrix",
    "outer_products",
    "pivot_ratios",
    "precisions",
    "q_value",
    "regularization_gap",
    "weighted_log_density",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


def _triu_index(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n_features)


def outer_products(X, n_features: int):
    r"""Upper triangles of the per-sample outer products :math:`x_n x_n^T`.

    Parameters
    ----------
    X : tensor of shape (n_samples, n_features)
        The data.
    n_features : int
        Static number of features (the index pattern is built from it).

    Returns
    -------
    tensor of shape (n_samples, n_features * (n_features + 1) // 2)
        Row ``n`` holds :math:`x_{ni} x_{nj}` for :math:`i \le j` in ``np.triu_indices`` order.
    """
    i, j = _triu_index(n_features)
    return X[:, i] * X[:, j]


def moment_matrix(flat, n_features: int):
    r"""Symmetric matrices from their upper triangles (the inverse of ``triu`` flattening).

    :math:`M_{ij} = M_{ji} = f_{(i, j)}` for :math:`i \le j`, with :math:`f` one row of
    ``flat``: the form in which the M step sums :math:`\sum_n \gamma_{kn} x_n x_n^T`.

    Parameters
    ----------
    flat : tensor of shape (n_components, n_features * (n_features + 1) // 2)
        Upper triangles in ``np.triu_indices`` order.
    n_features : int
        Static number of features.

    Returns
    -------
    tensor of shape (n_components, n_features, n_features)
        The symmetric matrices.
    """
    i, j = _triu_index(n_features)
    upper = pt.zeros((flat.shape[0], n_features, n_features), dtype=flat.dtype)
    upper = upper[:, i, j].set(flat)
    strict = pt.triu(upper, 1)
    return upper + strict.transpose(0, 2, 1)


def cholesky_factors(covariances):
    r"""Lower Cholesky factors :math:`\Sigma_k = L_k L_k^T`.

    A matrix that is not positive definite gives NaN entries (PyTensor does not raise);
    ``pivot_ratios`` turns that into a per-component diagnostic.

    Parameters
    ----------
    covariances : tensor of shape (n_components, n_features, n_features)
        :math:`\Sigma_k`.

    Returns
    -------
    tensor of shape (n_components, n_features, n_features)
        :math:`L_k`, lower triangular.
    """
    return cholesky(covariances, lower=True, check_finite=False, on_error="nan")


def log_det(chol):
    r"""Log determinants from Cholesky factors, :math:`\ln|\Sigma_k| = 2 \sum_i \ln (L_k)_{ii}`.

    Parameters
    ----------
    chol : tensor of shape (n_components, n_features, n_features)
        :math:`L_k` (``cholesky_factors``).

    Returns
    -------
    tensor of shape (n_components,)
        :math:`\ln|\Sigma_k|`.
    """
    return 2.0 * pt.log(pt.diagonal(chol, axis1=1, axis2=2)).sum(axis=-1)


def precisions(chol):
    r"""Precision matrices :math:`\Lambda_k = \Sigma_k^{-1} = L_k^{-T} L_k^{-1}`.

    Parameters
    ----------
    chol : tensor of shape (n_components, n_features, n_features)
        :math:`L_k` (``cholesky_factors``).

    Returns
    -------
    tensor of shape (n_components, n_features, n_features)
        :math:`\Lambda_k`.
    """
    eye = pt.broadcast_to(pt.eye(chol.shape[-1], dtype=chol.dtype), chol.shape)
    inv_chol = solve_triangular(chol, eye, lower=True, check_finite=False)
    return inv_chol.transpose(0, 2, 1) @ inv_chol


def pivot_ratios(chol, covariances):
    r"""Smallest relative Cholesky pivot of each covariance, a scale-free rank check.

    :math:`(L_k)_{ii}^2 / (\Sigma_k)_{ii}` is the share of feature *i*'s variance that the
    features before it do not explain (:math:`1 - R^2`). It is 1 for uncorrelated features
    and reaches 0 (or NaN, when the factorisation fails) when :math:`\Sigma_k` is singular.
    Rescaling a feature leaves it unchanged.

    Parameters
    ----------
    chol : tensor of shape (n_components, n_features, n_features)
        :math:`L_k` (``cholesky_factors``).
    covariances : tensor of shape (n_components, n_features, n_features)
        :math:`\Sigma_k`.

    Returns
    -------
    tensor of shape (n_components,)
        :math:`\min_i (L_k)_{ii}^2 / (\Sigma_k)_{ii}`.
    """
    pivots = pt.diagonal(chol, axis1=1, axis2=2) ** 2
    variances = pt.diagonal(covariances, axis1=1, axis2=2)
    return (pivots / variances).min(axis=-1)


def log_gaussian_density(X, means, chol, Z=None):
    r"""Log density of every sample under every component, :math:`\ln \phi_k(x_n)`.

    .. math::
        \ln \phi_k(x) = -\tfrac{l}{2} \ln(2\pi) - \tfrac12 \ln|\Sigma_k|
                        - \tfrac12 (x - \mu_k)^T \Sigma_k^{-1} (x - \mu_k)

    Parameters
    ----------
    X : tensor of shape (n_samples, n_features)
        The data, with a static number of features.
    means : tensor of shape (n_components, n_features)
        :math:`\mu_k`.
    chol : tensor of shape (n_components, n_features, n_features)
        Lower Cholesky factors of the covariances (``cholesky_factors``).
    Z : tensor of shape (n_samples, n_moments), optional
        ``outer_products(X)``, passed in when it is computed once for many iterations.

    Returns
    -------
    tensor of shape (n_samples, n_components)
        :math:`\ln \phi_k(x_n)`.
    """
    n_features = X.type.shape[1]
    if n_features is None:
        raise TypeError("X must have a static number of features (pt.matrix(shape=(None, d)))")
    if Z is None:
        Z = outer_products(X, n_features)
    i, j = _triu_index(n_features)
    prec = precisions(chol)
    # <z_n, triu(Lambda_k)> counts each off-diagonal pair twice.
    off_diagonal_twice = np.where(i == j, 1.0, 2.0)
    prec_flat = prec[:, i, j] * off_diagonal_twice
    prec_means = (prec @ means[:, :, None])[:, :, 0]
    mahalanobis = (
        Z @ prec_flat.T - 2.0 * (X @ prec_means.T) + (means * prec_means).sum(axis=-1)[None, :]
    )
    return -0.5 * (n_features * _LOG_2PI + log_det(chol)[None, :] + mahalanobis)


def weighted_log_density(log_phi, weights):
    r"""Add the log weights, :math:`\ln \pi_k + \ln \phi_k(x_n)`.

    Parameters
    ----------
    log_phi : tensor of shape (n_samples, n_components)
        :math:`\ln \phi_k(x_n)` (``log_gaussian_density``).
    weights : tensor of shape (n_components,)
        :math:`\pi_k`.

    Returns
    -------
    tensor of shape (n_samples, n_components)
        :math:`\ln \pi_k \phi_k(x_n)`.
    """
    return log_phi + pt.log(weights)[None, :]


def e_step(weighted_log_phi):
    r"""Log responsibilities and per-sample log-likelihoods (E step, in log space).

    .. math::
        \ln \gamma_{kn} = \ln \pi_k + \ln \phi_k(x_n)
                          - \ln \textstyle\sum_j \pi_j \phi_j(x_n)

    Parameters
    ----------
    weighted_log_phi : tensor of shape (n_samples, n_components)
        :math:`\ln \pi_k \phi_k(x_n)` (``weighted_log_density``).

    Returns
    -------
    log_resp : tensor of shape (n_samples, n_components)
        :math:`\ln \gamma_{kn}`; each row's exponentials sum to 1.
    log_norm : tensor of shape (n_samples,)
        :math:`\ln p(x_n \mid \theta)`.
    """
    log_norm = logsumexp(weighted_log_phi, axis=1)
    return weighted_log_phi - log_norm[:, None], log_norm


def log_likelihood(log_norm):
    r"""The log-likelihood, a sum over samples.

    .. math::
        \ln p(X \mid \theta) = \sum_n \ln \sum_k \pi_k \phi_k(x_n)

    Parameters
    ----------
    log_norm : tensor of shape (n_samples,)
        :math:`\ln p(x_n \mid \theta)` (``e_step``).

    Returns
    -------
    scalar tensor
        :math:`\ln p(X \mid \theta)`.
    """
    return log_norm.sum()


def m_step(X, resp, reg_covar, Z=None):
    r"""Closed-form M step: weights, means and covariances from the responsibilities.

    .. math::
        N_k = \textstyle\sum_n \gamma_{kn}, \quad \pi_k = N_k / N, \quad
        \mu_k = X \gamma_k / N_k, \quad
        \Sigma_k = X \operatorname{diag}(\gamma_k) X^T / N_k - \mu_k \mu_k^T + \epsilon I

    with :math:`\epsilon` = ``reg_covar`` (0 gives the derivation exactly).

    Parameters
    ----------
    X : tensor of shape (n_samples, n_features)
        The data, with a static number of features.
    resp : tensor of shape (n_samples, n_components)
        :math:`\gamma` from the E step.
    reg_covar : scalar tensor
        :math:`\epsilon`, added to every covariance's diagonal.
    Z : tensor of shape (n_samples, n_moments), optional
        ``outer_products(X)``.

    Returns
    -------
    weights : tensor of shape (n_components,)
        :math:`\pi_k`.
    means : tensor of shape (n_components, n_features)
        :math:`\mu_k`.
    covariances : tensor of shape (n_components, n_features, n_features)
        :math:`\Sigma_k`.
    nk : tensor of shape (n_components,)
        :math:`N_k`.
    """
    n_features = X.type.shape[1]
    if Z is None:
        Z = outer_products(X, n_features)
    nk = resp.sum(axis=0)
    weights = nk / X.shape[0]
    means = (resp.T @ X) / nk[:, None]
    second_moments = moment_matrix((resp.T @ Z) / nk[:, None], n_features)
    covariances = second_moments - means[:, :, None] * means[:, None, :]
    covariances = covariances + reg_covar * pt.eye(n_features, dtype=X.dtype)[None, :, :]
    return weights, means, covariances, nk


def q_value(resp, weighted_log_phi):
    r"""The expected complete-data log-likelihood that the M step maximises.

    .. math::
        Q(\theta, \theta^{old}) = \sum_n \sum_k \gamma_{kn} [\ln \pi_k + \ln \phi_k(x_n)]

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


def entropy(resp, log_resp):
    r"""The entropy of the E step's distribution over the memberships.

    .. math::
        H(q) = -\sum_n \sum_k \gamma_{kn} \ln \gamma_{kn} \quad (0 \ln 0 = 0)

    Parameters
    ----------
    resp : tensor of shape (n_samples, n_components)
        :math:`\gamma`.
    log_resp : tensor of shape (n_samples, n_components)
        :math:`\ln \gamma` (exact where :math:`\gamma` underflows).

    Returns
    -------
    scalar tensor
        :math:`H(q)`.
    """
    return -pt.switch(pt.gt(resp, 0.0), resp * log_resp, 0.0).sum()


def lower_bound(q, h):
    r"""The lower bound, :math:`\mathcal{L}(q, \theta) = Q(\theta, \theta^{old}) + H(q)`.

    Parameters
    ----------
    q : scalar tensor
        :math:`Q(\theta, \theta^{old})` (``q_value``).
    h : scalar tensor
        :math:`H(q)` (``entropy``).

    Returns
    -------
    scalar tensor
        :math:`\mathcal{L}(q, \theta) \le \ln p(X \mid \theta)`.
    """
    return q + h


def kl_divergence(resp_q, log_resp_q, log_resp_p):
    r"""The gap between the bound and the log-likelihood.

    .. math::
        \mathrm{KL}(q \| p) = \sum_n \sum_k q_{kn} (\ln q_{kn} - \ln p_{kn})

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


def regularization_gap(covariances_reg, nk, reg_covar):
    r"""How much adding :math:`\epsilon I` lowers :math:`Q` below its maximum.

    With :math:`S_k = \Sigma_k - \epsilon I` the unregularised maximiser,

    .. math::
        Q(\hat\theta) - Q(\theta_\epsilon) = \sum_k \frac{N_k}{2} \left[
            \ln\frac{|S_k + \epsilon I|}{|S_k|} + \operatorname{tr}((S_k + \epsilon I)^{-1} S_k)
            - l \right] \ge 0 .

    EM guarantees :math:`\ln p(X|\theta^{t+1}) \ge \ln p(X|\theta^t) - \text{gap}`; the gap is
    0 when ``reg_covar`` is 0 and infinite when :math:`S_k` is singular.

    Parameters
    ----------
    covariances_reg : tensor of shape (n_components, n_features, n_features)
        :math:`S_k + \epsilon I`, the regularised M step.
    nk : tensor of shape (n_components,)
        :math:`N_k`.
    reg_covar : scalar tensor
        :math:`\epsilon`.

    Returns
    -------
    scalar tensor
        The gap, :math:`\ge 0`.
    """
    n_features = covariances_reg.shape[-1]
    eye = pt.eye(n_features, dtype=covariances_reg.dtype)[None, :, :]
    raw = covariances_reg - reg_covar * eye
    chol_reg = cholesky_factors(covariances_reg)
    chol_raw = cholesky_factors(raw)
    trace = (precisions(chol_reg) * raw).sum(axis=(1, 2))
    per_component = 0.5 * nk * (log_det(chol_reg) - log_det(chol_raw) + trace - n_features)
    gap = per_component.sum()
    exact = pt.eq(reg_covar, 0.0)
    return pt.switch(exact, 0.0, pt.switch(pt.isnan(gap), np.inf, gap))
