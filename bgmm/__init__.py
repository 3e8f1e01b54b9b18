"""bgmm: Gaussian mixture models fitted by EM (PyTensor graphs) and by NUTS (PyMC).

The code orients data as ``X: (n_samples, n_features)`` and responsibilities as
``resp: (n_samples, n_components)``: the transposes of the derivation's ``X`` (l x N)
and ``gamma`` (K x N).
"""

import importlib

from bgmm.data import GMMData, Standardization, as_data, check_n_components
from bgmm.datasets import load_old_faithful, load_worked_example, simulate
from bgmm.em import EMResult, GaussianMixtureEM, evaluate, fit_em
from bgmm.exceptions import (
    ConvergenceWarning,
    DataWarning,
    InputError,
    InputTypeError,
    InputValueError,
    LikelihoodDecreaseError,
    SingularCovarianceError,
    SingularCovarianceWarning,
    SingularInformationError,
)
from bgmm.params import GMMParams

__version__ = "0.1.0"

#: Public modules reached as attributes of ``bgmm`` (``bgmm.selection``), imported on first
#: use: ``import bgmm`` stays free of PyMC and ArviZ until they are needed.
_SUBMODULES = (
    "bayes",
    "cli",
    "compare",
    "contract",
    "covariance",
    "datasets",
    "defaults",
    "diagnostics",
    "em",
    "io",
    "plots",
    "report",
    "selection",
    "workflow",
)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"bgmm.{name}")
    raise AttributeError(f"module 'bgmm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULES))


__all__ = [
    # data layer
    "GMMData",
    "Standardization",
    "as_data",
    "check_n_components",
    # datasets
    "load_old_faithful",
    "load_worked_example",
    "simulate",
    # parameters
    "GMMParams",
    # EM
    "EMResult",
    "GaussianMixtureEM",
    "evaluate",
    "fit_em",
    # warnings and errors
    "ConvergenceWarning",
    "DataWarning",
    "InputError",
    "InputTypeError",
    "InputValueError",
    "LikelihoodDecreaseError",
    "SingularCovarianceError",
    "SingularCovarianceWarning",
    "SingularInformationError",
]
