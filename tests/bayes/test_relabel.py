import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from bgmm.bayes import assignment_costs, match_to_reference, relabel_dataset
from bgmm.bayes.relabel import (
    Relabelling,
    ecr_iterative_relabel,
    ecr_relabel,
    stephens_relabel,
)
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


# --- whole-sample relabelling: Stephens (2000) and ECR (Papastamoulis & Iliopoulos 2010) ---

REFERENCE = Path(__file__).parent / "data" / "label_switching_reference.json"


def switched_memberships(k=3, n=60, n_draws=80, switching="draw", seed=0, sharp=0.9):
    """Noisy memberships and allocations of a known clustering, labels switched per draw.

    Sampled component j of draw s is true component ``perms[s, j]``. ``switching="chain"``
    gives two chains that each keep one labelling but disagree.
    """
    rng = np.random.default_rng(seed)
    truth = np.arange(n) % k
    rng.shuffle(truth)
    if switching == "draw":
        perms = np.array([rng.permutation(k) for _ in range(n_draws)])
    else:
        chain_perms = [rng.permutation(k), rng.permutation(k)]
        while np.array_equal(chain_perms[0], chain_perms[1]):
            chain_perms[1] = rng.permutation(k)
        perms = np.repeat(chain_perms, n_draws // 2, axis=0)
    base = np.full((n, k), (1 - sharp) / (k - 1))
    base[np.arange(n), truth] = sharp
    p_true = base + rng.uniform(0, 0.05, size=(len(perms), n, k))
    p_true /= p_true.sum(axis=-1, keepdims=True)
    z_true = (rng.uniform(size=(len(perms), n, 1)) > p_true.cumsum(axis=-1)).sum(axis=-1)
    probabilities = np.take_along_axis(p_true, perms[:, None, :], axis=2)
    allocations = np.take_along_axis(np.argsort(perms, axis=1), z_true, axis=1)
    return probabilities, allocations, truth, perms


def true_component_of_label(source, perms):
    """``[s, k]``: the true component that label k holds in draw s after relabelling."""
    return np.take_along_axis(perms, source, axis=1)


def assert_one_global_labelling(source, perms):
    composed = true_component_of_label(source, perms)
    assert np.all(np.sort(source, axis=1) == np.arange(source.shape[1]))
    np.testing.assert_array_equal(composed, np.broadcast_to(composed[0], composed.shape))


def relabel(source, values):
    """Reorder the component axis (the last) of per-draw values of shape (S, ..., K)."""
    idx = source.reshape(source.shape[:1] + (1,) * (values.ndim - 2) + source.shape[1:])
    return np.take_along_axis(values, idx, axis=-1)


@pytest.mark.parametrize("switching", ["draw", "chain"])
@pytest.mark.parametrize("algorithm", ["stephens", "ecr", "ecr_iterative"])
def test_relabelling_undoes_known_label_switching(algorithm, switching):
    p, z, truth, perms = switched_memberships(switching=switching, seed=3)
    if algorithm == "stephens":
        result = stephens_relabel(p)
    elif algorithm == "ecr":
        # the pivot in a labelling of its own: the answer takes the pivot's labels
        relabelled_truth = np.array([2, 0, 1])[truth]
        result = ecr_relabel(z, relabelled_truth)
        np.testing.assert_array_equal(true_component_of_label(result.source, perms)[0], [1, 2, 0])
    else:
        result = ecr_iterative_relabel(z)
    assert isinstance(result, Relabelling)
    assert result.converged
    assert result.source.shape == perms.shape and result.source.dtype == np.int64
    assert_one_global_labelling(result.source, perms)
    assert result.objective.shape == (result.n_iter + 1,)


def test_stephens_consensus_is_the_clustering_and_init_is_used():
    p, _, truth, perms = switched_memberships(seed=4)
    result = stephens_relabel(p)
    q = relabel(result.source, p).mean(axis=0)
    np.testing.assert_array_equal(
        true_component_of_label(result.source, perms)[0][q.argmax(axis=1)], truth
    )
    # Starting from the right answer (e.g. the EM-anchored match), one sweep confirms it.
    exact = np.argsort(perms, axis=1)
    started = stephens_relabel(p, init=exact)
    assert started.n_iter == 1 and started.converged
    np.testing.assert_array_equal(started.source, exact)
    # The same start as a whole-chain relabelling of the answer gives the same answer.
    shifted = stephens_relabel(p, init=exact[:, [1, 2, 0]])
    np.testing.assert_array_equal(shifted.source, exact[:, [1, 2, 0]])


def test_stephens_objective_never_increases_and_is_the_total_divergence():
    # Overlapping, unstructured memberships: a hard case that needs several sweeps.
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.full(4, 0.7), size=(60, 30))
    result = stephens_relabel(p)
    assert result.n_iter >= 3
    steps = np.diff(result.objective)
    assert np.all(steps <= 1e-9 * abs(result.objective[0]))
    assert result.objective[-1] < result.objective[0]
    # The reported objective is sum_s KL(p_s relabelled || Q) on the clipped memberships.
    pc = np.clip(p, 1e-6, 1 - 1e-6)
    pc /= pc.sum(axis=-1, keepdims=True)
    relabelled = relabel(result.source, pc)
    q = relabelled.mean(axis=0)
    kl = np.sum(relabelled * (np.log(relabelled) - np.log(q)))
    np.testing.assert_allclose(result.objective[-1], kl, rtol=1e-10)
    # and the answer is a fixed point: no single draw can lower it given Q
    for s in range(len(p)):
        best = min(
            np.sum(relabelled[s][:, perm] * -np.log(q))
            for perm in itertools.permutations(range(4))
        )
        assert np.sum(relabelled[s] * -np.log(q)) <= best + 1e-9


