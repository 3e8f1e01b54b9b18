r"""Cluster memberships with uncertainty: :math:`p(z_n = k \mid x_n, \theta)` over draws."""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.special import logsumexp

from bgmm.data import GMMData, as_data, require_in_memory
from bgmm.exceptions import InputValueError

__all__ = ["draw_memberships", "membership", "n_clusters"]


def _log_densities(means: np.ndarray, covariances: np.ndarray, X: np.ndarray) -> np.ndarray:
    r""":math:`\ln \mathcal{N}(x_n \mid \mu_k, \Sigma_k)` of every draw, ``(S, K, N)``."""
    chol = np.linalg.cholesky(covariances)  # (S, K, d, d)
    diff = X[None, None, :, :] - means[:, :, None, :]  # (S, K, N, d)
    solved = np.linalg.solve(chol[:, :, None, :, :], diff[..., None])[..., 0]
    maha = (solved**2).sum(axis=-1)  # (S, K, N)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)  # (S, K)
    return -0.5 * (X.shape[1] * np.log(2 * np.pi) + log_det[:, :, None] + maha)


def draw_memberships(
    weights: np.ndarray, means: np.ndarray, covariances: np.ndarray, X: np.ndarray
) -> np.ndarray:
    r"""Responsibilities of every sample under every draw, shape (n_draws, n_samples, K).

    NumPy/SciPy only (independent of the EM graphs):

    .. math::
        \gamma^{(s)}_{nk} \propto \pi^{(s)}_k \mathcal{N}(x_n \mid \mu^{(s)}_k, \Sigma^{(s)}_k)

    Parameters
    ----------
    weights : ndarray of shape (n_draws, K)
        :math:`\pi^{(s)}`.
    means : ndarray of shape (n_draws, K, n_features)
        :math:`\mu^{(s)}_k`.
    covariances : ndarray of shape (n_draws, K, n_features, n_features)
        :math:`\Sigma^{(s)}_k`.
    X : ndarray of shape (n_samples, n_features)
        The observations; NaN where missing (a row's observed coordinates then decide,
        :math:`\mathcal{N}(x_{n,o} \mid \mu_{k,o}, \Sigma_{k,oo})`).

    Returns
    -------
    ndarray of shape (n_draws, n_samples, K)
        :math:`\gamma^{(s)}_{nk}`; each row sums to 1.
    """
    missing = np.isnan(X)
    if missing.any():
        log_phi = np.empty((*weights.shape, X.shape[0]))
        patterns, index = np.unique(~missing, axis=0, return_inverse=True)
        for p, o in enumerate(patterns):
            rows = np.flatnonzero(index.reshape(-1) == p)
            log_phi[:, :, rows] = _log_densities(
                means[..., o], covariances[..., o, :][..., o], X[np.ix_(rows, o)]
            )
    else:
        log_phi = _log_densities(means, covariances, X)
    weighted = log_phi + np.log(weights)[:, :, None]
    log_resp = weighted - logsumexp(weighted, axis=1, keepdims=True)
    return np.exp(log_resp).transpose(0, 2, 1)


