"""Reports: the verdict, EM, the comparison and the figures, as Markdown and as one HTML file.

The report is built once as a list of blocks (headings, paragraphs, lists, tables,
figures) and written twice: ``report.md`` beside its PNG figures, and ``report.html``
with the same figures embedded, readable from a mail attachment or a laptop without a
server. The fit is saved (``fit.nc``) before any figure is drawn, and a figure that cannot
be drawn is replaced by a note saying why: nothing computed is lost to a plot.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from bgmm import plots
from bgmm._files import atomic_write
from bgmm.compare import Comparison
from bgmm.data import GMMData, RowLabels
from bgmm.em import EMResult, evaluate, impute, standard_errors
from bgmm.io import save_fit

__all__ = [
    "CORRELATIONS_DRAWN",
    "HISTORY_ROWS",
    "IMPUTED_HEAD",
    "IMPUTED_ROWS",
    "PLOT_ROWS",
    "write_report",
]

#: Rows drawn for the scatter plot of a fit on lazy data (the rows stay where they are).
PLOT_ROWS = 5000

#: Iterations of EM's history shown in full; a longer history shows its first and last.
HISTORY_ROWS = 20

#: The most correlations drawn against EM (one page of panels).
#:
#: Beyond it, K d (d - 1) / 2 panels (234 for 13 features and K = 3) would bury the
#: report, and the table has them.
CORRELATIONS_DRAWN = 24


# --------------------------------------------------------------------------------------
# The blocks of a report, and their two renderings
# --------------------------------------------------------------------------------------


class Heading(NamedTuple):
    """A section title (level 1 is the report's title)."""

    level: int
    text: str


class Paragraph(NamedTuple):
    """A paragraph of plain text (``strong``: in bold, as the verdict's headline)."""

    text: str
    strong: bool = False


class Bullets(NamedTuple):
    """A list of sentences."""

    items: tuple[str, ...]


class Table(NamedTuple):
    """A DataFrame shown as a table; floats formatted with ``floatfmt``."""

    frame: pd.DataFrame
    floatfmt: str = ".4g"


class Image(NamedTuple):
    """A figure: the PNG file ``name`` beside the report, with its caption."""

    name: str
    caption: str
    png: bytes


Block = Heading | Paragraph | Bullets | Table | Image


def _cell(value, floatfmt: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "—"
    if isinstance(value, float | np.floating):
        return format(float(value), floatfmt)
    return str(value)


def _rows(frame: pd.DataFrame, floatfmt: str) -> tuple[list[str], list[list[str]]]:
    header = [str(frame.index.name or "")] + [str(c) for c in frame.columns]
    rows = [
        [str(idx), *(_cell(v, floatfmt) for v in row)]
        for idx, row in zip(frame.index, frame.itertuples(index=False), strict=True)
    ]
    return header, rows


def _markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        match block:
            case Heading(level, text):
                out += ["#" * level + " " + text, ""]
            case Paragraph(text, strong):
                out += [f"**{text}**" if strong else text, ""]
            case Bullets(items):
                out += [f"- {item}" for item in items] + [""]
            case Table(frame, floatfmt):
                header, rows = _rows(frame, floatfmt)
                out.append("| " + " | ".join(header) + " |")
                out.append("|" + "---|" * len(header))
                out += ["| " + " | ".join(cells) + " |" for cells in rows]
                out.append("")
            case Image(name, caption, _):
                out += [f"![{caption}]({name})", ""]
    return "\n".join(out)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; line-height: 1.45; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em;
        display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th:first-child, td:first-child { text-align: left; white-space: nowrap; }
thead th { background: #f0f0f0; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.9em; color: #555; }
.verdict { font-size: 1.15em; }
"""


def _html(blocks: Sequence[Block], title: str) -> str:
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
    ]
    for block in blocks:
        match block:
            case Heading(level, text):
                out.append(f"<h{level}>{esc(text)}</h{level}>")
            case Paragraph(text, strong):
                body = f'<strong class="verdict">{esc(text)}</strong>' if strong else esc(text)
                out.append(f"<p>{body}</p>")
            case Bullets(items):
                out.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>")
            case Table(frame, floatfmt):
                header, rows = _rows(frame, floatfmt)
                head = "".join(f"<th>{esc(h)}</th>" for h in header)
                body = "".join(
                    "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>"
                    for cells in rows
                )
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            case Image(name, caption, png):
                data = base64.b64encode(png).decode("ascii")
                out.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
                    f"<figcaption>{esc(caption)} ({esc(name)})</figcaption></figure>"
                )
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# The sections
# --------------------------------------------------------------------------------------


def _verdict_section(comparison: Comparison | None, posterior) -> list[Block]:
    blocks: list[Block] = []
    if comparison is not None and comparison.verdict is not None:
        blocks += [Heading(2, "Verdict"), Paragraph(comparison.verdict.headline, strong=True)]
        blocks.append(Bullets(tuple(comparison.verdict.reasons)))
    if posterior is not None and "diagnostics" in posterior.children:
        from bgmm.diagnostics import Diagnostics

        findings = Diagnostics.from_dataset(posterior["diagnostics"].to_dataset()).findings
        if findings:
            blocks.append(Heading(3, "The sampler's warnings"))
            blocks.append(
                Bullets(tuple(f"{f.seen}: {f.why} What to try: {f.advice}" for f in findings))
            )
    return blocks


def _history_table(em: EMResult) -> tuple[pd.DataFrame, str]:
    frame = em.history_frame()[["log_likelihood", "lower_bound", "kl"]]
    if len(frame) <= HISTORY_ROWS:
        return frame, f"All {len(frame)} iterations."
    head, tail = HISTORY_ROWS // 4, HISTORY_ROWS - HISTORY_ROWS // 4
    return (
        pd.concat([frame.iloc[:head], frame.iloc[-tail:]]),
        f"The first {head} and last {tail} of {len(frame)} iterations.",
    )


def _em_section(data: GMMData, em: EMResult, se) -> list[Block]:
    from bgmm.selection import criteria

    names = data.feature_names
    blocks: list[Block] = [
        Heading(2, "EM"),
        Paragraph(
            f"Covariance family {em.covariance_type}; converged: {em.converged} after "
            f"{em.n_iter} iterations; ln p(X | θ) = {em.log_likelihood:.6f}."
        ),
    ]
    crit = criteria(em, em.total_weight)
    blocks.append(Table(pd.DataFrame([crit], index=pd.Index(["EM"], name="fit")), ".6g"))
    if not se.available:
        blocks.append(Paragraph(f"Standard errors are missing: {se.reason}"))
    table = pd.DataFrame(
        {
            "weight": em.weights,
            "weight_se": se.weights,
            **{f"mean[{f}]": em.means[:, j] for j, f in enumerate(names)},
            **{f"mean_se[{f}]": se.means[:, j] for j, f in enumerate(names)},
        }
    )
    table.index.name = "component"
    blocks.append(Table(table))
    blocks.append(Heading(3, "Covariances"))
    for k in range(em.weights.shape[0]):
        cov = pd.DataFrame(em.covariances[k], index=list(names), columns=list(names))
        cov.index.name = f"Σ[{k}]"
        blocks.append(Table(cov))
    history, caption = _history_table(em)
    blocks += [Heading(3, "History"), Paragraph(caption), Table(history, ".10g")]
    return blocks


def _comparison_section(comparison: Comparison) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "EM against the posterior"),
        Table(comparison.to_dataframe()),
    ]
    if comparison.membership:
        blocks.append(
            Paragraph(
                f"Same most probable component for "
                f"{100 * comparison.membership['share_same_component']:.1f}% of the points; "
                f"largest membership difference "
                f"{comparison.membership['max_abs_difference']:.3g}."
            )
        )
    return blocks


#: Missing entries listed in the report's table (all of them are in fit.nc).
IMPUTED_ROWS = 30

#: Rows of lazy data whose missing values the report lists (the rows stay where they are).
IMPUTED_HEAD = 1000


def _missing_section(data: GMMData, em: EMResult, posterior) -> list[Block]:
    """EM's imputation of the missing values, inside their posterior when there is one."""
    if posterior is not None and "imputation" in posterior.children:
        summary = posterior["imputation"].to_dataset()
        summary = summary.drop_vars(["x_missing", "chain", "draw"])[
            ["em", "em_sd", "mean", "sd", "hdi_lower", "hdi_upper", "em_in_hdi"]
        ]
        inside = summary["em_in_hdi"].values
        text = (
            f"{inside.sum()} of {inside.size} EM imputations (conditional means at the EM "
            f"estimate) lie inside the {100 * summary.attrs['ci_prob']:.0f}% HDI of the "
            f"missing value's posterior predictive draws."
        )
    else:
        scope = ""
        if data.lazy:  # the first rows only: all of them would be read into memory
            head = np.asarray(data.values[:IMPUTED_HEAD].compute())
            scope = f" of the first {len(head)} rows (bgmm.em.impute imputes every row)"
            # checked as a whole already: a head may lack any value of a column
            rows = GMMData(head, data.feature_names, RowLabels(len(head)), data.source)
            imputed = impute(em.params, replace(rows, has_missing=True))
        else:
            imputed = impute(em.params, data)
        mask = imputed["missing"].values
        rows, cols = np.nonzero(mask)
        summary = xr.Dataset(
            {
                "em": ("entry", imputed["x"].values[mask]),
                "em_sd": ("entry", np.sqrt(imputed["variance"].values[mask])),
            },
            coords={
                "obs_id": ("entry", imputed["obs_id"].values[rows]),
                "feature": ("entry", imputed["feature"].values[cols]),
            },
        )
        text = (
            f"EM's imputation (conditional mean and sd) of the {mask.sum()} missing values{scope}."
        )
    table = summary.to_dataframe().set_index("obs_id")
    table = table[["feature", *(c for c in table.columns if c != "feature")]]
    shown = table.head(IMPUTED_ROWS)
    if len(table) > IMPUTED_ROWS:
        text += f" The first {IMPUTED_ROWS} are listed."
    return [Heading(2, "Missing values"), Paragraph(text), Table(shown)]


def _n_clusters_section(posterior) -> list[Block]:
    k_plus = posterior["n_clusters"].to_dataset()
    return [
        Heading(2, "Number of clusters (sparse finite mixture)"),
        Paragraph(f"Most probable number of non-empty components: {k_plus.attrs['mode']}."),
        Table(k_plus["probability"].to_dataframe(), ".3f"),
    ]


def _pages(
    data: GMMData, em: EMResult, posterior, se, title: str
) -> tuple[list[plots.FigurePage], list[str]]:
    """Every figure of the report, not yet drawn, and notes on what is not drawn."""
    pages: list[plots.FigurePage] = []
    notes: list[str] = []
    shown, labels, caption = data, None, "EM fit (1 and 2 sd ellipses)"
    if data.lazy:  # a seeded subset of the rows, labelled by the fit
        shown = data.sample_rows(PLOT_ROWS, random_state=0)
        labels = np.asarray(evaluate(em.params, shown, missing="em")[0]).argmax(axis=1)
        if shown.n_samples < data.n_samples:
            caption += f", {shown.n_samples} of the {data.n_samples} rows drawn at random"
    else:
        labels = em.resp.argmax(axis=1)
    try:
        pages += plots.data_pages(shown, em.params, labels, title=title, caption=caption)
    except Exception as exc:  # a figure must never cost the report or the fit
        notes.append(f"The data's figures could not be laid out: {type(exc).__name__}: {exc}")
    pages.append(
        plots.FigurePage(
            "em_trace.png",
            "EM log-likelihood and bound per iteration",
            lambda: plots.plot_em_trace(em),
        )
    )
    if posterior is None:
        return pages, notes
    k, d = em.means.shape
    var_names = plots.COMPARED_VARIABLES
    if k * d * (d - 1) // 2 > CORRELATIONS_DRAWN:
        var_names = tuple(v for v in var_names if v != "corr")
        notes.append(
            f"The {k * d * (d - 1) // 2} correlations are in the comparison table and fit.nc, "
            f"not drawn (more than {CORRELATIONS_DRAWN}; "
            f"bgmm.plots.comparison_pages(..., var_names=['corr']) draws them)."
        )
    if not se.available:
        notes.append("No forest plot: it is drawn in units of EM's standard errors.")
    if posterior["posterior"].sizes["chain"] < 2:
        notes.append("No rank plots: they compare chains, and there is one.")
    try:
        pages += plots.comparison_pages(posterior, em, se, var_names=var_names)
    except Exception as exc:  # a figure must never cost the report or the fit
        notes.append(f"The posterior's figures could not be laid out: {type(exc).__name__}: {exc}")
    if "n_clusters" in posterior.children:
        pages.append(
            plots.FigurePage(
                "n_clusters.png",
                "Posterior number of non-empty components",
                lambda: plots.plot_n_clusters(posterior),
            )
        )
    if data.n_features >= 2 and not data.lazy:
        rows = _posterior_rows(posterior, data)
        pages += [
            plots.FigurePage(
                "ellipses.png",
                "EM ellipses and posterior draws",
                lambda: plots.plot_ellipses_with_draws(rows, em, posterior),
            ),
            plots.FigurePage(
                "membership.png",
                "Membership uncertainty",
                lambda: plots.plot_membership_uncertainty(rows, posterior),
            ),
        ]
    return pages, notes


def _posterior_rows(posterior, data: GMMData) -> GMMData:
    """The rows the posterior was sampled on (a subsample of ``data`` or all of it)."""
    from bgmm.data import as_data

    observed = posterior["observed_data"]["x"]
    if observed.sizes[observed.dims[0]] == data.n_samples:
        return data
    return as_data(observed, missing="allow")  # NaN where the data had missing values


def _draw(pages: Sequence[plots.FigurePage], out: Path) -> tuple[list[Block], list[str]]:
    """Draw and save every page; a page that fails becomes a note, never an exception."""
    images: list[Block] = []
    failed: list[str] = []
    for page in pages:
        try:
            path = plots.save_figure(page.draw(), out / page.name)
        except Exception as exc:  # a figure must never cost the report or the fit
            failed.append(
                f"{page.name} ({page.caption}) could not be drawn: {type(exc).__name__}: {exc}"
            )
            continue
        images.append(Image(page.name, page.caption, path.read_bytes()))
    return images, failed


def _setting_lines(settings: dict) -> list[str]:
    """One line per setting of the run; a list (e.g. what the CSV reader said) item by item."""
    lines = []
    for name, value in settings.items():
        if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
            lines.append(f"{name}: " + "; ".join(value))
        else:
            lines.append(f"{name}: {value}")
    return lines


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
    notes: Sequence[str] = (),
) -> Path:
    """Write ``report.md``, ``report.html``, the figures (PNG) and, with ``save``, ``fit.nc``.

    The order is the reader's: the verdict of the comparison and the sampler's warnings,
    then EM (parameters with standard errors, covariances, BIC, the history), then the
    comparison table, then the figures. ``fit.nc`` is written first, before any figure is
    drawn; a figure that fails is skipped with a note in the report.

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
        here otherwise (missing ones are reported as missing, with the reason).
    notes : sequence of str, optional
        Sentences shown at the top (the ``notes`` of :class:`bgmm.workflow.Analysis`).

    Returns
    -------
    pathlib.Path
        The Markdown report's path; ``report.html`` is beside it.
    """
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    if save:  # first: whatever happens to a figure, the fit is on disk
        save_fit(
            out / "fit.nc",
            data=data,
            em=em,
            posterior=posterior,
            comparison=comparison,
            settings=settings,
        )
    se = (
        standard_errors(em.params, data, em.covariance_type, errors="missing")
        if standard_error is None
        else standard_error
    )
    blocks: list[Block] = [
        Heading(1, title),
        Paragraph(f"Data: {data.source} ({data.n_samples} x {data.n_features})."),
    ]
    if notes:
        blocks.append(Bullets(tuple(notes)))
    blocks += _verdict_section(comparison, posterior)
    blocks += _em_section(data, em, se)
    if comparison is not None:
        blocks += _comparison_section(comparison)
    if data.has_missing:
        blocks += _missing_section(data, em, posterior)
    if posterior is not None and "n_clusters" in posterior.children:
        blocks += _n_clusters_section(posterior)
    pages, not_drawn = _pages(data, em, posterior, se, title)
    images, failed = _draw(pages, out)
    blocks.append(Heading(2, "Figures"))
    if not_drawn:
        blocks.append(Bullets(tuple(not_drawn)))
    if failed:
        blocks.append(Paragraph("Figures that could not be drawn (the fit is not affected):"))
        blocks.append(Bullets(tuple(failed)))
    blocks += images
    if settings:
        blocks.append(Heading(2, "Settings"))
        blocks.append(Bullets(tuple(_setting_lines(settings))))
    if save:
        blocks.append(
            Paragraph(
                "The fit is saved in fit.nc (netCDF-4): parameters, history and settings; "
                "the rows stay in their source."
                if data.lazy
                else "The whole fit is saved in fit.nc (netCDF-4; bgmm compare fit.nc)."
            )
        )
    path = out / "report.md"
    markdown, page = _markdown(blocks), _html(blocks, title)
    atomic_write(path, lambda tmp: Path(tmp).write_text(markdown, encoding="utf-8"))
    atomic_write(out / "report.html", lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return path
