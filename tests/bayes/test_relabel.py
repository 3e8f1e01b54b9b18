import itertools

import numpy as np
import xarray as xr

from bgmm.bayes import assignment_costs, match_to_reference, relabel_dataset
from tests.conftest import make_params


def switched_draws(k=3, n_chain=2, n_draw=50, seed=0):
    """Draws around a reference whose labels are permuted differently in every draw."""
    ref = make_params(k, 2, seed=seed, spread=8.0)
    rng = np.random.default_rng(seed)
    perms = np.array([rng.permutation(k) for _ in range(n_chain * n_draw)])
    means = ref.means[perms] + rng.normal(scale=0.05, size=(len(perms), k, 2))
    weights = ref.weights[perms]
    return ref, perms, means, weights


def test_hungarian_match_undoes_label_switching():
    ref, perms, means, _ = switched_draws()
    source, cost, margin = match_to_reference(assignment_costs(means, ref))
    # the sampled component that came from reference component j is perms[s] == j
    np.testing.assert_array_equal(source, np.argsort(perms, axis=1))
    assert np.all(margin > 10 * cost)


def test_margin_is_next_best_permutation_cost():
    rng = np.random.default_rng(1)
    costs = rng.uniform(size=(20, 4, 4))
    _, best, margin = match_to_reference(costs)
    for s in range(20):
        totals = sorted(
            sum(costs[s, p[j], j] for j in range(4)) for p in itertools.permutations(range(4))
        )
        np.testing.assert_allclose(best[s], totals[0])
        np.testing.assert_allclose(margin[s], totals[1] - totals[0])


def test_relabel_dataset_restores_reference_order_and_rhat():
    import arviz_stats as azs

    # The realistic failure: each chain keeps one labelling, but the chains disagree.
    ref = make_params(2, 2, seed=0, spread=8.0)
    rng = np.random.default_rng(0)
    perms = np.array([[0, 1]] * 200 + [[1, 0]] * 200)
    means = ref.means[perms] + rng.normal(scale=0.05, size=(400, 2, 2))
    weights = ref.weights[perms]
    shape = (2, 200)
    ds = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), weights.reshape(*shape, 2)),
            "means": (("chain", "draw", "component", "feature"), means.reshape(*shape, 2, 2)),
        },
        coords={"chain": [0, 1], "draw": np.arange(200), "component": [0, 1]},
    )
    source, _, _ = match_to_reference(assignment_costs(means, ref))
    src = xr.DataArray(source.reshape(*shape, 2), dims=("chain", "draw", "component"))
    out = relabel_dataset(ds, src)
    np.testing.assert_allclose(out["means"].mean(("chain", "draw")), ref.means, atol=0.02)
    assert out["means"].dims == ds["means"].dims
    before = float(azs.rhat(ds[["means"]], sample_dims=["chain", "draw"])["means"].max())
    after = float(azs.rhat(out[["means"]], sample_dims=["chain", "draw"])["means"].max())
    assert after < 1.05 and before > 1.5
