# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Missing values: EM and the posterior under missing at random
#
# Real data have empty cells. Deleting the incomplete rows, or filling each gap with its
# column's mean and fitting as if nothing were missing, biases the covariances and hides
# the uncertainty. Under *missing at random* the missing coordinates are one more latent
# variable: EM integrates them out (`fit_em(..., missing="em")`, the derivation's "Missing
# values"), and so does the Bayesian model, one multivariate normal per missingness
# pattern, whose log-likelihood equals EM's.
#
# One data set with a known truth loses 10%, 30% and 50% of its entries at random. For
# each, we put EM's estimates and the posterior's intervals beside the truth, compare the
# covariances with those of a complete-case and a mean-imputation fit, and look at the
# imputed values with their intervals. `BGMM_NOTEBOOK_DRAWS` sets the sampler's draws and
# tuning steps (1000 by default).

# %%
# %matplotlib inline
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import bgmm
from bgmm.bayes import assignment_costs, match_to_reference, sample_posterior
from bgmm.compare import compare, parameter_series
from bgmm.datasets import remove_values
from bgmm.em import fit_em, impute

# pip's PyTensor warns that its C backend found no BLAS; bgmm compiles with JAX instead.
warnings.filterwarnings("ignore", message=".*PyTensor could not link to a BLAS.*")
DRAWS = int(os.environ.get("BGMM_NOTEBOOK_DRAWS", "1000"))
CHAINS = 4
SEED = 7
SHARES = (0.1, 0.3, 0.5)

# %% [markdown]
# ## Data with a known truth
#
# Two components in three correlated features, 300 rows.

# %%
truth = bgmm.GMMParams.from_arrays(
    weights=[0.4, 0.6],
    means=[[0.0, 0.0, 0.0], [3.0, 3.0, 1.0]],
    covariances=[
        [[1.0, 0.6, 0.3], [0.6, 1.0, 0.5], [0.3, 0.5, 1.0]],
        [[1.0, -0.4, 0.0], [-0.4, 0.8, 0.2], [0.0, 0.2, 0.6]],
    ],
)
features = ["x1", "x2", "x3"]
data, labels = bgmm.simulate(truth, 300, random_state=SEED, feature_names=features)
incomplete = {share: remove_values(data, share, random_state=SEED) for share in SHARES}
pd.DataFrame(
    {
        f"{share:.0%} removed": {
            "missing values": int(np.isnan(d.values).sum()),
            "rows with a missing value": int(np.isnan(d.values).any(axis=1).sum()),
            "complete rows": int((~np.isnan(d.values).any(axis=1)).sum()),
        }
        for share, d in incomplete.items()
    }
)

# %% [markdown]
# ## EM and the posterior, at each share
#
# EM with five restarts, then NUTS started at the EM estimate and relabelled to its
# components; the comparison puts EM ± its standard error (from the observed-data
# information) beside the posterior mean and its 94% HDI.

# %%
em, trees = {}, {}
for share, d in incomplete.items():
    em[share] = fit_em(d, 2, missing="em", n_init=5, random_state=SEED)
    trees[share] = sample_posterior(
        d,
        2,
        em=em[share],
        draws=DRAWS,
        tune=DRAWS,
        chains=CHAINS,
        random_seed=SEED,
        progressbar=False,
    )
    print(f"{share:.0%}: {compare(em[share], trees[share]).verdict.headline}")

# %% [markdown]
# EM's component 0 need not be the truth's: the Hungarian match of the means puts the truth
# in EM's order, and `parameter_series` labels it as the comparison table's rows.

# %%
columns = ["truth", "em", "em_se", "mean", "hdi_lower", "hdi_upper"]
tables = {}
for share in SHARES:
    # source[0, k]: the true component matched to EM's component k
    source, _, _ = match_to_reference(assignment_costs(truth.means[None], em[share].params))
    order = source[0]
    ordered = bgmm.GMMParams(truth.weights[order], truth.means[order], truth.covariances[order])
    table = compare(em[share], trees[share]).to_dataframe()
    table["truth"] = parameter_series(ordered, features)
    tables[f"{share:.0%}"] = table[columns]
combined = pd.concat(tables, names=["removed"])
covariances_0 = combined.index.get_level_values("parameter").str.startswith("covariances[0")
combined[covariances_0].round(3)

# %% [markdown]
# With more values missing the intervals widen, as they should: less information, more
# uncertainty. The truth stays inside them.

# %%
pd.DataFrame(
    {
        removed: {
            "mean HDI width": float((t["hdi_upper"] - t["hdi_lower"]).mean()),
            "truth inside the HDI": float(
                ((t["truth"] >= t["hdi_lower"]) & (t["truth"] <= t["hdi_upper"])).mean()
            ),
            "mean |EM - truth| / EM's SE": float(
                ((t["em"] - t["truth"]).abs() / t["em_se"]).mean()
            ),
        }
        for removed, t in tables.items()
    }
).round(3)

# %% [markdown]
# ## Against deleting rows and filling in means
#
# The same data fitted by EM on the complete rows only, and on the data with each gap
# filled by its column's mean: the relative error of the covariances,
# $\lVert\hat\Sigma_k - \Sigma_k\rVert_F / \lVert\Sigma_k\rVert_F$ averaged over the two
# components (matched to the truth by their means).

