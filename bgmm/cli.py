"""The ``bgmm`` command line. It holds no logic that the library lacks.

Bad input ends with exit code 2 and one message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numba.core.errors import NumbaPerformanceWarning

from bgmm import __version__, defaults
from bgmm._spelling import command_line_spelling
from bgmm.exceptions import InputError, InputValueError

EXIT_USAGE = 2
#: The shell's status for a command stopped by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


def _fmt_matrix(m: np.ndarray, fmt: str = "{:.4g}") -> str:
    return "[" + ", ".join("[" + ", ".join(fmt.format(v) for v in row) + "]" for row in m) + "]"


def _fmt_vector(v: np.ndarray, fmt: str = "{:.4g}") -> str:
    return "[" + ", ".join(fmt.format(x) for x in v) + "]"


def cmd_explain(args: argparse.Namespace) -> int:
    """Print the worked example's first EM iteration the way the document does."""
    from bgmm.em.explain import first_iteration

    it = first_iteration()
    ex, res = it.example, it.result
    X, names = np.asarray(ex.data.values), ex.data.obs_names
    (f1, f2), comps, init = ex.data.feature_names, ex.component_names, ex.initial
    out = []
    out.append("Worked example: one EM iteration by hand (six people, two clusters)")
    out.append("")
    out.append(f"Data ({f1}, {f2}):")
    out += [f"  {n}  {x[0]:>5g}  {x[1]:>5g}" for n, x in zip(names, X, strict=True)]
    out.append("")
    out.append("Initial parameters:")
    for k, c in enumerate(comps):
        out.append(
            f"  {c:<6} mu = {_fmt_vector(init.means[k])}  "
            f"Sigma = {_fmt_matrix(init.covariances[k])}  pi = {init.weights[k]:g}"
        )
    out.append("")
    out.append("Gaussian densities N(x | mu_k, Sigma_k):")
    norm = it.normaliser
    out.append(
        f"  1 / ((2 pi)^(d/2) |Sigma|^(1/2)) = 1 / {norm[0]:.2f}   (exact 1 / {norm[0]:.6g})"
    )
    for k, c in enumerate(comps):
        m = it.mahalanobis[0, k]
        out.append(
            f"  {names[0]} to {c:<6} Mahalanobis = {m:.6g}   "
            f"N({names[0]}|{c}) = 1/{norm[k]:.2f} exp({-0.5 * m:.6g}) "
            f"= 1/{norm[k]:.2f} x {it.hand_exponentials[k]:.4g} = {it.hand_densities[k]:.3g}   "
            f"(exact {it.densities[0, k]:.6g})"
        )
    out.append("")
    out.append("E step: responsibilities r_ic = pi_c N(x_i|c) / sum_j pi_j N(x_i|j):")
    out.append(f"  Person  {f1:>6}  {f2:>6}  " + "  ".join(f"{c:>12}" for c in comps))
    for n, x, r in zip(names, X, it.resp, strict=True):
        cells = "  ".join(f"{v:>12.10g}" for v in r)
        out.append(f"  {n:<6}  {x[0]:>6g}  {x[1]:>6g}  {cells}")
    out.append("")
    out.append("M step:")
    out.append(
        "  1. m_c = sum_i r_ic:         "
        + ", ".join(f"{c} {m:.4g} ({m:.10g})" for c, m in zip(comps, it.nk, strict=True))
    )
    out.append(
        "  2. pi_c = m_c / m:           "
        + ", ".join(f"{c} {w:.4g} ({w:.10g})" for c, w in zip(comps, res.weights, strict=True))
    )
    out.append(
        "  3. mu_c = sum_i r_ic x_i / m_c: "
        + ", ".join(
            f"{c} {_fmt_vector(m, '{:.6g}')}" for c, m in zip(comps, res.means, strict=True)
        )
    )
    out.append("  4. Sigma_c = sum_i r_ic (x_i - mu_c)(x_i - mu_c)^T / m_c:")
    for c, s in zip(comps, res.covariances, strict=True):
        out.append(f"     {c:<6} {_fmt_matrix(s, '{:.2f}')}   (exact {_fmt_matrix(s, '{:.9g}')})")
    if it.singular:
        out.append("")
        out.append(
            "Note: both new covariances are singular (each cluster lies on a line), so a "
            "second E step is undefined without regularisation; bgmm stops there with an "
            "error unless reg_covar > 0."
        )
    print("\n".join(out))
    return 0


