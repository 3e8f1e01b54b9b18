r"""Choosing the number of components: EM criteria beside Bayesian LOO.

For every K in a range:

* ``bic`` :math:`= -2 \ln p(X|\hat\theta) + p \ln N` and ``aic`` :math:`= -2 \ln p(X|\hat\theta)
  + 2p` (lower is better), with :math:`p = K d(d+1)/2 + K d + K - 1` free parameters;
* ``icl`` :math:`= \mathrm{BIC} + 2 \, \mathrm{EN}(\hat\gamma)`, the integrated completed
  likelihood of Biernacki, Celeux & Govaert (2000), which adds the entropy of the
  responsibilities and so penalises overlapping components;
* ``elpd_loo`` and its standard error from PSIS-LOO (``arviz_stats.loo``) on the posterior of
  :func:`bgmm.bayes.sample_posterior` (higher is better), and ``looic`` :math:`= -2\,`
  ``elpd_loo`` on the same deviance scale as the criteria above;
* ``elpd_diff``, ``dse``, ``p_worse`` and ``weight`` from ``arviz_stats.compare``: the
  difference of ``elpd_loo`` from the best K, the standard error *of that difference*
  (computed pointwise, so much smaller than the separate standard errors), the probability
  that this K predicts worse than the best, and the stacking weight.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import arviz_stats as azs
import numpy as np
import pandas as pd

from bgmm.covariance import FAMILIES, get_family
from bgmm.data import GMMData, as_data, check_n_components
from bgmm.em import EMResult, fit_em
from bgmm.exceptions import ConvergenceWarning, InputValueError, SingularCovarianceError

__all__ = [
    "PARETO_BAD_SHARE",
    "PARETO_K_MAX",
    "P_LOO_FACTOR",
    "bic_table",
    "criteria",
    "n_parameters",
    "select_k",
    "select_model",
]


def n_parameters(n_components: int, n_features: int, covariance_type: str = "full") -> int:
    r"""Free parameters of a Gaussian mixture (mclust's ``df``).

    The family's covariance parameters (:meth:`bgmm.covariance.CovarianceFamily.n_parameters`;
    :math:`K d (d+1)/2` for full covariances), :math:`K d` means and :math:`K - 1` weights.

    Parameters
    ----------
    n_components : int
        The number of components K.
    n_features : int
        The number of features d.
    covariance_type : str, default "full"
        The covariance family (:func:`bgmm.covariance.get_family`).

    Returns
    -------
    int
        Covariance parameters, means and the K - 1 free weights.
    """
    k, d = n_components, n_features
    return get_family(covariance_type, d).n_parameters(k, d) + k * d + k - 1


def select_k(
    data: Any,
    k_range,
    *,
    n_init: int = 5,
    random_state: int | None = None,
    loo: bool = True,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    backend: str = "jax",
    progressbar: bool = False,
    missing: str = "raise",
) -> pd.DataFrame:
    r"""EM information criteria and Bayesian LOO for every K in ``k_range``.

    Parameters
    ----------
    data : GMMData or anything :func:`bgmm.as_data` reads
        The data.
    k_range : iterable of int
        Numbers of components to try, each between 1 and ``n_samples``.
    n_init : int, default 5
        EM restarts per K.
    random_state : int, optional
        Seed of the EM restarts and of the sampler (same seed, same table).
    loo : bool, default True
        Also sample each posterior and compute PSIS-LOO (slower).
    draws, tune, chains : int
        Sampler settings for LOO.
    backend : {"jax", "numba"}, default "jax"
        Compiler of the sampler's log density (see :func:`bgmm.bayes.sample_posterior`).
    progressbar : bool, default False
        Show the sampler's progress bars.
    missing : {"raise", "em"}, default "raise"
        Missing values (NaN): refused, or fitted under missing at random
        (:func:`bgmm.fit_em`); the criteria then use the observed-data log-likelihood.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``k``: ``log_likelihood``, ``n_parameters``, ``bic``, ``aic``, ``icl``
        and, with ``loo``, ``elpd_loo``, ``elpd_loo_se``, ``p_loo``, ``looic`` and
        ``pareto_k_bad`` (observations whose Pareto k exceeds ArviZ's sample-size dependent
        threshold, at most 0.7: their LOO estimate is unreliable), and the comparison with
        the best K: ``elpd_diff`` (0 for the best), ``dse`` (standard error of the
        difference), ``p_worse`` and the stacking ``weight``; ``loo_trusted`` and
        ``loo_issues``: the Pareto k above 0.7, ``p_loo`` above the number of parameters
        and the r_hat, mode, vanishing-component and label-switching findings of the K's
        posterior (:mod:`bgmm.diagnostics`); LOO is not trusted with more than 1% of the
        Pareto k above 0.7, ``p_loo`` above 1.5 times the parameters, or a posterior that
        is not a single mode (:data:`PARETO_BAD_SHARE`, :data:`P_LOO_FACTOR`).
        ``recommended`` marks the recommended K: the simplest K that LOO trusts whose elpd
        is within two ``dse`` of the best trusted K (BIC's K when LOO is not computed or
        trusted nowhere); ``table.attrs["recommended_k"]`` and
        ``table.attrs["recommendation"]`` (the reason, in words).

    Notes
    -----
    With :math:`p` free parameters (:func:`n_parameters`) and the EM estimate
    :math:`\hat\theta`,

    .. math::
        \mathrm{BIC} = -2 \ln p(X \mid \hat\theta) + p \ln N, \quad
        \mathrm{AIC} = -2 \ln p(X \mid \hat\theta) + 2p, \quad
        \mathrm{ICL} = \mathrm{BIC} - 2 \sum_n \sum_k \hat\gamma_{nk} \ln \hat\gamma_{nk},

    and :math:`\mathrm{LOOIC} = -2\,\widehat{\mathrm{elpd}}_\mathrm{loo}` with
    :math:`\widehat{\mathrm{elpd}}_\mathrm{loo} = \sum_n \ln p(x_n \mid X_{-n})` estimated
    by PSIS.

    A K whose ``elpd_diff`` lies within about two ``dse`` of 0 predicts about as well as the
    best; the smallest such K is the usual choice. Judge differences by ``dse``, not by
    ``elpd_loo_se``: the pointwise differences of two models fitted to the same data are
    strongly correlated.
    """
    if not isinstance(data, GMMData):
        data = as_data(data, missing="allow" if missing == "em" else "raise")
    ks = sorted({check_n_components(data, k) for k in k_range})
    if not ks:
        raise InputValueError("k_range is empty; give at least one number of components.")
    n = data.n_samples
    sampling = _Sampling(draws, tune, chains, backend, progressbar)
    rows, elpds = [], {}
    for k in ks:
        em = fit_em(data, k, n_init=n_init, random_state=random_state, missing=missing)
        row = {"k": k, **criteria(em, n)}
        if loo:
            result = _loo(data, em, sampling, random_state)
            elpds[str(k)] = result.result
            row.update(_loo_columns(result, em.n_parameters))
        rows.append(row)
    table = pd.DataFrame(rows).set_index("k")
    if loo:
        table = table.join(_compare_loo(elpds, {key: int(key) for key in elpds}, "k"))
    choice, reason = _recommend(table, elpds, str, "k")
    table["recommended"] = table.index == choice
    table.attrs["recommended_k"] = int(choice)
    table.attrs["recommendation"] = f"K = {choice}, by {reason}."
    return table


class _Sampling(NamedTuple):
    """Sampler settings of the LOO columns."""

    draws: int
    tune: int
    chains: int
    backend: str
    progressbar: bool


#: Above this Pareto k an observation's PSIS-LOO term is unreliable (Vehtari et al. 2024).
PARETO_K_MAX = 0.7

#: Share of observations with a high Pareto k above which LOO is not trusted.
#:
#: A few such terms move elpd by less than its standard error; many make the estimate
#: itself unreliable (iris at K = 5: 17 of 150). One is always allowed.
PARETO_BAD_SHARE = 0.01

#: Multiple of the number of parameters above which p_loo makes LOO untrusted.
#:
#: p_loo above p is the loo package's sign of a badly misspecified model (Vehtari et al.
#: 2017); the factor absorbs the PSIS error of p_loo itself, which the high-k terms inflate
#: (three well separated clusters, N = 200, K = 3: p_loo 18.7 for 17 parameters with one
#: k of 0.87; iris at K = 5: 267 for 74).
P_LOO_FACTOR = 1.5

#: Diagnostics findings reported beside LOO; the multimodal ones make it untrusted.
_LOO_FINDINGS = ("r_hat", "r_hat_modes", "modes", "vanishing", "label_switching")


class _LOO(NamedTuple):
    """PSIS-LOO of one posterior and the checks of that posterior."""

    result: Any
    diagnostics: Any


def _loo(data: GMMData, em: EMResult, sampling: _Sampling, random_state) -> _LOO:
    """PSIS-LOO of the posterior of ``em``'s K and family, started at ``em``."""
    from bgmm.bayes import SamplingWarning, sample_posterior
    from bgmm.diagnostics import Diagnostics

    with warnings.catch_warnings():
        # The findings go to the table's loo_issues column, not one warning per K.
        warnings.simplefilter("ignore", SamplingWarning)
        tree = sample_posterior(
            data,
            em.weights.shape[0],
            em=em,
            draws=sampling.draws,
            tune=sampling.tune,
            chains=sampling.chains,
            backend=sampling.backend,
            random_seed=random_state,
            progressbar=sampling.progressbar,
        )
    with warnings.catch_warnings():
        # Reported through pareto_k_bad rather than as a warning per model.
        warnings.filterwarnings("ignore", message=".*shape parameter of Pareto.*")
        result = azs.loo(tree)
    return _LOO(result, Diagnostics.from_dataset(tree["diagnostics"].to_dataset()))


