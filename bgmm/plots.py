"""Matplotlib figures of data and fitted components."""

from __future__ import annotations

import os
from pathlib import Path

import arviz_plots as azp
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse
from scipy import stats

from bgmm._files import atomic_write
from bgmm.data import GMMData
from bgmm.exceptions import InputValueError
from bgmm.params import GMMParams

__all__ = [
    "add_ellipses",
    "plot_ellipses_with_draws",
    "plot_em_trace",
    "plot_fit",
    "plot_forest_em",
    "plot_membership_uncertainty",
    "plot_posterior_with_em",
    "plot_rank",
    "plot_select_k",
    "plot_bic",
    "save_figure",
    "save_plot_collection",
]


def add_ellipses(ax, params: GMMParams, dims=(0, 1), n_std=(1.0, 2.0), **kwargs) -> None:
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
        ax.plot(*params.means[k, [i, j]], marker="x", color=colors[k % len(colors)], ms=10)


def _check_two_features(data: GMMData, what: str) -> None:
    if data.n_features < 2:
        raise InputValueError(
            f"{what} draws the first two features, but the data have {data.n_features}; "
            f"plot one feature with plot_posterior_with_em instead."
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


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save atomically: write a temporary file beside ``path``, then rename it into place.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
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
# EM against the posterior (arviz-plots where it has the plot, matplotlib otherwise)
# --------------------------------------------------------------------------------------

_SCALAR_VARS = ("weights", "means")


def _standardised_draws(posterior, em, standard_error, var_names) -> tuple:
    r"""Posterior draws and EM's normal approximation, both as :math:`(\theta - \hat\theta) / SE`.

    EM's stand-in draws are evenly spaced standard normal quantiles shaped like the
    posterior's (chain, draw), so that ArviZ's forest plot shows EM ± z SE with the same
    machinery (and the same interval probabilities) as the posterior. Entries whose SE is
    0 (the weight of a single component) are 0 in both.
    """
    from bgmm.compare import em_dataset

    post = posterior["posterior"].to_dataset()
    nc, nd = post.sizes["chain"], post.sizes["draw"]
    z = xr.DataArray(
        stats.norm.ppf((np.arange(nc * nd) + 0.5) / (nc * nd)).reshape(nc, nd),
        dims=("chain", "draw"),
        coords={"chain": post["chain"].values, "draw": post["draw"].values},
    )
    ds = em_dataset(em, standard_error=standard_error)
    scaled_post, scaled_em = {}, {}
    for name in var_names:
        se = ds[f"{name}_se"]
        ok = se > 0
        scaled_post[name] = xr.where(ok, (post[name] - ds[name]) / se.where(ok, 1.0), 0.0)
        scaled_em[name] = xr.where(ok, z + 0.0 * ds[name], 0.0)
    return _as_posterior(scaled_post), _as_posterior(scaled_em)


def _as_posterior(variables: dict) -> xr.DataTree:
    return xr.DataTree.from_dict(
        {"posterior": xr.Dataset(variables).transpose("chain", "draw", ...)}
    )


def plot_posterior_with_em(posterior, em, var_names=_SCALAR_VARS):
    """Posterior densities with the EM estimate drawn as reference lines.

    Parameters
    ----------
    posterior : xarray.DataTree
        From :func:`bgmm.bayes.sample_posterior`.
    em : EMResult or fitted GaussianMixtureEM
        The EM fit, labelled like the posterior.
    var_names : sequence of str, default ("weights", "means")
        Variables to draw.

    Returns
    -------
    arviz_plots.PlotCollection
        One panel per scalar parameter.
    """
    from bgmm.compare import em_dataset

    pc = azp.plot_dist(posterior, var_names=list(var_names), backend="matplotlib")
    azp.add_lines(pc, values=em_dataset(em)[list(var_names)])
    return pc


#: Probability of the normal interval mean ± 2 sd.
_TWO_SD = float(stats.norm.cdf(2.0) - stats.norm.cdf(-2.0))


def plot_forest_em(posterior, em, standard_error, var_names=_SCALAR_VARS):
    r"""Forest plot of the posterior against EM, in units of EM's standard error.

    Every parameter is drawn on the scale :math:`(\theta - \hat\theta) / \mathrm{SE}`, so
    that parameters of very different sizes share one axis and agreement reads directly:
    EM's intervals are exactly [-1, 1] and [-2, 2] (the normal approximation, 68.3% and
    95.4%), and the posterior's HDIs of the same probabilities sit near them when the two
    solvers agree. The posterior's point is then its mean's ``z`` and the width of its
    interval is ``1 / se_ratio`` of EM's (see :func:`bgmm.compare.compare`).

    Parameters
    ----------
    posterior : xarray.DataTree
        From :func:`bgmm.bayes.sample_posterior`.
    em : EMResult or fitted GaussianMixtureEM
        The EM fit, labelled like the posterior.
    standard_error : StandardErrors
        From :func:`bgmm.em.standard_errors`.
    var_names : sequence of str, default ("weights", "means")
        Variables to draw.

    Returns
    -------
    arviz_plots.PlotCollection
        The forest plot, one row per scalar parameter and solver, with a legend.
    """
    scaled_post, scaled_em = _standardised_draws(posterior, em, standard_error, var_names)
    pc = azp.plot_forest(
        {"MCMC": scaled_post, "EM": scaled_em},
        var_names=list(var_names),
        combined=True,
        ci_probs=(float(stats.norm.cdf(1.0) - stats.norm.cdf(-1.0)), _TWO_SD),
        backend="matplotlib",
    )
    pc.add_legend("model")
    forest = pc.viz["plot"].sel(column="forest").item()
    forest.axvline(0.0, color="0.6", lw=0.8, zorder=0)
    forest.set_xlabel("(θ − θ̂ EM) / SE EM")
    return pc


def plot_rank(posterior, var_names=_SCALAR_VARS):
    """Rank plots of the relabelled posterior (uniform when the chains agree).

    Parameters
    ----------
    posterior : xarray.DataTree
        From :func:`bgmm.bayes.sample_posterior`.
    var_names : sequence of str, default ("weights", "means")
        Variables to draw.

    Returns
    -------
    arviz_plots.PlotCollection
        One panel per scalar parameter.
    """
    return azp.plot_rank(posterior, var_names=list(var_names), backend="matplotlib")


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
