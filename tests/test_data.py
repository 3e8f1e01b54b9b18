import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bgmm import as_data, check_n_components


def test_from_numpy_array():
    data = as_data([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]])
    assert data.values.dtype == np.float64
    assert data.values.shape == (3, 2)
    assert data.feature_names == ("x0", "x1")
    assert data.obs_names == ("0", "1", "2")
    assert not data.values.flags.writeable


def test_from_dataframe_choose_numeric_columns_by_name():
    df = pd.DataFrame({"name": ["a", "b", "c"], "h": [1, 2, 3], "w": [4.0, 5.0, 6.0]})
    data = as_data(df, columns=["w", "h"])
    assert data.feature_names == ("w", "h")
    np.testing.assert_array_equal(data.values, [[4, 1], [5, 2], [6, 3]])


def test_from_csv_path(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,2,x\n3,4,y\n5,6,z\n")
    data = as_data(path, columns="a,b".split(","))
    assert data.feature_names == ("a", "b")
    assert data.source == str(path)
    np.testing.assert_array_equal(data.values[:, 1], [2, 4, 6])


def test_from_dataarray_dimension_order_does_not_matter():
    values = np.arange(12.0).reshape(4, 3)
    da = xr.DataArray(values, dims=("obs", "feature"), coords={"feature": ["p", "q", "r"]})
    a = as_data(da)
    b = as_data(da.transpose("feature", "obs"))
    np.testing.assert_array_equal(a.values, values)
    np.testing.assert_array_equal(b.values, values)
    assert a.feature_names == b.feature_names == ("p", "q", "r")


def test_standardization_records_its_transform():
    X = np.array([[1.0, 10.0], [2.0, 30.0], [3.0, 20.0], [6.0, 0.0]])
    data = as_data(X, standardize=True)
    np.testing.assert_allclose(data.values.mean(axis=0), 0.0, atol=1e-15)
    np.testing.assert_allclose(data.values.std(axis=0), 1.0)
    st = data.standardization
    np.testing.assert_allclose(st.inverse_means(data.values), X, atol=1e-12)
    cov_z = np.cov(data.values.T, bias=True)
    np.testing.assert_allclose(st.inverse_covariances(cov_z), np.cov(X.T, bias=True))


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (
            np.array([[1.0, np.nan], [2.0, 3.0], [np.nan, 1.0]]),
            "contains NaN in 2 row(s) (rows 0, 2) of column(s) ['x0', 'x1']",
        ),
        (
            np.array([[1.0, 2.0], [np.inf, 3.0]]),
            "contains inf in 1 row(s) (rows 1) of column(s) ['x0']",
        ),
        (
            np.array([1.0, 2.0, 3.0]),
            "X must be 2-D (n_samples, n_features), got a 1-D array of shape (3,). Reshape your data with X.reshape(-1, 1)",
        ),
        (
            np.empty((0, 2)),
            "X from array is empty: 0 sample(s) (shape=(0, 2)) while a minimum of 1 is required",
        ),
        (np.ones((2, 2, 2)), "got 3-D shape (2, 2, 2)"),
    ],
)
def test_bad_arrays_value_error(X, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        as_data(X)


def test_text_array_type_error():
    with pytest.raises(
        TypeError, match=re.escape("X must hold real numbers, got dtype <U1 (e.g. np.str_('a'))")
    ):
        as_data(np.array([["a", "b"], ["c", "d"]]))


def test_non_numeric_column_named():
    df = pd.DataFrame({"h": [1.0, 2.0], "sex": ["f", "m"]})
    with pytest.raises(
        TypeError,
        match=re.escape(
            "non-numeric column(s) ['sex'] in the DataFrame (first values: {'sex': 'f'})"
        ),
    ):
        as_data(df)


def test_nan_in_dataframe_names_rows_and_column():
    df = pd.DataFrame({"h": [1.0, 2.0, 3.0], "w": [1.0, None, 2.0]})
    with pytest.raises(
        ValueError,
        match=re.escape("NaN in 1 row(s) (rows 1) of column(s) ['w']; fit with missing='em'"),
    ):
        as_data(df)


def test_missing_column():
    df = pd.DataFrame({"h": [1.0, 2.0]})
    with pytest.raises(
        ValueError,
        match=re.escape("column(s) ['w'] not found in the DataFrame; available columns: ['h']"),
    ):
        as_data(df, columns=["w"])


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(
        ValueError, match=re.escape(f"data file '{path}' does not exist; check the path.")
    ):
        as_data(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ValueError, match="is empty; it needs a header row and data rows"):
        as_data(path)


def test_binary_file(tmp_path):
    path = tmp_path / "bin.csv"
    path.write_bytes(b"\x89PNG\x00\x01\x02")
    with pytest.raises(ValueError, match="is binary, not a text CSV file"):
        as_data(path)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        as_data(tmp_path)


def test_header_only_csv_is_empty(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("a,b\n")
    with pytest.raises(ValueError, match=re.escape("is empty: 0 sample(s) (shape=(0, 2))")):
        as_data(path)


@pytest.mark.parametrize(
    ("k", "exc", "match"),
    [
        (4, ValueError, "n_components=4 is more than the 3 samples in the data; use at most 3"),
        (0, ValueError, "n_components must be an integer >= 1, got 0"),
        ("2", TypeError, "n_components must be an integer, got '2' (str)"),
        (2.0, TypeError, "n_components must be an integer, got 2.0 (float)"),
    ],
)
def test_check_n_components(k, exc, match):
    data = as_data(np.arange(6.0).reshape(3, 2))
    with pytest.raises(exc, match=re.escape(match)):
        check_n_components(data, k)


def test_constant_feature_cannot_be_standardized():
    with pytest.raises(
        ValueError, match=re.escape("cannot standardise constant feature(s) ['x1']")
    ):
        as_data(np.array([[1.0, 2.0], [3.0, 2.0]]), standardize=True)


def test_data_is_one_aligned_copy_never_a_view_of_the_callers_array():
    X = np.arange(24.0).reshape(12, 2)
    data = as_data(X)
    assert data.values.ctypes.data % 64 == 0  # the EM device reads it in place
    assert not np.shares_memory(data.values, X)
    X[0, 0] = 99.0
    assert data.values[0, 0] == 0.0
    Xi = np.arange(24).reshape(12, 2)  # integers become float64
    np.testing.assert_array_equal(as_data(Xi).values, Xi)
    assert as_data(Xi).values.dtype == np.float64


def test_unnamed_rows_get_labels_made_on_demand():
    from bgmm.data import RowLabels

    data = as_data(np.zeros((1_000_000, 1)))
    labels = data.obs_names
    assert isinstance(labels, RowLabels)
    assert len(labels) == 1_000_000
    assert labels[0] == "0" and labels[-1] == "999999" and labels[10:13] == ("10", "11", "12")
    assert RowLabels(3) == ("0", "1", "2") == RowLabels(3)
    assert RowLabels(3) != ("0", "1") and RowLabels(3) != ("0", "1", "3")
    assert list(RowLabels(2)) == ["0", "1"] and hash(RowLabels(2)) == hash(("0", "1"))
    frame = pd.DataFrame({"a": [1.0, 2.0]}, index=[5, 7])
    assert as_data(frame).obs_names == ("5", "7")
    assert isinstance(as_data(pd.DataFrame({"a": [1.0, 2.0]})).obs_names, RowLabels)


# ---------------------------------------------------------------- lazy sources (Dask)


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(1000, 3)) * [1.0, 10.0, 0.1], columns=["a", "b", "c"])


