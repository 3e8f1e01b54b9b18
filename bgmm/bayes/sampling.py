"""Posterior sampling: NUTS started at the EM estimate, relabelled to the EM components."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import arviz_stats as azs
import numpy as np
import pymc as pm
import xarray as xr

from bgmm._validation import check_number
from bgmm.bayes.imputation import imputation_summary, impute_draws
from bgmm.bayes.membership import (
    _all_memberships,
    _stacked,
    draw_memberships,
    membership,
    n_clusters,
)
from bgmm.bayes.model import bayes_family, build_model, initial_values
from bgmm.bayes.priors import Priors
from bgmm.bayes.relabel import (
    assignment_costs,
    ecr_relabel,
    match_to_reference,
    relabel_dataset,
    stephens_relabel,
)
from bgmm.contract import CONTRACT_VARIABLES, package_versions
from bgmm.data import GMMData, as_data, check_n_components, require_in_memory
from bgmm.defaults import CHAINS, DRAWS, TUNE
from bgmm.diagnostics import Diagnostics, diagnose
from bgmm.em import EMResult, GaussianMixtureEM, impute
from bgmm.exceptions import InputTypeError, InputValueError
from bgmm.params import GMMParams

__all__ = ["CONTRACT_VARIABLES", "SamplingWarning", "sample_posterior"]

_SAMPLERS = ("nutpie", "pymc")
#: PyTensor backends that compile the model's log density and gradient for the sampler.
_BACKENDS = ("jax", "numba")


class SamplingWarning(UserWarning):
    """The sample is not one clean mode, or its summaries are unreliable.

    The message says what was seen, why it matters and what to try; the same findings are
    in the result's ``diagnostics`` group (see :mod:`bgmm.diagnostics`).
    """


def _em_result(em: Any) -> EMResult | GMMParams:
    if isinstance(em, GaussianMixtureEM):
        if not hasattr(em, "result_"):
            raise InputValueError("em is an unfitted GaussianMixtureEM; call fit(X) first.")
        return em.result_
    if isinstance(em, EMResult | GMMParams):
        return em
    raise InputTypeError(
        f"em must be an EMResult, a fitted GaussianMixtureEM or GMMParams, "
        f"got {type(em).__name__}."
    )


def _check_resp(resp: Any, n_samples: int, k: int) -> np.ndarray:
    try:
        arr = np.asarray(resp, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"resp must be an array of probabilities ({exc}).") from None
    if arr.shape != (n_samples, k):
        raise InputValueError(
            f"resp must have shape (n_samples, n_components) = ({n_samples}, {k}), got "
            f"{arr.shape}; pass EM's responsibilities of these rows (predict_proba)."
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InputValueError("resp must hold finite probabilities >= 0 (one row per sample).")
    return arr


def _max_rhat(ds: xr.Dataset) -> dict[str, float]:
    # A constant variable (the weight of a single component) has no r_hat: NaN, quietly.
    with np.errstate(invalid="ignore", divide="ignore"):
        rhat = azs.rhat(ds, sample_dims=["chain", "draw"])
    return {name: float(rhat[name].max()) for name in rhat.data_vars}


def _warn(diagnostics: Diagnostics) -> None:
    if diagnostics.findings:
        warnings.warn(diagnostics.message(), SamplingWarning, stacklevel=3)


#: The relabelling algorithms of ``sample_posterior(relabel=...)``.
_RELABEL_METHODS = {
    "em": "Hungarian assignment of posterior means to the EM means (Mahalanobis cost under "
    "the EM covariances)",
    "stephens": "Stephens (2000): KL divergence of every draw's memberships from their "
    "consensus, started at the EM assignment; labels named after the EM components",
    "ecr": "ECR (Papastamoulis & Iliopoulos 2010): every draw's MAP allocations agree as "
    "often as possible with EM's MAP clustering (the pivot)",
}


def _whole_sample_source(raw, data, params, em_resp, em_source, method) -> np.ndarray:
    """Permutations of a whole-sample algorithm, labels named after the EM components."""
    w, mu, cov = _stacked(raw)
    X = np.asarray(data.values)
    # (S, N, K): p(z_n = j | x_n, theta_s) for the sampled component j
    probabilities = _all_memberships(w, mu, cov, X)
    k = w.shape[1]
    if method == "ecr":
        if em_resp is None:  # EM's memberships at its estimate
            em_resp = draw_memberships(
                np.asarray(params.weights)[None],
                np.asarray(params.means)[None],
                np.asarray(params.covariances)[None],
                X,
            )[0]
        pivot = np.asarray(em_resp).argmax(axis=1)
        return ecr_relabel(probabilities.argmax(axis=2), pivot, k).source
    source = stephens_relabel(probabilities, init=em_source).source
    # Stephens' labels are consistent across draws but arbitrary: name each after the EM
    # component its mean draws sit on (one assignment of the relabelled posterior means).
    relabelled = np.take_along_axis(mu, source[:, :, None], axis=1).mean(axis=0)
    order, _, _ = match_to_reference(assignment_costs(relabelled[None], params))
    return source[:, order[0]]


def _start_kwargs(model: pm.Model, sampler: str, backend: str, jitter: bool) -> dict[str, Any]:
    """How each sampler compiles the model and jitters the common starting point, per chain.

    nutpie draws one initial point per chain from PyMC's initial-point function with
    ``jitter_rvs``; PyMC's NUTS does the same with ``init="jitter+adapt_diag"``. Both add
    uniform [-1, 1] noise in the unconstrained space to every free variable (none without
    ``jitter``). ``backend`` picks the PyTensor linker of the log density and its gradient.
    """
    mode = backend.upper()
    if sampler == "nutpie":
        rvs = set(model.free_RVs) if jitter else set()
        return {"compile_kwargs": {"jitter_rvs": rvs, "mode": mode}}
    init = "jitter+adapt_diag" if jitter else "adapt_diag"
    return {"init": init, "cores": 1, "compile_kwargs": {"mode": mode}}


def _failed_start(exc: Exception) -> bool:
    """Whether the sampler could not start from any of its (jittered) initial points."""
    text = str(exc)
    return "initialization points failed" in text or "Initial evaluation" in text


def _nudged(model: pm.Model, initvals: dict, seed: int) -> dict:
    """The EM start moved by a thousandth of each feature's sd (means) and of the weights.

    EM's estimate is a stationary point of the likelihood, so with a symmetric Dirichlet and
    equal weights a coordinate of the log density's gradient can be exactly 0 there, which
    nutpie's gradient-based initial mass matrix cannot take.
    """
    rng = np.random.default_rng(seed)
    out = dict(initvals)
    scale = np.asarray(model.bgmm_priors.sd_scale)
    out["means"] = initvals["means"] + 1e-3 * scale * rng.standard_normal(initvals["means"].shape)
    weights = initvals["weights"] * np.exp(1e-3 * rng.standard_normal(initvals["weights"].shape))
    out["weights"] = weights / weights.sum()
    return out


@contextlib.contextmanager
def _ctrl_c() -> Iterator[Callable[[], bool]]:
    """Notice Ctrl-C (SIGINT) during the block, even where the sampler swallows it.

    Yields a function that says whether Ctrl-C was pressed. The interrupt still reaches
    the running code as ``KeyboardInterrupt``; where SIGINT is ignored (a background job)
    or this is not the main thread, nothing changes.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous in (
        signal.SIG_IGN,
        None,
    ):
        yield lambda: False
        return
    seen: list[bool] = []

    def handler(signum, frame):
        seen.append(True)
        if callable(previous):
            previous(signum, frame)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(seen)
    finally:
        signal.signal(signal.SIGINT, previous)


