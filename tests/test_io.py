import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from bgmm import fit_em, load_old_faithful
from bgmm.compare import compare
from bgmm.io import load_fit, save_fit


def assert_same_em(a, b):
    for name in ("weights", "means", "covariances", "resp", "init_log_likelihoods"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.history, b.history)
    assert (a.log_likelihood, a.log_likelihood_init, a.n_iter, a.converged, a.feature_names) == (
        b.log_likelihood,
        b.log_likelihood_init,
        b.n_iter,
        b.converged,
        b.feature_names,
    )


def test_round_trip_with_posterior_and_comparison(tmp_path, tree, simulated):
    sim, em = simulated
    comparison = compare(em, tree)
    path = save_fit(
        tmp_path / "fit.nc",
        data=sim.data,
        em=em,
        posterior=tree,
        comparison=comparison,
        settings={"k": 2, "method": "both"},
    )
    loaded = load_fit(path)
    assert_same_em(loaded.em, em)
    np.testing.assert_array_equal(loaded.data.values, sim.data.values)
    assert loaded.data.feature_names == sim.data.feature_names
    assert loaded.data.obs_names == sim.data.obs_names
    assert loaded.data.source == sim.data.source
    for name, node in tree.children.items():
        xr.testing.assert_identical(loaded.posterior[name].to_dataset(), node.to_dataset())
    assert loaded.posterior.attrs == tree.attrs
    assert loaded.settings == {"k": 2, "method": "both"}
    assert "pymc" in loaded.versions
    import pandas as pd

    pd.testing.assert_frame_equal(loaded.comparison.to_dataframe(), comparison.to_dataframe())
    assert loaded.comparison.membership == comparison.membership
    assert loaded.comparison.verdict.to_dict() == comparison.verdict.to_dict()
    assert loaded.comparison.verdict.status == "agrees"
    assert loaded.comparison.covariance_type == comparison.covariance_type
    # the file opens as a plain DataTree that ArviZ reads
    import arviz_stats as azs

    with xr.open_datatree(path, engine="h5netcdf") as opened:
        assert azs.rhat(opened.load())["means"].shape == (2, 2)


def test_round_trip_em_only_with_standardization(tmp_path):
    data = load_old_faithful(standardize=True)
    em = fit_em(data, 2, random_state=0)
    loaded = load_fit(save_fit(tmp_path / "em.nc", data=data, em=em))
    assert_same_em(loaded.em, em)
    assert loaded.posterior is None and loaded.comparison is None
    np.testing.assert_array_equal(loaded.data.standardization.scale, data.standardization.scale)


def test_round_trip_keeps_the_covariance_family(tmp_path):
    data = load_old_faithful()
    em = fit_em(data, 2, covariance_type="diag", random_state=0)
    loaded = load_fit(save_fit(tmp_path / "diag.nc", data=data, em=em))
    assert loaded.em.covariance_type == "VVI" and loaded.em.n_parameters == em.n_parameters
    assert_same_em(loaded.em, em)


def test_interrupted_save_keeps_the_good_file(tmp_path, monkeypatch):
    data = load_old_faithful()
    em = fit_em(data, 2, random_state=0)
    path = save_fit(tmp_path / "fit.nc", data=data, em=em)
    good = path.read_bytes()

    def crash(self, target, **kwargs):
        with open(target, "wb") as fh:
            fh.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.DataTree, "to_netcdf", crash)
    with pytest.raises(KeyboardInterrupt):
        save_fit(path, data=data, em=fit_em(data, 3, random_state=0))
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]  # no temporary file left


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_fit(tmp_path / "nope.nc")
    bad = tmp_path / "bad.nc"
    bad.write_text("not netcdf")
    with pytest.raises(ValueError, match="could not be read as a saved bgmm fit"):
        load_fit(bad)
    other = tmp_path / "other.nc"
    xr.Dataset({"a": ("x", [1.0])}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(ValueError, match="is a netCDF file but not a saved bgmm fit"):
        load_fit(other)
    with pytest.raises(ValueError, match=r"directory .* does not exist"):
        save_fit(tmp_path / "missing" / "fit.nc", data=load_old_faithful(), em=None)


def test_saving_an_em_fit_imports_no_pymc(tmp_path):
    """The name/dim contract and the version helper live in bgmm.contract, not the sampler."""
    code = (
        "import sys; from bgmm import fit_em, load_old_faithful; from bgmm.io import save_fit; "
        "data = load_old_faithful(); "
        f"save_fit(r'{tmp_path / 'fit.nc'}', data=data, em=fit_em(data, 2, random_state=0)); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pymc', 'nutpie')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert load_fit(tmp_path / "fit.nc").versions["pymc"]  # still recorded, from metadata
