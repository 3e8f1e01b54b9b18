import numpy as np
import pytest

from bgmm import GMMParams, simulate


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
