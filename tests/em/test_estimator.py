import re

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.mixture import GaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from bgmm import GaussianMixtureEM, SingularCovarianceError, load_old_faithful, load_worked_example


@parametrize_with_checks(
    [GaussianMixtureEM(2, random_state=0)],
    expected_failed_checks=lambda est: {
        # k-means draws its starting centres from rows, so weighted rows and repeated rows
        # start EM from different partitions; from the same start, EM with integer weights
        # equals EM on repeated rows (tests/em/test_engine.py).
        "check_sample_weight_equivalence_on_dense_data": "k-means start differs",
    },
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def faithful_fit():
    data = load_old_faithful()
    return data, GaussianMixtureEM(2, n_init=2, random_state=0).fit(data.to_dataframe())


def test_get_set_params_and_clone():
    m = GaussianMixtureEM(3, reg_covar=1e-4, random_state=5)
    assert m.get_params()["n_components"] == 3
    m.set_params(n_components=2)
    c = clone(m)
    assert c.get_params() == m.get_params()
    assert not hasattr(c, "weights_")


def test_fitted_attributes(faithful_fit):
    data, m = faithful_fit
    assert m.weights_.shape == (2,) and m.means_.shape == (2, 2)
    assert m.covariances_.shape == (2, 2, 2)
    assert m.converged_ and m.n_iter_ == len(m.history_)
    assert list(m.history_.columns) == [
        "log_likelihood",
        "q_value",
        "entropy",
        "lower_bound",
        "kl",
        "regularization_gap",
    ]
    assert m.log_likelihood_ == pytest.approx(m.history_["log_likelihood"].iloc[-1])
    assert m.log_likelihood_ == pytest.approx(m.score(data.values) * data.n_samples, rel=1e-12)
    assert list(m.feature_names_in_) == ["eruptions", "waiting"]


def test_fit_predict_equals_fit_then_predict():
    data = load_old_faithful()
    a = GaussianMixtureEM(2, random_state=1).fit_predict(data.values)
    b = GaussianMixtureEM(2, random_state=1).fit(data.values).predict(data.values)
    np.testing.assert_array_equal(a, b)


def test_predict_proba_score_samples(faithful_fit):
    data, m = faithful_fit
    proba = m.predict_proba(data.values)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(proba.argmax(axis=1), m.predict(data.values))
    np.testing.assert_allclose(m.score(data.values), m.score_samples(data.values).mean())
    sk = GaussianMixture(2)  # scikit-learn evaluating our parameters, no fit of its own
    sk.weights_, sk.means_, sk.covariances_ = m.weights_, m.means_, m.covariances_
    sk.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(m.covariances_))
    np.testing.assert_allclose(
        m.score_samples(data.values), sk.score_samples(data.values), rtol=1e-10
    )
    np.testing.assert_allclose(m.bic(data.values), sk.bic(data.values), rtol=1e-10)
    np.testing.assert_allclose(m.aic(data.values), sk.aic(data.values), rtol=1e-10)


def test_sample_is_seeded():
    data = load_old_faithful()
    m = GaussianMixtureEM(2, random_state=3).fit(data.values)
    X1, y1 = m.sample(50)
    X2, y2 = m.sample(50)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert X1.shape == (50, 2) and y1.shape == (50,)


def test_wrong_number_of_features_in_predict(faithful_fit):
    _, m = faithful_fit
    with pytest.raises(
        ValueError,
        match=re.escape(
            "X has 3 features, but GaussianMixtureEM is expecting 2 features as input"
        ),
    ):
        m.predict(np.ones((4, 3)))


def test_worked_example_through_the_estimator():
    ex = load_worked_example()
    m = GaussianMixtureEM(
        2,
        max_iter=1,
        tol=0,
        reg_covar=0,
        weights_init=[0.5, 0.5],
        means_init=[[162, 57], [185, 80]],
        covariances_init=[10 * np.eye(2), 10 * np.eye(2)],
    )
    with pytest.warns(UserWarning, match="singular"):
        m.fit(pd.DataFrame(ex.data.values, columns=["Height", "Weight"]))
    np.testing.assert_allclose(m.means_, [[165, 60], [185, 80]], atol=1e-6)
    with pytest.raises(SingularCovarianceError, match="singular"):
        m.predict(ex.data.values)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_precisions_and_lower_bound_as_in_scikit_learn(covariance_type):
    from sklearn.mixture import GaussianMixture

    X = load_old_faithful().values
    m = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0).fit(X)
    full = m.result_.covariances
    precision = np.linalg.inv(full)
    np.testing.assert_allclose(m.result_.family.expand(m.precisions_, 2, 2), precision)
    u = m.result_.family.expand(m.precisions_cholesky_, 2, 2)
    if covariance_type in ("full", "tied"):
        assert np.allclose(np.tril(u, -1), 0.0)  # upper triangular, as scikit-learn's
    np.testing.assert_allclose(u @ np.swapaxes(u, 1, 2), precision, rtol=1e-10)
    assert m.lower_bound_ == pytest.approx(m.log_likelihood_ / X.shape[0], rel=1e-12)
    g = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    assert m.precisions_.shape == g.precisions_.shape
    assert m.precisions_cholesky_.shape == g.precisions_cholesky_.shape
    assert m.lower_bound_ == pytest.approx(g.lower_bound_, abs=1e-4)


def test_public_modules_are_attributes_of_the_package_and_warnings_are_sklearns():
    import subprocess
    import sys

    from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning

    import bgmm

    assert issubclass(bgmm.ConvergenceWarning, SklearnConvergenceWarning)
    code = (
        "import sys, bgmm; assert 'pymc' not in sys.modules; "
        "assert bgmm.selection.select_k and bgmm.compare.compare and bgmm.io.save_fit; "
        "assert 'pymc' not in sys.modules; assert bgmm.bayes.sample_posterior; "
        "assert 'selection' in dir(bgmm)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
