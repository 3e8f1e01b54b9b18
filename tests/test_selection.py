import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bgmm import GaussianMixtureEM, GMMParams, fit_em, load_old_faithful, simulate
from bgmm.plots import plot_bic
from bgmm.selection import bic_table, n_parameters, select_k, select_model

TRUTH = GMMParams.from_arrays([0.3, 0.3, 0.4], [[0, 0], [4, 0], [2, 4]], [np.eye(2) * 0.5] * 3)


@pytest.fixture(scope="module")
def data():
    return simulate(TRUTH, 200, random_state=0).data


def test_em_criteria_against_the_estimator_and_pick_the_true_k(data):
    table = select_k(data, [1, 2, 3, 4], random_state=0, loo=False)
    assert list(table.index) == [1, 2, 3, 4]
    for k in (1, 3):
        m = GaussianMixtureEM(k, n_init=5, random_state=0).fit(data.values)
        assert table.loc[k, "bic"] == pytest.approx(m.bic(data.values), rel=1e-9)
        assert table.loc[k, "aic"] == pytest.approx(m.aic(data.values), rel=1e-9)
        resp = m.predict_proba(data.values)
        entropy = -np.sum(resp * np.log(np.clip(resp, 1e-300, None)))
        assert table.loc[k, "icl"] == pytest.approx(m.bic(data.values) + 2 * entropy, rel=1e-9)
    assert table["bic"].idxmin() == 3 and table["icl"].idxmin() == 3
    assert n_parameters(3, 2) == table.loc[3, "n_parameters"] == 17


def test_loo_beside_the_criteria(data):
    table = select_k(data, [1, 3], random_state=0, draws=200, tune=200)
    assert {"elpd_loo", "elpd_loo_se", "p_loo", "looic", "pareto_k_bad"} <= set(table.columns)
    np.testing.assert_allclose(table["looic"], -2 * table["elpd_loo"])
    # three well separated clusters: K=3 predicts far better than K=1
    diff = table.loc[3, "elpd_loo"] - table.loc[1, "elpd_loo"]
    assert diff > 4 * table["elpd_loo_se"].max()
    # the comparison with the best K (arviz_stats.compare): differences and their SEs
    assert table.loc[3, "elpd_diff"] == 0 and table.loc[3, "dse"] == 0
    np.testing.assert_allclose(table.loc[1, "elpd_diff"], -diff)
    assert 0 < table.loc[1, "dse"] < table["elpd_loo_se"].max()
    assert table.loc[1, "elpd_diff"] < -4 * table.loc[1, "dse"]
    assert table.loc[1, "p_worse"] > 0.99
    np.testing.assert_allclose(table["weight"].sum(), 1.0)
    # both posteriors are single modes (short chains: r_hat may be listed): LOO trusted
    assert table["loo_trusted"].all()
    assert table["recommended"].tolist() == [False, True] and table.attrs["recommended_k"] == 3
    assert table.attrs["recommendation"].startswith("K = 3, by LOO: the simplest")


class _FakeLOO(NamedTuple):
    elpd: float
    se: float
    p: float
    pareto_k: np.ndarray
    good_k: float


def test_loo_is_flagged_where_it_cannot_be_trusted():
    from bgmm.diagnostics import Diagnostics, Finding
    from bgmm.selection import _LOO, _loo_columns

    clean = Diagnostics(xr.Dataset(), ())
    good = _FakeLOO(-500.0, 10.0, 10.0, np.full(100, 0.2), 0.7)
    assert _loo_columns(_LOO(good, clean), 17)["loo_trusted"]
    # iris at K = 5, as a new user saw it: bad Pareto k, p_loo far above the parameters
    bad = good._replace(p=267.0, pareto_k=np.r_[np.full(17, 0.9), np.full(83, 0.2)])
    modes = Finding("r_hat_modes", "r_hat after relabelling is means 1.53", "", "")
    row = _loo_columns(_LOO(bad, Diagnostics(xr.Dataset(), (modes,))), 74)
    assert not row["loo_trusted"] and row["pareto_k_bad"] == 17
    assert row["loo_issues"] == (
        "17 Pareto k above 0.7 (largest 0.90); p_loo 267.0 above the 74 parameters; "
        "r_hat after relabelling is means 1.53"
    )
    for each in (  # each of the three alone is enough
        _LOO(bad._replace(p=10.0), clean),
        _LOO(good._replace(p=26.0), clean),
        _LOO(good, Diagnostics(xr.Dataset(), (modes,))),
    ):
        assert not _loo_columns(each, 17)["loo_trusted"]
    # listed but still trusted: one high k, p_loo a little above p, r_hat of short chains
    one = good._replace(p=18.7, pareto_k=np.r_[0.87, np.full(199, 0.2)])
    short = Finding("r_hat", "r_hat after relabelling is covariances 1.03", "", "")
    row = _loo_columns(_LOO(one, Diagnostics(xr.Dataset(), (short,))), 17)
    assert row["loo_trusted"] and row["loo_issues"].count(";") == 2
    ess = Finding("ess", "ESS", "", "")  # not a LOO matter at all
    assert _loo_columns(_LOO(good, Diagnostics(xr.Dataset(), (ess,))), 17)["loo_issues"] == ""


