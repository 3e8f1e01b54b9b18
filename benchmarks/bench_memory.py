"""Peak memory a fit adds, in multiples of the data's size: bgmm against scikit-learn.

Each measurement runs in a fresh process: make the data, warm up (a small fit, so that
compilation and imports are not counted), record the peak RSS, fit, and report
(peak RSS after - peak RSS before) / data bytes. Issue 9's goal: <= 2x for bgmm at
N=4e6 d=8 K=8 and N=2e5 d=50 K=8 (the returned responsibilities, N x K, are included).

    .venv/bin/python benchmarks/bench_memory.py [--n 4000000 --d 8 --k 8] [--iters 5]
"""

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import os, resource, sys, warnings, json
import numpy as np
n, d, k, iters = (int(a) for a in sys.argv[1:5])
which = sys.argv[5]
rng = np.random.default_rng(0)
X = rng.normal(size=(n, d)) + rng.integers(0, 4, size=(n, 1)) * 5.0
start_means = X[rng.choice(n, k, replace=False)]
kw = dict(max_iter=iters, tol=0.0)
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if which == "bgmm":
    from bgmm import fit_em
    def fit(Z):
        return fit_em(Z, k, means_init=start_means, weights_init=np.full(k, 1 / k),
                      covariances_init=np.broadcast_to(np.eye(d), (k, d, d)), **kw)
else:
    from sklearn.mixture import GaussianMixture
    def fit(Z):
        gm = GaussianMixture(k, means_init=start_means, weights_init=np.full(k, 1 / k),
                             precisions_init=np.broadcast_to(np.eye(d), (k, d, d)), **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm.fit(Z)
        return gm.predict_proba(Z)  # bgmm returns the responsibilities; count them here too
warnings.simplefilter("ignore")
fit(X[:20000])
before = peak()
out = fit(X)
after = peak()
print(json.dumps({"added": (after - before) / X.nbytes, "data_mb": X.nbytes / 2**20}))
"""


def measure(which, n, d, k, iters):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(d), str(k), str(iters), which],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--d", type=int, default=None)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()
    cases = [(args.n, args.d)] if args.n else [(4_000_000, 8), (200_000, 50)]
    for n, d in cases:
        b = measure("bgmm", n, d, args.k, args.iters)
        s = measure("sklearn", n, d, args.k, args.iters)
        print(
            f"N={n} d={d} K={args.k} (data {b['data_mb']:.0f} MB): memory a fit adds, "
            f"bgmm {b['added']:.2f}x, scikit-learn {s['added']:.2f}x the data (goal <= 2x)"
        )


if __name__ == "__main__":
    main()
