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
# # Fitting a data set larger than memory
#
# EM's iteration is a sum over the rows: at $\theta^t$, the E step of each row contributes
# $\gamma_{nk}$, $\gamma_{nk}(x_n - c_k)$ and $\gamma_{nk}(x_n - c_k)(x_n - c_k)^T$ to
# per-component sums, and the M step needs nothing else. So the rows can live anywhere,
# a block at a time: bgmm maps the E step over the blocks of a Dask array, sums the
# statistics in a tree, and takes the M step on the client. The iterations, history and
# result are those of the in-memory fit (to round-off); no more than a few blocks are in
# memory at once; and the same code runs on a laptop's threads, a `LocalCluster` or a
# cluster of machines.
#
# Here: a zarr store on disk, a `LocalCluster` of two worker processes, EM on every row,
# its standard errors, and a posterior from MCMC on a random subsample, compared with EM
# through the Bernstein-von Mises theorem. `BGMM_NOTEBOOK_ROWS` sets the size of the data
# (4 million rows by default; the test suite uses fewer), `BGMM_NOTEBOOK_DRAWS` the draws.

# %%
# %matplotlib inline
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from distributed import Client

import bgmm
from bgmm.bayes import sample_posterior
from bgmm.compare import compare
from bgmm.em import standard_errors
from bgmm.em.dask_engine import local_cluster
from bgmm.io import save_zarr
from bgmm.plots import plot_fit

# pip's PyTensor warns that its C backend found no BLAS; bgmm compiles with JAX instead.
warnings.filterwarnings("ignore", message=".*PyTensor could not link to a BLAS.*")
ROWS = int(os.environ.get("BGMM_NOTEBOOK_ROWS", "4000000"))
DRAWS = int(os.environ.get("BGMM_NOTEBOOK_DRAWS", "1000"))
SUBSAMPLE = 2000
SEED = 11

# %% [markdown]
# ## A cluster
#
# Two single-threaded worker processes on this machine: a `distributed.LocalCluster`
# whose workers start with `WORKER_ENVIRON` (glibc's memory thresholds at 64 MB: with
# Dask's default trim threshold every large buffer is a fresh mmap, and a block's E step
# takes 2.7 times as long). On a real cluster, pass the scheduler's address instead:
# `Client("tcp://host:8786")`. Without any `Client`, bgmm runs on Dask's threaded
# scheduler in this process. The dashboard shows every iteration's tasks (one per block)
# stream through the workers, and their memory.

# %%
cluster = local_cluster(2)
client = Client(cluster)
print(f"dashboard: {client.dashboard_link}")

# %% [markdown]
# ## Data in a zarr store
#
# Three components in two dimensions, drawn lazily in blocks of 250,000 rows (each block
# with its own seed, spawned from `SEED`) and written to disk block by block: at no point
# is the whole data set in memory. `save_zarr` writes under a temporary name and renames
# the store into place when it is complete.
#
# Blocks of a few MB to a few hundred MB work well: each is one Dask task per iteration
# (smaller blocks mean more scheduling; larger ones more memory per worker: the block, its
# copy for the compiled function and the E step's intermediates). Inside a task, the E
# step runs over sub-chunks of about `bgmm.em.solver.CHUNK_BYTES` of intermediates.

# %%
truth = bgmm.GMMParams.from_arrays(
    weights=[0.5, 0.3, 0.2],
    means=[[0.0, 0.0], [3.0, 1.0], [0.5, 3.5]],
    covariances=[
        [[1.0, 0.3], [0.3, 0.6]],
        [[0.5, -0.1], [-0.1, 0.8]],
        [[0.7, 0.0], [0.0, 0.4]],
    ],
)
simulated = bgmm.simulate(truth, ROWS, random_state=SEED, chunk_rows=250_000)
store = save_zarr(simulated.data, Path(tempfile.mkdtemp()) / "mixture.zarr")
data = bgmm.as_data(store)
print(
    f"{data.n_samples:,} rows x {data.n_features} features in {data.values.numblocks[0]} "
    f"blocks of {data.values.chunks[0][0]:,} rows ({data.values.nbytes / 1e6:.0f} MB); "
    f"lazy: {data.lazy}"
)

# %% [markdown]
# `as_data` read the store's metadata and made one pass over the blocks to check them
# (finite values, magnitudes); `data.values` is a Dask array, and nothing is loaded.
#
# ## EM on every row
#
# The starts (here three restarts: k-means, run together) come from a seeded subsample of
# `bgmm.em.dask_engine.START_ROWS` rows; then each iteration is one pass over the store,
# for all restarts at once.

