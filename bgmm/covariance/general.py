r"""The ellipsoidal families: EEE, VEE, EVE, VVE, EEV, VEV, EVV, VVV.

With :math:`W = \sum_k W_k`, :math:`N = \sum_k N_k`, the eigendecompositions
:math:`W_k = L_k \Omega_k L_k^T` (eigenvalues ascending) and, for a common orientation
:math:`D`, the diagonals :math:`b_k = \operatorname{diag}(D^T W_k D)`:

* EEE, :math:`\lambda D A D^T`: :math:`W / N`.
* VEE, :math:`\lambda_k C` with :math:`|C| = 1`: iterate
  :math:`\lambda_k = \operatorname{tr}(C^{-1} W_k) / (d N_k)` and
  :math:`C \propto \sum_k W_k / \lambda_k`.
* EVE, :math:`\lambda D A_k D^T`: iterate an MM step for :math:`D`, then
  :math:`A_k = b_k / g(b_k)` and :math:`\lambda = \sum_k g(b_k) / N`.
* VVE, :math:`\lambda_k D A_k D^T`: iterate an MM step for :math:`D`, then
  :math:`\lambda_k A_k = b_k / N_k`.
* EEV, :math:`\lambda D_k A D_k^T`: :math:`D_k = L_k`, :math:`\lambda A = \sum_k \Omega_k / N`.
* VEV, :math:`\lambda_k D_k A D_k^T`: :math:`D_k = L_k`; iterate
  :math:`\lambda_k = \operatorname{tr}(\Omega_k A^{-1}) / (d N_k)` and
  :math:`A \propto \sum_k \Omega_k / \lambda_k`.
* EVV, :math:`\lambda C_k` with :math:`|C_k| = 1`: :math:`C_k = W_k / |W_k|^{1/d}`,
  :math:`\lambda = \sum_k |W_k|^{1/d} / N`.
* VVV, :math:`\lambda_k D_k A_k D_k^T`: :math:`W_k / N_k`.

:math:`g` is the geometric mean of a vector's entries. The iterative updates are those of
Celeux & Govaert (1995) for VEE and VEV (each maximises :math:`Q` over one block of
parameters given the others) and the majorise-minimise step of Browne & McNicholas (2014)
for the common orientation of EVE and VVE (``_ops.orientation_mm_step``); none lowers
:math:`Q`. For VEV, :math:`D_k = L_k` is optimal for any shape :math:`A` whose entries are
in the same (ascending) order as the eigenvalues, which the update keeps.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from bgmm.covariance import _ops
from bgmm.covariance.family import CovarianceFamily

__all__ = ["EEE", "EEV", "EVE", "EVV", "VEE", "VEV", "VVE", "VVV"]


def _eee(nk, scatter, previous, n_steps):
    n, w = _ops.pooled(nk, scatter)
    return _ops.broadcast_components(w / n[..., None, None], scatter)


def _vvv(nk, scatter, previous, n_steps):
    return scatter / nk[..., None, None]


def _unit(matrix):
    """A positive definite matrix scaled to determinant 1."""
    return matrix / pt.exp(_ops.log_root_det(matrix))[..., None, None]


def _vee(nk, scatter, previous, n_steps):
    d = _ops.last_size(scatter)
    start = _unit(_ops.total(scatter, -3) if previous is None else _ops.total(previous, -3))

    def volumes(shape):
        return _ops.inverse_trace(shape, scatter) / (d * nk)

    def step(shape):
        return _unit(_ops.total(scatter / volumes(shape)[..., None, None], -3))

    shape = _ops.iterate(step, start, n_steps)
    return volumes(shape)[..., None, None] * shape[..., None, :, :]


def _evv(nk, scatter, previous, n_steps):
    root = pt.exp(_ops.log_root_det(scatter))  # |W_k|^{1/d}
    volume = _ops.total(root, -1) / _ops.total(nk, -1)
    return scatter * (volume[..., None] / root)[..., None, None]


def _eev(nk, scatter, previous, n_steps):
    omega, vectors = _ops.eigen(scatter)
    pooled = _ops.total(omega, -2) / _ops.total(nk, -1)[..., None]  # lambda A
    return _ops.rotate(vectors, pt.broadcast_to(pooled[..., None, :], omega.shape))


def _vev(nk, scatter, previous, n_steps):
    omega, vectors = _ops.eigen(scatter)
    if previous is None:  # EEV's shape
        start = _ops.unit_determinant(_ops.total(omega, -2))
    else:  # the eigenvalues of lambda_k D_k A D_k^T are lambda_k A, ascending
        start = _ops.unit_determinant(_ops.eigen(previous[..., 0, :, :])[0])
    volumes, shape = _ops.varying_volumes_equal_shape(omega, nk, start, n_steps)
    return _ops.rotate(vectors, volumes[..., None] * shape[..., None, :])


def _common_diagonals(orientation, scatter):
    r""":math:`b_k = \operatorname{diag}(D^T W_k D)`, ``(..., K, d)``."""
    d = orientation[..., None, :, :]
    return _ops.total((scatter @ d) * d, -2)


def _common_orientation(nk, scatter, previous, n_steps, diagonals):
    """The MM iterations for D shared by EVE and VVE; ``diagonals(b)`` gives M_k."""
    if previous is None:  # EEE's orientation
        start = _ops.eigen(_ops.total(scatter, -3))[1]
    else:
        weights = 1.0 + _ops.GOLDEN * pt.arange(previous.shape[-3], dtype=previous.dtype)
        start = _ops.eigen(_ops.total(weights[:, None, None] * previous, -3))[1]
    alpha = _ops.largest_eigenvalue(scatter)

    def step(orientation):
        inverse = 1.0 / diagonals(_common_diagonals(orientation, scatter))
        return _ops.orientation_mm_step(orientation, scatter, inverse, alpha)

    return _ops.iterate(step, start, n_steps)


def _eve(nk, scatter, previous, n_steps):
    def shapes(b):  # A_k; lambda is common, so it does not move D
        return _ops.unit_determinant(b)

    orientation = _common_orientation(nk, scatter, previous, n_steps, shapes)
    b = _common_diagonals(orientation, scatter)
    root = pt.exp(_ops.log_geometric_mean(b))
    volume = _ops.total(root, -1) / _ops.total(nk, -1)
    diagonals = volume[..., None, None] * b / root[..., None]
    return _ops.rotate(orientation[..., None, :, :], diagonals)


def _vve(nk, scatter, previous, n_steps):
    def scaled(b):  # lambda_k A_k
        return b / nk[..., None]

    orientation = _common_orientation(nk, scatter, previous, n_steps, scaled)
    b = _common_diagonals(orientation, scatter)
    return _ops.rotate(orientation[..., None, :, :], scaled(b))


def _lower(k, d, components):
    mask = np.zeros((k, d, d), dtype=bool)
    for j in components:
        mask[j] = np.tril(np.ones((d, d), dtype=bool))
    return mask


def _every_lower(k, d):
    return _lower(k, d, range(k))


EEE = CovarianceFamily(
    name="EEE",
    sklearn_name="tied",
    description="ellipsoidal, equal volume, shape and orientation",
    formula=r"\lambda D A D^T",
    iterative=False,
    _m_step=_eee,
    _n_parameters=lambda k, d: d * (d + 1) // 2,
    _entries=lambda k, d: _lower(k, d, [0]),
)
VEE = CovarianceFamily(
    name="VEE",
    sklearn_name=None,
    description="ellipsoidal, varying volume, equal shape and orientation",
    formula=r"\lambda_k D A D^T",
    iterative=True,
    _m_step=_vee,
    _n_parameters=lambda k, d: k + d * (d + 1) // 2 - 1,
    _entries=_every_lower,
)
EVE = CovarianceFamily(
    name="EVE",
    sklearn_name=None,
    description="ellipsoidal, equal volume and orientation, varying shape",
    formula=r"\lambda D A_k D^T",
    iterative=True,
    _m_step=_eve,
    _n_parameters=lambda k, d: 1 + k * (d - 1) + d * (d - 1) // 2,
    _entries=_every_lower,
)
VVE = CovarianceFamily(
    name="VVE",
    sklearn_name=None,
    description="ellipsoidal, equal orientation, varying volume and shape",
    formula=r"\lambda_k D A_k D^T",
    iterative=True,
    _m_step=_vve,
    _n_parameters=lambda k, d: k * d + d * (d - 1) // 2,
    _entries=_every_lower,
)
EEV = CovarianceFamily(
    name="EEV",
    sklearn_name=None,
    description="ellipsoidal, equal volume and shape, varying orientation",
    formula=r"\lambda D_k A D_k^T",
    iterative=False,
    _m_step=_eev,
    _n_parameters=lambda k, d: d + k * d * (d - 1) // 2,
    _entries=_every_lower,
)
VEV = CovarianceFamily(
    name="VEV",
    sklearn_name=None,
    description="ellipsoidal, equal shape, varying volume and orientation",
    formula=r"\lambda_k D_k A D_k^T",
    iterative=True,
    _m_step=_vev,
    _n_parameters=lambda k, d: k + d - 1 + k * d * (d - 1) // 2,
    _entries=_every_lower,
)
EVV = CovarianceFamily(
    name="EVV",
    sklearn_name=None,
    description="ellipsoidal, equal volume, varying shape and orientation",
    formula=r"\lambda D_k A_k D_k^T",
    iterative=False,
    _m_step=_evv,
    _n_parameters=lambda k, d: 1 + k * (d * (d + 1) // 2 - 1),
    _entries=_every_lower,
)
VVV = CovarianceFamily(
    name="VVV",
    sklearn_name="full",
    description="ellipsoidal, varying volume, shape and orientation",
    formula=r"\lambda_k D_k A_k D_k^T",
    iterative=False,
    _m_step=_vvv,
    _n_parameters=lambda k, d: k * d * (d + 1) // 2,
    _entries=_every_lower,
)
