r"""Label switching: relabel every posterior draw to a common labelling.

The mixture likelihood is invariant to permuting the components, so chains may visit
different labellings. Each draw :math:`s` is matched to the EM estimate by the assignment
that minimises

.. math::
    C^{(s)}_{jk} = (\mu^{(s)}_j - \hat\mu_k)^T \hat\Sigma_k^{-1} (\mu^{(s)}_j - \hat\mu_k),

solved by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``). The cost
margin, the extra cost of the next-best permutation, says how clear-cut the match was
(near 0: the draw sits between labellings).

Two whole-sample alternatives, as in R's ``label.switching`` package (Papastamoulis 2016),
need no EM anchor: :func:`stephens_relabel` (Stephens 2000) on membership probabilities and
:func:`ecr_relabel` / :func:`ecr_iterative_relabel` (Papastamoulis and Iliopoulos 2010) on
allocations. All return ``source`` in the convention of :func:`match_to_reference`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

from bgmm.exceptions import InputValueError
from bgmm.params import GMMParams

__all__ = [
    "COMPONENT_DIM",
    "assignment_costs",
    "match_to_reference",
    "relabel_dataset",
    "Relabelling",
    "stephens_relabel",
    "ecr_relabel",
    "ecr_iterative_relabel",
]

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


class Relabelling(NamedTuple):  # numpydoc ignore=PR01
    """Permutations found by a whole-sample relabelling algorithm.

    Attributes
    ----------
    source : ndarray of int, shape (n_draws, K)
        ``source[s, k]`` is the sampled component that receives label ``k``, as in
        :func:`match_to_reference`; :func:`relabel_dataset` applies it.
    n_iter : int
        Number of sweeps over the draws (an assignment problem per draw in each).
    converged : bool
        Whether a sweep left the permutations unchanged (or only swapped tied ones)
        before ``max_iter``.
    objective : ndarray of shape (n_iter + 1,)
        The loss at the start and after each sweep. It never increases.
    """

    source: np.ndarray
    n_iter: int
    converged: bool
    objective: np.ndarray


def stephens_relabel(
    probabilities: np.ndarray,
    *,
    init: np.ndarray | None = None,
    max_iter: int = 100,
    clip: float = 1e-6,
) -> Relabelling:
    r"""Stephens' (2000) relabelling by Kullback-Leibler divergence of the memberships.

    Alternates two steps until the permutations stop changing: the consensus membership
    :math:`Q_{nk}` is the mean over draws of the relabelled probabilities; then each draw
    takes the permutation :math:`\sigma_s` (Hungarian algorithm) that minimises

    .. math::
        \sum_{n} \sum_{k} p_{s,n,\sigma_s(k)}
        \log \frac{p_{s,n,\sigma_s(k)}}{Q_{nk}}.

    The objective, the sum of this over draws, never increases. As in R's
    ``label.switching::stephens``, the probabilities are first clipped to
    ``[clip, 1 - clip]`` and each row renormalised, so that :math:`\log 0` never occurs.

    Parameters
    ----------
    probabilities : ndarray of shape (n_draws, n_samples, K)
        ``[s, n, j]``: probability that observation ``n`` belongs to sampled component
        ``j`` at draw ``s``; each row sums to 1 over the last axis.
    init : ndarray of int, shape (n_draws, K), optional
        Starting permutations in the ``source`` convention, e.g. from
        :func:`match_to_reference`. Default: the identity for every draw.
    max_iter : int, default 100
        Most sweeps over the draws.
    clip : float, default 1e-6
        Probabilities below ``clip`` (above ``1 - clip``) are raised (lowered) to it.

    Returns
    -------
    Relabelling
        ``source`` of shape (n_draws, K); ``objective`` is the total divergence.

    Raises
    ------
    ValueError
        If the shapes, values or ``init`` are invalid.

    See Also
    --------
    ecr_iterative_relabel : The same alternation on hard allocations.

    References
    ----------
    M. Stephens (2000), Dealing with label switching in mixture models. J. R. Stat. Soc. B
    62(4), 795-809. P. Papastamoulis (2016), label.switching: an R package for dealing with
    the label switching problem in MCMC outputs. J. Stat. Softw. 69(1).

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.1, 0.9], [0.7, 0.3]]])
    >>> stephens_relabel(p).source
    array([[0, 1],
           [1, 0]])
    """
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 3 or 0 in p.shape:
        raise InputValueError(
            f"probabilities has shape {p.shape}; expected a non-empty (n_draws, n_samples, K) "
            "array of membership probabilities"
        )
    n_draws, _, k = p.shape
    if not np.all(np.isfinite(p)) or p.min() < 0:
        raise InputValueError(
            "probabilities must be finite and non-negative; pass probabilities, not their logs"
        )
    sums = p.sum(axis=-1)
    worst = np.unravel_index(np.argmax(np.abs(sums - 1)), sums.shape)
    if abs(sums[worst] - 1) > 1e-3:
        raise InputValueError(
            f"probabilities[{worst[0]}, {worst[1]}, :] sums to {sums[worst]:.6g}, not 1; the "
            "last axis must be the components (shape (n_draws, n_samples, K))"
        )
    if not 0 < clip < 0.5:
        raise InputValueError(f"clip = {clip} must lie in (0, 0.5); the default is 1e-6")
    source = _initial_source(init, n_draws, k)

    pc = np.clip(p, clip, 1 - clip)
    pc /= pc.sum(axis=-1, keepdims=True)
    neg_entropy = float(np.sum(pc * np.log(pc)))  # unchanged by relabelling
    by_component = pc.transpose(0, 2, 1)  # (S, j, n)

    def consensus(src: np.ndarray) -> np.ndarray:
        return np.take_along_axis(pc, src[:, None, :], axis=2).mean(axis=0)  # (n, k)

    def costs(q: np.ndarray) -> np.ndarray:
        # cost[s, j, k] = -sum_n p[s, n, j] log Q[n, k]; the entropy term is in the offset
        return -(by_component @ np.log(q))

    return _alternate(costs, consensus, source, consensus(source), neg_entropy, max_iter)


def ecr_relabel(
    allocations: np.ndarray, pivot: np.ndarray, n_components: int | None = None
) -> Relabelling:
    """ECR relabelling: agree as often as possible with a pivot allocation.

    For each draw, the permutation (Hungarian algorithm) that maximises the number of
    observations whose relabelled allocation equals the pivot's (Papastamoulis and
    Iliopoulos 2010; ``label.switching::ecr``).

    Parameters
    ----------
    allocations : ndarray of int, shape (n_draws, n_samples)
        Sampled (or per-draw MAP) component of every observation, labels 0..K-1.
    pivot : ndarray of int, shape (n_samples,)
        The allocation to agree with, e.g. the MAP or EM clustering, labels 0..K-1.
    n_components : int, optional
        K; default one more than the largest label seen. Give it when a component can
        be empty in every draw.

    Returns
    -------
    Relabelling
        ``source`` of shape (n_draws, K); ``n_iter`` is 1; ``objective`` is the number of
        (draw, observation) pairs that disagree with the pivot before and after.

    Raises
    ------
    ValueError
        If the shapes or labels are invalid.

    See Also
    --------
    ecr_iterative_relabel : Lets the pivot follow the relabelled draws.

    References
    ----------
    P. Papastamoulis and G. Iliopoulos (2010), An artificial allocations based solution to
    the label switching problem in Bayesian analysis of mixtures of distributions.
    J. Comput. Graph. Stat. 19(2), 313-331.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.array([[0, 0, 1], [1, 1, 0]])
    >>> ecr_relabel(z, pivot=np.array([0, 0, 1])).source
    array([[0, 1],
           [1, 0]])
    """
    z, k = _check_allocations(allocations, n_components)
    piv = _check_pivot(pivot, z, k)
    agree = _agreements(z, piv, k)
    source = _solve(-agree)
    before = z.size - np.trace(agree, axis1=1, axis2=2).sum()
    after = z.size - _assigned(agree, source)
    return Relabelling(source, 1, True, np.array([before, after], dtype=float))


def ecr_iterative_relabel(
    allocations: np.ndarray,
    n_components: int | None = None,
    *,
    pivot: np.ndarray | None = None,
    init: np.ndarray | None = None,
    max_iter: int = 100,
) -> Relabelling:
    """Iterative ECR: the pivot becomes the per-observation mode of the relabelled draws.

    Alternates :func:`ecr_relabel` with replacing the pivot by the most frequent
    relabelled allocation of every observation (ties to the smallest label) until the
    permutations stop changing (``label.switching::ecr.iterative.1``). The number of
    disagreements with the pivot never increases.

    Parameters
    ----------
    allocations : ndarray of int, shape (n_draws, n_samples)
        Sampled (or per-draw MAP) component of every observation, labels 0..K-1.
    n_components : int, optional
        K; default one more than the largest label seen.
    pivot : ndarray of int, shape (n_samples,), optional
        Starting pivot. Default: the mode under ``init`` if that is given, else the first
        draw's allocation.
    init : ndarray of int, shape (n_draws, K), optional
        Starting permutations in the ``source`` convention, used for the starting pivot.
        ``init`` = identity reproduces ``label.switching``'s default start. Give ``pivot``
        or ``init``, not both.
    max_iter : int, default 100
        Most sweeps over the draws.

    Returns
    -------
    Relabelling
        ``source`` of shape (n_draws, K); ``objective`` counts the (draw, observation)
        pairs that disagree with the current pivot.

    Raises
    ------
    ValueError
        If the shapes or labels are invalid, or both ``pivot`` and ``init`` are given.

    See Also
    --------
    stephens_relabel : The same alternation on membership probabilities.

    Notes
    -----
    ``label.switching`` 1.8's ``ecr.iterative.1`` takes the mode with
    ``order(table(y))[1]``, the position among the labels present rather than the label,
    and relabels allocations with the permutation rather than its inverse, so its pivots
    (and sometimes its answer) can differ from this implementation's.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.array([[0, 0, 1], [1, 1, 0], [0, 0, 1]])
    >>> ecr_iterative_relabel(z).source
    array([[0, 1],
           [1, 0],
           [0, 1]])
    """
    z, k = _check_allocations(allocations, n_components)
    if pivot is not None and init is not None:
        raise InputValueError("give pivot or init, not both: init only serves to make a pivot")
    n_draws = z.shape[0]
    source = _initial_source(init, n_draws, k)
    if pivot is not None:
        start = _check_pivot(pivot, z, k)
    elif init is not None:
        start = _allocation_mode(z, source, k)
    else:
        start = z[0]

    return _alternate(
        lambda piv: -_agreements(z, piv, k),
        lambda src: _allocation_mode(z, src, k),
        source,
        start,
        z.size,
        max_iter,
        centred=pivot is None and init is not None,
    )


def _alternate(
    costs_for: Callable[[Any], np.ndarray],
    centre_of: Callable[[np.ndarray], Any],
    source: np.ndarray,
    centre: Any,
    offset: float,
    max_iter: int,
    *,
    centred: bool = True,
) -> Relabelling:
    """Alternate per-draw assignments with updating the centre (Q or the pivot).

    ``costs_for(centre)[s, j, k]`` is the loss of giving sampled component j label k, up
    to ``offset``. ``centred``: whether ``centre`` is ``centre_of(source)``, so that an
    unchanged first sweep means a fixed point.
    """
    if max_iter < 1:
        raise InputValueError(f"max_iter = {max_iter} must be at least 1")
    costs = costs_for(centre)
    history = [offset + _assigned(costs, source)]
    for it in range(1, max_iter + 1):
        new = _solve(costs)
        value = offset + _assigned(costs, new)
        history.append(value)
        if centred or it > 1:
            current = offset + _assigned(costs, source)
            tol = 1e-12 * max(1.0, abs(current))
            if np.array_equal(new, source) or value >= current - tol:
                # a fixed point, or only ties to the current labelling: keep it
                return Relabelling(source, it, True, np.array(history))
        source = new
        centre = centre_of(source)
        costs = costs_for(centre)
    return Relabelling(source, max_iter, False, np.array(history))


def _assigned(costs: np.ndarray, source: np.ndarray) -> float:
    """Total cost of the assignment ``source`` (label k from sampled ``source[s, k]``)."""
    return float(np.take_along_axis(costs, source[:, None, :], axis=1).sum())


def _solve(costs: np.ndarray) -> np.ndarray:
    """Hungarian assignment of every draw, in the ``source`` convention."""
    n_draws, k, _ = costs.shape
    source = np.empty((n_draws, k), dtype=np.int64)
    for s in range(n_draws):
        rows, cols = linear_sum_assignment(costs[s])
        source[s, cols] = rows
    return source


def _initial_source(init: np.ndarray | None, n_draws: int, k: int) -> np.ndarray:
    """Identity permutations, or ``init`` checked to be one permutation per draw."""
    if init is None:
        return np.tile(np.arange(k, dtype=np.int64), (n_draws, 1))
    src = np.asarray(init)
    if src.shape != (n_draws, k):
        raise InputValueError(
            f"init has shape {src.shape}; expected (n_draws, K) = ({n_draws}, {k}), "
            "one permutation per draw"
        )
    if not np.issubdtype(src.dtype, np.integer):
        raise InputValueError(
            f"init has dtype {src.dtype}; it must hold integer component indices"
        )
    ok = np.all(np.sort(src, axis=1) == np.arange(k), axis=1)
    if not ok.all():
        bad = int(np.argmin(ok))
        raise InputValueError(
            f"init[{bad}] = {src[bad].tolist()} is not a permutation of 0..{k - 1}; each row "
            "must name every component once (0-based)"
        )
    return src.astype(np.int64)


def _check_allocations(
    allocations: np.ndarray, n_components: int | None
) -> tuple[np.ndarray, int]:
    """The allocations as a 2-d int array and the number of components K."""
    z = np.asarray(allocations)
    if z.ndim != 2 or 0 in z.shape:
        raise InputValueError(
            f"allocations has shape {z.shape}; expected a non-empty (n_draws, n_samples) array"
        )
    if not np.issubdtype(z.dtype, np.integer):
        raise InputValueError(
            f"allocations has dtype {z.dtype}; it must hold integer labels 0..K-1 "
            "(convert with .astype(int))"
        )
    k = int(z.max()) + 1 if n_components is None else int(n_components)
    if k < 1:
        raise InputValueError(f"n_components = {n_components} must be at least 1")
    _check_labels(z, k, "allocations")
    return z.astype(np.int64), k


def _check_pivot(pivot: np.ndarray, z: np.ndarray, k: int) -> np.ndarray:
    """The pivot as a 1-d int array of length n_samples with labels 0..K-1."""
    piv = np.asarray(pivot)
    if piv.shape != (z.shape[1],):
        raise InputValueError(
            f"pivot has shape {piv.shape}; expected ({z.shape[1]},), one label per "
            "observation (allocations has n_samples on its second axis)"
        )
    if not np.issubdtype(piv.dtype, np.integer):
        raise InputValueError(f"pivot has dtype {piv.dtype}; it must hold integer labels 0..K-1")
    _check_labels(piv, k, "pivot")
    return piv.astype(np.int64)


def _check_labels(labels: np.ndarray, k: int, name: str) -> None:
    bad = labels[(labels < 0) | (labels >= k)]
    if bad.size:
        raise InputValueError(
            f"{name} holds label {int(bad[0])}, outside 0..{k - 1}: labels are 0-based "
            "(subtract 1 from R's) and n_components must exceed the largest"
        )


def _agreements(z: np.ndarray, pivot: np.ndarray, k: int) -> np.ndarray:
    """``[s, j, k]``: number of observations with ``z[s, n] == j`` and ``pivot[n] == k``."""
    n_draws = z.shape[0]
    flat = (np.arange(n_draws)[:, None] * k + z) * k + pivot[None, :]
    return np.bincount(flat.ravel(), minlength=n_draws * k * k).reshape(n_draws, k, k)


def _allocation_mode(z: np.ndarray, source: np.ndarray, k: int) -> np.ndarray:
    """Most frequent relabelled allocation of every observation (ties: smallest label)."""
    relabelled = np.take_along_axis(np.argsort(source, axis=1), z, axis=1)
    n_samples = z.shape[1]
    flat = np.arange(n_samples)[None, :] * k + relabelled
    counts = np.bincount(flat.ravel(), minlength=n_samples * k).reshape(n_samples, k)
    return np.argmax(counts, axis=1)
