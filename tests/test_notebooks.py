"""The notebooks: each text form is paired with its .ipynb, and each runs top to bottom.

Execution uses a CI-sized number of draws (``BGMM_NOTEBOOK_DRAWS``); the saved .ipynb files
hold the outputs of a full run (``make notebooks``).
"""

import importlib.util
import re
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="the notebooks extra is not installed")
pytest.importorskip("nbclient", reason="the notebooks extra is not installed")

# The same reading and execution as `make notebooks` (tools/run_notebooks.py).
_spec = importlib.util.spec_from_file_location(
    "run_notebooks", Path(__file__).resolve().parent.parent / "tools" / "run_notebooks.py"
)
run_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_notebooks)
SOURCES = run_notebooks.notebook_sources()
CI_DRAWS = "100"
CI_FAMILIES = "EEE,VVV"  # of notebook 04's BIC table: compiling all 70 cells takes minutes
CI_ROWS = "60000"  # of notebook 05's zarr store (4 million by default)
# Functions that make a random choice, and must be given a seed in a notebook.
RANDOM_CALLS = (
    "simulate",
    "sample_posterior",
    "select_k",
    "select_model",
    "GaussianMixtureEM",
    "fit_em",
)
_WARNING = re.compile(r"\b(\w*Warning)\b")


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def _calls(source: str, name: str) -> list[str]:
    """The text of every call ``name(...)`` in ``source``, parentheses matched."""
    out = []
    for m in re.finditer(rf"\b{name}\(", source):
        depth, i = 0, m.end() - 1
        for i in range(m.end() - 1, len(source)):
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            if depth == 0:
                break
        out.append(source[m.start() : i + 1])
    return out


def test_the_six_notebooks_exist():
    assert [s.stem for s in SOURCES] == [
        "01_worked_example",
        "02_em_vs_mcmc_old_faithful",
        "03_uncertain_clustering",
        "04_choosing_k",
        "05_larger_than_memory",
        "06_missing_values",
    ]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_ipynb_is_paired_with_its_text_form(source):
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} is missing; run `make notebooks`"
    text, saved = jupytext.read(source), jupytext.read(ipynb)
    assert [(c.cell_type, c.source) for c in saved.cells] == [
        (c.cell_type, c.source) for c in text.cells
    ], f"{ipynb.name} differs from {source.name}; run `make notebooks`"
    # the saved notebook was executed: every code cell ran, in order
    counts = [c.execution_count for c in saved.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))
    assert not any(o.output_type == "error" for c in saved.cells for o in c.get("outputs", []))


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_no_library_logic_and_every_random_choice_seeded(source):
    code = "\n".join(_code(jupytext.read(source)))
    assert not re.search(r"^\s*(def|class) ", code, re.MULTILINE), "logic belongs in bgmm"
    for name in RANDOM_CALLS:
        for call in _calls(code, name):
            explicit_start = all(f"{p}_init" in call for p in ("weights", "means", "covariances"))
            assert "random_state" in call or "random_seed" in call or explicit_start, call


# The three longest (LOO over five K; a LocalCluster; three posteriors of missing data)
# run in the slow suite and in `make notebooks`, to keep the default suite well under a
# quarter of an hour.
SLOW_NOTEBOOKS = ("04_choosing_k", "05_larger_than_memory", "06_missing_values")


@pytest.mark.parametrize(
    "source",
    [pytest.param(s, marks=pytest.mark.slow) if s.stem in SLOW_NOTEBOOKS else s for s in SOURCES],
    ids=lambda p: p.stem,
)
def test_notebook_runs_top_to_bottom(source, monkeypatch):
    monkeypatch.setenv("BGMM_NOTEBOOK_DRAWS", CI_DRAWS)
    monkeypatch.setenv("BGMM_NOTEBOOK_FAMILIES", CI_FAMILIES)
    monkeypatch.setenv("BGMM_NOTEBOOK_ROWS", CI_ROWS)
    nb = run_notebooks.execute(source, timeout=600)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    stderr = "".join(o.text for o in outputs if o.get("name") == "stderr")
    # Warnings a notebook shows on purpose are printed on stdout; the sampler's own
    # diagnostics (SamplingWarning) may fire with CI-sized draws.
    unexpected = set(_WARNING.findall(stderr)) - {"SamplingWarning"}
    assert not unexpected, stderr
    versions = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert "Watermark" in versions and "bgmm" in versions and "jax" in versions
    if source.stem != "01_worked_example":
        assert "pymc" in versions and "nutpie" in versions
