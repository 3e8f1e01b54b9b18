r"""Local unconstrained coordinates of a family around a point (for the observed information).

At covariances :math:`\hat\Sigma_k = \hat\lambda_k \hat D_k \hat A_k \hat D_k^T` of the family,
the coordinates :math:`\phi = (v, a, s)` give

.. math::
    \Sigma_k(\phi) = \hat\lambda_k e^{v_k}\; \hat D_k R(s_k)\,
        \operatorname{diag}\!\big(\hat A_k e^{\bar a_k}\big)\, R(s_k)^T \hat D_k^T,
    \qquad R(s) = (I - S)(I + S)^{-1},

with :math:`S` the skew-symmetric matrix of :math:`s` (a Cayley rotation, the identity at
:math:`s = 0`) and :math:`\bar a_k` the log shape :math:`(a_k, 0)` centred to sum 0 (so
:math:`|A_k| = 1` stays). A letter E shares one block of coordinates between the components,
V gives each its own, I has none; the number of coordinates is the family's
:meth:`~bgmm.covariance.CovarianceFamily.n_parameters`, and :math:`\phi = 0` is
:math:`\hat\Sigma`. Every :math:`\phi` stays in the family, so the Hessian of the
log-likelihood in :math:`\phi` is the observed information of the constrained model.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytensor.tensor as pt
from pytensor.tensor.linalg import solve

from bgmm.covariance import _ops
from bgmm.covariance.family import CovarianceFamily

__all__ = ["Chart", "chart_at", "covariances_on_chart"]


class Chart(NamedTuple):  # numpydoc ignore=PR01
    r"""The decomposition :math:`\hat\Sigma_k = \hat\lambda_k \hat D_k \hat A_k \hat D_k^T`.

    Attributes
    ----------
    volumes : ndarray of shape (n_components,)
        :math:`\hat\lambda_k = |\hat\Sigma_k|^{1/d}`.
    shapes : ndarray of shape (n_components, n_features)
        The diagonals of :math:`\hat A_k` (determinant 1).
    frames : ndarray of shape (n_components, n_features, n_features)
        :math:`\hat D_k` (one matrix repeated when the orientation is E, the identity for I).
    """

    volumes: np.ndarray
    shapes: np.ndarray
    frames: np.ndarray


def chart_at(family: CovarianceFamily, covariances) -> Chart:
    r"""Decompose covariances of ``family`` into volume, shape and orientation.

    Parameters
    ----------
    family : CovarianceFamily
        Their family.
    covariances : ndarray of shape (n_components, n_features, n_features)
        :math:`\hat\Sigma_k`, of the family.

    Returns
    -------
    Chart
        Volumes, shapes and orientations.
    """
    cov = np.asarray(covariances, dtype=np.float64)
    k, d, _ = cov.shape
    orientation = family.letters[2]
    if orientation == "I":
        frames = np.broadcast_to(np.eye(d), (k, d, d)).copy()
    elif orientation == "E":  # one basis diagonalises every matrix; a generic mix finds it
        mix = np.tensordot(1.0 + _ops.GOLDEN * np.arange(k), cov, axes=1)
        frames = np.broadcast_to(np.linalg.eigh(mix)[1], (k, d, d)).copy()
    else:
        frames = np.linalg.eigh(cov)[1]
    diagonals = np.einsum("kij,kil,klj->kj", frames, cov, frames)
    volumes = np.exp(np.log(diagonals).mean(axis=1))
    return Chart(volumes=volumes, shapes=diagonals / volumes[:, None], frames=frames)


def _sizes(family: CovarianceFamily, k: int, d: int) -> tuple[int, int, int]:
    volume, shape, orientation = family.letters
    per = {"I": 0, "E": 1, "V": k}
    return per[volume], per[shape] * (d - 1), per[orientation] * (d * (d - 1) // 2)


def covariances_on_chart(family: CovarianceFamily, phi, chart) -> pt.TensorVariable:
    r"""The covariances at coordinates :math:`\phi` of the chart (a PyTensor graph).

    Parameters
    ----------
    family : CovarianceFamily
        The family.
    phi : tensor of shape (n_parameters,)
        :math:`(v, a, s)`; 0 at the chart's point.
    chart : Chart
        Of symbolic or NumPy arrays (``volumes (K,)``, ``shapes (K, d)``,
        ``frames (K, d, d)``), with static K and d in ``shapes``.

    Returns
    -------
    tensor of shape (n_components, n_features, n_features)
        :math:`\Sigma_k(\phi)`.
    """
    volumes, shapes, frames = (pt.as_tensor(a) for a in chart)
    k, d = (int(n) for n in shapes.type.shape)
    volume, shape, orientation = family.letters
    n_vol, n_shape, n_orient = _sizes(family, k, d)
    v = phi[:n_vol]
    log_volumes = pt.log(volumes) + (pt.repeat(v, k) if volume == "E" else v)
    log_shapes = pt.log(shapes)
    if shape != "I":
        a = phi[n_vol : n_vol + n_shape].reshape((1 if shape == "E" else k, d - 1))
        a = pt.concatenate([a, pt.zeros((a.shape[0], 1), dtype=a.dtype)], axis=1)
        log_shapes = log_shapes + (a - a.mean(axis=1, keepdims=True))
    if orientation != "I":
        m = d * (d - 1) // 2
        n_frames = 1 if orientation == "E" else k
        s = phi[n_vol + n_shape : n_vol + n_shape + n_orient].reshape((n_frames, m))
        rows, cols = np.tril_indices(d, -1)
        skew = pt.zeros((n_frames, d, d), dtype=s.dtype)[:, rows, cols].set(s)
        skew = skew - skew.transpose(0, 2, 1)
        eye = pt.eye(d, dtype=skew.dtype)
        # (I - S)(I + S)^{-1} = (I + S)^{-1}(I - S): the two factors commute.
        frames = frames @ solve(eye + skew, eye - skew)
    scaled = frames * pt.exp(log_shapes)[:, None, :]
    return pt.exp(log_volumes)[:, None, None] * (scaled @ frames.transpose(0, 2, 1))
