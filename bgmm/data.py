"""The shared data layer: one validated container that every solver reads.

``as_data`` is the single entry point where user data is checked. Everything downstream
(the EM solver, the PyMC model, the comparison) receives a :class:`GMMData` and may assume
a finite float64 array of shape ``(n_samples, n_features)`` with named features.

The code uses the ecosystem orientation ``X: (n_samples, n_features)``; the derivation
writes the transpose (one column per sample).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse
import xarray as xr

from bgmm._arrays import aligned_copy, all_finite, readonly
from bgmm._spelling import on_command_line, option
from bgmm._table import CSVTable, check_columns, read_csv
from bgmm._validation import check_number
from bgmm.exceptions import DataWarning, InputTypeError, InputValueError

__all__ = [
    "MISSING",
    "CSVTable",
    "GMMData",
    "RowLabels",
    "Standardization",
    "as_data",
    "check_features",
    "check_n_components",
    "read_csv",
    "require_in_memory",
]


class RowLabels(Sequence[str]):
    """The labels ``"0", "1", ..., "n-1"`` of rows that have no names, made on demand.

    Behaves as the tuple of those strings (length, indexing, iteration, equality with a
    tuple or list) without holding ``n`` Python strings: a million unnamed rows cost
    nothing here.

    Parameters
    ----------
    n : int
        The number of rows.
    """

    __slots__ = ("_n",)

    def __init__(self, n: int):
        self._n = int(n)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(str(i) for i in range(self._n)[index])
        return str(range(self._n)[index])

    def __iter__(self):
        return map(str, range(self._n))

    def __eq__(self, other) -> bool:
        if isinstance(other, RowLabels):
            return self._n == other._n
        if isinstance(other, tuple | list):
            return len(other) == self._n and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))  # as the equal tuple's

    def __repr__(self) -> str:
        return f"RowLabels({self._n})"


#: What :func:`as_data` does with NaN values: refuse them, or keep them as missing values.
MISSING = ("raise", "allow")


# Results and containers are documented by their attributes, not by __init__.
@dataclass(frozen=True)
class Standardization:  # numpydoc ignore=PR01
    """The affine map ``z = (x - center) / scale`` applied to each feature.

    Kept with the data so that estimates made on the standardised scale can be reported
    on the original one.

    Attributes
    ----------
    center : ndarray of shape (n_features,)
        The feature means.
    scale : ndarray of shape (n_features,)
        The feature standard deviations.
    """

    center: np.ndarray
    scale: np.ndarray

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Original scale -> standardised scale.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Values on the original scale.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            ``(X - center) / scale``.
        """
        return (np.asarray(X, dtype=np.float64) - self.center) / self.scale

    def inverse_means(self, means: np.ndarray) -> np.ndarray:
        """Means on the standardised scale -> original scale, shape preserved.

        Parameters
        ----------
        means : array-like of shape (..., n_features)
            Means on the standardised scale.

        Returns
        -------
        ndarray
            ``means * scale + center``.
        """
        return np.asarray(means) * self.scale + self.center

    def inverse_covariances(self, covariances: np.ndarray) -> np.ndarray:
        r"""Covariances on the standardised scale -> original scale.

        :math:`D \Sigma D` with :math:`D = \operatorname{diag}(\text{scale})`.

        Parameters
        ----------
        covariances : array-like of shape (..., n_features, n_features)
            Covariances on the standardised scale.

        Returns
        -------
        ndarray
            The covariances on the original scale, same shape.
        """
        return np.asarray(covariances) * np.multiply.outer(self.scale, self.scale)


