r"""One EM step as a graph: the statistics of every chunk, summed, then the M step.

:func:`m_step` is a function of the summed statistics alone (:mod:`bgmm.em.stats`), so the
same M step serves one chunk or many, in memory or on Dask. :func:`data_statistics` is
the E step over a data set held as equal chunks plus a remainder (:class:`ChunkedData`),
a ``scan`` over the chunks that never holds more than one chunk's
``(chunk, n_components, n_features)`` intermediates.
"""

from __future__ import annotations

from typing import NamedTuple

import pytensor
import pytensor.tensor as pt

from bgmm.covariance import FAMILIES, CovarianceFamily
from bgmm.em import graph, missing
from bgmm.em.stats import SufficientStats, combine

__all__ = [
    "ChunkedData",
    "MStep",
    "data_statistics",
    "m_step",
    "regularized_scatter",
    "scatter_matrices",
]


class ChunkedData(NamedTuple):  # numpydoc ignore=PR01
    """Symbolic rows of a data set: equal chunks and the remainder, with sample weights.

    Attributes
    ----------
    chunks : tensor of shape (n_chunks, chunk_size, n_features)
        The first ``n_chunks * chunk_size`` rows.
    chunk_weights : tensor of shape (n_chunks, chunk_size) or None
        Their sample weights; None for unit weights.
    rest : tensor of shape (n_rest, n_features) or None
        The remaining rows; None when the chunks hold every row.
    rest_weights : tensor of shape (n_rest,) or None
        Their sample weights; None for unit weights or no remainder.
    chunk_patterns : int tensor of shape (n_chunks, chunk_size) or None
        With missing values (:mod:`bgmm.em.missing`): each row's missingness pattern,
        the missing values themselves replaced by 0. None for complete data.
    rest_patterns : int tensor of shape (n_rest,) or None
        The remainder's patterns.
    observed : tensor of shape (n_patterns, n_features) or None
        1.0 where a pattern's coordinate is observed.
    """

    chunks: pt.TensorVariable
    chunk_weights: pt.TensorVariable | None
    rest: pt.TensorVariable | None
    rest_weights: pt.TensorVariable | None
    chunk_patterns: pt.TensorVariable | None = None
    rest_patterns: pt.TensorVariable | None = None
    observed: pt.TensorVariable | None = None


class MStep(NamedTuple):  # numpydoc ignore=PR01
    r"""The M step's outputs.

    Attributes
    ----------
    weights : tensor of shape (..., n_components)
        :math:`\pi_k`.
    means : tensor of shape (..., n_components, n_features)
        :math:`\mu_k`.
    covariances : tensor of shape (..., n_components, n_features, n_features)
        :math:`\Sigma_k` of the family, regularised.
    scatter : tensor of shape (..., n_components, n_features, n_features)
        :math:`W_k`, the weighted scatter about the new means.
    """

    weights: pt.TensorVariable
    means: pt.TensorVariable
    covariances: pt.TensorVariable
    scatter: pt.TensorVariable


def scatter_matrices(stats: SufficientStats):
    r"""The new means and the scatter about them, from the shifted moments.

    .. math::
        \mu_k = c_k + \frac{S^{(1)}_k}{N_k}, \qquad
        W_k = S^{(2)}_k - \frac{S^{(1)}_k S^{(1)T}_k}{N_k}

    The correction :math:`S^{(1)}S^{(1)T}/N_k` is small because the shift :math:`c_k` is the
    previous mean, inside the cluster.

    Parameters
    ----------
    stats : SufficientStats
        Summed over all rows.

    Returns
    -------
    means : tensor of shape (..., n_components, n_features)
        :math:`\mu_k`.
    scatter : tensor of shape (..., n_components, n_features, n_features)
        :math:`W_k`, symmetric.
    """
    nk = stats.nk
    centre = stats.s1 / nk[..., None]
    scatter = stats.s2 - centre[..., :, None] * stats.s1[..., None, :]
    return stats.shift + centre, 0.5 * (scatter + pt.swapaxes(scatter, -1, -2))