# %%
errors = {}
for share, d in incomplete.items():
    values = np.asarray(d.values)
    complete_rows = values[~np.isnan(values).any(axis=1)]
    mean_filled = np.where(np.isnan(values), np.nanmean(values, axis=0), values)
    fits = {
        "EM, missing='em'": em[share],
        "complete cases": fit_em(complete_rows, 2, n_init=5, random_state=SEED),
        "mean imputed": fit_em(mean_filled, 2, n_init=5, random_state=SEED),
    }
    errors[f"{share:.0%}"] = {}
    for name, fit in fits.items():
        order = match_to_reference(assignment_costs(truth.means[None], fit.params))[0][0]
        errors[f"{share:.0%}"][name] = np.mean(
            [
                np.linalg.norm(fit.covariances[k] - truth.covariances[j])
                / np.linalg.norm(truth.covariances[j])
                for k, j in enumerate(order)
            ]
        )
pd.DataFrame(errors).round(3)

# %% [markdown]
# Mean imputation piles the filled values on the column means, which shrinks variances and
# correlations and can pull a component onto the pile. Complete cases are unbiased when
# values go missing completely at random, as here, but keep few rows (102 of 300 at 30%,
# 34 at 50%), so their error grows with the share removed. One data set is one draw, and
# in this one EM's error is not the lowest at every share: `validation/missing_values.py`
# averages ten replicates per cell, for MCAR and for MAR (where deleting rows is biased as
# well), and there EM's is the lowest in every cell (README, "Missing values").
#
# ## The imputed values and their uncertainty
#
# EM's imputation is each missing value's conditional mean at $\hat\theta$
# (`bgmm.em.impute`), with the conditional sd; the posterior's `imputation` group holds
# draws of each missing value given the observed ones, over the posterior of $\theta$. For
# the data with 30% removed, the first 40 missing values, with the true value:

# %%
summary = trees[0.3]["imputation"].to_dataset().drop_vars(["x_missing", "chain", "draw"])
truth_values = data.to_dataframe()
summary["truth"] = (
    "entry",
    [
        truth_values.loc[o, f]
        for o, f in zip(summary["obs_id"].values, summary["feature"].values, strict=True)
    ],
)
shown = summary.isel(entry=slice(0, 40))
x = np.arange(shown.sizes["entry"])
fig, ax = plt.subplots(figsize=(10, 4), layout="constrained")
ax.vlines(
    x,
    shown["hdi_lower"],
    shown["hdi_upper"],
    color="C0",
    lw=3,
    alpha=0.35,
    label="posterior 94% HDI",
)
ax.errorbar(
    x + 0.25,
    shown["em"],
    yerr=1.96 * shown["em_sd"],
    fmt="o",
    ms=3,
    color="C1",
    lw=1,
    label="EM imputation ± 1.96 conditional sd",
)
ax.scatter(x, shown["truth"], marker="x", color="k", zorder=3, label="true value")
ax.set_xticks(
    x,
    [f"{o}:{f}" for o, f in zip(shown["obs_id"].values, shown["feature"].values, strict=True)],
    rotation=90,
    fontsize=7,
)
ax.set_ylabel("value")
ax.legend(loc="upper left", ncols=3, fontsize=8)
plt.show()

# %%
inside = (summary["truth"] >= summary["hdi_lower"]) & (summary["truth"] <= summary["hdi_upper"])
em_inside = np.abs(summary["truth"] - summary["em"]) <= 1.96 * summary["em_sd"]
print(f"true value inside the posterior's 94% HDI: {float(inside.mean()):.1%}")
print(f"true value within EM's ±1.96 conditional sd: {float(em_inside.mean()):.1%}")
print(f"EM's imputation inside the posterior's HDI: {float(summary['em_in_hdi'].mean()):.1%}")
print(
    f"posterior sd / EM conditional sd (median): "
    f"{float((summary['sd'] / summary['em_sd']).median()):.3f}"
)

# %% [markdown]
# The posterior's intervals are a little wider than EM's plug-in ones: they add the
# uncertainty about $\theta$ to that of the missing value given $\theta$. Both cover the
# truth at about their nominal rate, because the values were removed at random; under a
# mechanism that depends on the missing values themselves (not at random) neither would.
#
# `impute` gives the same for new rows, and the fitted estimator predicts rows with gaps:

# %%
model = bgmm.GaussianMixtureEM(2, n_init=5, random_state=SEED, missing="em").fit(incomplete[0.3])
new_rows = pd.DataFrame(
    [[0.2, np.nan, np.nan], [np.nan, 2.8, 1.1], [1.5, 1.5, np.nan]], columns=features
)
print(np.round(model.predict_proba(new_rows), 3))
impute(model.result_.params, new_rows)[["x", "variance"]].to_dataframe().round(3)

# %% [markdown]
# ## Versions

# %%
# %load_ext watermark
# %watermark -n -u -v -iv -w -p pymc,pytensor,jax,arviz,nutpie
