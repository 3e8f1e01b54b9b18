r"""Covariance families: mclust's fourteen, scikit-learn's four names, as M steps.

:math:`\Sigma_k = \lambda_k D_k A_k D_k^T` (Celeux & Govaert 1995): volume
:math:`\lambda_k`, shape :math:`A_k` and orientation :math:`D_k`, each Equal across the
components, Varying, or the Identity. Every family is a :class:`CovarianceFamily`: its M step
from the sufficient statistics :math:`(N_k, W_k)` (:mod:`bgmm.em.stats`), its number of free
parameters (BIC, AIC, ICL), and which covariance entries it leaves free.
scikit-learn's names are aliases: ``full`` = VVV, ``tied`` = EEE, ``diag`` = VVI,
``spherical`` = VII. With one feature, mclust's ``E`` and ``V`` are the two distinct models.

This package builds PyTensor graphs and NumPy arrays only (no PyMC, no ArviZ).

References
----------
Celeux & Govaert (1995), Gaussian parsimonious clustering models, Pattern Recognition 28(5).
Browne & McNicholas (2014), Estimating common principal components in high dimensions,
Adv. Data Anal. Classif. 8 (the EVE and VVE orientation step).
Scrucca, Fop, Murphy & Raftery (2016), mclust 5, The R Journal 8(1).
"""

from __future__ import annotations

from bgmm.covariance.chart import Chart, chart_at, covariances_on_chart
from bgmm.covariance.diagonal import EEI, EII, EVI, VEI, VII, VVI, E, V
from bgmm.covariance.family import CovarianceFamily
from bgmm.covariance.general import EEE, EEV, EVE, EVV, VEE, VEV, VVE, VVV
from bgmm.exceptions import InputTypeError, InputValueError

__all__ = [
    "FAMILIES",
    "Chart",
    "SKLEARN_NAMES",
    "UNIVARIATE",
    "CovarianceFamily",
    "chart_at",
    "covariances_on_chart",
    "get_family",
]

#: The fourteen multivariate families, in mclust's order.
FAMILIES: dict[str, CovarianceFamily] = {
    f.name: f for f in (EII, VII, EEI, VEI, EVI, VVI, EEE, VEE, EVE, VVE, EEV, VEV, EVV, VVV)
}

#: The one-feature models of mclust.
UNIVARIATE: dict[str, CovarianceFamily] = {"E": E, "V": V}

#: The names scikit-learn uses, and the families they are.
SKLEARN_NAMES: dict[str, CovarianceFamily] = {
    "full": VVV,
    "tied": EEE,
    "diag": VVI,
    "spherical": VII,
}


def get_family(name, n_features: int | None = None) -> CovarianceFamily:
    """The family a ``covariance_type`` names.

    Parameters
    ----------
    name : str or CovarianceFamily
        One of scikit-learn's ``full``, ``tied``, ``diag``, ``spherical``; one of mclust's
        fourteen (``EII`` ... ``VVV``, any case); ``E`` or ``V`` for one feature.
    n_features : int, optional
        Checked against ``E`` and ``V``, which are one-feature models.

    Returns
    -------
    CovarianceFamily
        The family.

    Raises
    ------
    ValueError
        An unknown name, or ``E`` / ``V`` with more than one feature.
    TypeError
        A name that is not a string.
    """
    if isinstance(name, CovarianceFamily):
        family = name
    elif not isinstance(name, str):
        raise InputTypeError(
            f"covariance_type must be a string such as 'full' or 'VVV', got "
            f"{type(name).__name__} {name!r}."
        )
    elif name in SKLEARN_NAMES:
        family = SKLEARN_NAMES[name]
    elif name.upper() in FAMILIES:
        family = FAMILIES[name.upper()]
    elif name.upper() in UNIVARIATE:
        family = UNIVARIATE[name.upper()]
    else:
        raise InputValueError(
            f"covariance_type must be one of scikit-learn's {list(SKLEARN_NAMES)}, mclust's "
            f"{list(FAMILIES)}, or 'E' / 'V' for one feature; got {name!r}."
        )
    if family.univariate and n_features is not None and n_features != 1:
        multivariate = "EII" if family.name == "E" else "VII"
        raise InputValueError(
            f"covariance_type={family.name!r} is mclust's one-feature model, but the data "
            f"have {n_features} features; use {multivariate!r} (its {n_features}-feature "
            f"analogue) or another of {list(FAMILIES)}."
        )
    return family