_LOO_COLUMNS = (
    "elpd_loo",
    "elpd_loo_se",
    "p_loo",
    "looic",
    "pareto_k_bad",
    "loo_trusted",
    "loo_issues",
)


def _loo_columns(loo: _LOO, n_parameters: int) -> dict:
    """The ``_LOO_COLUMNS`` of one PSIS-LOO result, with whether it can be trusted."""
    result = loo.result
    pareto_k = np.asarray(result.pareto_k)
    bad = int((pareto_k > PARETO_K_MAX).sum())
    issues, trusted = [], True
    if bad:
        issues.append(f"{bad} Pareto k above {PARETO_K_MAX} (largest {float(pareto_k.max()):.2f})")
        trusted &= bad <= max(1, PARETO_BAD_SHARE * pareto_k.size)
    if float(result.p) > n_parameters:
        issues.append(f"p_loo {float(result.p):.1f} above the {n_parameters} parameters")
        trusted &= float(result.p) <= P_LOO_FACTOR * n_parameters
    for finding in loo.diagnostics.findings:
        if finding.check in _LOO_FINDINGS:
            issues.append(finding.seen)
            trusted &= not finding.multimodal
    return {
        "elpd_loo": float(result.elpd),
        "elpd_loo_se": float(result.se),
        "p_loo": float(result.p),
        "looic": -2.0 * float(result.elpd),
        "pareto_k_bad": bad,
        "loo_trusted": bool(trusted),
        "loo_issues": "; ".join(issues),
    }


