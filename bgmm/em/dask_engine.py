r"""EM on a Dask array: the in-memory iteration, its statistics mapped over the blocks.

An iteration of :func:`bgmm.fit_em` on lazy data (:attr:`bgmm.GMMData.lazy`) is

1. a Dask task per block of rows: the E step at :math:`\theta^t` for every restart and
   the block's sufficient statistics (:mod:`bgmm.em.stats`), packed into one vector;
2. a tree reduction of those vectors (``dask.array`` ``sum`` with ``split_every``): the
   statistics of disjoint rows at one shift simply add;
3. on the client, the M step, :math:`Q`, the regularisation gap and the stopping test
   from the summed statistics: the same graph (``solver._iteration``) as a compiled block,
   so the history, the checks and the result are those of the in-memory fit.

The computation runs on whatever scheduler is active: a ``dask.distributed.Client`` if
one exists, otherwise Dask's threaded scheduler. Nothing the size of the data reaches the
client: a task returns ``n_restarts * n_components * (1 + d + d**2) + 2 n_restarts``
numbers, and the responsibilities, ``evaluate`` and the estimator's ``predict`` of lazy
data are Dask arrays themselves. The compiled function of a task is built once per
process and shape (``solver._compiled_statistics`` is cached), so once per worker, not
once per task.

Starting points come from a seeded subsample of ``START_ROWS`` rows (all rows, in order,
when there are fewer): k-means, k-means++, agglomeration or random responsibilities there,
restarts as in memory; on data with at most ``START_ROWS`` rows the starts, and so the
whole fit, are those of the in-memory fit with the same ``random_state``.
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import numpy as np

from bgmm.em import missing, solver
from bgmm.exceptions import InputValueError
from bgmm.params import GMMParams

__all__ = [
    "START_ROWS",
    "SPLIT_EVERY",
    "WORKER_ENVIRON",
    "DaskIteration",
    "check_weights",
    "dask_scheduler",
    "local_cluster",
    "e_step_lazy",
    "lazy_patterns",
    "start_rows",
]

#: Rows of the seeded subsample on which lazy data's starting points are computed.
START_ROWS = 50_000

#: Statistics vectors summed per task of the tree reduction.
SPLIT_EVERY = 8

#: Environment of the worker processes that ``local_cluster`` starts (glibc's thresholds).
#:
#: Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes glibc's mmap threshold
#: at 128 kB: every large buffer of a task (a block, the E step's chunk intermediates)
#: is then a fresh mmap whose pages fault in zeroed. A block's E step took 2.7 times as
#: long (250,000 rows x 8 features, K = 8: 169 ms against 62 ms, 2026-11-23). With both
#: thresholds at 64 MB freed buffers are reused and a worker keeps at most that much
#: unused memory. Set the same in ``distributed.nanny.pre-spawn-environ`` for a cluster
#: started otherwise.
WORKER_ENVIRON = {"MALLOC_TRIM_THRESHOLD_": 2**26, "MALLOC_MMAP_THRESHOLD_": 2**26}


class StatisticsLayout(NamedTuple):
    """Where each statistic sits in a block's packed vector."""

    n_restarts: int
    n_components: int
    n_features: int

    @property
    def sizes(self) -> tuple[int, ...]:
        """Entries of ``nk``, ``s1``, ``s2``, ``log_likelihood``, ``entropy``."""
        r, k, d = self
        return (r * k, r * k * d, r * k * d * d, r, r)

    @property
    def size(self) -> int:
        """Length of the packed vector."""
        return sum(self.sizes)

    def unpack(self, packed: np.ndarray) -> tuple[np.ndarray, ...]:
        """``nk, s1, s2, log_likelihood, entropy`` in their shapes."""
        r, k, d = self
        shapes = ((r, k), (r, k, d), (r, k, d, d), (r,), (r,))
        pieces = np.split(packed, np.cumsum(self.sizes)[:-1])
        return tuple(p.reshape(s) for p, s in zip(pieces, shapes, strict=True))


class BlockSpec(NamedTuple):
    """What a task needs besides its rows and theta (sent with the graph, small)."""

    layout: StatisticsLayout
    dtype: str
    chunk_size: int | None
    observed: np.ndarray | None = None  # every block's patterns (missing values), or None


def _block_patterns(x) -> np.ndarray:
    """The missingness patterns of one block, ``(P_block, d)`` booleans (True: observed)."""
    x = np.asarray(x)
    return np.unique(~np.isnan(x), axis=0) if len(x) else np.zeros((0, x.shape[1]), bool)


