import warnings

import matplotlib
import pytest

from bgmm import plots
from bgmm.em import standard_errors
from bgmm.selection import select_k

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
