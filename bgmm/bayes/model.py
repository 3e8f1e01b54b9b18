r"""The PyMC model of the Gaussian mixture, with the component labels marginalised.

.. math::
    p(x_n \mid \theta) = \sum_k \pi_k \, \mathcal{N}(x_n \mid \mu_k, \Sigma_k)

The model is written with PyMC's own distributions (``pm.Mixture`` of batched
``pm.MvNormal``); it shares no graph with :mod:`bgmm.em`, so the two implementations check
each other (their log-likelihoods agree at the same parameters). The covariances are those
of one covariance family (:data:`BAYES_FAMILIES`), with the priors :class:`Priors` documents.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from bgmm.bayes.priors import Priors
from bgmm.covariance import CovarianceFamily, get_family
from bgmm.data import GMMData, as_data, check_n_components, require_in_memory
from bgmm.exceptions import InputTypeError, InputValueError
from bgmm.params import GMMParams

__all__ = ["BAYES_FAMILIES", "bayes_family", "build_model", "initial_values", "model_coords"]


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


def _lkj_factor(name: str, d: int, priors: Priors):
    factor, _, _ = pm.LKJCholeskyCov(
        name,
        eta=priors.lkj_eta,
        n=d,
        sd_dist=pm.HalfNormal.dist(sigma=np.asarray(priors.sd_scale), shape=d),
        compute_corr=True,
        store_in_trace=False,
    )
    return factor


def _vvv(k: int, d: int, priors: Priors):
    if d == 1:
        return _vvi(k, d, priors)
    # One LKJ factor per component: a batched LKJCholeskyCov fails in PyMC 6.4.
    return pt.stack([_lkj_factor(_chol_name(j), d, priors) for j in range(k)])


def _eee(k: int, d: int, priors: Priors):
    if d == 1:
        return _eei(k, d, priors)
    return pt.broadcast_to(_lkj_factor("chol_cov", d, priors), (k, d, d))


def _vvi(k: int, d: int, priors: Priors):
    sds = pm.HalfNormal("sds", sigma=np.asarray(priors.sd_scale), dims=("component", "feature"))
    return sds[:, :, None] * pt.eye(d)


def _eei(k: int, d: int, priors: Priors):
    sds = pm.HalfNormal("sds", sigma=np.asarray(priors.sd_scale), dims="feature")
    return pt.broadcast_to(sds[:, None] * pt.eye(d), (k, d, d))


def _vii(k: int, d: int, priors: Priors):
    sds = pm.HalfNormal("sds", sigma=priors.spherical_sd_scale, dims="component")
    return sds[:, None, None] * pt.eye(d)


def _eii(k: int, d: int, priors: Priors):
    sds = pm.HalfNormal("sds", sigma=priors.spherical_sd_scale)
    return pt.broadcast_to(sds * pt.eye(d), (k, d, d))


#: Cholesky factors (K, d, d) of the covariances, per family the Bayesian model has.
_FACTORS = {"VVV": _vvv, "EEE": _eee, "VVI": _vvi, "VII": _vii, "EII": _eii, "EEI": _eei}
_FACTORS.update({"E": _eei, "V": _vvi})

#: The families :func:`build_model` and :func:`~bgmm.bayes.sample_posterior` take.
BAYES_FAMILIES = tuple(_FACTORS)


def _supported_names() -> str:
    names = []
    for name in BAYES_FAMILIES:
        family = get_family(name)
        names.append(f"{family.sklearn_name} ({name})" if family.sklearn_name else name)
    return ", ".join(names)


def bayes_family(covariance_type, n_features: int) -> CovarianceFamily:
    """The covariance family of the Bayesian model, or a message naming those it has.

    Parameters
    ----------
    covariance_type : str or CovarianceFamily
        Any name :func:`bgmm.covariance.get_family` takes.
    n_features : int
        The number of features d (the one-feature models E and V need d = 1).

    Returns
    -------
    CovarianceFamily
        The family.

    Raises
    ------
    ValueError
        A family the Bayesian model does not have (the message lists those it has), or an
        unknown name.
    """
    family = get_family(covariance_type, n_features)
    if family.name not in _FACTORS:
        raise InputValueError(
            f"the Bayesian model has no covariance_type={family.name!r}; it has "
            f"{_supported_names()}. Fit {family.name} by EM (bgmm.fit_em), or sample one "
            f"of these."
        )
    return family


@functools.cache
def _resolve_blas_flags() -> str:
    """PyTensor's BLAS flags, resolved once without its "could not link to a BLAS" warning.

    PyTensor looks for a BLAS the first time anything compiles with its C backend (PyMC
    does, for the initial point) and warns, with a page of advice, when pip installed it
    without one. bgmm's log density and gradient compile with JAX or numba, which bring
    their own linear algebra, so the warning tells a bgmm user nothing they can act on.
    The flags stay what PyTensor finds (empty without a BLAS); only the warning is dropped.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*PyTensor could not link to a BLAS.*")
        return pytensor.config.blas__ldflags