def lazy_patterns(values) -> np.ndarray:
    """The missingness patterns of a Dask array, every block's, in one pass.

    Parameters
    ----------
    values : dask.array.Array of shape (n_samples, n_features)
        The rows, NaN where missing.

    Returns
    -------
    ndarray of bool, shape (n_patterns, n_features)
        The distinct observed-coordinate masks, sorted (as
        :func:`bgmm.em.missing.missingness_patterns`).
    """
    import dask

    parts = dask.compute(*[dask.delayed(_block_patterns)(b) for b in values.to_delayed().ravel()])
    return np.unique(np.concatenate(parts), axis=0)


def _block_index(x: np.ndarray, observed: np.ndarray) -> missing.Patterns:
    """The block's rows mapped to the patterns of the whole data (``observed``)."""
    codes = {row.tobytes(): i for i, row in enumerate(observed)}
    mask = ~np.isnan(x)
    local, inverse = np.unique(mask, axis=0, return_inverse=True)
    lookup = np.array([codes[row.tobytes()] for row in local], dtype=np.int64)
    return missing.Patterns(observed, lookup[np.asarray(inverse).reshape(-1)])


def _block_statistics(x, w=None, *, theta, spec: BlockSpec) -> np.ndarray:
    """The sufficient statistics of one block of rows, packed as a ``(1, size)`` row."""
    layout, dtype = spec.layout, spec.dtype
    r, k, d = layout
    x = np.asarray(x)
    n = x.shape[0]
    if n == 0:
        return np.zeros((1, layout.size))
    weights = None if w is None else np.asarray(w).reshape(n)
    patterns = None if spec.observed is None else _block_index(x, spec.observed)
    rows = solver._chunk_rows(n, r * k, d, spec.chunk_size, dtype, patterns is not None)
    device = solver._to_device(x, weights, rows, dtype, patterns)
    shapes = solver.Shapes(
        d,
        k,
        r,
        dtype,
        n_chunks=n // rows,
        chunk_rows=rows,
        n_rest=n - (n // rows) * rows,
        weighted=weights is not None,
        n_patterns=0 if patterns is None else patterns.n_patterns,
    )
    fn = solver._compiled_statistics(shapes)
    out = fn(*device.inputs(), *(np.asarray(a, dtype=dtype) for a in theta))
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in out])[None]


class DaskIteration:
    r"""One EM iteration over a Dask array, called as a compiled block of one entry.

    Parameters
    ----------
    values : dask.array.Array of shape (n_samples, n_features)
        The rows (one chunk across the features).
    weights : dask.array.Array of shape (n_samples,) or None
        Sample weights, chunked as the rows.
    shapes : solver.Shapes
        Features, components, restarts, dtype and family.
    total_weight : float
        :math:`\sum_n w_n`.
    chunk_size : int or None
        Rows per inner chunk of a task (``fit_em``'s ``chunk_size``).
    observed : ndarray of bool, shape (n_patterns, n_features), optional
        With missing values: every missingness pattern of the data (:func:`lazy_patterns`).
    """

    def __init__(self, values, weights, shapes, total_weight: float, chunk_size, observed=None):
        self.values = values
        self.weights = weights
        self.shapes = shapes
        self.total_weight = total_weight
        layout = StatisticsLayout(shapes.n_restarts, shapes.n_components, shapes.n_features)
        self.spec = BlockSpec(layout, shapes.dtype, chunk_size, observed)
        self.update = solver._compiled_update(shapes)

    def statistics(self, weights, means, covariances) -> tuple[np.ndarray, ...]:
        r"""The statistics at theta summed over every block: one Dask computation.

        Parameters
        ----------
        weights, means, covariances : ndarray
            :math:`\theta` of every restart, ``(n_restarts, ...)``.

        Returns
        -------
        tuple of ndarray
            ``nk``, ``s1``, ``s2``, ``log_likelihood``, ``entropy`` summed over the rows.
        """
        import dask
        import dask.array as da

        theta = dask.delayed((weights, means, covariances), pure=True)
        arrays = [self.values] if self.weights is None else [self.values, self.weights[:, None]]
        size = self.spec.layout.size
        packed = da.map_blocks(
            _block_statistics,
            *arrays,
            theta=theta,
            spec=self.spec,
            chunks=((1,) * self.values.numblocks[0], (size,)),
            dtype=np.float64,
            name=f"bgmm-statistics-{dask.base.tokenize(self.values, self.weights, theta)}",
        )
        total = packed.sum(axis=0, split_every=SPLIT_EVERY).compute()
        return self.spec.layout.unpack(np.asarray(total))

    def __call__(self, weights, means, covariances, ll_prev, stopped, reg_covar, tol, n_active):
        """``BlockOutputs`` of one iteration (``n_active`` is 1 by construction)."""
        dtype = self.shapes.dtype
        stats = [np.asarray(a, dtype=dtype) for a in self.statistics(weights, means, covariances)]
        total = np.asarray(self.total_weight, dtype=dtype)
        return self.update(
            *stats, total, weights, means, covariances, ll_prev, stopped, reg_covar, tol
        )


