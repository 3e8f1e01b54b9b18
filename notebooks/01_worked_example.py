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
# # The worked example, reproduced
#
# The derivation's worked example clusters six people by height and weight into two groups
# and does one EM iteration by hand. This notebook does the same iteration with bgmm's own
# functions, puts every number beside the document's, and then shows what happens next:
# both new covariances are singular, and a second E step needs `reg_covar`.
#
# Notation (see the derivation page): $\pi_k$ is `weights`, $\mu_k$ `means`, $\Sigma_k$
# `covariances`, $\gamma$ `resp`, $N_k$ (the document's $m_c$) `nk`. The code's `X` is
# $(N, l)$ and `resp` is $(N, K)$: the transposes of the derivation's matrices.

# %%
# %matplotlib inline
import warnings

import numpy as np
import pandas as pd

import bgmm
from bgmm.em import evaluate, fit_em, log_component_densities
from bgmm.exceptions import SingularCovarianceError, SingularCovarianceWarning
from bgmm.plots import plot_em_trace, plot_fit

pd.set_option("display.precision", 10)

# %% [markdown]
# ## The data and the initial table
#
# Persons A–F, and the document's starting point: women $\mu = [162, 57]$, men
# $\mu = [185, 80]$, $\Sigma = 10 I$ for both, $\pi = 0.5$ each.

# %%
example = bgmm.load_worked_example()
data, initial, components = example.data, example.initial, list(example.component_names)
data.to_dataframe()

# %%
pd.DataFrame(
    {
        "weight π": initial.weights,
        "mean μ": [m.tolist() for m in initial.means],
        "covariance Σ": [c.tolist() for c in initial.covariances],
    },
    index=pd.Index(components, name="component"),
)

# %% [markdown]
# ## E step
#
# The Gaussian densities $\mathcal{N}(x_n \mid \mu_k, \Sigma_k)$ come from
# `log_component_densities` (bgmm works in log space: the men's density of A is $10^{-29}$).
# The document rounds them; bgmm's are exact. Its 1.15e-29 for the men is
# $\frac{1}{62.83} \times 7.2 \times 10^{-28}$ with $e^{-62.5} = 7.19 \times 10^{-28}$
# rounded to two digits first; the exact value is $1.144 \times 10^{-29}$.

# %%
log_phi = log_component_densities(initial, data)
densities = pd.DataFrame(np.exp(log_phi), index=data.obs_names, columns=components)
densities

# %%
document = {"N(A | women)": 0.0107, "N(A | men)": 1.15e-29}
pd.DataFrame(
    {
        "document": document,
        "bgmm": {
            "N(A | women)": densities.loc["A", "women"],
            "N(A | men)": densities.loc["A", "men"],
        },
    }
)

# %% [markdown]
# The responsibilities $\gamma_{kn} = \pi_k \phi_k(x_n) / \sum_j \pi_j \phi_j(x_n)$ are the
# E step at the initial table (`evaluate` returns $\ln\gamma$ and $\ln p(x_n \mid \theta)$).
# The document rounds them to 1 and 0; person C is the least certain.

# %%
log_resp, log_norm = evaluate(initial, data)
resp = pd.DataFrame(np.exp(log_resp), index=data.obs_names, columns=components)
resp

# %% [markdown]
# ## M step
#
# One iteration of `fit_em` from the initial table, with `reg_covar=0` so that it is the
# derivation's M step exactly: $N_k = \sum_n \gamma_{kn}$, $\pi_k = N_k / N$,
# $\mu_k = X\gamma_k / N_k$, $\Sigma_k = X \operatorname{diag}(\gamma_k) X^T / N_k - \mu_k\mu_k^T$.
# It warns that the new covariances are singular (kept visible here on purpose).

# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", SingularCovarianceWarning)
    one_step = fit_em(
        data,
        2,
        max_iter=1,
        tol=0.0,
        reg_covar=0.0,
        weights_init=initial.weights,
        means_init=initial.means,
        covariances_init=initial.covariances,
    )
for w in caught:
    print(f"{w.category.__name__}: {w.message}")

