"""Peak memory a fit adds, in multiples of the data's size: bgmm against scikit-learn.

Each measurement runs in a fresh process: make the data, warm up (a fit of the same data,
so that compilation and imports are not counted), reset the kernel's peak-RSS mark, fit,
and report (peak RSS during the fit - RSS before) / data bytes. The reset needs Linux
(``/proc/self/clear_refs``); elsewhere the script says so and uses the process's peak, which
can hide what the fit adds below the peak left by making the data. Issue 9's goal: <= 2x
for bgmm at N=4e6 d=8 K=8 and N=2e5 d=50 K=8 (the returned responsibilities, N x K, are
included).

    .venv/bin/python benchmarks/bench_memory.py [--n 4000000 --d 8 --k 8] [--iters 5]
"""

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import os, sys, warnings, json
import numpy as np
n, d, k, iters = (int(a) for a in sys.argv[1:5])
which = sys.argv[5]
rng = np.random.default_rng(0)
X = rng.normal(size=(n, d)) + rng.integers(0, 4, size=(n, 1)) * 5.0
start_means = X[rng.choice(n, k, replace=False)]
kw = dict(max_iter=iters, tol=0.0)
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
def peak():
    import resource
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
fit(X)  # warm-up on the same shapes: compilation is not counted
import gc; gc.collect()
exact = reset_peak()
before = status("VmRSS") if exact else peak()
out = fit(X)
after = status("VmHWM") if exact else peak()
print(json.dumps({"added": (after - before) / X.nbytes, "data_mb": X.nbytes / 2**20,
                  "exact": exact}))
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
        if not b["exact"]:
            print("  (no /proc/self/clear_refs here: a lower bound, from the process's peak)")


if __name__ == "__main__":
    main()
