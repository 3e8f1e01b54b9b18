"""EM on Dask: speed-up from one to two workers, scheduler overhead, out-of-core memory.

Three measurements (issue 11), each printed as it is made:

1. Speed: 5 iterations at N = 1e7, d = 8, K = 8 (640 MB, persisted in the workers'
   memory) on a LocalCluster of 1, then 2, single-threaded worker processes
   (``bgmm.em.dask_engine.local_cluster``, which sets ``WORKER_ENVIRON``), from the same
   start (no k-means: the iterations alone), after a warm-up fit that compiles. Goal: the
   two-worker run >= 1.5 times as fast on two cores. XLA and BLAS are held to one thread
   per worker so that "one worker" means one core.
2. Scheduler overhead: time per iteration on small data (N = 1e4, d = 2, K = 2, 4 blocks)
   on Dask's threaded scheduler and on a two-worker LocalCluster, beside the in-memory fit,
   whose compiled block runs 16 iterations per call.
3. Out-of-core memory: a zarr store of ``--store-gb`` GB (d = 8) written block by block,
   then, in a fresh process on the threaded scheduler, after a warm-up fit of one
   iteration (imports, compilation), ``as_data`` (its checking pass) and a fit of 3
   iterations from a given start (the store read 4 more times). Reported: the peak
   resident memory of the process during the fit (Linux's VmHWM, reset after the warm-up)
   and the part of it above the process before the fit, as fractions of the store's size.
   Goal: peak < 0.5 of the data's size.

    .venv/bin/python benchmarks/bench_dask.py [--n 10000000] [--store-gb 2] [--skip-memory]
"""

import os

# One thread per worker for XLA's and BLAS's pools (set before JAX and NumPy load, and
# inherited by the workers, which are spawned processes).
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

D, K = 8, 8


def mixture(k: int, d: int, seed: int = 0):
    from bgmm import GMMParams

    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, d, d))
    covariances = a @ a.transpose(0, 2, 1) / d + 0.5 * np.eye(d)
    return GMMParams.from_arrays(
        rng.dirichlet(np.full(k, 5.0)), rng.normal(scale=4.0, size=(k, d)), covariances
    )


def start_of(params):
    """A start near the truth: the means moved, unit covariances, equal weights."""
    k, d = params.n_components, params.n_features
    return {
        "weights_init": np.full(k, 1.0 / k),
        "means_init": params.means + 0.5,
        "covariances_init": np.broadcast_to(np.eye(d), (k, d, d)),
    }


def timed_fit(data, start, iterations: int) -> float:
    from bgmm import fit_em

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached on purpose
        t0 = time.perf_counter()
        fit_em(data, K, max_iter=iterations, tol=0.0, **start)
        return time.perf_counter() - t0


def speed(n: int, iterations: int) -> dict:
    from distributed import Client

    from bgmm import simulate
    from bgmm.em.dask_engine import local_cluster

    params = mixture(K, D)
    start = start_of(params)
    out = {}
    for workers in (1, 2):
        with local_cluster(workers, dashboard_address=":0") as cluster, Client(cluster):
            data = simulate(params, n, random_state=0, chunk_rows=250_000).data
            data = dataclasses.replace(data, values=data.values.persist())
            timed_fit(data, start, 1)  # compiles on every worker and on the client
            seconds = timed_fit(data, start, iterations)
            # iterations M steps need iterations + 1 passes (the last gives ln p)
            out[workers] = seconds / (iterations + 1)
            print(
                f"  {workers} worker(s): {seconds:.2f} s for {iterations} iterations "
                f"({out[workers]:.3f} s per pass over {n} rows)",
                flush=True,
            )
    return {"seconds_per_pass": out, "speedup": out[1] / out[2]}


