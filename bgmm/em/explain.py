r"""The worked example's first EM iteration, number by number, as the source document does it.

:func:`first_iteration` returns every intermediate quantity of one E and one M step from the
document's starting point: the Gaussian normalising constants
:math:`(2\pi)^{d/2} |\Sigma_k|^{1/2}`, the squared Mahalanobis distances, the densities, the
responsibilities :math:`\gamma`, :math:`N_k` and the updated parameters. The document rounds
by hand (four significant digits, a constant of 62.83); ``WorkedIteration.hand_densities``
repeats that arithmetic beside the exact values so that a reader can check both. ``bgmm
explain`` prints this object and computes nothing itself.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from bgmm.datasets import WorkedExample, load_worked_example
from bgmm.em.solver import EMResult, fit_em, log_component_densities
from bgmm.exceptions import SingularCovarianceWarning

__all__ = ["WorkedIteration", "first_iteration"]


# Results and containers are documented by their attributes, not by __init__.
@dataclass(frozen=True, eq=False)
class WorkedIteration:  # numpydoc ignore=PR01
    r"""One EM iteration of the worked example, every intermediate quantity named.

    Attributes
    ----------
    example : WorkedExample
        The data, component names and starting parameters.
    normaliser : ndarray of shape (n_components,)
        :math:`(2\pi)^{d/2} |\Sigma_k|^{1/2}` at the start.
    mahalanobis : ndarray of shape (n_samples, n_components)
        :math:`(x_n - \mu_k)^T \Sigma_k^{-1} (x_n - \mu_k)` at the start.
    densities : ndarray of shape (n_samples, n_components)
        :math:`\mathcal{N}(x_n \mid \mu_k, \Sigma_k)`, exact.
    hand_exponentials : ndarray of shape (n_components,)
        The first person's :math:`\exp(-\tfrac12 \mathrm{Mahalanobis})` rounded as the
        document shows it (four significant digits; two below 1e-4).
    hand_densities : ndarray of shape (n_components,)
        Those rounded exponentials divided by the normaliser rounded to two decimals: the
        document's hand arithmetic.
    resp : ndarray of shape (n_samples, n_components)
        :math:`\gamma_{nk}` of the E step.
    nk : ndarray of shape (n_components,)
        :math:`N_k = \sum_n \gamma_{nk}`.
    result : EMResult
        The parameters after the M step (one iteration, no regularisation).
    singular : bool
        Whether an updated covariance is singular (the document's case: each cluster lies
        on a line, so a second E step is undefined without regularisation).
    """

    example: WorkedExample
    normaliser: np.ndarray
    mahalanobis: np.ndarray
    densities: np.ndarray
    hand_exponentials: np.ndarray
    hand_densities: np.ndarray
    resp: np.ndarray
    nk: np.ndarray
    result: EMResult
    singular: bool


def _as_shown(value: float) -> float:
    """The document's rounding: four significant digits, two for tiny values."""
    return float(f"{value:.4g}" if value > 1e-4 else f"{value:.2g}")


def first_iteration() -> WorkedIteration:
    """The worked example's first E and M step from the document's starting point.

    Returns
    -------
    WorkedIteration
        Every intermediate quantity, exact, with the document's hand-rounded densities of
        the first person beside them.
    """
    example = load_worked_example()
    init, data = example.initial, example.data
    d = data.n_features
    log_phi = log_component_densities(init, data)
    log_det = np.linalg.slogdet(init.covariances)[1]
    normaliser = np.exp(0.5 * (d * np.log(2 * np.pi) + log_det))
    mahalanobis = -2.0 * log_phi - d * np.log(2 * np.pi) - log_det[None, :]
    hand_exponentials = np.array([_as_shown(np.exp(-0.5 * m)) for m in mahalanobis[0]])
    hand_densities = hand_exponentials / np.round(normaliser, 2)
    weighted = np.exp(log_phi + np.log(init.weights)[None, :])
    resp = weighted / weighted.sum(axis=1, keepdims=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SingularCovarianceWarning)
        result = fit_em(
            data,
            init.n_components,
            max_iter=1,
            tol=0.0,
            reg_covar=0.0,
            weights_init=init.weights,
            means_init=init.means,
            covariances_init=init.covariances,
        )
    singular = any(issubclass(w.category, SingularCovarianceWarning) for w in caught)
    return WorkedIteration(
        example=example,
        normaliser=normaliser,
        mahalanobis=mahalanobis,
        densities=np.exp(log_phi),
        hand_exponentials=hand_exponentials,
        hand_densities=hand_densities,
        resp=resp,
        nk=resp.sum(axis=0),
        result=result,
        singular=singular,
    )