def test_dask_array_is_checked_in_one_pass_and_stays_lazy(table):
    import dask.array as da

    X = table.to_numpy()
    data = as_data(da.from_array(X, chunks=(128, 2)))  # blocks of whole rows after reading
    assert data.lazy and data.values.chunks[1] == (3,) and data.n_samples == 1000
    np.testing.assert_array_equal(data.largest_magnitudes(), np.abs(X).max(axis=0))
    np.testing.assert_array_equal(data.values.compute(), X)


def test_lazy_non_finite_values_name_rows_and_columns(table):
    import dask.array as da

    X = table.to_numpy().copy()
    X[5, 1], X[700, 2] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"NaN and inf in 2 row\(s\) \(rows 5, 700\) of col"):
        as_data(da.from_array(X, chunks=(128, 3)))


def test_csv_glob_parquet_and_zarr_are_read_lazily(table, tmp_path):
    import dask.array as da
    import zarr

    for i, start in enumerate((0, 300, 700)):
        part = table.iloc[start : (300, 700, 1000)[i]]
        part.to_csv(tmp_path / f"part-{i}.csv", index=False)
    table.to_parquet(tmp_path / "t.parquet")
    da.to_zarr(da.from_array(table.to_numpy(), chunks=(250, 3)), str(tmp_path / "t.zarr"))
    zarr.open(str(tmp_path / "t.zarr")).attrs["feature_names"] = ["a", "b", "c"]
    for source in (tmp_path / "part-*.csv", tmp_path / "t.parquet", tmp_path / "t.zarr"):
        data = as_data(str(source), columns=["c", "a"])
        assert data.lazy, source
        assert data.feature_names == ("c", "a") and data.n_samples == 1000
        np.testing.assert_allclose(data.values.compute(), table[["c", "a"]].to_numpy())
    assert as_data(tmp_path / "t.zarr").values.chunks[0] == (250,) * 4
    # lazy=True reads one CSV file lazily, lazy=False loads a lazy source
    assert as_data(tmp_path / "part-0.csv", lazy=True).lazy
    loaded = as_data(str(tmp_path / "t.zarr"), lazy=False)
    assert not loaded.lazy and loaded.feature_names == ("a", "b", "c")


