"""The names both solvers share, and the package versions recorded with every result.

An EM fit (:meth:`bgmm.GMMParams.to_dataset`) and a posterior
(:func:`bgmm.bayes.sample_posterior`) name their parameters and dims the same way, so that
ArviZ functions, the comparison and the saved file take either. This module is imported by
both sides and by :mod:`bgmm.io`; it imports neither PyMC nor the EM engine.
"""

from __future__ import annotations

import importlib.metadata

__all__ = ["CONTRACT_VARIABLES", "DIMS", "VERSIONED_PACKAGES", "package_versions"]

#: The parameters shared, by name and dims, by EM results and posterior variables.
CONTRACT_VARIABLES = ("weights", "means", "covariances")

#: The dims of each shared parameter: pi_k, mu_k and Sigma_k.
DIMS = {
    "weights": ("component",),
    "means": ("component", "feature"),
    "covariances": ("component", "feature", "feature_bis"),
}

#: The packages whose versions are kept with a posterior and a saved fit.
VERSIONED_PACKAGES = (
    "bgmm",
    "pymc",
    "pytensor",
    "arviz",
    "arviz-base",
    "arviz-stats",
    "nutpie",
    "jax",
    "numpy",
)


def package_versions() -> dict[str, str]:
    """The installed version of each of :data:`VERSIONED_PACKAGES` ("not installed" if absent).

    Read from the installed distributions' metadata: nothing is imported.

    Returns
    -------
    dict of str to str
        Package name to version.
    """
    out = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
