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
        match=re.escape("NaN in 1 row(s) (rows 1) of column(s) ['w']; remove or impute"),
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