def _recommend(table: pd.DataFrame, elpds: dict, label, names) -> tuple[Any, str]:
    """The recommended K (or cell) and why.

    The simplest model LOO trusts that predicts as well as the best trusted one (within
    two standard errors of the difference), else BIC's choice, with the reason.
    """
    if "elpd_loo" in table:
        trusted = table.index[table["loo_trusted"].astype(bool)]
        if len(trusted):
            keys = {label(i): i for i in trusted}
            compared = _compare_loo({key: elpds[key] for key in keys}, keys, names)
            # elpd_diff is 0 for the best and negative for the others
            best = compared["elpd_diff"].idxmax()
            near = compared[compared["elpd_diff"] >= -2.0 * compared["dse"].fillna(0.0)]
            choice = min(near.index, key=lambda i: table.loc[i, "n_parameters"])
            untrusted = [label(i) for i in table.index if i not in set(trusted)]
            reason = (
                f"LOO: the simplest of the models LOO can trust whose elpd is within two "
                f"standard errors of the best trusted one ({label(best)})"
            )
            if untrusted:
                reason += f"; LOO not trusted for {', '.join(untrusted)} (see loo_issues)"
            return choice, reason
        choice = table["bic"].idxmin()
        return choice, (
            "BIC: LOO cannot be trusted for any model (see loo_issues), so the EM criterion "
            "decides"
        )
    return table["bic"].idxmin(), "BIC (no LOO computed)"


def criteria(em: EMResult, n: float) -> dict:
    r"""The log-likelihood, df, BIC, AIC and ICL of one EM fit (as in :func:`select_k`).

    :math:`\mathrm{BIC} = -2 \ln p(X \mid \hat\theta) + p \ln N`,
    :math:`\mathrm{AIC} = -2 \ln p + 2p`, :math:`\mathrm{ICL} = \mathrm{BIC} + 2\,
    \mathrm{EN}(\hat\gamma)`; lower is better.

    Parameters
    ----------
    em : EMResult
        The fit.
    n : float
        The number of observations (the sum of the weights).

    Returns
    -------
    dict
        ``log_likelihood``, ``n_parameters``, ``bic``, ``aic``, ``icl``.
    """
    p = em.n_parameters
    deviance = -2.0 * em.log_likelihood
    resp = em.resp  # a Dask array for lazy data: the entropy is then a reduction
    entropy = -(resp * np.log(np.where(resp > 0, resp, 1.0))).sum()
    entropy = float(entropy.compute() if hasattr(entropy, "compute") else entropy)
    return {
        "log_likelihood": em.log_likelihood,
        "n_parameters": p,
        "bic": deviance + p * np.log(n),
        "aic": deviance + 2 * p,
        "icl": deviance + p * np.log(n) + 2.0 * entropy,
    }


