r"""Choosing the number of components: EM criteria beside Bayesian LOO.

For every K in a range:

* ``bic`` :math:`= -2 \ln p(X|\hat\theta) + p \ln N` and ``aic`` :math:`= -2 \ln p(X|\hat\theta)
  + 2p` (lower is better), with :math:`p = K d(d+1)/2 + K d + K - 1` free parameters;
* ``icl`` :math:`= \mathrm{BIC} + 2 \, \mathrm{EN}(\hat\gamma)`, the integrated completed
  likelihood of Biernacki, Celeux & Govaert (2000), which adds the entropy of the
  responsibilities and so penalises overlapping components;
* ``elpd_loo`` and its standard error from PSIS-LOO (``arviz_stats.loo``) on the posterior of
  :func:`bgmm.bayes.sample_posterior` (higher is better), and ``looic`` :math:`= -2\,`
  ``elpd_loo`` on the same deviance scale as the criteria above;
* ``elpd_diff``, ``dse``, ``p_worse`` and ``weight`` from ``arviz_stats.compare``: the
  difference of ``elpd_loo`` from the best K, the standard error *of that difference*
  (computed pointwise, so much smaller than the separate standard errors), the probability
  that this K predicts worse than the best, and the stacking weight.
"""

from __future__ import annotations

import warnings
from typing import Any

import arviz_stats as azs
import numpy as np
import pandas as pd

from bgmm.covariance import get_family
from bgmm.data import GMMData, as_data, check_n_components
from bgmm.em import fit_em

__all__ = ["n_parameters", "select_k"]


def n_parameters(n_components: int, n_features: int, covariance_type: str = "full") -> int:
    r"""Free parameters of a Gaussian mixture (mclust's ``df``).

    The family's covariance parameters (:meth:`bgmm.covariance.CovarianceFamily.n_parameters`;
    :math:`K d (d+1)/2` for full covariances), :math:`K d` means and :math:`K - 1` weights.

    Parameters
    ----------
    n_components : int
        The number of components K.
    n_features : int
        The number of features d.
    covariance_type : str, default "full"
        The covariance family (:func:`bgmm.covariance.get_family`).

    Returns
    -------
    int
        Covariance parameters, means and the K - 1 free weights.
    """
    k, d = n_components, n_features
    return get_family(covariance_type, d).n_parameters(k, d) + k * d + k - 1


def select_k(
    data: Any,
    k_range,
    *,
    n_init: int = 5,
    random_state: int | None = None,
    loo: bool = True,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    backend: str = "jax",
    progressbar: bool = False,
) -> pd.DataFrame:
    r"""EM information criteria and Bayesian LOO for every K in ``k_range``.

    Parameters
    ----------
    data : GMMData or anything :func:`bgmm.as_data` reads
        The data.
    k_range : iterable of int
        Numbers of components to try, each between 1 and ``n_samples``.
    n_init : int, default 5
        EM restarts per K.
    random_state : int, optional
        Seed of the EM restarts and of the sampler (same seed, same table).
    loo : bool, default True
        Also sample each posterior and compute PSIS-LOO (slower).
    draws, tune, chains : int
        Sampler settings for LOO.
    backend : {"jax", "numba"}, default "jax"
        Compiler of the sampler's log density (see :func:`bgmm.bayes.sample_posterior`).
    progressbar : bool, default False
        Show the sampler's progress bars.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``k``: ``log_likelihood``, ``n_parameters``, ``bic``, ``aic``, ``icl``
        and, with ``loo``, ``elpd_loo``, ``elpd_loo_se``, ``p_loo``, ``looic`` and
        ``pareto_k_bad`` (observations whose Pareto k exceeds ArviZ's sample-size dependent
        threshold, at most 0.7: their LOO estimate is unreliable), and the comparison with
        the best K: ``elpd_diff`` (0 for the best), ``dse`` (standard error of the
        difference), ``p_worse`` and the stacking ``weight``.

    Notes
    -----
    With :math:`p` free parameters (:func:`n_parameters`) and the EM estimate
    :math:`\hat\theta`,

    .. math::
        \mathrm{BIC} = -2 \ln p(X \mid \hat\theta) + p \ln N, \quad
        \mathrm{AIC} = -2 \ln p(X \mid \hat\theta) + 2p, \quad
        \mathrm{ICL} = \mathrm{BIC} - 2 \sum_n \sum_k \hat\gamma_{nk} \ln \hat\gamma_{nk},

    and :math:`\mathrm{LOOIC} = -2\,\widehat{\mathrm{elpd}}_\mathrm{loo}` with
    :math:`\widehat{\mathrm{elpd}}_\mathrm{loo} = \sum_n \ln p(x_n \mid X_{-n})` estimated
    by PSIS.

    A K whose ``elpd_diff`` lies within about two ``dse`` of 0 predicts about as well as the
    best; the smallest such K is the usual choice. Judge differences by ``dse``, not by
    ``elpd_loo_se``: the pointwise differences of two models fitted to the same data are
    strongly correlated.
    """
    data = data if isinstance(data, GMMData) else as_data(data)
    ks = sorted({check_n_components(data, k) for k in k_range})
    if not ks:
        raise ValueError("k_range is empty; give at least one number of components.")
    n = data.n_samples
    rows, elpds = [], {}
    for k in ks:
        em = fit_em(data, k, n_init=n_init, random_state=random_state)
        p = n_parameters(k, data.n_features)
        deviance = -2.0 * em.log_likelihood
        resp = np.asarray(em.resp)
        entropy = -np.sum(resp * np.log(np.where(resp > 0, resp, 1.0)))
        row = {
            "k": k,
            "log_likelihood": em.log_likelihood,
            "n_parameters": p,
            "bic": deviance + p * np.log(n),
            "aic": deviance + 2 * p,
            "icl": deviance + p * np.log(n) + 2.0 * entropy,
        }
        if loo:
            from bgmm.bayes import sample_posterior

            tree = sample_posterior(
                data,
                k,
                em=em,
                draws=draws,
                tune=tune,
                chains=chains,
                backend=backend,
                random_seed=random_state,
                progressbar=progressbar,
            )
            with warnings.catch_warnings():
                # Reported below through pareto_k_bad rather than as a warning per K.
                warnings.filterwarnings("ignore", message=".*shape parameter of Pareto.*")
                result = azs.loo(tree)
            elpds[str(k)] = result
            row.update(
                {
                    "elpd_loo": float(result.elpd),
                    "elpd_loo_se": float(result.se),
                    "p_loo": float(result.p),
                    "looic": -2.0 * float(result.elpd),
                    "pareto_k_bad": int((np.asarray(result.pareto_k) > result.good_k).sum()),
                }
            )
        rows.append(row)
    table = pd.DataFrame(rows).set_index("k")
    if loo:
        table = table.join(_compare_loo(elpds))
    return table


def _compare_loo(elpds: dict) -> pd.DataFrame:
    """Each K against the best by LOO (``arviz_stats.compare``), indexed by K."""
    columns = ["elpd_diff", "dse", "p_worse", "weight"]
    if len(elpds) == 1:
        (k,) = elpds
        return pd.DataFrame(
            [[0.0, 0.0, np.nan, 1.0]], index=pd.Index([int(k)], name="k"), columns=columns
        )
    cmp = azs.compare(elpds, round_to="none")
    out = cmp[columns].astype(float)
    out.index = pd.Index([int(k) for k in out.index], name="k")
    return out