def regularized_scatter(nk, scatter, reg_covar):
    r"""The regularised scatter :math:`W_k + N_k \epsilon I`.

    A family's M step on it adds :math:`\epsilon I` to the full, tied, diagonal and
    spherical maxima (scikit-learn's ``reg_covar``) and keeps every family's structure
    (equal volumes stay equal, and so on).

    Parameters
    ----------
    nk : tensor of shape (..., n_components)
        :math:`N_k`.
    scatter : tensor of shape (..., n_components, n_features, n_features)
        :math:`W_k`.
    reg_covar : scalar tensor
        :math:`\epsilon`.

    Returns
    -------
    tensor of shape (..., n_components, n_features, n_features)
        The regularised scatter.
    """
    eye = pt.eye(scatter.shape[-1], dtype=scatter.dtype)
    return scatter + (reg_covar * nk)[..., None, None] * eye


def m_step(
    stats: SufficientStats,
    reg_covar,
    family: CovarianceFamily = FAMILIES["VVV"],
    previous=None,
) -> MStep:
    r"""Closed-form (or, for five families, iterated) M step from the sufficient statistics.

    .. math::
        \pi_k = \frac{N_k}{\sum_n w_n}, \quad
        \mu_k = c_k + \frac{S^{(1)}_k}{N_k}, \quad
        W_k = S^{(2)}_k - \frac{S^{(1)}_k S^{(1)T}_k}{N_k}, \quad
        \Sigma = \text{family}(N, W + N \epsilon I)

    For the full family :math:`\Sigma_k = W_k / N_k + \epsilon I`; with :math:`\epsilon` =
    ``reg_covar`` = 0 every family gives the derivation's maximiser of :math:`Q` exactly.

    Parameters
    ----------
    stats : SufficientStats
        Summed over all rows.
    reg_covar : scalar tensor
        :math:`\epsilon` (``regularized_scatter``).
    family : CovarianceFamily, default VVV (full)
        The covariance structure (:mod:`bgmm.covariance`).
    previous : tensor of shape (..., n_components, n_features, n_features), optional
        The covariances of the E step, where an iterative family's M step starts.

    Returns
    -------
    MStep
        ``weights``, ``means``, ``covariances`` and the scatter ``W_k``.
    """
    means, scatter = scatter_matrices(stats)
    covariances = family.m_step(
        stats.nk, regularized_scatter(stats.nk, scatter, reg_covar), previous
    )
    return MStep(
        weights=stats.nk / stats.total_weight,
        means=means,
        covariances=covariances,
        scatter=scatter,
    )


def _zero_sums(means, dtype) -> list:
    """Zero running sums of ``nk``, ``s1``, ``s2``, ``ln p`` and ``H`` for ``means``' batch."""
    batch, n_features = tuple(means.type.shape[:-1]), means.type.shape[-1]
    return [
        pt.zeros(batch, dtype=dtype),
        pt.zeros((*batch, n_features), dtype=dtype),
        pt.zeros((*batch, n_features, n_features), dtype=dtype),
        pt.zeros(batch[:-1], dtype=dtype),
        pt.zeros(batch[:-1], dtype=dtype),
    ]


def _chunk_total(data: ChunkedData, dtype):
    """The total sample weight of the equal chunks."""
    if data.chunk_weights is not None:
        return data.chunk_weights.sum()
    return pt.cast(data.chunks.shape[0] * data.chunks.shape[1], dtype)