# Results and containers are documented by their attributes, not by __init__.
@dataclass(frozen=True, eq=False)
class GMMData:  # numpydoc ignore=PR01
    """Validated observations shared by every solver.

    Attributes
    ----------
    values : ndarray or dask.array.Array of shape (n_samples, n_features)
        Finite float64 values, read-only (standardised when ``standardization`` is set);
        NaN marks a missing value where ``has_missing``.
        A Dask array for lazy sources (Dask collections, zarr stores, Parquet files, CSV
        globs): its blocks are whole rows and are read when a solver needs them.
    feature_names : tuple of str
        One name per feature (column names of a DataFrame or CSV, or ``"x0"``, ...).
    obs_names : tuple of str
        One label per sample (row labels of a DataFrame, or ``"0"``, ``"1"``, ...).
    source : str
        Where the data came from (a path, ``"numpy array"``, a dataset's provenance).
    standardization : Standardization or None
        The transform applied to ``values``, if any.
    has_missing : bool
        Whether some values are missing (NaN): only from ``as_data(..., missing="allow")``,
        which is what ``fit_em(..., missing="em")`` reads with.
    """

    values: np.ndarray
    feature_names: tuple[str, ...]
    obs_names: tuple[str, ...]
    source: str
    standardization: Standardization | None = field(default=None)
    magnitudes: np.ndarray | None = field(default=None, repr=False)
    has_missing: bool = field(default=False)

    @property
    def observed(self):
        """Which values are observed: ``(n_samples, n_features)`` booleans, False for NaN.

        Returns
        -------
        ndarray or dask.array.Array of bool
            All True unless the data were read with ``missing="allow"`` and have NaN; a
            Dask array (nothing computed) for lazy data.
        """
        if self.lazy:
            import dask.array as da

            return ~da.isnan(self.values)
        if not self.has_missing:
            return np.ones(self.values.shape, dtype=bool)
        return ~np.isnan(np.asarray(self.values))

    @property
    def lazy(self) -> bool:
        """Whether ``values`` is a Dask array (read block by block, never all at once)."""
        return not isinstance(self.values, np.ndarray)

    def largest_magnitudes(self) -> np.ndarray:
        r"""The largest magnitude of each feature (known without a pass for lazy data).

        Returns
        -------
        ndarray of shape (n_features,)
            :math:`\max_n |x_{nj}|`.
        """
        if self.magnitudes is not None:
            return self.magnitudes
        values = self.values
        if not len(values):
            return np.zeros(values.shape[1])
        if self.has_missing:
            return np.maximum(np.nanmax(values, axis=0), -np.nanmin(values, axis=0))
        return np.maximum(values.max(axis=0), -values.min(axis=0))

    def sample_rows(self, n_samples: int, random_state=None) -> GMMData:
        """A seeded random subset of the rows, in memory (for a subsample posterior).

        Parameters
        ----------
        n_samples : int
            How many rows (all of them, in order, when it exceeds the data's).
        random_state : int, numpy Generator or None
            Seed of the draw; the same seed gives the same rows.

        Returns
        -------
        GMMData
            The rows in their original order, with their row labels, the same feature
            names and standardisation.
        """
        from bgmm._dask import sample_rows

        n_samples = check_number("n_samples", n_samples, low=1, integer=True)
        rows, values = sample_rows(self.values, n_samples, np.random.default_rng(random_state))
        values = aligned_copy(values)
        values.setflags(write=False)
        obs = tuple(self.obs_names[i] for i in rows.tolist())
        source = f"{len(rows)} rows drawn from {self.source}"
        has_missing = self.has_missing and bool(np.isnan(values).any())
        if has_missing:
            unseen = [self.feature_names[j] for j in np.flatnonzero(np.isnan(values).all(axis=0))]
            if unseen:
                raise InputValueError(
                    f"the {len(rows)} rows drawn from {self.source} have no observed value in "
                    f"column(s) {unseen}; draw more rows."
                )
        return GMMData(
            values, self.feature_names, obs, source, self.standardization, None, has_missing
        )

    @property
    def n_samples(self) -> int:
        """Number of observations N."""
        return self.values.shape[0]

    @property
    def n_features(self) -> int:
        """Number of features (the derivation's l, also d)."""
        return self.values.shape[1]

    def to_dataframe(self) -> pd.DataFrame:
        """The values as a DataFrame indexed by ``obs_names``.

        Returns
        -------
        pandas.DataFrame
            A copy, one column per feature.

        Raises
        ------
        ValueError
            The data are lazy (use ``sample_rows`` or ``to_dataarray``).
        """
        if self.lazy:
            raise InputValueError(
                f"the data from {self.source} are lazy ({self.n_samples} rows, read block by "
                f"block); a DataFrame would load them all. Use data.sample_rows(n) for a "
                f"subset in memory, or data.to_dataarray() for a Dask-backed DataArray."
            )
        return pd.DataFrame(
            np.array(self.values), columns=list(self.feature_names), index=list(self.obs_names)
        )

    def to_dataarray(self) -> xr.DataArray:
        """The values as a labelled ``(obs_id, feature)`` DataArray.

        Returns
        -------
        xarray.DataArray
            A copy named ``x``, with the source in ``attrs`` (Dask-backed, still lazy,
            when the data are).
        """
        return xr.DataArray(
            self.values if self.lazy else np.array(self.values),
            dims=("obs_id", "feature"),
            coords={"feature": list(self.feature_names)}
            if self.lazy
            else {"obs_id": list(self.obs_names), "feature": list(self.feature_names)},
            name="x",
            attrs={"source": self.source},
        )


