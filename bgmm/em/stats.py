r"""The sufficient statistics of one E step, the currency of the EM engine.

An iteration is an E step at :math:`\theta` on each chunk of rows, the per-chunk statistics
below, their sum over chunks, and a closed-form M step from the sums
(:func:`bgmm.em.step.m_step`). With sample weights :math:`w_n` (1 by default) and a
per-component shift :math:`c_k` (the means of the E step):

.. math::
    N_k = \sum_n w_n \gamma_{nk}, \quad
    S^{(1)}_k = \sum_n w_n \gamma_{nk} (x_n - c_k), \quad
    S^{(2)}_k = \sum_n w_n \gamma_{nk} (x_n - c_k)(x_n - c_k)^T,

.. math::
    \ln p(X \mid \theta) = \sum_n w_n \ln p(x_n \mid \theta), \qquad
    H(q) = -\sum_n w_n \sum_k \gamma_{nk} \ln \gamma_{nk}.

The moments are taken about :math:`c_k`, which sits inside the cluster, so they stay well
conditioned wherever the clusters are (raw moments :math:`E[xx^T] - \mu\mu^T` cancel when a
cluster is far from the origin relative to its width). With one shift per iteration, the
statistics of two chunks simply add (:func:`combine`), which is what makes chunked,
out-of-core and distributed EM the same computation.

The fields hold NumPy arrays or symbolic PyTensor tensors alike; the leading axes of
``nk`` are those of the parameters (``(n_components,)``, or ``(n_restarts, n_components)``
when restarts are batched).
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["SufficientStats", "combine"]


class SufficientStats(NamedTuple):  # numpydoc ignore=PR01
    r"""The sums one E step contributes, per component.

    Attributes
    ----------
    nk : array of shape (..., n_components)
        :math:`N_k = \sum_n w_n \gamma_{nk}`.
    s1 : array of shape (..., n_components, n_features)
        :math:`\sum_n w_n \gamma_{nk} (x_n - c_k)`.
    s2 : array of shape (..., n_components, n_features, n_features)
        :math:`\sum_n w_n \gamma_{nk} (x_n - c_k)(x_n - c_k)^T`.
    shift : array of shape (..., n_components, n_features)
        :math:`c_k`, the means of the E step.
    log_likelihood : array of shape (...)
        :math:`\sum_n w_n \ln p(x_n \mid \theta)`.
    entropy : array of shape (...)
        :math:`H(q) = -\sum_n w_n \sum_k \gamma_{nk} \ln \gamma_{nk}`.
    total_weight : scalar
        :math:`\sum_n w_n` (the number of samples when unweighted).
    """

    nk: Any
    s1: Any
    s2: Any
    shift: Any
    log_likelihood: Any
    entropy: Any
    total_weight: Any


def combine(a: SufficientStats, b: SufficientStats) -> SufficientStats:
    r"""The statistics of the union of two disjoint sets of rows (same E step, same shift).

    .. math::
        N_k = N_k^a + N_k^b, \quad S_k = S_k^a + S_k^b, \quad \ln p = \ln p^a + \ln p^b, ...

    Parameters
    ----------
    a, b : SufficientStats
        Statistics of two chunks, computed at the same parameters (hence the same shift).

    Returns
    -------
    SufficientStats
        Their sum; ``shift`` is ``a.shift``.
    """
    return SufficientStats(
        nk=a.nk + b.nk,
        s1=a.s1 + b.s1,
        s2=a.s2 + b.s2,
        shift=a.shift,
        log_likelihood=a.log_likelihood + b.log_likelihood,
        entropy=a.entropy + b.entropy,
        total_weight=a.total_weight + b.total_weight,
    )
