"""Saved fits: data, settings, EM result with its history, posterior, comparison, versions.

One netCDF-4 file (HDF5, written by h5netcdf), an open format that any netCDF or HDF5 tool
reads; no pickle. The posterior's groups sit at the root of the file, as ArviZ expects, so
``xarray.open_datatree(path)`` gives a tree that ArviZ functions take directly.

A fit of lazy data (a Dask array, a zarr store; :attr:`bgmm.GMMData.lazy`) is saved
without its rows and responsibilities: the parameters, the history, the settings and where
the data came from. Loaded back, its ``data`` and ``em.resp`` are None.

Writes are atomic: the file is written under a temporary name in the target directory and
renamed into place only when complete, so an interrupted save never leaves a half-written
file under the final name and never replaces a good earlier file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bgmm._arrays import readonly
from bgmm._files import atomic_write
from bgmm.compare import Comparison, Verdict
from bgmm.contract import package_versions
from bgmm.data import GMMData, Standardization, as_data
from bgmm.em import EMResult
from bgmm.em.solver import HISTORY_FIELDS
from bgmm.exceptions import InputValueError
from bgmm.params import GMMParams

__all__ = ["SavedFit", "load_fit", "save_fit", "save_zarr"]

FORMAT_VERSION = 1
#: Root attributes that describe the file, not the posterior (dropped from it on load).
_FILE_ATTRS = (
    "bgmm_format_version",
    "bgmm_saved_settings",
    "bgmm_saved_versions",
    "bgmm_has_posterior",
    "bgmm_comparison_membership",
    "bgmm_comparison_ci_prob",
    "bgmm_comparison_covariance_type",
    "bgmm_comparison_verdict",
)
_ENGINE = "h5netcdf"


# Results and containers are documented by their attributes, not by __init__.
@dataclass(frozen=True, eq=False)
class SavedFit:  # numpydoc ignore=PR01
    """A fit loaded back from disk.

    Attributes
    ----------
    data : GMMData or None
        None for a fit of lazy data, whose rows are not saved (``data_source`` says where
        they are).
    em : EMResult
        Its ``resp`` is None for a fit of lazy data.
    posterior : xarray.DataTree or None
        The tree of :func:`bgmm.bayes.sample_posterior` (its groups), if one was saved.
    comparison : Comparison or None
    settings : dict
        Whatever the caller stored (for example the command line that made the fit).
    versions : dict
        Package versions at save time.
    data_source : str
        Where the data came from (``GMMData.source``).
    """

    data: GMMData | None
    em: EMResult
    posterior: xr.DataTree | None
    comparison: Comparison | None
    settings: dict
    versions: dict
    data_source: str = ""


def _data_dataset(data: GMMData) -> xr.Dataset:
    if data.lazy:  # the rows stay where they are: their description only
        ds = xr.Dataset(coords={"feature": list(data.feature_names)})
        ds.attrs = {"source": data.source, "lazy": 1, "n_samples": data.n_samples}
    else:
        ds = data.to_dataarray().to_dataset(name="x")
        ds.attrs = {"source": data.source}
    if data.standardization is not None:
        ds["standardization_center"] = ("feature", np.asarray(data.standardization.center))
        ds["standardization_scale"] = ("feature", np.asarray(data.standardization.scale))
    return ds


def _em_dataset(em: EMResult, data: GMMData) -> xr.Dataset:
    ds = em.params.to_dataset(data.feature_names)
    if not data.lazy:
        ds["resp"] = (("obs_id", "component"), np.asarray(em.resp))
        ds = ds.assign_coords(obs_id=list(data.obs_names))
    for field in HISTORY_FIELDS:
        ds[f"history_{field}"] = ("iteration", np.asarray(em.history[field]))
    ds = ds.assign_coords(iteration=np.arange(1, em.n_iter + 1))
    ds["init_log_likelihoods"] = ("restart", np.asarray(em.init_log_likelihoods))
    ds.attrs = {
        "log_likelihood": em.log_likelihood,
        "log_likelihood_init": em.log_likelihood_init,
        "n_iter": em.n_iter,
        "converged": int(em.converged),
        "total_weight": em.total_weight,
        "covariance_type": em.covariance_type,
    }
    return ds


def save_fit(
    path: str | os.PathLike,
    *,
    data: Any,
    em: EMResult,
    posterior: xr.DataTree | None = None,
    comparison: Comparison | None = None,
    settings: dict | None = None,
) -> Path:
    """Write a whole fit to one netCDF-4 file, atomically.

    Parameters
    ----------
    path : str or PathLike
        Target file (``.nc``); its directory must exist.
    data : GMMData or anything :func:`bgmm.as_data` reads
        The data the fit was made on.
    em : EMResult
        The EM fit.
    posterior : xarray.DataTree, optional
        From :func:`bgmm.bayes.sample_posterior`.
    comparison : Comparison, optional
        From :func:`bgmm.compare`.
    settings : dict, optional
        JSON-serialisable settings to keep with the fit.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise InputValueError(
            f"cannot save to '{path}': directory '{path.parent}' does not exist."
        )
    data = data if isinstance(data, GMMData) else as_data(data)
    groups: dict[str, xr.Dataset] = {}
    if posterior is not None:
        for name, node in posterior.children.items():
            groups[name] = node.to_dataset()
    groups["bgmm_data"] = _data_dataset(data)
    groups["bgmm_em"] = _em_dataset(em, data)
    if comparison is not None:
        for name, node in comparison.parameters.children.items():
            groups[f"bgmm_comparison/{name}"] = node.to_dataset()
    file_attrs = {
        "bgmm_format_version": FORMAT_VERSION,
        "bgmm_saved_settings": json.dumps(settings or {}),
        "bgmm_saved_versions": json.dumps(package_versions()),
        "bgmm_has_posterior": int(posterior is not None),
        "bgmm_comparison_membership": json.dumps(
            comparison.membership if comparison is not None else None
        ),
        "bgmm_comparison_ci_prob": comparison.ci_prob if comparison is not None else -1.0,
    }
    if comparison is not None:
        file_attrs["bgmm_comparison_covariance_type"] = comparison.covariance_type
        if comparison.verdict is not None:
            file_attrs["bgmm_comparison_verdict"] = json.dumps(comparison.verdict.to_dict())
    root_attrs = {**(dict(posterior.attrs) if posterior is not None else {}), **file_attrs}
    tree = xr.DataTree.from_dict({"/": xr.Dataset(attrs=root_attrs), **groups})
    return atomic_write(path, lambda tmp: tree.to_netcdf(tmp, engine=_ENGINE))


