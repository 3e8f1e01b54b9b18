r"""The EM solver: compile the graph once, iterate, keep the per-iteration history.

One iteration is one compiled call. It takes the log responsibilities
:math:`\ln\gamma^{t-1}` of the previous E step and returns

* the M step :math:`\theta^t` (``weights``, ``means``, ``covariances``),
* the E step at :math:`\theta^t`: :math:`\ln\gamma^t` and :math:`\ln p(X \mid \theta^t)`,
* :math:`Q(\theta^t, \theta^{t-1})`, :math:`H(q^{t-1})`,
  :math:`\mathcal{L}(q^{t-1}, \theta^t) = Q + H` and
  :math:`\mathrm{KL}(q^{t-1} \| p(Z \mid X, \theta^t))`,

so that every row of the history satisfies
:math:`\ln p(X \mid \theta^t) = \mathcal{L}(q^{t-1}, \theta^t) + \mathrm{KL}` and the
returned responsibilities belong to the returned parameters (a final E step for free).

Numerics. The data are centred at their mean before the moments are formed (see
``bgmm.em.graph``); means are shifted back on return. A covariance is declared singular
when its smallest relative Cholesky pivot (``graph.pivot_ratios``) is below
``SINGULAR_RTOL`` or the factorisation fails.
"""

from __future__ import annotations

import functools
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt

from bgmm._arrays import readonly
from bgmm.data import GMMData, as_data, check_n_components
from bgmm.em import graph
from bgmm.exceptions import (
    ConvergenceWarning,
    LikelihoodDecreaseError,
    SingularCovarianceError,
    SingularCovarianceWarning,
)
from bgmm.params import GMMParams

__all__ = [
    "HISTORY_FIELDS",
    "SINGULAR_RTOL",
    "EMResult",
    "evaluate",
    "fit_em",
    "log_component_densities",
]

#: PyTensor mode of the compiled EM graphs. JAX (XLA) compiles them in seconds where numba
#: took minutes on an empty compile cache, and ran an iteration faster (benchmarks/).
COMPILE_MODE = "JAX"

#: Relative Cholesky pivot below which a covariance counts as singular.
SINGULAR_RTOL = 1e-12

#: Columns of ``EMResult.history``, one row per iteration t = 1, 2, ...
HISTORY_FIELDS = (
    "log_likelihood",  # ln p(X | theta^t), a sum over samples
    "q_value",  # Q(theta^t, theta^{t-1})
    "entropy",  # H(q^{t-1})
    "lower_bound",  # L(q^{t-1}, theta^t) = Q + H
    "kl",  # KL(q^{t-1} || p(Z | X, theta^t))
    "regularization_gap",  # how far reg_covar keeps Q below its maximum
)

InitParams = Literal["kmeans", "k-means++", "random"]
_INIT_PARAMS = ("kmeans", "k-means++", "random")


