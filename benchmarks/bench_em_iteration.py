"""Time one full-covariance EM iteration: bgmm against scikit-learn's GaussianMixture.

Same data, same starting parameters, a fixed number of iterations (tol=0), one thread (BLAS
and XLA). Prints milliseconds per iteration and the ratio bgmm / sklearn (issue 9's goals:
<= 0.2 at N=100,000 d=8 K=8, <= 0.35 at N=20,000 d=32 K=8). Run with ``make bench``.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_em_iteration.py [--n N --d D]
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# bgmm's EM graphs run on XLA (JAX): keep it to one thread too, so the ratio compares
# single-threaded implementations.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from bgmm import GMMParams, fit_em, simulate


def problem(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, d, d))
    truth = GMMParams.from_arrays(
        rng.dirichlet(np.full(k, 5.0)),
        rng.normal(scale=3.0, size=(k, d)),
        a @ a.transpose(0, 2, 1) / d + 0.5 * np.eye(d),
    )
    X = np.array(simulate(truth, n, random_state=seed + 1).data.values)
    start_means = X[rng.choice(n, k, replace=False)]
    start = (np.full(k, 1.0 / k), start_means, np.broadcast_to(np.cov(X.T), (k, d, d)).copy())
    return X, start


def time_bgmm(X, start, n_iter, reg):
    t0 = time.perf_counter()
    res = fit_em(
        X,
        len(start[0]),
        max_iter=n_iter,
        tol=0.0,
        reg_covar=reg,
        weights_init=start[0],
        means_init=start[1],
        covariances_init=start[2],
    )
    return time.perf_counter() - t0, res


def time_sklearn(X, start, n_iter, reg):
    gm = GaussianMixture(
        len(start[0]),
        max_iter=n_iter,
        tol=0.0,
        reg_covar=reg,
        weights_init=start[0],
        means_init=start[1],
        precisions_init=np.linalg.inv(start[2]),
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    return time.perf_counter() - t0, gm


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=8)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="N=20,000, 3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 20_000, 3
    X, start = problem(args.n, args.d, args.k)
    reg = 1e-6
    time_bgmm(X[:1000], start, 1, reg)  # compile once, outside the timings
    bgmm_times, sk_times = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        t, res = time_bgmm(X, start, args.iters, reg)
        bgmm_times.append(t)
        t, gm = time_sklearn(X, start, args.iters, reg)
        sk_times.append(t)
    np.testing.assert_allclose(res.means, gm.means_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(res.covariances, gm.covariances_, rtol=1e-6, atol=1e-8)
    from threadpoolctl import threadpool_info

    blas = [
        f"{i['internal_api']} {i['version']} ({i['num_threads']} thread)"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]
    b, s = min(bgmm_times) / args.iters, min(sk_times) / args.iters
    print(
        f"EM, full covariance, N={args.n}, d={args.d}, K={args.k}, {args.iters} iterations, "
        f"best of {args.repeats}; BLAS: {', '.join(blas)}"
    )
    print(f"bgmm (PyTensor, JAX backend):   {1e3 * b:8.2f} ms per iteration")
    print(f"scikit-learn GaussianMixture:   {1e3 * s:8.2f} ms per iteration")
    print(f"ratio bgmm / sklearn: {b / s:.3f}  (sklearn / bgmm {s / b:.2f}x)")
    print("results agree to 1e-6 relative")


if __name__ == "__main__":
    main()
