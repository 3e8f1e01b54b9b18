r"""Standard errors of the EM estimate from the observed information, by autodiff.

The parameters are mapped to an unconstrained vector :math:`\phi`:

* weights: :math:`\pi = \operatorname{softmax}(\eta_1, \dots, \eta_{K-1}, 0)`,
* means: :math:`\mu_k` as they are,
* covariances: :math:`\Sigma_k = L_k L_k^T` with the lower Cholesky factor's diagonal on the
  log scale.

PyTensor differentiates :math:`\ln p(X \mid \theta(\phi))` twice; the observed information
:math:`I = -\nabla^2_\phi \ln p` is inverted and carried back to :math:`\theta` by the delta
method, :math:`\operatorname{Cov}(\hat\theta) \approx J I^{-1} J^T` with
:math:`J = \partial\theta / \partial\phi`.

References
----------
Louis (1982), Finding the observed information matrix when using the EM algorithm, JRSS B 44.
McLachlan & Peel (2000), Finite Mixture Models, section 2.15.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import grad, jacobian

from bgmm._arrays import readonly
from bgmm._spelling import option
from bgmm.covariance import Chart, chart_at, covariances_on_chart, get_family
from bgmm.data import GMMData, as_data, check_features
from bgmm.em import graph
from bgmm.em.missing import missingness_patterns, observed_log_density
from bgmm.em.solver import _COMPILE_LOCK
from bgmm.exceptions import InputValueError, SingularInformationError
from bgmm.params import GMMParams

__all__ = ["StandardErrors", "standard_errors", "to_unconstrained"]


# Results and containers are documented by their attributes, not by __init__.
@dataclass(frozen=True, eq=False)
class StandardErrors:  # numpydoc ignore=PR01
    """Standard errors of the EM estimate (observed information, delta method).

    Attributes
    ----------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features)
    covariance : ndarray of shape (n_params, n_params)
        Covariance of the estimate in the flat order weights, means, covariances.
    information : ndarray
        Observed information in the unconstrained parametrisation.
    reason : str or None
        Why the standard errors are missing (every array is then NaN), or None.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    covariance: np.ndarray
    information: np.ndarray
    reason: str | None = None

    @property
    def available(self) -> bool:
        """Whether the standard errors exist (the observed information was positive definite)."""
        return self.reason is None

    @classmethod
    def missing(cls, n_components: int, n_features: int, reason: str) -> StandardErrors:
        """Standard errors that do not exist: NaN everywhere, with the reason.

        Parameters
        ----------
        n_components, n_features : int
            The shape of the estimate.
        reason : str
            Why they are missing (the message of :class:`~bgmm.SingularInformationError`).

        Returns
        -------
        StandardErrors
            NaN arrays of the usual shapes, ``reason`` set.
        """
        k, d = n_components, n_features
        n = k + k * d + k * d * d

        def nan(*shape):
            return readonly(np.full(shape, np.nan))

        return cls(nan(k), nan(k, d), nan(k, d, d), nan(n, n), nan(0, 0), reason)


def _sizes(k: int, d: int) -> tuple[int, int, int]:
    return k - 1, k * d, k * d * (d + 1) // 2


def _from_unconstrained(phi, k: int, d: int):
    n_w, n_mu, _ = _sizes(k, d)
    logits = pt.concatenate([phi[:n_w], pt.zeros(1, dtype=phi.dtype)])
    weights = pt.special.softmax(logits)
    means = phi[n_w : n_w + n_mu].reshape((k, d))
    rows, cols = np.tril_indices(d)
    packed = phi[n_w + n_mu :].reshape((k, rows.size))
    packed = pt.where(rows == cols, pt.exp(packed), packed)
    chol = pt.zeros((k, d, d), dtype=phi.dtype)[:, rows, cols].set(packed)
    return weights, means, chol


def to_unconstrained(params: GMMParams) -> np.ndarray:
    r"""The unconstrained vector :math:`\phi` of ``params`` (inverse of the map above)."""
    d = params.n_features
    w = np.asarray(params.weights)
    logits = np.log(w[:-1]) - np.log(w[-1])
    chol = np.linalg.cholesky(np.asarray(params.covariances))
    rows, cols = np.tril_indices(d)
    packed = chol[:, rows, cols]
    on_diagonal = rows == cols
    packed[:, on_diagonal] = np.log(packed[:, on_diagonal])
    return np.concatenate([logits, np.asarray(params.means).ravel(), packed.ravel()])


