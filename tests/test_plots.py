import dataclasses
import itertools
import json
import math
import warnings

import matplotlib
import numpy as np
import pytest
import xarray as xr
from arviz_base import rcParams as az_rcparams
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse
from scipy import stats

from bgmm import GMMParams, as_data, fit_em, plots, simulate
from bgmm.em import StandardErrors, standard_errors
from bgmm.selection import select_k
from tests.conftest import make_params

matplotlib.use("Agg")

PNG = b"\x89PNG\r\n\x1a\n"


def test_comparison_plots_are_written_without_warnings(tmp_path, tree, simulated):
    sim, em = simulated
    se = standard_errors(em.params, sim.data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written = [
            plots.save_plot_collection(
                plots.plot_posterior_with_em(tree, em), tmp_path / "dist.png"
            ),
            plots.save_plot_collection(
                plots.plot_forest_em(tree, em, se), tmp_path / "forest.png"
            ),
            plots.save_plot_collection(plots.plot_rank(tree), tmp_path / "rank.png"),
            plots.save_figure(
                plots.plot_ellipses_with_draws(sim.data, em, tree), tmp_path / "ellipses.png"
            ),
            plots.save_figure(
                plots.plot_membership_uncertainty(sim.data, tree), tmp_path / "membership.png"
            ),
            plots.save_figure(plots.plot_em_trace(em), tmp_path / "trace.png"),
        ]
    for path in written:
        content = path.read_bytes()
        assert content[:8] == PNG and len(content) > 5_000, path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)


def test_select_k_plot(tmp_path, simulated):
    sim, _ = simulated
    table = select_k(sim.data, [1, 2], random_state=0, loo=False)
    path = plots.save_figure(plots.plot_select_k(table), tmp_path / "k.png")
    assert path.read_bytes()[:8] == PNG


def test_failed_save_leaves_nothing(tmp_path):
    class Broken:
        def savefig(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        plots.save_figure(Broken(), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_forest_plot_is_on_the_scale_of_em_standard_errors(tree, simulated):
    import numpy as np

    sim, em = simulated
    se = standard_errors(em.params, sim.data)
    scaled_post, scaled_em = plots._standardised_draws(tree, em, se, ("weights", "means"))
    post = tree["posterior"]["means"].values
    expected = (post[..., 1, 0] - em.means[1, 0]) / se.means[1, 0]
    np.testing.assert_allclose(scaled_post["posterior"]["means"].values[..., 1, 0], expected)
    # EM's stand-in draws are standard normal quantiles: intervals exactly [-1, 1], [-2, 2]
    z = scaled_em["posterior"]["weights"].values[..., 0].ravel()
    assert abs(z.mean()) < 1e-12 and abs(np.quantile(z, 0.8413) - 1.0) < 0.02
    pc = plots.plot_forest_em(tree, em, se)
    forest = pc.viz["plot"].sel(column="forest").item()
    assert forest.get_xlabel().startswith("(θ − θ̂ EM) / SE")
    assert forest.get_figure().legends, "a legend tells MCMC from EM"


def test_scatter_plots_need_two_features():
    import numpy as np

    from bgmm import GMMParams, as_data

    data = as_data(np.arange(10.0)[:, None])
    params = GMMParams.from_arrays([1.0], [[4.5]], [[[8.25]]])
    with pytest.raises(
        ValueError, match="plot_fit draws the first two features, but the data have 1"
    ):
        plots.plot_fit(data, params)


# --------------------------------------------------------------------------------------
# Figures that scale with the number of features d and of components K, a page at a time
# --------------------------------------------------------------------------------------

#: The features of the wine data (UCI): long names, and one with a '/' (which a DataTree
#: refuses in a variable's name).
WINE = (
    "Alcohol",
    "Malic_acid",
    "Ash",
    "Alcalinity_of_ash",
    "Magnesium",
    "Total_phenols",
    "Flavanoids",
    "Nonflavanoid_phenols",
    "Proanthocyanins",
    "Color_intensity",
    "Hue",
    "OD280/OD315_of_diluted_wines",
    "Proline",
)


def synthetic_posterior(em, n_obs, *, chains=2, draws=60, seed=0):
    """Draws shaped and labelled as sample_posterior's, scattered around the EM fit.

    Weights from a Dirichlet, means from normals and covariances from Wisharts centred on
    the EM estimate: no sampler, so that 13 features cost nothing. The covariance family
    is recorded in the attributes as sample_posterior records it.
    """
    p = em.params
    k, d = p.n_components, p.n_features
    rng = np.random.default_rng(seed)
    n = chains * draws
    n_k = np.maximum(n_obs * np.asarray(p.weights), d + 2)
    weights = rng.dirichlet(n_obs * np.asarray(p.weights), size=n)
    spread = np.sqrt(np.diagonal(p.covariances, axis1=1, axis2=2) / n_k[:, None])
    means = np.asarray(p.means) + rng.normal(size=(n, k, d)) * spread
    covariances = np.stack(
        [
            stats.wishart(df=n_k[c], scale=p.covariances[c] / n_k[c]).rvs(n, random_state=rng)
            for c in range(k)
        ],
        axis=1,
    ).reshape(n, k, d, d)
    if em.covariance_type == "VVI":  # the diagonal family: no correlation
        covariances = covariances * np.eye(d)
    features = list(em.feature_names)
    sample = (chains, draws)
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), weights.reshape(*sample, k)),
            "means": (("chain", "draw", "component", "feature"), means.reshape(*sample, k, d)),
            "covariances": (
                ("chain", "draw", "component", "feature", "feature_bis"),
                covariances.reshape(*sample, k, d, d),
            ),
        },
        coords={
            "chain": np.arange(chains),
            "draw": np.arange(draws),
            "component": np.arange(k),
            "feature": features,
            "feature_bis": features,
        },
    )
    tree = xr.DataTree.from_dict({"posterior": posterior})
    tree.attrs["bgmm_settings"] = json.dumps({"covariance_type": em.covariance_type})
    return tree


