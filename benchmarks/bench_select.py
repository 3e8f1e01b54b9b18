"""Time mclust's table: select_model over 14 families x K = 1..5 on Old Faithful.

The table is fitted twice in one process with select_model's defaults (ten restarts per
cell, ``loo=False``): the first call compiles every problem shape (cold), the second reuses
them (warm, what an interactive session sees after its first table). mclust's
``mclustBIC`` on the same data and grid is the peer, timed in the same run when R with
mclust is installed (Debian: ``apt-get install r-cran-mclust``); the ratio is printed.
Issue 10's goal: seconds, not minutes, warm.

    .venv/bin/python benchmarks/bench_select.py [--families all] [--k-max 5]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

from bgmm import load_old_faithful
from bgmm.selection import select_model

MCLUST = """
suppressMessages(library(mclust))
x <- as.matrix(read.csv(commandArgs(trailingOnly = TRUE)[1]))
g <- as.integer(commandArgs(trailingOnly = TRUE)[2])
models <- strsplit(commandArgs(trailingOnly = TRUE)[3], ",")[[1]]
best <- Inf
for (i in 1:5) {
  t0 <- Sys.time()
  invisible(mclustBIC(x, G = 1:g, modelNames = models, verbose = FALSE))
  best <- min(best, as.numeric(Sys.time() - t0, units = "secs"))
}
cat(best, "\\n")
"""


def mclust_seconds(values, k_max: int, families: list[str]) -> float | None:
    """The best of five ``mclustBIC`` runs in seconds, or None without R and mclust."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        data, script = Path(tmp) / "data.csv", Path(tmp) / "time.R"
        pd.DataFrame(values).to_csv(data, index=False)
        script.write_text(MCLUST)
        run = subprocess.run(
            ["Rscript", str(script), str(data), str(k_max), ",".join(families)],
            capture_output=True,
            text=True,
        )
    if run.returncode != 0:
        print(f"mclust could not be timed: {run.stderr.strip()[-300:]}")
        return None
    return float(run.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="all")
    parser.add_argument("--k-max", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_old_faithful()
    k_range = range(1, args.k_max + 1)
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        table = select_model(data, k_range, args.families, random_state=args.seed)
        seconds.append(time.perf_counter() - start)
    families = list(dict.fromkeys(table.index.get_level_values("family")))
    (k, family), best = next(iter(table[table["best_bic"]].iterrows()))
    print(f"Old Faithful, {len(families)} families x K = 1..{args.k_max}: {len(table)} cells")
    print(f"best BIC: {family} K = {k} (ln p = {best['log_likelihood']:.3f})")
    print(f"bgmm select_model, cold (compiling): {seconds[0]:.1f} s")
    print(f"bgmm select_model, warm:             {seconds[1]:.2f} s")
    peer = mclust_seconds(data.values, args.k_max, families)
    if peer is None:
        print("mclust: not timed (no Rscript with mclust on this machine)")
    else:
        print(f"mclust mclustBIC:                    {peer:.3f} s")
        print(f"ratio bgmm warm / mclust: {seconds[1] / peer:.0f}")


if __name__ == "__main__":
    main()
