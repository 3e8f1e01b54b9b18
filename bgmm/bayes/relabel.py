r"""Label switching: relabel every posterior draw to the EM components.

The mixture likelihood is invariant to permuting the components, so chains may visit
different labellings. Each draw :math:`s` is matched to the EM estimate by the assignment
that minimises

.. math::
    C^{(s)}_{jk} = (\mu^{(s)}_j - \hat\mu_k)^T \hat\Sigma_k^{-1} (\mu^{(s)}_j - \hat\mu_k),

solved by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``). The cost
margin, the extra cost of the next-best permutation, says how clear-cut the match was
(near 0: the draw sits between labellings).
"""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

from bgmm.params import GMMParams

__all__ = ["COMPONENT_DIM", "assignment_costs", "match_to_reference", "relabel_dataset"]

COMPONENT_DIM = "component"

#: Up to this many components the next-best permutation is found by enumeration; above it,
#: among the single swaps of the best one (an upper bound on the margin).
_ENUMERATE_UP_TO = 6


def assignment_costs(means: np.ndarray, reference: GMMParams) -> np.ndarray:
    r"""Cost of giving sampled component j the label k, shape (n_draws, K, K).

    Parameters
    ----------
    means : ndarray of shape (n_draws, n_components, n_features)
        The sampled component means.
    reference : GMMParams
        The EM estimate whose labels the draws take.

    Returns
    -------
    ndarray of shape (n_draws, K, K)
        ``[s, j, k]``: the Mahalanobis distance :math:`(\mu^{(s)}_j - \hat\mu_k)^T
        \hat\Sigma_k^{-1} (\mu^{(s)}_j - \hat\mu_k)`.
    """
    precisions = np.linalg.inv(np.asarray(reference.covariances))  # (K, d, d)
    diff = means[:, :, None, :] - np.asarray(reference.means)[None, None, :, :]  # (S, j, k, d)
    return np.einsum("sjkd,kde,sjke->sjk", diff, precisions, diff)


def match_to_reference(costs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best assignment of every draw, its cost and the margin to the next-best one.

    Parameters
    ----------
    costs : ndarray of shape (n_draws, K, K)
        From :func:`assignment_costs`.

    Returns
    -------
    source : ndarray of int, shape (n_draws, K)
        ``source[s, k]`` is the sampled component that receives label ``k``.
    cost : ndarray of shape (n_draws,)
        Total cost of the best assignment (Hungarian algorithm).
    margin : ndarray of shape (n_draws,)
        Cost of the second-best assignment minus the best (infinite for K = 1): a small
        margin means the draw's labels were a near tie.
    """
    n_draws, k, _ = costs.shape
    source = np.empty((n_draws, k), dtype=np.int64)
    best = np.empty(n_draws)
    for s in range(n_draws):
        rows, cols = linear_sum_assignment(costs[s])
        source[s, cols] = rows
        best[s] = costs[s, rows, cols].sum()
    if k == 1:
        return source, best, np.full(n_draws, np.inf)
    labels = np.arange(k)
    if k <= _ENUMERATE_UP_TO:
        perms = np.array(list(itertools.permutations(range(k))))  # perms[p, k] = source of k
        totals = costs[:, perms, labels].sum(axis=-1)  # (S, P)
        totals.sort(axis=1)
        return source, best, totals[:, 1] - totals[:, 0]
    swaps = []
    for a, b in itertools.combinations(range(k), 2):
        alt = source.copy()
        alt[:, [a, b]] = alt[:, [b, a]]
        swaps.append(np.take_along_axis(costs, alt[:, None, :], axis=1)[:, 0, :].sum(axis=1))
    return source, best, np.min(swaps, axis=0) - best


def relabel_dataset(posterior: xr.Dataset, source: xr.DataArray) -> xr.Dataset:
    """Reorder the ``component`` dimension of every variable, draw by draw.

    Parameters
    ----------
    posterior : xarray.Dataset
        Variables with dims (chain, draw, component, ...); others pass through.
    source : xarray.DataArray of int with dims (chain, draw, component)
        For each draw and label k, the sampled component to take.

    Returns
    -------
    xarray.Dataset
        The relabelled posterior, same dims and coords.
    """
    idx = source.transpose("chain", "draw", COMPONENT_DIM).values
    out = {}
    for name, var in posterior.data_vars.items():
        if COMPONENT_DIM not in var.dims:
            out[name] = var
            continue
        rest = [d for d in var.dims if d not in ("chain", "draw", COMPONENT_DIM)]
        values = var.transpose("chain", "draw", COMPONENT_DIM, *rest).values
        take = idx.reshape(idx.shape + (1,) * len(rest))
        relabelled = np.take_along_axis(values, take, axis=2)
        out[name] = xr.DataArray(
            relabelled,
            dims=("chain", "draw", COMPONENT_DIM, *rest),
            coords=var.coords,
            attrs=var.attrs,
        ).transpose(*var.dims)
    return xr.Dataset(out, attrs=posterior.attrs)