def synthetic_standard_errors(em):
    """A StandardErrors of the right shapes: 5% of each value plus 0.01, independent."""
    p = em.params
    theta = np.concatenate([p.weights, p.means.ravel(), p.covariances.ravel()])
    se = 0.05 * np.abs(theta) + 0.01
    k, d = p.n_components, p.n_features
    return StandardErrors(
        weights=se[:k],
        means=se[k : k + k * d].reshape(k, d),
        covariances=se[k + k * d :].reshape(k, d, d),
        covariance=np.diag(se**2),
        information=np.eye(1),
    )


@pytest.fixture(scope="module")
def wine_like():
    """13 features named as the wine data's, K = 3: data, EM, a posterior and SEs."""
    sim = simulate(make_params(3, 13, seed=1), 400, random_state=2, feature_names=WINE)
    em = fit_em(sim.data, 3, random_state=0)
    return sim.data, em, synthetic_posterior(em, 400), synthetic_standard_errors(em)


def n_scalars(k, d):
    """Weights, means, sds and correlations of a full-covariance fit."""
    return k + 2 * k * d + k * d * (d - 1) // 2


def figure_of(drawn):
    return drawn.get_viz("figure") if hasattr(drawn, "get_viz") else drawn


def text_overlaps(fig):
    """Titles, axis labels and tick labels of different axes whose boxes intersect."""
    renderer = agg_renderer(fig)
    boxes = []
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        texts = [ax.title, ax.xaxis.label, ax.yaxis.label]
        texts += drawn_tick_labels(ax.xaxis) + drawn_tick_labels(ax.yaxis)
        boxes += [
            (ax, t.get_text(), t.get_window_extent(renderer))
            for t in texts
            if t.get_visible() and t.get_text().strip()
        ]
    return [
        (a, b)
        for (ax_a, a, box_a), (ax_b, b, box_b) in itertools.combinations(boxes, 2)
        if ax_a is not ax_b and box_a.overlaps(box_b)
    ]


