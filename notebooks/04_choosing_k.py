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
# # Choosing K: BIC and ICL against LOO
#
# How many components? EM's answers are penalised likelihoods at the estimate:
#
# * $\mathrm{BIC} = -2 \ln p(X \mid \hat\theta) + p \ln N$, with $p$ free parameters;
# * $\mathrm{AIC} = -2 \ln p(X \mid \hat\theta) + 2p$;
# * $\mathrm{ICL} = \mathrm{BIC} + 2 H(\gamma)$, with the entropy of the memberships
#   $H(\gamma) = -\sum_n \sum_k \gamma_{nk} \ln \gamma_{nk}$, which also penalises clusters
#   that overlap (Biernacki, Celeux & Govaert 2000).
#
# The Bayesian answer is the expected log predictive density of a new point, estimated by
# Pareto-smoothed importance-sampling leave-one-out cross-validation (PSIS-LOO; Vehtari,
# Gelman & Gabry 2017) from the posterior's pointwise log-likelihoods. On the same deviance
# scale, $\mathrm{LOOIC} = -2\,\widehat{\mathrm{elpd}}_\mathrm{loo}$. Lower is better for all four.
#
# We simulate data with a known number of components, three, and ask each criterion.
# `BGMM_NOTEBOOK_DRAWS` sets the sampler's draws and tuning steps (500 by default), and
# `BGMM_NOTEBOOK_FAMILIES` the covariance families of the last section (all fourteen by
# default; the test suite runs a few, to keep compilation short).

# %%
# %matplotlib inline
import os
import warnings

import bgmm
from bgmm.plots import plot_bic, plot_fit, plot_select_k
from bgmm.selection import bic_table, n_parameters, select_k, select_model

# pip's PyTensor warns that its C backend found no BLAS; bgmm compiles with numba instead.
warnings.filterwarnings("ignore", message=".*PyTensor could not link to a BLAS.*")
# Five posteriors, one per K: 500 draws each (select_k's default) keep this to minutes.
DRAWS = int(os.environ.get("BGMM_NOTEBOOK_DRAWS", "500"))
SEED = 7
TRUE_K = 3
FAMILIES = os.environ.get("BGMM_NOTEBOOK_FAMILIES", "all")

# %% [markdown]
# ## Data with a known K

# %%
truth = bgmm.GMMParams.from_arrays(
    weights=[0.3, 0.45, 0.25],
    means=[[0.0, 0.0], [4.0, 0.5], [1.5, 3.5]],
    covariances=[
        [[1.0, 0.4], [0.4, 0.7]],
        [[0.8, -0.2], [-0.2, 1.0]],
        [[0.6, 0.0], [0.0, 0.6]],
    ],
)
data, labels = bgmm.simulate(truth, 300, random_state=SEED, feature_names=["x1", "x2"])
plot_fit(data, truth, labels=labels, title=f"the truth: K = {TRUE_K}")

# %% [markdown]
# ## Every criterion for K = 1, ..., 5
#
# `select_k` fits EM (five restarts) for each K, and samples each posterior for LOO. A
# full-covariance mixture in $d$ dimensions has $p = K d (d + 1) / 2 + K d + K - 1$ free
# parameters:

# %%
print({k: n_parameters(k, data.n_features) for k in range(1, 6)})

# %%
table = select_k(data, range(1, 6), random_state=SEED, draws=DRAWS, tune=DRAWS, chains=2)
table

# %%
best = {
    "BIC": int(table["bic"].idxmin()),
    "AIC": int(table["aic"].idxmin()),
    "ICL": int(table["icl"].idxmin()),
    "LOO": int(table["elpd_loo"].idxmax()),
}
print(f"true K = {TRUE_K}; chosen:", best)

# %%
plot_select_k(table)

# %% [markdown]
# ## Reading the table
#
# * All four criteria fall steeply up to the true K and then flatten: extra components
#   split a cluster and buy little likelihood.
# * BIC's penalty $p \ln N$ is heavier than AIC's $2p$: AIC tends to choose larger K.
#   ICL adds the entropy of the memberships, so it prefers well-separated clusters and
#   can choose fewer components than BIC when clusters overlap.
# * LOO compares predictive accuracy. `elpd_diff` is each K's difference from the best and
#   `dse` the standard error *of that difference*, computed point by point (ArviZ's
#   `compare`): much smaller than the separate `elpd_loo_se`, because two models fitted to
#   the same data err on the same points. A K within about two `dse` of the best predicts
#   about as well; the smallest such K is the usual choice. `weight` is the stacking
#   weight of each K.
# * `pareto_k_bad` counts points whose PSIS estimate is unreliable (Pareto $\hat k$ above
#   ArviZ's threshold): with more components than the data support, a few points
#   dominate a component and LOO's estimate for them should not be trusted.
# * LOO here uses the same posterior sampler as the rest of bgmm, started at each K's EM
#   estimate. For a K the data do not support, that posterior can be multimodal, and its
#   LOO then cannot be trusted however large its stacking weight: `loo_trusted` and
#   `loo_issues` say so for each K (Pareto $\hat k$ above 0.7 for more than 1% of the
#   points, `p_loo` above 1.5 times the number of parameters, chains in different modes or
#   an emptied component), and `select_k` recommends the simplest K that LOO trusts within
#   two `dse` of the best trusted K, with its reason.

# %%
table[["elpd_loo", "elpd_diff", "dse", "weight", "loo_trusted", "loo_issues", "recommended"]]

# %%
print(table.attrs["recommendation"])

# %% [markdown]
# ## K and the covariance family together: mclust's BIC table on Old Faithful
#
# The covariance of each component can be constrained: $\Sigma_k = \lambda_k D_k A_k D_k^T$
# with volume $\lambda_k$, shape $A_k$ and orientation $D_k$ each Equal across components,
# Varying, or the Identity (mclust's fourteen families, EII ... VVV; the derivation page of
# the docs has their table). `select_model` fits every K and family by EM, each cell from
# the best of ten restarts (mclust's model-based hierarchical agglomeration, k-means and
# eight k-means++ seeds, shared by the families of one K), and returns mclust's table;
# `plot_bic` draws mclust's BIC plot, one line per family, lower is better here (mclust
# plots $-\mathrm{BIC}$).

# %%
faithful = bgmm.load_old_faithful()
families = select_model(faithful, range(1, 6), FAMILIES, random_state=SEED)
bic_table(families).round(1)

# %%
plot_bic(families)

# %%
k_best, family_best = families["bic"].idxmin()
k_icl, family_icl = families["icl"].idxmin()
row = families.loc[(k_best, family_best)]
print(
    f"best by BIC: K = {k_best}, {family_best} (log-likelihood {row['log_likelihood']:.3f}, "
    f"{row['n_parameters']} parameters); best by ICL: K = {k_icl}, {family_icl}"
)

# %% [markdown]
# With all fourteen families, BIC picks three components sharing one ellipsoidal
# covariance (EEE) on Old Faithful, the model mclust picks too: a shared covariance costs
# far fewer parameters than three free ones, and the data do not pay for the extra ones.
# Families the Bayesian model also has (full, tied, diag, spherical, EII, EEI) can
# add PSIS-LOO beside BIC with `select_model(..., loo=True)`.

# %% [markdown]
# ## Versions

# %%
# %load_ext watermark
# %watermark -n -u -v -iv -w -p pymc,pytensor,jax,arviz,nutpie
