r"""Choosing the number of components: EM criteria beside Bayesian LOO.

For every K in a range:

* ``bic`` :math:`= -2 \ln p(X|\hat\theta) + p \ln N` and ``aic`` :math:`= -2 \ln p(X|\hat\theta)
  + 2p` (lower is better), with :math:`p = K d(d+1)/2 + K d + K - 1` free parameters;
* ``icl`` :math:`= \mathrm{BIC} + 2 \, \mathrm{EN}(\hat\gamma)`, the integrated completed
  likelihood of Biernacki, Celeux & Govaert (2000), which adds the entropy of the
  responsibilities and so penalises overlapping components;
* ``elpd_loo`` and its standard error from PSIS-LOO (``arviz_stats.loo``) on the posterior of
  :func:`bgmm.bayes.sample_posterior` (higher is better), and ``looic`` :math:`= -2\,`
  ``elpd_loo`` on the same deviance scale as the criteria above.
"""

from __future__ import annotations

import warnings
from typing import Any

import arviz_stats as azs
import numpy as np
import pandas as pd

from bgmm.data import GMMData, as_data, check_n_components
from bgmm.em import fit_em

__all__ = ["n_parameters", "select_k"]


def n_parameters(n_components: int, n_features: int) -> int:
    """Free parameters of a full-covariance mixture."""
    k, d = n_components, n_features
    return k * d * (d + 1) // 2 + k * d + k - 1


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
    progressbar: bool = False,
) -> pd.DataFrame:
    """EM information criteria and Bayesian LOO for every K in ``k_range``.

    Parameters
    ----------
    data : GMMData or anything :func:`bgmm.as_data` reads
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
    progressbar : bool, default False

    Returns
    -------
    pandas.DataFrame
        Indexed by ``k``: ``log_likelihood``, ``n_parameters``, ``bic``, ``aic``, ``icl``
        and, with ``loo``, ``elpd_loo``, ``elpd_loo_se``, ``p_loo``, ``looic`` and
        ``pareto_k_bad`` (observations whose Pareto k exceeds ArviZ's sample-size dependent
        threshold, at most 0.7: their LOO estimate is unreliable).
    """
    data = data if isinstance(data, GMMData) else as_data(data)
    ks = sorted({check_n_components(data, k) for k in k_range})
    if not ks:
        raise ValueError("k_range is empty; give at least one number of components.")
    n = data.n_samples
    rows = []
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
                random_seed=random_state,
                progressbar=progressbar,
            )
            with warnings.catch_warnings():
                # Reported below through pareto_k_bad rather than as a warning per K.
                warnings.filterwarnings("ignore", message=".*shape parameter of Pareto.*")
                result = azs.loo(tree)
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
    return pd.DataFrame(rows).set_index("k")
