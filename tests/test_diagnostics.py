"""The posterior checks on constructed samples, where the right answer is known."""

import json

import numpy as np
import pytest
import xarray as xr

from bgmm.diagnostics import AMBIGUOUS_MARGIN, Diagnostics, diagnose


def make_tree(seed=0, n_chains=4, n_draws=400, n_obs=200, weights=(0.4, 0.6)):
    """iid draws around one mode: what a clean, well-mixed sample looks like."""
    rng = np.random.default_rng(seed)
    k, d = len(weights), 2
    shape = (n_chains, n_draws)
    w = rng.dirichlet(np.asarray(weights) * n_obs, size=shape)
    means = np.array([[0.0, 0.0], [5.0, 3.0]])[:k] + 0.1 * rng.normal(size=(*shape, k, d))
    a = 0.1 * rng.normal(size=(*shape, k, d, d))
    cov = np.eye(d) + 0.5 * (a + np.swapaxes(a, -1, -2))
    coords = {
        "chain": np.arange(n_chains),
        "draw": np.arange(n_draws),
        "component": np.arange(k),
        "feature": ["a", "b"],
        "feature_bis": ["a", "b"],
    }
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), w),
            "means": (("chain", "draw", "component", "feature"), means),
            "covariances": (("chain", "draw", "component", "feature", "feature_bis"), cov),
        },
        coords=coords,
    )
    ll = -300.0 + rng.normal(size=(*shape, n_obs)) * 0.1
    stats = xr.Dataset(
        {
            "diverging": (("chain", "draw"), np.zeros(shape, bool)),
            "energy": (("chain", "draw"), rng.normal(size=shape) * 3 + 100),
            "maxdepth_reached": (("chain", "draw"), np.zeros(shape, bool)),
        },
        coords={"chain": coords["chain"], "draw": coords["draw"]},
    )
    return {
        "posterior": posterior,
        "sample_stats": stats,
        "log_likelihood": xr.Dataset({"x": (("chain", "draw", "obs_id"), ll)}),
        "observed_data": xr.Dataset({"x": (("obs_id", "feature"), np.zeros((n_obs, d)))}),
        "relabeling": xr.Dataset(
            {"cost_margin": (("chain", "draw"), 10.0 + rng.uniform(size=shape))}
        ),
    }


def run(groups):
    return diagnose(xr.DataTree.from_dict(groups))


def test_a_clean_sample_has_no_findings():
    diag = run(make_tree())
    assert diag.clean and diag.single_mode and diag.message() == ""
    ds = diag.dataset
    assert set(ds["variable"].values) == {"weights", "means", "covariances"}
    assert float(ds["r_hat"].max()) < 1.01 and float(ds["ess_bulk_per_chain"].min()) > 100
    assert ds.attrs["clean"] == 1 and json.loads(ds.attrs["findings"]) == []


def test_a_chain_in_another_place_is_not_a_single_mode():
    groups = make_tree()
    groups["posterior"]["means"][1] += 1.0  # chain 1 sits a whole unit away
    diag = run(groups)
    assert diag.findings[0].check == "r_hat_modes"  # then the ESS it costs
    assert not diag.single_mode
    assert "not a single mode" in diag.message() and "What to try" in diag.message()


def test_a_slightly_high_rhat_is_unreliable_not_multimodal():
    groups = make_tree()
    groups["posterior"]["means"][1] += 0.012  # a small shift: r_hat just above 1.01
    diag = run(groups)
    assert [f.check for f in diag.findings] == ["r_hat"], diag.message()
    assert diag.single_mode and not diag.clean


def test_a_chain_that_empties_a_component():
    groups = make_tree(n_obs=200)
    w = groups["posterior"]["weights"].values
    w[2, :100] = [[1.0 - 1e-4, 1e-4]] * 100  # a quarter of chain 2: weight ~ 1e-4 < 1/N
    diag = run(groups)
    checks = [f.check for f in diag.findings]
    assert "vanishing" in checks and not diag.single_mode
    share = diag.dataset["vanishing_share"]
    assert float(share.sel(chain=2, component=1)) == pytest.approx(0.25)
    assert float(share.sel(chain=0).max()) == 0.0
    assert "component 1 in chain 2 (25% of draws)" in diag.message()


def test_short_chains_have_too_few_effective_draws():
    diag = run(make_tree(n_draws=60))
    assert "ess" in [f.check for f in diag.findings]  # (r_hat is noisy too, short of 1.1)
    assert diag.single_mode


def test_log_likelihood_modes_divergences_energy_depth_and_ambiguous_labels():
    groups = make_tree()
    groups["log_likelihood"]["x"][1] -= 0.1  # chain 1 lower by 20 nats in total
    stats = groups["sample_stats"]
    stats["diverging"][0, :7] = True
    energy = np.cumsum(np.random.default_rng(1).normal(size=(4, 400)), axis=1)  # random walk
    stats["energy"] = (("chain", "draw"), energy)
    stats["maxdepth_reached"][3, :100] = True
    groups["relabeling"]["cost_margin"][2, :50] = AMBIGUOUS_MARGIN / 2
    diag = run(groups)
    checks = {f.check for f in diag.findings}
    assert checks == {"modes", "divergences", "e_bfmi", "tree_depth", "label_switching"}
    assert not diag.single_mode
    ds = diag.dataset
    assert ds["divergences"].values.tolist() == [7, 0, 0, 0]
    assert float(ds["tree_depth_share"].sel(chain=3)) == pytest.approx(0.25)
    assert float(ds["ambiguous_share"].sel(chain=2)) == pytest.approx(0.125)
    assert float(ds["e_bfmi"].max()) < 0.3
    message = diag.message()
    assert "7 divergent transitions (per chain: [7, 0, 0, 0])" in message
    assert "sit in different modes" in message


def test_divergences_alone_are_unreliable_not_multimodal():
    groups = make_tree()
    groups["sample_stats"]["diverging"][0, :3] = True
    diag = run(groups)
    assert [f.check for f in diag.findings] == ["divergences"] and diag.single_mode


def test_findings_survive_the_dataset():
    groups = make_tree()
    groups["posterior"]["means"][1] += 1.0
    diag = run(groups)
    again = Diagnostics.from_dataset(diag.dataset)
    assert again.findings == diag.findings and not again.single_mode


def test_a_sparse_prior_empties_components_on_purpose():
    groups = make_tree(n_obs=200)
    w = groups["posterior"]["weights"].values
    w[:, :, 1] = 1e-6  # component 1 empty in every chain: the sparse prior's intent
    groups["posterior"]["means"][:, :, 1] = np.random.default_rng(5).normal(
        scale=10, size=(4, 400, 2)
    )  # its mean a prior draw
    assert "vanishing" in {f.check for f in run(groups).findings}
    diag = diagnose(xr.DataTree.from_dict(groups), sparse=True)
    assert diag.clean, diag.message()
    assert float(diag.dataset["vanishing_share"].sel(component=1).min()) == 1.0
    # chains that emptied different components: nothing is left out, and r_hat shows it
    w[:2, :, 0], w[:2, :, 1] = 1e-6, 0.6
    diag = diagnose(xr.DataTree.from_dict(groups), sparse=True)
    assert not diag.single_mode