def _print_comparison(comparison) -> None:
    import pandas as pd

    if comparison.verdict is not None:
        print(comparison.verdict)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(comparison.to_dataframe().round(4).to_string())
    if comparison.membership:
        share = 100 * comparison.membership["share_same_component"]
        print(
            f"membership: same most probable component for {share:.1f}% of the points, "
            f"largest difference {comparison.membership['max_abs_difference']:.3g}"
        )


@contextlib.contextmanager
def _restart_progress(show: bool, description: str, total: int):
    """A progress bar on stderr advanced by ``fit_em``'s callback (nothing when hidden)."""
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("best ln p {task.fields[best]}"),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total, best="-")
        best = [-np.inf]

        def callback(done: int, n_init: int, log_likelihood: float) -> None:
            best[0] = max(best[0], log_likelihood)
            bar.update(task, completed=done, best=f"{best[0]:.4f}")

        yield callback


def _print_iteration(step) -> None:
    """One progress line per EM iteration of a fit on lazy data (on stderr)."""
    change = "" if not np.isfinite(step.change) else f"  change {step.change:+.6g}"
    print(
        f"EM iteration {step.iteration:>4}: ln p = {step.log_likelihood:.6f}{change}"
        f"  ({step.n_running} restart(s) running)",
        file=sys.stderr,
        flush=True,
    )


def _print_em(em) -> None:
    k = em.weights.shape[0]
    family = "" if em.covariance_type == "VVV" else f" {em.covariance_type}"
    print(
        f"EM{family}, K={k}: converged {em.converged} after {em.n_iter} iterations, "
        f"log-likelihood {em.log_likelihood:.6f}"
    )
    for j in range(k):
        print(
            f"  component {j}: weight {em.weights[j]:.4f}  "
            f"mean {_fmt_vector(em.means[j], '{:.4f}')}  "
            f"covariance {_fmt_matrix(em.covariances[j], '{:.4f}')}"
        )


class _Stages:
    """Prints each stage's results (stdout) and, unless quiet, a timed line per stage (stderr).

    The timed lines are what a long run shows in a log file or a CI job, where the
    progress bars (drawn only on a terminal) are not.
    """

    def __init__(self, show: bool, sample: bool, chains: int, tune: int, draws: int):
        self.show, self.sample = show, sample
        self.sampler = f"{chains} chains x ({tune} tuning + {draws} draws)"
        self.start = time.perf_counter()

    def line(self, text: str) -> None:
        if self.show:
            elapsed = time.perf_counter() - self.start
            print(f"[{elapsed:8.1f} s] {text}", file=sys.stderr, flush=True)

    def __call__(self, name: str, result) -> None:
        if name == "em":
            _print_em(result)
            self.line(f"EM done: {result.n_iter} iterations, converged {result.converged}")
        elif name == "standard_errors":
            if not result.available:
                print(f"note: {result.reason}")
            self.line("standard errors done" if result.available else "standard errors missing")
            if self.sample:
                self.line(f"sampling the posterior: {self.sampler}")
        elif name == "posterior":
            self.line("posterior sampled")
        elif name == "comparison":
            _print_comparison(result)
            self.line("comparison done")