def test_lazy_sources_name_their_problems(table, tmp_path):
    import dask.dataframe as dd

    with pytest.raises(ValueError, match="no file matches"):
        as_data(str(tmp_path / "missing-*.csv"))
    frame = dd.from_pandas(table.assign(label="x"), npartitions=2)
    with pytest.raises(TypeError, match=r"non-numeric column\(s\) \['label'\]"):
        as_data(frame)
    with pytest.raises(ValueError, match=r"column\(s\) \['z'\] not found"):
        as_data(frame, columns=["a", "z"])
    (tmp_path / "bad.csv").write_bytes(b"a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(ValueError, match="could not be parsed as CSV"):
        as_data(tmp_path / "bad.csv", lazy=True)


def test_lazy_standardisation_matches_memory(table):
    import dask.array as da

    lazy = as_data(da.from_array(table.to_numpy(), chunks=(300, 3)), standardize=True)
    eager = as_data(table, standardize=True)
    np.testing.assert_allclose(lazy.standardization.center, eager.standardization.center)
    np.testing.assert_allclose(lazy.standardization.scale, eager.standardization.scale)
    np.testing.assert_allclose(lazy.values.compute(), eager.values, atol=1e-12)
    np.testing.assert_allclose(lazy.largest_magnitudes(), np.abs(eager.values).max(axis=0))


def test_sample_rows_is_seeded_and_keeps_labels(table):
    import dask.array as da

    data = as_data(da.from_array(table.to_numpy(), chunks=(300, 3)))
    a, b = data.sample_rows(20, random_state=3), data.sample_rows(20, random_state=3)
    assert a.obs_names == b.obs_names and not a.lazy
    rows = [int(r) for r in a.obs_names]
    assert rows == sorted(rows)
    np.testing.assert_array_equal(a.values, table.to_numpy()[rows])
    with pytest.raises(ValueError, match=r"lazy \(1000 rows.*sample_rows"):
        data.to_dataframe()