def _families(families) -> list[str]:
    if isinstance(families, str):
        families = list(FAMILIES) if families == "all" else families.split(",")
    names = [get_family(f.strip()).name for f in families]
    if not names:
        raise InputValueError("families is empty; give 'all' or at least one family, e.g. 'VVV'.")
    return list(dict.fromkeys(names))


def select_model(
    data: Any,
    k_range,
    families="all",
    *,
    n_init: int = 10,
    init_params: str = "auto",
    random_state: int | None = None,
    reg_covar: float = 1e-6,
    max_iter: int = 1000,
    loo: bool = False,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    backend: str = "jax",
    progressbar: bool = False,
    missing: str = "raise",
) -> pd.DataFrame:
    r"""EM criteria for every number of components and covariance family (mclust's table).

    Every cell is an EM fit (:func:`bgmm.fit_em`); for a given K, every family starts from
    the same partitions (same ``random_state``), as mclust starts every model from one
    hierarchical clustering. By default each cell keeps the best of ten restarts, run
    together: the model-based hierarchical agglomeration mclust starts from, k-means, and
    eight k-means++ seeds. One k-means start, or the agglomeration alone, stays below
    mclust's log-likelihood in some cells of Old Faithful; these ten reach it in every
    cell measured (README, "Starting points"; ``benchmarks/bench_starts.py`` repeats it).

    Parameters
    ----------
    data : GMMData or anything :func:`bgmm.as_data` reads
        The data.
    k_range : iterable of int
        Numbers of components, each between 1 and ``n_samples``.
    families : "all", str or sequence of str, default "all"
        The families: ``"all"`` (mclust's fourteen), a comma-separated string such as
        ``"EII,VVV"``, or a list; scikit-learn's names are accepted too. With one feature,
        ``"all"`` means mclust's ``E`` and ``V``.
    n_init : int, default 10
        EM restarts per cell, iterated together; the best is kept.
    init_params : {"auto", "hierarchical", "kmeans", "k-means++", "random"}, default "auto"
        The starts (see :func:`bgmm.fit_em`): ``"auto"`` is the agglomeration, k-means,
        then k-means++ seeds.
    random_state : int, optional
        Seed of the starts (same seed, same table).
    reg_covar : float, default 1e-6
        As in :func:`bgmm.fit_em`.
    max_iter : int, default 1000
        As in :func:`bgmm.fit_em`.
    loo : bool, default False
        Also sample the posterior of every cell whose family the Bayesian model has
        (:data:`bgmm.bayes.BAYES_FAMILIES`), started at the cell's EM fit, and add its
        PSIS-LOO (slow: one NUTS run per cell).
    draws, tune, chains : int
        Sampler settings for LOO.
    backend : {"jax", "numba"}, default "jax"
        Compiler of the sampler's log density (see :func:`bgmm.bayes.sample_posterior`).
    progressbar : bool, default False
        Show the sampler's progress bars.
    missing : {"raise", "em"}, default "raise"
        Missing values (NaN): refused, or fitted under missing at random
        (:func:`bgmm.fit_em`); the criteria then use the observed-data log-likelihood.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(k, family)``: ``log_likelihood``, ``n_parameters`` (mclust's df),
        ``bic``, ``aic``, ``icl`` (lower is better; mclust reports
        :math:`-\mathrm{BIC}`), ``converged``, ``best_bic`` and ``best_icl`` (the
        best cell of each criterion), and ``note`` (why a cell has no fit: a singular or
        empty component, which mclust reports as NA). With ``loo``, the columns of
        :func:`select_k`'s LOO (``elpd_loo`` ... ``weight``, compared over every cell that
        has them; NaN for the families the Bayesian model lacks) and ``best_loo``.
        :func:`bic_table` gives the K x family view.

    Notes
    -----
    With :math:`p` free parameters of the family (:func:`n_parameters`),
    :math:`\mathrm{BIC} = -2 \ln p(X \mid \hat\theta) + p \ln N` and
    :math:`\mathrm{ICL} = \mathrm{BIC} - 2 \sum_n \sum_k \hat\gamma_{nk}
    \ln \hat\gamma_{nk}` (Biernacki, Celeux & Govaert 2000).
    """
    if not isinstance(data, GMMData):
        data = as_data(data, missing="allow" if missing == "em" else "raise")
    ks = sorted({check_n_components(data, k) for k in k_range})
    if not ks:
        raise InputValueError("k_range is empty; give at least one number of components.")
    if data.n_features == 1 and (isinstance(families, str) and families == "all"):
        names = ["E", "V"]
    else:
        names = _families(families)
    sampling = _Sampling(draws, tune, chains, backend, progressbar)
    if loo:
        from bgmm.bayes import BAYES_FAMILIES
    rows, elpds, cells = [], {}, {}
    for k in ks:
        for name in names:
            row = {"k": k, "family": name}
            try:
                with warnings.catch_warnings():
                    # Reported in the table's converged column, as mclust does.
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    em = fit_em(
                        data,
                        k,
                        covariance_type=name,
                        init_params=init_params,
                        n_init=n_init,
                        random_state=random_state,
                        reg_covar=reg_covar,
                        max_iter=max_iter,
                        missing=missing,
                    )
            except (SingularCovarianceError, ValueError) as exc:
                if isinstance(exc, ValueError) and "empty" not in str(exc):
                    raise
                row.update(
                    {
                        "log_likelihood": np.nan,
                        "n_parameters": n_parameters(k, data.n_features, name),
                        "converged": False,
                        "note": str(exc).split(";")[0],
                    }
                )
            else:
                row.update(criteria(em, em.total_weight))
                row.update({"converged": em.converged, "note": ""})
                if loo and name in BAYES_FAMILIES:
                    result = _loo(data, em, sampling, random_state)
                    elpds[f"{k} {name}"] = result.result
                    cells[f"{k} {name}"] = (k, name)
                    row.update(_loo_columns(result, em.n_parameters))
                elif loo:
                    row["note"] = "no Bayesian model of this family (no LOO)"
            rows.append(row)
    table = pd.DataFrame(rows).set_index(["k", "family"])
    columns = ["log_likelihood", "n_parameters", "bic", "aic", "icl", "converged", "note"]
    table = table[columns + (list(_LOO_COLUMNS) if elpds else [])]
    if elpds:
        table = table.join(_compare_loo(elpds, cells, ["k", "family"]))
    for criterion in ("bic", "icl"):
        table[f"best_{criterion}"] = False
        if table[criterion].notna().any():
            table.loc[table[criterion].idxmin(), f"best_{criterion}"] = True
    if elpds:
        table["best_loo"] = False
        table.loc[table["elpd_loo"].idxmax(), "best_loo"] = True
    if table["bic"].notna().any():
        scored = table[table["bic"].notna() & (table["elpd_loo"].notna() if elpds else True)]
        choice, reason = _recommend(scored, elpds, lambda i: f"{i[0]} {i[1]}", ["k", "family"])
        table["recommended"] = [i == choice for i in table.index]
        table.attrs["recommended"] = [int(choice[0]), str(choice[1])]
        table.attrs["recommendation"] = f"K = {choice[0]}, {choice[1]}, by {reason}."
    return table