def test_recommendation_falls_back_to_bic_when_loo_is_trusted_nowhere():
    from bgmm.selection import _recommend

    table = pd.DataFrame(
        {"bic": [900.0, 800.0, 850.0], "elpd_loo": [-450.0, -400.0, -390.0]},
        index=pd.Index([1, 2, 3], name="k"),
    )
    table["loo_trusted"] = False
    choice, reason = _recommend(table, {}, str, "k")
    assert choice == 2 and reason.startswith("BIC: LOO cannot be trusted for any model")


def test_loo_for_a_single_k(data):
    table = select_k(data, [3], random_state=0, draws=100, tune=100)
    assert table.loc[3, ["elpd_diff", "dse", "weight"]].tolist() == [0.0, 0.0, 1.0]


def test_bad_k_range(data):
    with pytest.raises(ValueError, match="n_components must be an integer >= 1, got 0"):
        select_k(data, [0, 1], loo=False)
    with pytest.raises(ValueError, match="k_range is empty"):
        select_k(data, [], loo=False)


def test_select_model_table_over_k_and_families(data):
    table = select_model(data, [1, 3], "EII,spherical,VVV", random_state=0)
    assert list(table.index) == [
        (k, f) for k in (1, 3) for f in ("EII", "VII", "VVV")
    ]  # scikit-learn's names become mclust's
    n = data.n_samples
    for (k, family), row in table.iterrows():
        em = fit_em(data, k, covariance_type=family, init_params="auto", n_init=10, random_state=0)
        assert row["log_likelihood"] == pytest.approx(em.log_likelihood, rel=1e-10)
        assert row["n_parameters"] == n_parameters(k, 2, family) == em.n_parameters
        assert row["bic"] == pytest.approx(-2 * em.log_likelihood + em.n_parameters * np.log(n))
    assert table["best_bic"].sum() == 1 and table["best_icl"].sum() == 1
    assert table["bic"].idxmin() == (3, "EII")  # the truth: three equal spherical clusters
    wide = bic_table(table)
    assert list(wide.columns) == ["EII", "VII", "VVV"] and list(wide.index) == [1, 3]
    assert wide.loc[3, "VVV"] == table.loc[(3, "VVV"), "bic"]
    fig = plot_bic(table)
    assert len(fig.axes[0].get_lines()) == 3 + 1  # one per family and the best cell


def test_select_model_one_feature_uses_e_and_v():
    x = load_old_faithful().values[:, :1]
    table = select_model(x, [1, 2], random_state=0)
    assert set(table.index.get_level_values("family")) == {"E", "V"}
    # with one component the two models are the same
    assert table.loc[(1, "E"), "log_likelihood"] == pytest.approx(
        table.loc[(1, "V"), "log_likelihood"], rel=1e-12
    )


def test_select_model_bad_families(data):
    with pytest.raises(ValueError, match="families is empty"):
        select_model(data, [1], [])
    with pytest.raises(ValueError, match="got 'ful'"):
        select_model(data, [1], "ful")
    with pytest.raises(ValueError, match="criterion must be one of"):
        bic_table(select_model(data, [1], "EII"), "looic")


def test_select_model_loo_for_the_families_the_bayesian_model_has(data):
    import arviz_stats as azs

    from bgmm.bayes import SamplingWarning, sample_posterior

    settings = {"draws": 150, "tune": 150, "chains": 2}
    table = select_model(data, [1, 3], "EII,VEV", random_state=0, loo=True, **settings)
    eii = table.xs("EII", level="family")
    assert eii["elpd_loo"].notna().all() and eii["pareto_k_bad"].notna().all()
    np.testing.assert_allclose(eii["looic"], -2 * eii["elpd_loo"])
    vev = table.xs("VEV", level="family")
    assert vev["elpd_loo"].isna().all() and vev["log_likelihood"].notna().all()
    assert (vev["note"] == "no Bayesian model of this family (no LOO)").all()
    # the cell's LOO is that of the posterior started at the cell's EM fit, same seed
    em = fit_em(data, 3, covariance_type="EII", init_params="auto", n_init=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # select_model records, not warns
        tree = sample_posterior(data, 3, em=em, random_seed=0, progressbar=False, **settings)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*shape parameter of Pareto.*")
        direct = float(azs.loo(tree).elpd)
    assert table.loc[(3, "EII"), "elpd_loo"] == pytest.approx(direct, rel=1e-12)
    # compared over the cells that have it; three spherical clusters beat one
    assert table["best_loo"].sum() == 1 and table.loc[(3, "EII"), "best_loo"]
    assert table.loc[(3, "EII"), "elpd_diff"] == 0
    assert table.loc[(1, "EII"), "elpd_diff"] < -4 * table.loc[(1, "EII"), "dse"]
    np.testing.assert_allclose(table["weight"].sum(), 1.0)
    assert list(bic_table(table, "elpd_loo").columns) == ["EII", "VEV"]


def test_select_model_reports_nonconvergence_in_its_table(data):
    # no ConvergenceWarning per cell (the suite turns warnings into errors): a column
    table = select_model(data, [2], "EII", max_iter=2, random_state=0)
    assert not table.loc[(2, "EII"), "converged"]
    assert np.isfinite(table.loc[(2, "EII"), "bic"])