# Where the NaN message comes from a function without ``missing`` (the Bayesian model, ...)
_KEEP_MISSING = (
    "; for the functions that take no missing=, read the data with "
    "bgmm.as_data(X, missing='allow')"
)


def _shown(rows, n_rows: int) -> str:
    return ", ".join(str(r) for r in rows[:10]) + (", ..." if n_rows > 10 else "")


def _nonfinite_text(has_nan, has_inf, n_rows: int, rows, columns, what: str) -> str:
    kinds = [kind for kind, present in (("NaN", has_nan), ("inf", has_inf)) if present]
    fix = (
        "replace the infinite values (they are not missing values: a number was too large "
        "or a division by zero happened upstream), or leave those rows out"
        if has_inf
        else f"fit with {option('missing', repr('em'), 'em')} (EM treats them as missing at "
        f"random{_KEEP_MISSING if not on_command_line() else ''}), or leave those rows out "
        f"(for a DataFrame: df.dropna())"
    )
    return (
        f"{what} contains {' and '.join(kinds)} in {n_rows} row(s) (rows "
        f"{_shown(rows, n_rows)}) of column(s) {columns}; {fix}."
    )


def _nonfinite_message(values: np.ndarray, feature_names: tuple[str, ...], what: str) -> str:
    bad = ~np.isfinite(values)
    rows = np.flatnonzero(bad.any(axis=1))
    cols = [feature_names[j] for j in np.flatnonzero(bad.any(axis=0))]
    has_nan, has_inf = np.isnan(values).any(), np.isinf(values).any()
    return _nonfinite_text(has_nan, has_inf, rows.size, rows.tolist(), cols, what)


def _check_missing(values: np.ndarray, feature_names: tuple[str, ...], what: str) -> bool:
    """With missing values allowed: refuse inf and rows with nothing observed.

    Returns whether any value is missing (NaN).
    """
    infinite = np.isinf(values)
    if infinite.any():
        raise InputValueError(
            _nonfinite_message(np.where(infinite, values, 0.0), feature_names, what)
        )
    missing = np.isnan(values)
    if not missing.any():
        return False
    unseen = np.flatnonzero(missing.all(axis=0))
    if unseen.size:
        raise InputValueError(
            f"{what} has no observed value in column(s) "
            f"{[feature_names[j] for j in unseen]}: nothing can be estimated for them. "
            f"Leave those columns out."
        )
    empty = np.flatnonzero(missing.all(axis=1))
    if empty.size:
        raise InputValueError(
            f"{what} has {empty.size} row(s) with every value missing (rows "
            f"{_shown(empty.tolist(), empty.size)}): such a row says nothing about any "
            f"feature. Leave those rows out."
        )
    return True


