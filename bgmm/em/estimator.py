"""A scikit-learn compatible estimator around :func:`bgmm.em.fit_em`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted

from bgmm.data import check_features
from bgmm.datasets import simulate
from bgmm.em.solver import EMResult, _missing_data, evaluate, fit_em, impute
from bgmm.exceptions import InputValueError, SingularCovarianceError

__all__ = ["GaussianMixtureEM"]


class GaussianMixtureEM(DensityMixin, BaseEstimator):
    r"""Gaussian mixture fitted by EM, with the PyTensor graphs of :mod:`bgmm.em.graph`.

    .. math::
        p(x \mid \theta) = \sum_{k=1}^K \pi_k \, \mathcal{N}(x \mid \mu_k, \Sigma_k)

    Parameters
    ----------
    n_components : int, default 1
        Number of components K.
    covariance_type : str, default "full"
        One of scikit-learn's ``"full"``, ``"tied"``, ``"diag"``, ``"spherical"``, or one of
        mclust's fourteen families ``"EII"`` ... ``"VVV"`` (``"E"`` / ``"V"`` for one
        feature); see :mod:`bgmm.covariance`.
    tol : float, default 1e-10
        Threshold on the change of the mean per-sample log-likelihood.
    max_iter : int, default 1000
        Most EM iterations per restart.
    reg_covar : float, default 1e-6
        Added to the diagonal of each covariance; 0 gives the derivation exactly.
    init_params : {"kmeans", "k-means++", "random", "hierarchical", "auto"}, default "kmeans"
        How the responsibilities are initialised (see :func:`bgmm.fit_em`).
    n_init : int, default 1
        Restarts; the best log-likelihood is kept.
    random_state : int, numpy Generator or None
        Seed of every random choice (restarts, k-means, ``sample``).
    weights_init : array-like of shape (n_components,), optional
        Starting weights.
    means_init : array-like of shape (n_components, n_features), optional
        Starting means.
    covariances_init : array-like, optional
        Starting covariances, ``(n_components, n_features, n_features)`` or the shape of
        ``covariances_`` for ``covariance_type``; with all three given, EM starts exactly
        there.
    dtype : {"float64", "float32"}, default "float64"
        Precision of the computation (see :func:`bgmm.fit_em`).
    chunk_size : int, optional
        Rows per chunk of the E step; chosen by the engine by default.
    missing : {"raise", "em"}, default "raise"
        Missing values (NaN): refused, or fitted by EM under missing at random (see
        :func:`bgmm.fit_em`). With ``"em"``, ``predict``, ``predict_proba``,
        ``score_samples`` and ``score`` accept rows with missing values (their observed
        coordinates decide), and :meth:`impute` fills them in.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        In scikit-learn's shape for its names: ``(n_components, n_features, n_features)``
        for ``"full"`` (and for mclust's names), ``(n_features, n_features)`` for
        ``"tied"``, ``(n_components, n_features)`` for ``"diag"``, ``(n_components,)`` for
        ``"spherical"``. ``result_.covariances`` holds the full matrices.
    n_iter_ : int
    converged_ : bool
    log_likelihood_ : float
        :math:`\ln p(X \mid \theta)` at the returned parameters, a sum over samples.
    lower_bound_ : float
        As in scikit-learn: the log-likelihood per sample, ``log_likelihood_`` divided by
        the total sample weight (the bound equals it after an E step).
    precisions_ : ndarray
        :math:`\Sigma_k^{-1}`, in the shape of ``covariances_`` (absent when a covariance
        is singular).
    precisions_cholesky_ : ndarray
        :math:`U_k` with :math:`\Sigma_k^{-1} = U_k U_k^T` (scikit-learn's convention), in
        the shape of ``covariances_``.
    history_ : pandas.DataFrame
        Per iteration: ``log_likelihood``, ``q_value``, ``entropy``, ``lower_bound``,
        ``kl``, ``regularization_gap``.
    result_ : EMResult
        The immutable result of the functional core.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame.

    See Also
    --------
    bgmm.fit_em : The functional core this estimator wraps.

    Notes
    -----
    Lazy data (a ``dask.array.Array`` or Dask DataFrame, a zarr store, Parquet files, a CSV
    glob; :func:`bgmm.as_data`) are fitted on the active Dask scheduler, block by block,
    with the result of the in-memory fit. ``predict``, ``predict_proba`` and
    ``score_samples`` of lazy data return Dask arrays (nothing is computed until asked
    for); ``score``, ``bic`` and ``aic`` are reductions over the blocks.
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-10,
        max_iter: int = 1000,
        reg_covar: float = 1e-6,
        init_params: str = "kmeans",
        n_init: int = 1,
        random_state: Any = None,
        weights_init: Any = None,
        means_init: Any = None,
        covariances_init: Any = None,
        dtype: str = "float64",
        chunk_size: int | None = None,
        missing: str = "raise",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.max_iter = max_iter
        self.reg_covar = reg_covar
        self.init_params = init_params
        self.n_init = n_init
        self.random_state = random_state
        self.weights_init = weights_init
        self.means_init = means_init
        self.covariances_init = covariances_init
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.missing = missing

    def __sklearn_tags__(self):
        """scikit-learn's tags: NaN are accepted (as missing values) with ``missing="em"``.

        Returns
        -------
        sklearn.utils.Tags
            The mixin's tags, ``input_tags.allow_nan`` set from ``missing``.
        """
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "em"
        return tags

    def fit(self, X, y=None, sample_weight=None) -> GaussianMixtureEM:
        """Estimate the parameters by EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), DataFrame, DataArray or path
            Read through :func:`bgmm.as_data`.
        y : None
            Ignored (scikit-learn's API).
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative repetition counts (an integer weight acts as that many copies).

        Returns
        -------
        GaussianMixtureEM
            The fitted estimator (``self``).
        """
        data = _missing_data(X, self.missing)
        result = fit_em(
            data,
            self.n_components,
            covariance_type=self.covariance_type,
            tol=self.tol,
            max_iter=self.max_iter,
            reg_covar=self.reg_covar,
            init_params=self.init_params,
            n_init=self.n_init,
            random_state=self.random_state,
            weights_init=self.weights_init,
            means_init=self.means_init,
            covariances_init=self.covariances_init,
            sample_weight=sample_weight,
            dtype=self.dtype,
            chunk_size=self.chunk_size,
            missing=self.missing,
        )
        self._set_fitted(result, X)
        return self

    def _set_fitted(self, result: EMResult, X) -> None:
        self.result_ = result
        self.weights_ = np.array(result.weights)
        self.means_ = np.array(result.means)
        self.covariances_ = result.family.compact(result.covariances)
        # scikit-learn's precisions: Sigma^-1 and its factor U with Sigma^-1 = U U^T (the
        # transposed inverse of Sigma's lower Cholesky factor), in covariances_'s shape.
        full = np.asarray(result.covariances)
        if np.all(np.isfinite(full)) and np.all(np.linalg.eigvalsh(full)[:, 0] > 0):
            factor = np.linalg.inv(np.linalg.cholesky(full)).transpose(0, 2, 1)
            self.precisions_cholesky_ = result.family.compact(factor)
            self.precisions_ = result.family.compact(factor @ factor.transpose(0, 2, 1))
        self.lower_bound_ = result.log_likelihood / result.total_weight
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        self.log_likelihood_ = result.log_likelihood
        self.history_ = result.history_frame()
        self.n_features_in_ = self.means_.shape[1]
        if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
            self.feature_names_in_ = np.asarray(result.feature_names, dtype=object)

    def fit_predict(self, X, y=None) -> np.ndarray:
        r"""Fit, then return the most probable component of every sample.

        Equal to ``fit(X).predict(X)``: the responsibilities come from a final E step at
        the returned parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), DataFrame, DataArray or path
            Read through :func:`bgmm.as_data`.
        y : None
            Ignored (scikit-learn's API).

        Returns
        -------
        ndarray or dask.array.Array of shape (n_samples,)
            :math:`\arg\max_k \gamma_{kn}`.
        """
        self.fit(X)
        if not np.isfinite(self.log_likelihood_):
            raise SingularCovarianceError(
                "the fitted covariances are singular, so memberships are undefined; "
                "refit with reg_covar > 0."
            )
        return self.result_.resp.argmax(axis=1)

    def _evaluate(self, X) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self)
        data = _missing_data(X, self.missing)
        check_features(data, self.n_features_in_, type(self).__name__)
        return evaluate(self.result_.params, data, missing=self.missing)

    def impute(self, X) -> xr.Dataset:
        r"""The missing values of ``X``: conditional means and variances (``missing="em"``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), DataFrame, DataArray or path
            Read through :func:`bgmm.as_data`, NaN where missing; the features used in
            ``fit``.

        Returns
        -------
        xarray.Dataset
            ``x`` (missing values replaced by :math:`E[x_m \mid x_o]`), ``variance``,
            ``missing`` and ``log_likelihood`` (:func:`bgmm.em.impute`).
        """
        check_is_fitted(self)
        data = _missing_data(X, "em")
        check_features(data, self.n_features_in_, type(self).__name__)
        return impute(self.result_.params, data)

    def predict(self, X) -> np.ndarray:
        r"""Most probable component of every sample, :math:`\arg\max_k \gamma_{kn}`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), DataFrame, DataArray or path
            Read through :func:`bgmm.as_data`; the features used in ``fit``.

        Returns
        -------
        ndarray or dask.array.Array of shape (n_samples,)
            Component indices.
        """
        return self._evaluate(X)[0].argmax(axis=1)

    def predict_proba(self, X) -> np.ndarray:
        r"""Responsibilities :math:`\gamma_{kn} = \pi_k \phi_k(x_n) / \sum_j \pi_j \phi_j(x_n)`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), DataFrame, DataArray or path
            Read through :func:`bgmm.as_data`; the features used in ``fit``.

        Returns
        -------
        ndarray or dask.array.Array of shape (n_samples, n_components)
            Rows sum to 1.
        """
        log_resp = self._evaluate(X)[0]
        return np.exp(log_resp)  # a Dask array stays lazy (NumPy's ufunc protocol)

    def score_samples(self, X) -> np.ndarray:
        r"""Log density of every sample, :math:`\ln p(x_n \mid \theta)`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), DataFrame, DataArray or path
            Read through :func:`bgmm.as_data`; the features used in ``fit``.

        Returns
        -------
        ndarray or dask.array.Array of shape (n_samples,)
            :math:`\ln \sum_k \pi_k \phi_k(x_n)`.
        """
        return self._evaluate(X)[1]

    def score(self, X, y=None, sample_weight=None) -> float:
        r"""Mean per-sample log-likelihood, :math:`\sum_n w_n \ln p(x_n|\theta) / \sum_n w_n`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), DataFrame, DataArray or path
            Read through :func:`bgmm.as_data`; the features used in ``fit``.
        y : None
            Ignored (scikit-learn's API).
        sample_weight : array-like of shape (n_samples,), optional
            Repetition counts (1 by default): the weighted mean.

        Returns
        -------
        float
            Higher is better.
        """
        total, n = self._weighted_log_likelihood(X, sample_weight)
        return total / n

    def _weighted_log_likelihood(self, X, sample_weight) -> tuple[float, float]:
        r""":math:`\sum_n w_n \ln p(x_n)` and :math:`\sum_n w_n`: a reduction for lazy data."""
        log_p = self.score_samples(X)
        lazy = not isinstance(log_p, np.ndarray)
        if lazy:
            import dask
            import dask.array as da

            if sample_weight is None:
                return float(log_p.sum().compute()), float(log_p.shape[0])
            w = da.asarray(sample_weight, chunks=(log_p.chunks[0],)).astype(np.float64)
        else:
            w = np.ones_like(log_p) if sample_weight is None else np.asarray(sample_weight, float)
        if w.shape != log_p.shape:
            raise InputValueError(
                f"sample_weight must have shape (n_samples,) = {log_p.shape}, got {w.shape}; "
                f"pass one weight per row of X."
            )
        if lazy:
            total, n = dask.compute((w * log_p).sum(), w.sum())
            return float(total), float(n)
        return float(w @ log_p), float(w.sum())

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw from the fitted mixture (seeded by ``random_state``).

        Parameters
        ----------
        n_samples : int, default 1
            Number of draws.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            The draws.
        y : ndarray of shape (n_samples,)
            The component of every draw.
        """
        check_is_fitted(self)
        draws = simulate(self.result_.params, n_samples, self.random_state)
        return np.array(draws.data.values), draws.labels

    def _n_parameters(self) -> int:
        return self.result_.n_parameters

    def bic(self, X, sample_weight=None) -> float:
        r"""Bayesian information criterion, :math:`-2 \ln p(X \mid \theta) + p \ln N`.

        With sample weights (repetition counts), :math:`\ln p = \sum_n w_n \ln p(x_n)` and
        :math:`N = \sum_n w_n`, the criterion of the data with each row repeated.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), DataFrame, DataArray or path
            Read through :func:`bgmm.as_data`; the features used in ``fit``.
        sample_weight : array-like of shape (n_samples,), optional
            Repetition counts (1 by default).

        Returns
        -------
        float
            Lower is better; :math:`p` counts the free parameters.
        """
        total, n = self._weighted_log_likelihood(X, sample_weight)
        return float(-2.0 * total + self._n_parameters() * np.log(n))

    def aic(self, X, sample_weight=None) -> float:
        r"""Akaike information criterion, :math:`-2 \ln p(X \mid \theta) + 2p`.

        With sample weights (repetition counts), :math:`\ln p = \sum_n w_n \ln p(x_n)` and
        :math:`N = \sum_n w_n`, the criterion of the data with each row repeated.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), DataFrame, DataArray or path
            Read through :func:`bgmm.as_data`; the features used in ``fit``.
        sample_weight : array-like of shape (n_samples,), optional
            Repetition counts (1 by default).

        Returns
        -------
        float
            Lower is better; :math:`p` counts the free parameters.
        """
        total, _ = self._weighted_log_likelihood(X, sample_weight)
        return float(-2.0 * total + 2 * self._n_parameters())
