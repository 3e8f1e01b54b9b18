r"""Graph pieces the covariance families share (PyTensor, batched over leading axes).

Shapes: ``nk`` is ``(..., K)`` and ``scatter`` :math:`W_k` is ``(..., K, d, d)``; a family's M
step returns the full matrices :math:`\Sigma_k`, ``(..., K, d, d)``.
"""

from __future__ import annotations

import pytensor
import pytensor.tensor as pt
from pytensor.tensor.linalg import cholesky, eigh, eigvalsh, solve_triangular, svd


def total(x, axis):
    """``x.sum(axis)`` accumulated and returned in ``x``'s dtype.

    PyTensor accumulates float32 sums in float64, and its JAX backend then returns the
    float64 accumulator instead of the declared float32 (``jax_funcify`` of ``CAReduce``),
    which breaks the typed branches of the EM block; an explicit ``acc_dtype`` avoids it.
    """
    return pt.sum(x, axis=axis, acc_dtype=x.dtype)


def average(x, axis: int):
    """``x.mean(axis)`` in ``x``'s dtype (see :func:`total`)."""
    return total(x, axis) / pt.cast(x.shape[axis], x.dtype)


def iterate(step, start, n_steps: int):
    """``step`` applied ``n_steps`` times from ``start`` (a ``scan``; the last state)."""
    if not n_steps:
        return start
    states = pytensor.scan(step, outputs_info=[start], n_steps=n_steps, return_updates=False)
    return states[-1]


def last_size(x):
    """The length of the last axis (d), in the dtype of ``x``."""
    return pt.cast(x.shape[-1], x.dtype)


def eye_like(scatter):
    """The ``(d, d)`` identity in the dtype of ``scatter``."""
    return pt.eye(scatter.shape[-1], dtype=scatter.dtype)


def diagonal(matrices):
    """The diagonals, ``(..., d, d) -> (..., d)``."""
    return pt.diagonal(matrices, axis1=-2, axis2=-1)


def diagonal_matrix(values):
    """Diagonal matrices from their diagonals, ``(..., d) -> (..., d, d)``."""
    return values[..., :, None] * pt.eye(values.shape[-1], dtype=values.dtype)


def log_geometric_mean(values):
    r""":math:`\frac1d \sum_j \ln v_j`, the log of :math:`|\operatorname{diag}(v)|^{1/d}`."""
    return average(pt.log(values), -1)


def unit_determinant(values):
    r"""Positive diagonals scaled to determinant 1: :math:`v / |\operatorname{diag}(v)|^{1/d}`."""
    return values / pt.exp(log_geometric_mean(values))[..., None]


def log_root_det(matrices):
    r""":math:`\ln |M|^{1/d}` of symmetric positive definite matrices, by Cholesky.

    NaN when a matrix is not positive definite (the caller's pivots then flag it).
    """
    chol = cholesky(matrices, lower=True, check_finite=False, on_error="nan")
    return 2.0 * average(pt.log(diagonal(chol)), -1)


def inverse_trace(matrices, scatter):
    r""":math:`\operatorname{tr}(M^{-1} W_k)` for one ``M`` (``(..., d, d)``) and every ``W_k``.

    :math:`M^{-1} = L^{-T} L^{-1}` from the Cholesky factor :math:`L` of ``M``.
    """
    chol = cholesky(matrices, lower=True, check_finite=False, on_error="nan")
    inv_chol = solve_triangular(
        chol, pt.broadcast_to(eye_like(matrices), chol.shape), lower=True, check_finite=False
    )
    precision = pt.swapaxes(inv_chol, -1, -2) @ inv_chol
    return total(precision[..., None, :, :] * scatter, (-2, -1))


def broadcast_components(matrix, scatter):
    """One ``(..., d, d)`` matrix repeated for every component, ``(..., K, d, d)``."""
    return pt.broadcast_to(matrix[..., None, :, :], scatter.shape)


def pooled(nk, scatter):
    r""":math:`N = \sum_k N_k` and :math:`W = \sum_k W_k`."""
    return total(nk, -1), total(scatter, -3)


