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

from bgmm._spelling import option
from bgmm._validation import check_number
from bgmm.compare import Comparison, compare
from bgmm.data import GMMData, as_data
from bgmm.defaults import CHAINS, DRAWS, N_INIT, TUNE
from bgmm.em import EMResult, StandardErrors, fit_em, standard_errors
from bgmm.exceptions import InputValueError

__all__ = ["METHODS", "Analysis", "Interrupted", "analyse"]

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
        EM's standard errors from the observed information; where they do not exist,
        :meth:`~bgmm.em.StandardErrors.missing` (NaN) with the reason.
    posterior : xarray.DataTree or None
        From :func:`bgmm.bayes.sample_posterior` (None with ``method="em"``, or when the
        run was interrupted before it finished).
    comparison : Comparison or None
        From :func:`bgmm.compare.compare` (None when there is no posterior).
    settings : dict
        The settings of the run (kept in the report and the saved fit).
    notes : tuple of str
        What the reader of the results must know: the posterior's subsample, missing
        standard errors, an interrupted run. The report lists them at its top.
    """

    data: GMMData
    em: EMResult
    standard_error: StandardErrors
    posterior: Any
    comparison: Comparison | None
    settings: dict
    notes: tuple[str, ...] = ()

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
            notes=self.notes,
        )


class Interrupted(KeyboardInterrupt):  # numpydoc ignore=PR01
    """Ctrl-C during :func:`analyse`, after EM finished: what was done is in ``analysis``.

    A subclass of ``KeyboardInterrupt``, so code that does not look for it stops as
    before; the command line catches it, writes the report and ``fit.nc`` of the finished
    stages and exits with status 130.

    Attributes
    ----------
    analysis : Analysis
        The finished stages (the EM fit at least), with a note naming the stage that was
        interrupted.
    """

    def __init__(self, analysis: Analysis):
        super().__init__(analysis.notes[-1])
        self.analysis = analysis


def analyse(
    data: Any,
    n_components: int,
    *,
    method: str = "both",
    covariance_type: str = "full",
    n_init: int = N_INIT,
    draws: int = DRAWS,
    tune: int = TUNE,
    chains: int = CHAINS,
    subsample: int | None = None,
    backend: str = "jax",
    priors: Any = None,
    relabel: str = "em",
    random_state: int | None = None,
    progressbar: bool = False,
    restart_callback: Callable | None = None,
    iteration_progress: Callable | None = None,
    on_stage: Callable[[str, Any], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    settings: dict | None = None,
    missing: str = "raise",
) -> Analysis:
    r"""Fit EM, its standard errors, and (unless ``method="em"``) the posterior and the comparison.

    The defaults are those of :mod:`bgmm.defaults`, which ``bgmm fit`` uses too.

    Parameters
    ----------
    data : GMMData or anything :func:`bgmm.as_data` reads
        The observations; lazy data (Dask, zarr) are sampled only on a ``subsample``.
    n_components : int
        K.
    method : {"both", "mcmc", "em"}, default "both"
        ``"em"``: EM and its standard errors only. ``"mcmc"`` and ``"both"`` (the same
        computation; the names follow the command line): also the posterior, started at and
        labelled by the EM fit, and its comparison with EM.
    covariance_type : str, default "full"
        The covariance family of both solvers.
    n_init : int, default :data:`bgmm.defaults.N_INIT` (5)
        EM restarts; the best is kept and starts the chains.
    draws, tune, chains : int, default :mod:`bgmm.defaults` (1000, 1000, 4)
        The sampler's settings (:func:`bgmm.bayes.sample_posterior`).
    subsample : int, optional
        Sample the posterior on this many rows drawn at random (seeded by
        ``random_state``), EM on all of them: for data too large for MCMC. The comparison
        then expects EM's standard errors to be :math:`\sqrt{n / N}` of the posterior's
        sd (:func:`bgmm.compare.compare`), and ``notes`` says so.
    backend : {"jax", "numba"}, default "jax"
        Compiler of the sampler's log density.
    priors : bgmm.bayes.Priors, optional
        The Bayesian model's priors (data-scaled defaults when omitted; see
        :meth:`bgmm.bayes.Priors.sparse` for an over-fitted K).
    relabel : {"em", "stephens", "ecr"}, default "em"
        The relabelling of the draws (:func:`bgmm.bayes.sample_posterior`).
    random_state : int, optional
        Seeds EM's restarts, the subsample and the sampler: same seed, same result.
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
    checkpoint : str or PathLike, optional
        A ``fit.nc`` path (:func:`bgmm.io.save_fit`) written as soon as EM and its standard
        errors are done, so that a failure while sampling loses nothing;
        :meth:`Analysis.write_report` overwrites it with the whole fit.
    settings : dict, optional
        Extra settings to keep with the result (e.g. the command line that ran it).
    missing : {"raise", "em"}, default "raise"
        Missing values (NaN): refused, or fitted under missing at random by both solvers
        (:func:`bgmm.fit_em`'s ``missing="em"``; the Bayesian model integrates them out
        and its ``imputation`` group holds their posterior).

    Returns
    -------
    Analysis
        Every stage's result; :meth:`Analysis.write_report` writes the report and fit.nc.

    Raises
    ------
    InputValueError
        An unknown ``method``, MCMC on lazy data without ``subsample``, or a family the
        Bayesian model lacks (before EM runs).
    Interrupted
        Ctrl-C after EM finished; its ``analysis`` holds the finished stages.
    """
    if method not in METHODS:
        raise InputValueError(f"method must be one of {METHODS}, got {method!r}.")
    if not isinstance(data, GMMData):
        data = as_data(data, missing="allow" if missing == "em" else "raise")
    sample = method != "em"
    if subsample is not None:
        subsample = check_number("subsample", subsample, low=1, integer=True)
    if sample:
        from bgmm.bayes import bayes_family

        bayes_family(covariance_type, data.n_features)  # refused before EM runs
        if data.lazy and subsample is None:
            raise InputValueError(
                f"method={method!r} samples the posterior, which needs the rows in memory, "
                f"but the data from {data.source} are lazy ({data.n_samples} rows); sample "
                f"it on a random subset ({option('subsample', '5000', '5000')}), or use "
                f"{option('method', repr('em'), 'em')}."
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
        missing=missing,
    )
    stage("em", em)
    run = {
        "n_components": n_components,
        "method": method,
        "covariance_type": covariance_type,
        "n_init": n_init,
        "random_state": random_state,
        "missing": missing,
    }
    if sample:
        run.update({"draws": draws, "tune": tune, "chains": chains, "backend": backend})
        run["subsample"] = subsample
    settings = {**run, **(settings or {})}
    notes: list[str] = []
    if data.has_missing:
        lost = ~data.observed  # a Dask array for lazy data: both counts in one pass
        n_missing, n_rows = (lost.sum(), lost.any(axis=1).sum())
        if data.lazy:
            import dask

            n_missing, n_rows = dask.compute(n_missing, n_rows)
        notes.append(
            f"{int(n_missing)} of {lost.size} values are missing (in "
            f"{int(n_rows)} of {data.n_samples} rows): "
            f"{'EM and the Bayesian model integrate' if sample else 'EM integrates'} them "
            f"out, assuming they are missing at random."
        )
    se = StandardErrors.missing(n_components, data.n_features, "interrupted before computed")
    posterior = comparison = None

    def finished() -> Analysis:
        return Analysis(data, em, se, posterior, comparison, settings, tuple(notes))

    running = "EM's standard errors"
    try:
        # once, for the comparison and the report; the fit is kept where they do not exist
        se = standard_errors(em.params, data, em.covariance_type, errors="missing")
        if not se.available:
            notes.append(f"EM's standard errors are missing: {se.reason}")
        stage("standard_errors", se)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, finished())
        if sample:
            from bgmm.bayes import sample_posterior

            rows = data
            if subsample is not None and subsample < data.n_samples:
                rows = data.sample_rows(subsample, random_state=random_state)
                notes.append(
                    f"EM was fitted to all {data.n_samples} rows; the posterior to "
                    f"{rows.n_samples} of them drawn at random (seed {random_state}), so "
                    f"its sd is about sqrt({data.n_samples} / {rows.n_samples}) = "
                    f"{(data.n_samples / rows.n_samples) ** 0.5:.3g} times EM's standard "
                    f"errors, and the comparison expects that."
                )
            running = "the sampler"
            posterior = sample_posterior(
                rows,
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
            running = "the comparison"
            comparison = compare(em, posterior, standard_error=se)
            stage("comparison", comparison)
    except KeyboardInterrupt:
        notes.append(f"interrupted (Ctrl-C) while running {running}: the results are partial.")
        raise Interrupted(finished()) from None
    return finished()


def _save_checkpoint(path: str | os.PathLike, analysis: Analysis) -> None:
    from bgmm.io import save_fit

    save_fit(path, data=analysis.data, em=analysis.em, settings=analysis.settings)
