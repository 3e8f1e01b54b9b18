"""Execute the notebooks and write each pair (NAME.py, NAME.ipynb) with fresh outputs.

The text form ``NAME.py`` (jupytext percent format) is the source: this script reads it,
executes it top to bottom in a fresh kernel with the working directory set to
``notebooks/``, and writes ``NAME.ipynb`` with the outputs. Nothing is overwritten unless
the run succeeds, and each file is replaced atomically.

Usage: ``python tools/run_notebooks.py [NAME ...]`` (all notebooks when none is given).
``BGMM_NOTEBOOK_DRAWS`` sets the sampler's draws and tuning steps (default 1000).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

from bgmm._files import atomic_write

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def notebook_sources() -> list[Path]:
    """The text forms of every notebook, in their numbered order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def execute(source: Path, timeout: int = 900) -> nbformat.NotebookNode:
    """Read a notebook's text form and run it in a fresh kernel; raise on any error."""
    nb = jupytext.read(source)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": NOTEBOOKS}}
    )
    client.execute()
    return nb


def write_pair(nb: nbformat.NotebookNode, source: Path) -> None:
    """Write NAME.ipynb (with outputs) beside NAME.py, atomically."""
    text = jupytext.writes(nb, fmt="ipynb")
    atomic_write(source.with_suffix(".ipynb"), lambda tmp: Path(tmp).write_text(text, "utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (e.g. 01_worked_example)")
    args = parser.parse_args(argv)
    sources = notebook_sources()
    if args.names:
        wanted = {Path(n).stem for n in args.names}
        unknown = wanted - {s.stem for s in sources}
        if unknown:
            print(f"error: no notebook named {sorted(unknown)} in {NOTEBOOKS}", file=sys.stderr)
            return 2
        sources = [s for s in sources if s.stem in wanted]
    for source in sources:
        start = time.perf_counter()
        nb = execute(source)
        write_pair(nb, source)
        print(f"{source.stem}: executed in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
