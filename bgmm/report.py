"""Reports: the comparison's tables and plots in one Markdown file, with the saved fit."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from bgmm import plots
from bgmm._files import atomic_write
from bgmm.compare import Comparison
from bgmm.data import GMMData
from bgmm.em import EMResult, evaluate, standard_errors
from bgmm.io import save_fit

__all__ = ["write_report"]

#: Rows drawn for the scatter plot of a fit on lazy data (the rows stay where they are).
PLOT_ROWS = 5000


def _markdown_table(frame: pd.DataFrame, floatfmt: str = ".4g") -> str:
    cols = [frame.index.name or ""] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in frame.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, float) else str(v) for v in row.tolist()]
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


def write_report(
    output: str | os.PathLike,
    data: GMMData,
    em: EMResult,
    *,
    posterior=None,
    comparison: Comparison | None = None,
    settings: dict | None = None,
    title: str = "bgmm fit",
    save: bool = True,
    standard_error=None,
) -> Path:
    """Write ``report.md``, the plots (PNG) and, with ``save``, ``fit.nc`` to ``output``.

    Parameters
    ----------
    output : str or PathLike
        Output directory, created if missing.
    data : GMMData
        The data; for lazy data the scatter plot shows ``PLOT_ROWS`` rows drawn at random
        and the saved fit holds no rows.
    em : EMResult
        The EM fit.
    posterior : xarray.DataTree, optional
        From :func:`bgmm.bayes.sample_posterior`; without it the report covers EM only.
    comparison : Comparison, optional
        From :func:`bgmm.compare.compare`.
    settings : dict, optional
        Settings to record in the report and the saved fit.
    title : str, default "bgmm fit"
        The report's title.
    save : bool, default True
        Also write the whole fit to ``fit.nc`` (:func:`bgmm.io.save_fit`).
    standard_error : StandardErrors, optional
        EM standard errors already computed (:func:`bgmm.em.standard_errors`); computed
        here otherwise.

    Returns
    -------
    pathlib.Path
        The report's path.
    """
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, str]] = []
    if data.n_features >= 2:
        shown, caption = data, "EM fit (1 and 2 sd ellipses)"
        if data.lazy:  # a seeded subset of the rows, labelled by the fit
            shown = data.sample_rows(PLOT_ROWS, random_state=0)
            labels = np.asarray(evaluate(em.params, shown)[0]).argmax(axis=1)
            if shown.n_samples < data.n_samples:
                caption += f", {shown.n_samples} of the {data.n_samples} rows drawn at random"
        else:
            labels = em.resp.argmax(axis=1)
        plots.save_figure(
            plots.plot_fit(shown, em.params, labels, title=title), out / "em_fit.png"
        )
        figures.append((caption, "em_fit.png"))
    plots.save_figure(plots.plot_em_trace(em), out / "em_trace.png")
    figures.append(("EM log-likelihood and bound per iteration", "em_trace.png"))
    lines = [f"# {title}", "", f"Data: {data.source} ({data.n_samples} x {data.n_features}).", ""]
    lines += [
        "## EM",
        "",
        f"Converged: {em.converged} after {em.n_iter} iterations; "
        f"ln p(X | θ) = {em.log_likelihood:.6f}.",
        "",
    ]
    se = (
        standard_errors(em.params, data, em.covariance_type)
        if standard_error is None
        else standard_error
    )
    em_table = pd.DataFrame(
        {
            "weight": em.weights,
            "weight_se": se.weights,
            **{f"mean[{f}]": em.means[:, j] for j, f in enumerate(data.feature_names)},
            **{f"mean_se[{f}]": se.means[:, j] for j, f in enumerate(data.feature_names)},
        }
    )
    em_table.index.name = "component"
    lines += [_markdown_table(em_table), ""]
    if posterior is not None:
        fig_specs = [
            (
                "Posterior densities with EM estimates",
                "posterior_vs_em.png",
                plots.plot_posterior_with_em(posterior, em),
            ),
            (
                "Posterior HDIs (68%, 95%) against EM ± 1 and 2 SE, in units of EM's SE",
                "forest.png",
                plots.plot_forest_em(posterior, em, se),
            ),
            ("Rank plots", "rank.png", plots.plot_rank(posterior)),
        ]
        for caption, name, pc in fig_specs:
            plots.save_plot_collection(pc, out / name)
            figures.append((caption, name))
        if "n_clusters" in posterior.children:
            plots.save_figure(plots.plot_n_clusters(posterior), out / "n_clusters.png")
            figures.append(("Posterior number of non-empty components", "n_clusters.png"))
            k_plus = posterior["n_clusters"].to_dataset()
            table = k_plus["probability"].to_dataframe()
            lines += [
                "## Number of clusters (sparse finite mixture)",
                "",
                f"Most probable number of non-empty components: {k_plus.attrs['mode']}.",
                "",
                _markdown_table(table, ".3f"),
                "",
            ]
        if data.n_features >= 2:
            plots.save_figure(
                plots.plot_ellipses_with_draws(data, em, posterior), out / "ellipses.png"
            )
            plots.save_figure(
                plots.plot_membership_uncertainty(data, posterior), out / "membership.png"
            )
            figures += [
                ("EM ellipses and posterior draws", "ellipses.png"),
                ("Membership uncertainty", "membership.png"),
            ]
    if comparison is not None:
        lines += ["## EM against the posterior", ""]
        if comparison.verdict is not None:
            lines += [f"**{comparison.verdict.headline}**", ""]
            lines += [f"- {reason}" for reason in comparison.verdict.reasons] + [""]
        lines += [_markdown_table(comparison.to_dataframe()), ""]
        if comparison.membership:
            lines += [
                f"Same most probable component for "
                f"{100 * comparison.membership['share_same_component']:.1f}% of the points; "
                f"largest membership difference "
                f"{comparison.membership['max_abs_difference']:.3g}.",
                "",
            ]
    lines += ["## Figures", ""]
    lines += [f"![{caption}]({name})\n" for caption, name in figures]
    if save:
        save_fit(
            out / "fit.nc",
            data=data,
            em=em,
            posterior=posterior,
            comparison=comparison,
            settings=settings,
        )
        if data.lazy:
            lines += [
                "The fit is saved in `fit.nc` (netCDF-4): parameters, history and settings; "
                "the rows stay in their source."
            ]
        else:
            lines += ["The whole fit is saved in `fit.nc` (netCDF-4; `bgmm compare fit.nc`)."]
    path = out / "report.md"
    text = "\n".join(lines) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path