# %%
nk = resp.sum(axis=0)
table = pd.DataFrame(
    {
        "document": [3, 3, 0.5, 0.5, "[165, 60]", "[185, 80]", 16.67, 16.67],
        "bgmm": [
            nk["women"],
            nk["men"],
            one_step.weights[0],
            one_step.weights[1],
            one_step.means[0].round(6).tolist(),
            one_step.means[1].round(6).tolist(),
            one_step.covariances[0, 0, 0],
            one_step.covariances[1, 0, 0],
        ],
    },
    index=[
        "m_women",
        "m_men",
        "π_women",
        "π_men",
        "μ_women",
        "μ_men",
        "Σ_women (every entry)",
        "Σ_men (every entry)",
    ],
)
table

# %% [markdown]
# Every entry of each new covariance is the same number (16.6666664 for the women,
# 16.6666737 for the men; the document prints 16.67 for both). The checks below fail if
# bgmm ever drifts from the document.

# %%
np.testing.assert_allclose(densities.loc["A", "women"], 0.0107, rtol=5e-3)
np.testing.assert_allclose(densities.loc["A", "men"], 1.15e-29, rtol=1e-2)  # hand rounding
np.testing.assert_allclose(nk, [3, 3], atol=1e-6)
np.testing.assert_allclose(one_step.weights, [0.5, 0.5], atol=1e-7)
np.testing.assert_allclose(one_step.means, [[165, 60], [185, 80]], atol=1e-6)
np.testing.assert_allclose(one_step.covariances, np.full((2, 2, 2), 16.67), atol=5e-3)
one_step.covariances

# %% [markdown]
# ## What happens next: singular covariances
#
# Every person lies on the line Weight = Height − 105, so each cluster's covariance has
# rank 1: $|\Sigma_k| = 0$ and $\phi_k$ is undefined off that line. A second E step cannot
# be taken. bgmm says so instead of returning NaN:

# %%
print("eigenvalues of Σ_women:", np.linalg.eigvalsh(one_step.covariances[0]))
try:
    fit_em(
        data,
        2,
        max_iter=2,
        tol=0.0,
        reg_covar=0.0,
        weights_init=initial.weights,
        means_init=initial.means,
        covariances_init=initial.covariances,
    )
except SingularCovarianceError as err:
    print(f"SingularCovarianceError: {err}")

# %% [markdown]
# ## What `reg_covar` does
#
# `reg_covar` adds $\epsilon I$ to every covariance after the M step (scikit-learn's
# convention). The covariances become invertible, EM continues and converges. The M step
# is then no longer the exact maximiser of $Q$, so the log-likelihood may fall by at most a
# computable "regularisation gap", recorded in the history. Every row of the history also
# checks the bound $\ln p(X \mid \theta) = \mathcal{L}(q, \theta) + \mathrm{KL}(q \| p)$.
#
# Here the log-likelihood even falls a little at every iteration (by less than $10^{-3}$ in
# all): the iterations move from the first step's near-perfect fit towards the fixed point
# of the regularised update, which is not a maximum of the likelihood. That is allowed,
# because the gap is infinite on most rows, and rightly so: without $\epsilon$ the M step
# would return singular covariances again, whose $Q$ is $+\infty$ (the data lie on a line).
# Where round-off leaves a tiny positive eigenvalue the gap is finite but large.

# %%
regularised = fit_em(
    data,
    2,
    reg_covar=1.0,
    weights_init=initial.weights,
    means_init=initial.means,
    covariances_init=initial.covariances,
)
history = regularised.history_frame()
history

# %%
np.testing.assert_allclose(
    history["log_likelihood"], history["lower_bound"] + history["kl"], rtol=1e-10
)
print(f"converged: {regularised.converged} after {regularised.n_iter} iterations")
print("weights:", regularised.weights.round(4))
print("means:", regularised.means.round(3).tolist())
print("covariances (ε = 1 on the diagonal):", regularised.covariances.round(3).tolist())

# %% [markdown]
# With $\epsilon = 1$ the clusters keep their members and their line, and the covariance
# gains a unit of spread across it: the smallest eigenvalue is now $\epsilon$.

# %%
plot_fit(data, regularised.params, labels=regularised.resp.argmax(axis=1), title="reg_covar = 1")

# %%
plot_em_trace(regularised)

# %% [markdown]
# ## Versions

# %%
# %load_ext watermark
# %watermark -n -u -v -iv -w -p pytensor,jax