def test_ecr_iterative_disagreements_never_increase():
    rng = np.random.default_rng(6)
    z = rng.integers(0, 3, size=(50, 20))
    result = ecr_iterative_relabel(z)
    assert result.n_iter >= 2
    assert np.all(np.diff(result.objective) <= 0)
    # the final count is the disagreements with the mode of the relabelled allocations
    relabelled = np.take_along_axis(np.argsort(result.source, axis=1), z, axis=1)
    counts = np.stack([(relabelled == j).sum(axis=0) for j in range(3)])
    assert result.objective[-1] == np.sum(relabelled != counts.argmax(axis=0))


def test_ecr_maximises_agreement_with_the_pivot():
    rng = np.random.default_rng(7)
    z = rng.integers(0, 4, size=(30, 12))
    pivot = rng.integers(0, 4, size=12)
    result = ecr_relabel(z, pivot)
    for s in range(len(z)):
        agree = [
            np.sum(np.argsort(perm)[z[s]] == pivot) for perm in itertools.permutations(range(4))
        ]
        assert np.sum(np.argsort(result.source[s])[z[s]] == pivot) == max(agree)
    assert result.objective[1] == z.size - sum(
        np.sum(np.argsort(result.source[s])[z[s]] == pivot) for s in range(len(z))
    )