def _standardization(center, scale, names: tuple[str, ...]) -> Standardization:
    """The feature means and standard deviations, refusing constant features."""
    constant = [names[j] for j in np.flatnonzero(scale == 0)]
    if constant:
        raise InputValueError(
            f"cannot standardise constant feature(s) {constant} (standard deviation 0); "
            f"drop them or use standardize=False."
        )
    return Standardization(readonly(center), readonly(scale))


def _given_names(feature_names, n_features: int, names: tuple[str, ...]) -> tuple[str, ...]:
    """The user's ``feature_names`` (one per column) in place of the source's ``names``."""
    if feature_names is None:
        return names
    feature_names = [str(f) for f in feature_names]
    if len(feature_names) != n_features:
        raise InputValueError(
            f"feature_names has {len(feature_names)} names but X has {n_features} "
            f"features; pass one name per column."
        )
    return tuple(feature_names)


def _check_not_empty(shape: tuple[int, ...], source: str) -> None:
    for axis, what in ((0, "sample"), (1, "feature")):
        if shape[axis] == 0:
            raise InputValueError(
                f"X from {source} is empty: 0 {what}(s) (shape=({shape[0]}, {shape[1]})) "
                f"while a minimum of 1 is required; check that the data were read correctly."
            )


def _from_frame(df: pd.DataFrame, columns, source: str) -> tuple[np.ndarray, tuple, tuple]:
    if columns is not None:
        columns = [columns] if isinstance(columns, str) else list(columns)
        check_columns(columns, list(df.columns), source)
        df = df[columns]
    _check_not_empty(df.shape, source)
    non_numeric = [
        str(c)
        for c in df.columns
        if not (pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]))
        or pd.api.types.is_complex_dtype(df[c])
    ]
    if non_numeric:
        examples = {
            c: df[c].dropna().iloc[0] if df[c].notna().any() else None for c in non_numeric
        }
        raise InputTypeError(
            f"non-numeric column(s) {non_numeric} in {source} (first values: {examples}); "
            f"choose numeric columns by name with {option('columns', '[...]', 'a,b')} or "
            f"convert them to numbers."
        )
    values = df.to_numpy(dtype=np.float64)
    index = df.index
    default = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
    rows = RowLabels(len(index)) if default else tuple(str(i) for i in index)
    return values, tuple(str(c) for c in df.columns), rows


def _read_path(path: Path, columns, missing: str) -> tuple[np.ndarray, tuple, tuple]:
    """A CSV file through :func:`read_csv` (its defaults), warning about what it left out."""
    table = read_csv(path, columns=columns, keep_missing=missing == "allow")
    _warn_left_out(table)
    return _from_table(table)


def _warn_left_out(table: CSVTable) -> None:
    if table.skipped or table.dropped_lines:
        warnings.warn(
            f"reading '{table.path}': " + "; ".join(table.notes),
            DataWarning,
            stacklevel=4,
        )


def _from_table(table: CSVTable) -> tuple[np.ndarray, tuple, tuple]:
    frame = table.frame
    values = frame.to_numpy(dtype=np.float64)
    return values, tuple(str(c) for c in frame.columns), RowLabels(len(frame))


def _dataarray_rows(da: xr.DataArray) -> xr.DataArray:
    """A 2-D DataArray as ``(samples, features)``: its ``"feature"`` dim, or else the second.

    Parameters
    ----------
    da : xarray.DataArray
        The observations, in either order when the feature dim is named ``"feature"``.

    Returns
    -------
    xarray.DataArray
        Transposed to ``(obs_dim, feature_dim)``.

    Raises
    ------
    ValueError
        The DataArray is not 2-D.
    """
    if da.ndim != 2:
        raise InputValueError(
            f"a DataArray must be 2-D (samples x features), got dims {da.dims}; "
            f"select or stack dimensions first."
        )
    feature_dim = "feature" if "feature" in da.dims else da.dims[1]
    return da.transpose(next(d for d in da.dims if d != feature_dim), feature_dim)