#: Rows per piece of the sums over samples (bounded intermediates in memory).
INFORMATION_ROWS = 4096


def _compiled(k: int, d: int, missing: bool = False):
    with _COMPILE_LOCK:  # the pieces of lazy data run as Dask tasks, maybe in threads
        return _compile(k, d, missing)


# The derivatives compile with PyTensor's C virtual machine, whose copies are not safe to
# call at once from two threads: the pieces of one process take turns (processes, such as
# Dask's workers, run theirs in parallel).
_CALL_LOCK = threading.Lock()


@functools.cache
def _compile(k: int, d: int, missing: bool = False):
    # With missing values, the log density of each row's observed coordinates
    # (bgmm.em.missing): the information of the observed-data log-likelihood. The rows
    # then come with their patterns (missing values as 0).
    X = pt.matrix("X", shape=(None, d), dtype="float64")
    phi = pt.vector("phi", dtype="float64")
    weights, means, chol = _from_unconstrained(phi, k, d)
    covariances = chol @ chol.transpose(0, 2, 1)
    inputs = [X, phi]
    if missing:
        pattern = pt.vector("pattern", dtype="int64")
        observed = pt.matrix("observed", shape=(None, d), dtype="float64")
        inputs = [X, pattern, observed, phi]
        log_phi = observed_log_density(X, pattern, observed, means, covariances)
    else:
        log_phi = graph.log_gaussian_density(X, means, chol)
    step = graph.e_step(graph.weighted_log_density(log_phi, weights))
    log_lik = graph.log_likelihood(step.log_norm)
    theta = pt.concatenate([weights, means.ravel(), covariances.ravel()])
    gradient = grad(log_lik, phi)
    # vectorize=True differentiates all rows at once instead of through a scan.
    hess = jacobian(gradient, phi, vectorize=True)
    # Evaluated once per fit: the Python linker compiles in seconds where numba takes
    # minutes for this many second-derivative nodes.
    return pytensor.function(
        inputs,
        [log_lik, gradient, hess, jacobian(theta, phi, vectorize=True)],
        mode="FAST_COMPILE",
    )


def _compiled_chart(k: int, d: int, family_name: str):
    with _COMPILE_LOCK:
        return _compile_chart(k, d, family_name)


@functools.cache
def _compile_chart(k: int, d: int, family_name: str):
    # The family's chart (bgmm.covariance.chart) in the full model's covariance coordinates
    # psi (packed Cholesky factors, log diagonal): psi(phi), its Jacobian and the Hessian
    # of g . psi(phi) for a fixed g, the second-order term of the chain rule. No data here,
    # so the graph stays small.
    family = get_family(family_name)
    phi = pt.vector("phi", dtype="float64")
    g = pt.vector("g", dtype="float64")
    chart = Chart(
        volumes=pt.tensor("volumes", shape=(k,), dtype="float64"),
        shapes=pt.tensor("shapes", shape=(k, d), dtype="float64"),
        frames=pt.tensor("frames", shape=(k, d, d), dtype="float64"),
    )
    chol = graph.cholesky_factors(covariances_on_chart(family, phi, chart))
    rows, cols = np.tril_indices(d)
    packed = chol[:, rows, cols]
    diagonal = rows == cols  # log of the diagonal alone: log(0) off it would poison grad
    psi = pt.where(diagonal, pt.log(pt.where(diagonal, packed, 1.0)), packed).ravel()
    curvature = jacobian(grad(pt.dot(g, psi), phi), phi, vectorize=True)
    return pytensor.function(
        [phi, g, *chart],
        [psi, jacobian(psi, phi, vectorize=True), curvature],
        mode="FAST_COMPILE",
    )