def bic_table(table: pd.DataFrame, criterion: str = "bic") -> pd.DataFrame:
    """The K x family view of :func:`select_model` (as mclust prints its BIC).

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`select_model`.
    criterion : {"bic", "icl", "aic", "log_likelihood", "elpd_loo", "looic"}, default "bic"
        The column to show (the LOO ones when the table has them).

    Returns
    -------
    pandas.DataFrame
        One row per K, one column per family, in the order of ``table``.
    """
    criteria = ("bic", "icl", "aic", "log_likelihood", "elpd_loo", "looic")
    if criterion not in criteria or criterion not in table:
        raise InputValueError(
            f"criterion must be one of the table's {[c for c in criteria if c in table]}, "
            f"got {criterion!r}."
        )
    families = list(dict.fromkeys(table.index.get_level_values("family")))
    return table[criterion].unstack("family")[families]


def _compare_loo(elpds: dict, index: dict, names) -> pd.DataFrame:
    """Each model against the best by LOO (``arviz_stats.compare``).

    ``elpds`` maps a label to its LOO result; ``index`` maps the label to the table's
    index value, whose level name(s) are ``names``.
    """
    columns = ["elpd_diff", "dse", "p_worse", "weight"]
    if len(elpds) == 1:
        out = pd.DataFrame([[0.0, 0.0, np.nan, 1.0]], index=list(elpds), columns=columns)
    else:
        out = azs.compare(elpds, round_to="none")[columns].astype(float)
    labels = [index[key] for key in out.index]
    if isinstance(names, str):
        out.index = pd.Index(labels, name=names)
    else:
        out.index = pd.MultiIndex.from_tuples(labels, names=names)
    return out
