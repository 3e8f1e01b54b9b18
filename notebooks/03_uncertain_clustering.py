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
# # Uncertainty-aware clustering
#
# A mixture does not only say which cluster a point belongs to: it says how sure it is,
# $p(z_n = k \mid x_n, \theta)$. EM gives that probability at one parameter value, the
# estimate $\hat\theta$: the *plug-in* responsibilities $\gamma_{nk}(\hat\theta)$. The
# posterior gives it for every plausible $\theta$, and averaging over the draws gives
# $p(z_n = k \mid X) = \mathbb{E}_{\theta \mid X}\,[\gamma_{nk}(\theta)]$, which also carries
# the uncertainty about $\theta$ itself; the spread of $\gamma_{nk}(\theta)$ over draws
# shows how much the membership of one point depends on it.
#
# We simulate two overlapping clusters with known labels, so we can also see whether the
# points flagged as uncertain are the ones a hard assignment gets wrong.
# `BGMM_NOTEBOOK_DRAWS` sets the sampler's draws and tuning steps (1000 by default).

# %%
# %matplotlib inline
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import bgmm
from bgmm.bayes import assignment_costs, match_to_reference, sample_posterior
from bgmm.em import fit_em
from bgmm.plots import add_ellipses, plot_membership_uncertainty

# pip's PyTensor warns that its C backend found no BLAS; bgmm compiles with numba instead.
warnings.filterwarnings("ignore", message=".*PyTensor could not link to a BLAS.*")
DRAWS = int(os.environ.get("BGMM_NOTEBOOK_DRAWS", "1000"))
CHAINS = 4
SEED = 3
UNCERTAIN = 0.9  # a point is "uncertain" when its most probable component has p < 0.9

# %% [markdown]
# ## Data with a known truth
#
# Two components, 40% and 60%, whose 2-sd ellipses overlap.

# %%
truth = bgmm.GMMParams.from_arrays(
    weights=[0.4, 0.6],
    means=[[0.0, 0.0], [3.0, 1.5]],
    covariances=[[[1.0, 0.3], [0.3, 0.8]], [[1.0, -0.3], [-0.3, 0.9]]],
)
data, labels = bgmm.simulate(truth, 200, random_state=SEED, feature_names=["x1", "x2"])
print(f"{data.n_samples} points; true component sizes {np.bincount(labels)}")

# %% [markdown]
# ## EM and the posterior
#
# `sample_posterior` starts the chains at the EM estimate, relabels the draws to the EM
# components and computes every point's posterior membership (the `membership` group),
# with EM's plug-in responsibilities beside it.

# %%
em = fit_em(data, 2, n_init=5, random_state=SEED)
tree = sample_posterior(
    data, 2, em=em, draws=DRAWS, tune=DRAWS, chains=CHAINS, random_seed=SEED, progressbar=False
)
membership = tree["membership"].to_dataset()
membership

# %% [markdown]
# EM's component 0 need not be the truth's component 0. The Hungarian match that relabels
# the posterior draws (`match_to_reference`) also matches the truth to EM, by the means.

# %%
source, _, _ = match_to_reference(assignment_costs(truth.means[None], em.params))
em_label_of_truth = np.argsort(source[0])  # source[0, k]: the true component given label k
true_component = em_label_of_truth[labels]  # the truth's labels in EM's numbering
print("EM means:", em.means.round(2).tolist())
print("true means, in EM's order:", truth.means[source[0]].tolist())

# %% [markdown]
# ## Which points are uncertain?
#
# Under EM, a point is uncertain when $\max_k \gamma_{nk}(\hat\theta) < 0.9$; under the
# posterior, when $\max_k p(z_n = k \mid X) < 0.9$.

# %%
em_top = membership["em_resp"].max("component")
post_top = membership["mean"].max("component")
assigned = membership["most_probable"].values
wrong = assigned != true_component
counts = pd.DataFrame(
    {
        "uncertain points": [int((em_top < UNCERTAIN).sum()), int((post_top < UNCERTAIN).sum())],
        "misassigned among them": [
            int((wrong & (em_top < UNCERTAIN).values).sum()),
            int((wrong & (post_top < UNCERTAIN).values).sum()),
        ],
    },
    index=["EM plug-in", "posterior"],
)
counts.loc["all points"] = [data.n_samples, int(wrong.sum())]
counts

# %% [markdown]
# Most misassigned points are flagged as uncertain: the probabilities are informative, and
# reporting "cluster 1 with p = 0.62" is more honest than "cluster 1".

# %%
fig = plot_membership_uncertainty(data, tree)
ax = fig.axes[0]
X = np.asarray(data.values)
ax.scatter(*X[wrong].T, s=80, facecolors="none", edgecolors="red", label="misassigned")
add_ellipses(ax, em.params, n_std=(2.0,))
ax.legend(loc="upper left")
fig

# %% [markdown]
# ## Plug-in against posterior probabilities
#
# The posterior mean membership averages $\gamma_{nk}(\theta)$ over draws. Where
# $\gamma_{nk}$ changes steeply with $\theta$ (points between the clusters) the average is
# pulled towards 1/2 compared with the plug-in value: the posterior is less sure than EM,
# because it also accounts for not knowing $\theta$ exactly. The bars are the 94% interval
# of $\gamma_{n0}(\theta)$ over the draws.

# %%
fig, ax = plt.subplots(figsize=(6, 5), layout="constrained")
em_p0 = membership["em_resp"].sel(component=0).values
post = membership.sel(component=0)
# The mean of a skewed distribution can lie outside its central interval: draw both.
ax.vlines(em_p0, post["lower"].values, post["upper"].values, color="C0", lw=0.8, alpha=0.4)
ax.scatter(em_p0, post["mean"].values, s=10, color="C0")
ax.plot([0, 1], [0, 1], color="0.3", lw=1, ls="--")
ax.set_xlabel("EM plug-in p(z = 0 | x, θ̂)")
ax.set_ylabel("posterior p(z = 0 | x, X), 94% interval over draws")
ax.set_title("Membership of component 0")
plt.show()

# %% [markdown]
# The points where the two disagree most, and how wide their posterior intervals are:

# %%
table = membership.sel(component=0)[["em_resp", "mean", "lower", "upper", "abs_difference"]]
table = table.to_dataframe().drop(columns="component", errors="ignore")
table.sort_values("abs_difference", ascending=False).head(10)

# %%
print(f"largest |posterior - plug-in|: {float(membership['abs_difference'].max()):.3f}")
print(f"points assigned differently: {int((~membership['same_component']).sum())}")
print(
    f"median interval width where uncertain: "
    f"{float((post['upper'] - post['lower'])[post_top < UNCERTAIN].median()):.3f}"
)

# %% [markdown]
# ## Versions

# %%
# %load_ext watermark
# %watermark -n -u -v -iv -w -p pymc,pytensor,jax,arviz,nutpie
