"""Which Dirichlet prior on the weights? A measurement on three simulated sets.

For each data set (well separated, overlapping, too many components) and each prior on
the weights (Dirichlet(1), the populated Dirichlet(4) of Frühwirth-Schnatter 2006, the
sparse Dirichlet(0.01) of Malsiner-Walli et al. 2016), fit EM (5 restarts), sample the
posterior as a new user would (500 draws, 500 tuning steps, 2 chains, started at EM) and
record the diagnostics' findings, the verdict, r_hat, ESS, divergences, the share of draws
at the maximum tree depth, the posterior mode of the number of non-empty components K+,
and the time. The docs' "Bayesian model" page records the table and the decision.

    .venv/bin/python validation/priors.py --output validation/results
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bgmm import GMMParams, fit_em, simulate
from bgmm.bayes import Priors, SamplingWarning, n_clusters, sample_posterior
from bgmm.compare import compare
from bgmm.diagnostics import Diagnostics

#: Three clusters in 2-D, far apart.
SEPARATED = GMMParams.from_arrays(
    [0.3, 0.3, 0.4],
    [[0.0, 0.0], [8.0, 0.0], [4.0, 7.0]],
    [np.eye(2), np.eye(2), [[1.0, 0.4], [0.4, 1.0]]],
)
#: Three clusters in 3-D, two of them 2 sd apart (the issue's hard case).
OVERLAPPING = GMMParams.from_arrays(
    [0.3, 0.3, 0.4],
    [[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 8.0, 0.0]],
    [np.eye(3)] * 3,
)
#: Two clusters in 2-D, fitted with K = 4.
TWO_CLUSTERS = GMMParams.from_arrays(
    [0.5, 0.5],
    [[0.0, 0.0], [6.0, 2.0]],
    [np.eye(2), [[1.0, -0.3], [-0.3, 0.8]]],
)

SCENARIOS = {
    "well separated (K=3, N=300)": (SEPARATED, 300, 3),
    "overlapping (K=3, N=1000, d=3)": (OVERLAPPING, 1000, 3),
    "too many components (K=4 on 2, N=300)": (TWO_CLUSTERS, 300, 4),
}
PRIORS = {
    "Dirichlet(1)": Priors(),
    "populated Dirichlet(4)": Priors.populated(),
    "sparse Dirichlet(0.01)": Priors.sparse(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--output", default="validation/results")
    args = parser.parse_args()
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for scenario, (truth, n, k) in SCENARIOS.items():
        data = simulate(truth, n, random_state=args.seed).data
        em = fit_em(data, k, n_init=5, random_state=args.seed)
        for prior_name, priors in PRIORS.items():
            t0 = time.time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SamplingWarning)  # recorded below
                tree = sample_posterior(
                    data,
                    k,
                    em=em,
                    priors=priors,
                    draws=args.draws,
                    tune=args.draws,
                    chains=2,
                    random_seed=args.seed,
                    progressbar=False,
                )
                verdict = compare(em, tree).verdict
            seconds = time.time() - t0
            diag = Diagnostics.from_dataset(tree["diagnostics"].to_dataset())
            ds = diag.dataset
            k_plus = n_clusters(tree, data, random_seed=args.seed)
            rows.append(
                {
                    "scenario": scenario,
                    "prior": prior_name,
                    "verdict": verdict.status,
                    "findings": ", ".join(f.check for f in diag.findings) or "none",
                    "r_hat_max": float(ds["r_hat"].max()),
                    "ess_per_chain_min": float(
                        min(ds["ess_bulk_per_chain"].min(), ds["ess_tail_per_chain"].min())
                    ),
                    "divergences": int(ds["divergences"].sum()),
                    "max_depth_share": float(ds["tree_depth_share"].max()),
                    "k_plus_mode": int(k_plus.attrs["mode"]),
                    "p_k_plus_mode": float(k_plus["probability"].max()),
                    "seconds": round(seconds, 1),
                }
            )
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / "priors.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
