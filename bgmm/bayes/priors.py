r"""Priors of the Bayesian Gaussian mixture, in one small validated object.

.. math::
    \pi \sim \mathrm{Dirichlet}(\alpha \mathbf{1}_K), \quad
    \mu_{kj} \sim \mathcal{N}(m_j, s_j)

and, per covariance family (``covariance_type`` of :func:`bgmm.bayes.build_model`):

* full (VVV): :math:`\Sigma_k = \operatorname{diag}(\sigma_k)\,\Omega_k\,
  \operatorname{diag}(\sigma_k)`, :math:`\sigma_{kj} \sim \mathrm{HN}(t_j)`,
  :math:`\Omega_k \sim \mathrm{LKJ}(\eta)`;
* tied (EEE): one :math:`\Sigma = \operatorname{diag}(\sigma)\,\Omega\,
  \operatorname{diag}(\sigma)`, :math:`\sigma_j \sim \mathrm{HN}(t_j)`,
  :math:`\Omega \sim \mathrm{LKJ}(\eta)`;
* diag (VVI): :math:`\Sigma_k = \operatorname{diag}(\sigma_k^2)`,
  :math:`\sigma_{kj} \sim \mathrm{HN}(t_j)`;
* EEI: one :math:`\Sigma = \operatorname{diag}(\sigma^2)`, :math:`\sigma_j \sim \mathrm{HN}(t_j)`;
* spherical (VII): :math:`\Sigma_k = \sigma_k^2 I`, :math:`\sigma_k \sim \mathrm{HN}(\bar t)`;
* EII: one :math:`\Sigma = \sigma^2 I`, :math:`\sigma \sim \mathrm{HN}(\bar t)`.

HN is the half-normal; :math:`\bar t = (\sum_j t_j^2 / d)^{1/2}` is the standard deviation
of a spherical Gaussian with the total variance :math:`\sum_j t_j^2` of the scales. With one
feature every family is mclust's E (one :math:`\sigma`) or V (one per component), with the
half-normal prior of the diagonal families.

Defaults, and why:

* ``weights_concentration`` :math:`\alpha = 1`: uniform on the simplex, so the prior neither
  favours balanced components nor empties any. With more components than the data support,
  the posterior is then free to empty a component in one chain and fill it in another. Two
  standard alternatives, each a constructor:

  - :meth:`Priors.populated` (:math:`\alpha = 4`, Frühwirth-Schnatter 2006, section 4.2.2):
    keeps every weight away from 0, so no component empties itself; for a K the data
    support, it steadies the chains. With too many components it makes two components share
    one cluster instead (Rousseau & Mengersen 2011: :math:`\alpha` above half the number of
    parameters per component keeps the extra ones populated).
  - :meth:`Priors.sparse` (:math:`\alpha = 0.01`, the sparse finite mixture of
    Malsiner-Walli, Frühwirth-Schnatter & Grün 2016, Stat. Comput. 26): K deliberately too
    large, and the extra components are emptied; the posterior number of non-empty
    components :math:`K_+` (:func:`bgmm.bayes.n_clusters`) estimates the number of
    clusters. The remedy for an over-fitted K.

  Which is the default was decided by the measurement in ``validation/priors.py`` (the
  docs' "Bayesian model" page records it).
* ``means_loc`` :math:`m` = the feature means and ``means_scale`` :math:`s` = twice the feature
  standard deviations: every component mean inside the data's range has ample prior mass,
  and nothing far outside it does (weakly informative, on the data's own scale).
* ``sd_scale`` :math:`t` = the feature standard deviations: a component is rarely wider
  than all the data together; the half-normal still allows it.
* ``lkj_eta`` :math:`\eta = 2`: gently favours weaker correlations over the uniform
  :math:`\eta = 1`, which keeps near-singular covariances (the worked example's failure
  mode for EM) unlikely without ruling out strong correlation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bgmm._arrays import readonly
from bgmm.data import GMMData
from bgmm.exceptions import InputTypeError, InputValueError

__all__ = ["Priors"]


def _positive(name: str, value: Any, size: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputTypeError(
            f"prior {name} must be a number or an array of numbers, got {value!r}."
        ) from None
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != size):
        raise InputValueError(
            f"prior {name} must be a scalar or have shape ({size},), got shape {arr.shape}."
        )
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputValueError(f"prior {name} must be positive and finite, got {arr.tolist()}.")
    return readonly(np.broadcast_to(arr, (size,)))


@dataclass(frozen=True, eq=False)
class Priors:
    r"""Hyper-parameters of the Bayesian mixture; ``None`` means "scaled to the data".

    Parameters
    ----------
    weights_concentration : float or array of shape (n_components,), default 1.0
        Dirichlet concentration :math:`\alpha` of the weights.
    means_loc : array of shape (n_features,), optional
        Prior mean of every component mean (default: the feature means).
    means_scale : float or array of shape (n_features,), optional
        Prior standard deviation of the component means (default: 2 x feature sd).
    sd_scale : float or array of shape (n_features,), optional
        Half-normal scale of the component standard deviations (default: feature sd);
        the spherical families use :attr:`spherical_sd_scale`.
    lkj_eta : float, default 2.0
        LKJ concentration of the correlation matrices.
    """

    weights_concentration: Any = 1.0
    means_loc: Any = None
    means_scale: Any = None
    sd_scale: Any = None
    lkj_eta: float = 2.0

    @classmethod
    def populated(cls, concentration: float = 4.0, **kwargs: Any) -> Priors:
        r"""Dirichlet(4) weights that keep every component populated (Frühwirth-Schnatter 2006).

        Parameters
        ----------
        concentration : float, default 4.0
            :math:`\alpha`, above 1.
        **kwargs
            The other hyper-parameters (see :class:`Priors`).

        Returns
        -------
        Priors
            With ``weights_concentration=concentration``.
        """
        if not np.isscalar(concentration) or not concentration > 1:
            raise InputValueError(
                f"a populated prior needs a concentration above 1, got {concentration!r}; "
                f"use Priors.sparse() for one below 1."
            )
        return cls(weights_concentration=float(concentration), **kwargs)

    @classmethod
    def sparse(cls, concentration: float = 0.01, **kwargs: Any) -> Priors:
        r"""The sparse finite mixture's Dirichlet(0.01) (Malsiner-Walli et al. 2016).

        Fit deliberately more components than you expect: the prior empties those the data
        do not need, and the posterior of the number of non-empty components
        (:func:`bgmm.bayes.n_clusters`) estimates the number of clusters.

        Parameters
        ----------
        concentration : float, default 0.01
            :math:`\alpha`, well below 1 (the authors use 0.01 for a fixed value).
        **kwargs
            The other hyper-parameters (see :class:`Priors`).

        Returns
        -------
        Priors
            With ``weights_concentration=concentration``.
        """
        if not np.isscalar(concentration) or not 0 < concentration < 1:
            raise InputValueError(
                f"a sparse prior needs a concentration in (0, 1), got {concentration!r}; "
                f"0.01 is the usual value."
            )
        return cls(weights_concentration=float(concentration), **kwargs)

    @property
    def is_sparse(self) -> bool:
        """Whether every weight's concentration is below 1 (a sparse finite mixture)."""
        return bool(np.all(np.asarray(self.weights_concentration, dtype=np.float64) < 1))

    @property
    def spherical_sd_scale(self) -> float:
        r"""Half-normal scale :math:`\bar t = (\sum_j t_j^2 / d)^{1/2}` of a spherical sd.

        Only for resolved priors (:meth:`resolve`), whose ``sd_scale`` is an array.
        """
        return float(np.sqrt(np.mean(np.square(np.asarray(self.sd_scale, dtype=np.float64)))))

    def resolve(self, data: GMMData, n_components: int) -> Priors:
        """Fill the data-scaled defaults and validate every value (shapes, positivity).

        Parameters
        ----------
        data : GMMData
            The data whose feature means and sds scale the defaults.
        n_components : int
            K (the length of ``weights_concentration``).

        Returns
        -------
        Priors
            With arrays ``weights_concentration (K,)``, ``means_loc (d,)``,
            ``means_scale (d,)``, ``sd_scale (d,)`` and a float ``lkj_eta``.

        Raises
        ------
        ValueError, TypeError
            A value that is not positive and finite, or has the wrong shape.
        """
        d = data.n_features
        values = np.asarray(data.values)
        # of the observed values where some are missing (every column has some)
        sd = np.nanstd(values, axis=0) if data.has_missing else values.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        centre = np.nanmean(values, axis=0) if data.has_missing else values.mean(axis=0)
        loc = centre if self.means_loc is None else self.means_loc
        try:
            loc = np.asarray(loc, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputTypeError(
                f"prior means_loc must be numbers, got {self.means_loc!r}."
            ) from None
        if loc.ndim > 1 or (loc.ndim == 1 and loc.shape[0] != d) or not np.isfinite(loc).all():
            raise InputValueError(
                f"prior means_loc must be finite with shape ({d},), got {loc.tolist()}."
            )
        eta = np.asarray(self.lkj_eta, dtype=np.float64) if np.isscalar(self.lkj_eta) else None
        if eta is None or not np.isfinite(eta) or eta <= 0:
            raise InputValueError(
                f"prior lkj_eta must be a positive number, got {self.lkj_eta!r}."
            )
        return replace(
            self,
            weights_concentration=_positive(
                "weights_concentration", self.weights_concentration, n_components
            ),
            means_loc=readonly(np.broadcast_to(loc, (d,))),
            means_scale=_positive(
                "means_scale", 2.0 * sd if self.means_scale is None else self.means_scale, d
            ),
            sd_scale=_positive("sd_scale", sd if self.sd_scale is None else self.sd_scale, d),
            lkj_eta=float(eta),
        )