def _family_information(family, params: GMMParams, values):
    r"""The log-likelihood's Hessian in the family's coordinates, and d theta / d phi.

    By the chain rule through the full model's coordinates :math:`\psi`:
    :math:`H_\phi = J^T H_\psi J + \nabla^2_\phi (g_\psi \cdot \psi(\phi))`.
    """
    k, d = params.n_components, params.n_features
    n_front = k - 1 + k * d  # weights and means: the same coordinates in both
    chart = chart_at(family, params.covariances)
    n_cov = family.n_parameters(k, d)
    chart_fn = _compiled_chart(k, d, family.name)
    with _CALL_LOCK:
        psi_cov, jac_cov, _ = chart_fn(np.zeros(n_cov), np.zeros(k * d * (d + 1) // 2), *chart)
    psi = np.concatenate([to_unconstrained(params)[:n_front], psi_cov])
    _, gradient, hess_psi, jac_theta = _derivatives(values, psi, k, d)
    with _CALL_LOCK:
        _, _, curvature = chart_fn(np.zeros(n_cov), gradient[n_front:], *chart)
    jac = np.zeros((psi.size, n_front + n_cov))
    jac[:n_front, :n_front] = np.eye(n_front)
    jac[n_front:, n_front:] = jac_cov
    hess = jac.T @ hess_psi @ jac
    hess[n_front:, n_front:] += curvature
    return hess, jac_theta @ jac


class Derivatives(NamedTuple):
    r""":math:`\ln p(X)` and its derivatives in :math:`\phi`, summed over the samples."""

    log_likelihood: float
    gradient: np.ndarray  # (n_phi,)
    hessian: np.ndarray  # (n_phi, n_phi)
    jacobian: np.ndarray  # d theta / d phi, (n_theta, n_phi); no data in it


def _piece_sums(x, *, phi, k: int, d: int) -> np.ndarray:
    """One piece's ``ln p``, gradient and Hessian, packed as a ``(1, size)`` row."""
    # PyTensor's C code reads aligned arrays only; a block read from a store may not be.
    x = np.require(x, dtype=np.float64, requirements=["C", "A"])
    phi = np.require(phi, dtype=np.float64, requirements=["C", "A"])
    n_phi = phi.size
    if x.shape[0] == 0:
        return np.zeros((1, 1 + n_phi + n_phi * n_phi))
    missing = np.isnan(x)
    if missing.any():
        patterns = missingness_patterns(x)
        rows = [np.nan_to_num(x), patterns.index, patterns.observed.astype(np.float64)]
        fn = _compiled(k, d, missing=True)
    else:
        rows, fn = [x], _compiled(k, d)
    with _CALL_LOCK:
        ll, gradient, hess, _ = fn(*rows, phi)
    return np.concatenate([[ll], gradient, np.asarray(hess).ravel()])[None]


def _derivatives(values, phi: np.ndarray, k: int, d: int) -> Derivatives:
    """The sums over samples, a piece at a time: in memory, or as a Dask reduction.

    The observed information is a sum over samples like the E step's statistics, so lazy
    data (a Dask array) get it by mapping the pieces over their blocks and summing the
    packed rows in a tree; nothing the size of the data reaches the client.
    """
    n_phi = phi.size
    if isinstance(values, np.ndarray):
        sums = sum(
            _piece_sums(values[start : start + INFORMATION_ROWS], phi=phi, k=k, d=d)[0]
            for start in range(0, len(values), INFORMATION_ROWS)
        )
        first = values[:1]
    else:
        import dask.array as da

        size = 1 + n_phi + n_phi * n_phi
        packed = da.map_blocks(
            _piece_sums,
            values,
            phi=phi,
            k=k,
            d=d,
            chunks=((1,) * values.numblocks[0], (size,)),
            dtype=np.float64,
        )
        sums = np.asarray(packed.sum(axis=0, split_every=8).compute())
        first = np.asarray(values[:1].compute())
    first = np.require(np.nan_to_num(first), dtype=np.float64, requirements=["C", "A"])
    with _CALL_LOCK:  # d theta / d phi does not involve the data
        jacobian = _compiled(k, d)(first, phi)[3]
    return Derivatives(
        float(sums[0]),
        sums[1 : 1 + n_phi],
        sums[1 + n_phi :].reshape(n_phi, n_phi),
        np.asarray(jacobian),
    )


def standard_errors(
    params: GMMParams, X, covariance_type: str = "full", *, errors: str = "raise"
) -> StandardErrors:
    r"""Standard errors of ``params`` (an EM estimate) from the observed information.

    Parameters
    ----------
    params : GMMParams
        The maximum-likelihood estimate (``EMResult.params``).
    X : array-like or GMMData
        The data it was fitted to. The information is a sum over samples, computed
        ``INFORMATION_ROWS`` rows at a time; for lazy data (a Dask array, a zarr store) as
        a Dask reduction over the blocks.
    covariance_type : str, default "full"
        The family of the estimate (``EMResult.covariance_type``): the information is that
        of the constrained model, in the family's own coordinates
        (:mod:`bgmm.covariance.chart`), so entries the family fixes (zeros, shared values)
        get the standard errors of what determines them.
    errors : {"raise", "missing"}, default "raise"
        When the observed information is not positive definite: raise
        :class:`~bgmm.SingularInformationError`, or return
        :meth:`StandardErrors.missing` with the error's message as its ``reason`` (what
        :func:`bgmm.workflow.analyse` does, so that the fit is kept).

    Returns
    -------
    StandardErrors
        Standard errors of the weights, means and covariances, with the covariance of the
        estimate and the observed information they come from.

    Raises
    ------
    SingularInformationError
        The observed information is not positive definite: the estimate is not a strict
        local maximum (not converged, an empty or singular component, a constant feature,
        or too many components for the data). The message names constant features.

    Notes
    -----
    :math:`\operatorname{Cov}(\hat\theta) \approx J (-\nabla^2_\phi \ln p)^{-1} J^T`.
    The log density is written through the whitened differences of
    :func:`bgmm.em.graph.whiten`, so data far from the origin lose no digits. With missing
    values (NaN) it is the density of each row's observed coordinates
    (:func:`bgmm.em.missing.observed_log_density`): the observed information of the
    observed-data log-likelihood, which is what a fit with ``missing="em"`` maximises
    (Louis 1982 gives the same matrix through the complete-data information).
    """
    if errors not in ("raise", "missing"):
        raise InputValueError(f"errors must be 'raise' or 'missing', got {errors!r}.")
    data = X if isinstance(X, GMMData) else as_data(X, missing="allow")
    k, d = params.n_components, params.n_features
    check_features(data, d, "the estimate")
    try:
        return _standard_errors(params, data, covariance_type)
    except SingularInformationError as exc:
        if errors == "raise":
            raise
        return StandardErrors.missing(k, d, str(exc))


def _constant_features(data: GMMData) -> list[str]:
    """The features whose values are all equal (each makes the information singular)."""
    values = data.values
    spread = np.nanmax(values, axis=0) - np.nanmin(values, axis=0)
    if data.lazy:
        spread = spread.compute()
    return [data.feature_names[j] for j in np.flatnonzero(np.asarray(spread) == 0)]


def _standard_errors(params: GMMParams, data: GMMData, covariance_type: str) -> StandardErrors:
    k, d = params.n_components, params.n_features
    family = get_family(covariance_type, d)
    if family.name == "VVV":
        _, _, hess, jac = _derivatives(data.values, to_unconstrained(params), k, d)
    else:
        hess, jac = _family_information(family, params, data.values)
    information = -0.5 * (hess + hess.T)
    try:
        chol = np.linalg.cholesky(information)
    except np.linalg.LinAlgError:
        eig = np.linalg.eigvalsh(information)
        constant = _constant_features(data)
        if constant:
            cause = (
                f"feature(s) {constant} are constant (one value in every row), so the "
                f"covariances have no information about them: leave them out "
                f"({option('exclude', repr(constant), ','.join(constant))})"
            )
        else:
            cause = "check that EM converged, or use fewer components"
        raise SingularInformationError(
            f"the observed information is not positive definite (smallest eigenvalue "
            f"{eig.min():.3g}), so the estimate is not a strict local maximum and EM's "
            f"standard errors do not exist: {cause}."
        ) from None
    inv_chol = np.linalg.inv(chol)
    cov_phi = inv_chol.T @ inv_chol
    cov_theta = jac @ cov_phi @ jac.T
    se = np.sqrt(np.clip(np.diag(cov_theta), 0.0, None))
    return StandardErrors(
        weights=readonly(se[:k]),
        means=readonly(se[k : k + k * d].reshape(k, d)),
        covariances=readonly(se[k + k * d :].reshape(k, d, d)),
        covariance=readonly(cov_theta),
        information=readonly(information),
    )