def load_fit(path: str | os.PathLike) -> SavedFit:
    """Read a fit written by :func:`save_fit`.

    Parameters
    ----------
    path : str or PathLike
        The ``.nc`` file.

    Returns
    -------
    SavedFit
        The data, EM fit, posterior, comparison, settings and versions that were saved.

    Raises
    ------
    ValueError
        The file is missing, unreadable, or not a bgmm fit.
    """
    path = Path(path)
    if not path.is_file():
        raise InputValueError(f"saved fit '{path}' does not exist; check the path.")
    try:
        with xr.open_datatree(path, engine=_ENGINE) as opened:
            tree = opened.load()
    except (OSError, ValueError) as exc:
        raise InputValueError(
            f"'{path}' could not be read as a saved bgmm fit (netCDF-4): {exc}"
        ) from None
    if "bgmm_format_version" not in tree.attrs or "bgmm_em" not in tree.children:
        raise InputValueError(f"'{path}' is a netCDF file but not a saved bgmm fit.")
    d = tree["bgmm_data"].to_dataset()
    standardization = None
    if "standardization_center" in d:
        standardization = Standardization(
            d["standardization_center"].values, d["standardization_scale"].values
        )
    data = None
    if "x" in d:
        data = as_data(d["x"], source=d.attrs["source"], missing="allow")
        data = GMMData(
            data.values,
            data.feature_names,
            data.obs_names,
            data.source,
            standardization,
            has_missing=data.has_missing,
        )
    feature_names = tuple(str(f) for f in d["feature"].values)
    e = tree["bgmm_em"].to_dataset()
    history = np.array(
        list(zip(*(e[f"history_{f}"].values for f in HISTORY_FIELDS), strict=True)),
        dtype=[(f, "f8") for f in HISTORY_FIELDS],
    )
    history.setflags(write=False)
    em = EMResult(
        params=GMMParams(
            readonly(e["weights"].values),
            readonly(e["means"].values),
            readonly(e["covariances"].values),
        ),
        resp=readonly(e["resp"].values) if "resp" in e else None,
        log_likelihood=float(e.attrs["log_likelihood"]),
        log_likelihood_init=float(e.attrs["log_likelihood_init"]),
        n_iter=int(e.attrs["n_iter"]),
        converged=bool(e.attrs["converged"]),
        total_weight=float(
            e.attrs.get("total_weight", d.attrs["n_samples"] if data is None else data.n_samples)
        ),
        history=history,
        init_log_likelihoods=readonly(e["init_log_likelihoods"].values),
        feature_names=feature_names,
        # files written before the covariance families hold full covariances
        covariance_type=str(e.attrs.get("covariance_type", "VVV")),
    )
    posterior = None
    if int(tree.attrs["bgmm_has_posterior"]):
        posterior = xr.DataTree.from_dict(
            {
                name: node.to_dataset()
                for name, node in tree.children.items()
                if not name.startswith("bgmm_")
            }
        )
        posterior.attrs = {k: v for k, v in tree.attrs.items() if k not in _FILE_ATTRS}
    comparison = None
    if "bgmm_comparison" in tree.children:
        verdict = None
        if "bgmm_comparison_verdict" in tree.attrs:
            verdict = Verdict.from_dict(json.loads(tree.attrs["bgmm_comparison_verdict"]))
        comparison = Comparison(
            xr.DataTree.from_dict(
                {
                    name: node.to_dataset()
                    for name, node in tree["bgmm_comparison"].children.items()
                }
            ),
            json.loads(tree.attrs["bgmm_comparison_membership"]),
            float(tree.attrs["bgmm_comparison_ci_prob"]),
            # files written before these were kept: full covariances, no verdict
            str(tree.attrs.get("bgmm_comparison_covariance_type", "VVV")),
            verdict,
        )
    return SavedFit(
        data=data,
        em=em,
        posterior=posterior,
        comparison=comparison,
        settings=json.loads(tree.attrs["bgmm_saved_settings"]),
        versions=json.loads(tree.attrs["bgmm_saved_versions"]),
        data_source=str(d.attrs["source"]),
    )


