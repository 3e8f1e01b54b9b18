"""Milliseconds per EM iteration on whatever JAX device is present: bgmm and a JAX reference.

The reference is the plainest device-resident EM loop: the whole loop in one
``jax.lax.fori_loop`` over (K, N, d) differences, float64, no chunks, no history. bgmm runs
its compiled blocks (the data stay on the device; theta and the history rows come back
once per block). Issue 9's goal: bgmm within 2x of the reference on a GPU.

    .venv/bin/python benchmarks/bench_device.py [--sizes 100000 1000000 10000000]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from bgmm import fit_em

jax.config.update("jax_enable_x64", True)


def problem(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(k, d))
    X = centres[rng.integers(0, k, size=n)] + rng.normal(size=(n, d))
    start = (
        np.full(k, 1.0 / k),
        X[rng.choice(n, k, replace=False)],
        np.broadcast_to(np.eye(d), (k, d, d)).copy(),
    )
    return X, start


def reference(X, start, n_iter):
    d = start[1].shape[1]

    @jax.jit
    def run(X, w, mu, cov):
        def body(_, theta):
            w, mu, cov = theta
            chol = jnp.linalg.cholesky(cov)
            diff = X[None, :, :] - mu[:, None, :]
            y = jax.scipy.linalg.solve_triangular(chol, diff.transpose(0, 2, 1), lower=True)
            logdet = 2 * jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)).sum(-1)
            lp = jnp.log(w)[:, None] - 0.5 * (
                d * jnp.log(2 * jnp.pi) + logdet[:, None] + (y**2).sum(1)
            )
            r = jnp.exp(lp - jax.scipy.special.logsumexp(lp, axis=0))
            nk = r.sum(1)
            mu = (r @ X) / nk[:, None]
            diff = X[None] - mu[:, None]
            cov = jnp.einsum("kn,kni,knj->kij", r, diff, diff) / nk[
                :, None, None
            ] + 1e-6 * jnp.eye(d)
            return nk / nk.sum(), mu, cov

        return jax.lax.fori_loop(0, n_iter, body, (w, mu, cov))

    Xd = jax.device_put(X)
    jax.block_until_ready(run(Xd, *start))
    t0 = time.perf_counter()
    jax.block_until_ready(run(Xd, *start))
    return (time.perf_counter() - t0) / n_iter


def bgmm_time(X, start, n_iter):
    kw = {"weights_init": start[0], "means_init": start[1], "covariances_init": start[2]}
    fit_em(X, len(start[0]), max_iter=n_iter, tol=0.0, **kw)  # compile
    t0 = time.perf_counter()
    fit_em(X, len(start[0]), max_iter=n_iter, tol=0.0, **kw)
    return (time.perf_counter() - t0) / n_iter


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--d", type=int, default=8)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--iters", type=int, default=32)
    args = parser.parse_args()
    print(
        f"JAX device: {jax.devices()[0]}; d={args.d}, K={args.k}, {args.iters} iterations, float64"
    )
    print(f"{'N':>10} {'bgmm ms/iter':>14} {'JAX reference':>14} {'ratio':>7}")
    for n in args.sizes:
        X, start = problem(n, args.d, args.k)
        b, r = bgmm_time(X, start, args.iters), reference(X, start, args.iters)
        print(f"{n:>10} {1e3 * b:>14.2f} {1e3 * r:>14.2f} {b / r:>7.2f}")


if __name__ == "__main__":
    main()
