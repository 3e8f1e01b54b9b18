import numpy as np
import pytest

from bgmm import load_old_faithful, load_worked_example, simulate
from tests.conftest import make_params


def test_worked_example_table():
    ex = load_worked_example()
    assert ex.data.obs_names == tuple("ABCDEF")
    assert ex.data.feature_names == ("Height", "Weight")
    np.testing.assert_array_equal(ex.data.values[:, 0], [160, 165, 170, 180, 185, 190])
    np.testing.assert_array_equal(ex.data.values[:, 1], [55, 60, 65, 75, 80, 85])
    assert ex.component_names == ("women", "men")
    np.testing.assert_array_equal(ex.initial.means, [[162, 57], [185, 80]])
    np.testing.assert_array_equal(ex.initial.covariances, [10 * np.eye(2)] * 2)
    np.testing.assert_array_equal(ex.initial.weights, [0.5, 0.5])


def test_old_faithful():
    data = load_old_faithful()
    assert data.values.shape == (272, 2)
    assert data.feature_names == ("eruptions", "waiting")
    np.testing.assert_array_equal(data.values[0], [3.6, 79])
    np.testing.assert_allclose(data.values.mean(axis=0), [3.4877831, 70.8970588], rtol=1e-7)
    assert "datasets::faithful" in data.source


def test_simulate_is_reproducible_and_has_true_labels():
    params = make_params(3, 2)
    a = simulate(params, 500, random_state=7)
    b = simulate(params, 500, random_state=7)
    c = simulate(params, 500, random_state=8)
    np.testing.assert_array_equal(a.data.values, b.data.values)
    assert not np.array_equal(a.data.values, c.data.values)
    assert a.data.values.shape == (500, 2) and a.labels.shape == (500,)
    for k in range(3):
        np.testing.assert_allclose(
            a.data.values[a.labels == k].mean(axis=0), params.means[k], atol=0.6
        )


def test_simulate_rejects_bad_size():
    with pytest.raises(ValueError, match="n_samples must be a positive integer, got 0"):
        simulate(make_params(2, 2), 0)


def test_remove_values_mcar_and_mar():
    import re

    from bgmm.datasets import remove_values

    data = simulate(make_params(2, 3, seed=0), 4000, random_state=0).data
    mcar = remove_values(data, 0.3, random_state=1)
    assert mcar.has_missing and abs(np.isnan(mcar.values).mean() - 0.3) < 0.02
    assert not np.isnan(mcar.values).all(axis=1).any()  # every row keeps a value
    np.testing.assert_array_equal(
        np.isnan(mcar.values), np.isnan(remove_values(data, 0.3, random_state=1).values)
    )
    observed = ~np.isnan(mcar.values)
    np.testing.assert_array_equal(mcar.values[observed], np.asarray(data.values)[observed])
    mar = remove_values(data, 0.3, mechanism="MAR", random_state=1, depends_on=2)
    lost = np.isnan(mar.values)
    assert not lost[:, 2].any() and abs(lost.mean() - 0.3) < 0.02
    large = np.asarray(data.values)[:, 2] > np.median(np.asarray(data.values)[:, 2])
    assert lost[large].mean() > 2 * lost[~large].mean()  # depends on the observed feature
    for kwargs, match in [
        ({"share": 1.0}, "share must be below 1, got 1.0"),
        ({"share": 0.2, "mechanism": "NMAR"}, "mechanism must be one of ('MCAR', 'MAR')"),
    ]:
        with pytest.raises(ValueError, match=re.escape(match)):
            remove_values(data, **kwargs)
    with pytest.raises(ValueError, match="have missing values already"):
        remove_values(mcar, 0.1)
