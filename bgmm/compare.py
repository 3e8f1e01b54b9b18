"""EM against the posterior: one labelled table, built with ArviZ.

Every scalar parameter (``weights``, ``means``, ``covariances``, with the dims both solvers
share) gets the EM estimate and its standard error beside the posterior mean, sd, HDI,
MCSE, ESS and r_hat, with three agreement diagnostics:

* ``em_in_hdi``: the EM value lies inside the posterior HDI;
* ``z``: (EM - posterior mean) / posterior sd;
* ``se_ratio``: EM standard error / posterior sd (near 1 when the posterior is close to the
  normal approximation at the maximum likelihood estimate).

and an overall :class:`Verdict`, first: the posterior agrees with EM, disagrees (which
parameters, by how much), is not a single mode (then the agreement columns are not shown:
they would describe a mixture of modes), or is unreliable (clean of modes but short of the
diagnostics' thresholds). The rules are in :func:`judge`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from bgmm.contract import CONTRACT_VARIABLES
from bgmm.covariance import get_family
from bgmm.data import as_data
from bgmm.diagnostics import Diagnostics, diagnose
from bgmm.em import EMResult, GaussianMixtureEM, evaluate, standard_errors
from bgmm.exceptions import InputTypeError, InputValueError
from bgmm.params import GMMParams

__all__ = [
    "SE_RATIO_BAND",
    "VERDICTS",
    "Z_LIMIT",
    "Comparison",
    "Verdict",
    "compare",
    "em_dataset",
    "judge",
    "parameter_series",
]

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


#: The verdicts of :func:`judge`, from best to worst.
VERDICTS = ("agrees", "disagrees", "unreliable", "not_single_mode")

#: Accepted EM SE / posterior sd (after dividing by its expected value sqrt(n / N_EM)).
SE_RATIO_BAND = (2.0 / 3.0, 1.5)

#: The absolute z above which an EM fit of other rows (a subsample posterior) disagrees.
Z_LIMIT = 3.0

#: Rows of the table named in a reason, at most.
_LISTED = 5


# Results and containers are documented by their attributes, not by __init__.
@dataclass(frozen=True, eq=False)
class Verdict:  # numpydoc ignore=PR01
    """Does the posterior agree with EM? The answer first, its reasons after.

    Attributes
    ----------
    status : {"agrees", "disagrees", "unreliable", "not_single_mode"}
        See :func:`judge`.
    reasons : tuple of str
        What the status rests on, with the numbers.
    """

    status: str
    reasons: tuple[str, ...]

    @property
    def headline(self) -> str:
        """The verdict in words, one line."""
        return {
            "agrees": "The posterior agrees with EM.",
            "disagrees": "The posterior disagrees with EM.",
            "unreliable": "The posterior's summaries are unreliable; agreement is not judged.",
            "not_single_mode": "The posterior is not a single mode; agreement is not judged.",
        }[self.status]

    @property
    def single_mode(self) -> bool:
        """Whether the agreement columns (``z``, ``em_in_hdi``, ``se_ratio``) mean anything."""
        return self.status != "not_single_mode"

    def __str__(self) -> str:
        return "\n".join([self.headline, *(f"- {r}" for r in self.reasons)])

    def to_dict(self) -> dict:
        """The verdict as JSON-ready data (what a saved fit keeps).

        Returns
        -------
        dict
            ``status`` and ``reasons``.
        """
        return {"status": self.status, "reasons": list(self.reasons)}

    @classmethod
    def from_dict(cls, value: dict) -> Verdict:
        """The inverse of :meth:`to_dict`.

        Parameters
        ----------
        value : dict
            ``status`` and ``reasons``.

        Returns
        -------
        Verdict
            The same verdict.
        """
        return cls(str(value["status"]), tuple(value["reasons"]))


def _listed(items: list[str]) -> str:
    more = len(items) - _LISTED
    return "; ".join(items[:_LISTED]) + (f"; and {more} more" if more > 0 else "")


def judge(
    table: pd.DataFrame,
    diagnostics: Diagnostics,
    *,
    ci_prob: float = 0.94,
    expected_se_ratio: float = 1.0,
    same_rows: bool = True,
) -> Verdict:
    r"""The verdict of a comparison table, given the posterior's diagnostics.

    In order:

    1. **not_single_mode**: a multimodal finding of the diagnostics (r_hat above 1.1, a
       vanishing component, chains in different modes, unresolved label switching). The
       reasons are those findings; z-scores and HDI checks are not judged.
    2. **unreliable**: any other finding (r_hat above 1.01, ESS below 100 per chain,
       divergences, low E-BFMI, tree depth at its limit); disagreements, if any, are
       listed too but not trusted.
    3. **disagrees**: a free parameter whose EM value lies outside its HDI (when EM and
       the posterior saw the same rows; with EM on more rows, :math:`|z|` above
       :data:`Z_LIMIT`, since the subsample posterior moves by its own sd), or whose
       ``se_ratio / expected_se_ratio`` lies outside :data:`SE_RATIO_BAND` = [2/3, 3/2].
    4. **agrees** otherwise.

    The SE band: by Bernstein-von Mises the posterior sd and the observed-information SE
    agree to :math:`O(N^{-1/2})`, and with at least 100 effective draws per chain the Monte
    Carlo error of a posterior sd is at most about :math:`1/\sqrt{2 \cdot 200}` = 5%. A
    factor of 1.5 is many of those errors: outside it the normal approximation at the
    MLE itself fails (a skewed or bounded posterior, a weight near 0, a prior that still
    matters at this N), which is what a user comparing EM's intervals with the posterior's
    needs to know.

    Parameters
    ----------
    table : pandas.DataFrame
        :meth:`Comparison.to_dataframe` (unmasked): columns ``em``, ``hdi_lower``,
        ``hdi_upper``, ``em_in_hdi``, ``z``, ``se_ratio``.
    diagnostics : Diagnostics
        Of the posterior (:func:`bgmm.diagnostics.diagnose`).
    ci_prob : float, default 0.94
        The HDIs' probability (for the reasons' wording).
    expected_se_ratio : float, default 1.0
        :math:`\sqrt{n / N_\mathrm{EM}}` when EM saw more rows than the posterior.
    same_rows : bool, default True
        Whether EM and the posterior saw the same rows.

    Returns
    -------
    Verdict
        The status and its reasons.
    """
    if not diagnostics.single_mode:
        reasons = [f.seen for f in diagnostics.findings if f.multimodal]
        reasons.append(
            "z-scores, HDIs and em_in_hdi would describe a mixture of modes, so they are "
            "not judged (and not shown in the table)"
        )
        return Verdict("not_single_mode", tuple(reasons))
    level = f"{100 * ci_prob:g}%"
    outside = []
    for name, row in table.iterrows():
        if same_rows and not bool(row["em_in_hdi"]):
            outside.append(
                f"{name}: EM {row['em']:.4g} outside the {level} HDI "
                f"[{row['hdi_lower']:.4g}, {row['hdi_upper']:.4g}] (z = {row['z']:.2f})"
            )
        elif not same_rows and abs(row["z"]) > Z_LIMIT:
            outside.append(f"{name}: z = {row['z']:.2f} (|z| above {Z_LIMIT:g})")
    ratio = table["se_ratio"].astype(float) / expected_se_ratio
    low, high = SE_RATIO_BAND
    off = [
        f"{name}: SE ratio {r * expected_se_ratio:.3g}"
        + (f" ({r:.3g} of the expected {expected_se_ratio:.3g})" if not same_rows else "")
        for name, r in ratio.items()
        if np.isfinite(r) and not low <= r <= high
    ]
    band = f"[{low:.3g}, {high:.3g}]"
    if diagnostics.findings:
        reasons = [f.seen for f in diagnostics.findings]
        if outside or off:
            reasons.append("not trusted while so: " + _listed(outside + off))
        return Verdict("unreliable", tuple(reasons))
    if outside or off:
        reasons = []
        if outside:
            reasons.append(f"{len(outside)} of {len(table)} free parameters: {_listed(outside)}")
        if off:
            reasons.append(
                f"EM's standard error / posterior sd outside {band} for {len(off)}: {_listed(off)}"
            )
        return Verdict("disagrees", tuple(reasons))
    finite = ratio[np.isfinite(ratio)] * expected_se_ratio
    where = f"inside the {level} HDIs" if same_rows else f"within |z| <= {Z_LIMIT:g}"
    reasons = [f"all {len(table)} free parameters' EM values {where}"]
    if len(finite):
        reasons.append(
            f"SE ratios {finite.min():.3g} to {finite.max():.3g} (band {band}"
            + (f" times the expected {expected_se_ratio:.3g})" if not same_rows else ")")
        )
    ds = diagnostics.dataset
    reasons.append(
        f"diagnostics clean (r_hat at most {float(ds['r_hat'].max()):.3f}, ESS per chain at "
        f"least {float(min(ds['ess_bulk_per_chain'].min(), ds['ess_tail_per_chain'].min())):.0f})"
    )
    return Verdict("agrees", tuple(reasons))


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
    verdict : Verdict or None
        The overall answer and its reasons (None for comparisons saved before verdicts).
    """

    parameters: xr.DataTree
    membership: dict
    ci_prob: float
    covariance_type: str = "VVV"
    verdict: Verdict | None = None

    def to_dataframe(self, *, masked: bool = True) -> pd.DataFrame:
        """One row per free scalar parameter, one column per statistic.

        The covariances contribute only the entries the family leaves free
        (:meth:`bgmm.covariance.CovarianceFamily.free_entries`): the lower triangle of each
        full matrix, one matrix when the components share it, the diagonal of a diagonal
        one, one variance of a spherical one.

        Parameters
        ----------
        masked : bool, default True
            When the verdict is "not a single mode", leave the agreement columns
            (``em_in_hdi``, ``z``, ``se_ratio``) empty (NA): they would describe a mixture
            of modes as if it were one. ``masked=False`` shows them anyway.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``parameter`` (e.g. ``means[0, waiting]``), with the columns of
            ``STATISTICS``.
        """
        frames = [
            _free_rows(self.parameters[name].to_dataset(), name, self.covariance_type)[
                list(STATISTICS)
            ]
            for name in CONTRACT_VARIABLES
        ]
        out = pd.concat(frames)
        out.index.name = "parameter"
        if masked and self.verdict is not None and not self.verdict.single_mode:
            out["em_in_hdi"] = pd.array([pd.NA] * len(out), dtype="boolean")
            out[["z", "se_ratio"]] = np.nan
        return out


