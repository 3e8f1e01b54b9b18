r"""Gaussian mixture parameters :math:`\theta = (\pi, \mu, \Sigma)`, validated and labelled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from bgmm._arrays import readonly
from bgmm.contract import DIMS
from bgmm.exceptions import InputTypeError, InputValueError

__all__ = ["GMMParams"]


def _as_float_array(value: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"{name} must be an array of real numbers ({exc}).") from None
    if not np.isfinite(arr).all():
        raise InputValueError(f"{name} contains NaN or inf: {value!r}; pass finite values.")
    return arr


# Results and containers are documented by their attributes, not by __init__.
@dataclass(frozen=True, eq=False)
class GMMParams:  # numpydoc ignore=PR01
    r"""Parameters of a Gaussian mixture.

    Attributes
    ----------
    weights : ndarray of shape (n_components,)
        Mixing proportions :math:`\pi_k`, non-negative and summing to 1.
    means : ndarray of shape (n_components, n_features)
        Component means :math:`\mu_k`.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Component covariances :math:`\Sigma_k`, symmetric positive definite.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    @property
    def n_components(self) -> int:
        """Number of components K."""
        return self.weights.shape[0]

    @property
    def n_features(self) -> int:
        """Number of features."""
        return self.means.shape[1]

    @classmethod
    def from_arrays(
        cls,
        weights: Any,
        means: Any,
        covariances: Any,
        *,
        n_components: int | None = None,
        n_features: int | None = None,
    ) -> GMMParams:
        r"""Validate parameters given as array-likes.

        Parameters
        ----------
        weights : array-like of shape (n_components,)
            :math:`\pi`, non-negative, summing to 1.
        means : array-like of shape (n_components, n_features)
            :math:`\mu_k`.
        covariances : array-like of shape (n_components, n_features, n_features)
            :math:`\Sigma_k`, symmetric positive definite.
        n_components, n_features : int, optional
            Expected sizes, checked when given.

        Returns
        -------
        GMMParams
            Read-only float64 arrays.

        Raises
        ------
        ValueError
            Wrong shapes, weights off the simplex, covariances that are not symmetric
            positive definite (the component is named).
        """
        w = _as_float_array(weights, "weights")
        mu = _as_float_array(means, "means")
        cov = _as_float_array(covariances, "covariances")
        k = n_components if n_components is not None else (w.shape[0] if w.ndim == 1 else None)
        if w.ndim != 1 or (k is not None and w.shape[0] != k):
            raise InputValueError(
                f"weights must have shape ({k},), got {w.shape}; pass one weight per component."
            )
        d = n_features if n_features is not None else (mu.shape[1] if mu.ndim == 2 else None)
        if mu.ndim != 2 or mu.shape != (k, d):
            raise InputValueError(
                f"means must have shape (n_components, n_features) = ({k}, {d}), got {mu.shape}."
            )
        if cov.shape != (k, d, d):
            raise InputValueError(
                f"covariances must have shape (n_components, n_features, n_features) = "
                f"({k}, {d}, {d}), got {cov.shape}."
            )
        if (w < 0).any():
            raise InputValueError(f"weights must be non-negative, got {w.tolist()}.")
        if not np.isclose(w.sum(), 1.0, rtol=0.0, atol=1e-8):
            raise InputValueError(
                f"weights must sum to 1, got sum {w.sum():.10g} for {w.tolist()}; "
                f"divide them by their sum."
            )
        for j in range(k):
            c = cov[j]
            scale = max(np.abs(c).max(), np.finfo(float).tiny)
            if not np.allclose(c, c.T, rtol=0.0, atol=1e-10 * scale):
                raise InputValueError(f"covariances[{j}] is not symmetric: {c.tolist()}.")
            try:
                np.linalg.cholesky(c)
            except np.linalg.LinAlgError:
                raise InputValueError(
                    f"covariances[{j}] is not positive definite (eigenvalues "
                    f"{np.linalg.eigvalsh(c).tolist()}); add a small multiple of the identity."
                ) from None
        return cls(readonly(w / w.sum()), readonly(mu), readonly(0.5 * (cov + cov.swapaxes(1, 2))))

    def to_dataset(
        self, feature_names: tuple[str, ...] | None = None, component_names=None
    ) -> xr.Dataset:
        """Labelled view with the names and dims shared by EM results and posteriors.

        Parameters
        ----------
        feature_names : sequence of str, optional
            Labels of the ``feature`` and ``feature_bis`` dims (default ``x0``, ``x1``, ...).
        component_names : sequence, optional
            Labels of the ``component`` dim (default 0, 1, ...).

        Returns
        -------
        xarray.Dataset
            Variables ``weights (component)``, ``means (component, feature)`` and
            ``covariances (component, feature, feature_bis)``.
        """
        k, d = self.n_components, self.n_features
        features = (
            list(feature_names) if feature_names is not None else [f"x{j}" for j in range(d)]
        )
        components = list(component_names) if component_names is not None else list(range(k))
        return xr.Dataset(
            {
                "weights": (DIMS["weights"], np.array(self.weights)),
                "means": (DIMS["means"], np.array(self.means)),
                "covariances": (DIMS["covariances"], np.array(self.covariances)),
            },
            coords={"component": components, "feature": features, "feature_bis": features},
        )
