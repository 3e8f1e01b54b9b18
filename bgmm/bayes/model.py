r"""The PyMC model of the Gaussian mixture, with the component labels marginalised.

.. math::
    p(x_n \mid \theta) = \sum_k \pi_k \, \mathcal{N}(x_n \mid \mu_k, \Sigma_k)

The model is written with PyMC's own distributions (``pm.Mixture`` of batched
``pm.MvNormal``); it shares no graph with :mod:`bgmm.em`, so the two implementations check
each other (their log-likelihoods agree at the same parameters).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bgmm.bayes.priors import Priors
from bgmm.data import GMMData, as_data, check_n_components
from bgmm.params import GMMParams

__all__ = ["build_model", "initial_values", "model_coords"]


def _chol_name(k: int) -> str:
    return f"chol_cov_{k}"


def model_coords(data: GMMData, n_components: int) -> dict[str, list]:
    """The coordinates shared by EM results and posteriors.

    Parameters
    ----------
    data : GMMData
        The data (feature and observation names).
    n_components : int
        K.

    Returns
    -------
    dict
        ``component`` (0 .. K-1), ``feature``, ``feature_bis`` and ``obs_id``.
    """
    features = list(data.feature_names)
    return {
        "component": list(range(n_components)),
        "feature": features,
        "feature_bis": features,
        "obs_id": list(data.obs_names),
    }


def build_model(data, n_components: int, priors: Priors | None = None) -> pm.Model:
    r"""Build the PyMC model of the mixture with the labels :math:`z` marginalised.

    :math:`z_n \sim \mathrm{Cat}(\pi)`, :math:`x_n \mid z_n = k \sim \mathcal{N}(\mu_k, \Sigma_k)`;
    the observed variable's density is :math:`\sum_k \pi_k \mathcal{N}(x_n \mid \mu_k, \Sigma_k)`.

    Parameters
    ----------
    data : GMMData or anything :func:`bgmm.as_data` reads
        The observations.
    n_components : int
        K, between 1 and ``n_samples``.
    priors : Priors, optional
        Hyper-parameters; data-scaled defaults (see :class:`Priors`) when omitted.

    Returns
    -------
    pymc.Model
        Free variables ``weights (component)``, ``means (component, feature)`` and one
        ``chol_cov_<k>`` per component (LKJ Cholesky factor, built one per component
        because a batched ``LKJCholeskyCov`` fails in PyMC 6.4); the deterministic
        ``covariances (component, feature, feature_bis)``; the observed ``x (obs_id,
        feature)``.
    """
    data = data if isinstance(data, GMMData) else as_data(data)
    k = check_n_components(data, n_components)
    if priors is None:
        priors = Priors()
    if not isinstance(priors, Priors):
        raise TypeError(f"priors must be a bgmm.bayes.Priors, got {type(priors).__name__}.")
    p = priors.resolve(data, k)
    d = data.n_features
    with pm.Model(coords=model_coords(data, k)) as model:
        weights = pm.Dirichlet("weights", a=np.asarray(p.weights_concentration), dims="component")
        means = pm.Normal(
            "means",
            mu=np.asarray(p.means_loc),
            sigma=np.asarray(p.means_scale),
            dims=("component", "feature"),
        )
        if d == 1:
            sds = pm.HalfNormal("sds", sigma=np.asarray(p.sd_scale), dims=("component", "feature"))
            chol = sds[:, :, None]
        else:
            factors = []
            for j in range(k):
                factor, _, _ = pm.LKJCholeskyCov(
                    _chol_name(j),
                    eta=p.lkj_eta,
                    n=d,
                    sd_dist=pm.HalfNormal.dist(sigma=np.asarray(p.sd_scale), shape=d),
                    compute_corr=True,
                    store_in_trace=False,
                )
                factors.append(factor)
            chol = pt.stack(factors)
        pm.Deterministic(
            "covariances",
            chol @ chol.transpose(0, 2, 1),
            dims=("component", "feature", "feature_bis"),
        )
        # Observations as pm.Data: models of the same shape and priors then share one
        # compiled graph, so refitting new data (simulation studies) skips compilation.
        x_obs = pm.Data("x_obs", np.asarray(data.values), dims=("obs_id", "feature"))
        pm.Mixture(
            "x",
            w=weights,
            comp_dists=pm.MvNormal.dist(mu=means, chol=chol),
            observed=x_obs,
            dims=("obs_id", "feature"),
        )
    model.bgmm_priors = p
    return model


def initial_values(model: pm.Model, params: GMMParams) -> dict[str, np.ndarray]:
    """Starting values (constrained space) of the model's free variables at ``params``.

    The form ``pm.sample(initvals=...)`` and ``nutpie.compile_pymc_model(initial_points=...)``
    take: weights, means and the packed lower Cholesky factor of every covariance.

    Parameters
    ----------
    model : pymc.Model
        From :func:`build_model`.
    params : GMMParams
        The starting point (usually the EM estimate), with the model's K and d.

    Returns
    -------
    dict of str to ndarray
        One value per free variable of ``model``.
    """
    chol = np.linalg.cholesky(np.asarray(params.covariances))
    d = params.n_features
    values: dict[str, np.ndarray] = {
        "weights": np.asarray(params.weights, dtype=np.float64),
        "means": np.asarray(params.means, dtype=np.float64),
    }
    if d == 1:
        values["sds"] = chol[:, :, 0]
    else:
        rows, cols = np.tril_indices(d)
        for j in range(params.n_components):
            values[_chol_name(j)] = chol[j][rows, cols]
    missing = set(values) - {v.name for v in model.free_RVs}
    if missing:
        raise ValueError(
            f"the model has no variables {sorted(missing)}: was it built by "
            f"bgmm.bayes.build_model with {params.n_components} components and {d} features?"
        )
    return values
