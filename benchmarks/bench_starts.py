"""Which start reaches mclust's log-likelihoods: the measurement behind select_model's default.

For every data set (Old Faithful, iris, two simulated sets) and every cell of mclust's
table (K = 1..5, the fourteen families), EM runs from one k-means start (bgmm.fit_em's
default), from the model-based hierarchical partition, from ten k-means starts, and from
select_model's default (``init_params="auto"``, ten restarts: the agglomeration, k-means and
eight k-means++ seeds), and each strategy's log-likelihood is put beside mclust's
(``mclustBIC`` defaults: VVV agglomeration on SVD coordinates, then EM to relative
tolerance 1e-5). A cell counts as
"below" when a strategy stays more than 1e-6 (relative) under mclust.

mclust's numbers come from ``benchmarks/mclust_reference.R`` when R with mclust is
installed (Debian: ``apt-get install r-cran-mclust``), else from the saved
``benchmarks/mclust_reference.csv`` (written by the last run that had R).

Run: ``python benchmarks/bench_starts.py`` (about 10 minutes a data set on two cores,
mostly compiling 140 shapes; ``--datasets faithful`` for one).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bgmm import GMMParams, fit_em, load_old_faithful, simulate
from bgmm.covariance import FAMILIES
from bgmm.exceptions import SingularCovarianceError

HERE = Path(__file__).parent
REFERENCE = HERE / "mclust_reference.csv"
STRATEGIES = ("kmeans x1", "hierarchical", "kmeans x10", "auto x10")


def datasets() -> dict[str, np.ndarray]:
    """The data: two real sets and two simulated ones (seeded, overlapping clusters)."""
    from sklearn.datasets import load_iris

    rng = np.random.default_rng(20261123)
    rot = np.array([[np.cos(0.8), -np.sin(0.8)], [np.sin(0.8), np.cos(0.8)]])
    three = GMMParams.from_arrays(
        [0.5, 0.3, 0.2],
        [[0.0, 0.0], [3.0, 1.0], [1.0, 3.5]],
        [np.diag([4.0, 0.3]), rot @ np.diag([1.5, 0.2]) @ rot.T, np.eye(2) * 0.4],
    )
    a = rng.normal(size=(4, 3, 3))
    four = GMMParams.from_arrays(
        [0.25] * 4,
        rng.normal(scale=2.0, size=(4, 3)),
        [m @ m.T + 0.3 * np.eye(3) for m in a],
    )
    return {
        "faithful": np.asarray(load_old_faithful().values),
        "iris": load_iris().data,
        "sim_three_2d": np.asarray(simulate(three, 300, random_state=1).data.values),
        "sim_four_3d": np.asarray(simulate(four, 400, random_state=2).data.values),
    }


def mclust_reference(data: dict[str, np.ndarray]) -> pd.DataFrame:
    """mclust's table for every data set: run R when it is here, else the saved CSV."""
    if shutil.which("Rscript") is None:
        print(f"no Rscript: mclust's numbers from {REFERENCE.name}")
        return pd.read_csv(REFERENCE)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, values in data.items():
            path = Path(tmp) / f"{name}.csv"
            pd.DataFrame(values).to_csv(path, index=False)
            paths.append(str(path))
        out = Path(tmp) / "reference.csv"
        subprocess.run(["Rscript", str(HERE / "mclust_reference.R"), str(out), *paths], check=True)
        table = pd.read_csv(out)
    table["dataset"] = table["dataset"].str.removesuffix(".csv")
    # Replace only the rows of the data sets measured now; keep the others' saved rows.
    saved = pd.read_csv(REFERENCE) if REFERENCE.exists() else table.iloc[:0]
    kept = saved[~saved["dataset"].isin(table["dataset"].unique())]
    pd.concat([kept, table]).sort_values(["dataset", "k"], kind="stable").to_csv(
        REFERENCE, index=False
    )
    print(f"mclust's numbers from R (saved to {REFERENCE.name})")
    return table


def _fit(values, k, family, init, n_init):
    try:
        em = fit_em(
            values, k, covariance_type=family, init_params=init, n_init=n_init, random_state=0
        )
    except (SingularCovarianceError, ValueError) as exc:
        if isinstance(exc, ValueError) and "empty" not in str(exc):
            raise
        return np.nan
    return em.log_likelihood


def measure(name: str, values: np.ndarray) -> pd.DataFrame:
    rows = []
    for k in range(1, 6):
        for family in FAMILIES:
            rows.append(
                {
                    "dataset": name,
                    "k": k,
                    "family": family,
                    "kmeans x1": _fit(values, k, family, "kmeans", 1),
                    "hierarchical": _fit(values, k, family, "hierarchical", 1),
                    "kmeans x10": _fit(values, k, family, "kmeans", 10),
                    "auto x10": _fit(values, k, family, "auto", 10),
                }
            )
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="all", help="comma-separated names, or all")
    args = parser.parse_args(argv)
    data = datasets()
    if args.datasets != "all":
        data = {k: v for k, v in data.items() if k in args.datasets.split(",")}
    reference = mclust_reference(data).set_index(["dataset", "k", "family"])
    summary = []
    for name, values in data.items():
        start = time.perf_counter()
        ours = measure(name, values).set_index(["dataset", "k", "family"])
        seconds = time.perf_counter() - start
        table = ours.join(
            reference[["log_likelihood"]].rename(columns={"log_likelihood": "mclust"})
        )
        has = table["mclust"].notna()
        tol = 1e-6 * table["mclust"].abs()
        line = {"dataset": name, "cells with mclust": int(has.sum()), "seconds": round(seconds)}
        for strategy in STRATEGIES:
            below = has & ~(table[strategy] >= table["mclust"] - tol)
            line[f"below: {strategy}"] = int(below.sum())
            if below.any() and strategy == STRATEGIES[-1]:
                print(
                    f"{name}: cells below mclust for the default\n"
                    + table.loc[below, [strategy, "mclust"]].to_string()
                )
        summary.append(line)
        print(pd.DataFrame([line]).to_string(index=False), flush=True)
    print("\nCells (of those mclust fits) where each strategy ends below mclust's log-likelihood:")
    print(pd.DataFrame(summary).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