def _free_rows(ds: xr.Dataset, name: str, covariance_type: str) -> pd.DataFrame:
    """``ds`` (one parameter's variables) as rows labelled ``name[...]``, free entries only."""
    df = ds.to_dataframe()
    if name == "covariances":
        components = list(ds["component"].values)
        features = list(ds["feature"].values)
        free = get_family(covariance_type).free_entries(len(components), len(features))
        keep = [
            free[components.index(c), features.index(f), features.index(g)] for c, f, g in df.index
        ]
        df = df[keep]
    df.index = [
        f"{name}[{', '.join(str(v) for v in (i if isinstance(i, tuple) else (i,)))}]"
        for i in df.index
    ]
    return df


def parameter_series(
    params: GMMParams, feature_names=None, covariance_type: str = "VVV"
) -> pd.Series:
    """The free scalar parameters of ``params``, labelled as the rows of a comparison table.

    For a column beside :meth:`Comparison.to_dataframe`: the truth of a simulation, another
    fit. Put ``params`` in the same component order first (e.g. by
    :func:`bgmm.bayes.match_to_reference` on the means).

    Parameters
    ----------
    params : GMMParams
        The mixture.
    feature_names : sequence of str, optional
        Labels of the features (``x0``, ``x1``, ... by default).
    covariance_type : str, default "VVV"
        The family whose free covariance entries are kept.

    Returns
    -------
    pandas.Series
        Indexed by ``parameter`` (``weights[0]``, ``means[0, x1]``, ...).
    """
    names = list(feature_names or [f"x{j}" for j in range(params.n_features)])
    ds = params.to_dataset(names)
    out = pd.concat(
        [
            _free_rows(ds[[name]], name, covariance_type)[name].rename("value")
            for name in CONTRACT_VARIABLES
        ]
    )
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
        from the observed data when omitted. Where they do not exist
        (:meth:`~bgmm.em.StandardErrors.missing`) the comparison goes on without them and
        the verdict says why.

    Returns
    -------
    Comparison
        The statistics per parameter (``parameters``, a DataTree), the membership
        agreement and the :class:`Verdict` (:func:`judge`, from the posterior's
        ``diagnostics`` group); ``to_dataframe()`` gives one row per scalar parameter.
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
    # NaN where the data had missing values (the model marginalised them, as EM did)
    data = as_data(posterior["observed_data"]["x"], missing="allow")
    sampled = json.loads(posterior.attrs.get("bgmm_settings", "{}")).get("covariance_type")
    if sampled is not None and not get_family(sampled).same_model(result.family, data.n_features):
        raise InputValueError(
            f"the posterior was sampled with covariance_type={sampled!r} but the EM fit has "
            f"{result.family.name!r}; compare fits of the same covariance family."
        )
    se = (
        standard_errors(result.params, data, result.covariance_type, errors="missing")
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
            em_resp = np.exp(evaluate(result.params, data, missing="em")[0])
        post_mean = m["mean"].values
        membership = {
            "share_same_component": float(
                np.mean(post_mean.argmax(axis=1) == em_resp.argmax(axis=1))
            ),
            "max_abs_difference": float(np.abs(post_mean - em_resp).max()),
        }
    comparison = Comparison(
        xr.DataTree.from_dict(children), membership, ci_prob, result.family.name
    )
    if "diagnostics" in posterior.children:
        diagnostics = Diagnostics.from_dataset(posterior["diagnostics"].to_dataset())
    else:  # a tree made elsewhere: the same checks, here
        diagnostics = diagnose(posterior, data.n_samples)
    # Rows EM saw (a lazy fit's resp is a Dask array: its shape is known, nothing computed).
    n_em = result.resp.shape[0] if result.resp is not None else result.total_weight
    same_rows = n_em == data.n_samples
    verdict = judge(
        comparison.to_dataframe(masked=False),
        diagnostics,
        ci_prob=ci_prob,
        expected_se_ratio=1.0 if same_rows else float(np.sqrt(data.n_samples / n_em)),
        same_rows=same_rows,
    )
    if getattr(se, "reason", None) is not None and verdict.status != "not_single_mode":
        verdict = Verdict(
            verdict.status,
            (
                *verdict.reasons,
                f"EM's standard errors are missing, so em_se, se_ratio and the SE band are "
                f"not judged: {se.reason}",
            ),
        )
    if "n_clusters" in posterior.children:  # a sparse finite mixture
        k_plus = posterior["n_clusters"].to_dataset()
        mode, k = int(k_plus.attrs["mode"]), post.sizes["component"]
        if mode < k:
            p = float(k_plus["probability"].sel(n_clusters=mode))
            verdict = Verdict(
                "disagrees",
                (
                    f"the sparse prior left {mode} of the {k} components non-empty "
                    f"(posterior probability {p:.2f}) where EM fits {k}: compare with an EM "
                    f"fit at K = {mode}",
                    *verdict.reasons,
                ),
            )
    return replace(comparison, verdict=verdict)
