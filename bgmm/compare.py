"""EM against the posterior: one labelled table, built with ArviZ.

Every scalar parameter (``weights``, ``means``, ``covariances``, with the dims both solvers
share) gets the EM estimate and its standard error beside the posterior mean, sd, HDI,
MCSE, ESS and r_hat, with three agreement diagnostics:

* ``em_in_hdi``: the EM value lies inside the posterior HDI;
* ``z``: (EM - posterior mean) / posterior sd;
* ``se_ratio``: EM standard error / posterior sd (near 1 when the posterior is close to the
  normal approximation at the maximum likelihood estimate).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from bgmm.contract import CONTRACT_VARIABLES
from bgmm.covariance import get_family
from bgmm.data import as_data
from bgmm.em import EMResult, GaussianMixtureEM, evaluate, standard_errors
from bgmm.exceptions import InputTypeError, InputValueError

__all__ = ["Comparison", "compare", "em_dataset"]

STATISTICS = (
    "em",
    "em_se",
    "mean",
    "sd",
    "hdi_lower",
    "hdi_upper",
    "mcse",
    "ess_bulk",
    "r_hat",
    "em_in_hdi",
    "z",
    "se_ratio",
)


def _em_result(em: Any) -> EMResult:
    if isinstance(em, EMResult):
        return em
    if isinstance(em, GaussianMixtureEM) and hasattr(em, "result_"):
        return em.result_
    raise InputTypeError(
        f"em must be an EMResult or a fitted GaussianMixtureEM, got {type(em).__name__}."
    )


def em_dataset(em: Any, feature_names=None, standard_error: Any = None) -> xr.Dataset:
    """The EM estimate with the posterior's names and dims (and, optionally, its SEs).

    Variables ``weights (component)``, ``means (component, feature)``,
    ``covariances (component, feature, feature_bis)``; with ``standard_error`` (a
    :class:`bgmm.em.StandardErrors`) also ``<name>_se``. ArviZ functions take it directly.

    Parameters
    ----------
    em : EMResult or fitted GaussianMixtureEM
        The EM fit.
    feature_names : sequence of str, optional
        Labels of the ``feature`` dim (default: those of the fit).
    standard_error : StandardErrors, optional
        Adds the ``<name>_se`` variables.

    Returns
    -------
    xarray.Dataset
        The labelled estimate.
    """
    result = _em_result(em)
    ds = result.params.to_dataset(feature_names or result.feature_names)
    if standard_error is not None:
        for name in CONTRACT_VARIABLES:
            ds[f"{name}_se"] = (ds[name].dims, np.asarray(getattr(standard_error, name)))
    return ds


# Results and containers are documented by their attributes, not by __init__.
@dataclass(frozen=True, eq=False)
class Comparison:  # numpydoc ignore=PR01
    """The comparison of an EM fit with a posterior.

    Attributes
    ----------
    parameters : xarray.DataTree
        One child per parameter (``weights``, ``means``, ``covariances``), each a Dataset
        of the statistics in ``STATISTICS`` over that parameter's dims.
    membership : dict
        ``share_same_component`` (share of observations whose most probable component is
        the same under EM and under the posterior mean membership) and
        ``max_abs_difference`` (largest difference of membership probability).
    ci_prob : float
    covariance_type : str
        The covariance family of both fits (mclust's letters); the table lists only the
        covariance entries it leaves free.
    """

    parameters: xr.DataTree
    membership: dict
    ci_prob: float
    covariance_type: str = "VVV"

    def to_dataframe(self) -> pd.DataFrame:
        """One row per free scalar parameter, one column per statistic.

        The covariances contribute only the entries the family leaves free
        (:meth:`bgmm.covariance.CovarianceFamily.free_entries`): the lower triangle of each
        full matrix, one matrix when the components share it, the diagonal of a diagonal
        one, one variance of a spherical one.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``parameter`` (e.g. ``means[0, waiting]``), with the columns of
            ``STATISTICS``.
        """
        frames = []
        for name in CONTRACT_VARIABLES:
            ds = self.parameters[name].to_dataset()
            df = ds.to_dataframe()
            if name == "covariances":
                components = list(ds["component"].values)
                features = list(ds["feature"].values)
                free = get_family(self.covariance_type).free_entries(
                    len(components), len(features)
                )
                keep = [
                    free[components.index(c), features.index(f), features.index(g)]
                    for c, f, g in df.index
                ]
                df = df[keep]
            df.index = [
                f"{name}[{', '.join(str(v) for v in (i if isinstance(i, tuple) else (i,)))}]"
                for i in df.index
            ]
            frames.append(df[list(STATISTICS)])
        out = pd.concat(frames)
        out.index.name = "parameter"
        return out


def compare(
    em: Any, posterior: xr.DataTree, *, ci_prob: float = 0.94, standard_error=None
) -> Comparison:
    r"""Put the EM estimate beside the posterior, parameter by parameter.

    Parameters
    ----------
    em : EMResult or fitted GaussianMixtureEM
        Labelled like the posterior (``sample_posterior`` relabels its draws to these
        components). It may be a fit of more rows than the posterior's (EM on a whole lazy
        data set, the posterior on ``data.sample_rows(n)``): the membership agreement is
        then taken at the posterior's rows, and ``se_ratio`` is near
        :math:`\sqrt{n / N}` rather than 1 (Bernstein-von Mises).
    posterior : xarray.DataTree
        From :func:`bgmm.bayes.sample_posterior`: needs the ``posterior`` and
        ``observed_data`` groups (and ``membership`` for the membership agreement).
    ci_prob : float, default 0.94
        Probability of the highest-density intervals.
    standard_error : StandardErrors, optional
        EM standard errors already computed (:func:`bgmm.em.standard_errors`); computed
        from the observed data when omitted.

    Returns
    -------
    Comparison
        The statistics per parameter (``parameters``, a DataTree) and the membership
        agreement; ``to_dataframe()`` gives one row per scalar parameter.
    """
    if not 0 < ci_prob < 1:
        raise InputValueError(f"ci_prob must be in (0, 1), got {ci_prob!r}.")
    result = _em_result(em)
    for group in ("posterior", "observed_data"):
        if group not in posterior.children:
            raise InputValueError(
                f"posterior has no '{group}' group; pass the DataTree returned by "
                f"bgmm.bayes.sample_posterior."
            )
    data = as_data(posterior["observed_data"]["x"])
    sampled = json.loads(posterior.attrs.get("bgmm_settings", "{}")).get("covariance_type")
    if sampled is not None and not get_family(sampled).same_model(result.family, data.n_features):
        raise InputValueError(
            f"the posterior was sampled with covariance_type={sampled!r} but the EM fit has "
            f"{result.family.name!r}; compare fits of the same covariance family."
        )
    se = (
        standard_errors(result.params, data, result.covariance_type)
        if standard_error is None
        else standard_error
    )
    em_ds = em_dataset(result, data.feature_names, se)
    post = posterior["posterior"].to_dataset()[list(CONTRACT_VARIABLES)]
    if post.sizes["component"] != result.weights.shape[0]:
        raise InputValueError(
            f"the posterior has {post.sizes['component']} components but the EM fit has "
            f"{result.weights.shape[0]}."
        )
    with np.errstate(invalid="ignore", divide="ignore"):  # constant weights when K = 1
        hdi = azs.hdi(post, prob=ci_prob)
        mcse = azs.mcse(post)
        ess = azs.ess(post, method="bulk")
        rhat = azs.rhat(post)
    children = {}
    for name in CONTRACT_VARIABLES:
        est, est_se = em_ds[name], em_ds[f"{name}_se"]
        mean = post[name].mean(("chain", "draw"))
        sd = post[name].std(("chain", "draw"), ddof=1)
        lower = hdi[name].sel(ci_bound="lower", drop=True)
        upper = hdi[name].sel(ci_bound="upper", drop=True)
        ds = xr.Dataset(
            {
                "em": est,
                "em_se": est_se,
                "mean": mean,
                "sd": sd,
                "hdi_lower": lower,
                "hdi_upper": upper,
                "mcse": mcse[name],
                "ess_bulk": ess[name],
                "r_hat": rhat[name],
                "em_in_hdi": (est >= lower) & (est <= upper),
                "z": (est - mean) / sd,
                "se_ratio": est_se / sd,
            },
            attrs={"ci_prob": ci_prob, "ci_kind": "hdi"},
        )
        children[name] = xr.DataTree(ds.transpose(*post[name].dims[2:]))
    membership = {}
    if "membership" in posterior.children:
        m = posterior["membership"].to_dataset()
        em_resp = result.resp
        if not (isinstance(em_resp, np.ndarray) and em_resp.shape[0] == data.n_samples):
            # EM on other rows (all of a lazy data set, the posterior on a subsample):
            # EM's memberships of the posterior's own rows, at the EM estimate.
            em_resp = np.exp(evaluate(result.params, data)[0])
        post_mean = m["mean"].values
        membership = {
            "share_same_component": float(
                np.mean(post_mean.argmax(axis=1) == em_resp.argmax(axis=1))
            ),
            "max_abs_difference": float(np.abs(post_mean - em_resp).max()),
        }
    return Comparison(xr.DataTree.from_dict(children), membership, ci_prob, result.family.name)
