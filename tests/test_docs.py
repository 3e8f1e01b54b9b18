"""The documentation site builds with warnings as errors, and documents the whole API."""

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="the docs extra is not installed")

ROOT = Path(__file__).resolve().parent.parent
# The build of `make docs`: warnings are errors (-W), every cross-reference must resolve (-n).
SPHINX = (sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-n", "-q", "-b", "html")
PUBLIC_MODULES = (
    "bgmm",
    "bgmm.datasets",
    "bgmm.em",
    "bgmm.em.graph",
    "bgmm.em.stats",
    "bgmm.em.step",
    "bgmm.em.missing",
    "bgmm.covariance",
    "bgmm.bayes",
    "bgmm.diagnostics",
    "bgmm.contract",
    "bgmm.compare",
    "bgmm.workflow",
    "bgmm.defaults",
    "bgmm.em.explain",
    "bgmm.selection",
    "bgmm.io",
    "bgmm.report",
    "bgmm.plots",
)
# Public callables that implement an equation of the derivation or of the model: their
# docstrings must state it.
EQUATIONS = (
    "bgmm.fit_em",
    "bgmm.evaluate",
    "bgmm.em.impute",
    "bgmm.simulate",
    "bgmm.GaussianMixtureEM",
    "bgmm.GaussianMixtureEM.predict_proba",
    "bgmm.GaussianMixtureEM.score_samples",
    "bgmm.GaussianMixtureEM.score",
    "bgmm.GaussianMixtureEM.bic",
    "bgmm.GaussianMixtureEM.aic",
    "bgmm.em.log_component_densities",
    "bgmm.em.standard_errors",
    *(f"bgmm.em.graph.{name}" for name in importlib.import_module("bgmm.em.graph").__all__),
    "bgmm.bayes.build_model",
    "bgmm.bayes.Priors",
    "bgmm.bayes.draw_memberships",
    "bgmm.bayes.membership",
    "bgmm.bayes.assignment_costs",
    "bgmm.selection.n_parameters",
    "bgmm.covariance.CovarianceFamily",
    "bgmm.covariance.CovarianceFamily.m_step",
    "bgmm.selection.select_k",
    "bgmm.selection.select_model",
)


def _resolve(dotted: str):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [*SPHINX, str(ROOT / "docs"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_site_has_every_page(site):
    for page in (
        "index",
        "getting-started",
        "derivation",
        "bayesian-model",
        "comparison",
        "cli",
        "api",
        "notebooks/01_worked_example",
        "notebooks/02_em_vs_mcmc_old_faithful",
        "notebooks/03_uncertain_clustering",
        "notebooks/04_choosing_k",
    ):
        assert (site / f"{page}.html").is_file(), page
    cli = (site / "cli.html").read_text()
    assert all(
        cmd in cli for cmd in ("explain", "demo", "fit", "compare", "select-k", "--backend")
    )
    derivation = (site / "derivation.html").read_text()
    assert (
        "Orientation" in derivation
        and '<code class="docutils literal notranslate"><span class="pre">resp</span></code>'
        in derivation
    )
    # the family table: every one of mclust's fourteen, with its parameter count
    assert "Covariance families" in derivation
    assert all(f"<td><p>{name}</p></td>" in derivation for name in ("EII", "VEV", "VVV"))


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_api_reference_documents_every_public_name(site, module):
    html = (site / "api.html").read_text()
    mod = importlib.import_module(module)
    missing = []
    for name in mod.__all__:
        obj = getattr(mod, name)
        if inspect.ismodule(obj):
            anchors = [f'id="module-{obj.__name__}"']
        else:
            anchors = [f'id="{module}.{name}"', f'id="bgmm.{name}"']
        if not any(a in html for a in anchors):
            missing.append(name)
    assert not missing, f"{module}: {missing} missing from docs/api.md"


@pytest.mark.parametrize("dotted", EQUATIONS)
def test_docstring_states_its_equation(dotted):
    doc = inspect.getdoc(_resolve(dotted)) or ""
    assert ":math:" in doc or ".. math::" in doc, dotted
