import re

import numpy as np
import pytest
import xarray as xr

from bgmm.compare import STATISTICS, compare, em_dataset
from bgmm.em import standard_errors


def direct_hdi(samples, prob):
    """Narrowest interval from one sorted draw to the draw floor(prob * n) places later.

    (ArviZ's convention: the interval spans floor(prob * n) + 1 draws.)
    """
    x = np.sort(samples)
    step = int(np.floor(prob * x.size))
    widths = x[step:] - x[: x.size - step]
    i = np.argmin(widths)
    return x[i], x[i + step]


@pytest.fixture(scope="module")
def comparison(tree, simulated):
    _, em = simulated
    return compare(em, tree)


def test_table_numbers_against_direct_computations(comparison, tree, simulated):
    sim, em = simulated
    se = standard_errors(em.params, sim.data)
    post = tree["posterior"]
    for name in ("weights", "means", "covariances"):
        table = comparison.parameters[name].to_dataset()
        draws = post[name].values.reshape(-1, *post[name].shape[2:])
        np.testing.assert_allclose(table["em"].values, getattr(em, name))
        np.testing.assert_allclose(table["em_se"].values, getattr(se, name))
        np.testing.assert_allclose(table["mean"].values, draws.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(table["sd"].values, draws.std(axis=0, ddof=1), rtol=1e-12)
        flat = draws.reshape(draws.shape[0], -1)
        lo, hi = np.array([direct_hdi(flat[:, j], 0.94) for j in range(flat.shape[1])]).T
        np.testing.assert_allclose(table["hdi_lower"].values.ravel(), lo, rtol=1e-12)
        np.testing.assert_allclose(table["hdi_upper"].values.ravel(), hi, rtol=1e-12)
        z = (getattr(em, name) - draws.mean(axis=0)) / draws.std(axis=0, ddof=1)
        np.testing.assert_allclose(table["z"].values, z, rtol=1e-10)
        inside = (getattr(em, name) >= lo.reshape(z.shape)) & (
            getattr(em, name) <= hi.reshape(z.shape)
        )
        np.testing.assert_array_equal(table["em_in_hdi"].values, inside)
        np.testing.assert_allclose(
            table["se_ratio"].values, getattr(se, name) / draws.std(axis=0, ddof=1)
        )
        assert np.all(table["r_hat"].values < 1.05) and np.all(table["ess_bulk"].values > 50)


def test_dataframe_view(comparison):
    df = comparison.to_dataframe()
    assert list(df.columns) == list(STATISTICS)
    # 2 weights + 4 means + 2 x 3 covariance entries (lower triangle)
    assert len(df) == 12
    assert "means[1, b]" in df.index and "covariances[0, b, a]" in df.index
    assert "covariances[0, a, b]" not in df.index
    assert df["em_in_hdi"].mean() > 0.8


def test_membership_agreement(comparison, tree, simulated):
    _, em = simulated
    m = tree["membership"]["mean"].values
    assert comparison.membership["share_same_component"] == pytest.approx(
        np.mean(m.argmax(axis=1) == em.resp.argmax(axis=1))
    )
    assert comparison.membership["max_abs_difference"] == pytest.approx(np.abs(m - em.resp).max())


def test_em_dataset_has_posterior_names_and_dims(tree, simulated):
    _, em = simulated
    ds = em_dataset(em)
    for name in ("weights", "means", "covariances"):
        assert ds[name].dims == tree["posterior"][name].dims[2:]


def test_bad_input(tree, simulated):
    _, em = simulated
    with pytest.raises(
        TypeError,
        match=re.escape("em must be an EMResult or a fitted GaussianMixtureEM, got dict"),
    ):
        compare({}, tree)
    with pytest.raises(ValueError, match=re.escape("ci_prob must be in (0, 1), got 1.5")):
        compare(em, tree, ci_prob=1.5)
    without_data = xr.DataTree.from_dict({"posterior": tree["posterior"].to_dataset()})
    with pytest.raises(ValueError, match=re.escape("posterior has no 'observed_data' group")):
        compare(em, without_data)


def test_given_standard_errors_are_used(tree, simulated, comparison):
    sim, em = simulated
    se = standard_errors(em.params, sim.data)
    again = compare(em, tree, standard_error=se)
    import pandas as pd

    pd.testing.assert_frame_equal(again.to_dataframe(), comparison.to_dataframe())


def test_membership_of_an_em_fit_on_other_rows_is_taken_at_the_posteriors(tree, simulated):
    """EM on all rows of lazy data (resp a Dask array), the posterior on some of them."""
    import dataclasses

    import dask.array as da

    _, em = simulated
    lazy = dataclasses.replace(em, resp=da.from_array(np.asarray(em.resp), chunks=50))
    got = compare(lazy, tree).membership
    m = tree["membership"]["mean"].values
    assert got["max_abs_difference"] == pytest.approx(np.abs(m - em.resp).max(), abs=1e-10)