def start_rows(values, weights, rng: np.random.Generator):
    """The rows (and their weights) on which the starting points are computed.

    Parameters
    ----------
    values : dask.array.Array of shape (n_samples, n_features)
        The data.
    weights : dask.array.Array of shape (n_samples,) or None
        Sample weights.
    rng : numpy Generator
        The fit's random source; not drawn from when every row is used.

    Returns
    -------
    rows : ndarray of shape (n, n_features)
        ``START_ROWS`` rows drawn without replacement, in order (all rows when fewer).
    weights : ndarray of shape (n,) or None
        Theirs.
    """
    import dask

    from bgmm._dask import sample_index

    index = sample_index(values.shape[0], START_ROWS, rng)
    if index is None:
        index = slice(None)
    rows, w = dask.compute(values[index], None if weights is None else weights[index])
    return np.ascontiguousarray(rows, dtype=np.float64), w


def check_weights(sample_weight, values) -> tuple[Any, float]:
    r"""Sample weights for lazy data: a Dask array chunked as the rows, and their sum.

    Parameters
    ----------
    sample_weight : array-like or dask.array.Array of shape (n_samples,)
        The weights.
    values : dask.array.Array of shape (n_samples, n_features)
        The rows, whose chunks the weights take.

    Returns
    -------
    weights : dask.array.Array
        Float64, chunked as ``values``' rows.
    total : float
        :math:`\sum_n w_n`, from one pass that also checks them.

    Raises
    ------
    ValueError
        Wrong shape, negative or non-finite weights, or weights that sum to 0.
    """
    import dask
    import dask.array as da

    n_samples = values.shape[0]
    if not isinstance(sample_weight, da.Array):
        sample_weight = da.from_array(solver._check_sample_weight(sample_weight, n_samples))
    if sample_weight.shape != (n_samples,):
        raise InputValueError(
            f"sample_weight must have shape (n_samples,) = ({n_samples},), got "
            f"{sample_weight.shape}; pass one weight per row of X."
        )
    w = sample_weight.astype(np.float64).rechunk((values.chunks[0],))
    bad = ~da.isfinite(w) | (w < 0)
    n_bad, first, total = dask.compute(bad.sum(), da.argmax(bad), w.sum())
    if n_bad:
        value = float(w[int(first)].compute())
        raise InputValueError(
            f"sample_weight must be finite and >= 0, got {value!r} at row {int(first)} "
            f"({int(n_bad)} such row(s)); weights are repetition counts."
        )
    if not total > 0:
        raise InputValueError(
            "sample_weight is zero for every row (it sums to 0); at least one row needs a "
            "positive weight."
        )
    return w, float(total)


# --------------------------------------------------------------------------------------
# Per-row outputs, lazily
# --------------------------------------------------------------------------------------