def overhead() -> dict:
    import dask
    import dask.array as da
    from distributed import Client

    from bgmm import simulate
    from bgmm.em.dask_engine import local_cluster

    params = mixture(2, 2)
    X = np.array(simulate(params, 10_000, random_state=0).data.values)
    lazy = da.from_array(X, chunks=(2_500, 2))
    start = start_of(params)
    start = {"weights_init": start["weights_init"], "means_init": start["means_init"]}
    start["covariances_init"] = np.broadcast_to(np.eye(2), (2, 2, 2))
    n_iter = 50

    def per_iteration(data):
        from bgmm import fit_em

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_em(data, 2, max_iter=2, tol=0.0, **start)  # compile
            t0 = time.perf_counter()
            fit_em(data, 2, max_iter=n_iter, tol=0.0, **start)
        return (time.perf_counter() - t0) / (n_iter + 1)

    out = {"in_memory": per_iteration(X)}
    with dask.config.set(scheduler="threads"):
        out["threaded"] = per_iteration(lazy)
    with local_cluster(2, dashboard_address=":0") as cluster, Client(cluster):
        out["local_cluster"] = per_iteration(lazy.persist())
    for name, seconds in out.items():
        print(f"  {name}: {1e3 * seconds:.2f} ms per iteration", flush=True)
    return out


MEMORY_CHILD = r"""
import json, sys, warnings
sys.path.insert(0, sys.argv[2])
from bench_dask import K, mixture, start_of
import bgmm

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

store = sys.argv[1]
start = start_of(mixture(K, 8))
warnings.simplefilter("ignore")
# Warm-up on the same store: imports, and compiling the per-block statistics (for each
# block shape) and the update, so that what follows is the fit alone.
bgmm.fit_em(bgmm.as_data(store), K, max_iter=1, tol=0.0, **start)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak (VmHWM) to the present resident memory
baseline = status("VmRSS")
data = bgmm.as_data(store)  # one pass: checks and magnitudes
bgmm.fit_em(data, K, max_iter=3, tol=0.0, **start)
print(json.dumps({"baseline": baseline, "peak": status("VmHWM")}))
"""


def memory(store_gb: float) -> dict:
    import zarr

    from bgmm import simulate
    from bgmm.io import save_zarr

    n = int(store_gb * 1e9 / (8 * D))
    folder = Path(tempfile.mkdtemp(prefix="bgmm-bench-"))
    store = folder / "mixture.zarr"
    try:
        t0 = time.perf_counter()
        save_zarr(simulate(mixture(K, D), n, random_state=1, chunk_rows=250_000).data, store)
        size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        nbytes = zarr.open(str(store)).nbytes
        print(
            f"  store: {n} rows x {D}, {nbytes / 1e9:.2f} GB of float64 ({size / 1e9:.2f} GB on "
            f"disk), written in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        here = str(Path(__file__).resolve().parent)
        proc = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD, str(store), here],
            capture_output=True,
            text=True,
            check=True,
        )
        got = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    got.update(
        data_bytes=nbytes,
        peak_fraction=got["peak"] / nbytes,
        added_fraction=(got["peak"] - got["baseline"]) / nbytes,
    )
    print(
        f"  peak RSS {got['peak'] / 1e9:.2f} GB = {got['peak_fraction']:.3f} x the data "
        f"(after imports and compilation {got['baseline'] / 1e9:.2f} GB; the fit added "
        f"{got['added_fraction']:.3f} x)",
        flush=True,
    )
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--store-gb", type=float, default=2.0)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    print(f"{platform.node()}: {os.cpu_count()} cores, {platform.platform()}")
    print(f"1. {args.iterations} iterations, N={args.n}, d={D}, K={K}, data persisted:")
    result = {"speed": speed(args.n, args.iterations)}
    print(f"  speed-up with 2 workers: {result['speed']['speedup']:.2f} (goal >= 1.5)")
    print("2. Scheduler overhead on small data (N=1e4, d=2, K=2, 4 blocks):")
    result["overhead"] = overhead()
    if not args.skip_memory:
        print(f"3. Out-of-core fit of a {args.store_gb} GB zarr store (threaded scheduler):")
        result["memory"] = memory(args.store_gb)
        print(f"  goal: peak < 0.5 x the data: {result['memory']['peak_fraction'] < 0.5}")
    print(json.dumps(result, default=float))


if __name__ == "__main__":
    main()
