"""Sphinx configuration of the bgmm documentation (built by `make docs` and the test suite)."""

from __future__ import annotations

import shutil
from pathlib import Path

import bgmm

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

project = "bgmm"
author = "the bgmm developers"
copyright = "2026, the bgmm developers"
release = version = bgmm.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
    "sphinxarg.ext",
]

# The notebooks are rendered from their saved outputs (the test suite executes them);
# they are copied here at build time so that the site and notebooks/ never diverge.
_BUILD_NOTEBOOKS = DOCS / "notebooks"
shutil.rmtree(_BUILD_NOTEBOOKS, ignore_errors=True)
_BUILD_NOTEBOOKS.mkdir()
for _nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
    shutil.copy2(_nb, _BUILD_NOTEBOOKS / _nb.name)
nb_execution_mode = "off"

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

exclude_patterns = ["_build", "README.md"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

# API reference: numpydoc renders the docstrings and checks them against the numpydoc
# standard; with -W every failed check fails the build. Left out: the optional sections
# (See Also, Examples, extended summary) and the "summary on one line" rule that long
# math summaries break.
# scikit-learn generates set_{fit,score}_request for the sample_weight of fit and score;
# their docstrings point into scikit-learn's own site.
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "exclude-members": "set_fit_request, set_score_request",
}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_validation_checks = {"all", "ES01", "EX01", "SA01", "SS05", "GL01", "GL02", "RT02"}
numpydoc_xref_param_type = False
# NamedTuple fields carry Python's generated "Alias for field number N" docstrings; the
# classes document their fields under Attributes.
numpydoc_validation_exclude = {
    r"\.(EStep|Factorization|SufficientStats|ChunkedData|MStep|Chart|IterationProgress|Finding|Relabelling|Patterns|PatternFactors|MissingStats|RowEStep)\.\w+$"
}

html_theme = "pydata_sphinx_theme"
html_title = f"bgmm {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path: list[str] = []
