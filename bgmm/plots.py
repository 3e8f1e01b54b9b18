"""Matplotlib figures of data and fitted components, and the pages of a report.

Figures that grow with the number of features d and of components K are drawn a page at
a time: :func:`data_pages` (the data with the fitted ellipses; a pairs plot when d > 2)
and :func:`comparison_pages` (EM against the posterior: densities, forest and rank plots
of the weights, means, standard deviations and correlations). A page is a
:class:`FigurePage`, drawn only when its ``draw`` is called, and saved by
:func:`save_figure` whatever it holds (a matplotlib Figure or an arviz-plots
PlotCollection). The covariances are shown as standard deviations and correlations
(:func:`scale_and_correlation`), on scales a reader knows.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import arviz_plots as azp
import numpy as np
import xarray as xr
from arviz_base import rcParams as az_rcparams
from arviz_base.labels import BaseLabeller
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse
from scipy import stats

from bgmm._files import atomic_write
from bgmm.data import GMMData
from bgmm.exceptions import InputTypeError, InputValueError
from bgmm.params import GMMParams

__all__ = [
    "COMPARED_VARIABLES",
    "PAIRS_FEATURES",
    "PER_PAGE",
    "FigurePage",
    "add_ellipses",
    "comparison_pages",
    "data_pages",
    "plot_bic",
    "plot_ellipses_with_draws",
    "plot_em_trace",
    "plot_fit",
    "plot_forest_em",
    "plot_membership_uncertainty",
    "plot_posterior_with_em",
    "plot_rank",
    "plot_select_k",
    "save_figure",
    "save_plot_collection",
    "scale_and_correlation",
]

#: Scalar panels on one page of :func:`comparison_pages` at most.
#:
#: A grid of 6 rows of 4, well under ArviZ's ``rcParams["plot.max_subplots"]`` (40):
#: titles and ticks stay readable at the figure's width.
PER_PAGE = 24

#: Features on one side of a page of the pairs plot of :func:`data_pages` at most.
PAIRS_FEATURES = 6

#: The variables :func:`comparison_pages` draws.
#:
#: The covariances are drawn as standard deviations and correlations
#: (:func:`scale_and_correlation`).
COMPARED_VARIABLES = ("weights", "means", "sd", "corr")

#: The mixture's density over its components' (which it covers where they are apart).
_MIXTURE_LINE = {"color": "black", "linestyle": "--", "linewidth": 1.0}

#: Columns of a grid of scalar panels.
_COLUMNS = 4

#: Characters of a line of a panel's title or axis label at most (:func:`_wrap`).
_TITLE_CHARS = 28

#: The comparison table's intervals (:func:`bgmm.compare.compare`): 94% HDIs.
_CI_PROB, _CI_KIND = 0.94, "hdi"

#: The colour and style of EM's reference lines.
_EM_LINE = {"color": "tab:red", "linestyle": "--", "linewidth": 1.5}


class FigurePage(NamedTuple):  # numpydoc ignore=PR01
    """One figure of a report, drawn only when asked.

    Attributes
    ----------
    name : str
        The PNG file's name, e.g. ``"posterior_vs_em-2.png"``.
    caption : str
        What the figure shows, for the report.
    draw : callable
        Takes no argument and returns the figure: a matplotlib ``Figure`` or an
        arviz-plots ``PlotCollection``, either of which :func:`save_figure` saves. Nothing
        is drawn before it is called, so that a report can note a figure that fails and go
        on with the next; the figure is not attached to pyplot (nothing to close).
    """

    name: str
    caption: str
    draw: Callable[[], Figure | azp.PlotCollection]


FigurePage.name.__doc__ = "The PNG file's name."
FigurePage.caption.__doc__ = "What the figure shows."
FigurePage.draw.__doc__ = "Builds the figure when called."


def _page_names(stem: str, n_pages: int) -> list[str]:
    """``stem.png`` for one page, ``stem-1.png``, ``stem-2.png``, ... for several."""
    if n_pages == 1:
        return [f"{stem}.png"]
    return [f"{stem}-{i}.png" for i in range(1, n_pages + 1)]


def _detached(fig: Figure) -> Figure:
    """Take a figure made through pyplot (arviz-plots makes its own) out of pyplot's list.

    pyplot keeps every figure it made until it is closed, and warns past 20: a report of
    many pages would fill it. The figure itself stays whole and can be saved.
    """
    import matplotlib.pyplot as plt

    plt.close(fig)
    return fig


def add_ellipses(
    ax, params: GMMParams, dims=(0, 1), n_std=(1.0, 2.0), *, marker_size: float = 10, **kwargs
) -> None:
    r"""Draw the ``n_std``-standard-deviation ellipses of every component on ``ax``.

    The ellipse of component *k* is :math:`\{x : (x-\mu_k)^T \Sigma_k^{-1} (x-\mu_k) = c^2\}`
    in the two features ``dims``, with axes along the eigenvectors of the 2 x 2 block.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    params : GMMParams
        The mixture whose components are drawn.
    dims : tuple of int, default (0, 1)
        The two features on the x and y axes.
    n_std : sequence of float, default (1.0, 2.0)
        The values of :math:`c`, one ellipse each.
    marker_size : float, default 10
        Size of the cross at each mean.
    **kwargs
        Passed to ``matplotlib.patches.Ellipse``; ``colors`` (a list) sets one colour
        per component.
    """
    i, j = dims
    colors = kwargs.pop("colors", None) or [f"C{k}" for k in range(params.n_components)]
    for k in range(params.n_components):
        block = params.covariances[k][np.ix_([i, j], [i, j])]
        eigvals, eigvecs = np.linalg.eigh(block)
        angle = float(np.degrees(np.arctan2(eigvecs[1, -1], eigvecs[0, -1])))
        for c in n_std:
            width, height = 2.0 * c * np.sqrt(np.maximum(eigvals[::-1], 0.0))
            ax.add_patch(
                Ellipse(
                    (params.means[k, i], params.means[k, j]),
                    width,
                    height,
                    angle=angle,
                    fill=False,
                    color=colors[k % len(colors)],
                    lw=1.5,
                    **kwargs,
                )
            )
        ax.plot(
            *params.means[k, [i, j]],
            marker="x",
            color=colors[k % len(colors)],
            ms=marker_size,
        )


def _check_two_features(data: GMMData, what: str) -> None:
    if data.n_features < 2:
        raise InputValueError(
            f"{what} draws the first two features, but the data have {data.n_features}; "
            f"draw one feature with bgmm.plots.data_pages (a histogram) instead."
        )


def plot_fit(data: GMMData, params: GMMParams, labels=None, *, title: str = "") -> Figure:
    """Scatter the first two features with the fitted component ellipses (1 and 2 sd).

    Parameters
    ----------
    data : GMMData
        The data, at least two features.
    params : GMMParams
        The fitted mixture.
    labels : array-like of int, optional
        A component per sample, to colour the points (e.g. ``resp.argmax(axis=1)``).
    title : str, optional
        The axes' title.

    Returns
    -------
    matplotlib.figure.Figure
        A figure not attached to pyplot (save it with :func:`save_figure`).
    """
    _check_two_features(data, "plot_fit")
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    X = np.asarray(data.values)
    colors = None if labels is None else [f"C{k}" for k in labels]
    ax.scatter(X[:, 0], X[:, 1], s=12, c=colors, alpha=0.6, edgecolors="none")
    add_ellipses(ax, params)
    ax.set_xlabel(data.feature_names[0])
    ax.set_ylabel(data.feature_names[1])
    ax.set_title(title)
    return fig


# --------------------------------------------------------------------------------------
# The data with the fitted components: one feature, two, or a pairs plot
# --------------------------------------------------------------------------------------


def _marginal_densities(ax, params: GMMParams, j: int, grid: np.ndarray) -> None:
    """Each component's weighted density of feature ``j`` (its colour) and their sum."""
    total = np.zeros_like(grid)
    for k in range(params.n_components):
        sd = math.sqrt(float(params.covariances[k, j, j]))
        density = params.weights[k] * stats.norm.pdf(grid, params.means[k, j], sd)
        total += density
        ax.plot(grid, density, color=f"C{k}", lw=1.8)
    ax.plot(grid, total, **_MIXTURE_LINE)