def _from_dataarray(da: xr.DataArray) -> tuple[np.ndarray, tuple, tuple]:
    da = _dataarray_rows(da)
    obs_dim, feature_dim = da.dims
    if not np.issubdtype(da.dtype, np.number) or np.issubdtype(da.dtype, np.complexfloating):
        raise InputTypeError(f"the DataArray holds {da.dtype} values; it must hold real numbers.")

    def labels(dim):
        if dim in da.coords:
            return tuple(str(v) for v in da[dim].values)
        return RowLabels(da.sizes[dim])

    return da.to_numpy(), labels(feature_dim), labels(obs_dim)


def _from_array(X: Any) -> tuple[np.ndarray, tuple, tuple]:
    if scipy.sparse.issparse(X):
        raise InputTypeError(
            f"X is a sparse {type(X).__name__}: Sparse data was passed, but dense data is "
            f"required; convert it with X.toarray()."
        )
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as exc:  # ragged lists
        raise InputValueError(
            f"X could not be read as an array ({exc}); pass a 2-D array."
        ) from None
    if arr.dtype.kind == "c":
        raise InputValueError(
            f"X holds complex numbers (dtype {arr.dtype}): Complex data not supported; "
            f"pass real values (e.g. X.real or np.abs(X))."
        )
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise InputTypeError(
                f"X must hold real numbers, but an object array could not be converted "
                f"({exc}); convert the data to floats first."
            ) from None
    if arr.dtype.kind in "USVb":
        raise InputTypeError(
            f"X must hold real numbers, got dtype {arr.dtype}"
            + (f" (e.g. {arr.flat[0]!r})" if arr.size else "")
            + "; convert the data to floats first."
        )
    if arr.ndim == 1:
        raise InputValueError(
            f"X must be 2-D (n_samples, n_features), got a 1-D array of shape {arr.shape}. "
            f"Reshape your data with X.reshape(-1, 1) if it has a single feature."
        )
    if arr.ndim != 2:
        raise InputValueError(
            f"X must be 2-D (n_samples, n_features), got {arr.ndim}-D shape {arr.shape}."
        )
    names = tuple(f"x{j}" for j in range(arr.shape[1]))
    return arr, names, RowLabels(arr.shape[0])


