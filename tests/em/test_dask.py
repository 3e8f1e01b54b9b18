"""EM on Dask arrays: the in-memory fit, block by block, on any scheduler.

Small data (seconds). The fits on a LocalCluster of two worker processes, and the count of
compilations on its workers, are in tests/covariance/test_families.py, beside the in-memory
fits of every covariance family they match.
"""

import os

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from distributed import Client

from bgmm import GaussianMixtureEM, as_data, fit_em, simulate
from bgmm.em import dask_engine, solver, standard_errors
from bgmm.io import load_fit, save_fit, save_zarr
from tests.conftest import make_params

K = 3


@pytest.fixture(scope="module")
def X():
    return np.array(simulate(make_params(K, 2, seed=1), 900, random_state=2).data.values)


@pytest.fixture(scope="module")
def reference(X):
    return fit_em(X, K, n_init=2, random_state=0)


def assert_same_fit(got, want, rtol=1e-10):
    assert got.n_iter == want.n_iter and got.converged == want.converged
    for a, b in ((got.weights, want.weights), (got.means, want.means)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
    scale = np.abs(want.covariances).max()
    np.testing.assert_allclose(got.covariances, want.covariances, rtol=rtol, atol=rtol * scale)
    nats = np.abs(want.history["log_likelihood"]).max()  # every field is in nats of ln p
    for field in solver.HISTORY_FIELDS:
        np.testing.assert_allclose(got.history[field], want.history[field], atol=rtol * nats)
    np.testing.assert_allclose(got.log_likelihood, want.log_likelihood, rtol=rtol)


# ---------------------------------------------------------------- the same fit, threaded


def test_dask_array_gives_the_in_memory_fit(X, reference):
    res = fit_em(da.from_array(X, chunks=(200, 2)), K, n_init=2, random_state=0)
    assert_same_fit(res, reference)
    assert isinstance(res.resp, da.Array)  # lazy: nothing N-sized computed
    np.testing.assert_allclose(res.resp.compute(), reference.resp, atol=1e-12)
    np.testing.assert_allclose(res.init_log_likelihoods, reference.init_log_likelihoods)


@pytest.mark.parametrize("rows", [(1, 7, 892), (450, 450), (900,)])
def test_any_blocks_give_the_same_fit(X, reference, rows):
    res = fit_em(da.from_array(X, chunks=(rows, 2)), K, n_init=2, random_state=0)
    assert_same_fit(res, reference, rtol=1e-12)


def test_sample_weights_as_a_dask_array(X):
    w = np.random.default_rng(0).integers(0, 4, size=len(X)).astype(float)
    want = fit_em(X, K, sample_weight=w, random_state=0)
    lazy = da.from_array(X, chunks=(256, 2))
    weights = da.from_array(w, chunks=100)  # rechunked to the rows' blocks
    assert_same_fit(fit_em(lazy, K, sample_weight=weights, random_state=0), want)


def test_bad_sample_weights_are_named(X):
    lazy = da.from_array(X, chunks=(256, 2))
    w = np.ones(len(X))
    w[700] = -2.0
    with pytest.raises(ValueError, match=r"got -2.0 at row 700 \(1 such row"):
        fit_em(lazy, K, sample_weight=da.from_array(w, chunks=300))
    with pytest.raises(ValueError, match=r"shape \(n_samples,\) = \(900,\), got \(899,\)"):
        fit_em(lazy, K, sample_weight=da.ones(899))


def test_progress_reports_every_iteration(X):
    seen = []
    res = fit_em(da.from_array(X, chunks=(300, 2)), K, random_state=0, progress=seen.append)
    assert [s.iteration for s in seen] == list(range(res.n_iter + 1))
    assert seen[-1].log_likelihood == res.log_likelihood and seen[-1].n_running == 0
    np.testing.assert_allclose([s.log_likelihood for s in seen[1:]], res.history["log_likelihood"])


def test_starts_from_a_seeded_subsample(X, monkeypatch):
    monkeypatch.setattr(dask_engine, "START_ROWS", 200)
    lazy = da.from_array(X, chunks=(256, 2))
    a = fit_em(lazy, K, random_state=7, init_params="k-means++", n_init=2)
    b = fit_em(lazy, K, random_state=7, init_params="k-means++", n_init=2)
    assert_same_fit(a, b, rtol=0)
    # The start is the in-memory one on the subsample, the iterations those of all rows.
    rng = np.random.default_rng(7)
    rows = np.sort(rng.choice(len(X), size=200, replace=False))
    family = solver.get_family("VVV")
    user = {"weights": None, "means": None, "covariances": None}
    starts = [
        solver._initial_params(X[rows], None, K, "k-means++", rng, 1e-6, user, "float64", family)
        for _ in range(2)
    ]
    best = int(np.argmax(a.init_log_likelihoods))
    w0, mu0, cov0 = starts[best]
    want = fit_em(X, K, weights_init=w0, means_init=mu0, covariances_init=cov0)
    assert_same_fit(a, want)


def test_nothing_the_size_of_the_data_reaches_the_client(X, monkeypatch):
    monkeypatch.setattr(dask_engine, "START_ROWS", 100)
    largest = []

    def nbytes(out):
        if isinstance(out, list | tuple):
            return sum(nbytes(part) for part in out)
        return getattr(out, "nbytes", 0)

    def recording_get(dsk, keys, **kwargs):
        out = dask.threaded.get(dsk, keys, **kwargs)
        largest.append(nbytes(out))
        return out

    lazy = da.from_array(X, chunks=(128, 2))
    with dask.config.set(scheduler=recording_get):
        data = as_data(lazy)
        res = fit_em(data, K, n_init=2, random_state=0)
        GaussianMixtureEM(K, n_init=2, random_state=0).fit(data).score(data)
    assert len(largest) > res.n_iter  # a computation per iteration, all recorded
    # At most the subsample of the starts (100 rows x 2 features), never the data.
    assert max(largest) <= 100 * 2 * 8 < X.nbytes


# ---------------------------------------------------------------- lazy outputs


def test_estimator_outputs_are_lazy_and_equal(X):
    lazy = da.from_array(X, chunks=(300, 2))
    w = np.linspace(0.5, 2.0, len(X))
    est = GaussianMixtureEM(K, random_state=0).fit(lazy)
    ref = GaussianMixtureEM(K, random_state=0).fit(X)
    for method in ("predict", "predict_proba", "score_samples"):
        got = getattr(est, method)(lazy)
        assert isinstance(got, da.Array), method
        np.testing.assert_allclose(got.compute(), getattr(ref, method)(X), atol=1e-10)
    assert isinstance(est.fit_predict(lazy), da.Array)
    for method in ("score", "bic", "aic"):
        got, want = getattr(est, method)(lazy), getattr(ref, method)(X)
        assert isinstance(got, float)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        weighted = getattr(est, method)(lazy, sample_weight=da.from_array(w, chunks=400))
        np.testing.assert_allclose(weighted, getattr(ref, method)(X, sample_weight=w), rtol=1e-12)


def test_criteria_of_lazy_data_are_reductions(X):
    from bgmm.selection import select_k

    lazy = da.from_array(X, chunks=(300, 2))
    got = select_k(lazy, [K], n_init=2, random_state=0, loo=False)
    want = select_k(X, [K], n_init=2, random_state=0, loo=False)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-10)  # ICL's entropy too