def eigen(scatter):
    r"""Eigenvalues (ascending) and eigenvectors, :math:`W_k = L_k \Omega_k L_k^T`."""
    return eigh(scatter)


def largest_eigenvalue(scatter):
    r""":math:`\alpha_k`, the largest eigenvalue of each :math:`W_k` (for the MM bound)."""
    return eigvalsh(scatter, None)[..., -1]


def rotate(orientation, diagonals):
    r""":math:`D \operatorname{diag}(v) D^T`; ``orientation`` ``(..., d, d)`` or per component."""
    return (orientation * diagonals[..., None, :]) @ pt.swapaxes(orientation, -1, -2)


#: Distinct weights 1 + GOLDEN k make a combination of covariances that share their
#: eigenvectors (orientation E) have distinct eigenvalues, so its eigenvectors are the
#: shared ones.
GOLDEN = 0.6180339887498949


def varying_volumes_equal_shape(values, nk, start, n_steps: int):
    r"""Maximise over :math:`\lambda_k` and one shape :math:`A` (:math:`|A| = 1`), alternately.

    For VEI ``values`` are the diagonals of :math:`W_k`, for VEV their eigenvalues
    :math:`\Omega_k`; either way :math:`Q_\Sigma` depends on them only through

    .. math::
        \lambda_k = \frac{\sum_j v_{kj} / A_j}{d N_k}, \qquad
        A = \frac{u}{g(u)}, \quad u = \sum_k v_k / \lambda_k,

    each the maximiser given the other (Celeux & Govaert 1995), so no step lowers Q.

    Parameters
    ----------
    values : tensor of shape (..., K, d)
        :math:`v_k`.
    nk : tensor of shape (..., K)
        :math:`N_k`.
    start : tensor of shape (..., d)
        The starting shape, determinant 1.
    n_steps : int
        Alternations.

    Returns
    -------
    volumes : tensor of shape (..., K)
        :math:`\lambda_k` at the final shape.
    shape : tensor of shape (..., d)
        :math:`A`.
    """
    d = last_size(values)

    def volumes(shape):
        return total(values / shape[..., None, :], -1) / (d * nk)

    def step(shape):
        return unit_determinant(total(values / volumes(shape)[..., None], -2))

    shape = iterate(step, start, n_steps)
    return volumes(shape), shape


def orientation_mm_step(orientation, scatter, inverse_diagonals, alpha):
    r"""One majorise-minimise step for a common orientation :math:`D` (Browne & McNicholas).

    Minimises :math:`f(D) = \sum_k \operatorname{tr}(W_k D M_k^{-1} D^T)` over orthogonal
    :math:`D` for fixed diagonal :math:`M_k`. With :math:`\alpha_k \ge` the largest eigenvalue
    of :math:`W_k`, :math:`\operatorname{tr}(M_k^{-1} D^T (W_k - \alpha_k I) D)` is concave in
    :math:`D` and lies below its tangent at the current :math:`D_0`; on the orthogonal group
    :math:`f` differs from the sum of those terms by a constant, so the minimiser of the
    linearised sum,

    .. math::
        F = \sum_k (\alpha_k I - W_k) D_0 M_k^{-1} = U S V^T, \qquad D = U V^T,

    never increases :math:`f`.

    Parameters
    ----------
    orientation : tensor of shape (..., d, d)
        :math:`D_0`, orthogonal.
    scatter : tensor of shape (..., K, d, d)
        :math:`W_k`.
    inverse_diagonals : tensor of shape (..., K, d)
        The diagonals of :math:`M_k^{-1}`.
    alpha : tensor of shape (..., K)
        :math:`\alpha_k`.

    Returns
    -------
    tensor of shape (..., d, d)
        The next :math:`D`.
    """
    d0 = orientation[..., None, :, :]
    f = (alpha[..., None, None] * d0 - scatter @ d0) * inverse_diagonals[..., None, :]
    u, _, vt = svd(total(f, -3), full_matrices=False)
    return u @ vt
