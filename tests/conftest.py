import numpy as np
import pytest

from bgmm import GMMParams, fit_em, simulate


@pytest.fixture
def rng():
    return np.random.default_rng(20261121)


def make_params(n_components: int, n_features: int, seed: int = 0, spread: float = 6.0):
    """Random well-separated mixture parameters (SPD covariances with correlations)."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(n_components, 5.0))
    means = rng.normal(scale=spread, size=(n_components, n_features))
    a = rng.normal(size=(n_components, n_features, n_features))
    covariances = a @ a.transpose(0, 2, 1) / n_features + 0.5 * np.eye(n_features)
    return GMMParams.from_arrays(weights, means, covariances)


@pytest.fixture
def mixture_data():
    params = make_params(3, 2, seed=1)
    return params, simulate(params, 400, random_state=2)


# A small simulated problem sampled once per test session (sampling is slow: compile time).
SAMPLING_TRUTH = GMMParams.from_arrays(
    [0.4, 0.6],
    [[0.0, 0.0], [5.0, 3.0]],
    [[[1.0, 0.3], [0.3, 0.5]], [[0.8, -0.2], [-0.2, 1.2]]],
)
SAMPLING_SETTINGS = {
    "draws": 300,
    "tune": 300,
    "chains": 2,
    "random_seed": 3,
    "progressbar": False,
}


@pytest.fixture(scope="session")
def simulated():
    sim = simulate(SAMPLING_TRUTH, 150, random_state=11, feature_names=["a", "b"])
    return sim, fit_em(sim.data, 2, n_init=3, random_state=0)


@pytest.fixture(scope="session")
def tree(simulated):
    from bgmm.bayes import sample_posterior

    sim, em = simulated
    return sample_posterior(sim.data, 2, em=em, **SAMPLING_SETTINGS)