def test_standard_errors_are_a_reduction_over_blocks(X, reference):
    lazy = as_data(da.from_array(X, chunks=(128, 2)))
    em = fit_em(X, K, random_state=0)  # every family's information comes from these sums
    got = standard_errors(em.params, lazy)
    want = standard_errors(em.params, X)
    np.testing.assert_allclose(got.information, want.information, rtol=1e-10)
    np.testing.assert_allclose(got.means, want.means, rtol=1e-9)


def test_zarr_store_is_fitted_without_loading_it(X, reference, tmp_path):
    store = tmp_path / "x.zarr"
    da.to_zarr(da.from_array(X, chunks=(128, 2)), str(store))
    data = as_data(store)
    assert data.lazy and data.values.chunks[0][0] == 128
    res = fit_em(store, K, n_init=2, random_state=0)
    assert_same_fit(res, reference)


def test_saved_fit_of_lazy_data_keeps_parameters_not_rows(X, tmp_path):
    data = as_data(da.from_array(X, chunks=(300, 2)))
    em = fit_em(data, K, random_state=0)
    path = save_fit(tmp_path / "fit.nc", data=data, em=em, settings={"scheduler": "local:2"})
    fit = load_fit(path)
    assert fit.data is None and fit.em.resp is None and fit.data_source == data.source
    np.testing.assert_array_equal(fit.em.means, em.means)
    np.testing.assert_array_equal(fit.em.history, em.history)
    assert fit.settings == {"scheduler": "local:2"} and fit.em.feature_names == ("x0", "x1")
    with xr.open_datatree(path) as tree:  # no rows and no responsibilities in the file
        assert "x" not in tree["bgmm_data"] and "resp" not in tree["bgmm_em"]
        assert tree["bgmm_data"].attrs["n_samples"] == len(X)