def as_data(
    X: Any,
    *,
    columns: list[str] | str | None = None,
    standardize: bool = False,
    feature_names: list[str] | None = None,
    source: str | None = None,
    lazy: bool | None = None,
    missing: str = "raise",
) -> GMMData:
    """Validate data from any supported source into a :class:`GMMData`.

    Parameters
    ----------
    X : array-like, pandas.DataFrame, xarray.DataArray, str, os.PathLike or GMMData
        The observations, ``(n_samples, n_features)``. A path is read as CSV with a header.
        A DataArray may have its dimensions in any order when the feature dimension is
        named ``"feature"``; otherwise the first dimension holds samples.
    columns : str or list of str, optional
        Columns to use (DataFrame or CSV); all columns by default, which must be numeric.
    standardize : bool, default False
        Centre each feature at its mean and divide by its standard deviation, recording
        the transform in ``standardization``.
    feature_names : list of str, optional
        Names for the features of a plain array (``x0``, ``x1``, ... by default).
    source : str, optional
        Provenance to record; a path or a type description by default.
    lazy : bool, optional
        Keep the values as a Dask array, read block by block (``GMMData.lazy``). By
        default, lazy sources are read lazily: Dask arrays and DataFrames, Dask-backed
        DataArrays, zarr stores (``*.zarr``), Parquet files or folders and glob patterns
        of CSV or Parquet files (``"data/part-*.csv"``); everything else is read into
        memory. ``lazy=True`` also reads a single CSV file (and wraps an in-memory array)
        lazily; ``lazy=False`` loads a lazy source into memory. Needs Dask
        (``pip install 'bgmm[scale]'``). Lazy sources are checked in one pass over their
        blocks (finite values, magnitudes); the rows are never gathered.
    missing : {"raise", "allow"}, default "raise"
        NaN values: refused (the message names ``missing="em"`` of the EM solver), or
        kept as missing values (``GMMData.has_missing``) for a solver that models them.
        Infinite values, rows and columns with every value missing are refused either
        way (for lazy data, in the same one pass over the blocks).

    Returns
    -------
    GMMData
        Finite float64 values (NaN where missing and allowed), read-only, with feature and
        observation names.

    Raises
    ------
    ValueError
        Missing or unreadable files, wrong dimensionality, empty input, inf, NaN (unless
        allowed), rows with nothing observed.
    TypeError
        Non-numeric values (named by column where there are columns).
    """
    if missing not in MISSING:
        raise InputValueError(f"missing must be one of {MISSING}, got {missing!r}.")
    if isinstance(X, GMMData):
        if X.has_missing and missing == "raise":
            raise InputValueError(
                _nonfinite_message(X.values, X.feature_names, f"data from {X.source}")
            )
        if standardize and X.standardization is None:
            return as_data(
                X.to_dataframe(),
                standardize=True,
                source=X.source,
                feature_names=None,
                missing=missing,
            )
        return X
    from bgmm._dask import is_lazy_source

    if lazy is None:
        lazy = is_lazy_source(X)
    if lazy:
        return _lazy_data(X, columns, standardize, feature_names, source, missing)
    if is_lazy_source(X):  # lazy=False: the whole source, in memory
        data = _lazy_data(X, columns, False, feature_names, source, missing)
        X, columns, feature_names, source = (
            data.values.compute(),
            None,
            data.feature_names,
            data.source,
        )
    if isinstance(X, CSVTable):
        src = source or X.path
        values, names, obs = _from_table(X)
    elif isinstance(X, str | os.PathLike):
        src = source or str(X)
        values, names, obs = _read_path(Path(X), columns, missing)
    elif isinstance(X, pd.DataFrame):
        src = source or "pandas DataFrame"
        values, names, obs = _from_frame(X, columns, "the DataFrame")
    elif isinstance(X, xr.DataArray):
        src = source or (f"xarray DataArray {X.name!r}" if X.name else "xarray DataArray")
        values, names, obs = _from_dataarray(X)
    else:
        src = source or "array"
        values, names, obs = _from_array(X)
    names = _given_names(feature_names, values.shape[1], names)
    _check_not_empty(values.shape, src)
    has_missing = False
    if not all_finite(values):
        if missing == "raise":
            raise InputValueError(_nonfinite_message(values, names, f"data from {src}"))
        has_missing = _check_missing(values, names, f"data from {src}")
    # The one copy of the data (never a view of the caller's array), 64-byte aligned so
    # that the EM engine's JAX device reads it in place.
    values = aligned_copy(values)
    standardization = None
    if standardize:
        # Divide by each column's largest magnitude first, so that data whose squares
        # overflow (|x| near 1e300) still give a finite mean and standard deviation.
        # (NaN-aware where values are missing: the moments of the observed values.)
        nan = has_missing
        magnitude = np.maximum(
            (np.nanmax if nan else np.max)(values, axis=0),
            -(np.nanmin if nan else np.min)(values, axis=0),
        )
        magnitude[magnitude == 0] = 1.0
        unit = values / magnitude
        center = (np.nanmean if nan else np.mean)(unit, axis=0) * magnitude
        scale = (np.nanstd if nan else np.std)(unit, axis=0) * magnitude
        del unit
        standardization = _standardization(center, scale, names)
        values -= standardization.center  # in place: the same as transform(values)
        values /= standardization.scale
    values.setflags(write=False)
    return GMMData(values, names, obs, src, standardization, None, has_missing)


def require_in_memory(data: GMMData, what: str) -> None:
    """Refuse lazy data where a computation needs every row in memory.

    Parameters
    ----------
    data : GMMData
        The data.
    what : str
        What needs them, for the message ("the Bayesian model", ...).

    Raises
    ------
    ValueError
        The data are lazy; the message suggests a subsample in memory.
    """
    if data.lazy:
        raise InputValueError(
            f"{what} needs the rows in memory, but the data from {data.source} are lazy "
            f"({data.n_samples} rows, read block by block). Use a random subset: "
            f"data.sample_rows(n, random_state=...) (a few thousand rows), or load them with "
            f"bgmm.as_data(..., lazy=False) if they fit in memory."
        )


