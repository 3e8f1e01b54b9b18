r"""The missing values under the posterior: draws of :math:`x_{n,m}` given :math:`x_{n,o}`.

The model integrates the missing coordinates out (:func:`bgmm.bayes.build_model`), so the
draws of the parameters carry no values for them. Given a draw :math:`\theta^{(s)}`, a
missing entry's posterior predictive draw is two steps of the generative model, run
backwards from what was observed:

.. math::
    z_n \sim \mathrm{Cat}\big(\gamma^{(s)}_n\big), \qquad
    x_{n,m} \mid x_{n,o}, z_n = k \sim
    \mathcal{N}\big(\hat x^{(s)}_{nk,m}, C^{(s)}_{k,m}\big)

(memberships from the observed coordinates, conditional mean and covariance as in
:mod:`bgmm.em.missing`). Over the draws this is :math:`p(x_{n,m} \mid X_{obs})`: the
uncertainty of the imputation and of the parameters together, where EM's
:func:`bgmm.em.impute` gives the conditional mean at one :math:`\hat\theta`.
NumPy only, independent of the EM graphs.
"""

from __future__ import annotations

import arviz_stats as azs
import numpy as np
import xarray as xr

from bgmm.bayes.membership import _stacked, draw_memberships
from bgmm.data import GMMData, as_data
from bgmm.exceptions import InputValueError

__all__ = ["impute_draws", "imputation_summary"]


def impute_draws(posterior, data, *, random_seed=None, chunk: int = 200) -> xr.DataArray:
    r"""Posterior predictive draws of every missing entry.

    Parameters
    ----------
    posterior : xarray.DataTree or Dataset
        With ``weights``, ``means`` and ``covariances`` over ``(chain, draw, ...)``.
    data : GMMData or anything :func:`bgmm.as_data` reads
        The data the posterior was sampled on, NaN where missing.
    random_seed : int, optional
        Seeds the memberships and the values drawn: same seed, same draws.
    chunk : int, default 200
        Draws processed at once (bounds memory).

    Returns
    -------
    xarray.DataArray
        ``x_missing`` over ``(chain, draw, entry)``, one entry per missing value, with the
        coordinates ``obs_id`` and ``feature`` along ``entry``.

    Raises
    ------
    ValueError
        The data have no missing value.
    """
    data = data if isinstance(data, GMMData) else as_data(data, missing="allow")
    if not data.has_missing:
        raise InputValueError(
            f"the data from {data.source} have no missing value, so there is nothing to impute."
        )
    post = posterior["posterior"].to_dataset() if hasattr(posterior, "children") else posterior
    w, mu, cov = _stacked(post)
    X = np.asarray(data.values)
    missing = np.isnan(X)
    rows = np.flatnonzero(missing.any(axis=1))
    X, missing = X[rows], missing[rows]
    rng = np.random.default_rng(random_seed)
    k = w.shape[1]
    out = np.empty((w.shape[0], int(missing.sum())))
    patterns, index = np.unique(~missing, axis=0, return_inverse=True)
    index = index.reshape(-1)
    # the entries in row-major order: row by row, feature by feature
    entry = np.cumsum(missing.ravel()).reshape(missing.shape) - 1
    for start in range(0, w.shape[0], chunk):
        sl = slice(start, start + chunk)
        resp = draw_memberships(w[sl], mu[sl], cov[sl], X)  # (S, N, K)
        u = rng.uniform(size=resp.shape[:2])[..., None]
        z = (np.cumsum(resp, axis=-1) < u).sum(axis=-1).clip(max=k - 1)  # (S, N)
        for p, o in enumerate(patterns):
            these = np.flatnonzero(index == p)
            m = ~o
            sig = cov[sl]  # (S, K, d, d)
            s_oo, s_mo = sig[..., o, :][..., o], sig[..., m, :][..., o]
            s_mm = sig[..., m, :][..., m]
            gain = np.linalg.solve(s_oo, np.swapaxes(s_mo, -1, -2))  # (S, K, |o|, |m|)
            gain = np.swapaxes(gain, -1, -2)  # Sigma_mo Sigma_oo^{-1}
            cond = s_mm - gain @ np.swapaxes(s_mo, -1, -2)
            cond = 0.5 * (cond + np.swapaxes(cond, -1, -2))
            chol = np.linalg.cholesky(cond)  # (S, K, |m|, |m|)
            zk = z[:, these]  # (S, n_p)
            s_idx = np.arange(zk.shape[0])[:, None]
            g, c = gain[s_idx, zk], chol[s_idx, zk]  # (S, n_p, |m|, |o|), (S, n_p, |m|, |m|)
            mean_m, mean_o = mu[sl][s_idx, zk][..., m], mu[sl][s_idx, zk][..., o]
            x_o = X[np.ix_(these, o)][None]
            expected = mean_m + (g @ (x_o - mean_o)[..., None])[..., 0]
            noise = rng.standard_normal(expected.shape)
            drawn = expected + (c @ noise[..., None])[..., 0]
            cols = entry[np.ix_(these, m)]  # (n_p, |m|)
            out[sl][:, cols.ravel()] = drawn.reshape(drawn.shape[0], -1)
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    obs_rows, features = np.nonzero(missing)
    return xr.DataArray(
        out.reshape(n_chain, n_draw, -1),
        dims=("chain", "draw", "entry"),
        coords={
            "chain": post["chain"].values,
            "draw": post["draw"].values,
            "obs_id": ("entry", [data.obs_names[i] for i in rows[obs_rows]]),
            "feature": ("entry", [data.feature_names[j] for j in features]),
        },
        name="x_missing",
        attrs={"random_seed": str(random_seed)},
    )