def drawn_tick_labels(axis):
    """The tick labels a draw shows: visible, at a tick inside the view.

    The locator also places ticks just outside the view, whose labels are set but not drawn.
    """
    low, high = sorted(axis.get_view_interval())
    slack = 1e-9 * max(1.0, high - low)
    return [
        tick.label1
        for tick in axis.get_major_ticks()
        if tick.label1.get_visible() and low - slack <= tick.get_loc() <= high + slack
    ]


def agg_renderer(fig):
    """Draw ``fig`` on an Agg canvas (a bare Figure has none yet); its renderer."""
    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def legend_texts(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def panels(fig):
    """The axes that draw something (ArviZ switches off the spare cells of its grid)."""
    return [ax for ax in fig.axes if ax.axison]


def test_the_overlap_check_sees_overlapping_titles():
    # The layout tests below rest on text_overlaps: it must be able to fail.
    fig = Figure(figsize=(3, 2))
    for i, ax in enumerate(fig.subplots(2, 2).ravel()):
        ax.set_title(f"a title too long for its panel {i}")
    assert text_overlaps(fig)


def test_sd_and_corr_are_square_roots_and_scaled_covariances(wine_like):
    _, em, tree, _ = wine_like
    post = tree["posterior"].to_dataset()
    out = plots.scale_and_correlation(post)
    assert "covariances" not in out and {"weights", "means", "sd", "corr"} <= set(out)
    assert out["sd"].dims == ("chain", "draw", "component", "feature")
    assert out["corr"].dims == ("chain", "draw", "component", "feature_pair")
    cov = post["covariances"].values[1, 7, 2]  # chain 1, draw 7, component 2
    for j in range(13):
        assert out["sd"].values[1, 7, 2, j] == pytest.approx(np.sqrt(cov[j, j]), rel=1e-14)
    pairs = list(itertools.combinations(range(13), 2))  # i < j, the upper triangle
    assert out.sizes["feature_pair"] == len(pairs) == 78
    for p, (i, j) in enumerate(pairs):
        assert out["feature_pair"].values[p] == f"{WINE[i]}~{WINE[j]}"
        assert out["corr"].values[1, 7, 2, p] == pytest.approx(
            cov[i, j] / np.sqrt(cov[i, i] * cov[j, j]), rel=1e-12
        )
    # EM's estimate alike (no sample dims)
    est = plots.scale_and_correlation(em.params.to_dataset(em.feature_names))
    np.testing.assert_allclose(
        est["sd"].values, np.sqrt(np.diagonal(em.covariances, axis1=1, axis2=2)), rtol=1e-14
    )
    c = em.covariances[0]
    assert est["corr"].sel(component=0, feature_pair="Ash~Proline").item() == pytest.approx(
        c[2, 12] / np.sqrt(c[2, 2] * c[12, 12]), rel=1e-12
    )
    assert "feature_bis" not in est.coords


def test_standard_errors_of_sd_and_corr_by_the_delta_method(simulated, tree):
    from bgmm.compare import em_dataset

    sim, em = simulated
    se = standard_errors(em.params, sim.data)
    ds = em_dataset(em, standard_error=se)
    out = plots.scale_and_correlation(ds, se)
    k, d = em.means.shape
    sd = np.sqrt(np.diagonal(em.covariances, axis1=1, axis2=2))
    # sd: SE(Sigma_jj) / (2 sd_j)
    np.testing.assert_allclose(
        out["sd_se"].values, np.diagonal(se.covariances, axis1=1, axis2=2) / (2 * sd)
    )
    # corr: the gradient by central differences of scale_and_correlation itself, every
    # entry of every covariance moved alone, against the covariance of all the entries
    start = k + k * d
    block = se.covariance[start:, start:]
    jac = np.zeros((k * d * (d - 1) // 2, k * d * d))
    h = 1e-6
    for flat in range(k * d * d):
        moved = []
        for step in (h, -h):
            cov = em.covariances.copy()
            cov.reshape(-1)[flat] += step
            moved.append(
                plots.scale_and_correlation(ds.assign(covariances=(ds["covariances"].dims, cov)))[
                    "corr"
                ].values.ravel()
            )
        jac[:, flat] = (moved[0] - moved[1]) / (2 * h)
    expected = np.sqrt(np.diag(jac @ block @ jac.T)).reshape(k, -1)
    np.testing.assert_allclose(out["corr_se"].values, expected, rtol=1e-5)
    assert (out["corr_se"].values > 0).all()
    # the forest plot's scale for sd: (posterior - EM) / SE by the delta method
    scaled_post, _ = plots._standardised_draws(tree, em, se, ("sd", "corr"))
    post_sd = np.sqrt(tree["posterior"]["covariances"].values[..., 1, 0, 0])
    np.testing.assert_allclose(
        scaled_post["posterior"]["sd"].values[..., 1, 0],
        (post_sd - sd[1, 0]) / out["sd_se"].values[1, 0],
    )


def test_standard_errors_need_one_estimate(wine_like):
    _, _, tree, se = wine_like
    with pytest.raises(ValueError, match="one estimate"):
        plots.scale_and_correlation(tree["posterior"].to_dataset(), se)


def test_comparison_pages_of_13_features(wine_like):
    _, em, tree, se = wine_like
    pages = plots.comparison_pages(tree, em, se)
    n_pages = math.ceil(n_scalars(3, 13) / plots.PER_PAGE)  # 315 scalars: 14 pages
    assert n_pages == 14
    for kind in ("posterior_vs_em", "forest", "rank"):
        names = [p.name for p in pages if p.name.startswith(kind)]
        assert names == [f"{kind}-{i}.png" for i in range(1, n_pages + 1)]
    assert len(pages) == 3 * n_pages
    assert "page 1 of 14: weights[0] to " in pages[0].caption
    last = pages[n_pages - 1].caption
    assert last.endswith("to corr[2, OD280/OD315_of_diluted_wines~Proline])")
    # without standard errors (or with missing ones) there is no forest plot
    assert not any(p.name.startswith("forest") for p in plots.comparison_pages(tree, em))
    missing = StandardErrors.missing(3, 13, "singular")
    assert not any(p.name.startswith("forest") for p in plots.comparison_pages(tree, em, missing))
    assert plots.PER_PAGE <= az_rcparams["plot.max_subplots"]
    with pytest.raises(ValueError, match="per_page"):
        plots.comparison_pages(tree, em, se, per_page=az_rcparams["plot.max_subplots"] + 1)


@pytest.mark.parametrize("which", ["first", "last"])
def test_pages_of_13_features_draw_and_save(tmp_path, wine_like, which):
    import matplotlib.pyplot as plt

    _, em, tree, se = wine_like
    pages = plots.comparison_pages(tree, em, se)
    n = len(pages) // 3
    index = 0 if which == "first" else n - 1
    chosen = [pages[index], pages[n + index], pages[2 * n + index]]
    open_before = plt.get_fignums()
    sizes = []
    for page in chosen:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            drawn = page.draw()
            path = plots.save_figure(drawn, tmp_path / page.name)
        content = path.read_bytes()
        assert content[:8] == PNG and len(content) > 5_000, page.name
        fig = figure_of(drawn)
        n_panels = len(panels(fig))
        if page.name.startswith("forest"):
            sizes.append(len(fig.axes[1].get_yticklabels()))
        else:
            assert n_panels <= plots.PER_PAGE <= az_rcparams["plot.max_subplots"]
            sizes.append(n_panels)
            assert not text_overlaps(fig), page.name
    # the same parameters on the three kinds of page: near-equal pages (315 = 7 x 22 + 7 x 23)
    assert sizes[0] == sizes[1] == sizes[2] in (22, 23)
    assert plt.get_fignums() == open_before, "pages leave nothing open in pyplot"


@pytest.mark.slow
def test_every_page_of_13_features_draws_and_saves(tmp_path, wine_like):
    data, em, tree, se = wine_like
    pages = plots.comparison_pages(tree, em, se) + plots.data_pages(data, em.params)
    total = 0
    for page in pages:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            drawn = page.draw()
            path = plots.save_figure(drawn, tmp_path / page.name)
        assert len(path.read_bytes()) > 5_000, page.name
        fig = figure_of(drawn)
        if page.name.startswith(("posterior_vs_em", "rank")):
            total += len(panels(fig))
            assert len(panels(fig)) <= plots.PER_PAGE
            assert not text_overlaps(fig), page.name
    assert total == 2 * n_scalars(3, 13)


def test_legends_name_em_and_the_chains(wine_like):
    _, em, tree, se = wine_like
    params = ["means[0, Alcohol]", "sd[1, Hue]", "corr[2, Ash~Proline]"]
    dist = figure_of(plots.plot_posterior_with_em(tree, em, COMPARED, parameters=params))
    assert "EM estimate" in legend_texts(dist)
    assert [ax.get_title() for ax in panels(dist)] == params
    rank = figure_of(plots.plot_rank(tree, COMPARED, parameters=params))
    assert {"0", "1"} <= set(legend_texts(rank))
    assert [legend.get_title().get_text() for legend in rank.legends] == ["chain"]
    forest = figure_of(plots.plot_forest_em(tree, em, se, COMPARED, parameters=params))
    assert {"MCMC", "EM"} <= set(legend_texts(forest))
    with pytest.raises(ValueError, match="not among"):
        plots.plot_rank(tree, COMPARED, parameters=["sd[7, Hue]"])


COMPARED = plots.COMPARED_VARIABLES


def test_too_many_panels_say_how_to_page(wine_like):
    _, em, tree, _ = wine_like
    # weights and means of 13 features and 3 components: 42 panels, as in issue 13
    with pytest.raises(ValueError, match=r"max_subplots.*comparison_pages"):
        plots.plot_posterior_with_em(tree, em)


def test_forest_has_no_empty_width(tree, simulated):
    sim, em = simulated
    se = standard_errors(em.params, sim.data)
    fig = figure_of(plots.plot_forest_em(tree, em, se, COMPARED))
    renderer = agg_renderer(fig)
    dpi = fig.dpi
    forest = fig.axes[1]
    ticks = [t for t in forest.get_yticklabels() if t.get_text()]
    assert {t.get_text() for t in ticks} >= {"weights[0]", "means[1, b]", "corr[1, a~b]"}
    assert len(ticks) == n_scalars(2, 2)
    labels = [t.get_window_extent(renderer) for t in ticks]
    left = min(box.x0 for box in labels) / dpi
    gap = (forest.get_window_extent(renderer).x0 - max(box.x1 for box in labels)) / dpi
    assert left < 0.4, "the labels start at the figure's left edge"
    assert gap < 0.3, "and end at the intervals"
    width = fig.get_size_inches()[0]
    assert forest.get_window_extent(renderer).x1 / dpi > width - 0.4


def test_two_features_give_one_page_each(tmp_path, tree, simulated):
    sim, em = simulated
    se = standard_errors(em.params, sim.data)
    pages = plots.comparison_pages(tree, em, se)
    assert [p.name for p in pages] == ["posterior_vs_em.png", "forest.png", "rank.png"]
    data = plots.data_pages(sim.data, em.params, em.resp.argmax(axis=1))
    assert [p.name for p in data] == ["em_fit.png"]
    for page in pages + data:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            drawn = page.draw()
            plots.save_figure(drawn, tmp_path / page.name)
        fig = figure_of(drawn)
        if page.name in ("posterior_vs_em.png", "rank.png"):
            # 2 weights, 4 means, 4 sds, 2 correlations
            assert len(panels(fig)) == n_scalars(2, 2) == 12
            assert not text_overlaps(fig), page.name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in pages + data)


def test_covariance_family_leaves_out_fixed_and_repeated_entries(simulated):
    # The session's fit with its covariances made diagonal or tied (the pages read only
    # the parameters, the family and the feature names).
    _, em = simulated
    diagonal = GMMParams.from_arrays(em.weights, em.means, em.covariances * np.eye(2))
    diag = dataclasses.replace(em, params=diagonal, covariance_type="VVI")
    tree = synthetic_posterior(diag, 150, draws=40)
    pages = plots.comparison_pages(tree, diag)
    assert [p.name for p in pages] == ["posterior_vs_em.png", "rank.png"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drawn = pages[0].draw()  # constant correlations would have no density to draw
    titles = [ax.get_title() for ax in panels(figure_of(drawn))]
    assert titles[-4:] == ["sd[0, a]", "sd[0, b]", "sd[1, a]", "sd[1, b]"]
    assert len(titles) == 2 + 4 + 4 and not any(t.startswith("corr") for t in titles)
    # tied: one covariance for all the components, so one component's sds and correlations
    shared = np.broadcast_to(em.covariances[0], em.covariances.shape)
    tied = dataclasses.replace(
        em, params=GMMParams.from_arrays(em.weights, em.means, shared), covariance_type="EEE"
    )
    post = plots.scale_and_correlation(synthetic_posterior(tied, 150)["posterior"].to_dataset())
    labels = [s.label for s in plots._scalars(post, COMPARED, "EEE")]
    assert labels[-3:] == ["sd[0, a]", "sd[0, b]", "corr[0, a~b]"]
    assert len(labels) == 2 + 4 + 3


@pytest.mark.parametrize(("per_page", "n_pages"), [(plots.PAIRS_FEATURES, 1), (2, 6)])
def test_pairs_plot_draws_every_pair_once_with_ellipses(tmp_path, per_page, n_pages):
    names = [f"feature {j}" for j in range(5)]
    truth = make_params(2, 5, seed=2)
    sim = simulate(truth, 200, random_state=3, feature_names=names)
    pages = plots.data_pages(sim.data, truth, sim.labels, per_page=per_page)
    # ceil(5 / 2) = 3 blocks (2, 2, 1 features): 3 x 4 / 2 = 6 pages
    expected = ["em_fit.png"] if n_pages == 1 else [f"em_fit-{i}.png" for i in range(1, 7)]
    assert [p.name for p in pages] == expected
    pairs, diagonal = [], []
    for page in pages:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fig = page.draw()
            path = plots.save_figure(fig, tmp_path / page.name)
        assert len(path.read_bytes()) > 5_000
        assert not text_overlaps(fig)
        for ax in fig.axes:
            if any(isinstance(c, PathCollection) for c in ax.collections):
                ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
                assert len(ellipses) == 2 * 2, "1 and 2 sd, each component"
                pairs.append((ax.get_xlabel(), ax.get_ylabel()))
            else:
                diagonal.append(ax)
    assert len(pairs) == 5 * 4 // 2
    assert len(diagonal) == 5
    if n_pages == 1:  # the axis labels of a triangle: columns below, rows on the left
        assert {x for x, _ in pairs} - {""} == set(names[:4])
        assert {y for _, y in pairs} - {""} == set(names[1:])


def test_one_feature_gets_a_histogram_with_the_component_densities(tmp_path):
    data = as_data(np.r_[np.linspace(-3, -1, 30), np.linspace(2, 5, 40)][:, None])
    params = GMMParams.from_arrays([0.4, 0.6], [[-2.0], [3.5]], [[[0.4]], [[0.8]]])
    (page,) = plots.data_pages(data, params)
    assert page.name == "em_fit.png"
    fig = page.draw()
    assert len(fig.axes[0].lines) == 3  # two components and the mixture
    assert {"component 0", "component 1", "mixture density"} <= set(legend_texts(fig))
    assert plots.save_figure(fig, tmp_path / page.name).read_bytes()[:8] == PNG


def test_save_figure_takes_a_plot_collection(tmp_path, tree):
    path = plots.save_figure(plots.plot_rank(tree), tmp_path / "rank.png")
    assert path.read_bytes()[:8] == PNG