# %%
em = bgmm.fit_em(data, 3, n_init=3, random_state=SEED)
print(
    f"converged: {em.converged} after {em.n_iter} iterations; "
    f"ln p(X | theta) = {em.log_likelihood:,.3f}"
)
em.history_frame().tail(3)

# %% [markdown]
# The history is the in-memory one: the log-likelihood, $Q$, the entropy, the bound
# $\mathcal{L}$ and the KL divergence at every iteration. The responsibilities are a Dask
# array too, computed only when asked for (here, the first rows):

# %%
print(type(em.resp).__name__, em.resp.shape)
em.resp[:3].compute().round(4)

# %% [markdown]
# The standard errors come from the observed information, another sum over the rows,
# computed the same way (a reduction over the blocks):

# %%
se = standard_errors(em.params, data)
np.round(np.c_[em.weights, se.weights, em.means, se.means], 5)

# %% [markdown]
# ## A posterior from a subsample
#
# MCMC on millions of rows would need every row in memory and a gradient over all of them
# at every leapfrog step. A random subsample of $n$ rows gives a posterior of the same
# model in seconds. EM on all $N$ rows and the posterior on $n$ rows then estimate the same
# $\theta$, with different precision. The Bernstein-von Mises theorem says that, for a
# regular model near its maximum, the posterior is approximately normal, centred at the
# maximum likelihood estimate of the data it conditions on, with covariance the inverse
# observed information of those data. The information grows linearly with the number of
# rows, so
#
# $$
# \mathrm{sd}_{\text{posterior}, n} \approx \sqrt{N / n}\; \mathrm{SE}_{\text{EM}, N},
# \qquad
# \text{se\_ratio} = \mathrm{SE}_{\text{EM}, N} / \mathrm{sd}_{\text{posterior}, n}
# \approx \sqrt{n / N},
# $$
#
# and the full-data estimate lies inside the subsample posterior about as often as the
# truth does: $z = (\hat\theta_N - \bar\theta_n) / \mathrm{sd}_n$ is roughly standard
# normal (its variance is $1 - n/N$).
#
# The chains start at the full-data EM estimate, and the draws are labelled like it.

# %%
subsample = data.sample_rows(SUBSAMPLE, random_state=SEED)
posterior = sample_posterior(
    subsample,
    3,
    em=em.params,
    draws=DRAWS,
    tune=DRAWS,
    chains=2,
    random_seed=SEED,
    progressbar=False,
)
comparison = compare(em, posterior, standard_error=se)
table = comparison.to_dataframe()[["em", "em_se", "mean", "sd", "em_in_hdi", "z", "se_ratio"]]
table.round(4)

# %%
print(f"sqrt(n / N) = {np.sqrt(SUBSAMPLE / data.n_samples):.4f}")
print(f"median se_ratio = {table['se_ratio'].median():.4f}")
print(f"EM inside the 94% HDI for {table['em_in_hdi'].mean():.0%} of the parameters")
print(f"sd of z over the parameters = {table['z'].std():.2f}")

# %% [markdown]
# The ratio of EM's standard error to the subsample posterior's sd is close to
# $\sqrt{n/N}$: the posterior on $n$ rows is as wide as the theorem says. The $z$ values
# are of order one: the subsample posterior is centred at the subsample's own maximum,
# about one posterior sd from the full-data estimate, so EM's estimate lies inside most of
# the posterior's intervals. All the parameters share one subsample, so their $z$ are
# correlated, and the share inside the HDIs varies more from one subsample to the next
# than that of independent intervals would. The two solvers agree on the model, and a
# subsample posterior, scaled by $\sqrt{n/N}$, is the yardstick for EM on all rows.
# Memberships agree too: at the subsample's rows, EM and the posterior pick the same
# component for

# %%
print(f"{comparison.membership['share_same_component']:.1%} of the rows")

# %% [markdown]
# The fit, drawn on the subsample's points:

# %%
labels = np.asarray(bgmm.evaluate(em.params, subsample)[0]).argmax(axis=1)
plot_fit(subsample, em.params, labels, title=f"EM on {data.n_samples:,} rows")

# %% [markdown]
# The command line does the same with `bgmm fit mixture.zarr -k 3 --scheduler local:2`
# (a line per iteration), and `bgmm select-k mixture.zarr --no-loo --scheduler local:2`
# compares numbers of components by BIC, AIC and ICL.

# %%
client.close()
cluster.close()

# %% [markdown]
# ## Versions

# %%
# %load_ext watermark
# %watermark -n -u -v -iv -w -p pymc,pytensor,jax,arviz,nutpie,dask,distributed,zarr