def _run_fit(args: argparse.Namespace, data, k, method, title, settings, covariance_type="full"):
    from bgmm.workflow import Interrupted, analyse

    progress = not args.quiet
    tty = sys.stderr.isatty()
    n_init = args.n_init
    # On a terminal: a bar for the restarts and the sampler's; in a log: timed lines.
    show_bar = progress and tty and not data.lazy
    stages = _Stages(progress, method != "em", args.chains, args.tune, args.draws)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    stages.line(f"EM: {n_init} restart(s), K={k}")
    status = 0
    with _restart_progress(show_bar, f"EM restarts (K={k})", n_init) as callback:
        try:
            analysis = analyse(
                data,
                k,
                method=method,
                covariance_type=covariance_type,
                n_init=n_init,
                draws=args.draws,
                tune=args.tune,
                chains=args.chains,
                subsample=getattr(args, "subsample", None),
                backend=args.backend,
                random_state=args.seed,
                progressbar=progress and tty,
                restart_callback=callback,
                iteration_progress=_print_iteration if progress and data.lazy else None,
                on_stage=stages,
                checkpoint=output / "fit.nc",
                settings=settings,
                missing=getattr(args, "missing", "raise"),
            )
        except Interrupted as stop:
            analysis, status = stop.analysis, EXIT_INTERRUPTED
            print(f"bgmm: {analysis.notes[-1]} Saving what was finished.", file=sys.stderr)
    for note in analysis.notes:
        if note.startswith("EM was fitted to all"):
            print(f"note: {note}")
    stages.line("writing the report")
    report = analysis.write_report(output, title=title)
    stages.line("report written")
    print(
        f"report written to {report} and {report.with_suffix('.html')}; "
        f"fit saved to {report.parent / 'fit.nc'}"
    )
    return status


def cmd_demo(args: argparse.Namespace) -> int:
    """EM, MCMC and their comparison on the embedded Old Faithful data."""
    from bgmm.datasets import load_old_faithful

    data = load_old_faithful()
    settings = {"command": "demo", "k": 2, "seed": args.seed, "backend": args.backend}
    return _run_fit(args, data, 2, "both", "Old Faithful: EM against MCMC, K=2", settings)


@contextlib.contextmanager
def _scheduler(spec: str | None):
    """The Dask scheduler of ``--scheduler`` (nothing without it), its dashboard on stderr."""
    if spec is None:
        yield None
        return
    from bgmm.em.dask_engine import dask_scheduler

    with dask_scheduler(spec) as client:
        print(
            f"Dask scheduler {client.scheduler.address}; dashboard: {client.dashboard_link}",
            file=sys.stderr,
        )
        yield client


class _Read(NamedTuple):
    """DATA as read: the container, the columns used, and what the CSV reader said."""

    data: Any
    columns: list | None
    described: list[str]