def _histogram_figure(data: GMMData, params: GMMParams, title: str) -> Figure:
    """One feature: its histogram (a density) with the weighted component densities."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    x = np.asarray(data.values)[:, 0]
    x = x[~np.isnan(x)]  # the observed values of a feature with missing ones
    ax.hist(x, bins="auto", density=True, color="0.75")
    pad = 0.05 * (x.max() - x.min() or 1.0)
    _marginal_densities(ax, params, 0, np.linspace(x.min() - pad, x.max() + pad, 400))
    _component_legend(fig, params.n_components, mixture=True, marker="")
    ax.set_xlabel(data.feature_names[0])
    ax.set_ylabel("density")
    ax.set_title(title)
    return fig


def _pairs_figure(
    data: GMMData,
    params: GMMParams,
    labels,
    rows: Sequence[int],
    cols: Sequence[int],
    title: str,
) -> Figure:
    """Feature ``rows[r]`` against ``cols[c]``, below the diagonal where they are the same.

    Where ``rows`` and ``cols`` are the same features the page is a lower triangle with
    each feature's histogram and component densities on the diagonal; otherwise it is a
    full rectangle of scatter plots. Each scatter has the components' ellipses.
    """
    X = np.asarray(data.values)
    names = data.feature_names
    triangle = list(rows) == list(cols)
    n_rows, n_cols = len(rows), len(cols)
    side = 2.1 if max(n_rows, n_cols) > 3 else 2.6
    fig = Figure(figsize=(side * n_cols + 0.6, side * n_rows + 0.6), layout="constrained")
    grid = fig.add_gridspec(n_rows, n_cols)
    colors = None if labels is None else [f"C{k}" for k in np.asarray(labels)]
    column_axes: dict[int, object] = {}
    row_axes: dict[int, object] = {}
    for r, i in enumerate(rows):
        for c, j in enumerate(cols):
            if triangle and c > r:
                continue
            ax = fig.add_subplot(grid[r, c])
            if c in column_axes:
                ax.sharex(column_axes[c])
            else:
                column_axes[c] = ax
            if triangle and r == c:
                x = X[:, j]
                x = x[~np.isnan(x)]  # the observed values of a feature with missing ones
                ax.hist(x, bins="auto", density=True, color="0.75")
                pad = 0.05 * (x.max() - x.min() or 1.0)
                grid_x = np.linspace(x.min() - pad, x.max() + pad, 200)
                _marginal_densities(ax, params, j, grid_x)
                ax.set_yticks([])
            else:
                if r in row_axes:
                    ax.sharey(row_axes[r])
                else:
                    row_axes[r] = ax
                ax.scatter(X[:, j], X[:, i], s=6, c=colors, alpha=0.5, edgecolors="none")
                add_ellipses(ax, params, dims=(j, i), marker_size=6)
                if c == 0:
                    ax.set_ylabel(_wrap(names[i], 24))
                else:
                    ax.tick_params(labelleft=False)
            if r == n_rows - 1:
                ax.set_xlabel(_wrap(names[j], 24))
            else:
                ax.tick_params(labelbottom=False)
            ax.tick_params(labelsize="small")
    _component_legend(fig, params.n_components, mixture=triangle)
    if title:
        fig.suptitle(title)
    return fig


def _component_legend(fig: Figure, n_components: int, mixture: bool, marker="x") -> None:
    """A legend of the components' colours (and of the mixture's density) above the axes."""
    handles = [Line2D([], [], color=f"C{k}", marker=marker) for k in range(n_components)]
    names = [f"component {k}" for k in range(n_components)]
    if mixture:
        handles.append(Line2D([], [], **_MIXTURE_LINE))
        names.append("mixture density")
    fig.legend(handles, names, loc="outside upper center", ncols=min(len(names), 6))


def _blocks(n_features: int, per_page: int) -> list[np.ndarray]:
    """The features in ``ceil(d / per_page)`` consecutive blocks of near-equal sizes."""
    n_blocks = max(1, math.ceil(n_features / per_page))
    return np.array_split(np.arange(n_features), n_blocks)


def data_pages(
    data: GMMData,
    params: GMMParams,
    labels=None,
    *,
    title: str = "",
    caption: str = "EM fit (1 and 2 sd ellipses)",
    per_page: int = PAIRS_FEATURES,
) -> list[FigurePage]:
    """The data with the fitted components, for any number of features d.

    * d = 1: a histogram of the feature with each component's weighted density and the
      mixture's.
    * d = 2: :func:`plot_fit`.
    * d > 2: a pairs plot: every pair of features once, as a scatter plot with the
      components' 1 and 2 sd ellipses (:func:`add_ellipses`), and each feature's histogram
      with the component densities on the diagonal. Up to ``per_page`` features it is one
      page (the lower triangle). Beyond, the features are cut into
      ``b = ceil(d / per_page)`` consecutive blocks of near-equal sizes and each pair of
      blocks is a page, in the order of the lower triangle of blocks: a block with itself
      is a triangle with its diagonal, two different blocks a full rectangle of scatter
      plots (rows: the later block). That is ``b (b + 1) / 2`` pages, each at most
      ``per_page`` features a side, and every pair of features appears exactly once.

    The pages are named ``em_fit.png`` when there is one, ``em_fit-1.png``,
    ``em_fit-2.png``, ... otherwise.

    Parameters
    ----------
    data : GMMData
        The data (all rows are drawn: pass a sample of the rows of a large data set).
    params : GMMParams
        The fitted mixture.
    labels : array-like of int, optional
        A component per row, to colour the points.
    title : str, optional
        The figures' title.
    caption : str, default "EM fit (1 and 2 sd ellipses)"
        The pages' caption (a page of several says which features it holds).
    per_page : int, default :data:`PAIRS_FEATURES`
        Features on one side of a page at most.

    Returns
    -------
    list of FigurePage
        The pages, not yet drawn.
    """
    if not isinstance(per_page, int | np.integer) or per_page < 1:
        raise InputValueError(f"per_page must be a positive integer, got {per_page!r}.")
    d = data.n_features
    if d == 1:
        return [FigurePage("em_fit.png", caption, lambda: _histogram_figure(data, params, title))]
    if d == 2:
        return [
            FigurePage("em_fit.png", caption, lambda: plot_fit(data, params, labels, title=title))
        ]
    blocks = _blocks(d, per_page)
    pairs = [(rows, cols) for i, rows in enumerate(blocks) for cols in blocks[: i + 1]]
    names = _page_names("em_fit", len(pairs))
    pages = []
    for name, (rows, cols) in zip(names, pairs, strict=True):
        text = caption
        if len(pairs) > 1:
            text += (
                f"; features {_span(data, rows)} against {_span(data, cols)}"
                if rows is not cols
                else f"; features {_span(data, rows)}"
            )

        def draw(rows=rows, cols=cols):
            return _pairs_figure(data, params, labels, rows, cols, title)

        pages.append(FigurePage(name, text, draw))
    return pages


def _span(data: GMMData, block: np.ndarray) -> str:
    first, last = int(block[0]), int(block[-1])
    names = data.feature_names
    return f"{first + 1}-{last + 1} ({names[first]} to {names[last]})"


def save_figure(fig: Figure | azp.PlotCollection, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save atomically: write a temporary file beside ``path``, then rename it into place.

    Parameters
    ----------
    fig : matplotlib.figure.Figure or arviz_plots.PlotCollection
        The figure (anything with a ``savefig(path, dpi=...)``, as what a
        :class:`FigurePage` draws).
    path : str or path-like
        The image file; its suffix picks the format. Missing folders are created.
    dpi : int, default 120
        Resolution.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi))


# --------------------------------------------------------------------------------------
# Covariances as standard deviations and correlations
# --------------------------------------------------------------------------------------

_COVARIANCE_DIMS = ("component", "feature", "feature_bis")


def _pair_labels(features) -> list[str]:
    i, j = np.triu_indices(len(features), 1)
    return [f"{features[a]}~{features[b]}" for a, b in zip(i, j, strict=True)]


def scale_and_correlation(ds: xr.Dataset, standard_error=None) -> xr.Dataset:
    r"""The covariances as standard deviations and correlations.

    From :math:`\Sigma_k`: :math:`\sigma_{kj} = \sqrt{\Sigma_{k,jj}}` and, for each pair of
    features :math:`i < j`, :math:`\rho_{k,ij} = \Sigma_{k,ij} / (\sigma_{ki}\sigma_{kj})`.
    Every family holds full ``(component, feature, feature_bis)`` matrices (posterior draws
    and EM estimates alike), so this is the same for all: a diagonal family's correlations
    are 0, a tied family's are the same in every component.

    Parameters
    ----------
    ds : xarray.Dataset
        With ``covariances`` over ``(..., component, feature, feature_bis)``: a posterior
        (``sample_posterior(...)["posterior"]``, any leading dims such as chain and draw
        are kept) or an EM estimate (:func:`bgmm.compare.em_dataset`).
    standard_error : StandardErrors, optional
        EM's standard errors (:func:`bgmm.em.standard_errors`) at the estimate ``ds`` holds
        (then ``ds`` has no other dims). Adds ``sd_se`` and ``corr_se`` by the delta
        method from the covariance of the covariance estimates
        (``standard_error.covariance``): :math:`\mathrm{SE}(\sigma_{kj}) =
        \mathrm{SE}(\Sigma_{k,jj}) / (2\sigma_{kj})` and
        :math:`\mathrm{SE}(\rho_{k,ij})^2 = g^T C g` with :math:`C` the covariance of
        :math:`(\Sigma_{k,ij}, \Sigma_{k,ii}, \Sigma_{k,jj})` and
        :math:`g = (1 / (\sigma_{ki}\sigma_{kj}), -\rho_{k,ij} / (2\Sigma_{k,ii}),
        -\rho_{k,ij} / (2\Sigma_{k,jj}))`. NaN where the standard errors are missing.

    Returns
    -------
    xarray.Dataset
        ``ds`` with ``covariances`` (and ``covariances_se``) replaced by
        ``sd (..., component, feature)`` and ``corr (..., component, feature_pair)``,
        where ``feature_pair`` lists the pairs :math:`i < j` in the order of the upper
        triangle, labelled ``"a~b"``.
    """
    if "covariances" not in ds:
        raise InputValueError(
            f"scale_and_correlation needs a 'covariances' variable, got {list(ds.data_vars)}."
        )
    cov = ds["covariances"]
    if not set(_COVARIANCE_DIMS) <= set(cov.dims):
        raise InputValueError(
            f"covariances must have the dims {_COVARIANCE_DIMS}, got {cov.dims}."
        )
    lead = [dim for dim in cov.dims if dim not in _COVARIANCE_DIMS]
    values = cov.transpose(*lead, *_COVARIANCE_DIMS).values
    features = list(cov["feature"].values)
    d = len(features)
    variances = np.diagonal(values, axis1=-2, axis2=-1)
    sd = np.sqrt(variances)
    i, j = np.triu_indices(d, 1)
    corr = values[..., i, j] / (sd[..., i] * sd[..., j])
    coords = {dim: cov[dim] for dim in (*lead, "component") if dim in cov.coords}
    out = ds.drop_vars(["covariances", "covariances_se"], errors="ignore")
    out["sd"] = xr.DataArray(
        sd, dims=(*lead, "component", "feature"), coords={**coords, "feature": features}
    )
    out["corr"] = xr.DataArray(
        corr,
        dims=(*lead, "component", "feature_pair"),
        coords={**coords, "feature_pair": _pair_labels(features)},
    )
    if standard_error is not None:
        if lead:
            raise InputValueError(
                f"with standard_error, ds must hold one estimate (dims {_COVARIANCE_DIMS}), "
                f"got the extra dims {lead}."
            )
        sd_se, corr_se = _delta_method(values, standard_error)
        out["sd_se"] = (("component", "feature"), sd_se)
        out["corr_se"] = (("component", "feature_pair"), corr_se)
    if "feature_bis" in out.coords and not any("feature_bis" in v.dims for v in out.values()):
        out = out.drop_vars("feature_bis")
    return out


def _delta_method(covariances: np.ndarray, standard_error) -> tuple[np.ndarray, np.ndarray]:
    """Standard errors of the sds and correlations of one estimate (see the caller)."""
    k, d = covariances.shape[0], covariances.shape[1]
    full = np.asarray(standard_error.covariance)
    start = k + k * d  # the flat order: weights, means, covariances (row major)
    if full.shape != (start + k * d * d,) * 2:
        raise InputValueError(
            f"standard_error.covariance has shape {full.shape}, but an estimate of {k} "
            f"components and {d} features needs {(start + k * d * d,) * 2}."
        )
    block = full[start:, start:]
    sd = np.sqrt(np.diagonal(covariances, axis1=1, axis2=2))
    comp = np.arange(k)[:, None]
    diag = comp * d * d + np.arange(d)[None, :] * (d + 1)  # index of Sigma_k,jj
    sd_se = np.sqrt(np.clip(block[diag, diag], 0.0, None)) / (2.0 * sd)
    i, j = np.triu_indices(d, 1)
    rho = covariances[:, i, j] / (sd[:, i] * sd[:, j])
    corr_se = np.empty((k, i.size))
    for c in range(k):
        index = np.stack([c * d * d + i * d + j, diag[c, i], diag[c, j]], axis=1)
        gradient = np.stack(
            [
                1.0 / (sd[c, i] * sd[c, j]),
                -rho[c] / (2.0 * sd[c, i] ** 2),
                -rho[c] / (2.0 * sd[c, j] ** 2),
            ],
            axis=1,
        )
        cov3 = block[index[:, :, None], index[:, None, :]]  # (pairs, 3, 3)
        variance = np.einsum("pa,pab,pb->p", gradient, cov3, gradient)
        corr_se[c] = np.sqrt(np.clip(variance, 0.0, None))
    return sd_se, corr_se


# --------------------------------------------------------------------------------------
# EM against the posterior: the scalar parameters, a page at a time
# --------------------------------------------------------------------------------------

_SCALAR_VARS = ("weights", "means")

#: The dims of each variable a panel can show, in the order of its labels.
_PANEL_DIMS = {
    "weights": ("component",),
    "means": ("component", "feature"),
    "sd": ("component", "feature"),
    "corr": ("component", "feature_pair"),
    "covariances": _COVARIANCE_DIMS,
}


class _Scalar(NamedTuple):
    label: str  # e.g. "means[0, a]", the panel's title and the forest's label
    var: str
    sel: dict


def _check_var_names(var_names) -> list[str]:
    if isinstance(var_names, str):
        var_names = [var_names]
    var_names = list(var_names)
    unknown = [name for name in var_names if name not in _PANEL_DIMS]
    if unknown or not var_names:
        raise InputValueError(
            f"var_names must be some of {tuple(_PANEL_DIMS)}, got {var_names!r}."
        )
    return var_names


def _with_scales(ds: xr.Dataset, var_names, standard_error=None) -> xr.Dataset:
    """``ds`` with ``sd`` and ``corr`` added when ``var_names`` asks for them."""
    if {"sd", "corr"} & set(var_names):
        scaled = scale_and_correlation(ds, standard_error)
        ds = ds.assign({name: scaled[name] for name in scaled.data_vars if name not in ds})
    return ds


def _free(covariance_type: str, var: str, k: int, d: int) -> np.ndarray:
    """Which scalars of ``var`` the family leaves free (the others repeat or are fixed)."""
    from bgmm.covariance import get_family

    entries = get_family(covariance_type).free_entries(k, d)
    if var == "weights":
        return np.full(k, k > 1)
    if var == "means":
        return np.ones((k, d), dtype=bool)
    if var == "sd":
        return np.diagonal(entries, axis1=1, axis2=2).copy()
    if var == "corr":
        i, j = np.triu_indices(d, 1)
        return entries[:, j, i]  # free_entries marks the lower triangle
    return entries


def _scalars(post: xr.Dataset, var_names, covariance_type: str) -> list[_Scalar]:
    """The scalar parameters to draw, in order: those the family leaves free and that vary.

    A scalar that is the same in every draw (a single component's weight, a diagonal
    family's correlations) has no density to draw, so it is left out with the entries
    the family repeats (a tied family's other components).
    """
    k, d = post.sizes["component"], post.sizes["feature"]
    out = []
    for var in var_names:
        dims = _PANEL_DIMS[var]
        da = post[var]
        sample = [dim for dim in da.dims if dim not in dims]
        da = da.transpose(*sample, *dims)
        varies = (da.max(sample) > da.min(sample)).values if sample else np.ones(da.shape, bool)
        keep = _free(covariance_type, var, k, d) & varies
        for index in zip(*np.nonzero(keep), strict=True):
            sel = {dim: da[dim].values[i] for dim, i in zip(dims, index, strict=True)}
            label = f"{var}[{', '.join(str(v) for v in sel.values())}]"
            out.append(_Scalar(label, var, sel))
    return out


def _select(scalars: list[_Scalar], parameters) -> list[_Scalar]:
    if parameters is None:
        return scalars
    if isinstance(parameters, str):
        parameters = [parameters]
    by_label = {s.label: s for s in scalars}
    missing = [p for p in parameters if p not in by_label]
    if missing:
        shown = ", ".join(list(by_label)[:6])
        raise InputValueError(
            f"parameters {missing} are not among the {len(by_label)} free scalar parameters "
            f"of var_names (labelled like {shown}, ...)."
        )
    return [by_label[p] for p in parameters]


def _flat(ds: xr.Dataset, scalars: Sequence[_Scalar]) -> xr.Dataset:
    """One variable per scalar parameter (a panel each), its label in ``attrs["label"]``.

    The variables are named ``p0``, ``p1``, ...: a DataTree refuses names with ``/``, which
    feature names may hold; the panels show the labels (:class:`_Labeller`).
    """
    out = xr.Dataset()
    for i, s in enumerate(scalars):
        out[f"p{i}"] = ds[s.var].sel(s.sel, drop=True).assign_attrs(label=s.label)
    return out


def _as_posterior(variables) -> xr.DataTree:
    ds = variables if isinstance(variables, xr.Dataset) else xr.Dataset(variables)
    return xr.DataTree.from_dict({"posterior": ds.transpose("chain", "draw", ...)})


def _covariance_type(posterior) -> str:
    settings = json.loads(posterior.attrs.get("bgmm_settings", "{}"))
    return settings.get("covariance_type") or "VVV"


def _check_panels(n: int, what: str) -> None:
    limit = az_rcparams["plot.max_subplots"]
    if limit is not None and n > limit:
        raise InputValueError(
            f"{what} would draw {n} panels, more than ArviZ's "
            f"rcParams['plot.max_subplots'] = {limit}: draw them a page at a time "
            f"(bgmm.plots.comparison_pages) or choose some with parameters=."
        )
    if n == 0:
        raise InputValueError(f"{what}: no free scalar parameter varies in the posterior.")


def _fill(text: str, pattern: str, width: int) -> list[str]:
    """Greedy lines of at most ``width`` characters, broken where ``pattern`` matches."""
    if len(text) <= width:
        return [text]
    lines, line = [], ""
    for piece in re.split(pattern, text):
        if line and len(line) + len(piece) > width:
            lines.append(line.rstrip())
            line = piece.lstrip()
        else:
            line += piece
    lines.append(line)
    return lines


def _wrap(text: str, width: int = _TITLE_CHARS) -> str:
    """Break a label into lines of at most ``width`` characters.

    First after ``[``, ``,`` or ``~`` (between the parts of a label), then inside a long
    feature name after ``/``, ``_`` or a space, and only then anywhere.
    """
    lines = [text]
    for pattern in (r"(?<=[\[,~])", r"(?<=[/_ ])"):
        lines = [piece for line in lines for piece in _fill(line, pattern, width)]
    return "\n".join(
        line[i : i + width] for line in lines for i in range(0, max(len(line), 1), width)
    )


class _Labeller(BaseLabeller):
    """ArviZ's labels of the variables of :func:`_flat`: their own, broken to fit a panel."""

    def __init__(self, ds: xr.Dataset, wrap: bool = True):
        self.labels = {name: da.attrs["label"] for name, da in ds.items()}
        self.wrap = wrap

    def var_name_to_str(self, var_name):
        label = self.labels.get(var_name, var_name)
        return _wrap(label) if self.wrap and label is not None else label


def _grid_figure_kwargs(n: int, panel=(3.2, 2.3)) -> tuple[int, dict]:
    """Columns and figure kwargs of a constrained grid of ``n`` panels, sized by ``n``."""
    cols = min(n, _COLUMNS)
    rows = math.ceil(n / cols)
    figsize = (panel[0] * cols + 0.4, panel[1] * rows + 0.7)
    return cols, {"layout": "constrained", "figsize": figsize, "figsize_units": "inches"}


def _dist_collection(post_flat: xr.Dataset, em_flat: xr.Dataset):
    n = len(post_flat.data_vars)
    _check_panels(n, "plot_posterior_with_em")
    cols, figure_kwargs = _grid_figure_kwargs(n)
    pc = azp.plot_dist(
        _as_posterior(post_flat),
        backend="matplotlib",
        ci_kind=_CI_KIND,
        ci_prob=_CI_PROB,
        point_estimate="mean",
        visuals={"point_estimate_text": False},  # the legend names it; the table has it
        labeller=_Labeller(post_flat),
        col_wrap=cols,
        figure_kwargs=figure_kwargs,
    )
    azp.add_lines(
        pc,
        values={name: float(value) for name, value in em_flat.items()},
        visuals={"ref_line": dict(_EM_LINE)},
    )
    handles = [
        Line2D([], [], color="C0"),
        Line2D([], [], color="0.3", marker="o", lw=2),
        Line2D([], [], **_EM_LINE),
    ]
    names = ["posterior density", f"posterior mean, {_CI_PROB:.0%} HDI", "EM estimate"]
    pc.get_viz("figure").legend(handles, names, loc="outside upper center", ncols=3)
    return pc


def plot_posterior_with_em(posterior, em, var_names=_SCALAR_VARS, *, parameters=None):
    """Posterior densities with the EM estimate drawn as reference lines.

    One panel per scalar parameter, titled like ``means[0, a]`` (the comparison table's
    rows), with the posterior mean and 94% HDI (as in :func:`bgmm.compare.compare`) and a
    legend telling the posterior from EM. Only the parameters the covariance family leaves
    free and whose draws vary are drawn.

    Parameters
    ----------
    posterior : xarray.DataTree
        From :func:`bgmm.bayes.sample_posterior`.
    em : EMResult or fitted GaussianMixtureEM
        The EM fit, labelled like the posterior.
    var_names : sequence of str, default ("weights", "means")
        Variables to draw, among ``weights``, ``means``, ``sd``, ``corr`` (see
        :func:`scale_and_correlation`) and ``covariances``.
    parameters : sequence of str, optional
        The panels to draw, by label (e.g. ``["means[0, a]", "sd[1, b]"]``); default all
        of ``var_names``. ArviZ draws at most ``rcParams["plot.max_subplots"]`` panels in
        one figure: :func:`comparison_pages` splits them into pages.

    Returns
    -------
    arviz_plots.PlotCollection
        One panel per scalar parameter, constrained layout.
    """
    from bgmm.compare import _em_result, em_dataset

    var_names = _check_var_names(var_names)
    result = _em_result(em)
    post = _with_scales(posterior["posterior"].to_dataset(), var_names)
    est = _with_scales(em_dataset(result), var_names)
    scalars = _select(_scalars(post, var_names, result.covariance_type), parameters)
    return _dist_collection(_flat(post, scalars), _flat(est, scalars))


#: Probability of the normal interval mean ± 1 sd.
_ONE_SD = float(stats.norm.cdf(1.0) - stats.norm.cdf(-1.0))
#: Probability of the normal interval mean ± 2 sd.
_TWO_SD = float(stats.norm.cdf(2.0) - stats.norm.cdf(-2.0))


def _standardised_draws(posterior, em, standard_error, var_names) -> tuple:
    r"""Posterior draws and EM's normal approximation, both as :math:`(\theta - \hat\theta) / SE`.

    EM's stand-in draws are evenly spaced standard normal quantiles shaped like the
    posterior's (chain, draw), so that ArviZ's forest plot shows EM ± z SE with the same
    machinery (and the same interval probabilities) as the posterior. Entries whose SE is
    0 (the weight of a single component) are 0 in both. The SEs of ``sd`` and ``corr``
    come from those of the covariances by the delta method (:func:`scale_and_correlation`).
    """
    from bgmm.compare import em_dataset

    post = _with_scales(posterior["posterior"].to_dataset(), var_names)
    nc, nd = post.sizes["chain"], post.sizes["draw"]
    z = xr.DataArray(
        stats.norm.ppf((np.arange(nc * nd) + 0.5) / (nc * nd)).reshape(nc, nd),
        dims=("chain", "draw"),
        coords={"chain": post["chain"].values, "draw": post["draw"].values},
    )
    ds = _with_scales(em_dataset(em, standard_error=standard_error), var_names, standard_error)
    scaled_post, scaled_em = {}, {}
    for name in var_names:
        se = ds[f"{name}_se"]
        ok = se > 0
        scaled_post[name] = xr.where(ok, (post[name] - ds[name]) / se.where(ok, 1.0), 0.0)
        scaled_em[name] = xr.where(ok, z + 0.0 * ds[name], 0.0)
    return _as_posterior(scaled_post), _as_posterior(scaled_em)


def _forest_collection(post_flat: xr.Dataset, em_flat: xr.Dataset):
    """The forest plot of one page, its labels as the y tick labels of the intervals."""
    n = len(post_flat.data_vars)
    if n == 0:
        _check_panels(0, "plot_forest_em")
    labeller = _Labeller(post_flat, wrap=False)
    longest = max(len(label) for label in labeller.labels.values())
    height = 0.32 * n + 1.3
    pc = azp.plot_forest(
        {"MCMC": _as_posterior(post_flat), "EM": _as_posterior(em_flat)},
        combined=True,
        labels=["__variable__"],
        labeller=labeller,
        ci_probs=(_ONE_SD, _TWO_SD),
        backend="matplotlib",
        figure_kwargs={
            "layout": "constrained",
            "figsize": (5.2 + 0.065 * longest, height),
            "figsize_units": "inches",
            "width_ratios": [0.01, 1.0],
        },
    )
    labels_ax = pc.viz["plot"].sel(column="labels").item()
    forest = pc.viz["plot"].sel(column="forest").item()
    # The labels as tick labels of the forest's own y axis: constrained layout then gives
    # them exactly their width, where ArviZ's column of text leaves blank space or clips.
    ticks = sorted((text.get_position()[1], text.get_text()) for text in labels_ax.texts)
    for text in list(labels_ax.texts):
        text.remove()
    labels_ax.set_axis_off()
    forest.yaxis.set_visible(True)
    forest.set_yticks([y for y, _ in ticks], [label for _, label in ticks])
    forest.tick_params(axis="y", length=0, labelleft=True, labelsize="small")
    forest.axvline(0.0, color="0.6", lw=0.8, zorder=0)
    forest.set_xlabel("(θ − θ̂ EM) / SE EM")
    pc.add_legend("model", title="", loc="outside upper center", ncols=2)
    return pc


def plot_forest_em(posterior, em, standard_error, var_names=_SCALAR_VARS, *, parameters=None):
    r"""Forest plot of the posterior against EM, in units of EM's standard error.

    Every parameter is drawn on the scale :math:`(\theta - \hat\theta) / \mathrm{SE}`, so
    that parameters of very different sizes share one axis and agreement reads directly:
    EM's intervals are exactly [-1, 1] and [-2, 2] (the normal approximation, 68.3% and
    95.4%), and the posterior's HDIs of the same probabilities sit near them when the two
    solvers agree. The posterior's point is then its mean's ``z`` and the width of its
    interval is ``1 / se_ratio`` of EM's (see :func:`bgmm.compare.compare`). The standard
    errors of ``sd`` and ``corr`` are EM's by the delta method
    (:func:`scale_and_correlation`).

    Parameters
    ----------
    posterior : xarray.DataTree
        From :func:`bgmm.bayes.sample_posterior`.
    em : EMResult or fitted GaussianMixtureEM
        The EM fit, labelled like the posterior.
    standard_error : StandardErrors
        From :func:`bgmm.em.standard_errors`.
    var_names : sequence of str, default ("weights", "means")
        Variables to draw, among ``weights``, ``means``, ``sd``, ``corr`` and
        ``covariances``.
    parameters : sequence of str, optional
        The rows to draw, by label (e.g. ``["means[0, a]"]``); default all of
        ``var_names`` that the family leaves free and that vary.

    Returns
    -------
    arviz_plots.PlotCollection
        The forest plot, one row per scalar parameter and solver (labelled like
        ``means[0, a]``), with a legend; constrained layout.
    """
    from bgmm.compare import _em_result

    var_names = _check_var_names(var_names)
    result = _em_result(em)
    scaled_post, scaled_em = _standardised_draws(posterior, result, standard_error, var_names)
    post = _with_scales(posterior["posterior"].to_dataset(), var_names)
    scalars = _select(_scalars(post, var_names, result.covariance_type), parameters)
    return _forest_collection(
        _flat(scaled_post["posterior"].to_dataset(), scalars),
        _flat(scaled_em["posterior"].to_dataset(), scalars),
    )


def _rank_collection(post_flat: xr.Dataset):
    n = len(post_flat.data_vars)
    _check_panels(n, "plot_rank")
    cols, figure_kwargs = _grid_figure_kwargs(n)
    pc = azp.plot_rank(
        _as_posterior(post_flat),
        backend="matplotlib",
        labeller=_Labeller(post_flat),
        col_wrap=cols,
        figure_kwargs=figure_kwargs,
    )
    n_chains = post_flat.sizes["chain"]
    pc.add_legend("chain", loc="outside upper center", ncols=min(n_chains, 8))
    return pc


def plot_rank(posterior, var_names=_SCALAR_VARS, *, parameters=None):
    """Rank plots of the relabelled posterior (uniform when the chains agree).

    Each panel shows every chain's fractional-rank ECDF minus the uniform's, with the
    simultaneous envelope, a legend naming the chains and, above, the p-value of ArviZ's
    multi-chain uniformity test.

    Parameters
    ----------
    posterior : xarray.DataTree
        From :func:`bgmm.bayes.sample_posterior`.
    var_names : sequence of str, default ("weights", "means")
        Variables to draw, among ``weights``, ``means``, ``sd``, ``corr`` and
        ``covariances``.
    parameters : sequence of str, optional
        The panels to draw, by label (e.g. ``["sd[0, a]"]``); default all of
        ``var_names`` that the covariance family (read from the posterior's settings)
        leaves free and that vary.

    Returns
    -------
    arviz_plots.PlotCollection
        One panel per scalar parameter, constrained layout.
    """
    var_names = _check_var_names(var_names)
    post = _with_scales(posterior["posterior"].to_dataset(), var_names)
    scalars = _select(_scalars(post, var_names, _covariance_type(posterior)), parameters)
    return _rank_collection(_flat(post, scalars))


def comparison_pages(
    posterior,
    em,
    standard_error=None,
    *,
    var_names=COMPARED_VARIABLES,
    per_page: int = PER_PAGE,
) -> list[FigurePage]:
    """EM against the posterior, a page at a time: densities, forest plots, rank plots.

    The ``n`` scalar parameters of ``var_names`` (by default the weights, means, standard
    deviations and correlations; only those the covariance family leaves free and whose
    draws vary) are taken in order (variable, component, then feature or pair of
    features) and cut into ``ceil(n / per_page)`` consecutive pages of near-equal sizes
    (differing by one at most, none above ``per_page``); page *i* of every kind shows the
    same parameters, and its caption says which. The pages are, in order:

    * ``posterior_vs_em-i.png``: :func:`plot_posterior_with_em`;
    * ``forest-i.png``: :func:`plot_forest_em` (left out without ``standard_error``, or
      when EM's standard errors are missing: its scale is theirs);
    * ``rank-i.png``: :func:`plot_rank` (with at least two chains: ranks compare chains);

    named without the ``-i`` when there is one page of each (as for two features and two
    components). A grid has 4 panels a row on a figure that grows with its rows, and the
    forest plot grows with its rows and its longest label. Only the list of parameters is
    computed here; each figure is computed when its page is drawn.

    Parameters
    ----------
    posterior : xarray.DataTree
        From :func:`bgmm.bayes.sample_posterior`.
    em : EMResult or fitted GaussianMixtureEM
        The EM fit, labelled like the posterior.
    standard_error : StandardErrors, optional
        From :func:`bgmm.em.standard_errors`, for the forest plots.
    var_names : sequence of str, default :data:`COMPARED_VARIABLES`
        Variables to draw, among ``weights``, ``means``, ``sd``, ``corr`` and
        ``covariances``.
    per_page : int, default :data:`PER_PAGE`
        Scalar parameters on one page, from 1 to ArviZ's ``rcParams["plot.max_subplots"]``.

    Returns
    -------
    list of FigurePage
        The pages, not yet drawn.
    """
    from bgmm.compare import _em_result, em_dataset

    limit = az_rcparams["plot.max_subplots"]
    if (
        not isinstance(per_page, int | np.integer)
        or per_page < 1
        or (limit is not None and per_page > limit)
    ):
        raise InputValueError(
            f"per_page must be an integer from 1 to rcParams['plot.max_subplots'] = {limit}, "
            f"got {per_page!r}."
        )
    if not isinstance(posterior, xr.DataTree) or "posterior" not in posterior.children:
        raise InputTypeError(
            "posterior must be the DataTree of bgmm.bayes.sample_posterior (a 'posterior' group)."
        )
    var_names = _check_var_names(var_names)
    result = _em_result(em)
    post = _with_scales(posterior["posterior"].to_dataset(), var_names)
    est = _with_scales(em_dataset(result), var_names)
    scalars = _scalars(post, var_names, result.covariance_type)
    n_pages = max(1, math.ceil(len(scalars) / per_page))
    chunks = [list(chunk) for chunk in _near_equal(scalars, n_pages)]
    with_forest = standard_error is not None and getattr(standard_error, "reason", None) is None

    @functools.cache
    def scaled() -> tuple[xr.Dataset, xr.Dataset]:  # computed by the first forest page
        post_z, em_z = _standardised_draws(posterior, result, standard_error, var_names)
        return post_z["posterior"].to_dataset(), em_z["posterior"].to_dataset()

    n = len(chunks)
    pages: list[FigurePage] = []

    def where(i: int, chunk) -> str:
        if n == 1:
            return ""
        return f" (page {i + 1} of {n}: {chunk[0].label} to {chunk[-1].label})"

    for name, (i, chunk) in zip(_page_names("posterior_vs_em", n), enumerate(chunks), strict=True):
        pages.append(
            FigurePage(
                name,
                "Posterior densities with EM estimates" + where(i, chunk),
                lambda chunk=chunk: _page(_dist_collection(_flat(post, chunk), _flat(est, chunk))),
            )
        )
    if with_forest:
        for name, (i, chunk) in zip(_page_names("forest", n), enumerate(chunks), strict=True):
            pages.append(
                FigurePage(
                    name,
                    "Posterior HDIs (68%, 95%) against EM ± 1 and 2 SE, in units of EM's SE"
                    + where(i, chunk),
                    lambda chunk=chunk: _page(
                        _forest_collection(_flat(scaled()[0], chunk), _flat(scaled()[1], chunk))
                    ),
                )
            )
    if posterior["posterior"].sizes["chain"] < 2:  # ranks compare chains
        return pages
    for name, (i, chunk) in zip(_page_names("rank", n), enumerate(chunks), strict=True):
        pages.append(
            FigurePage(
                name,
                "Rank plots" + where(i, chunk),
                lambda chunk=chunk: _page(_rank_collection(_flat(post, chunk))),
            )
        )
    return pages


def _near_equal(items: list, n_parts: int) -> list[list]:
    """``items`` in ``n_parts`` consecutive parts whose sizes differ by one at most."""
    bounds = np.linspace(0, len(items), n_parts + 1).round().astype(int)
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


def _page(pc):
    """A PlotCollection whose figure pyplot no longer holds (see :func:`_detached`)."""
    _detached(pc.get_viz("figure"))
    return pc


def plot_ellipses_with_draws(data: GMMData, em, posterior, n_draws: int = 40, seed: int = 0):
    """The data with the EM ellipses (thick) and those of posterior draws (thin).

    Parameters
    ----------
    data : GMMData
        The data, at least two features (the first two are drawn).
    em : EMResult or fitted GaussianMixtureEM
        The EM fit.
    posterior : xarray.DataTree
        From :func:`bgmm.bayes.sample_posterior`.
    n_draws : int, default 40
        Posterior draws to draw, chosen at random.
    seed : int, default 0
        Seed of that choice.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    _check_two_features(data, "plot_ellipses_with_draws")
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    X = np.asarray(data.values)
    ax.scatter(X[:, 0], X[:, 1], s=10, color="0.5", alpha=0.5, edgecolors="none")
    post = posterior["posterior"].to_dataset().stack(sample=("chain", "draw"))
    rng = np.random.default_rng(seed)
    for s in rng.choice(
        post.sizes["sample"], size=min(n_draws, post.sizes["sample"]), replace=False
    ):
        draw = post.isel(sample=s)
        params = GMMParams(
            draw["weights"].values, draw["means"].values, draw["covariances"].values
        )
        add_ellipses(ax, params, n_std=(2.0,), alpha=0.15)
    add_ellipses(ax, em.params, n_std=(2.0,))
    ax.set_xlabel(data.feature_names[0])
    ax.set_ylabel(data.feature_names[1])
    ax.set_title("EM ellipses (2 sd) and posterior draws")
    return fig


def plot_membership_uncertainty(data: GMMData, posterior):
    r"""Each point coloured by the entropy of its posterior membership (nats).

    The entropy :math:`-\sum_k \bar\gamma_{nk} \ln \bar\gamma_{nk}` of the posterior mean
    membership is 0 for a sure assignment and :math:`\ln K` for a point shared equally.

    Parameters
    ----------
    data : GMMData
        The data, at least two features (the first two are drawn).
    posterior : xarray.DataTree
        From :func:`bgmm.bayes.sample_posterior` (its ``membership`` group).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    _check_two_features(data, "plot_membership_uncertainty")
    m = posterior["membership"].to_dataset()
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    X = np.asarray(data.values)
    sc = ax.scatter(X[:, 0], X[:, 1], c=m["entropy"].values, s=14, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="membership entropy (nats)")
    ax.set_xlabel(data.feature_names[0])
    ax.set_ylabel(data.feature_names[1])
    ax.set_title("Uncertainty of cluster membership")
    return fig


def plot_em_trace(em):
    r""":math:`\ln p(X \mid \theta)` and the bound :math:`\mathcal{L}(q, \theta)` per EM iteration.

    Parameters
    ----------
    em : EMResult
        The EM fit (its ``history``).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    h = em.history_frame()
    ax.plot(h.index, h["log_likelihood"], marker="o", ms=3, label="ln p(X | θ)")
    ax.plot(h.index, h["lower_bound"], ls="--", label="L(q, θ)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("log-likelihood (sum over samples)")
    ax.legend()
    return fig


def plot_select_k(table):
    """EM criteria and LOO information criterion (deviance scale) against K.

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`bgmm.selection.select_k`.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for column in ("bic", "aic", "icl"):
        ax.plot(table.index, table[column], marker="o", label=column.upper())
    if "looic" in table:
        # LOOIC = -2 elpd_loo, so the standard error of its difference from the best K is
        # 2 dse; the bars span ± 2 such standard errors.
        ax.errorbar(
            table.index,
            table["looic"],
            yerr=2 * 2 * table["dse"],
            marker="s",
            capsize=3,
            label="LOOIC ± 2 SE of the difference from the best",
        )
    ax.set_xlabel("number of components K")
    ax.set_ylabel("criterion (lower is better)")
    ax.set_xticks(list(table.index))
    ax.legend()
    return fig


def plot_n_clusters(posterior):
    r"""Bar plot of the posterior of the number of non-empty components :math:`K_+`.

    Parameters
    ----------
    posterior : xarray.DataTree
        From :func:`bgmm.bayes.sample_posterior` with a sparse prior (its ``n_clusters``
        group), or the Dataset of :func:`bgmm.bayes.n_clusters`.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    ds = posterior["n_clusters"].to_dataset() if hasattr(posterior, "children") else posterior
    values, probability = ds["n_clusters"].values, ds["probability"].values
    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.add_subplot()
    bars = ax.bar(values, probability, color="C0")
    bars[int(probability.argmax())].set_color("C1")
    ax.set_xticks(values)
    ax.set_xlabel("number of non-empty components $K_+$")
    ax.set_ylabel("posterior probability")
    ax.set_ylim(0, 1)
    ax.set_title(f"sparse finite mixture: most probable $K_+$ = {int(ds.attrs['mode'])}")
    return fig


def plot_bic(table, criterion: str = "bic"):
    """The BIC plot of mclust: the criterion over K, one line per covariance family.

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`bgmm.selection.select_model`.
    criterion : {"bic", "icl", "aic"}, default "bic"
        The criterion to draw (lower is better; mclust draws its negative).

    Returns
    -------
    matplotlib.figure.Figure
        The figure; the best cell is circled.
    """
    from bgmm.selection import bic_table

    wide = bic_table(table, criterion)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    markers = "osD^v<>pPX*hH8"
    for j, family in enumerate(wide.columns):
        ax.plot(wide.index, wide[family], marker=markers[j % len(markers)], label=family)
    if wide.notna().any().any():
        k, family = table[criterion].idxmin()
        ax.plot([k], [wide.loc[k, family]], "o", ms=16, mfc="none", mec="black")
        ax.set_title(f"best: K = {k}, {family}")
    ax.set_xlabel("number of components K")
    ax.set_ylabel(f"{criterion.upper()} (lower is better)")
    ax.set_xticks(list(wide.index))
    ax.legend(ncols=2, fontsize="small", title="family")
    return fig


def save_plot_collection(pc, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save an arviz-plots PlotCollection atomically (as :func:`save_figure`).

    Parameters
    ----------
    pc : arviz_plots.PlotCollection
        The plot.
    path : str or path-like
        The image file; missing folders are created.
    dpi : int, default 120
        Resolution.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: pc.savefig(tmp, dpi=dpi))
