r"""Is the posterior sample one clean mode? Checks after relabelling, with what to do.

:func:`diagnose` reads a posterior tree (:func:`bgmm.bayes.sample_posterior` writes its
result as the ``diagnostics`` group) and checks, per chain where it matters:

* **r_hat**: rank-normalised split :math:`\hat R` (``arviz_stats.rhat``, Vehtari et al.
  2021) of every contract variable above :data:`RHAT_MAX` = 1.01, their recommendation.
  Above :data:`RHAT_MODES` = 1.1 the chains are not exploring one distribution: the
  posterior is treated as not a single mode.
* **ESS**: bulk or tail effective sample size below :data:`ESS_PER_CHAIN_MIN` = 100 per
  chain (Vehtari et al. 2021): fewer make r_hat and the MCSE themselves unreliable.
* **vanishing components**: a component whose weight is below :math:`1/N` in more than
  :data:`VANISHING_SHARE` of a chain's draws. Below :math:`1/N` a component expects fewer
  than one observation: it is empty, and its mean and covariance are drawn from the prior
  alone (the failure seen with two clusters 2 sd apart: one chain emptied a component
  whose mean then wandered over the prior). The data may support fewer components.
* **modes**: chains whose total log-likelihoods sit apart (chain means further apart than
  4 within-chain sds and 2 nats).
* **divergences**, **E-BFMI** below :data:`EBFMI_MIN` = 0.3 in a chain (Betancourt 2016),
  and the tree depth at its limit in more than :data:`TREE_DEPTH_SHARE` of a chain's
  draws (NUTS then truncates its trajectories: over-fitted K and funnels do this).
* **label switching left unresolved**: draws whose relabelling cost margin (the extra
  Mahalanobis cost of the next-best labelling) is below :data:`AMBIGUOUS_MARGIN` = 1, in
  more than :data:`AMBIGUOUS_SHARE` of a chain's draws: those draws sit between labellings.

Each failed check is a :class:`Finding` with what was seen, why it matters and what to try;
``multimodal`` findings (r_hat above 1.1, vanishing components, chains in different modes,
unresolved label switching) mean the posterior is not a single mode, the others that its
summaries are unreliable. This module needs ArviZ and xarray only (no PyMC).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

import arviz_stats as azs
import numpy as np
import xarray as xr

from bgmm._spelling import option
from bgmm.contract import CONTRACT_VARIABLES

__all__ = [
    "AMBIGUOUS_MARGIN",
    "AMBIGUOUS_SHARE",
    "EBFMI_MIN",
    "ESS_PER_CHAIN_MIN",
    "RHAT_MAX",
    "RHAT_MODES",
    "TREE_DEPTH_SHARE",
    "VANISHING_SHARE",
    "Diagnostics",
    "Finding",
    "diagnose",
]

#: Largest rank-normalised split r_hat of a clean sample (Vehtari et al. 2021).
RHAT_MAX = 1.01
#: Above this r_hat the chains are in different places: not a single mode.
RHAT_MODES = 1.1
#: Smallest bulk and tail ESS per chain (Vehtari et al. 2021).
ESS_PER_CHAIN_MIN = 100
#: Share of a chain's draws with a weight below 1/N that makes a component vanishing.
VANISHING_SHARE = 0.05
#: Smallest E-BFMI of a chain (Betancourt 2016).
EBFMI_MIN = 0.3
#: Share of a chain's draws at the maximum tree depth that is flagged.
TREE_DEPTH_SHARE = 0.05
#: Relabelling cost margin (squared Mahalanobis units) below which a draw's labels tie.
AMBIGUOUS_MARGIN = 1.0
#: Share of a chain's draws with tied labels that is flagged.
AMBIGUOUS_SHARE = 0.05

#: Findings that mean the sample is not one mode (the others: unreliable summaries).
MULTIMODAL = ("r_hat_modes", "vanishing", "modes", "label_switching")

# Sampler statistics: nutpie's name first, PyMC's second.
_MAX_DEPTH = ("maxdepth_reached", "reached_max_treedepth")


class Finding(NamedTuple):  # numpydoc ignore=PR01
    """One failed check.

    Attributes
    ----------
    check : str
        ``r_hat``, ``r_hat_modes``, ``ess``, ``vanishing``, ``modes``, ``divergences``,
        ``e_bfmi``, ``tree_depth`` or ``label_switching``.
    seen : str
        What was seen, with the numbers.
    why : str
        Why it matters.
    advice : str
        What to try.
    """

    check: str
    seen: str
    why: str
    advice: str

    @property
    def multimodal(self) -> bool:
        """Whether this finding means the posterior is not a single mode."""
        return self.check in MULTIMODAL


# Results and containers are documented by their attributes, not by __init__.
@dataclass(frozen=True, eq=False)
class Diagnostics:  # numpydoc ignore=PR01
    """The checks of one posterior sample.

    Attributes
    ----------
    dataset : xarray.Dataset
        The ``diagnostics`` group: ``r_hat``, ``ess_bulk_per_chain``, ``ess_tail_per_chain``
        (dim ``variable``: the contract variables, their worst entry), ``vanishing_share``
        (chain, component), ``chain_log_likelihood``, ``divergences``, ``e_bfmi``,
        ``tree_depth_share`` and ``ambiguous_share`` (chain); the findings and the
        thresholds in ``attrs`` (JSON).
    findings : tuple of Finding
        The failed checks, empty when the sample is clean.
    """

    dataset: xr.Dataset
    findings: tuple[Finding, ...]

    @property
    def clean(self) -> bool:
        """No check failed."""
        return not self.findings

    @property
    def single_mode(self) -> bool:
        """No finding says that the chains are in more than one mode."""
        return not any(f.multimodal for f in self.findings)

    def message(self) -> str:
        """The findings as one paragraph: what was seen, why it matters, what to try.

        Returns
        -------
        str
            Empty when the sample is clean.
        """
        if not self.findings:
            return ""
        head = (
            "The posterior is not a single mode"
            if not self.single_mode
            else "The posterior's summaries are unreliable"
        )
        seen = "; ".join(f.seen for f in self.findings)
        why = " ".join(dict.fromkeys(f.why for f in self.findings))
        advice = " ".join(dict.fromkeys(f.advice for f in self.findings))
        return f"{head}: {seen}. Why it matters: {why} What to try: {advice}"

    @classmethod
    def from_dataset(cls, dataset: xr.Dataset) -> Diagnostics:
        """Read back the ``diagnostics`` group that :func:`diagnose` made (e.g. from a file).

        Parameters
        ----------
        dataset : xarray.Dataset
            The group.

        Returns
        -------
        Diagnostics
            The same findings.
        """
        findings = tuple(Finding(**f) for f in json.loads(dataset.attrs.get("findings", "[]")))
        return cls(dataset, findings)


def _setting(name: str) -> str:
    """A setting the advice names, as the caller writes it (``tune=...`` or ``--tune N``)."""
    return option(name, "...", "N")


def _per_variable(result: xr.Dataset, varies: xr.Dataset, how: str) -> dict[str, float]:
    out = {}
    for name in CONTRACT_VARIABLES:
        values = np.asarray(result[name].values, dtype=np.float64)
        values = values[np.isfinite(values) & varies[name].values]
        out[name] = float(np.nan if values.size == 0 else getattr(values, how)())
    return out


def _fmt(values: dict[str, float], digits: int = 3) -> str:
    return ", ".join(f"{k} {v:.{digits}g}" for k, v in values.items())


def diagnose(
    tree: xr.DataTree, n_samples: int | None = None, *, sparse: bool = False
) -> Diagnostics:
    """Check a relabelled posterior sample (see the module's notes for every check).

    Parameters
    ----------
    tree : xarray.DataTree
        With ``posterior`` (``weights``, ``means``, ``covariances``, already relabelled),
        and where present ``sample_stats``, ``log_likelihood`` (``x``) and ``relabeling``
        (``cost_margin``).
    n_samples : int, optional
        N, for the vanishing-weight threshold 1/N; by default the size of the
        ``obs_id`` dim of ``observed_data``.
    sparse : bool, default False
        The posterior of a sparse finite mixture (:meth:`bgmm.bayes.Priors.sparse`), whose
        prior empties the components the data do not need: vanishing components are then
        the intended result, not a finding, and r_hat and ESS are checked on the other
        components (an empty component's parameters are prior draws).

    Returns
    -------
    Diagnostics
        The ``diagnostics`` dataset and the failed checks.
    """
    post = tree["posterior"].to_dataset()[list(CONTRACT_VARIABLES)]
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    if n_samples is None:
        n_samples = int(tree["observed_data"].to_dataset().sizes["obs_id"])
    findings: list[Finding] = []
    variables = list(CONTRACT_VARIABLES)
    weights = post["weights"].transpose("chain", "draw", "component")
    vanishing = (weights < 1.0 / n_samples).mean("draw")
    if sparse:
        # Check the components non-empty in every chain; if the chains emptied different
        # ones, none is, and all are checked (the chains then disagree on the labels).
        kept = np.flatnonzero(~(vanishing > VANISHING_SHARE).any("chain").values)
        if kept.size:
            post = post.isel(component=kept)
    # A constant entry (the weight of a single component, the zeros off a diagonal
    # covariance) has no r_hat or ESS: left out.
    varies = post.std(("chain", "draw")) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        rhat = _per_variable(azs.rhat(post, method="rank"), varies, "max")
        ess_bulk = _per_variable(azs.ess(post, method="bulk"), varies, "min")
        ess_tail = _per_variable(azs.ess(post, method="tail"), varies, "min")
    ess_bulk = {k: v / n_chains for k, v in ess_bulk.items()}
    ess_tail = {k: v / n_chains for k, v in ess_tail.items()}
    if n_chains > 1:
        high = {k: v for k, v in rhat.items() if v > RHAT_MAX}
        if any(v > RHAT_MODES for v in high.values()):
            findings.append(
                Finding(
                    "r_hat_modes",
                    f"r_hat after relabelling is {_fmt(high)} (above {RHAT_MODES})",
                    "the chains explore different regions, so the pooled draws are a mixture "
                    "of modes, not one posterior mode.",
                    "look at the chains separately (trace plots); fewer components or the "
                    "sparse prior (Priors.sparse) if a component is empty, more EM restarts "
                    f"({_setting('n_init')}) for a better start.",
                )
            )
        elif high:
            findings.append(
                Finding(
                    "r_hat",
                    f"r_hat after relabelling is {_fmt(high)} (above {RHAT_MAX})",
                    "the chains have not yet agreed, so means, sds and HDIs are not final.",
                    f"run longer chains ({_setting('draws')}, {_setting('tune')}).",
                )
            )
    low = {
        k: min(ess_bulk[k], ess_tail[k])
        for k in variables
        if min(ess_bulk[k], ess_tail[k]) < ESS_PER_CHAIN_MIN
    }
    if low:
        findings.append(
            Finding(
                "ess",
                f"the smallest bulk/tail ESS per chain is {_fmt(low)} (below {ESS_PER_CHAIN_MIN})",
                "with so few effective draws r_hat, the MCSE and the HDI ends are themselves "
                "unreliable.",
                f"run longer chains ({_setting('draws')}).",
            )
        )
    flagged = np.argwhere(vanishing.values > VANISHING_SHARE) if not sparse else []
    if len(flagged):
        parts = [
            f"component {int(weights['component'].values[k])} in chain {c} "
            f"({100 * float(vanishing.values[c, k]):.0f}% of draws)"
            for c, k in flagged
        ]
        findings.append(
            Finding(
                "vanishing",
                f"weight below 1/N = {1.0 / n_samples:.3g} for " + ", ".join(parts),
                "an empty component's mean and covariance are drawn from the prior alone, and "
                "a chain that empties a component sits in another mode than one that fills it.",
                "fit fewer components, or use the sparse prior (Priors.sparse()) whose "
                "posterior number of non-empty components estimates the number of clusters.",
            )
        )
    ds = xr.Dataset(
        {
            "r_hat": ("variable", [rhat[k] for k in variables]),
            "ess_bulk_per_chain": ("variable", [ess_bulk[k] for k in variables]),
            "ess_tail_per_chain": ("variable", [ess_tail[k] for k in variables]),
            "vanishing_share": vanishing,
        },
        coords={"variable": variables, "chain": post["chain"].values},
    )
    if "log_likelihood" in tree.children and n_chains > 1:
        total = tree["log_likelihood"]["x"].sum("obs_id")
        chain_means = total.mean("draw").values
        within = float(total.std("draw").mean())
        spread = float(chain_means.max() - chain_means.min())
        ds["chain_log_likelihood"] = ("chain", chain_means)
        if spread > 4.0 * max(within, 1e-12) and spread > 2.0:
            findings.append(
                Finding(
                    "modes",
                    f"the chains' log-likelihoods sit in different modes (chain means "
                    f"{np.round(chain_means, 2).tolist()}, within-chain sd {within:.2f})",
                    "chains that settle in different modes give a pooled sample that "
                    "describes none of them.",
                    f"more tuning ({_setting('tune')}) or more EM restarts "
                    f"({_setting('n_init')}) for the start; check the number of components.",
                )
            )
    stats = tree["sample_stats"].to_dataset() if "sample_stats" in tree.children else None
    if stats is not None and "diverging" in stats:
        per_chain = stats["diverging"].sum("draw")
        ds["divergences"] = ("chain", per_chain.values.astype(np.int64))
        n_div = int(per_chain.sum())
        if n_div:
            findings.append(
                Finding(
                    "divergences",
                    f"{n_div} divergent transitions (per chain: {per_chain.values.tolist()})",
                    "divergences mark regions the sampler could not explore, so the draws "
                    "may miss part of the posterior.",
                    f"more tuning ({_setting('tune')}); divergences with a component near "
                    "empty point to too many components.",
                )
            )
    if stats is not None and "energy" in stats:
        with np.errstate(invalid="ignore", divide="ignore"):
            bfmi = np.atleast_1d(azs.bfmi(tree)["energy"].values.astype(np.float64))
        ds["e_bfmi"] = ("chain", bfmi)
        bad = np.flatnonzero(bfmi < EBFMI_MIN)
        if bad.size:
            findings.append(
                Finding(
                    "e_bfmi",
                    f"E-BFMI {np.round(bfmi[bad], 2).tolist()} in chain(s) {bad.tolist()} "
                    f"(below {EBFMI_MIN})",
                    "the momentum resampling cannot reach the energy levels the posterior "
                    "needs, so the tails are under-explored.",
                    f"more tuning ({_setting('tune')}), or a simpler model (fewer components).",
                )
            )
    depth = next((stats[name] for name in _MAX_DEPTH if stats is not None and name in stats), None)
    if depth is not None:
        share = depth.astype(np.float64).mean("draw")
        ds["tree_depth_share"] = ("chain", share.values)
        bad = np.flatnonzero(share.values > TREE_DEPTH_SHARE)
        if bad.size:
            findings.append(
                Finding(
                    "tree_depth",
                    f"the tree depth hit its limit in "
                    f"{np.round(100 * share.values[bad]).astype(int).tolist()}% of the draws "
                    f"of chain(s) {bad.tolist()}",
                    "NUTS then truncates its trajectories and mixes slowly; with mixtures this "
                    "is the mark of too many components (a ridge between equivalent "
                    "solutions).",
                    "fit fewer components, or use the sparse prior (Priors.sparse()).",
                )
            )
    if "relabeling" in tree.children and "cost_margin" in tree["relabeling"]:
        margin = tree["relabeling"]["cost_margin"]
        share = (margin < AMBIGUOUS_MARGIN).mean("draw")
        ds["ambiguous_share"] = ("chain", share.values)
        bad = np.flatnonzero(share.values > AMBIGUOUS_SHARE)
        if bad.size:
            findings.append(
                Finding(
                    "label_switching",
                    f"{np.round(100 * share.values[bad]).astype(int).tolist()}% of the draws "
                    f"of chain(s) {bad.tolist()} sit between two labellings (relabelling "
                    f"cost margin below {AMBIGUOUS_MARGIN})",
                    "their component labels are a near tie, so per-component summaries mix "
                    "two components.",
                    "try relabel='stephens' or 'ecr'; components this close may be one "
                    "cluster (fewer components).",
                )
            )
    thresholds = {
        "RHAT_MAX": RHAT_MAX,
        "RHAT_MODES": RHAT_MODES,
        "ESS_PER_CHAIN_MIN": ESS_PER_CHAIN_MIN,
        "VANISHING_SHARE": VANISHING_SHARE,
        "EBFMI_MIN": EBFMI_MIN,
        "TREE_DEPTH_SHARE": TREE_DEPTH_SHARE,
        "AMBIGUOUS_MARGIN": AMBIGUOUS_MARGIN,
        "AMBIGUOUS_SHARE": AMBIGUOUS_SHARE,
    }
    ds.attrs = {
        "findings": json.dumps([f._asdict() for f in findings]),
        "thresholds": json.dumps(thresholds),
        "single_mode": int(not any(f.multimodal for f in findings)),
        "clean": int(not findings),
        "n_samples": n_samples,
        "n_draws_per_chain": n_draws,
        "sparse": int(sparse),
    }
    return Diagnostics(ds, tuple(findings))
