r"""The spherical and diagonal families: EII, VII, EEI, VEI, EVI, VVI (and E, V for d = 1).

:math:`\Sigma_k = \lambda_k B_k` with :math:`B_k` diagonal, :math:`|B_k| = 1`, so only the
diagonals :math:`w_k = \operatorname{diag}(W_k)` of the scatter enter the M steps. With
:math:`N = \sum_k N_k` and :math:`g(v) = |\operatorname{diag}(v)|^{1/d}` (the geometric
mean of the entries):

* EII, :math:`\lambda I`: :math:`\lambda = \sum_k \operatorname{tr} W_k / (d N)`.
* VII, :math:`\lambda_k I`: :math:`\lambda_k = \operatorname{tr} W_k / (d N_k)`.
* EEI, :math:`\lambda B`: :math:`\lambda B = \sum_k w_k / N`.
* VEI, :math:`\lambda_k B`: iterate :math:`\lambda_k = \sum_j (w_k / B)_j / (d N_k)` and
  :math:`B = v / g(v)` with :math:`v = \sum_k w_k / \lambda_k`.
* EVI, :math:`\lambda B_k`: :math:`B_k = w_k / g(w_k)`, :math:`\lambda = \sum_k g(w_k) / N`.
* VVI, :math:`\lambda_k B_k`: :math:`\lambda_k B_k = w_k / N_k`.

Each VEI step maximises :math:`Q_\Sigma` over one block of parameters given the other
(Celeux & Govaert 1995, section 4), so it never lowers :math:`Q`.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from bgmm.covariance import _ops
from bgmm.covariance.family import CovarianceFamily

__all__ = ["E", "EEI", "EII", "EVI", "V", "VEI", "VII", "VVI"]


def _eii(nk, scatter, previous, n_steps):
    n, w = _ops.pooled(nk, scatter)
    volume = _ops.total(_ops.diagonal(w), -1) / (_ops.last_size(scatter) * n)
    return _ops.broadcast_components(volume[..., None, None] * _ops.eye_like(scatter), scatter)


def _vii(nk, scatter, previous, n_steps):
    volume = _ops.total(_ops.diagonal(scatter), -1) / (_ops.last_size(scatter) * nk)
    return volume[..., None, None] * _ops.eye_like(scatter)


def _eei(nk, scatter, previous, n_steps):
    n, w = _ops.pooled(nk, scatter)
    variances = _ops.diagonal(w) / n[..., None]
    return _ops.broadcast_components(_ops.diagonal_matrix(variances), scatter)


def _vvi(nk, scatter, previous, n_steps):
    return _ops.diagonal_matrix(_ops.diagonal(scatter) / nk[..., None])


def _evi(nk, scatter, previous, n_steps):
    w = _ops.diagonal(scatter)  # (..., K, d)
    root = pt.exp(_ops.log_geometric_mean(w))  # g(w_k)
    volume = _ops.total(root, -1) / _ops.total(nk, -1)
    return _ops.diagonal_matrix(volume[..., None, None] * w / root[..., None])


def _vei(nk, scatter, previous, n_steps):
    w = _ops.diagonal(scatter)  # (..., K, d)
    if previous is None:  # EEI's shape
        start = _ops.unit_determinant(_ops.total(w, -2))
    else:  # Sigma_k = lambda_k B: the sum over k is a multiple of B
        start = _ops.unit_determinant(_ops.total(_ops.diagonal(previous), -2))
    volumes, shape = _ops.varying_volumes_equal_shape(w, nk, start, n_steps)
    return _ops.diagonal_matrix(volumes[..., None] * shape[..., None, :])


def _diag_entries(k, d, components):
    mask = np.zeros((k, d, d), dtype=bool)
    for j in components:
        mask[j] = np.eye(d, dtype=bool)
    return mask


def _first_entry(k, d, components):
    mask = np.zeros((k, d, d), dtype=bool)
    mask[list(components), 0, 0] = True
    return mask


EII = CovarianceFamily(
    name="EII",
    sklearn_name=None,
    description="spherical, equal volume",
    formula=r"\lambda I",
    iterative=False,
    _m_step=_eii,
    _n_parameters=lambda k, d: 1,
    _entries=lambda k, d: _first_entry(k, d, [0]),
)
VII = CovarianceFamily(
    name="VII",
    sklearn_name="spherical",
    description="spherical, varying volume",
    formula=r"\lambda_k I",
    iterative=False,
    _m_step=_vii,
    _n_parameters=lambda k, d: k,
    _entries=lambda k, d: _first_entry(k, d, range(k)),
)
EEI = CovarianceFamily(
    name="EEI",
    sklearn_name=None,
    description="diagonal, equal volume and shape",
    formula=r"\lambda B",
    iterative=False,
    _m_step=_eei,
    _n_parameters=lambda k, d: d,
    _entries=lambda k, d: _diag_entries(k, d, [0]),
)
VEI = CovarianceFamily(
    name="VEI",
    sklearn_name=None,
    description="diagonal, varying volume, equal shape",
    formula=r"\lambda_k B",
    iterative=True,
    _m_step=_vei,
    _n_parameters=lambda k, d: k + d - 1,
    _entries=lambda k, d: _diag_entries(k, d, range(k)),
)
EVI = CovarianceFamily(
    name="EVI",
    sklearn_name=None,
    description="diagonal, equal volume, varying shape",
    formula=r"\lambda B_k",
    iterative=False,
    _m_step=_evi,
    _n_parameters=lambda k, d: 1 + k * (d - 1),
    _entries=lambda k, d: _diag_entries(k, d, range(k)),
)
VVI = CovarianceFamily(
    name="VVI",
    sklearn_name="diag",
    description="diagonal, varying volume and shape",
    formula=r"\lambda_k B_k",
    iterative=False,
    _m_step=_vvi,
    _n_parameters=lambda k, d: k * d,
    _entries=lambda k, d: _diag_entries(k, d, range(k)),
)
E = CovarianceFamily(
    name="E",
    sklearn_name=None,
    description="one feature, equal variance",
    formula=r"\sigma^2",
    iterative=False,
    _m_step=_eii,
    _n_parameters=lambda k, d: 1,
    _entries=lambda k, d: _first_entry(k, d, [0]),
)
V = CovarianceFamily(
    name="V",
    sklearn_name=None,
    description="one feature, varying variance",
    formula=r"\sigma^2_k",
    iterative=False,
    _m_step=_vii,
    _n_parameters=lambda k, d: k,
    _entries=lambda k, d: _first_entry(k, d, range(k)),
)
