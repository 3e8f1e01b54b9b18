r"""A covariance family: its M step over the sufficient statistics, its size, its entries.

Every family of Celeux & Govaert (1995) writes the component covariances as

.. math::
    \Sigma_k = \lambda_k D_k A_k D_k^T

with the volume :math:`\lambda_k = |\Sigma_k|^{1/d}`, the shape :math:`A_k` (diagonal,
:math:`|A_k| = 1`) and the orientation :math:`D_k` (orthogonal), each either equal across the
components (E), varying (V) or the identity (I). Its M step maximises

.. math::
    Q_\Sigma = -\sum_k \Big[ \frac{N_k}{2} \ln|\Sigma_k|
                + \frac12 \operatorname{tr}(\Sigma_k^{-1} W_k) \Big]

over the family, from :math:`N_k` and the scatter :math:`W_k` about the new means alone
(:mod:`bgmm.em.stats`), and returns the full matrices, so the E step, :math:`Q`, the bound
and the history are the same code for every family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bgmm.exceptions import InputValueError

__all__ = ["INNER_STEPS", "INNER_STEPS_COLD", "CovarianceFamily"]

#: Inner iterations of an iterative M step that starts at the previous parameters.
#:
#: Used by VEI, VEE, EVE, VVE and VEV. Each inner iteration never lowers Q, so EM with them
#: is a generalised EM that never lowers the log-likelihood, and the inner and outer
#: iterations converge together.
INNER_STEPS = 8

#: Inner iterations of an iterative M step with no previous parameters.
#:
#: The first M step, from the starting partition, starts from the closed form of a
#: neighbouring family and iterates this many times.
INNER_STEPS_COLD = 500


# Results and containers are documented by their attributes, not by __init__.
@dataclass(frozen=True, eq=False)
class CovarianceFamily:  # numpydoc ignore=PR01
    r"""One covariance structure :math:`\Sigma_k = \lambda_k D_k A_k D_k^T`.

    Attributes
    ----------
    name : str
        mclust's three letters (volume, shape, orientation: E equal, V varying,
        I identity), or ``"E"`` / ``"V"`` for one feature.
    sklearn_name : str or None
        scikit-learn's name (``"full"``, ``"tied"``, ``"diag"``, ``"spherical"``) where it
        has one.
    description : str
        :math:`\Sigma_k` in words.
    formula : str
        :math:`\Sigma_k` in LaTeX.
    iterative : bool
        Whether the M step iterates (no closed form).
    """

    name: str
    sklearn_name: str | None
    description: str
    formula: str
    iterative: bool
    _m_step: Callable = None
    _n_parameters: Callable[[int, int], int] = None
    _entries: Callable[[int, int], np.ndarray] = None

    def __repr__(self) -> str:
        return f"CovarianceFamily({self.name!r})"

    @property
    def letters(self) -> tuple[str, str, str]:
        """Volume, shape and orientation: E, V or I (``E``/``V`` read as EII/VII)."""
        return (self.name, "I", "I") if self.univariate else tuple(self.name)

    @property
    def univariate(self) -> bool:
        """Whether the family is one of mclust's one-feature models ``E`` and ``V``."""
        return len(self.name) == 1

    @property
    def shares_covariance(self) -> bool:
        """Whether every component has the same covariance matrix (EII, EEI, EEE, E)."""
        return self.name in ("EII", "EEI", "EEE", "E")

    def same_model(self, other: CovarianceFamily, n_features: int) -> bool:
        """Whether the two families are the same model for data with ``n_features``.

        With one feature shape and orientation are trivial, and every family is mclust's
        E or V, as its volume letter says; otherwise only a family is itself.

        Parameters
        ----------
        other : CovarianceFamily
            The other family.
        n_features : int
            The number of features d.

        Returns
        -------
        bool
            True for the same model.
        """
        if n_features == 1:
            return self.name[0] == other.name[0]
        return self.name == other.name

    def m_step(self, nk, scatter, previous=None, n_steps: int | None = None):
        r"""The family's covariances from :math:`N_k` and :math:`W_k` (a PyTensor graph).

        Parameters
        ----------
        nk : tensor of shape (..., n_components)
            :math:`N_k`.
        scatter : tensor of shape (..., n_components, n_features, n_features)
            :math:`W_k`, the scatter about the new means (regularised by the caller:
            :math:`W_k + N_k \epsilon I` gives scikit-learn's ``reg_covar`` for its four
            families and keeps every family's structure).
        previous : tensor of shape (..., n_components, n_features, n_features), optional
            The covariances of the E step, where an iterative M step starts (then it never
            lowers Q). Without them it starts from a closed form and runs longer.
        n_steps : int, optional
            Inner iterations of an iterative M step (default ``INNER_STEPS``, or
            ``INNER_STEPS_COLD`` without ``previous``).

        Returns
        -------
        tensor of shape (..., n_components, n_features, n_features)
            :math:`\Sigma_k`, the maximiser of :math:`Q_\Sigma` in the family (for the
            iterative ones, the point the inner iterations reach).
        """
        if n_steps is None:
            n_steps = INNER_STEPS if previous is not None else INNER_STEPS_COLD
        return self._m_step(nk, scatter, previous, n_steps)

    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Free covariance parameters (mclust's ``nVarParams``).

        Parameters
        ----------
        n_components, n_features : int
            K and d.

        Returns
        -------
        int
            The count; a mixture adds ``K * d`` means and ``K - 1`` weights.
        """
        return int(self._n_parameters(int(n_components), int(n_features)))

    def free_entries(self, n_components: int, n_features: int) -> np.ndarray:
        """Which entries of the ``(K, d, d)`` covariances a table needs to show.

        The entries that the others repeat (symmetry, components that share a matrix, equal
        variances) or that are zero by the family's structure are left out.

        Parameters
        ----------
        n_components, n_features : int
            K and d.

        Returns
        -------
        ndarray of bool, shape (n_components, n_features, n_features)
            True for the entries to show.
        """
        return self._entries(int(n_components), int(n_features))

    def compact(self, covariances: np.ndarray) -> np.ndarray:
        """The covariances in scikit-learn's shape for its four names, else ``(K, d, d)``.

        Parameters
        ----------
        covariances : ndarray of shape (n_components, n_features, n_features)
            Full matrices of this family.

        Returns
        -------
        ndarray
            ``(K, d, d)`` for full and the mclust names, ``(d, d)`` for tied, ``(K, d)``
            for diag, ``(K,)`` for spherical.
        """
        cov = np.asarray(covariances)
        if self.sklearn_name == "tied":
            return cov[0].copy()
        if self.sklearn_name == "diag":
            return np.diagonal(cov, axis1=1, axis2=2).copy()
        if self.sklearn_name == "spherical":
            return cov[:, 0, 0].copy()
        return cov.copy()

    def expand(self, value, n_components: int, n_features: int) -> np.ndarray:
        """Full ``(K, d, d)`` matrices from a compact or full array (``covariances_init``).

        Parameters
        ----------
        value : array-like
            ``(K, d, d)``, or the compact shape of the family's scikit-learn name.
        n_components, n_features : int
            K and d.

        Returns
        -------
        ndarray of shape (n_components, n_features, n_features)
            The matrices (validated later, as any starting covariances).

        Raises
        ------
        ValueError
            A shape that is neither.
        """
        k, d = n_components, n_features
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape == (k, d, d):
            return arr
        if self.sklearn_name == "tied" and arr.shape == (d, d):
            return np.broadcast_to(arr, (k, d, d)).copy()
        if self.sklearn_name == "diag" and arr.shape == (k, d):
            return arr[:, :, None] * np.eye(d)
        if self.sklearn_name == "spherical" and arr.shape == (k,):
            return arr[:, None, None] * np.eye(d)
        compact = {
            "tied": f"({d}, {d}) or ",
            "diag": f"({k}, {d}) or ",
            "spherical": f"({k},) or ",
        }.get(self.sklearn_name, "")
        raise InputValueError(
            f"covariances_init must have shape {compact}({k}, {d}, {d}) for "
            f"covariance_type={self.sklearn_name or self.name!r}, got {arr.shape}."
        )