def _read_data(args: argparse.Namespace) -> _Read:
    """DATA and its options; lazily (a Dask array) with --scheduler or a lazy source.

    A single CSV file is read by :func:`bgmm.data.read_csv`, whose summary (separator,
    decimal mark, header, rows, the columns used and those left out) is printed first and
    kept in the report's settings.
    """
    from bgmm._dask import is_lazy_source
    from bgmm.data import as_data, read_csv

    columns = args.columns.split(",") if args.columns else None
    exclude = args.exclude.split(",") if args.exclude else None
    if args.scheduler or is_lazy_source(args.data):
        given = [
            flag
            for flag, value in (
                ("--sep", args.sep),
                ("--decimal", args.decimal),
                ("--header/--no-header", args.header),
                ("--exclude", args.exclude),
                ("--dropna", args.dropna or None),
            )
            if value is not None
        ]
        if given:
            raise InputValueError(
                f"{', '.join(given)} apply to a single CSV file read into memory, but "
                f"{args.data} is read lazily (block by block); choose its columns with "
                f"--columns."
            )
        data = as_data(
            args.data,
            columns=columns,
            lazy=True if args.scheduler else None,
            standardize=args.standardize,
            missing="allow" if args.missing == "em" else "raise",
        )
        return _Read(data, columns, [])
    table = read_csv(
        args.data,
        sep=args.sep,
        decimal=args.decimal,
        header=args.header,
        columns=columns,
        exclude=exclude,
        dropna=args.dropna,
        keep_missing=args.missing == "em",
    )
    described = table.describe()
    if args.standardize:
        described.append("standardized: each column centred at its mean and divided by its sd")
    for line in described:
        print(line)
    missing = "allow" if args.missing == "em" else "raise"
    data = as_data(table, standardize=args.standardize, missing=missing)
    return _Read(data, list(data.feature_names), described)


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit a data set by EM, MCMC or both."""
    with _scheduler(args.scheduler):
        data, columns, described = _read_data(args)
        method = args.method or ("em" if data.lazy else "both")
        if data.lazy and method != "em" and args.subsample is None:
            raise InputValueError(
                f"--method {method} needs the rows in memory for MCMC, but {args.data} is "
                f"read lazily ({data.n_samples} rows, block by block); add --subsample N to "
                f"sample the posterior on N rows drawn at random (EM on all of them), or use "
                f"--method em."
            )
        settings = {
            "command": "fit",
            "data": str(args.data),
            "k": args.k,
            "columns": columns,
            "method": method,
            "covariance_type": args.covariance_type,
            "seed": args.seed,
            "backend": args.backend,
            "scheduler": args.scheduler,
            "standardize": args.standardize,
            "missing": args.missing,
        }
        if described:
            settings["read"] = described
        return _run_fit(
            args,
            data,
            args.k,
            method,
            f"{Path(args.data).name}: K={args.k}",
            settings,
            covariance_type=args.covariance_type,
        )


def cmd_compare(args: argparse.Namespace) -> int:
    """Report from a saved fit."""
    from bgmm.io import load_fit
    from bgmm.report import write_report

    fit = load_fit(args.saved_fit)
    if fit.data is None:
        raise InputValueError(
            f"{args.saved_fit} holds a fit of lazy data ({fit.data_source}) without its "
            f"rows; its report was written by 'bgmm fit' beside it."
        )
    if fit.comparison is not None:
        _print_comparison(fit.comparison)
    else:
        print("the saved fit has no posterior (EM only)")
    output = args.output or Path(args.saved_fit).parent
    report = write_report(
        output,
        fit.data,
        fit.em,
        posterior=fit.posterior,
        comparison=fit.comparison,
        settings=fit.settings,
        title=f"Report from {Path(args.saved_fit).name}",
        save=False,
    )
    print(f"report written to {report}")
    return 0


def _k_range(text: str) -> list[int]:
    form = "write it as LOW-HIGH (1-6) or a list (1,2,4) of numbers of components >= 1"
    try:
        if "-" in text:
            low, high = (int(v) for v in text.split("-", 1))
            ks = list(range(low, high + 1))
            if low > high:
                raise argparse.ArgumentTypeError(
                    f"invalid K range {text!r}: it runs from {low} down to {high}; {form}, "
                    f"e.g. {high}-{low}"
                )
        else:
            ks = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid K range {text!r}; {form}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"invalid K range {text!r}; {form}")
    return ks


def cmd_select_k(args: argparse.Namespace) -> int:
    """BIC, AIC, ICL and LOO for a range of K (and covariance families)."""
    with _scheduler(args.scheduler):
        data = _read_data(args).data
        if data.lazy and not args.no_loo:
            raise InputValueError(
                f"LOO samples the posterior, which needs the rows in memory, but {args.data} "
                f"is read lazily ({data.n_samples} rows); add --no-loo for the EM criteria "
                f"(BIC, AIC, ICL) of lazy data."
            )
        return _select_k(args, data)


def _select_k(args: argparse.Namespace, data) -> int:
    from bgmm.plots import plot_bic, plot_select_k, save_figure
    from bgmm.selection import bic_table, select_k, select_model

    if args.families is not None:
        table = select_model(
            data,
            args.k_range,
            args.families,
            random_state=args.seed,
            loo=not args.no_loo,
            backend=args.backend,
            progressbar=not args.quiet,
            missing=args.missing,
        )
        print("BIC (lower is better) by K and covariance family:")
        print(bic_table(table).round(3).to_string())
        if "elpd_loo" in table:
            print("PSIS-LOO elpd (higher is better; families with a Bayesian model):")
            print(bic_table(table, "elpd_loo").dropna(axis=1, how="all").round(3).to_string())
        print(f"recommended: {table.attrs['recommendation']}")
        k, family = table["bic"].idxmin()
        row = table.loc[(k, family)]
        print(
            f"best by BIC: K = {k}, {family} (log-likelihood {row['log_likelihood']:.3f}, "
            f"df {row['n_parameters']}); best by ICL: "
            f"K = {table['icl'].idxmin()[0]}, {table['icl'].idxmin()[1]}"
        )
        path = save_figure(plot_bic(table), Path(args.output) / "bic.png")
        table.to_csv(Path(args.output) / "select_model.csv")
        print(f"table and plot written to {path.parent}")
        return 0
    table = select_k(
        data,
        args.k_range,
        random_state=args.seed,
        loo=not args.no_loo,
        backend=args.backend,
        progressbar=not args.quiet,
        missing=args.missing,
    )
    print(table.round(3).to_string())
    print(f"recommended: {table.attrs['recommendation']}")
    path = save_figure(plot_select_k(table), Path(args.output) / "select_k.png")
    table.to_csv(Path(args.output) / "select_k.csv")
    print(f"table and plot written to {path.parent}")
    return 0


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "data",
        help="CSV file (separator, decimal mark and header detected); or, read lazily "
        "(block by block, on Dask), a zarr store (*.zarr), Parquet file or folder, or a "
        "quoted glob such as 'parts/*.csv'",
    )
    p.add_argument(
        "--columns",
        help="comma-separated columns to use, in that order (default: every numeric column "
        "that is not an identifier or constant)",
    )
    p.add_argument("--exclude", metavar="A,B", help="comma-separated columns to leave out")
    p.add_argument("--sep", help="the CSV file's separator (default: detected), e.g. ';'")
    p.add_argument(
        "--decimal", choices=(".", ","), help="the CSV file's decimal mark (default: detected)"
    )
    p.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        help="whether line 1 holds the column names (default: detected)",
    )
    p.add_argument(
        "--dropna", action="store_true", help="leave out rows with missing values (and say so)"
    )
    p.add_argument(
        "--missing",
        choices=("raise", "em"),
        default="raise",
        help="missing values (empty cells): refuse them (raise, the default), or fit them "
        "as missing at random (em: EM integrates them out, and so does the Bayesian model)",
    )
    p.add_argument(
        "--standardize",
        action="store_true",
        help="centre each column at its mean and divide by its sd before fitting",
    )
    p.add_argument(
        "--scheduler",
        metavar="local[:N]|ADDRESS",
        help="fit on Dask: 'local' (a cluster on this machine), 'local:N' (N single-threaded "
        "worker processes) or a scheduler's address (tcp://host:8786); the data are read "
        "lazily and EM prints a line per iteration",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}; give an integer >= 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}; give an integer >= 1")
    return value


def _add_run_options(p: argparse.ArgumentParser, output: str, sample: bool = True) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--output", default=output, help=f"output directory ({output})")
    p.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")
    p.add_argument(
        "--backend",
        choices=("jax", "numba"),
        default="jax",
        help="compiler of the sampler's log density: jax compiles in seconds, numba runs "
        "faster once compiled (default jax)",
    )
    if not sample:
        return
    p.add_argument(
        "--n-init",
        type=_positive,
        default=defaults.N_INIT,
        help=f"EM restarts; the best starts the chains (default {defaults.N_INIT})",
    )
    p.add_argument(
        "--chains",
        type=_positive,
        default=defaults.CHAINS,
        help=f"MCMC chains (default {defaults.CHAINS})",
    )
    p.add_argument(
        "--draws",
        type=_positive,
        default=defaults.DRAWS,
        help=f"MCMC draws kept per chain (default {defaults.DRAWS})",
    )
    p.add_argument(
        "--tune",
        type=_positive,
        default=defaults.TUNE,
        help=f"MCMC tuning steps per chain, discarded (default {defaults.TUNE})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``bgmm`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="bgmm",
        description="Gaussian mixture models: EM as PyTensor graphs, checked against MCMC.",
    )
    parser.add_argument("--version", action="version", version=f"bgmm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "explain",
        help="print the worked example's first EM iteration",
        description="Reproduce the worked example (six people) one step at a time.",
    )
    p.set_defaults(func=cmd_explain)
    p = sub.add_parser(
        "demo",
        help="EM, MCMC and their comparison on the embedded Old Faithful data",
        description="The main job on Old Faithful (272 x 2, K=2): EM, NUTS, comparison; "
        "writes a Markdown report, PNG plots and the saved fit.",
    )
    _add_run_options(p, output="demo-output")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "fit",
        help="fit a data set",
        description="Fit DATA (a CSV file, or a lazy source: zarr, Parquet, a CSV glob) "
        "with K components: EM, then (--method both or mcmc) the posterior by NUTS and their "
        "comparison. Writes report.md, report.html, the figures and fit.nc to --output.",
    )
    _add_data_options(p)
    p.add_argument("-k", type=int, required=True, help="number of components")
    p.add_argument(
        "--method",
        choices=("em", "mcmc", "both"),
        help="default: both in memory, em for lazy data",
    )
    p.add_argument(
        "--covariance-type",
        default="full",
        help="covariance family: full, tied, diag, spherical or mclust's EII ... VVV "
        "(MCMC: full, tied, diag, spherical, EII, EEI; default full)",
    )
    p.add_argument(
        "--subsample",
        type=_positive,
        metavar="N",
        help="sample the posterior on N rows drawn at random (seeded by --seed), EM on all "
        "rows: for data too large for MCMC (the report states it)",
    )
    _add_run_options(p, output="bgmm-output")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "compare",
        help="report from a saved fit",
        description="Print the comparison table of a saved fit and write its report.",
    )
    p.add_argument("saved_fit", metavar="SAVED_FIT", help="fit.nc written by demo or fit")
    p.add_argument("--output", help="output directory (default: beside the saved fit)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "select-k",
        help="compare numbers of components",
        description="EM BIC, AIC and ICL beside Bayesian LOO for a range of K.",
    )
    _add_data_options(p)
    p.add_argument(
        "--k-range", type=_k_range, default=_k_range("1-4"), help="e.g. 1-6 or 1,2,4 (1-4)"
    )
    p.add_argument("--no-loo", action="store_true", help="EM criteria only (fast)")
    p.add_argument(
        "--families",
        help="covariance families, 'all' or e.g. EII,VVV: mclust's BIC table over K and "
        "family, with PSIS-LOO for full, tied, diag, spherical, EII and EEI (--no-loo: "
        "EM criteria only)",
    )
    _add_run_options(p, output="bgmm-output", sample=False)
    p.set_defaults(func=cmd_select_k)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bgmm``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings(), command_line_spelling():
        # numba's hints about PyTensor-generated kernels, printed while they first compile.
        warnings.filterwarnings("ignore", category=NumbaPerformanceWarning)
        try:
            return args.func(args)
        except InputError as exc:  # bgmm's own input errors; anything else is a bug
            print(f"bgmm {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except OSError as exc:
            print(f"bgmm {args.command}: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:  # before anything was finished (Interrupted is handled)
            print(f"bgmm {args.command}: interrupted; nothing was finished", file=sys.stderr)
            return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
