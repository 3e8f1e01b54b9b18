"""The data layer's lazy side: Dask arrays, zarr stores, Parquet files and CSV globs.

:func:`bgmm.as_data` hands lazy sources here. The values stay a ``dask.array.Array`` of
float64 with one chunk across the features (a chunk is a block of whole rows); the checks
that an in-memory array gets (finite values, their magnitude, the number of rows) run in
one pass over the blocks, which never gathers the rows on the client.

Dask is an optional dependency (``pip install 'bgmm[scale]'``); nothing here imports it
until a lazy source is met.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bgmm._table import check_columns
from bgmm.exceptions import InputTypeError, InputValueError

__all__ = [
    "LazySummary",
    "import_dask",
    "is_dask_array",
    "is_lazy_path",
    "is_lazy_source",
    "read_lazy",
    "lazy_standardization",
    "sample_index",
    "sample_rows",
    "summarise",
]

SCALE_EXTRA = "pip install 'bgmm[scale]'"

#: Rows per block when an in-memory array or DataFrame is read lazily (``lazy=True``).
DEFAULT_BLOCK_ROWS = 2**16

#: Rows shown in the message about non-finite values.
SHOWN_ROWS = 10


def import_dask():
    """``dask.array``, or an ImportError that says how to install it."""
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover - dask is installed with bgmm[scale] and [dev]
        raise ImportError(
            f"lazy data (Dask arrays, zarr stores, Parquet files, CSV globs) need Dask; "
            f"install it with {SCALE_EXTRA}."
        ) from None
    return da


def is_dask_array(X: Any) -> bool:
    """Whether ``X`` is a Dask array, without importing Dask when it is not."""
    if not type(X).__module__.startswith("dask"):
        return False
    da = import_dask()
    return isinstance(X, da.Array)


def _is_dask_frame(X: Any) -> bool:
    if not type(X).__module__.startswith("dask"):
        return False
    import dask.dataframe as dd

    return isinstance(X, dd.DataFrame)


def is_lazy_source(X: Any) -> bool:
    """Whether :func:`bgmm.as_data` reads ``X`` lazily (Dask, zarr, Parquet, CSV glob).

    Parameters
    ----------
    X : object
        What the user passed.

    Returns
    -------
    bool
        True for a Dask array or DataFrame, a Dask-backed DataArray, or a lazy path.
    """
    if is_dask_array(X) or _is_dask_frame(X):
        return True
    if type(X).__name__ == "DataArray" and getattr(X, "chunks", None) is not None:
        return True
    return isinstance(X, str | os.PathLike) and is_lazy_path(X)


def _has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr" or (
        path.is_dir() and any((path / f).exists() for f in ("zarr.json", ".zarray", ".zgroup"))
    )


def _is_parquet(path: Path) -> bool:
    if path.suffix in (".parquet", ".pq"):
        return True
    return path.is_dir() and any(path.glob("*.parquet"))


def is_lazy_path(path: str | os.PathLike) -> bool:
    """A zarr store, a Parquet file or folder, or a glob pattern (``data/*.csv``).

    Parameters
    ----------
    path : str or os.PathLike
        The path.

    Returns
    -------
    bool
        Whether the path is read lazily; a single CSV file is read into memory.
    """
    text = os.fspath(path)
    if _has_glob(text):
        return True
    p = Path(text)
    return _is_zarr(p) or _is_parquet(p)


class LazySummary(NamedTuple):
    """What one pass over the blocks learns (``summarise``)."""

    lengths: tuple[int, ...]  # rows per block
    maxima: np.ndarray  # largest value per feature
    minima: np.ndarray  # smallest value per feature
    n_bad_rows: int  # rows with NaN or inf
    bad_rows: tuple[int, ...]  # the first SHOWN_ROWS of them (global row numbers)
    bad_columns: np.ndarray  # bool per feature
    has_nan: bool
    has_inf: bool
    n_empty_rows: int = 0  # rows with every value NaN
    empty_rows: tuple[int, ...] = ()  # the first SHOWN_ROWS of them
    observed_columns: np.ndarray | None = None  # bool per feature: some value observed
    inf_rows: tuple[int, ...] = ()  # the first SHOWN_ROWS rows with inf
    n_inf_rows: int = 0


class _BlockSummary(NamedTuple):
    n_rows: int
    maxima: np.ndarray
    minima: np.ndarray
    n_bad_rows: int
    bad_rows: np.ndarray  # local row numbers, at most SHOWN_ROWS
    bad_columns: np.ndarray
    has_nan: bool
    has_inf: bool
    n_empty_rows: int
    empty_rows: np.ndarray
    observed_columns: np.ndarray
    n_inf_rows: int
    inf_rows: np.ndarray


def _summarise_block(block) -> _BlockSummary:
    x = np.asarray(block, dtype=np.float64)
    finite = np.isfinite(x)
    bad = ~finite.all(axis=1)
    n_features = x.shape[1]
    empty = np.full(n_features, np.nan)
    nan = np.isnan(x)
    empty_row = nan.all(axis=1) if n_features else np.zeros(len(x), bool)
    infinite = (~finite & ~nan).any(axis=1)
    return _BlockSummary(
        n_rows=len(x),
        maxima=np.where(finite, x, -np.inf).max(axis=0) if len(x) else empty,
        minima=np.where(finite, x, np.inf).min(axis=0) if len(x) else empty,
        n_bad_rows=int(bad.sum()),
        bad_rows=np.flatnonzero(bad)[:SHOWN_ROWS],
        bad_columns=~finite.all(axis=0),
        has_nan=bool(nan.any()),
        has_inf=bool((~finite & ~nan).any()),
        n_empty_rows=int(empty_row.sum()),
        empty_rows=np.flatnonzero(empty_row)[:SHOWN_ROWS],
        observed_columns=(~nan).any(axis=0),
        n_inf_rows=int(infinite.sum()),
        inf_rows=np.flatnonzero(infinite)[:SHOWN_ROWS],
    )


def summarise(blocks: list) -> LazySummary:
    """One pass over the blocks (Dask delayed objects of 2-D arrays or DataFrames).

    Parameters
    ----------
    blocks : list of dask.delayed.Delayed
        The blocks of rows, in order.

    Returns
    -------
    LazySummary
        Row counts per block, per-feature magnitudes and the non-finite entries.
    """
    import dask

    parts = dask.compute(*[dask.delayed(_summarise_block)(b) for b in blocks])
    offsets = np.concatenate([[0], np.cumsum([p.n_rows for p in parts])])
    bad_rows = [int(o + r) for o, p in zip(offsets, parts, strict=False) for r in p.bad_rows]
    empty_rows = [int(o + r) for o, p in zip(offsets, parts, strict=False) for r in p.empty_rows]
    inf_rows = [int(o + r) for o, p in zip(offsets, parts, strict=False) for r in p.inf_rows]
    return LazySummary(
        lengths=tuple(p.n_rows for p in parts),
        maxima=np.fmax.reduce([p.maxima for p in parts], axis=0),
        minima=np.fmin.reduce([p.minima for p in parts], axis=0),
        n_bad_rows=sum(p.n_bad_rows for p in parts),
        bad_rows=tuple(bad_rows[:SHOWN_ROWS]),
        bad_columns=np.any([p.bad_columns for p in parts], axis=0),
        has_nan=any(p.has_nan for p in parts),
        has_inf=any(p.has_inf for p in parts),
        n_empty_rows=sum(p.n_empty_rows for p in parts),
        empty_rows=tuple(empty_rows[:SHOWN_ROWS]),
        observed_columns=np.any([p.observed_columns for p in parts], axis=0),
        inf_rows=tuple(inf_rows[:SHOWN_ROWS]),
        n_inf_rows=sum(p.n_inf_rows for p in parts),
    )


# --------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------


class LazyValues(NamedTuple):
    """A lazy source read into rows (``read_lazy``)."""

    values: Any  # dask.array.Array of shape (n_samples, n_features), float64
    feature_names: tuple[str, ...]
    summary: LazySummary
    source: str  # provenance, for messages and GMMData.source


def _check_array_dtype(dtype, source: str) -> None:
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise InputValueError(
            f"X from {source} holds complex numbers (dtype {dtype}): Complex data not "
            f"supported; pass real values."
        )
    if dtype.kind not in "iuf":
        raise InputTypeError(
            f"X from {source} must hold real numbers, got dtype {dtype}; convert the data to "
            f"floats first."
        )


def _frame_names(columns, wanted, source: str) -> list[str]:
    names = [str(c) for c in columns]
    if wanted is None:
        return names
    wanted = [wanted] if isinstance(wanted, str) else [str(c) for c in wanted]
    check_columns(wanted, names, source)
    return wanted


def _from_dask_frame(ddf, columns, source: str) -> LazyValues:
    import dask

    names = _frame_names(ddf.columns, columns, source)
    ddf = ddf[names]
    meta = ddf._meta
    non_numeric = [
        c
        for c in names
        if meta[c].dtype.kind not in "iuf" or str(meta[c].dtype) in ("bool", "boolean")
    ]
    if non_numeric:
        raise InputTypeError(
            f"non-numeric column(s) {non_numeric} in {source} (dtypes "
            f"{[str(meta[c].dtype) for c in non_numeric]}); choose numeric columns by name "
            f"with columns=[...] or convert them to numbers."
        )

    def rows(frame):
        return frame.to_numpy(dtype=np.float64)

    blocks = [dask.delayed(rows)(p) for p in ddf.to_delayed()]
    summary = summarise(blocks)
    values = ddf.to_dask_array(lengths=list(summary.lengths)).astype(np.float64)
    return LazyValues(values.rechunk({1: -1}), tuple(names), summary, source)


def _from_dask_array(X, names, columns, source: str) -> LazyValues:
    da = import_dask()
    if X.ndim != 2:
        hint = (
            " Reshape it with X.reshape(-1, 1) if it has a single feature." if X.ndim == 1 else ""
        )
        raise InputValueError(
            f"X from {source} must be 2-D (n_samples, n_features), got {X.ndim}-D shape "
            f"{X.shape}.{hint}"
        )
    _check_array_dtype(X.dtype, source)
    if names is None:
        names = tuple(f"x{j}" for j in range(X.shape[1]))
    if columns is not None:
        chosen = _frame_names(names, columns, source)
        X = X[:, [names.index(c) for c in chosen]]
        names = tuple(chosen)
    X = X.astype(np.float64).rechunk({1: -1})
    summary = summarise(list(X.to_delayed().ravel()))
    if any(np.isnan(c) for c in X.chunks[0]):  # rows per block were unknown (from a frame)
        X = da.concatenate(
            [
                da.from_delayed(b, shape=(n, X.shape[1]), dtype=np.float64)
                for b, n in zip(X.to_delayed().ravel(), summary.lengths, strict=True)
            ]
        )
    return LazyValues(X, tuple(names), summary, source)


def _zarr_array(path: Path):
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        return node
    arrays = dict(node.arrays())
    two_d = {name: a for name, a in arrays.items() if a.ndim == 2}
    if "x" in two_d:
        return two_d["x"]
    if len(two_d) == 1:
        return next(iter(two_d.values()))
    raise InputValueError(
        f"zarr group '{path}' holds {len(two_d)} 2-D arrays ({sorted(two_d)}); name the one "
        f"to fit 'x', or pass the array's own path ('{path}/NAME')."
    )


def _from_zarr(path: Path, columns) -> LazyValues:
    da = import_dask()
    source = str(path)
    try:
        array = _zarr_array(path)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        if isinstance(exc, ValueError) and "2-D arrays" in str(exc):
            raise
        raise InputValueError(f"'{path}' is not a readable zarr store ({exc}).") from None
    names = array.attrs.get("feature_names")
    names = None if names is None else tuple(str(n) for n in names)
    if names is not None and len(names) != array.shape[-1]:
        names = None
    return _from_dask_array(da.from_zarr(array), names, columns, source)


def _csv_or_parquet_files(text: str) -> tuple[list[str], str]:
    matches = sorted(glob.glob(text))
    if not matches:
        raise InputValueError(f"no file matches '{text}'; check the pattern and the folder.")
    kinds = {("parquet" if Path(m).suffix in (".parquet", ".pq") else "csv") for m in matches}
    if len(kinds) > 1:
        raise InputValueError(
            f"'{text}' matches both Parquet and CSV files; use a pattern that matches one kind."
        )
    return matches, kinds.pop()


def read_lazy(X: Any, columns=None, source: str | None = None) -> LazyValues:
    """Read a lazy source into a Dask array of rows, checking it in one pass.

    Parameters
    ----------
    X : dask.array.Array, dask.dataframe.DataFrame, xarray.DataArray, array-like or path
        A path is a zarr store (``*.zarr``, or a folder with zarr metadata), a Parquet
        file or folder, a glob of CSV or Parquet files (``"data/part-*.csv"``) or a CSV
        file. In-memory arrays and DataFrames are wrapped in blocks of
        ``DEFAULT_BLOCK_ROWS`` rows.
    columns : str or list of str, optional
        Features to use, by name.
    source : str, optional
        Provenance for messages.

    Returns
    -------
    LazyValues
        The float64 Dask array (one chunk across the features), the feature names and the
        summary of the pass.
    """
    import pandas as pd

    try:
        return _read_lazy(X, columns, source)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputValueError(
            f"data from {source or X} could not be parsed as CSV ({exc}); check the "
            f"delimiter, the header row and that every row has the same number of fields."
        ) from None


def _read_lazy(X: Any, columns=None, source: str | None = None) -> LazyValues:
    """``read_lazy`` without its handling of parse errors."""
    da = import_dask()
    import dask.dataframe as dd

    if is_dask_array(X):
        return _from_dask_array(X, None, columns, source or "a Dask array")
    if _is_dask_frame(X):
        return _from_dask_frame(X, columns, source or "a Dask DataFrame")
    if type(X).__name__ == "DataArray":
        return _from_dataarray(
            X if X.chunks is not None else X.chunk(), columns, source or "an xarray DataArray"
        )
    if type(X).__name__ == "DataFrame" and type(X).__module__.startswith("pandas"):
        frame = dd.from_pandas(X, chunksize=DEFAULT_BLOCK_ROWS)
        return _from_dask_frame(frame, columns, source or "a pandas DataFrame")
    if not isinstance(X, str | os.PathLike):  # an in-memory array, wrapped
        values = np.asarray(X)
        return _from_dask_array(
            da.from_array(values, chunks=(DEFAULT_BLOCK_ROWS, -1) if values.ndim == 2 else -1),
            None,
            columns,
            source or "array",
        )
    text = os.fspath(X)
    if _has_glob(text):
        files, kind = _csv_or_parquet_files(text)
        frame = dd.read_parquet(files) if kind == "parquet" else dd.read_csv(files)
        return _from_dask_frame(frame, columns, source or text)
    path = Path(text)
    if not path.exists():
        raise InputValueError(f"data file '{path}' does not exist; check the path.")
    if _is_zarr(path):
        return _from_zarr(path, columns)
    if _is_parquet(path):
        return _from_dask_frame(dd.read_parquet(str(path)), columns, source or str(path))
    if path.is_dir():
        raise InputValueError(
            f"data file '{path}' is a directory without zarr or Parquet files; pass a CSV "
            f"file, a zarr store, a Parquet folder or a glob such as '{path}/*.csv'."
        )
    return _from_dask_frame(dd.read_csv(str(path)), columns, source or str(path))


def _from_dataarray(X, columns, source: str) -> LazyValues:
    from bgmm.data import _dataarray_rows

    X = _dataarray_rows(X)
    feature_dim = X.dims[1]
    names = (
        tuple(str(v) for v in X[feature_dim].values)
        if feature_dim in X.coords
        else tuple(f"x{j}" for j in range(X.shape[1]))
    )
    return _from_dask_array(X.data, names, columns, source)


# --------------------------------------------------------------------------------------
# Standardising and subsampling
# --------------------------------------------------------------------------------------


class _Moments(NamedTuple):
    n: np.ndarray  # observed values per feature (NaN are missing values, left out)
    mean: np.ndarray
    m2: np.ndarray  # sum of squared deviations from the mean


def _block_moments(block, magnitudes) -> _Moments:
    x = np.asarray(block) / magnitudes
    observed = ~np.isnan(x)
    n = observed.sum(axis=0).astype(np.float64)
    total = np.where(observed, x, 0.0).sum(axis=0)
    mean = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    m2 = np.where(observed, (x - mean) ** 2, 0.0).sum(axis=0)
    return _Moments(n, mean, m2)


def _merge_moments(a: _Moments, b: _Moments) -> _Moments:
    """Chan, Golub and LeVeque's pairwise update, per feature: exact, stable for any sizes."""
    n = a.n + b.n
    safe = np.where(n > 0, n, 1.0)
    delta = b.mean - a.mean
    return _Moments(n, a.mean + delta * b.n / safe, a.m2 + b.m2 + delta**2 * a.n * b.n / safe)


def lazy_standardization(values, magnitudes: np.ndarray):
    """Feature means and standard deviations of a Dask array, in one more pass.

    Each feature is divided by its largest magnitude first (as in memory), so data whose
    squares overflow still give finite moments.

    Parameters
    ----------
    values : dask.array.Array of shape (n_samples, n_features)
        Finite values.
    magnitudes : ndarray of shape (n_features,)
        Largest magnitude per feature (``LazySummary.magnitudes``).

    Returns
    -------
    center, scale : ndarray of shape (n_features,)
        Means and (population) standard deviations.
    """
    import dask

    unit = np.where(magnitudes == 0, 1.0, magnitudes)
    parts = dask.compute(
        *[dask.delayed(_block_moments)(b, unit) for b in values.to_delayed().ravel()]
    )
    total = parts[0]
    for part in parts[1:]:
        total = _merge_moments(total, part)
    return total.mean * unit, np.sqrt(total.m2 / total.n) * unit


def sample_index(n_samples: int, n: int, rng: np.random.Generator) -> np.ndarray | None:
    """Row numbers of a seeded random subset of ``n`` rows, increasing; None for all rows.

    Parameters
    ----------
    n_samples : int
        Rows to draw from.
    n : int
        How many; when it reaches ``n_samples`` every row is kept and ``rng`` is not drawn
        from.
    rng : numpy Generator
        The source of the draw.

    Returns
    -------
    ndarray of shape (n,) or None
        Drawn without replacement, in order; None when every row is kept.
    """
    if n >= n_samples:
        return None
    return np.sort(rng.choice(n_samples, size=n, replace=False))


def sample_rows(values, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random subset of ``n`` rows, in their order, read into memory.

    Parameters
    ----------
    values : ndarray or dask.array.Array of shape (n_samples, n_features)
        The rows.
    n : int
        How many (at most ``n_samples``; all rows, in order, when it is reached).
    rng : numpy Generator
        The source of the draw.

    Returns
    -------
    rows : ndarray of shape (n,)
        The row numbers, increasing.
    subset : ndarray of shape (n, n_features)
        Those rows.
    """
    index = sample_index(values.shape[0], n, rng)
    rows = np.arange(values.shape[0]) if index is None else index
    subset = values if index is None else values[index]
    if not isinstance(subset, np.ndarray):
        subset = subset.compute()
    return rows, np.asarray(subset, dtype=np.float64)