def test_bayesian_model_refuses_lazy_data_and_names_the_fix(X):
    from bgmm.bayes import build_model

    data = as_data(da.from_array(X, chunks=(300, 2)))
    with pytest.raises(ValueError, match=r"lazy \(900 rows.*data.sample_rows\(n"):
        build_model(data, K)
    sub = data.sample_rows(50, random_state=0)
    assert not sub.lazy and sub.n_samples == 50
    np.testing.assert_array_equal(sub.values, X[[int(r) for r in sub.obs_names]])


def test_lazy_simulation_is_seeded_and_saved_atomically(tmp_path):
    params = make_params(2, 3, seed=2)
    a = simulate(params, 1000, random_state=4, chunk_rows=300)
    b = simulate(params, 1000, random_state=4, chunk_rows=300)
    assert a.data.lazy and a.data.values.chunks[0] == (300, 300, 300, 100)
    np.testing.assert_array_equal(a.data.values.compute(), b.data.values.compute())
    labels = a.labels.compute()
    assert set(np.unique(labels)) == {0, 1} and len(labels) == 1000
    store = save_zarr(a.data, tmp_path / "x.zarr", chunk_rows=250)
    back = as_data(store)
    assert back.values.chunks[0] == (250,) * 4 and back.feature_names == a.data.feature_names
    np.testing.assert_array_equal(back.values.compute(), a.data.values.compute())
    with pytest.raises(ValueError, match="exists; bgmm does not overwrite a store"):
        save_zarr(a.data, store)
    assert [p.name for p in tmp_path.iterdir()] == ["x.zarr"]  # no temporary left behind


# ---------------------------------------------------------------- a distributed cluster


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux's")
def test_local_cluster_workers_are_single_threaded_and_pinned():
    cpus = sorted(os.sched_getaffinity(0))
    n = min(2, len(cpus))
    with dask_engine.local_cluster(n, dashboard_address=":0") as cluster, Client(cluster) as c:
        pinned = c.run(lambda: sorted(os.sched_getaffinity(0)))
        environ = c.run(lambda: os.environ.get("MALLOC_MMAP_THRESHOLD_"))
        threads = {w.nthreads for w in cluster.workers.values()}
    assert sorted(len(v) for v in pinned.values()) == [1] * n  # one CPU each
    assert sorted(v[0] for v in pinned.values()) == cpus[:n]
    assert set(environ.values()) == {str(2**26)} and threads == {1}