def test_empty_component_and_single_component():
    # Component 2 is never used: any label may go to it, and nothing breaks.
    p, z, _, perms = switched_memberships(k=2, seed=8)
    result = ecr_iterative_relabel(z, n_components=3)
    assert result.source.shape == (len(z), 3)
    assert np.all(np.sort(result.source, axis=1) == np.arange(3))
    # the label of the sampled component that holds true component t, draw by draw
    label_of_true = np.take_along_axis(
        np.argsort(result.source, axis=1), np.argsort(perms, axis=1), axis=1
    )
    np.testing.assert_array_equal(label_of_true, np.broadcast_to(label_of_true[0], (len(z), 2)))
    p3 = np.concatenate([p, np.zeros((*p.shape[:2], 1))], axis=-1)
    stephens = stephens_relabel(p3)
    assert np.all(np.isfinite(stephens.objective))
    assert np.all(stephens.source[:, 2] == 2)  # the empty component keeps its own label
    assert_one_global_labelling(stephens.source[:, :2], perms)
    # K = 1: the identity, at once.
    one = stephens_relabel(np.ones((5, 4, 1)))
    np.testing.assert_array_equal(one.source, np.zeros((5, 1), dtype=int))
    assert one.converged and one.n_iter == 1
    for result in (ecr_relabel(np.zeros((5, 4), dtype=int), np.zeros(4, dtype=int)),
                   ecr_iterative_relabel(np.zeros((5, 4), dtype=int))):  # fmt: skip
        np.testing.assert_array_equal(result.source, np.zeros((5, 1), dtype=int))
        assert result.converged


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: stephens_relabel(np.ones((3, 4))), r"shape \(3, 4\); expected a non-empty"),
        (lambda: stephens_relabel(np.full((2, 3, 4), 0.5)), r"sums to 2, not 1"),
        (lambda: stephens_relabel(-np.ones((2, 3, 1))), "non-negative"),
        (lambda: stephens_relabel(np.ones((2, 3, 1)), clip=0.0), "clip = 0.0"),
        (
            lambda: stephens_relabel(np.full((2, 3, 2), 0.5), init=np.array([[0, 1], [1, 1]])),
            r"init\[1\] = \[1, 1\] is not a permutation of 0..1",
        ),
        (
            lambda: stephens_relabel(np.full((2, 3, 2), 0.5), init=np.zeros((3, 2), int)),
            r"expected \(n_draws, K\) = \(2, 2\)",
        ),
        (lambda: ecr_relabel(np.zeros((2, 3), int), np.zeros(4, int)), r"expected \(3,\)"),
        (lambda: ecr_relabel(np.zeros((2, 3), int), np.array([0, 1, 3]), 3), "label 3, outside"),
        (lambda: ecr_relabel(np.array([[0, -1, 1]]), np.zeros(3, int)), "label -1, outside"),
        (lambda: ecr_relabel(np.zeros((2, 3)), np.zeros(3, int)), "dtype float64"),
        (lambda: ecr_iterative_relabel(np.zeros(3, int)), "expected a non-empty"),
        (
            lambda: ecr_iterative_relabel(
                np.zeros((2, 3), int), pivot=np.zeros(3, int), init=np.zeros((2, 1), int)
            ),
            "pivot or init, not both",
        ),
        (lambda: ecr_iterative_relabel(np.zeros((2, 3), int), max_iter=0), "max_iter = 0"),
    ],
)
def test_invalid_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_matches_label_switching_reference():
    """Same data and start as R's label.switching 1.8 (validation/label_switching_reference.R)."""
    ref = json.loads(REFERENCE.read_text())
    p = np.array(ref["probabilities"])
    z = np.array(ref["allocations"]) - 1
    pivot = np.array(ref["pivot"]) - 1
    k = ref["K"]

    def same_up_to_global(ours, theirs):
        # label k of ours holds what label global[k] of theirs holds, in every draw
        global_ = np.take_along_axis(np.argsort(theirs, axis=1), ours, axis=1)
        return np.all(global_ == global_[0], axis=1)

    stephens = np.array(ref["stephens"]["permutations"]) - 1
    assert same_up_to_global(stephens_relabel(p).source, stephens).all()
    ecr = np.array(ref["ecr"]["permutations"]) - 1
    assert same_up_to_global(ecr_relabel(z, pivot, k).source, ecr).all()
    # With the same start, both are even the same permutations.
    np.testing.assert_array_equal(stephens_relabel(p).source, stephens)
    np.testing.assert_array_equal(ecr_relabel(z, pivot, k).source, ecr)

    # ecr.iterative.1 (identity start) takes the mode as a position in table() and relabels
    # with the permutation, not its inverse; here that leaves one draw labelled otherwise,
    # with one more disagreement than ours against the same (correct) pivot.
    theirs = np.array(ref["ecr_iterative_1"]["permutations"]) - 1
    ours = ecr_iterative_relabel(z, k, init=np.tile(np.arange(k), (len(z), 1)))
    assert ours.converged
    assert same_up_to_global(ours.source, theirs).sum() >= len(z) - 1
    relabelled = np.take_along_axis(np.argsort(theirs, axis=1), z, axis=1)
    mode = np.stack([(relabelled == j).sum(axis=0) for j in range(k)]).argmax(axis=0)
    assert ours.objective[-1] <= np.sum(relabelled != mode)