def _sample(model, initvals, sampler, backend, progressbar, **settings) -> tuple[Any, bool]:
    """Run NUTS from the jittered EM start, or, where no jittered start is valid, nudged.

    A jitter of +-1 in the unconstrained space can throw a narrow component's mean many of
    its sds away, where the density and its gradient underflow (a component with sd 0.085
    in one feature, seen in the SBC run); the chains then start at the EM estimate moved by
    a thousandth of an sd (:func:`_nudged`) and separate by their own randomness.
    """
    for jitter in (True, False):
        start = initvals if jitter else _nudged(model, initvals, settings["random_seed"])
        try:
            with model, _ctrl_c() as interrupted:
                tree = pm.sample(
                    nuts_sampler=sampler,
                    initvals=start,
                    progressbar=progressbar,
                    compute_convergence_checks=False,
                    **settings,
                    **_start_kwargs(model, sampler, backend, jitter),
                )
            if interrupted():
                # nutpie stops at Ctrl-C and returns the draws so far, NaN after them, as if
                # sampling had finished: unfinished chains are not a posterior.
                raise KeyboardInterrupt("sampling interrupted before the chains finished")
            return tree, jitter
        except (RuntimeError, pm.exceptions.SamplingError) as exc:
            if not (jitter and _failed_start(exc)):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def sample_posterior(
    data: Any,
    n_components: int,
    *,
    em: Any,
    resp: Any = None,
    priors: Priors | None = None,
    draws: int = DRAWS,
    tune: int = TUNE,
    chains: int = CHAINS,
    sampler: str = "nutpie",
    backend: str = "jax",
    relabel: str = "em",
    random_seed: int | None = None,
    progressbar: bool = True,
    covariance_type: str | None = None,
):
    """Sample the posterior of the mixture by NUTS, started at and relabelled to EM.

    Parameters
    ----------
    data : GMMData or anything :func:`bgmm.as_data` reads
        The observations.
    n_components : int
        K, between 1 and ``n_samples``.
    em : EMResult, fitted GaussianMixtureEM or GMMParams
        The starting point and the labels: the chains start at it and every draw is
        relabelled to its components. An EM fit (:func:`bgmm.fit_em`) brings its
        responsibilities; this function never fits EM itself (:func:`bgmm.workflow.analyse`
        runs the whole pipeline).
    resp : array of shape (n_samples, n_components), optional
        EM's responsibilities at ``em`` when ``em`` is a ``GMMParams`` (they are taken from
        an EM fit otherwise): the ``membership`` group then compares with them.
    priors : Priors, optional
        Hyper-parameters; data-scaled defaults (see :class:`Priors`) when omitted.
    draws : int, default :data:`bgmm.defaults.DRAWS` (1000)
        Draws kept per chain.
    tune : int, default :data:`bgmm.defaults.TUNE` (1000)
        Tuning steps per chain (discarded).
    chains : int, default :data:`bgmm.defaults.CHAINS` (4)
        Independent chains.
    sampler : {"nutpie", "pymc"}, default "nutpie"
        NUTS implementation; ``"pymc"`` selects PyMC's own.
    backend : {"jax", "numba"}, default "jax"
        Compiler of the model's log density and gradient. JAX compiles a model in a few
        seconds; numba takes tens of seconds for every new data set (nutpie's compiled
        model is not cached) and was then up to about 1.5 times faster per gradient in
        our measurements, which pays off only for long runs.
    relabel : {"em", "stephens", "ecr"}, default "em"
        How every draw gets the EM components' labels: ``"em"``, the Hungarian match of its
        means to the EM means (draw by draw); ``"stephens"``, Stephens' (2000) KL
        relabelling of the memberships over the whole sample (started at the EM match,
        then named after the EM components); ``"ecr"``, ECR (Papastamoulis & Iliopoulos
        2010): each draw's MAP allocations agree as often as possible with EM's MAP
        clustering. The whole-sample algorithms need the memberships of every draw,
        ``n_draws x n_samples x K`` numbers in memory (see :func:`stephens_relabel`).
    random_seed : int, optional
        Same seed, same draws.
    progressbar : bool, default True
        Show the sampler's progress bar.
    covariance_type : str, optional
        The covariance family of the model (see :func:`bgmm.bayes.build_model`: full,
        tied, diag, spherical, EII, EEI); by default that of ``em`` when it is an EM fit,
        else ``"full"``. An EM fit of another family is refused.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior`` (``weights``, ``means``, ``covariances``, relabelled to the EM
        components), ``sample_stats``, ``log_likelihood`` (``x``: one value per observation
        and draw), ``observed_data``, ``relabeling`` (``permutation``, ``cost``,
        ``cost_margin`` per draw; r_hat of each variable before and after relabelling),
        ``em`` (the EM estimate with the same names and dims) and ``membership``
        (see :func:`bgmm.bayes.membership`), ``diagnostics`` (see
        :func:`bgmm.diagnostics.diagnose`) and, with a sparse prior
        (:meth:`Priors.sparse`), ``n_clusters`` (:func:`bgmm.bayes.n_clusters`).
        Settings and package versions are in ``attrs``.

    Raises
    ------
    ValueError
        A family the Bayesian model does not have (the message lists those it has), or an
        EM fit of a family other than ``covariance_type``.

    Warns
    -----
    SamplingWarning
        Any failed check of :func:`bgmm.diagnostics.diagnose` (after relabelling): r_hat
        above 1.01, ESS below 100 per chain, a vanishing component, chains in different
        modes, divergences, low E-BFMI, the tree depth at its limit, unresolved label
        switching; with what was seen, why it matters and what to try.

    Notes
    -----
    Every chain starts at the EM estimate, jittered per chain (PyMC's initial-point jitter,
    uniform on [-1, 1] in the unconstrained space) so that the chains are not identical.
    """
    data = data if isinstance(data, GMMData) else as_data(data)
    require_in_memory(data, "sampling the posterior")
    k = check_n_components(data, n_components)
    draws = check_number("draws", draws, low=1, integer=True)
    tune = check_number("tune", tune, low=1, integer=True)
    chains = check_number("chains", chains, low=1, integer=True)
    if sampler not in _SAMPLERS:
        raise InputValueError(f"sampler must be one of {_SAMPLERS}, got {sampler!r}.")
    if relabel not in _RELABEL_METHODS:
        raise InputValueError(
            f"relabel must be one of {tuple(_RELABEL_METHODS)}, got {relabel!r}."
        )
    if backend not in _BACKENDS:
        raise InputValueError(f"backend must be one of {_BACKENDS}, got {backend!r}.")
    if random_seed is not None:
        random_seed = check_number("random_seed", random_seed, low=0, integer=True)
    start = _em_result(em)
    em_family = getattr(start, "family", None)
    if covariance_type is None:
        covariance_type = "full" if em_family is None else em_family.name
    family = bayes_family(covariance_type, data.n_features)
    if em_family is not None and not em_family.same_model(family, data.n_features):
        raise InputValueError(
            f"em is a fit with covariance_type={em_family.name!r} but the model's is "
            f"{family.name!r}; fit EM with covariance_type={family.name!r}, or leave "
            f"covariance_type out to sample the EM fit's family."
        )
    rng = np.random.default_rng(random_seed)
    sample_seed = int(rng.integers(2**31 - 1))
    if isinstance(start, EMResult):
        if resp is not None:
            raise InputValueError(
                "resp is taken from the EM fit; pass resp only with em=GMMParams(...)."
            )
        params = start.params
        # EM on other rows (a whole lazy data set, the posterior on a subsample) has no
        # responsibilities for these rows.
        same_rows = isinstance(start.resp, np.ndarray) and start.resp.shape[0] == data.n_samples
        em_resp = start.resp if same_rows else None
    else:
        params, em_resp = start, None if resp is None else _check_resp(resp, data.n_samples, k)
    if params.n_components != k or params.n_features != data.n_features:
        raise InputValueError(
            f"em has {params.n_components} components and {params.n_features} features, but "
            f"n_components={k} and the data have {data.n_features} features."
        )
    model = build_model(data, k, priors, covariance_type=family.name)
    initvals = initial_values(model, params)
    tree, jittered = _sample(
        model,
        initvals,
        sampler,
        backend,
        progressbar,
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=sample_seed,
    )
    with model:
        pm.compute_log_likelihood(
            tree, model=model, progressbar=False, compile_kwargs={"mode": backend.upper()}
        )
    if data.has_missing:  # the data as they are: NaN where missing, not the model's zeros
        observed = tree["observed_data"].to_dataset()
        observed["x"] = observed["x"].copy(data=np.asarray(data.values))
        tree["observed_data"] = xr.DataTree(observed)
    raw = tree["posterior"].to_dataset()[list(CONTRACT_VARIABLES)]
    means = (
        raw["means"].stack(sample=("chain", "draw")).transpose("sample", "component", "feature")
    )
    costs = assignment_costs(means.values, params)
    source, cost, margin = match_to_reference(costs)
    if relabel != "em":
        source = _whole_sample_source(raw, data, params, em_resp, source, relabel)
        cost = np.take_along_axis(costs, source[:, None, :], axis=1)[:, 0, :].sum(axis=1)
    shape = (raw.sizes["chain"], raw.sizes["draw"])
    sample_coords = {"chain": raw["chain"].values, "draw": raw["draw"].values}
    source_da = xr.DataArray(
        source.reshape(*shape, k),
        dims=("chain", "draw", "component"),
        coords={**sample_coords, "component": raw["component"].values},
    )
    relabelled = relabel_dataset(raw, source_da)
    rhat_before, rhat_after = _max_rhat(raw), _max_rhat(relabelled)
    relabeling = xr.Dataset(
        {
            "permutation": source_da,
            "cost": (("chain", "draw"), cost.reshape(shape)),
            "cost_margin": (("chain", "draw"), margin.reshape(shape)),
        },
        coords=sample_coords,
        attrs={
            "method": _RELABEL_METHODS[relabel],
            "r_hat_before": json.dumps(rhat_before),
            "r_hat_after": json.dumps(rhat_after),
        },
    )
    tree["posterior"] = xr.DataTree(relabelled.assign_attrs(tree["posterior"].attrs))
    tree["relabeling"] = xr.DataTree(relabeling)
    em_ds = params.to_dataset(data.feature_names, raw["component"].values.tolist())
    tree["em"] = xr.DataTree(em_ds)
    tree["membership"] = xr.DataTree(membership(relabelled, data, em_resp))
    if data.has_missing:  # the missing values' posterior, EM's imputation beside it
        values = impute_draws(relabelled, data, random_seed=int(rng.integers(2**31 - 1)))
        tree["imputation"] = xr.DataTree(
            imputation_summary(values, em=impute(params, data)).assign(x_missing=values)
        )
    sparse = model.bgmm_priors.is_sparse
    if sparse:  # the sparse finite mixture's estimate of the number of clusters
        tree["n_clusters"] = xr.DataTree(
            n_clusters(relabelled, data, random_seed=int(rng.integers(2**31 - 1)))
        )
    settings = {
        "n_components": k,
        "covariance_type": family.name,
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "sampler": sampler,
        "backend": backend,
        "relabel": relabel,
        "random_seed": random_seed,
        "start": "EM estimate, jittered per chain"
        if jittered
        else "EM estimate moved by 1e-3 sd: no jittered start had a finite gradient",
        "priors": {
            "weights_concentration": model.bgmm_priors.weights_concentration.tolist(),
            "means_loc": model.bgmm_priors.means_loc.tolist(),
            "means_scale": model.bgmm_priors.means_scale.tolist(),
            "sd_scale": model.bgmm_priors.sd_scale.tolist(),
            "lkj_eta": model.bgmm_priors.lkj_eta,
        },
        "data_source": data.source,
    }
    tree.attrs.update(
        {"bgmm_settings": json.dumps(settings), "bgmm_versions": json.dumps(package_versions())}
    )
    diagnostics = diagnose(tree, data.n_samples, sparse=sparse)
    tree["diagnostics"] = xr.DataTree(diagnostics.dataset)
    _warn(diagnostics)
    return tree