def _block_e_step(x, *, params: GMMParams, compute_dtype: str, quantity: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    k = params.n_components
    if x.shape[0] == 0:
        width = {"log_norm": (), "imputed": (x.shape[1],), "variance": (x.shape[1],)}
        return np.empty((0, *width.get(quantity, (k,))))
    if quantity in ("imputed", "variance") or np.isnan(x).any():  # missing values
        if quantity == "log_phi":
            raise InputValueError(
                "the component densities of rows with missing values are those of their "
                "observed coordinates, a different density per row; use "
                "bgmm.evaluate(params, X, missing='em') for their log-likelihoods."
            )
        rows = solver._missing_rows(params, x, compute_dtype)
        if quantity == "resp":
            return np.exp(rows.log_resp)
        return getattr(rows, quantity)
    if quantity == "resp":
        return solver._responsibilities(params, x, compute_dtype)
    rows = solver._e_step_rows(params, x, compute_dtype, densities=quantity == "log_phi")
    return getattr(rows, quantity)


def e_step_lazy(params: GMMParams, values, output: str, dtype: str = "float64"):
    r"""A per-row output of the E step at ``params``, as a Dask array (nothing computed).

    Parameters
    ----------
    params : GMMParams
        The mixture.
    values : dask.array.Array of shape (n_samples, n_features)
        The rows.
    output : {"resp", "log_resp", "log_norm", "log_phi", "imputed", "variance"}
        Responsibilities, their logarithms, :math:`\ln p(x_n)`, :math:`\ln \phi_k(x_n)`
        (complete rows only), or, with missing values, :func:`bgmm.em.impute`'s values
        and variances. Rows with missing values use their observed coordinates.
    dtype : {"float64", "float32"}
        Precision of the computation.

    Returns
    -------
    dask.array.Array
        ``(n_samples, n_components)``, or ``(n_samples,)`` for ``"log_norm"``, chunked as
        the rows.
    """
    import dask.array as da

    k = params.n_components
    per_row = output == "log_norm"
    width = values.shape[1] if output in ("imputed", "variance") else k
    return da.map_blocks(
        _block_e_step,
        values,
        params=params,
        compute_dtype=dtype,
        quantity=output,
        dtype=np.float64,
        chunks=(values.chunks[0],) if per_row else (values.chunks[0], (width,)),
        drop_axis=1 if per_row else None,
        meta=np.empty((0,) if per_row else (0, 0)),
    )


# --------------------------------------------------------------------------------------
# Schedulers
# --------------------------------------------------------------------------------------


try:  # dask.distributed is optional (bgmm[scale]); only local_cluster needs it
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover
    _WorkerPlugin = object


class _OneCPUPerWorker(_WorkerPlugin):
    """Pins each worker process of a local cluster to its own CPU (Linux), at its start.

    XLA sizes its thread pool by the CPUs a process may use, so a worker with one thread
    still ran a block's E step on 1.6 cores here, and two such workers on two cores got in
    each other's way (a speed-up of 1.1 instead of 1.5). Pinned, a worker computes on
    one core, as a single-threaded worker should.
    """

    def __init__(self, cpus: list[int]):
        self.cpus = cpus
        self.name = "bgmm-one-cpu-per-worker"

    def setup(self, worker) -> None:  # numpydoc ignore=PR01
        """Restrict every thread of the worker's process (new ones inherit the mask)."""
        import os

        index = int(worker.name) if str(worker.name).isdigit() else 0
        cpu = {self.cpus[index % len(self.cpus)]}
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), cpu)


def local_cluster(n_workers: int | None = None, **kwargs):
    """A ``distributed.LocalCluster`` of worker processes started with ``WORKER_ENVIRON``.

    Parameters
    ----------
    n_workers : int, optional
        Single-threaded worker processes, each pinned to its own CPU on Linux when there
        are enough (XLA would otherwise spread each one over every core); Dask's default
        for this machine when omitted (no pinning).
    **kwargs
        Passed to ``LocalCluster`` (for example ``silence_logs=False``); the dashboard
        takes a free port by default.

    Returns
    -------
    distributed.LocalCluster
        Close it (or use it in a ``with`` block) when done.
    """
    import os

    import dask
    from distributed import Client, LocalCluster

    options: dict[str, Any] = {"processes": True, "dashboard_address": ":0"}
    if n_workers is not None:
        options.update(n_workers=n_workers, threads_per_worker=1)
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ"), **WORKER_ENVIRON}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(**{**options, **kwargs})
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if n_workers is not None and os.path.isdir("/proc/self/task") and n_workers <= len(cpus):
        with Client(cluster, set_as_default=False) as client:
            client.register_plugin(_OneCPUPerWorker(cpus))
    return cluster


@contextlib.contextmanager
def dask_scheduler(spec: str):
    """A ``dask.distributed.Client`` for the duration of a ``with`` block.

    Parameters
    ----------
    spec : str
        ``"local"`` (a ``LocalCluster`` with Dask's defaults for this machine),
        ``"local:N"`` (``N`` single-threaded worker processes) or the address of a running
        scheduler (``"tcp://host:8786"``). Local workers start with ``WORKER_ENVIRON``.

    Yields
    ------
    distributed.Client
        The client, the default scheduler of Dask computations inside the block; a local
        cluster is closed at its end.

    Raises
    ------
    ValueError
        A malformed ``local:N`` or a scheduler that cannot be reached.
    """
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - installed with bgmm[scale] and [dev]
        raise ImportError(
            "a Dask scheduler needs dask.distributed; install it with pip install 'bgmm[scale]'."
        ) from None
    kind, _, count = spec.partition(":")
    if kind == "local":
        if count and (not count.isdigit() or int(count) < 1):
            raise InputValueError(
                f"scheduler {spec!r}: the number of local workers must be a positive "
                f"integer, as in local:4 (or 'local' for Dask's default)."
            )
        with local_cluster(int(count) if count else None) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(spec, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputValueError(
            f"cannot reach a Dask scheduler at {spec!r} ({exc}); start one with "
            f"'dask scheduler' and workers with 'dask worker ADDRESS', or use "
            f"--scheduler local[:N] for a cluster on this machine."
        ) from None
    with client:
        yield client