def check_n_components(data: GMMData, n_components: Any) -> int:
    """Check that ``n_components`` is an integer in ``[1, n_samples]`` and return it.

    Parameters
    ----------
    data : GMMData
        The data (its number of samples).
    n_components : object
        The value to check.

    Returns
    -------
    int
        ``n_components`` as a Python int.

    Raises
    ------
    TypeError
        ``n_components`` is not an integer.
    ValueError
        It is below 1 or above the number of samples.
    """
    n_components = check_number("n_components", n_components, low=1, integer=True)
    if n_components > data.n_samples:
        raise InputValueError(
            f"n_components={n_components} is more than the {data.n_samples} samples in the "
            f"data; use at most {data.n_samples} components or provide more samples."
        )
    return int(n_components)


def check_features(data: GMMData, n_features: int, owner: str = "the mixture") -> None:
    """Check that ``data`` has the ``n_features`` a fitted model expects.

    Parameters
    ----------
    data : GMMData
        The data.
    n_features : int
        The number of features the model was fitted with.
    owner : str, default "the mixture"
        What expects them, for the message (an estimator's class name, "the estimate", ...).

    Raises
    ------
    ValueError
        The numbers differ; the message names both.
    """
    if data.n_features != n_features:
        raise InputValueError(
            f"X has {data.n_features} features, but {owner} is expecting {n_features} "
            f"features as input; pass data with the features used in the fit."
        )


def _lazy_data(
    X, columns, standardize: bool, feature_names, source, missing: str = "raise"
) -> GMMData:
    """``as_data`` for Dask collections, zarr stores, Parquet files and CSV globs."""
    from bgmm._dask import lazy_standardization, read_lazy

    read = read_lazy(X, columns, source)
    values, names, summary, src = read
    names = _given_names(feature_names, values.shape[1], names)
    _check_not_empty(values.shape, src)
    has_missing = False
    if summary.n_bad_rows and missing == "allow" and not summary.has_inf:
        _check_lazy_missing(summary, names, f"data from {src}")
        has_missing = True
    elif summary.n_bad_rows and missing == "allow":  # the infinite values alone
        columns = [names[j] for j in np.flatnonzero(summary.bad_columns)]
        raise InputValueError(
            _nonfinite_text(
                False, True, summary.n_inf_rows, summary.inf_rows, columns, f"data from {src}"
            )
        )
    elif summary.n_bad_rows:
        columns = [names[j] for j in np.flatnonzero(summary.bad_columns)]
        raise InputValueError(
            _nonfinite_text(
                summary.has_nan,
                summary.has_inf,
                summary.n_bad_rows,
                summary.bad_rows,
                columns,
                f"data from {src}",
            )
        )
    maxima, minima = summary.maxima, summary.minima
    standardization = None
    if standardize:
        center, scale = lazy_standardization(values, np.maximum(maxima, -minima))
        standardization = _standardization(center, scale, names)
        values = (values - center) / scale
        maxima, minima = (maxima - center) / scale, (minima - center) / scale
    magnitudes = readonly(np.maximum(maxima, -minima))
    obs = RowLabels(values.shape[0])
    return GMMData(values, names, obs, src, standardization, magnitudes, has_missing)


def _check_lazy_missing(summary, names: tuple[str, ...], what: str) -> None:
    """``_check_missing`` from the one pass's summary: no column or row without a value."""
    unseen = np.flatnonzero(~summary.observed_columns)
    if unseen.size:
        raise InputValueError(
            f"{what} has no observed value in column(s) {[names[j] for j in unseen]}: "
            f"nothing can be estimated for them. Leave those columns out."
        )
    if summary.n_empty_rows:
        raise InputValueError(
            f"{what} has {summary.n_empty_rows} row(s) with every value missing (rows "
            f"{_shown(list(summary.empty_rows), summary.n_empty_rows)}): such a row says "
            f"nothing about any feature. Leave those rows out."
        )