def data_statistics(
    data: ChunkedData, weights, means, factors, covariances=None
) -> SufficientStats:
    r"""The E step over every chunk and the remainder, its statistics summed.

    .. math::
        N_k = \sum_{\text{chunks } c} N_k^{(c)}, \quad S_k = \sum_c S_k^{(c)}, \quad
        \ln p(X \mid \theta) = \sum_c \ln p(X^{(c)} \mid \theta), \quad \dots

    With missing values (``data.observed`` set), the statistics of the expected complete
    rows (:mod:`bgmm.em.missing`).

    Parameters
    ----------
    data : ChunkedData
        The rows and their sample weights.
    weights : tensor of shape (n_restarts, n_components)
        :math:`\pi`.
    means : tensor of shape (n_restarts, n_components, n_features), static shape
        :math:`\mu_k`, also the shift of the moments.
    factors : graph.Factorization
        Of the covariances.
    covariances : tensor of shape (n_restarts, n_components, n_features, n_features)
        :math:`\Sigma_k`; needed with missing values only.

    Returns
    -------
    SufficientStats
        Summed over all rows.
    """
    if data.observed is not None:
        return _missing_data_statistics(data, weights, means, factors, covariances)
    weighted = data.chunk_weights is not None
    rest = None
    if data.rest is not None:
        rest = graph.chunk_statistics(data.rest, data.rest_weights, weights, means, factors)

    def accumulate(x, *state):
        w, sums = (state[0], state[1:]) if weighted else (None, state)
        st = graph.chunk_statistics(x, w, weights, means, factors)
        # Constants such as ln(2 pi) are float64: keep each running sum in the data's dtype.
        return [
            pt.cast(total + part, total.dtype)
            for total, part in zip(
                sums, (st.nk, st.s1, st.s2, st.log_likelihood, st.entropy), strict=True
            )
        ]

    init = _zero_sums(means, data.chunks.dtype)
    sums = pytensor.scan(
        accumulate,
        sequences=[data.chunks, data.chunk_weights] if weighted else [data.chunks],
        outputs_info=init,
        return_updates=False,
    )
    nk, s1, s2, ll, ent = (s[-1] for s in sums)
    chunk_total = _chunk_total(data, ll.dtype)
    chunked = SufficientStats(nk, s1, s2, means, ll, ent, chunk_total)
    return chunked if rest is None else combine(chunked, rest)


def _missing_data_statistics(data: ChunkedData, weights, means, factors, covariances):
    """``data_statistics`` with missing coordinates: a scan of ``missing.chunk_statistics``."""
    pf = missing.pattern_factors(covariances, factors, data.observed)
    weighted = data.chunk_weights is not None
    parts = []
    if data.rest is not None:
        parts.append(
            missing.chunk_statistics(
                data.rest, data.rest_patterns, data.observed, data.rest_weights, weights, means, pf
            )
        )

    def accumulate(x, pattern, *state):
        w, sums = (state[0], state[1:]) if weighted else (None, state)
        part = missing.chunk_statistics(x, pattern, data.observed, w, weights, means, pf)
        st = part.stats
        return [
            pt.cast(total + new, total.dtype)
            for total, new in zip(
                sums,
                (st.nk, st.s1, st.s2, st.log_likelihood, st.entropy, part.n_pk),
                strict=True,
            )
        ]

    batch = tuple(means.type.shape[:-1])
    init = [
        *_zero_sums(means, data.chunks.dtype),
        pt.zeros((data.observed.shape[0], *batch), dtype=data.chunks.dtype),
    ]
    sequences = [data.chunks, data.chunk_patterns]
    sums = pytensor.scan(
        accumulate,
        sequences=[*sequences, data.chunk_weights] if weighted else sequences,
        outputs_info=init,
        return_updates=False,
    )
    nk, s1, s2, ll, ent, n_pk = (s[-1] for s in sums)
    chunk_total = _chunk_total(data, ll.dtype)
    total = missing.MissingStats(SufficientStats(nk, s1, s2, means, ll, ent, chunk_total), n_pk)
    for part in parts:
        total = missing.MissingStats(combine(total.stats, part.stats), total.n_pk + part.n_pk)
    return missing.complete_statistics(total, pf, data.observed)
