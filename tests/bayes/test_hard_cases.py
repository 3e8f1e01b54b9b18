"""The posterior on hard data: the warning and the verdict a new user must see.

The easy cases (no warning, verdict "agrees") are the session's sample (tests/conftest.py:
any SamplingWarning fails the suite) and Old Faithful in the CLI's demo test.
"""

import warnings

import numpy as np
import pytest

from bgmm import GMMParams, fit_em, simulate
from bgmm.bayes import SamplingWarning, sample_posterior
from bgmm.compare import compare

TWO_CLUSTERS = GMMParams.from_arrays(
    [0.5, 0.5], [[0.0, 0.0], [6.0, 2.0]], [np.eye(2), [[1.0, -0.3], [-0.3, 0.8]]]
)
#: Three clusters in 3-D, two of them 2 sd apart (the issue's reproduction).
OVERLAPPING = GMMParams.from_arrays(
    [0.3, 0.3, 0.4], [[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 8.0, 0.0]], [np.eye(3)] * 3
)


def sample(truth, n, k, seed, draws):
    data = simulate(truth, n, random_state=seed).data
    em = fit_em(data, k, n_init=5, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        tree = sample_posterior(
            data,
            k,
            em=em,
            draws=draws,
            tune=draws,
            chains=2,
            random_seed=seed,
            progressbar=False,
        )
    return em, tree, [w for w in caught if w.category is SamplingWarning]


def check_not_a_single_mode(em, tree, warned):
    assert len(warned) == 1
    message = str(warned[0].message)
    assert message.startswith("The posterior is not a single mode")
    assert "Why it matters" in message and "What to try" in message
    assert not tree["diagnostics"].attrs["single_mode"]
    comparison = compare(em, tree)
    assert comparison.verdict.status == "not_single_mode"
    table = comparison.to_dataframe()
    assert table["em_in_hdi"].isna().all() and table["z"].isna().all()


def test_too_many_components_warn_and_are_not_a_single_mode():
    """K = 4 on data from two clusters (small, short: the default suite's end-to-end case)."""
    em, tree, warned = sample(TWO_CLUSTERS, 120, 4, seed=1, draws=200)
    check_not_a_single_mode(em, tree, warned)


@pytest.mark.slow
def test_two_clusters_two_sd_apart_warn_and_are_not_a_single_mode():
    """The issue's case: N = 1000, 3-D, K = 3, 500 draws and 500 tuning steps, 2 chains."""
    em, tree, warned = sample(OVERLAPPING, 1000, 3, seed=20261123, draws=500)
    check_not_a_single_mode(em, tree, warned)
    # a chain emptied a component, as the user saw
    assert "vanishing" in str(tree["diagnostics"].attrs["findings"])
