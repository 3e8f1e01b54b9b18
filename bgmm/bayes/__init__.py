"""The Bayesian solver: a PyMC model of the same mixture, sampled by NUTS.

Depends on the data layer, and on :mod:`bgmm.em` for the starting point and the labels;
the PyMC model itself shares no graph with the EM solver.
"""

from bgmm.bayes.imputation import imputation_summary, impute_draws
from bgmm.bayes.membership import draw_memberships, membership, n_clusters
from bgmm.bayes.model import (
    BAYES_FAMILIES,
    bayes_family,
    build_model,
    initial_values,
    model_coords,
)
from bgmm.bayes.priors import Priors
from bgmm.bayes.relabel import (
    Relabelling,
    assignment_costs,
    ecr_iterative_relabel,
    ecr_relabel,
    match_to_reference,
    relabel_dataset,
    stephens_relabel,
)
from bgmm.bayes.sampling import CONTRACT_VARIABLES, SamplingWarning, sample_posterior

__all__ = [
    # model
    "BAYES_FAMILIES",
    "bayes_family",
    "Priors",
    "build_model",
    "initial_values",
    "model_coords",
    # sampling
    "CONTRACT_VARIABLES",
    "SamplingWarning",
    "sample_posterior",
    # missing values
    "impute_draws",
    "imputation_summary",
    # labels and memberships
    "assignment_costs",
    "match_to_reference",
    "relabel_dataset",
    "Relabelling",
    "stephens_relabel",
    "ecr_relabel",
    "ecr_iterative_relabel",
    "draw_memberships",
    "membership",
    "n_clusters",
]
