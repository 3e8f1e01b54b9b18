r"""The EM solver: blocks of iterations inside compiled graphs, restarts batched.

An iteration is one pass over the data (:mod:`bgmm.em.step`): at :math:`\theta^t`, the E
step on every chunk of rows gives the sufficient statistics (:mod:`bgmm.em.stats`), their
sum gives :math:`\ln p(X \mid \theta^t)`, :math:`H(q^t)` and the M step
:math:`\theta^{t+1}`, and :math:`Q(\theta^{t+1}, \theta^t)` follows from the statistics in
closed form. A compiled *block* runs up to ``BLOCK_SIZE`` such iterations in a ``scan``,
for all restarts at once (the restart is one more batch dimension of :math:`\theta`), with
the data staying on the device; only :math:`\theta`, the history rows and the stopping flags
of each iteration come back. The host then reads the block in order and stops each restart
at the first iteration whose criterion is met, exactly as a loop of single steps would.

Row :math:`t` of the history is completed one E step later:
:math:`\ln p(X \mid \theta^t)` comes from the E step that starts iteration :math:`t + 1`,
:math:`\mathcal{L}(q^{t-1}, \theta^t) = Q(\theta^t, \theta^{t-1}) + H(q^{t-1})` and
:math:`\mathrm{KL} = \ln p - \mathcal{L}`. A final E step at the returned parameters gives
the responsibilities, chunk by chunk, so a fit holds the data, the returned ``resp`` and one
chunk's intermediates, never an ``(n_samples, n_features**2)`` array.

A covariance is declared singular when its smallest relative Cholesky pivot
(``graph.pivot_ratios``) is below ``SINGULAR_RTOL`` or the factorisation fails.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import xarray as xr
from numpy.lib.recfunctions import unstructured_to_structured
from pytensor.conditional import ifelse
from pytensor.link.jax.linker import JAXLinker

from bgmm._arrays import readonly
from bgmm._validation import check_number
from bgmm.covariance import CovarianceFamily, get_family
from bgmm.data import GMMData, as_data, check_features, check_n_components
from bgmm.em import graph
from bgmm.em.hierarchical import MAX_POINTS, hierarchical_partition
from bgmm.em.missing import Patterns, missingness_patterns, row_e_step
from bgmm.em.stats import SufficientStats
from bgmm.em.step import ChunkedData, data_statistics, m_step
from bgmm.exceptions import (
    ConvergenceWarning,
    InputTypeError,
    InputValueError,
    LikelihoodDecreaseError,
    SingularCovarianceError,
    SingularCovarianceWarning,
)
from bgmm.params import GMMParams

__all__ = [
    "HISTORY_FIELDS",
    "SINGULAR_RTOL",
    "SPURIOUS_GAP",
    "MISSING",
    "EMResult",
    "evaluate",
    "fit_em",
    "impute",
    "log_component_densities",
]

#: PyTensor mode of the compiled EM graphs. JAX (XLA) compiles them in seconds and keeps
#: the loop on whatever device JAX has (a GPU when ``jax[cuda]`` is installed).
COMPILE_MODE = "JAX"

#: Relative Cholesky pivot below which a covariance counts as singular.
SINGULAR_RTOL = 1e-12

#: Regularisation gap (nats of Q) above which a restart's maximum is held up by reg_covar.
SPURIOUS_GAP = 1.0

#: Iterations per compiled block (the host looks at the stopping test once per block).
BLOCK_SIZE = 16

#: Bytes of per-chunk intermediates the engine aims for when it chooses the chunk size
#: (about ``chunk * n_restarts * n_components * (n_features + 2)`` numbers, a few times).
CHUNK_BYTES = 2**23

#: Most rows per call of the final E step and of ``evaluate`` (the output is written in
#: place); fewer when one piece's intermediates would exceed ``CHUNK_BYTES``.
PIECE_ROWS = 2**15

#: Columns of ``EMResult.history``, one row per iteration t = 1, 2, ...
HISTORY_FIELDS = (
    "log_likelihood",  # ln p(X | theta^t), a (weighted) sum over samples
    "q_value",  # Q(theta^t, theta^{t-1})
    "entropy",  # H(q^{t-1})
    "lower_bound",  # L(q^{t-1}, theta^t) = Q + H
    "kl",  # KL(q^{t-1} || p(Z | X, theta^t)) = ln p - L
    "regularization_gap",  # how far reg_covar keeps Q below its maximum
)

InitParams = Literal["kmeans", "k-means++", "random", "hierarchical", "auto"]
_INIT_PARAMS = ("kmeans", "k-means++", "random", "hierarchical", "auto")


def _restart_init(init_params: str, restart: int) -> str:
    """The start of one restart: ``"auto"`` mixes agglomeration, k-means and k-means++."""
    if init_params != "auto":
        return init_params
    return ("hierarchical", "kmeans")[restart] if restart < 2 else "k-means++"


_DTYPES = ("float64", "float32")


# Results and containers are documented by their attributes, not by __init__.
@dataclass(frozen=True, eq=False)
class EMResult:  # numpydoc ignore=PR01
    r"""The outcome of :func:`fit_em` (immutable).

    Attributes
    ----------
    params : GMMParams
        The fitted :math:`\theta`; ``weights``, ``means`` and ``covariances`` are shortcuts.
    resp : ndarray or dask.array.Array of shape (n_samples, n_components)
        Responsibilities :math:`\gamma` at the returned parameters; for lazy data a Dask
        array, computed block by block when asked for.
    log_likelihood : float
        :math:`\ln p(X \mid \theta)` at the returned parameters, a (weighted) sum over
        samples; NaN (with a ``SingularCovarianceWarning``) when a returned covariance is
        singular.
    log_likelihood_init : float
        :math:`\ln p(X \mid \theta^0)` at the starting point of the kept run.
    n_iter : int
    converged : bool
    history : ndarray (structured, read-only) of length n_iter
        One row per iteration with the fields of ``HISTORY_FIELDS``;
        ``history_frame()`` gives it as a DataFrame.
    init_log_likelihoods : ndarray of shape (n_init,)
        Final log-likelihood of every restart; the best one is kept.
    feature_names : tuple of str
    total_weight : float
        :math:`\sum_n w_n`, the number of samples when unweighted.
    covariance_type : str
        The covariance family, in mclust's letters (``"VVV"`` for full; ``family`` gives
        the :class:`~bgmm.covariance.CovarianceFamily`).
    """

    params: GMMParams
    resp: np.ndarray
    log_likelihood: float
    log_likelihood_init: float
    n_iter: int
    converged: bool
    history: np.ndarray
    init_log_likelihoods: np.ndarray
    feature_names: tuple[str, ...]
    total_weight: float
    covariance_type: str = "VVV"

    @property
    def family(self) -> CovarianceFamily:
        """The covariance family of the fit."""
        return get_family(self.covariance_type)

    @property
    def n_parameters(self) -> int:
        r"""Free parameters (mclust's ``df``): the family's, the means and the weights."""
        k, d = self.params.n_components, self.params.n_features
        return self.family.n_parameters(k, d) + k * d + k - 1

    @property
    def weights(self) -> np.ndarray:
        r""":math:`\pi`, shape ``(n_components,)``."""
        return self.params.weights

    @property
    def means(self) -> np.ndarray:
        r""":math:`\mu`, shape ``(n_components, n_features)``."""
        return self.params.means

    @property
    def covariances(self) -> np.ndarray:
        r""":math:`\Sigma`, shape ``(n_components, n_features, n_features)``."""
        return self.params.covariances

    def history_frame(self) -> pd.DataFrame:
        """The per-iteration history as a DataFrame indexed by iteration (1, 2, ...).

        Returns
        -------
        pandas.DataFrame
            One column per field of ``HISTORY_FIELDS``.
        """
        frame = pd.DataFrame(self.history)
        frame.index = pd.RangeIndex(1, len(frame) + 1, name="iteration")
        return frame


# --------------------------------------------------------------------------------------
# Compiled functions, one set per (n_features, n_components, n_restarts, dtype)
# --------------------------------------------------------------------------------------


class BlockOutputs(NamedTuple):
    r"""What a compiled block returns: one entry per iteration of the block.

    Entry ``j`` of a block that starts at :math:`\theta^a` belongs to iteration
    ``t = a + j``: the E step at :math:`\theta^t` and the M step that makes
    :math:`\theta^{t+1}`. Shapes lead with ``(BLOCK_SIZE, n_restarts)``.
    """

    weights: np.ndarray  # theta^{t+1}
    means: np.ndarray
    covariances: np.ndarray
    log_likelihood: np.ndarray  # ln p(X | theta^t)
    done: np.ndarray  # stopped after this entry (converged, singular or past the block)
    nk: np.ndarray  # N_k of the E step at theta^t (makes theta^{t+1})
    entropy: np.ndarray  # H(q^t)
    q_value: np.ndarray  # Q(theta^{t+1}, theta^t)
    regularization_gap: np.ndarray  # of theta^{t+1}
    q_start: np.ndarray  # Q(theta^t, theta^t); ln p gains at least q_value - q_start
    pivots: np.ndarray  # of theta^t
    converged: np.ndarray  # |ln p(theta^t) - ln p(theta^{t-1})| / sum(w) < tol


class Evaluation(NamedTuple):
    """The E step at given parameters on a piece of rows (``evaluate``)."""

    log_resp: np.ndarray
    log_norm: np.ndarray
    log_phi: np.ndarray
    pivots: np.ndarray


class MixtureFunctions(NamedTuple):
    """Compiled E steps at one mixture (no data shape), for pieces of rows."""

    evaluate: Callable[..., Any]
    responsibilities: Callable[..., Any]  # gamma alone: the final E step of a fit


class Shapes(NamedTuple):
    """The static shapes a compiled set of functions is specialised to."""

    n_features: int
    n_components: int
    n_restarts: int
    dtype: str
    n_chunks: int = 1
    chunk_rows: int = 1
    n_rest: int = 0
    weighted: bool = True  # False: unit sample weights, no weight arrays
    family: str = "VVV"  # the covariance family (bgmm.covariance)
    n_patterns: int = 0  # missingness patterns (bgmm.em.missing); 0: complete data


# Fits may run in threads (Dask's threaded scheduler, a thread pool of fits): one thread
# compiles a function while the others wait, and each thread calls its own copy, because a
# PyTensor function keeps its inputs and outputs in storage that two calls must not share.
_COMPILE_LOCK = threading.RLock()
_THREAD = threading.local()

#: Copies of compiled functions a thread other than the main one keeps (least recent go).
THREAD_COPIES = 64


def thread_own(fn):
    """``fn`` in the main thread; in any other thread, that thread's copy of it.

    A copy shares the compiled graph, not the storage of a call (a JAX function compiles
    its copy once, at its first call in the thread).

    Parameters
    ----------
    fn : pytensor.compile.function.types.Function
        A compiled function.

    Returns
    -------
    Function
        One that only the calling thread calls.
    """
    if threading.current_thread() is threading.main_thread():
        return fn
    copies = _THREAD.__dict__.setdefault("copies", OrderedDict())
    pair = copies.get(id(fn))
    if pair is None or pair[0] is not fn:  # the pair keeps fn alive: its id stays its own
        own = fn.copy(share_memory=False)
        own.trust_input = fn.trust_input
        pair = copies[id(fn)] = (fn, own)
        while len(copies) > THREAD_COPIES:
            copies.popitem(last=False)
    copies.move_to_end(id(fn))
    return pair[1]


def _compiled_block(shapes: Shapes) -> Callable[..., Any]:
    with _COMPILE_LOCK:
        return thread_own(_compile_block(shapes, COMPILE_MODE))


def _compiled_mixture(n_features: int, n_components: int, dtype: str) -> MixtureFunctions:
    with _COMPILE_LOCK:
        fns = _compile_mixture(n_features, n_components, dtype, COMPILE_MODE)
        return MixtureFunctions(*(thread_own(fn) for fn in fns))


def _compiled_missing_rows(n_features: int, n_components: int, dtype: str):
    with _COMPILE_LOCK:
        return thread_own(_compile_missing_rows(n_features, n_components, dtype, COMPILE_MODE))


def _compiled_m_step(n_features: int, n_components: int, dtype: str, family: str):
    with _COMPILE_LOCK:
        return thread_own(_compile_m_step(n_features, n_components, dtype, family, COMPILE_MODE))


#: Most features for which the EM graphs compile without XLA's YNNPACK fusions on the CPU.
#: Their d x d products per component are too small for YNNPACK, whose per-call cost then
#: dominates: on Old Faithful (d = 2, 272 rows) an iteration of ten restarts takes 0.30 ms
#: without them and 0.62 ms with them. From d = 8 on they are kept: as fast at N = 1e5,
#: d = 8 (within this machine's noise) and faster at d = 32 (bench_em_iteration.py and
#: bench_select.py, 2026-11-23).
SMALL_FEATURES = 4

_NO_YNN_FUSIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.cache
def _no_ynn_fusions_supported() -> bool:
    """Whether this jaxlib compiles for a CPU and takes the option (it is experimental)."""
    import jax

    if jax.default_backend() != "cpu":
        return False
    try:
        jax.jit(lambda x: x + 1.0, compiler_options=_NO_YNN_FUSIONS).lower(1.0).compile()
    except Exception:  # an older or newer XLA without the option: compile with its defaults
        return False
    return True


class _SmallFeaturesJAXLinker(JAXLinker):
    """PyTensor's JAX linker, compiling without XLA's YNNPACK fusions (``SMALL_FEATURES``)."""

    def jit_compile(self, fn):  # numpydoc ignore=GL08
        if self.scalar_shape_inputs:  # bgmm's graphs have none; keep PyTensor's handling
            return super().jit_compile(fn)
        import jax

        return jax.jit(fn, compiler_options=_NO_YNN_FUSIONS)


def _function(inputs, outputs, mode, n_features: int):
    # PyTensor's scan_pushout rewrites for sequences move the per-chunk work out of the
    # scan over chunks, computing it for all rows at once: the (n_components, n_samples,
    # n_features) arrays the chunks exist to avoid (the non-sequence push-out, which keeps
    # the Cholesky factors out of the loop, stays). Its "symbolic_op_recognition" rewrites
    # turn the E step, already shifted by its maximum, into a softmax plus a separate
    # logsumexp: two exponentials per entry instead of one.
    mode = pytensor.compile.mode.get_mode(mode).excluding(
        "scan_pushout_seqs_ops",
        "scan_pushout_dot1",
        "scan_pushout_add",
        "symbolic_op_recognition",
    )
    if (
        type(mode.linker) is JAXLinker
        and n_features <= SMALL_FEATURES
        and _no_ynn_fusions_supported()
    ):
        mode = pytensor.compile.mode.Mode(
            linker=_SmallFeaturesJAXLinker(), optimizer=mode.provided_optimizer
        )
    fn = pytensor.function(inputs, outputs, mode=mode)
    # Inputs are built by this module with the right dtypes; skipping PyTensor's checks
    # lets device arrays (the data) pass to the compiled graph without a copy to the host.
    fn.trust_input = True
    return fn


class _GraphSettings(NamedTuple):
    reg_covar: pt.TensorVariable
    tol: pt.TensorVariable
    family: CovarianceFamily
    dtype: str


def _iteration(stats, factors, w, mu, cov, ll_prev, stopped, keep, settings: _GraphSettings):
    """The outputs of one iteration (``BlockOutputs``' fields) from the summed statistics.

    The M step, Q, the regularisation gap and the stopping test at the E step of
    ``stats``; restarts flagged in ``keep`` pass theta through unchanged. The compiled
    block (statistics from its own pass over the chunks) and the update of a Dask fit
    (statistics summed over the blocks of a Dask array) share it, so both check and
    record every iteration the same way.
    """
    reg_covar, tol, family, dtype = settings
    new = m_step(stats, reg_covar, family, previous=cov)
    q = graph.q_value_from_statistics(
        stats.nk, new.scatter, new.weights, graph.cholesky_factors(new.covariances)
    )
    # The scatter about the E step's own means is S2 (the shift), so Q(theta^t, theta^t)
    # costs no pass; with it the EM inequality checks every step exactly.
    q_start = graph.q_value_from_statistics(stats.nk, stats.s2, w, factors.chol)
    best = family.m_step(stats.nk, new.scatter, cov)
    gap = graph.regularization_gap(stats.nk, new.scatter, new.covariances, best, reg_covar)
    singular = pt.any(~pt.ge(factors.pivots, SINGULAR_RTOL), axis=-1)
    change = pt.abs(stats.log_likelihood - ll_prev) / stats.total_weight
    converged = ~stopped & pt.lt(change, tol)
    new = new._replace(**{name: pt.cast(v, dtype) for name, v in new._asdict().items()})
    return [
        pt.switch(keep[:, None], w, new.weights),
        pt.switch(keep[:, None, None], mu, new.means),
        pt.switch(keep[:, None, None, None], cov, new.covariances),
        pt.switch(keep, ll_prev, pt.cast(stats.log_likelihood, dtype)),
        keep | converged | singular,
        pt.cast(stats.nk, dtype),
        pt.cast(stats.entropy, dtype),
        pt.cast(q, dtype),
        pt.cast(gap, dtype),
        pt.cast(q_start, dtype),
        pt.cast(factors.pivots, dtype),
        converged,
    ]


def _theta_inputs(shapes: Shapes):
    d, k, r, dtype = shapes.n_features, shapes.n_components, shapes.n_restarts, shapes.dtype
    return (
        pt.tensor("weights", shape=(r, k), dtype=dtype),
        pt.tensor("means", shape=(r, k, d), dtype=dtype),
        pt.tensor("covariances", shape=(r, k, d, d), dtype=dtype),
    )


def _data_inputs(shapes: Shapes) -> ChunkedData:
    d, dtype = shapes.n_features, shapes.dtype
    m, c, rest, weighted = shapes.n_chunks, shapes.chunk_rows, shapes.n_rest, shapes.weighted
    p = shapes.n_patterns
    return ChunkedData(
        chunks=pt.tensor("chunks", shape=(m, c, d), dtype=dtype),
        chunk_weights=pt.tensor("chunk_weights", shape=(m, c), dtype=dtype) if weighted else None,
        rest=pt.tensor("rest", shape=(rest, d), dtype=dtype) if rest else None,
        rest_weights=(
            pt.tensor("rest_weights", shape=(rest,), dtype=dtype) if weighted and rest else None
        ),
        chunk_patterns=pt.tensor("chunk_patterns", shape=(m, c), dtype="int64") if p else None,
        rest_patterns=(
            pt.tensor("rest_patterns", shape=(rest,), dtype="int64") if p and rest else None
        ),
        observed=pt.tensor("observed", shape=(p, d), dtype=dtype) if p else None,
    )


# Static shapes let PyTensor fix the length of the scan over chunks (JAX needs it); JAX
# compiles once per input shape in any case. The cache keeps the recent problem shapes
# (a model-selection grid, 14 families x 5 K, is 70 of them).
@functools.lru_cache(maxsize=256)
def _compile_block(shapes: Shapes, mode: str) -> Callable[..., Any]:
    d, r, dtype = shapes.n_features, shapes.n_restarts, shapes.dtype
    family = get_family(shapes.family)
    data = _data_inputs(shapes)
    weights, means, covariances = _theta_inputs(shapes)
    log_likelihood = pt.tensor("log_likelihood", shape=(r,), dtype=dtype)
    done = pt.tensor("done", shape=(r,), dtype="bool")
    reg_covar = pt.scalar("reg_covar", dtype=dtype)
    tol = pt.scalar("tol", dtype=dtype)
    n_active = pt.scalar("n_active", dtype="int64")
    settings = _GraphSettings(reg_covar, tol, family, dtype)

    def compute(step, w, mu, cov, ll_prev, stopped):
        factors = graph.factorize(cov)
        stats = data_statistics(data, w, mu, factors, cov)
        keep = stopped | pt.ge(step, n_active)
        return _iteration(stats, factors, w, mu, cov, ll_prev, stopped, keep, settings)

    def iteration(step, w, mu, cov, ll_prev, stopped):
        # Once every restart has stopped (or the block is past n_active), the rest of the
        # block passes theta through without touching the data: a lazy branch (lax.cond).
        idle = pt.all(stopped) | pt.ge(step, n_active)
        nan = np.array(np.nan, dtype=dtype)
        passed = [
            w,
            mu,
            cov,
            ll_prev,
            pt.ones_like(stopped),
            pt.full_like(w, nan),
            pt.full_like(ll_prev, nan),
            pt.full_like(ll_prev, nan),
            pt.full_like(ll_prev, nan),
            pt.full_like(ll_prev, nan),
            pt.full_like(w, nan),
            pt.zeros_like(stopped),
        ]
        return list(ifelse(idle, passed, compute(step, w, mu, cov, ll_prev, stopped)))

    outputs = pytensor.scan(
        iteration,
        sequences=[pt.arange(BLOCK_SIZE, dtype="int64")],
        outputs_info=[weights, means, covariances, log_likelihood, done, *([None] * 7)],
        return_updates=False,
    )
    data_inputs = [v for v in data if v is not None]
    return _function(
        [
            *data_inputs,
            weights,
            means,
            covariances,
            log_likelihood,
            done,
            reg_covar,
            tol,
            n_active,
        ],
        list(outputs),
        mode,
        d,
    )


def _compiled_update(shapes: Shapes) -> Callable[..., Any]:
    with _COMPILE_LOCK:
        return thread_own(_compile_update(shapes, COMPILE_MODE))


def _compiled_statistics(shapes: Shapes) -> Callable[..., Any]:
    with _COMPILE_LOCK:  # the tasks of a Dask computation
        return thread_own(_compile_statistics(shapes, COMPILE_MODE))


@functools.lru_cache(maxsize=256)
def _compile_update(shapes: Shapes, mode: str) -> Callable[..., Any]:
    # One iteration from statistics summed elsewhere (the blocks of a Dask array): the
    # block's iteration without its pass over the data, its outputs one block entry long.
    d, k, r, dtype = shapes.n_features, shapes.n_components, shapes.n_restarts, shapes.dtype
    weights, means, covariances = _theta_inputs(shapes)
    nk = pt.tensor("nk", shape=(r, k), dtype=dtype)
    s1 = pt.tensor("s1", shape=(r, k, d), dtype=dtype)
    s2 = pt.tensor("s2", shape=(r, k, d, d), dtype=dtype)
    ll = pt.tensor("log_likelihood", shape=(r,), dtype=dtype)
    entropy = pt.tensor("entropy", shape=(r,), dtype=dtype)
    total = pt.scalar("total_weight", dtype=dtype)
    ll_prev = pt.tensor("previous_log_likelihood", shape=(r,), dtype=dtype)
    stopped = pt.tensor("done", shape=(r,), dtype="bool")
    reg_covar = pt.scalar("reg_covar", dtype=dtype)
    tol = pt.scalar("tol", dtype=dtype)
    settings = _GraphSettings(reg_covar, tol, get_family(shapes.family), dtype)
    stats = SufficientStats(nk, s1, s2, means, ll, entropy, total)
    factors = graph.factorize(covariances)
    outputs = _iteration(
        stats, factors, weights, means, covariances, ll_prev, stopped, stopped, settings
    )
    return _function(
        [
            nk,
            s1,
            s2,
            ll,
            entropy,
            total,
            weights,
            means,
            covariances,
            ll_prev,
            stopped,
            reg_covar,
            tol,
        ],
        [o[None] for o in outputs],
        mode,
        d,
    )


@functools.lru_cache(maxsize=256)
def _compile_statistics(shapes: Shapes, mode: str) -> Callable[..., Any]:
    # The E step and its statistics on one block of rows, for every restart: what a Dask
    # task computes. Built once per shape in each process (each Dask worker keeps its own).
    data = _data_inputs(shapes)
    weights, means, covariances = _theta_inputs(shapes)
    stats = data_statistics(data, weights, means, graph.factorize(covariances), covariances)
    return _function(
        [*(v for v in data if v is not None), weights, means, covariances],
        [stats.nk, stats.s1, stats.s2, stats.log_likelihood, stats.entropy],
        mode,
        shapes.n_features,
    )


@functools.cache
def _compile_mixture(d: int, k: int, dtype: str, mode: str) -> MixtureFunctions:
    # The E step at one mixture, for a piece of rows (final E step, predict, score).
    X = pt.matrix("X", shape=(None, d), dtype=dtype)
    w1 = pt.tensor("weights", shape=(k,), dtype=dtype)
    mu1 = pt.tensor("means", shape=(k, d), dtype=dtype)
    cov1 = pt.tensor("covariances", shape=(k, d, d), dtype=dtype)
    factors = graph.factorize(cov1)
    log_phi = graph.log_gaussian_density(X, mu1, factors.chol)
    step = graph.e_step(graph.weighted_log_density(log_phi, w1))
    evaluate_fn = _function(
        [X, w1, mu1, cov1], [step.log_resp, step.log_norm, log_phi, factors.pivots], mode, d
    )
    resp_fn = _function([X, w1, mu1, cov1], step.resp, mode, d)
    return MixtureFunctions(evaluate=evaluate_fn, responsibilities=resp_fn)


@functools.cache
def _compile_missing_rows(d: int, k: int, dtype: str, mode: str) -> Callable[..., Any]:
    # The E step at one mixture on rows with missing values, and the imputation.
    X = pt.matrix("X", shape=(None, d), dtype=dtype)
    pattern = pt.vector("pattern", dtype="int64")
    observed = pt.matrix("observed", shape=(None, d), dtype=dtype)
    w1 = pt.tensor("weights", shape=(k,), dtype=dtype)
    mu1 = pt.tensor("means", shape=(k, d), dtype=dtype)
    cov1 = pt.tensor("covariances", shape=(k, d, d), dtype=dtype)
    rows = row_e_step(X, pattern, observed, w1, mu1, cov1)
    pivots = graph.factorize(cov1).pivots
    return _function([X, pattern, observed, w1, mu1, cov1], [*rows, pivots], mode, d)


@functools.cache
def _compile_m_step(d: int, k: int, dtype: str, family: str, mode: str) -> Callable[..., Any]:
    # The M step alone, from statistics computed elsewhere (the starting partition).
    nk = pt.tensor("nk", shape=(k,), dtype=dtype)
    s1 = pt.tensor("s1", shape=(k, d), dtype=dtype)
    s2 = pt.tensor("s2", shape=(k, d, d), dtype=dtype)
    shift = pt.tensor("shift", shape=(k, d), dtype=dtype)
    total = pt.scalar("total_weight", dtype=dtype)
    reg_covar = pt.scalar("reg_covar", dtype=dtype)
    new = m_step(
        SufficientStats(nk, s1, s2, shift, None, None, total), reg_covar, get_family(family)
    )
    return _function(
        [nk, s1, s2, shift, total, reg_covar],
        [new.weights, new.means, new.covariances],
        mode,
        d,
    )


# --------------------------------------------------------------------------------------
# Checks and messages
# --------------------------------------------------------------------------------------


def _check_dtype(dtype) -> str:
    name = np.dtype(dtype).name if isinstance(dtype, type | np.dtype) else str(dtype)
    if name not in _DTYPES:
        raise InputValueError(
            f"dtype must be one of {_DTYPES}, got {dtype!r}; float64 is the default and "
            f"float32 halves the memory of data that keep 7 significant digits."
        )
    return name


def _check_scale(data: GMMData, dtype: str) -> None:
    """Refuse data whose squared differences, summed over the samples, overflow ``dtype``."""
    magnitudes = data.largest_magnitudes()
    largest = float(magnitudes.max())
    n, d = data.n_samples, data.n_features
    limit = float(np.sqrt(np.finfo(dtype).max / (4.0 * n * d)))
    if largest > limit:
        column = data.feature_names[int(magnitudes.argmax())]
        raise InputValueError(
            f"X holds values as large as {largest:.3g} in magnitude (column {column!r}): "
            f"their squares, summed over {n} samples, overflow {dtype} (largest usable "
            f"magnitude here {limit:.3g}). Standardise the data first, "
            f"bgmm.as_data(X, standardize=True), or divide X by a power of ten and "
            f"multiply the fitted means (and covariances, by its square) back."
        )


def _check_sample_weight(sample_weight, n_samples: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"sample_weight must hold real numbers ({exc}).") from None
    if w.shape != (n_samples,):
        raise InputValueError(
            f"sample_weight must have shape (n_samples,) = ({n_samples},), got {w.shape}; "
            f"pass one weight per row of X."
        )
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        raise InputValueError(
            f"sample_weight must be finite and >= 0, got {float(w[bad[0]])!r} at row {bad[0]} "
            f"({bad.size} such row(s)); weights are repetition counts."
        )
    if not w.sum() > 0:
        raise InputValueError(
            "sample_weight is zero for every row (it sums to 0); at least one row needs a "
            "positive weight."
        )
    return w


def _singular(pivots: np.ndarray) -> np.ndarray:
    """Which covariances are singular, from their relative pivots (NaN counts as singular)."""
    return ~(pivots >= SINGULAR_RTOL)


def _singular_components(pivots: np.ndarray) -> list[int]:
    return [int(k) for k in np.flatnonzero(_singular(pivots))]


def _empty(nk: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Which components got no responsibility (N_k not positive, or means not finite)."""
    return ~(nk > 0) | ~np.isfinite(means).all(axis=-1)


def _lowest_allowed(previous_ll, q_start, q_value, total_weight):
    """The EM inequality's floor for ln p after a step, and the round-off it allows.

    ln p(theta^t) - ln p(theta^{t-1}) >= Q(theta^t, theta^{t-1}) - Q(theta^{t-1},
    theta^{t-1}), so ln p can fall only by what the M step lost of Q (reg_covar, or a start
    outside the family), at most the regularisation gap. Scalars or arrays.
    """
    allowed = np.maximum(0.0, q_start - q_value)
    roundoff = 1e-9 * np.maximum(total_weight, np.abs(previous_ll))
    return previous_ll - allowed - roundoff, allowed, roundoff


def _describe_covariance(cov: np.ndarray) -> str:
    if not np.isfinite(cov).all():
        return "entries not finite"
    return f"eigenvalues {np.round(np.linalg.eigvalsh(cov), 10).tolist()}"


def _singular_message(components, covariances, where, reg_covar=None, family=None) -> str:
    setting = "" if reg_covar is None else f" with reg_covar={reg_covar}"
    if family is not None and family.shares_covariance:
        # One matrix for every component: name it once, and the families that need less of it.
        simpler = {"EEE": ["EEI", "EII"], "EEI": ["EII"]}.get(family.name, [])
        alternative = (
            f"use a family with fewer parameters ({' or '.join(simpler)}), " if simpler else ""
        )
        return (
            f"the covariance shared by every component (covariance_type={family.name!r}) is "
            f"singular {where} ({_describe_covariance(np.asarray(covariances[0]))}), so the "
            f"Gaussian densities are undefined{setting}. Increase reg_covar (e.g. 1e-6 times "
            f"the data's variance), {alternative}or drop a constant or duplicated feature."
        )
    details = "; ".join(
        f"component {k}: {_describe_covariance(np.asarray(covariances[k]))}" for k in components
    )
    kind = "" if family is None or family.name == "VVV" else f" (covariance_type={family.name!r})"
    return (
        f"the covariance of component(s) {components}{kind} is singular {where} ({details}), "
        f"so its Gaussian density is undefined{setting}. Increase reg_covar "
        f"(e.g. 1e-6 times the data's variance), use fewer components, or scale the data."
    )


# --------------------------------------------------------------------------------------
# Data on the device, in chunks
# --------------------------------------------------------------------------------------


class DeviceData(NamedTuple):
    """The rows as the compiled block reads them: equal chunks and the remainder.

    The weights are None for unit weights, ``rest`` when the chunks hold every row. On the
    CPU the chunks are the data's own
    (aligned) memory, read in place; on an accelerator, one copy.
    """

    chunks: Any
    chunk_weights: Any
    rest: Any
    rest_weights: Any
    chunk_patterns: Any = None
    rest_patterns: Any = None
    observed: Any = None

    def inputs(self) -> list:
        """The arrays, in the order the compiled block takes them."""
        return [a for a in self if a is not None]


def _chunk_rows(
    n_samples, n_mixture_components, n_features, chunk_size, dtype, missing: bool = False
) -> int:
    if chunk_size is None:
        # With missing values each row reads its pattern's two (d, d) matrices per component.
        per_component = 3 * n_features + 4 + (2 * n_features**2 + n_features if missing else 0)
        per_row = np.dtype(dtype).itemsize * n_mixture_components * per_component
        chunk_size = max(64, CHUNK_BYTES // per_row)
    return min(int(chunk_size), n_samples)


def _to_device(
    values: np.ndarray, sample_weight, chunk_rows: int, dtype: str, patterns=None
) -> DeviceData:
    """The rows in chunks on the device; with ``patterns``, NaN as 0 and each row's pattern."""
    n, d = values.shape
    n_chunks = n // chunk_rows
    split = n_chunks * chunk_rows

    def put(a, shape, dtype=dtype):
        # A reshape of the leading rows is a view. JAX's CPU device reads a 64-byte aligned
        # array in place (as_data aligns the data); an accelerator keeps one copy.
        a = np.ascontiguousarray(a, dtype=dtype).reshape(shape)
        if COMPILE_MODE != "JAX":
            return a
        import jax

        # Importing PyTensor's JAX backend switches JAX to float64 (jax_enable_x64); a
        # device_put before that would silently store float32.
        import pytensor.link.jax.dispatch  # noqa: F401

        out = jax.device_put(a)
        assert out.dtype == a.dtype, (out.dtype, a.dtype)
        return out

    weighted = sample_weight is not None
    if patterns is not None:
        values = np.nan_to_num(values, nan=0.0)  # never read: each pattern masks its own
    device = DeviceData(
        chunks=put(values[:split], (n_chunks, chunk_rows, d)),
        chunk_weights=put(sample_weight[:split], (n_chunks, chunk_rows)) if weighted else None,
        rest=put(values[split:], (n - split, d)) if split < n else None,
        rest_weights=(
            put(sample_weight[split:], (n - split,)) if weighted and split < n else None
        ),
    )
    if patterns is None:
        return device
    index = patterns.index
    return device._replace(
        chunk_patterns=put(index[:split], (n_chunks, chunk_rows), "int64"),
        rest_patterns=put(index[split:], (n - split,), "int64") if split < n else None,
        observed=put(patterns.observed, patterns.observed.shape),
    )


def _padded_pieces(values: np.ndarray, n_components: int, dtype: str, missing: bool = False):
    """``(start, stop, piece)`` over the rows, each piece zero-padded to a power of two.

    Pieces have at most ``PIECE_ROWS`` rows and stay within the chunk budget
    ``CHUNK_BYTES``; padding keeps the number of distinct compiled shapes small.
    """
    n_samples, n_features = values.shape
    budget = _chunk_rows(PIECE_ROWS, n_components, n_features, None, dtype, missing)
    most = 1 << (budget.bit_length() - 1)
    size = most if n_samples >= most else max(8, 1 << (n_samples - 1).bit_length())
    for start in range(0, n_samples, size):
        stop = min(start + size, n_samples)
        piece = np.zeros((size, n_features), dtype=dtype)
        piece[: stop - start] = values[start:stop]
        yield start, stop, piece


class RowResults(NamedTuple):
    """The E step on every row (``_e_step_rows``); ``log_phi`` is None unless asked for."""

    log_resp: np.ndarray
    log_norm: np.ndarray
    log_phi: np.ndarray | None
    pivots: np.ndarray


def _e_step_rows(
    params: GMMParams, values: np.ndarray, dtype: str, *, densities=False
) -> RowResults:
    """The E step on every row, a piece at a time, written into preallocated arrays."""
    n, k = values.shape[0], params.n_components
    fns = _compiled_mixture(params.n_features, k, dtype)
    theta = [np.asarray(a, dtype=dtype) for a in (params.weights, params.means)]
    theta.append(np.asarray(params.covariances, dtype=dtype))
    log_resp = np.empty((n, k))
    log_norm = np.empty(n)
    log_phi = np.empty((n, k)) if densities else None
    pivots = None
    for start, stop, piece in _padded_pieces(values, k, dtype):
        out = Evaluation(*fns.evaluate(piece, *theta))
        rows = slice(0, stop - start)
        log_resp[start:stop] = np.asarray(out.log_resp)[rows]
        log_norm[start:stop] = np.asarray(out.log_norm)[rows]
        if densities:
            log_phi[start:stop] = np.asarray(out.log_phi)[rows]
        pivots = np.asarray(out.pivots)
    return RowResults(log_resp, log_norm, log_phi, pivots)


class MissingRows(NamedTuple):
    """The E step on rows with missing values (``_missing_rows``), host arrays."""

    log_resp: np.ndarray
    log_norm: np.ndarray
    imputed: np.ndarray
    variance: np.ndarray
    pivots: np.ndarray


def _missing_rows(params: GMMParams, values: np.ndarray, dtype: str = "float64") -> MissingRows:
    """The E step and the imputation on every row (NaN where missing), a piece at a time."""
    n, k = values.shape[0], params.n_components
    patterns = missingness_patterns(values)
    fn = _compiled_missing_rows(params.n_features, k, dtype)
    theta = [np.asarray(a, dtype=dtype) for a in (params.weights, params.means)]
    theta.append(np.asarray(params.covariances, dtype=dtype))
    observed = patterns.observed.astype(dtype)
    filled = np.nan_to_num(values, nan=0.0)
    out = MissingRows(
        np.empty((n, k)), np.empty(n), np.empty(values.shape), np.empty(values.shape), None
    )
    pivots = None
    for start, stop, piece in _padded_pieces(filled, k, dtype, missing=True):
        index = np.zeros(len(piece), dtype=np.int64)
        index[: stop - start] = patterns.index[start:stop]
        rows = fn(piece, index, observed, *theta)
        for target, got in zip(out[:4], rows[:4], strict=True):
            target[start:stop] = np.asarray(got)[: stop - start]
        pivots = np.asarray(rows[4])
    return out._replace(pivots=pivots)


def _responsibilities(params: GMMParams, values: np.ndarray, dtype: str) -> np.ndarray:
    """The final E step of a fit: gamma alone, a piece at a time, into one array."""
    n, k = values.shape[0], params.n_components
    fn = _compiled_mixture(params.n_features, k, dtype).responsibilities
    theta = [np.asarray(a, dtype=dtype) for a in (params.weights, params.means)]
    theta.append(np.asarray(params.covariances, dtype=dtype))
    resp = np.empty((n, k))
    for start, stop, piece in _padded_pieces(values, k, dtype):
        resp[start:stop] = np.asarray(fn(piece, *theta))[: stop - start]
    return resp


# --------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------


def _initial_partition(
    values, sample_weight, n_components: int, init_params: str, rng, seed: int | None = None
):
    """Hard labels (k-means, k-means++, agglomeration) or soft random responsibilities.

    k-means and k-means++ draw their seed from ``rng`` unless ``seed`` is given.
    """
    n = values.shape[0]
    if init_params == "random":
        resp = rng.uniform(size=(n, n_components))
        return resp / resp.sum(axis=1, keepdims=True)
    if init_params == "hierarchical":
        return hierarchical_partition(values, n_components, rng)
    from sklearn.cluster import KMeans, kmeans_plusplus

    if seed is None:
        seed = _draw_seed(rng)
    if init_params == "kmeans":
        kmeans = KMeans(n_clusters=n_components, n_init=1, random_state=seed)
        return kmeans.fit(values, sample_weight=sample_weight).labels_
    centres, _ = kmeans_plusplus(
        values, n_components, random_state=seed, sample_weight=sample_weight
    )
    distances = np.stack([((values - c) ** 2).sum(axis=1) for c in centres], axis=1)
    return distances.argmin(axis=1)


def _draw_seed(rng) -> int:
    return int(rng.integers(np.iinfo(np.int32).max))


#: Largest data (n_samples x n_features numbers) whose starting statistics are kept for
#: reuse: a grid of families (select_model) starts every family of a K from the same
#: partitions, and recomputing them was a fifth of the warm 14 x 5 table on Old Faithful.
#: Larger data would cost more to fingerprint than small starts save.
START_CACHE_VALUES = 2**20

#: Most starting statistics kept (least recently used go first).
START_CACHE_SIZE = 256

_START_CACHE: OrderedDict = OrderedDict()
_START_CACHE_LOCK = threading.Lock()  # fits may run in threads (a Dask threaded scheduler)


def _fingerprint(values: np.ndarray, sample_weight) -> bytes | None:
    """A digest of the data and weights, or None when the data are too large to cache."""
    if values.size > START_CACHE_VALUES:
        return None
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((values.shape, values.dtype.str)).encode())
    digest.update(np.ascontiguousarray(values).tobytes())
    if sample_weight is not None:
        digest.update(np.ascontiguousarray(sample_weight).tobytes())
    return digest.digest()


def _start_statistics(values, sample_weight, n_components, init_params, rng, fingerprint):
    """The statistics of one restart's starting partition, reused when seen before.

    The random draws are the same with and without the cache: k-means and k-means++ draw
    their seed (the cache key), the agglomeration of up to ``MAX_POINTS`` rows draws
    nothing, and the others are not cached.
    """
    key = seed = None
    if init_params in ("kmeans", "k-means++"):
        seed = _draw_seed(rng)
        key = (fingerprint, n_components, init_params, seed)
    elif init_params == "hierarchical" and values.shape[0] <= MAX_POINTS:
        key = (fingerprint, n_components, init_params)
    if fingerprint is None:
        key = None
    if key is not None:
        with _START_CACHE_LOCK:
            stats = _START_CACHE.get(key)
            if stats is not None:
                _START_CACHE.move_to_end(key)
                return stats
    partition = _initial_partition(values, sample_weight, n_components, init_params, rng, seed)
    stats = _partition_statistics(values, sample_weight, partition, n_components)
    if key is None:
        return stats
    for a in stats[:-1]:
        a.setflags(write=False)
    with _START_CACHE_LOCK:
        _START_CACHE[key] = stats
        while len(_START_CACHE) > START_CACHE_SIZE:
            _START_CACHE.popitem(last=False)
    return stats


def _partition_statistics(values, sample_weight, partition, n_components: int):
    """Sufficient statistics of a partition, each component shifted to its own mean."""
    n, d = values.shape
    w = np.ones(n) if sample_weight is None else sample_weight
    nk = np.zeros(n_components)
    shift = np.zeros((n_components, d))
    s2 = np.zeros((n_components, d, d))
    for j in range(n_components):
        if partition.ndim == 1:  # hard labels: only the component's rows
            rows = partition == j
            x, r = values[rows], w[rows]
        else:
            x, r = values, w * partition[:, j]
        nk[j] = r.sum()
        if nk[j] > 0:
            shift[j] = r @ x / nk[j]
            diff = x - shift[j]
            s2[j] = (diff * r[:, None]).T @ diff
    return nk, np.zeros((n_components, d)), s2, shift, float(w.sum())


def _check_user_init(weights_init, means_init, covariances_init, n_components, n_features):
    w, mu, cov = weights_init, means_init, covariances_init
    k, d = n_components, n_features
    # Validate the given ones together, filling the others with harmless placeholders.
    params = GMMParams.from_arrays(
        w if w is not None else np.full(k, 1.0 / k),
        mu if mu is not None else np.zeros((k, d)),
        cov if cov is not None else np.broadcast_to(np.eye(d), (k, d, d)),
        n_components=k,
        n_features=d,
    )
    return {
        "weights": None if w is None else np.array(params.weights),
        "means": None if mu is None else np.array(params.means),
        "covariances": None if cov is None else np.array(params.covariances),
    }


def _initial_params(
    values,
    sample_weight,
    n_components,
    init_params,
    rng,
    reg_covar,
    user,
    dtype,
    family,
    fingerprint=None,
):
    if all(v is not None for v in user.values()):
        return user["weights"], user["means"], user["covariances"]
    stats = _start_statistics(values, sample_weight, n_components, init_params, rng, fingerprint)
    empty = np.flatnonzero(~(stats[0] > 0))
    if empty.size:
        raise InputValueError(
            f"the starting partition ({init_params}) left component(s) {empty.tolist()} "
            f"without weight; use fewer components, another random_state or init_params."
        )
    m_step_fn = _compiled_m_step(values.shape[1], n_components, dtype, family.name)
    arrays = (np.asarray(s, dtype=dtype) for s in stats)
    weights, means, covariances = (
        np.asarray(a, dtype=np.float64) for a in m_step_fn(*arrays, np.asarray(reg_covar, dtype))
    )
    return (
        user["weights"] if user["weights"] is not None else weights,
        user["means"] if user["means"] is not None else means,
        user["covariances"] if user["covariances"] is not None else covariances,
    )


# --------------------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------------------


class _Pending(NamedTuple):
    """What the block said of theta^t before the E step at theta^t has been read."""

    params: tuple[np.ndarray, np.ndarray, np.ndarray]
    nk: np.ndarray  # of the E step at theta^{t-1}
    entropy: float  # H(q^{t-1})
    q_value: float  # Q(theta^t, theta^{t-1})
    gap: float  # regularisation gap of theta^t
    q_start: float  # Q(theta^{t-1}, theta^{t-1})


@dataclass
class _Run:
    """One restart's progress, read from the blocks in order (host side, mutable)."""

    params: tuple[np.ndarray, np.ndarray, np.ndarray]
    rows: list = field(default_factory=list)  # pieces of the history, arrays (m, 6)
    log_likelihood: float = float("nan")
    log_likelihood_init: float = float("nan")
    converged: bool = False
    finished: bool = False
    singular: list = field(default_factory=list)
    pending: _Pending | None = None

    def history(self) -> np.ndarray:
        """The history rows read so far, ``(n_iter, len(HISTORY_FIELDS))``."""
        if not self.rows:
            return np.empty((0, len(HISTORY_FIELDS)))
        return np.concatenate(self.rows)


class _Settings(NamedTuple):
    reg_covar: float
    max_iter: int
    total_weight: float
    family: CovarianceFamily


def _pending(out: BlockOutputs, j: int, r: int) -> _Pending:
    return _Pending(
        params=_theta(out, j, r),
        nk=out.nk[j, r],
        entropy=float(out.entropy[j, r]),
        q_value=float(out.q_value[j, r]),
        gap=float(out.regularization_gap[j, r]),
        q_start=float(out.q_start[j, r]),
    )


def _theta(out: BlockOutputs, j: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return out.weights[j, r], out.means[j, r], out.covariances[j, r]


def _history_rows(ll, q_value, entropy, gap) -> np.ndarray:
    """Rows of ``HISTORY_FIELDS`` (one row from scalars), with L = Q + H and KL = ln p - L."""
    lower = np.add(q_value, entropy)
    return np.column_stack([ll, q_value, entropy, lower, np.subtract(ll, lower), gap])


def _read_entry(run: _Run, out: BlockOutputs, j: int, r: int, t: int, settings: _Settings):
    """Take entry ``j`` (iteration ``t``: the E step at theta^t) of restart ``r``."""
    reg_covar, max_iter, total_weight, family = settings
    ll = float(out.log_likelihood[j, r])
    pivots = out.pivots[j, r]
    if t == 0:
        bad = _singular_components(pivots)
        if bad:
            raise SingularCovarianceError(
                _singular_message(
                    bad, run.params[2], "at the starting parameters", reg_covar, family
                )
            )
        run.log_likelihood_init = run.log_likelihood = ll
    else:
        p = run.pending
        nk, means = p.nk, p.params[1]
        empty = np.flatnonzero(_empty(nk, means))
        if empty.size:
            raise InputValueError(
                f"component(s) {empty.tolist()} received no responsibility at iteration {t} "
                f"(N_k = {nk[empty].tolist()}): they are empty. Use fewer components, "
                f"another random_state, or another init_params."
            )
        run.params = p.params
        bad = _singular_components(pivots)
        if bad:
            if t < max_iter:
                raise SingularCovarianceError(
                    _singular_message(
                        bad,
                        run.params[2],
                        f"after the M step of iteration {t}",
                        reg_covar,
                        family,
                    )
                    + " The next E step cannot be computed."
                )
            run.singular = bad
            run.rows.append(_history_rows(np.nan, p.q_value, p.entropy, p.gap))
            run.log_likelihood = np.nan
            run.finished = True
            return
        lowest, allowed, roundoff = _lowest_allowed(
            run.log_likelihood, p.q_start, p.q_value, total_weight
        )
        if ll < lowest:
            raise LikelihoodDecreaseError(
                f"the log-likelihood decreased from {run.log_likelihood!r} to {ll!r} at "
                f"iteration {t}, beyond round-off ({roundoff:.3g}) and what the M step "
                f"lowered Q by ({allowed:.3g}). EM cannot do this: please report it with "
                f"the data."
            )
        run.rows.append(_history_rows(ll, p.q_value, p.entropy, p.gap))
        run.log_likelihood = ll
        if out.converged[j, r]:
            run.converged = run.finished = True
            return
        if t == max_iter:
            run.finished = True
            return
    run.pending = _pending(out, j, r)


def _read_plain(run: _Run, out: BlockOutputs, r: int, first: int, stop: int) -> None:
    """Take entries ``first .. stop - 1`` of restart ``r``, none of them special.

    Each is what ``_read_entry`` would take without raising or stopping: a history row from
    the entry before it (``run.pending`` for the first) and its own log-likelihood.
    """
    if stop <= first:
        return
    p, sl, before = run.pending, slice(first, stop - 1), slice(first, stop)
    q_value = np.concatenate([[p.q_value], out.q_value[sl, r]])
    entropy = np.concatenate([[p.entropy], out.entropy[sl, r]])
    gap = np.concatenate([[p.gap], out.regularization_gap[sl, r]])
    ll = out.log_likelihood[before, r]
    run.rows.append(_history_rows(ll, q_value, entropy, gap))
    run.log_likelihood = float(ll[-1])
    run.params = _theta(out, stop - 2, r) if stop - first > 1 else p.params
    run.pending = _pending(out, stop - 1, r)


def _special_entries(
    runs: list[_Run],
    live: list[int],
    out: BlockOutputs,
    t0: int,
    first: int,
    n_active: int,
    settings,
) -> np.ndarray:
    """Where ``_read_entry`` must take over: ``(entries from first, live restarts)`` flags.

    Convergence, ``max_iter``, singular pivots, empty components and a decrease of ln p
    beyond what the EM inequality allows: every entry where the loop of single steps would
    stop or raise. The rest are read in bulk (``_read_plain``). The live restarts have read
    iteration 0 (``run.pending`` is set).
    """
    act, before = slice(first, n_active), slice(first, n_active - 1)
    pending = [runs[r].pending for r in live]
    t = t0 + np.arange(first, n_active)[:, None]
    special = (t >= settings.max_iter) | out.converged[act][:, live]
    special |= _singular(out.pivots[act][:, live]).any(axis=-1)

    def previous(values, field):  # each entry's pending: the entry before, or run.pending
        return np.concatenate(
            [np.stack([field(p) for p in pending])[None], values[before][:, live]]
        )

    nk = previous(out.nk, lambda p: p.nk)
    means = previous(out.means, lambda p: p.params[1])
    special |= _empty(nk, means).any(axis=-1)
    ll = out.log_likelihood[act][:, live]
    before_ll = np.concatenate([[[runs[r].log_likelihood for r in live]], ll[:-1]])
    lowest, _, _ = _lowest_allowed(
        before_ll,
        previous(out.q_start, lambda p: p.q_start),
        previous(out.q_value, lambda p: p.q_value),
        settings.total_weight,
    )
    special |= ~(ll >= lowest)
    return special


def _read_block(runs: list[_Run], out: BlockOutputs, t0: int, n_active: int, settings):
    """Take the block's ``n_active`` entries, from iteration ``t0``, until each run stops."""
    first = 0
    if t0 == 0:  # iteration 0: the log-likelihood at the start
        for r, run in enumerate(runs):
            _read_entry(run, out, 0, r, 0, settings)
        first = 1
    live = [r for r, run in enumerate(runs) if not run.finished]
    if not live or first >= n_active:
        return
    special = _special_entries(runs, live, out, t0, first, n_active, settings)
    for column, r in enumerate(live):
        run, j = runs[r], first
        for s in [*(first + np.flatnonzero(special[:, column])).tolist(), n_active]:
            _read_plain(run, out, r, j, s)
            if s < n_active:
                _read_entry(run, out, s, r, t0 + s, settings)
            if run.finished:
                break
            j = s + 1


def _proper(run: _Run) -> bool:
    """Whether a finished restart's maximum stands without reg_covar (see ``SPURIOUS_GAP``)."""
    gap = run.rows[-1][-1, -1] if run.rows else 0.0
    return bool(gap <= SPURIOUS_GAP)


def _host(a) -> np.ndarray:
    """A block output on the host, in float64 whatever the compute dtype (flags stay bool)."""
    a = np.asarray(a)
    return a if a.dtype == bool else a.astype(np.float64, copy=False)


class IterationProgress(NamedTuple):  # numpydoc ignore=PR01
    r"""What ``fit_em(progress=...)`` reports after each block of iterations it has read.

    Attributes
    ----------
    iteration : int
        Iterations done so far (the most of any restart).
    log_likelihood : float
        The best :math:`\ln p(X \mid \theta)` of the restarts at that point.
    change : float
        Its change since the previous report (NaN at the first).
    n_running : int
        Restarts still iterating.
    """

    iteration: int
    log_likelihood: float
    change: float
    n_running: int


def _report(progress, runs: list[_Run], previous: float) -> float:
    finite = [run.log_likelihood for run in runs if np.isfinite(run.log_likelihood)]
    best = max(finite) if finite else float("nan")
    iteration = max(sum(len(rows) for rows in run.rows) for run in runs)
    running = sum(not run.finished for run in runs)
    progress(IterationProgress(iteration, best, best - previous, running))
    return best


def _run_restarts(
    block,
    data_inputs: list,
    starts,
    tol,
    settings: _Settings,
    dtype,
    block_size: int = BLOCK_SIZE,
    progress: Callable[[IterationProgress], None] | None = None,
):
    """Iterate every restart from its start, a block at a time, until each one stops.

    ``block`` is a compiled block (``block_size`` = ``BLOCK_SIZE`` iterations on
    ``data_inputs``) or, for a Dask fit, one iteration over the blocks of a Dask array
    (``block_size`` = 1, no data inputs): both return ``BlockOutputs``.
    """
    reg_covar, max_iter = settings.reg_covar, settings.max_iter
    runs = [_Run(params=s) for s in starts]
    dtype = np.dtype(dtype).type
    theta = [np.stack([s[i] for s in starts]).astype(dtype) for i in range(3)]
    log_likelihood = np.full(len(starts), np.nan, dtype=dtype)
    done_iterations, reported = 0, float("nan")
    while not all(run.finished for run in runs):
        n_active = min(block_size, max_iter + 1 - done_iterations)
        stopped = np.array([run.finished for run in runs])
        out = BlockOutputs(
            *(
                _host(a)
                for a in block(
                    *data_inputs,
                    *theta,
                    log_likelihood,
                    stopped,
                    np.asarray(reg_covar, dtype=dtype),
                    np.asarray(tol, dtype=dtype),
                    np.asarray(n_active, dtype=np.int64),
                )
            )
        )
        _read_block(runs, out, done_iterations, n_active, settings)
        done_iterations += n_active
        if progress is not None:
            reported = _report(progress, runs, reported)
        # float64 on the host holds the compute dtype's values exactly.
        last = n_active - 1
        theta = [a[last].astype(dtype) for a in (out.weights, out.means, out.covariances)]
        log_likelihood = out.log_likelihood[last].astype(dtype)
    return runs


def fit_em(
    X: Any,
    n_components: int,
    *,
    covariance_type: str = "full",
    tol: float = 1e-10,
    max_iter: int = 1000,
    reg_covar: float = 1e-6,
    init_params: InitParams = "kmeans",
    n_init: int = 1,
    random_state: int | np.random.Generator | None = None,
    weights_init=None,
    means_init=None,
    covariances_init=None,
    sample_weight=None,
    dtype: str = "float64",
    chunk_size: int | None = None,
    callback: Callable[[int, int, float], None] | None = None,
    progress: Callable[[IterationProgress], None] | None = None,
    missing: str = "raise",
) -> EMResult:
    r"""Fit a Gaussian mixture by expectation-maximisation.

    Alternates the E step :math:`\gamma_{nk} = \pi_k\phi_k(x_n) / \sum_j \pi_j\phi_j(x_n)`
    and the closed-form M step :math:`\pi_k = N_k/\sum_n w_n`,
    :math:`\mu_k = \sum_n w_n \gamma_{nk} x_n / N_k`,
    :math:`\Sigma_k = \sum_n w_n \gamma_{nk}(x_n - \mu_k)(x_n - \mu_k)^T / N_k + \epsilon I`
    until the mean per-sample log-likelihood changes by less than ``tol``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), DataFrame, DataArray, path or GMMData
        Read through :func:`bgmm.as_data`. Lazy data (a Dask array or DataFrame, a zarr
        store, Parquet files, a CSV glob) are fitted block by block on the active Dask
        scheduler (:mod:`bgmm.em.dask_engine`), never loaded whole: the same iterations,
        history and result as in memory, and ``resp`` a Dask array.
    n_components : int
        Number of components K, between 1 and ``n_samples``.
    covariance_type : str, default "full"
        The covariance family (:mod:`bgmm.covariance`): scikit-learn's ``"full"``,
        ``"tied"``, ``"diag"``, ``"spherical"``, or any of mclust's fourteen, ``"EII"`` ...
        ``"VVV"`` (``"full"`` is VVV, ``"tied"`` EEE, ``"diag"`` VVI, ``"spherical"``
        VII); ``"E"`` or ``"V"`` for one feature. Every family's M step works from the same
        sufficient statistics; ``EMResult.covariances`` holds full matrices whatever the
        family.
    tol : float, default 1e-10
        Convergence threshold on the change of the mean per-sample log-likelihood between
        iterations. Small, because EM converges linearly and a loose threshold stops well
        short of the optimum; one iteration costs little.
    max_iter : int, default 1000
        Most iterations per restart.
    reg_covar : float, default 1e-6
        Added to the diagonal of every covariance after the M step (0 gives the derivation
        exactly, and then a singular covariance stops the fit with a clear error). For the
        families other than full, tied, diag and spherical, the M step runs on the scatter
        :math:`W_k + N_k \epsilon I`, which adds :math:`\epsilon I` to those four and keeps
        every family's structure.
    init_params : {"kmeans", "k-means++", "random", "hierarchical"}, default "kmeans"
        How responsibilities are initialised when parameters are not all given:
        hard k-means labels, hard labels of the nearest k-means++ seed, uniform random
        responsibilities, or the groups of model-based hierarchical agglomeration
        (mclust's start, :mod:`bgmm.em.hierarchical`; the same for every restart unless
        the data are large enough to be subsampled, and blind to ``sample_weight``).
        ``"auto"`` starts the first restart from the agglomeration, the second from
        k-means and the others from k-means++ seeds: the default of
        :func:`bgmm.selection.select_model`, which reaches mclust's log-likelihoods where
        each start alone does not (README, "Starting points").
    n_init : int, default 1
        Number of restarts, iterated together (one pass over the data serves all of them);
        the one with the highest final log-likelihood is kept, passing over spurious
        maxima when another restart has a proper one: a restart whose final
        regularisation gap exceeds ``SPURIOUS_GAP`` (1 nat of Q) exists only through
        ``reg_covar``, typically a component collapsed onto points that share a value.
    random_state : int, numpy Generator or None
        Seed of every random choice (restarts, k-means); same seed, same result.
    weights_init, means_init, covariances_init : array-like, optional
        Starting parameters (shapes ``(K,)``, ``(K, d)``, ``(K, d, d)``; the covariances
        also in scikit-learn's shape for ``tied`` ``(d, d)``, ``diag`` ``(K, d)`` and
        ``spherical`` ``(K,)``). When all three
        are given, EM starts from them exactly (e.g. the worked example's table); any that
        are given replace those of the initialisation.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weights :math:`w_n`, read as repetition counts (scikit-learn's
        convention): an integer weight gives the fit of the data with that row repeated.
        The log-likelihood, the history and ``tol`` use the weighted sums.
    dtype : {"float64", "float32"}, default "float64"
        Precision of the computation. float32 halves the memory and suits data with up to
        7 significant digits (rescale data far from the origin first); results are
        returned as float64.
    chunk_size : int, optional
        Rows per chunk of the E step. By default the engine chooses it so that one chunk's
        intermediates take about ``CHUNK_BYTES``; the result does not depend on it beyond
        round-off.
    callback : callable, optional
        Called as ``callback(restart, n_init, log_likelihood)`` for every restart when the
        fit ends (for progress displays; the solver itself prints nothing).
    progress : callable, optional
        Called as ``progress(IterationProgress)`` after every iteration of a fit on lazy
        data and every block of ``BLOCK_SIZE`` iterations in memory: the iterations done,
        the best log-likelihood and its change (the command line's progress lines).
    missing : {"raise", "em"}, default "raise"
        Missing values (NaN, empty CSV cells): refused with a message, or fitted by
        maximum likelihood under missing at random (:mod:`bgmm.em.missing`): the missing
        coordinates are one more latent variable of EM, ``log_likelihood`` and the
        history are those of the observed values, and the responsibilities come from
        each row's observed coordinates. Starts are computed on the data with each
        column's missing values set to its observed mean. :func:`bgmm.em.impute` gives the
        missing values' conditional means and variances. Lazy data work too (their
        patterns are collected in one pass over the blocks).

    Returns
    -------
    EMResult
        The parameters, the responsibilities at them, the log-likelihood and the
        per-iteration history of the best restart.

    Raises
    ------
    SingularCovarianceError
        A covariance became singular before the last iteration.
    LikelihoodDecreaseError
        The log-likelihood decreased beyond round-off (a bug, never expected).
    ValueError
        Bad settings, or data whose squares overflow ``dtype`` (the message names the
        largest magnitude and suggests standardising).

    Warns
    -----
    ConvergenceWarning
        ``max_iter`` was reached before convergence.
    SingularCovarianceWarning
        The last M step returned a singular covariance (only possible with
        ``reg_covar=0``); ``log_likelihood`` and ``resp`` are then NaN.

    Notes
    -----
    Implements ``docs/derivation.md`` on the sufficient statistics of
    :mod:`bgmm.em.stats`: memory beyond the data and the returned responsibilities is one
    chunk's worth. The bound
    :math:`\ln p(X|\theta) = \mathcal{L}(q,\theta) + \mathrm{KL}(q\|p)` is recorded at
    every iteration in ``history``.

    References
    ----------
    Dempster, Laird & Rubin (1977), JRSS B 39(1). Bishop (2006), PRML, section 9.2.
    Ghahramani & Jordan (1994), "Supervised learning from incomplete data via an EM
    approach", NIPS 6 (missing values).
    """
    data = _missing_data(X, missing)
    n_components = check_n_components(data, n_components)
    family = get_family(covariance_type, data.n_features)
    check_number("tol", tol, low=0.0)
    check_number("reg_covar", reg_covar, low=0.0)
    max_iter = check_number("max_iter", max_iter, low=1, integer=True)
    n_init = check_number("n_init", n_init, low=1, integer=True)
    if chunk_size is not None:
        chunk_size = check_number("chunk_size", chunk_size, low=1, integer=True)
    if init_params not in _INIT_PARAMS:
        raise InputValueError(f"init_params must be one of {_INIT_PARAMS}, got {init_params!r}.")
    dtype = _check_dtype(dtype)
    _check_scale(data, dtype)
    if data.lazy:
        from bgmm.em import dask_engine

        weights, total = (
            (None, float(data.n_samples))
            if sample_weight is None
            else dask_engine.check_weights(sample_weight, data.values)
        )
    else:
        weights = _check_sample_weight(sample_weight, data.n_samples)
        total = float(data.n_samples if weights is None else weights.sum())
    if covariances_init is not None:
        covariances_init = family.expand(covariances_init, n_components, data.n_features)
    user = _check_user_init(
        weights_init, means_init, covariances_init, n_components, data.n_features
    )
    rng = np.random.default_rng(random_state)
    values = data.values
    patterns = None
    if data.has_missing:  # lazy data: every block's patterns, in one pass
        patterns = (
            Patterns(dask_engine.lazy_patterns(values), None)
            if data.lazy
            else missingness_patterns(values)
        )
    needs_starts = any(v is None for v in user.values())
    # Lazy data start from a seeded subsample (dask_engine.START_ROWS rows, all of them in
    # order when there are fewer); in-memory data from all their rows.
    start_values, start_weights = values, weights
    if data.lazy and needs_starts:
        start_values, start_weights = dask_engine.start_rows(values, weights, rng)
    if patterns is not None and needs_starts:
        start_values = _mean_filled(start_values)
    fingerprint = (
        _fingerprint(start_values, start_weights)
        if needs_starts and init_params != "random"
        else None
    )
    starts = [
        tuple(
            np.ascontiguousarray(a, dtype=np.float64)
            for a in _initial_params(
                start_values,
                start_weights,
                n_components,
                _restart_init(init_params, restart),
                rng,
                reg_covar,
                user,
                dtype,
                family,
                fingerprint,
            )
        )
        for restart in range(n_init)
    ]
    del start_values, start_weights
    settings = _Settings(float(reg_covar), max_iter, total, family)
    shapes = Shapes(
        data.n_features,
        n_components,
        n_init,
        dtype,
        weighted=weights is not None,
        family=family.name,
        n_patterns=0 if patterns is None else patterns.n_patterns,
    )
    if data.lazy:
        iteration = dask_engine.DaskIteration(
            values,
            weights,
            shapes,
            total,
            chunk_size,
            observed=None if patterns is None else patterns.observed,
        )
        runs = _run_restarts(
            iteration, [], starts, float(tol), settings, dtype, block_size=1, progress=progress
        )
    else:
        rows = _chunk_rows(
            data.n_samples,
            n_init * n_components,
            data.n_features,
            chunk_size,
            dtype,
            missing=patterns is not None,
        )
        device = _to_device(values, weights, rows, dtype, patterns)
        shapes = shapes._replace(
            n_chunks=device.chunks.shape[0],
            chunk_rows=rows,
            n_rest=0 if device.rest is None else device.rest.shape[0],
        )
        runs = _run_restarts(
            _compiled_block(shapes),
            device.inputs(),
            starts,
            float(tol),
            settings,
            dtype,
            progress=progress,
        )
        del device
    # The final E step reads the rows from the host, a piece at a time. When the caller
    # passed a float64 array, it reads that array (as_data's copy holds the same values)
    # and the copy, made for the device, is released before resp is allocated.
    n_samples, feature_names = data.n_samples, data.feature_names
    if (
        patterns is None
        and isinstance(X, np.ndarray)
        and X.dtype == np.float64
        and X.shape == values.shape
    ):
        del data, values
        values = X
    finals = [run.log_likelihood for run in runs]
    if callback is not None:
        for i, ll in enumerate(finals):
            callback(i + 1, n_init, ll)
    run = runs[_best_restart(runs)]
    params = GMMParams(*(readonly(a) for a in run.params))
    if run.singular:
        warnings.warn(
            _singular_message(
                run.singular, params.covariances, "at the returned parameters", reg_covar, family
            )
            + " log_likelihood and resp are NaN.",
            SingularCovarianceWarning,
            stacklevel=2,
        )
        resp = np.full((n_samples, n_components), np.nan)
        if not isinstance(values, np.ndarray):
            import dask.array as da

            resp = da.full(
                (n_samples, n_components), np.nan, chunks=(values.chunks[0], (n_components,))
            )
    else:
        if not run.converged and tol > 0:
            warnings.warn(
                f"EM did not converge in max_iter={max_iter} iterations (last change of the "
                f"mean log-likelihood above tol={tol}); increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=2,
            )
        if patterns is not None and isinstance(values, np.ndarray):
            resp = np.exp(_missing_rows(params, values, dtype).log_resp)
        elif isinstance(values, np.ndarray):
            resp = _responsibilities(params, values, dtype)
        else:
            resp = dask_engine.e_step_lazy(params, values, "resp", dtype)
    history = unstructured_to_structured(
        run.history(), dtype=np.dtype([(f, "f8") for f in HISTORY_FIELDS])
    )
    history.setflags(write=False)
    if isinstance(resp, np.ndarray):
        resp.setflags(write=False)
    return EMResult(
        params=params,
        resp=resp,
        log_likelihood=float(run.log_likelihood),
        log_likelihood_init=float(run.log_likelihood_init),
        n_iter=len(history),
        converged=run.converged,
        history=history,
        init_log_likelihoods=readonly(finals),
        feature_names=feature_names,
        total_weight=total,
        covariance_type=family.name,
    )


#: What :func:`fit_em` does with missing values (NaN): refuse them, or fit them by EM.
MISSING = ("raise", "em")


def _missing_data(X, missing: str) -> GMMData:
    """``as_data`` for ``missing``: NaN refused (the message names ``missing="em"``) or kept."""
    if missing not in MISSING:
        raise InputValueError(
            f"missing must be one of {MISSING}, got {missing!r}: 'em' fits missing values "
            f"(missing at random), 'raise' refuses them."
        )
    return as_data(X, missing="allow" if missing == "em" else "raise")


def _mean_filled(values: np.ndarray) -> np.ndarray:
    """Each column's missing values set to its observed mean (where EM's starts come from)."""
    filled = np.array(values)
    observed = ~np.isnan(filled)
    count = observed.sum(axis=0)  # a subsample of lazy data may miss a whole column: 0
    means = np.where(observed, filled, 0.0).sum(axis=0) / np.maximum(count, 1)
    rows, cols = np.nonzero(~observed)
    filled[rows, cols] = means[cols]
    return filled


def _best_restart(runs: list[_Run]) -> int:
    """The restart with the highest final ln p, passing over spurious maxima if it can."""
    scores = [run.log_likelihood if np.isfinite(run.log_likelihood) else -np.inf for run in runs]
    proper = [_proper(run) for run in runs]
    if any(ok and np.isfinite(ll) for ok, ll in zip(proper, scores, strict=True)):
        scores = [ll if ok else -np.inf for ok, ll in zip(proper, scores, strict=True)]
    return int(np.argmax(scores))


def evaluate(
    params: GMMParams, X: Any, *, missing: str = "raise"
) -> tuple[np.ndarray, np.ndarray]:
    r"""Log responsibilities and per-sample log-likelihoods of ``X`` under ``params``.

    The E step of :func:`fit_em`, on any data; see :func:`bgmm.em.log_component_densities`
    for the unweighted component densities.

    Parameters
    ----------
    params : GMMParams
        The mixture.
    X : array-like of shape (n_samples, n_features) or anything :func:`bgmm.as_data` reads
        The data.
    missing : {"raise", "em"}, default "raise"
        Rows with missing values (NaN): refused, or evaluated on their observed
        coordinates (:math:`\ln p(x_{n,o} \mid \theta)` and the responsibilities from it).

    Returns
    -------
    log_resp : ndarray of shape (n_samples, n_components)
        :math:`\ln \gamma_{kn}`.
    log_norm : ndarray of shape (n_samples,)
        :math:`\ln p(x_n \mid \theta)`.

    Raises
    ------
    SingularCovarianceError
        A covariance of ``params`` is singular.
    """
    data = _missing_data(X, missing)
    if data.has_missing and not data.lazy:  # lazy: e_step_lazy's blocks handle them
        rows = _checked_missing_rows(params, data)
        return rows.log_resp, rows.log_norm
    rows = _evaluate_all(params, data, densities=False)
    return rows.log_resp, rows.log_norm


def _refuse_singular(params: GMMParams, pivots: np.ndarray) -> None:
    """Raise when a covariance of ``params`` is singular (an E step there is undefined)."""
    bad = _singular_components(pivots)
    if bad:
        raise SingularCovarianceError(
            _singular_message(bad, params.covariances, "in these parameters")
        )


def _impute_lazy(params: GMMParams, data: GMMData) -> xr.Dataset:
    """``impute`` of lazy data: Dask-backed variables, computed block by block when read."""
    import dask.array as da

    from bgmm.em import dask_engine

    check_features(data, params.n_features)
    _check_scale(data, "float64")
    _refuse_singular(params, _host_pivots(params.covariances))
    dims = ("obs_id", "feature")
    return xr.Dataset(
        {
            "x": (dims, dask_engine.e_step_lazy(params, data.values, "imputed")),
            "variance": (dims, dask_engine.e_step_lazy(params, data.values, "variance")),
            "missing": (dims, da.isnan(data.values)),
            "log_likelihood": ("obs_id", dask_engine.e_step_lazy(params, data.values, "log_norm")),
        },
        coords={"feature": list(data.feature_names)},
        attrs={"source": data.source},
    )


def _checked_missing_rows(params: GMMParams, data: GMMData) -> MissingRows:
    """``_missing_rows`` on validated data, refusing singular covariances."""
    check_features(data, params.n_features)
    _check_scale(data, "float64")
    rows = _missing_rows(params, np.asarray(data.values))
    _refuse_singular(params, rows.pivots)
    return rows


def impute(params: GMMParams, X: Any) -> xr.Dataset:
    r"""The missing values' conditional means and variances under a fitted mixture.

    .. math::
        E[x_{n,m} \mid x_{n,o}] = \sum_k \gamma_{nk} \hat x_{nk,m}, \qquad
        \mathrm{Var}[x_{nj} \mid x_{n,o}] = \sum_k \gamma_{nk}
        \left(C_{k,jj} + (\hat x_{nkj} - E[x_{nj} \mid x_{n,o}])^2\right)

    with :math:`\gamma_{nk}` from the observed coordinates, :math:`\hat x_{nk,m}` and
    :math:`C_k` of :mod:`bgmm.em.missing`: the posterior mean of each missing entry under
    the mixture (a single value, not a draw) and the uncertainty around it, which mixes
    the components' conditional variances and their disagreement.

    Parameters
    ----------
    params : GMMParams
        The mixture (e.g. ``fit_em(X, K, missing="em").params``).
    X : array-like of shape (n_samples, n_features) or anything :func:`bgmm.as_data` reads
        The data, NaN (or an empty CSV cell) where missing.

    Returns
    -------
    xarray.Dataset
        Over ``(obs_id, feature)``: ``x`` (the data with each missing value replaced by
        its conditional mean), ``variance`` (0 where observed), ``missing`` (bool), and
        ``log_likelihood`` over ``obs_id`` (:math:`\ln p(x_{n,o} \mid \theta)`).

    Raises
    ------
    SingularCovarianceError
        A covariance of ``params`` is singular.
    """
    data = as_data(X, missing="allow")
    if data.lazy:
        return _impute_lazy(params, data)
    rows = _checked_missing_rows(params, data)
    coords = {"obs_id": list(data.obs_names), "feature": list(data.feature_names)}
    dims = ("obs_id", "feature")
    return xr.Dataset(
        {
            "x": (dims, readonly(rows.imputed)),
            "variance": (dims, readonly(rows.variance)),
            "missing": (dims, ~data.observed),
            "log_likelihood": ("obs_id", readonly(rows.log_norm)),
        },
        coords=coords,
        attrs={"source": data.source},
    )


def log_component_densities(params: GMMParams, X: Any) -> np.ndarray:
    r"""Log Gaussian density of every sample under every component, :math:`\ln \phi_k(x_n)`.

    .. math::
        \ln \phi_k(x) = -\tfrac{l}{2} \ln(2\pi) - \tfrac12 \ln|\Sigma_k|
                        - \tfrac12 (x - \mu_k)^T \Sigma_k^{-1} (x - \mu_k)

    Parameters
    ----------
    params : GMMParams
        The mixture (its weights are not used).
    X : array-like of shape (n_samples, n_features) or anything :func:`bgmm.as_data` reads
        The data.

    Returns
    -------
    ndarray of shape (n_samples, n_components)
        :math:`\ln \phi_k(x_n)`.

    Raises
    ------
    SingularCovarianceError
        A covariance of ``params`` is singular.
    """
    return _evaluate_all(params, X, densities=True).log_phi


def _evaluate_all(params: GMMParams, X: Any, *, densities: bool) -> RowResults:
    data = X if isinstance(X, GMMData) else as_data(X)
    if densities and data.has_missing:
        raise InputValueError(
            "the component densities of rows with missing values are those of their observed "
            "coordinates, a different density per row; use bgmm.evaluate(params, X, "
            "missing='em') for their log-likelihoods and responsibilities."
        )
    check_features(data, params.n_features)
    _check_scale(data, "float64")
    if data.lazy:
        from bgmm.em import dask_engine

        pivots = _host_pivots(params.covariances)
        rows = None
    else:
        rows = _e_step_rows(params, data.values, "float64", densities=densities)
        pivots = rows.pivots
    _refuse_singular(params, pivots)
    if rows is None:
        lazy = {
            name: dask_engine.e_step_lazy(params, data.values, name)
            for name in ("log_resp", "log_norm", *(("log_phi",) if densities else ()))
        }
        rows = RowResults(lazy["log_resp"], lazy["log_norm"], lazy.get("log_phi"), pivots)
    return rows


def _host_pivots(covariances: np.ndarray) -> np.ndarray:
    """``graph.pivot_ratios`` in NumPy (NaN where the factorisation fails)."""
    pivots = np.full(len(covariances), np.nan)
    for k, cov in enumerate(covariances):
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            continue
        pivots[k] = (np.diagonal(chol) ** 2 / np.diagonal(cov)).min()
    return pivots