# Results and containers are documented by their attributes, not by __init__.
@dataclass(frozen=True, eq=False)
class EMResult:  # numpydoc ignore=PR01
    r"""The outcome of :func:`fit_em` (immutable).

    Attributes
    ----------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features)
    resp : ndarray of shape (n_samples, n_components)
        Responsibilities :math:`\gamma` at the returned parameters.
    log_likelihood : float
        :math:`\ln p(X \mid \theta)` at the returned parameters, a sum over samples; NaN
        (with a ``SingularCovarianceWarning``) when a returned covariance is singular.
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
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    resp: np.ndarray
    log_likelihood: float
    log_likelihood_init: float
    n_iter: int
    converged: bool
    history: np.ndarray
    init_log_likelihoods: np.ndarray
    feature_names: tuple[str, ...]

    @property
    def params(self) -> GMMParams:
        """The fitted parameters as a :class:`GMMParams` (not re-validated)."""
        return GMMParams(self.weights, self.means, self.covariances)

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
# Compiled functions (one set per number of features; shapes are otherwise symbolic)
# --------------------------------------------------------------------------------------


def _compiled(n_features: int):
    """The compiled EM functions for ``n_features``, in the current ``COMPILE_MODE``."""
    return _compile(n_features, COMPILE_MODE)


@functools.cache
def _compile(n_features: int, mode: str):
    X = pt.matrix("X", shape=(None, n_features), dtype="float64")
    Z = pt.matrix("Z", dtype="float64")
    weights = pt.vector("weights", dtype="float64")
    means = pt.matrix("means", dtype="float64")
    covariances = pt.tensor3("covariances", dtype="float64")
    log_resp_old = pt.matrix("log_resp_old", dtype="float64")
    reg_covar = pt.scalar("reg_covar", dtype="float64")

    def expectation(w, mu, cov, z):
        chol = graph.cholesky_factors(cov)
        log_phi = graph.log_gaussian_density(X, mu, chol, Z=z)
        wlp = graph.weighted_log_density(log_phi, w)
        log_resp, log_norm = graph.e_step(wlp)
        return log_phi, wlp, log_resp, log_norm, graph.pivot_ratios(chol, cov)

    # E step at given parameters (start of a run, and predict/score on any X).
    log_phi, _, log_resp, log_norm, pivots = expectation(weights, means, covariances, None)
    evaluate_fn = pytensor.function(
        [X, weights, means, covariances], [log_resp, log_norm, pivots, log_phi], mode=mode
    )

    # One EM iteration from the previous responsibilities.
    resp_old = pt.exp(log_resp_old)
    new_w, new_mu, new_cov, nk = graph.m_step(X, resp_old, reg_covar, Z=Z)
    _, wlp, log_resp_new, log_norm_new, pivots_new = expectation(new_w, new_mu, new_cov, Z)
    q = graph.q_value(resp_old, wlp)
    h = graph.entropy(resp_old, log_resp_old)
    step_fn = pytensor.function(
        [X, Z, log_resp_old, reg_covar],
        [
            new_w,
            new_mu,
            new_cov,
            nk,
            log_resp_new,
            graph.log_likelihood(log_norm_new),
            pivots_new,
            q,
            h,
            graph.lower_bound(q, h),
            graph.kl_divergence(resp_old, log_resp_old, log_resp_new),
            graph.regularization_gap(new_cov, nk, reg_covar),
        ],
        mode=mode,
    )
    moments_fn = pytensor.function([X], graph.outer_products(X, n_features), mode=mode)
    resp_in = pt.matrix("resp", dtype="float64")
    mstep_fn = pytensor.function(
        [X, resp_in, reg_covar], list(graph.m_step(X, resp_in, reg_covar)), mode=mode
    )
    return evaluate_fn, step_fn, moments_fn, mstep_fn


# --------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------


def _check_number(name, value, *, low, low_inclusive=True, integer=False):
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(
        value, bool
    )
    if not ok_type:
        raise TypeError(f"{name} must be {kind}, got {value!r} ({type(value).__name__}).")
    if not np.isfinite(value) or value < low or (value == low and not low_inclusive):
        bound = f">= {low}" if low_inclusive else f"> {low}"
        what = "an integer" if integer else "a finite number"
        raise ValueError(f"{name} must be {what} {bound}, got {value!r}.")
    return value


def _singular_components(pivots: np.ndarray) -> list[int]:
    return [int(k) for k in np.flatnonzero(~(pivots >= SINGULAR_RTOL))]


def _singular_message(components, covariances, where, reg_covar=None) -> str:
    details = "; ".join(
        f"component {k}: eigenvalues {np.round(np.linalg.eigvalsh(covariances[k]), 10).tolist()}"
        for k in components
    )
    setting = "" if reg_covar is None else f" with reg_covar={reg_covar}"
    return (
        f"the covariance of component(s) {components} is singular {where} ({details}), so "
        f"its Gaussian density is undefined{setting}. Increase reg_covar "
        f"(e.g. 1e-6 times the data's variance), use fewer components, or scale the data."
    )


# --------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------


def _initial_resp(Xc: np.ndarray, n_components: int, init_params: str, rng) -> np.ndarray:
    n = Xc.shape[0]
    if init_params == "random":
        resp = rng.uniform(size=(n, n_components))
        return resp / resp.sum(axis=1, keepdims=True)
    from sklearn.cluster import KMeans, kmeans_plusplus

    seed = int(rng.integers(np.iinfo(np.int32).max))
    if init_params == "kmeans":
        labels = KMeans(n_clusters=n_components, n_init=1, random_state=seed).fit(Xc).labels_
    else:  # "k-means++": seeding only, samples go to their nearest centre
        centres, _ = kmeans_plusplus(Xc, n_components, random_state=seed)
        labels = ((Xc[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1).argmin(axis=1)
    resp = np.zeros((n, n_components))
    resp[np.arange(n), labels] = 1.0
    return resp


def _initial_params(
    Xc, n_components, init_params, rng, reg_covar, user: dict[str, Any], mstep_fn
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if all(v is not None for v in user.values()):
        return user["weights"], user["means"], user["covariances"]
    resp = _initial_resp(Xc, n_components, init_params, rng)
    weights, means, covariances, _ = mstep_fn(Xc, resp, reg_covar)
    return (
        user["weights"] if user["weights"] is not None else weights,
        user["means"] if user["means"] is not None else means,
        user["covariances"] if user["covariances"] is not None else covariances,
    )


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


# --------------------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------------------


def _run(Xc, Z, start, reg_covar, tol, max_iter, fns):
    evaluate_fn, step_fn, _, _ = fns
    n = Xc.shape[0]
    weights, means, covariances = start
    log_resp, log_norm, pivots, _ = evaluate_fn(Xc, weights, means, covariances)
    bad = _singular_components(pivots)
    if bad:
        raise SingularCovarianceError(
            _singular_message(bad, covariances, "at the starting parameters", reg_covar)
        )
    ll_init = ll = float(log_norm.sum())
    rows: list[tuple] = []
    converged = False
    singular_at_end: list[int] = []
    for it in range(1, max_iter + 1):
        (w, mu, cov, nk, log_resp_new, ll_new, piv, q, h, lb, kl, gap) = step_fn(
            Xc, Z, log_resp, reg_covar
        )
        empty = np.flatnonzero(~(nk > 0) | ~np.isfinite(mu).all(axis=1))
        if empty.size:
            raise ValueError(
                f"component(s) {empty.tolist()} received no responsibility at iteration {it} "
                f"(N_k = {nk[empty].tolist()}): they are empty. Use fewer components, another "
                f"random_state, or another init_params."
            )
        weights, means, covariances = w, mu, np.ascontiguousarray(cov)
        bad = _singular_components(piv)
        if bad:
            if it < max_iter:
                raise SingularCovarianceError(
                    _singular_message(bad, cov, f"after the M step of iteration {it}", reg_covar)
                    + " The next E step cannot be computed."
                )
            singular_at_end = bad
            rows.append((np.nan, np.nan, float(h), np.nan, np.nan, float(gap)))
            ll = np.nan
            log_resp = np.full_like(log_resp, np.nan)
            break
        ll_new, gap = float(ll_new), float(gap)
        roundoff = 1e-9 * max(n, abs(ll))
        if ll_new < ll - gap - roundoff:
            raise LikelihoodDecreaseError(
                f"the log-likelihood decreased from {ll!r} to {ll_new!r} at iteration {it}, "
                f"beyond round-off ({roundoff:.3g}) and the regularisation gap ({gap:.3g}). "
                f"EM cannot do this: please report it with the data."
            )
        rows.append((ll_new, float(q), float(h), float(lb), float(kl), gap))
        change = abs(ll_new - ll) / n
        ll, log_resp = ll_new, log_resp_new
        if change < tol:
            converged = True
            break
    history = np.array(rows, dtype=[(f, "f8") for f in HISTORY_FIELDS])
    history.setflags(write=False)
    return {
        "weights": weights,
        "means": means,
        "covariances": covariances,
        "log_resp": log_resp,
        "log_likelihood": ll,
        "log_likelihood_init": ll_init,
        "n_iter": len(rows),
        "converged": converged,
        "history": history,
        "singular": singular_at_end,
    }


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
    callback: Callable[[int, int, float], None] | None = None,
) -> EMResult:
    r"""Fit a Gaussian mixture by expectation-maximisation.

    Alternates the E step :math:`\gamma_{kn} = \pi_k\phi_k(x_n) / \sum_j \pi_j\phi_j(x_n)`
    and the closed-form M step :math:`\pi_k = N_k/N`, :math:`\mu_k = X\gamma_k/N_k`,
    :math:`\Sigma_k = X\operatorname{diag}(\gamma_k)X^T/N_k - \mu_k\mu_k^T + \epsilon I`
    until the mean per-sample log-likelihood changes by less than ``tol``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), DataFrame, DataArray, path or GMMData
        Read through :func:`bgmm.as_data`.
    n_components : int
        Number of components K, between 1 and ``n_samples``.
    covariance_type : {"full"}
        Only full covariances are implemented.
    tol : float, default 1e-10
        Convergence threshold on the change of the mean per-sample log-likelihood between
        iterations. Small, because EM converges linearly and a loose threshold stops well
        short of the optimum; one iteration costs little.
    max_iter : int, default 1000
        Most iterations per restart.
    reg_covar : float, default 1e-6
        Added to the diagonal of every covariance after the M step (0 gives the derivation
        exactly, and then a singular covariance stops the fit with a clear error).
    init_params : {"kmeans", "k-means++", "random"}, default "kmeans"
        How responsibilities are initialised when parameters are not all given:
        hard k-means labels, hard labels of the nearest k-means++ seed, or uniform random
        responsibilities.
    n_init : int, default 1
        Number of restarts; the one with the highest final log-likelihood is kept.
    random_state : int, numpy Generator or None
        Seed of every random choice (restarts, k-means); same seed, same result.
    weights_init, means_init, covariances_init : array-like, optional
        Starting parameters (shapes ``(K,)``, ``(K, d)``, ``(K, d, d)``). When all three
        are given, EM starts from them exactly (e.g. the worked example's table); any that
        are given replace those of the initialisation.
    callback : callable, optional
        Called as ``callback(restart, n_init, log_likelihood)`` after every restart (for
        progress displays; the solver itself prints nothing).

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

    Warns
    -----
    ConvergenceWarning
        ``max_iter`` was reached before convergence.
    SingularCovarianceWarning
        The last M step returned a singular covariance (only possible with
        ``reg_covar=0``); ``log_likelihood`` and ``resp`` are then NaN.

    Notes
    -----
    Implements ``docs/derivation.md``; the bound
    :math:`\ln p(X|\theta) = \mathcal{L}(q,\theta) + \mathrm{KL}(q\|p)` is recorded at every
    iteration in ``history``.

    References
    ----------
    Dempster, Laird & Rubin (1977), JRSS B 39(1). Bishop (2006), PRML, section 9.2.
    """
    data = X if isinstance(X, GMMData) else as_data(X)
    n_components = check_n_components(data, n_components)
    if covariance_type != "full":
        raise ValueError(
            f"covariance_type must be 'full', got {covariance_type!r}; "
            f"diagonal, spherical and tied covariances are not implemented yet."
        )
    _check_number("tol", tol, low=0.0)
    _check_number("reg_covar", reg_covar, low=0.0)
    _check_number("max_iter", max_iter, low=1, integer=True)
    _check_number("n_init", n_init, low=1, integer=True)
    if init_params not in _INIT_PARAMS:
        raise ValueError(f"init_params must be one of {_INIT_PARAMS}, got {init_params!r}.")
    user = _check_user_init(
        weights_init, means_init, covariances_init, n_components, data.n_features
    )
    rng = np.random.default_rng(random_state)
    center = data.values.mean(axis=0)
    Xc = np.ascontiguousarray(data.values - center)
    if user["means"] is not None:
        user["means"] = user["means"] - center
    fns = _compiled(data.n_features)
    Z = fns[2](Xc)
    best, finals = None, []
    for restart in range(n_init):
        start = _initial_params(Xc, n_components, init_params, rng, reg_covar, user, fns[3])
        start = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in start)
        run = _run(Xc, Z, start, float(reg_covar), float(tol), int(max_iter), fns)
        finals.append(run["log_likelihood"])
        if callback is not None:
            callback(restart + 1, n_init, run["log_likelihood"])
        score = run["log_likelihood"] if np.isfinite(run["log_likelihood"]) else -np.inf
        if best is None or score > best[0]:
            best = (score, run)
    run = best[1]
    if run["singular"]:
        warnings.warn(
            _singular_message(
                run["singular"], run["covariances"], "at the returned parameters", reg_covar
            )
            + " log_likelihood and resp are NaN.",
            SingularCovarianceWarning,
            stacklevel=2,
        )
    elif not run["converged"] and tol > 0:
        warnings.warn(
            f"EM did not converge in max_iter={max_iter} iterations (last change of the mean "
            f"log-likelihood above tol={tol}); increase max_iter or tol.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return EMResult(
        weights=readonly(run["weights"]),
        means=readonly(run["means"] + center),
        covariances=readonly(run["covariances"]),
        resp=readonly(np.exp(run["log_resp"])),
        log_likelihood=float(run["log_likelihood"]),
        log_likelihood_init=float(run["log_likelihood_init"]),
        n_iter=run["n_iter"],
        converged=run["converged"],
        history=run["history"],
        init_log_likelihoods=readonly(finals),
        feature_names=data.feature_names,
    )


def evaluate(params: GMMParams, X: Any) -> tuple[np.ndarray, np.ndarray]:
    r"""Log responsibilities and per-sample log-likelihoods of ``X`` under ``params``.

    The E step of :func:`fit_em`, on any data; see :func:`bgmm.em.log_component_densities`
    for the unweighted component densities.

    Parameters
    ----------
    params : GMMParams
        The mixture.
    X : array-like of shape (n_samples, n_features) or anything :func:`bgmm.as_data` reads
        The data.

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
    data = X if isinstance(X, GMMData) else as_data(X)
    log_resp, log_norm, _ = _evaluate_all(params, data)
    return log_resp, log_norm


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
    data = X if isinstance(X, GMMData) else as_data(X)
    return _evaluate_all(params, data)[2]


def _evaluate_all(params: GMMParams, data: GMMData):
    if data.n_features != params.n_features:
        raise ValueError(
            f"X has {data.n_features} features but the mixture has {params.n_features}; "
            f"pass data with the features used in the fit."
        )
    center = data.values.mean(axis=0)
    evaluate_fn = _compiled(data.n_features)[0]
    log_resp, log_norm, pivots, log_phi = evaluate_fn(
        np.ascontiguousarray(data.values - center),
        np.ascontiguousarray(params.weights),
        np.ascontiguousarray(params.means - center),
        np.ascontiguousarray(params.covariances),
    )
    bad = _singular_components(pivots)
    if bad:
        raise SingularCovarianceError(
            _singular_message(bad, params.covariances, "in these parameters")
        )
    return log_resp, log_norm, log_phi