def build_model(
    data, n_components: int, priors: Priors | None = None, covariance_type: str = "full"
) -> pm.Model:
    r"""Build the PyMC model of the mixture with the labels :math:`z` marginalised.

    :math:`z_n \sim \mathrm{Cat}(\pi)`, :math:`x_n \mid z_n = k \sim \mathcal{N}(\mu_k, \Sigma_k)`;
    the observed variable's density is :math:`\sum_k \pi_k \mathcal{N}(x_n \mid \mu_k, \Sigma_k)`,
    with :math:`\Sigma_k` of the covariance family ``covariance_type``.

    Parameters
    ----------
    data : GMMData or anything :func:`bgmm.as_data` reads
        The observations.
    n_components : int
        K, between 1 and ``n_samples``.
    priors : Priors, optional
        Hyper-parameters; data-scaled defaults (see :class:`Priors`) when omitted.
    covariance_type : str, default "full"
        ``full`` (VVV), ``tied`` (EEE), ``diag`` (VVI), ``spherical`` (VII), ``EII`` or
        ``EEI`` (and ``E`` / ``V`` with one feature); the priors of each are in
        :class:`Priors`.

    Returns
    -------
    pymc.Model
        Free variables ``weights (component)``, ``means (component, feature)`` and the
        covariance parameters of the family: one ``chol_cov_<k>`` per component for full
        (LKJ Cholesky factors, one per component because a batched ``LKJCholeskyCov``
        fails in PyMC 6.4), one ``chol_cov`` for tied, and standard deviations ``sds`` with
        dims ``(component, feature)`` for diag, ``(feature,)`` for EEI, ``(component,)``
        for spherical and none for EII (with one feature, ``sds`` has the dims of diag
        for the varying families and of EEI for the equal ones). The deterministic
        ``covariances (component, feature, feature_bis)`` holds the full matrices of every
        family; the observed ``x (obs_id, feature)``.

    Raises
    ------
    ValueError
        A family the Bayesian model does not have; the message lists those it has.
    """
    _resolve_blas_flags()
    data = data if isinstance(data, GMMData) else as_data(data)
    require_in_memory(data, "the Bayesian model")
    k = check_n_components(data, n_components)
    family = bayes_family(covariance_type, data.n_features)
    if priors is None:
        priors = Priors()
    if not isinstance(priors, Priors):
        raise InputTypeError(f"priors must be a bgmm.bayes.Priors, got {type(priors).__name__}.")
    p = priors.resolve(data, k)
    with pm.Model(coords=model_coords(data, k)) as model:
        weights = pm.Dirichlet("weights", a=np.asarray(p.weights_concentration), dims="component")
        means = pm.Normal(
            "means",
            mu=np.asarray(p.means_loc),
            sigma=np.asarray(p.means_scale),
            dims=("component", "feature"),
        )
        chol = _FACTORS[family.name](k, data.n_features, p)
        pm.Deterministic(
            "covariances",
            chol @ chol.transpose(0, 2, 1),
            dims=("component", "feature", "feature_bis"),
        )
        # Observations as pm.Data: models of the same shape and priors then share one
        # compiled graph, so refitting new data (simulation studies) skips compilation.
        if data.has_missing:
            _observed_mixture(data, weights, means, chol)
        else:
            x_obs = pm.Data("x_obs", np.asarray(data.values), dims=("obs_id", "feature"))
            pm.Mixture(
                "x",
                w=weights,
                comp_dists=pm.MvNormal.dist(mu=means, chol=chol),
                observed=x_obs,
                dims=("obs_id", "feature"),
            )
    model.bgmm_priors = p
    model.bgmm_family = family
    return model