def save_zarr(data: Any, path: str | os.PathLike, *, chunk_rows: int | None = None) -> Path:
    """Write the rows to a zarr store, block by block, atomically: data larger than memory.

    ``bgmm.as_data(path)`` reads the store back lazily, with its feature names. The store
    is written under a temporary name beside ``path`` and renamed into place when complete;
    an existing ``path`` is refused, never replaced.

    Parameters
    ----------
    data : GMMData or anything :func:`bgmm.as_data` reads
        The rows; lazy data are computed one block at a time, never whole.
    path : str or PathLike
        The store to create (a folder, ``*.zarr`` by convention); its parent must exist.
    chunk_rows : int, optional
        Rows per zarr chunk; the data's own blocks by default (lazy data), else about
        ``2**20`` numbers per chunk.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        ``path`` exists, or its directory does not.
    """
    import shutil
    import tempfile

    import dask.array as da
    import zarr

    from bgmm._validation import check_number

    path = Path(path)
    if not path.parent.is_dir():
        raise InputValueError(
            f"cannot save to '{path}': directory '{path.parent}' does not exist."
        )
    if path.exists():
        raise InputValueError(
            f"'{path}' exists; bgmm does not overwrite a store. Remove it or choose another path."
        )
    data = data if isinstance(data, GMMData) else as_data(data)
    values = data.values if data.lazy else da.from_array(data.values)
    if chunk_rows is not None:
        values = values.rechunk((check_number("chunk_rows", chunk_rows, low=1, integer=True), -1))
    elif not data.lazy:
        values = values.rechunk((max(1, 2**20 // data.n_features), -1))
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        shutil.rmtree(tmp)  # to_zarr creates the store itself
        da.to_zarr(values, str(tmp))
        attrs = zarr.open(str(tmp), mode="r+").attrs
        attrs.update({"feature_names": list(data.feature_names), "source": data.source})
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
