"""The EM solver, written as PyTensor graphs. This package never imports PyMC or ArviZ."""

from bgmm.em import graph
from bgmm.em.estimator import GaussianMixtureEM
from bgmm.em.solver import (
    HISTORY_FIELDS,
    SINGULAR_RTOL,
    SPURIOUS_GAP,
    EMResult,
    IterationProgress,
    evaluate,
    fit_em,
    impute,
    log_component_densities,
)
from bgmm.em.uncertainty import StandardErrors, standard_errors

__all__ = [
    "HISTORY_FIELDS",
    "SINGULAR_RTOL",
    "SPURIOUS_GAP",
    "EMResult",
    "IterationProgress",
    "StandardErrors",
    "GaussianMixtureEM",
    "evaluate",
    "fit_em",
    "graph",
    "impute",
    "log_component_densities",
    "standard_errors",
]