def _observed_mixture(data: GMMData, weights, means, chol):
    r"""The observed variable ``x`` of data with missing values, marginalised per pattern.

    A row's density is its observed sub-vector's,
    :math:`\sum_k \pi_k \mathcal{N}(x_{n,o} \mid \mu_{k,o}, \Sigma_{k,oo})`: the
    missing coordinates integrated out exactly, the quantity EM's ``missing="em"``
    maximises. Each missingness pattern is one PyMC ``MvNormal`` over its observed
    coordinates (written here, not shared with :mod:`bgmm.em`, so that the test that
    the two log-likelihoods agree checks one against the other). The missing values are
    not parameters of the model (PyMC would impute NaN in an observed variable by
    sampling them): ``x_obs`` holds 0 in their place, never read.
    """
    values = np.asarray(data.values)
    patterns, index = np.unique(~np.isnan(values), axis=0, return_inverse=True)
    index = index.reshape(-1)
    groups = [(np.flatnonzero(index == p), np.flatnonzero(o)) for p, o in enumerate(patterns)]
    x_obs = pm.Data("x_obs", np.nan_to_num(values, nan=0.0), dims=("obs_id", "feature"))

    def logp(value, weights, means, covariances):
        # CustomDist adds the rows' batch dimension in front of each parameter (length 1)
        weights, means = weights.reshape(weights.shape[-1:]), means.reshape(means.shape[-2:])
        covariances = covariances.reshape(covariances.shape[-3:])
        out = pt.zeros(value.shape[:1], dtype=value.dtype)
        for rows, o in groups:
            components = pm.MvNormal.dist(mu=means[:, o], cov=covariances[:, o][:, :, o])
            log_phi = pm.logp(components, value[rows][:, None, o])  # (rows, K)
            out = pt.set_subtensor(out[rows], pt.logsumexp(log_phi + pt.log(weights), axis=-1))
        return out

    return pm.CustomDist(
        "x",
        weights,
        means,
        chol @ pt.swapaxes(chol, -1, -2),
        logp=logp,
        observed=x_obs,
        signature="(k),(k,d),(k,d,d)->(d)",
        dims=("obs_id", "feature"),
    )


def _packed(chol: np.ndarray) -> np.ndarray:
    rows, cols = np.tril_indices(chol.shape[-1])
    return chol[..., rows, cols]


def initial_values(model: pm.Model, params: GMMParams) -> dict[str, np.ndarray]:
    """Starting values (constrained space) of the model's free variables at ``params``.

    The form ``pm.sample(initvals=...)`` and ``nutpie.compile_pymc_model(initial_points=...)``
    take: weights, means and the covariance parameters of the model's family (packed lower
    Cholesky factors, or standard deviations). Covariances of another family are projected
    onto the model's: the first component's matrix for the shared ones, the diagonal for
    the diagonal ones, the mean variance for the spherical ones.

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
    cov = np.asarray(params.covariances, dtype=np.float64)
    d = params.n_features
    family = getattr(model, "bgmm_family", get_family("VVV"))
    variances = np.diagonal(cov, axis1=1, axis2=2)
    values: dict[str, np.ndarray] = {
        "weights": np.asarray(params.weights, dtype=np.float64),
        "means": np.asarray(params.means, dtype=np.float64),
    }
    equal = family.shares_covariance
    if d == 1 or family.name in ("VVI", "EEI"):
        values["sds"] = np.sqrt(variances[0] if equal else variances)
    elif family.name in ("VII", "EII"):
        spherical = np.sqrt(variances.mean(axis=1))
        values["sds"] = spherical[0] if equal else spherical
    elif family.name == "EEE":
        values["chol_cov"] = _packed(np.linalg.cholesky(cov[0]))
    else:
        packed = _packed(np.linalg.cholesky(cov))
        for j in range(params.n_components):
            values[_chol_name(j)] = packed[j]
    missing = set(values) - {v.name for v in model.free_RVs}
    if missing:
        raise InputValueError(
            f"the model has no variables {sorted(missing)}: was it built by "
            f"bgmm.bayes.build_model with {params.n_components} components and {d} features?"
        )
    return values