def _stacked(post: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    stacked = post[["weights", "means", "covariances"]].stack(sample=("chain", "draw"))
    return (
        stacked["weights"].transpose("sample", "component").values,
        stacked["means"].transpose("sample", "component", "feature").values,
        stacked["covariances"].transpose("sample", "component", "feature", "feature_bis").values,
    )


def _all_memberships(w, mu, cov, X: np.ndarray, chunk: int = 500) -> np.ndarray:
    """:func:`draw_memberships` of every draw, ``chunk`` draws at a time: (S, N, K)."""
    return np.concatenate(
        [
            draw_memberships(w[i : i + chunk], mu[i : i + chunk], cov[i : i + chunk], X)
            for i in range(0, w.shape[0], chunk)
        ]
    )


def n_clusters(posterior, data, *, random_seed=None, chunk: int = 200) -> xr.Dataset:
    r"""Posterior of the number of non-empty components :math:`K_+`.

    The sparse finite mixture's estimate of the number of clusters (Malsiner-Walli,
    Frühwirth-Schnatter & Grün 2016): at every draw :math:`s`, allocations
    :math:`z_n \sim \mathrm{Cat}(\gamma^{(s)}_n)` are drawn from the memberships (the model
    marginalises :math:`z`, so they are drawn here, given the draw's parameters), and
    :math:`K_+^{(s)}` counts the components that received at least one observation.

    Parameters
    ----------
    posterior : xarray.DataTree or Dataset
        With ``weights``, ``means`` and ``covariances``.
    data : GMMData or anything :func:`bgmm.as_data` reads
        The observations.
    random_seed : int, optional
        Seeds the allocations: same seed, same counts.
    chunk : int
        Draws processed at once (bounds memory).

    Returns
    -------
    xarray.Dataset
        ``n_nonempty (chain, draw)``: :math:`K_+^{(s)}`; ``probability (n_clusters)``: its
        posterior distribution over 1..K; attrs ``mode`` (the most probable value).
    """
    data = data if isinstance(data, GMMData) else as_data(data)
    require_in_memory(data, "the number of clusters")
    post = posterior["posterior"].to_dataset() if hasattr(posterior, "children") else posterior
    w, mu, cov = _stacked(post)
    X = np.asarray(data.values)
    rng = np.random.default_rng(random_seed)
    k = w.shape[1]
    counts = np.empty(w.shape[0], dtype=np.int64)
    for i in range(0, w.shape[0], chunk):
        resp = draw_memberships(w[i : i + chunk], mu[i : i + chunk], cov[i : i + chunk], X)
        u = rng.uniform(size=resp.shape[:2])[..., None]
        z = (np.cumsum(resp, axis=-1) < u).sum(axis=-1).clip(max=k - 1)  # (S, N)
        occupied = np.zeros((z.shape[0], k), dtype=bool)
        np.put_along_axis(occupied, z, True, axis=1)
        counts[i : i + chunk] = occupied.sum(axis=1)
    shape = (post.sizes["chain"], post.sizes["draw"])
    values = np.arange(1, k + 1)
    probability = np.array([(counts == v).mean() for v in values])
    return xr.Dataset(
        {
            "n_nonempty": (("chain", "draw"), counts.reshape(shape)),
            "probability": ("n_clusters", probability),
        },
        coords={"chain": post["chain"].values, "draw": post["draw"].values, "n_clusters": values},
        attrs={"mode": int(values[probability.argmax()]), "random_seed": str(random_seed)},
    )


def membership(posterior, data, em_resp=None, *, ci_prob: float = 0.94, chunk: int = 500):
    r"""Posterior membership of every observation.

    Parameters
    ----------
    posterior : xarray.DataTree or Dataset
        Relabelled posterior with ``weights``, ``means`` and ``covariances``.
    data : GMMData or anything :func:`bgmm.as_data` reads
        The observations.
    em_resp : ndarray of shape (n_samples, n_components), optional
        EM's plug-in responsibilities (``predict_proba``), for the agreement variables.
    ci_prob : float, default 0.94
        Probability of the equal-tailed interval.
    chunk : int
        Draws processed at once (bounds memory).

    Returns
    -------
    xarray.Dataset with dims (obs_id, component)
        ``mean``, ``lower``, ``upper`` (interval of :math:`p(z_n=k \mid x_n, \theta)` over
        draws), ``entropy`` (of the mean membership, nats), ``most_probable``; with
        ``em_resp``: ``em_resp``, ``abs_difference`` and ``same_component``.
    """
    if not 0 < ci_prob < 1:
        raise InputValueError(f"ci_prob must be in (0, 1), got {ci_prob!r}.")
    data = data if isinstance(data, GMMData) else as_data(data)
    require_in_memory(data, "the posterior membership")
    post = posterior["posterior"].to_dataset() if hasattr(posterior, "children") else posterior
    w, mu, cov = _stacked(post)
    X = np.asarray(data.values)
    resp = _all_memberships(w, mu, cov, X, chunk)
    mean = resp.mean(axis=0)
    tail = (1.0 - ci_prob) / 2.0
    lower, upper = np.quantile(resp, [tail, 1.0 - tail], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(mean > 0, mean * np.log(mean), 0.0).sum(axis=1)
    dims = ("obs_id", "component")
    coords = {"obs_id": list(data.obs_names), "component": post["component"].values}
    ds = xr.Dataset(
        {
            "mean": (dims, mean),
            "lower": (dims, lower),
            "upper": (dims, upper),
            "entropy": (("obs_id",), entropy),
            "most_probable": (("obs_id",), mean.argmax(axis=1)),
        },
        coords=coords,
        attrs={"ci_prob": ci_prob, "n_draws": int(w.shape[0])},
    )
    if em_resp is not None:
        em_resp = np.asarray(em_resp)
        ds["em_resp"] = (dims, em_resp)
        ds["abs_difference"] = (dims, np.abs(mean - em_resp))
        ds["same_component"] = (("obs_id",), mean.argmax(axis=1) == em_resp.argmax(axis=1))
    return ds
