"""The whole pipeline in one call: EM, standard errors, the posterior, the comparison, a report.

:func:`analyse` is what ``bgmm fit`` and ``bgmm demo`` run; a notebook calls it the same
way and gets every intermediate result back (:class:`Analysis`). Each stage is also its own
public function (:func:`bgmm.fit_em`, :func:`bgmm.em.standard_errors`,
:func:`bgmm.bayes.sample_posterior`, :func:`bgmm.compare.compare`,
:func:`bgmm.report.write_report`) for users who want to change one of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bgmm.compare import Comparison, compare
from bgmm.data import GMMData, as_data
from bgmm.em import EMResult, StandardErrors, fit_em, standard_errors
from bgmm.exceptions import InputValueError

__all__ = ["METHODS", "Analysis", "analyse"]

#: What :func:`analyse` runs: EM only, or EM and the posterior (with their comparison).
METHODS = ("em", "mcmc", "both")


# Results and containers are documented by their attributes, not by __init__.
@dataclass(frozen=True, eq=False)
class Analysis:  # numpydoc ignore=PR01
    """Everything :func:`analyse` computed, stage by stage.

    Attributes
    ----------
    data : GMMData
    em : EMResult
        The EM fit (the best of ``n_init`` restarts).
    standard_error : StandardErrors
        EM's standard errors from the observed information.
    posterior : xarray.DataTree or None
        From :func:`bgmm.bayes.sample_posterior` (None with ``method="em"``).
    comparison : Comparison or None
        From :func:`bgmm.compare.compare` (None with ``method="em"``).
    settings : dict
        The settings of the run (kept in the report and the saved fit).
    """

    data: GMMData
    em: EMResult
    standard_error: StandardErrors
    posterior: Any
    comparison: Comparison | None
    settings: dict

    def write_report(
        self, output: str | os.PathLike, *, title: str = "bgmm fit", save: bool = True
    ) -> Path:
        """Write the report, its plots and (with ``save``) ``fit.nc`` to ``output``.

        Parameters
        ----------
        output : str or PathLike
            Output directory, created if missing.
        title : str, default "bgmm fit"
            The report's title.
        save : bool, default True
            Also write the whole fit to ``fit.nc`` (:func:`bgmm.io.save_fit`).

        Returns
        -------
        pathlib.Path
            The report's path (see :func:`bgmm.report.write_report`).
        """
        from bgmm.report import write_report

        return write_report(
            output,
            self.data,
            self.em,
            posterior=self.posterior,
            comparison=self.comparison,
            settings=self.settings,
            title=title,
            save=save,
            standard_error=self.standard_error,
        )


def analyse(
    data: Any,
    n_components: int,
    *,
    method: str = "both",
    covariance_type: str = "full",
    n_init: int = 5,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    backend: str = "jax",
    priors: Any = None,
    relabel: str = "em",
    random_state: int | None = None,
    progressbar: bool = False,
    restart_callback: Callable | None = None,
    iteration_progress: Callable | None = None,
    on_stage: Callable[[str, Any], None] | None = None,
    settings: dict | None = None,
) -> Analysis:
    """Fit EM, its standard errors, and (unless ``method="em"``) the posterior and the comparison.

    Parameters
    ----------
    data : GMMData or anything :func:`bgmm.as_data` reads
        The observations; lazy data (Dask, zarr) take ``method="em"`` only.
    n_components : int
        K.
    method : {"both", "mcmc", "em"}, default "both"
        ``"em"``: EM and its standard errors only. ``"mcmc"`` and ``"both"`` (the same
        computation; the names follow the command line): also the posterior, started at and
        labelled by the EM fit, and its comparison with EM.
    covariance_type : str, default "full"
        The covariance family of both solvers.
    n_init : int, default 5
        EM restarts; the best is kept and starts the chains.
    draws, tune, chains : int
        The sampler's settings (:func:`bgmm.bayes.sample_posterior`); 1000, 1000, 2.
    backend : {"jax", "numba"}, default "jax"
        Compiler of the sampler's log density.
    priors : bgmm.bayes.Priors, optional
        The Bayesian model's priors (data-scaled defaults when omitted; see
        :meth:`bgmm.bayes.Priors.sparse` for an over-fitted K).
    relabel : {"em", "stephens", "ecr"}, default "em"
        The relabelling of the draws (:func:`bgmm.bayes.sample_posterior`).
    random_state : int, optional
        Seeds EM's restarts and the sampler: same seed, same result.
    progressbar : bool, default False
        The sampler's progress bar.
    restart_callback : callable, optional
        ``fit_em``'s ``callback(done, n_init, log_likelihood)`` after each restart.
    iteration_progress : callable, optional
        ``fit_em``'s ``progress`` (one :class:`bgmm.em.IterationProgress` per iteration).
    on_stage : callable, optional
        Called as ``on_stage(name, result)`` when a stage ends: ``"em"`` (the EMResult),
        ``"standard_errors"``, ``"posterior"`` (the DataTree) and ``"comparison"``; the
        command line prints the EM fit from it before the sampler starts.
    settings : dict, optional
        Extra settings to keep with the result (e.g. the command line that ran it).

    Returns
    -------
    Analysis
        Every stage's result; :meth:`Analysis.write_report` writes the report and fit.nc.

    Raises
    ------
    InputValueError
        An unknown ``method``, MCMC on lazy data, or a family the Bayesian model lacks
        (before EM runs).
    """
    if method not in METHODS:
        raise InputValueError(f"method must be one of {METHODS}, got {method!r}.")
    data = data if isinstance(data, GMMData) else as_data(data)
    sample = method != "em"
    if sample:
        from bgmm.bayes import bayes_family

        bayes_family(covariance_type, data.n_features)  # refused before EM runs
        if data.lazy:
            raise InputValueError(
                f"method={method!r} samples the posterior, which needs the rows in memory, "
                f"but the data from {data.source} are lazy ({data.n_samples} rows); use "
                f"method='em', or sample a subsample (data.sample_rows(n))."
            )
    stage = on_stage or (lambda name, result: None)
    em = fit_em(
        data,
        n_components,
        n_init=n_init,
        covariance_type=covariance_type,
        random_state=random_state,
        callback=restart_callback,
        progress=iteration_progress,
    )
    stage("em", em)
    se = standard_errors(em.params, data, em.covariance_type)  # once, for compare and report
    stage("standard_errors", se)
    posterior = comparison = None
    if sample:
        from bgmm.bayes import sample_posterior

        posterior = sample_posterior(
            data,
            n_components,
            em=em,
            priors=priors,
            relabel=relabel,
            draws=draws,
            tune=tune,
            chains=chains,
            backend=backend,
            random_seed=random_state,
            progressbar=progressbar,
        )
        stage("posterior", posterior)
        comparison = compare(em, posterior, standard_error=se)
        stage("comparison", comparison)
    run = {
        "n_components": n_components,
        "method": method,
        "covariance_type": covariance_type,
        "n_init": n_init,
        "random_state": random_state,
    }
    if sample:
        run.update({"draws": draws, "tune": tune, "chains": chains, "backend": backend})
    return Analysis(data, em, se, posterior, comparison, {**run, **(settings or {})})
