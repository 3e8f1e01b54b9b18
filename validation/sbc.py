"""Simulation-based calibration (SBC) of the Bayesian solver, K=2 components, d=2 features.

For each of ``--n-sims`` data sets: draw (weights, means, covariances) from the priors,
simulate ``--n-obs`` observations, sample the posterior with bgmm.bayes.sample_posterior
(started at and relabelled to EM), align the true labels to EM's, and record the rank of
every true scalar parameter among ``--ranks-from`` thinned posterior draws. If the sampler
and the model are right, every rank is uniform on 0..L (Talts et al. 2018, arXiv:1804.06788).

Prints a chi-square uniformity test (10 bins) per parameter and saves the rank histograms
(PNG) and the ranks (CSV) under ``--output``, and counts which posterior diagnostics
(bgmm.diagnostics) fired. Not run in CI: about 15 s per data set on two cores once
compiled. Sampled with the defaults of sample_posterior (nutpie, JAX backend).

    .venv/bin/python validation/sbc.py --n-sims 100 --output validation/results
"""

import argparse
import json
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
from matplotlib.figure import Figure
from scipy import stats

from bgmm import GMMParams, as_data, fit_em
from bgmm.bayes import (
    Priors,
    SamplingWarning,
    assignment_costs,
    build_model,
    match_to_reference,
    sample_posterior,
)
from bgmm.plots import save_figure

PRIORS = Priors(
    weights_concentration=2.0,
    means_loc=[0.0, 0.0],
    means_scale=[3.0, 3.0],
    sd_scale=[1.0, 1.0],
    lkj_eta=2.0,
)


def scalar_names():
    names = ["weights[0]"]
    names += [f"means[{k},{j}]" for k in range(2) for j in range(2)]
    names += [f"covariances[{k},{i},{j}]" for k in range(2) for i, j in ((0, 0), (0, 1), (1, 1))]
    return names


def scalars(weights, means, covariances):
    """The parameters above, from arrays with leading sample dims."""
    out = [weights[..., 0]]
    out += [means[..., k, j] for k in range(2) for j in range(2)]
    out += [covariances[..., k, i, j] for k in range(2) for i, j in ((0, 0), (0, 1), (1, 1))]
    return np.stack(out, axis=-1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sims", type=int, default=100)
    parser.add_argument("--n-obs", type=int, default=100)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--ranks-from", type=int, default=99, help="thinned draws per rank (L)")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--output", default="validation/results")
    args = parser.parse_args()
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)

    dummy = as_data(np.zeros((args.n_obs, 2)), feature_names=["x0", "x1"])
    with build_model(dummy, 2, PRIORS):
        prior = pm.sample_prior_predictive(draws=args.n_sims, random_seed=args.seed)
    p = prior["prior"].isel(chain=0)
    xs = prior["prior_predictive"]["x"].isel(chain=0).values
    names = scalar_names()
    rows, n_warned, t0 = [], 0, time.time()
    checks = Counter()  # which diagnostics fired, over the data sets
    for i in range(args.n_sims):
        truth = GMMParams(p["weights"].values[i], p["means"].values[i], p["covariances"].values[i])
        data = as_data(xs[i], feature_names=["x0", "x1"], source=f"SBC data set {i}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SamplingWarning)
            em_fit = fit_em(data, 2, n_init=5, random_state=args.seed + i)
            tree = sample_posterior(
                data,
                2,
                em=em_fit,
                priors=PRIORS,
                draws=args.draws,
                tune=args.tune,
                chains=args.chains,
                random_seed=args.seed + i,
                progressbar=False,
            )
        n_warned += any(issubclass(w.category, SamplingWarning) for w in caught)
        checks.update(f["check"] for f in json.loads(tree["diagnostics"].attrs["findings"]))
        em = tree["em"].to_dataset()
        em_params = GMMParams(em["weights"].values, em["means"].values, em["covariances"].values)
        source, _, _ = match_to_reference(assignment_costs(truth.means[None], em_params))
        order = source[0]
        true_vals = scalars(truth.weights[order], truth.means[order], truth.covariances[order])
        post = tree["posterior"].to_dataset().stack(sample=("chain", "draw"))
        draws = scalars(
            post["weights"].transpose("sample", ...).values,
            post["means"].transpose("sample", ...).values,
            post["covariances"].transpose("sample", ...).values,
        )
        keep = np.linspace(0, draws.shape[0] - 1, args.ranks_from).round().astype(int)
        ranks = (draws[keep] < true_vals[None, :]).sum(axis=0)
        rows.append(dict(zip(names, ranks.tolist(), strict=True)))
        print(f"[{i + 1}/{args.n_sims}] {time.time() - t0:.0f}s", flush=True)
    ranks = pd.DataFrame(rows)
    ranks.to_csv(out_dir / "sbc_ranks.csv", index_label="dataset")
    n_bins = 10
    edges = np.linspace(-0.5, args.ranks_from + 0.5, n_bins + 1)
    table = []
    fig = Figure(figsize=(12, 8), layout="constrained")
    axes = fig.subplots(3, 4).ravel()
    for ax, name in zip(axes, names, strict=False):
        counts, _ = np.histogram(ranks[name], bins=edges)
        chi2 = stats.chisquare(counts)
        table.append({"parameter": name, "chi2": chi2.statistic, "p_value": chi2.pvalue})
        ax.bar(range(n_bins), counts, width=1.0, color="C0", edgecolor="white")
        expected = args.n_sims / n_bins
        band = stats.binom.ppf([0.005, 0.995], args.n_sims, 1 / n_bins)
        ax.axhspan(*band, color="0.85", zorder=0)
        ax.axhline(expected, color="k", lw=1)
        ax.set_title(f"{name}  p={chi2.pvalue:.2f}", fontsize=9)
        ax.set_xticks([])
    axes[-1].axis("off")
    fig.suptitle(
        f"SBC rank histograms: {args.n_sims} data sets of {args.n_obs} points, K=2, d=2 "
        f"(grey: 99% band for a uniform histogram)"
    )
    save_figure(fig, out_dir / "sbc_ranks.png")
    summary = pd.DataFrame(table)
    summary.to_csv(out_dir / "sbc_summary.csv", index=False)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(
        f"{n_warned} of {args.n_sims} runs raised a SamplingWarning; "
        f"{(summary['p_value'] < 0.01).sum()} of {len(summary)} parameters with p < 0.01"
    )
    print(f"diagnostics that fired (data sets): {dict(checks) or 'none'}")


if __name__ == "__main__":
    main()