def imputation_summary(draws: xr.DataArray, em=None, *, ci_prob: float = 0.94) -> xr.Dataset:
    r"""Each missing entry's posterior mean, sd and HDI, with EM's imputation beside them.

    Parameters
    ----------
    draws : xarray.DataArray
        From :func:`impute_draws`.
    em : xarray.Dataset, optional
        From :func:`bgmm.em.impute` on the same data: adds ``em`` (EM's conditional mean),
        ``em_sd`` (its conditional sd at :math:`\hat\theta`) and ``em_in_hdi``.
    ci_prob : float, default 0.94
        Probability of the highest-density intervals.

    Returns
    -------
    xarray.Dataset
        Over ``entry``: ``mean``, ``sd``, ``hdi_lower``, ``hdi_upper`` (and the EM columns).
    """
    if not 0 < ci_prob < 1:
        raise InputValueError(f"ci_prob must be in (0, 1), got {ci_prob!r}.")
    hdi = azs.hdi(draws, prob=ci_prob, dim=["chain", "draw"])
    out = xr.Dataset(
        {
            "mean": draws.mean(("chain", "draw")),
            "sd": draws.std(("chain", "draw"), ddof=1),
            "hdi_lower": hdi.sel(ci_bound="lower", drop=True),
            "hdi_upper": hdi.sel(ci_bound="upper", drop=True),
        },
        attrs={"ci_prob": ci_prob},
    )
    if em is not None:
        rows = em.indexes["obs_id"].get_indexer(draws["obs_id"].values)
        cols = em.indexes["feature"].get_indexer(draws["feature"].values)
        if (rows < 0).any() or (cols < 0).any():
            raise InputValueError(
                "em does not hold the entries of draws: pass bgmm.em.impute of the same data."
            )
        value = em["x"].values[rows, cols]
        inside = (value >= out["hdi_lower"].values) & (value <= out["hdi_upper"].values)
        out["em"] = ("entry", value)
        out["em_sd"] = ("entry", np.sqrt(em["variance"].values[rows, cols]))
        out["em_in_hdi"] = ("entry", inside)
    return out
