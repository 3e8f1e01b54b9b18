import re

import numpy as np
import pytest

from bgmm import fit_em, load_old_faithful
from bgmm.bayes import SamplingWarning
from bgmm.em import standard_errors
from bgmm.exceptions import InputValueError
from bgmm.io import load_fit
from bgmm.workflow import Interrupted, analyse


def test_em_only_pipeline_is_the_stages_run_by_hand(tmp_path):
    data = load_old_faithful()
    stages = []
    analysis = analyse(
        data, 2, method="em", random_state=3, on_stage=lambda name, r: stages.append(name)
    )
    em = fit_em(data, 2, n_init=5, random_state=3)
    np.testing.assert_array_equal(analysis.em.means, em.means)
    se = standard_errors(em.params, data, em.covariance_type)
    np.testing.assert_array_equal(analysis.standard_error.means, se.means)
    assert stages == ["em", "standard_errors"]
    assert analysis.posterior is None and analysis.comparison is None
    assert analysis.settings["n_init"] == 5 and analysis.settings["random_state"] == 3
    report = analysis.write_report(tmp_path, title="EM only")
    assert report.exists() and (tmp_path / "fit.nc").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "nuts"}, "method must be one of ('em', 'mcmc', 'both'), got 'nuts'"),
        ({"covariance_type": "VEV"}, "the Bayesian model has no covariance_type='VEV'"),
    ],
)
def test_refused_before_em_runs(kwargs, match):
    with pytest.raises(InputValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        analyse(load_old_faithful(), 2, **kwargs)


def test_a_constant_column_keeps_the_fit_without_standard_errors(tmp_path):
    X = load_old_faithful().to_dataframe()
    X["site"] = 1.0  # one value in every row: the information is singular
    analysis = analyse(X, 2, method="em", random_state=0, checkpoint=tmp_path / "fit.nc")
    se = analysis.standard_error
    assert not se.available and np.isnan(se.means).all()
    assert "feature(s) ['site'] are constant" in se.reason and "exclude=['site']" in se.reason
    assert analysis.notes == (f"EM's standard errors are missing: {se.reason}",)
    assert analysis.em.converged  # the EM estimates are kept
    saved = load_fit(tmp_path / "fit.nc")  # the checkpoint: EM saved before anything else
    np.testing.assert_array_equal(saved.em.means, analysis.em.means)


def test_ctrl_c_while_sampling_keeps_em(monkeypatch):
    import bgmm.bayes

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bgmm.bayes, "sample_posterior", interrupted)
    with pytest.raises(Interrupted) as stop:
        analyse(load_old_faithful(), 2, random_state=0)
    assert isinstance(stop.value, KeyboardInterrupt)  # code that knows nothing of it stops
    analysis = stop.value.analysis
    assert analysis.em.converged and analysis.standard_error.available
    assert analysis.posterior is None and analysis.comparison is None
    assert analysis.notes[-1].startswith("interrupted (Ctrl-C) while running the sampler")


def test_the_posterior_on_a_seeded_subsample_em_on_every_row():
    data = load_old_faithful()
    kwargs = {"draws": 150, "tune": 150, "chains": 1, "subsample": 120, "random_state": 1}
    with pytest.warns(SamplingWarning):  # one short chain
        analysis = analyse(data, 2, **kwargs)
    assert analysis.em.resp.shape[0] == data.n_samples == 272
    observed = analysis.posterior["observed_data"]["x"]
    assert observed.shape == (120, 2)
    expected = data.sample_rows(120, random_state=1).values
    np.testing.assert_array_equal(observed.values, expected)  # the seed chooses the rows
    assert any(
        "the posterior to 120 of them drawn at random (seed 1)" in n for n in analysis.notes
    )
    assert analysis.settings["subsample"] == 120
    assert analysis.comparison is not None


def test_defaults_are_chosen_once():
    import inspect

    from bgmm import defaults
    from bgmm.bayes import sample_posterior
    from bgmm.cli import build_parser

    fit = build_parser().parse_args(["fit", "x.csv", "-k", "2"])
    analysis = inspect.signature(analyse).parameters
    sampler = inspect.signature(sample_posterior).parameters
    for name, value in [
        ("n_init", defaults.N_INIT),
        ("chains", defaults.CHAINS),
        ("draws", defaults.DRAWS),
        ("tune", defaults.TUNE),
    ]:
        assert analysis[name].default == value and getattr(fit, name) == value, name
        if name != "n_init":
            assert sampler[name].default == value, name
    assert (defaults.N_INIT, defaults.CHAINS) == (5, 4)


def test_missing_values_go_through_the_whole_analysis(tmp_path):
    X = load_old_faithful().values.copy()
    X[[3, 40, 41], [0, 1, 0]] = np.nan
    with pytest.raises(InputValueError, match="fit with missing='em'"):
        analyse(X, 2, method="em")
    with pytest.warns(SamplingWarning):  # one short chain
        analysis = analyse(  # the posterior on a subsample, whose rows keep their NaN
            X,
            2,
            missing="em",
            draws=100,
            tune=100,
            chains=1,
            n_init=2,
            random_state=0,
            subsample=250,
        )
    assert analysis.notes[0] == (
        "3 of 544 values are missing (in 3 of 272 rows): EM and the Bayesian model "
        "integrate them out, assuming they are missing at random."
    )
    assert analysis.standard_error.available and analysis.settings["missing"] == "em"
    sampled = analysis.posterior["observed_data"]["x"].values
    assert analysis.posterior["imputation"]["em"].size == np.isnan(sampled).sum() > 0
    report = analysis.write_report(tmp_path).read_text()
    assert re.search(r"\d of 3 EM imputations \(conditional means at the EM estimate\)", report)


def test_lazy_data_with_missing_values_get_their_report(tmp_path):
    """EM on a Dask array with gaps: the report reads a head of rows, never all of them."""
    da = pytest.importorskip("dask.array")
    X = load_old_faithful().values.copy()
    X[[3, 40, 200], [0, 1, 0]] = np.nan
    lazy = da.from_array(X, chunks=(100, 2))
    analysis = analyse(lazy, 2, method="em", missing="em", n_init=2, random_state=0)
    assert analysis.data.lazy and analysis.data.has_missing
    assert analysis.notes[0].startswith("3 of 544 values are missing (in 3 of 272 rows)")
    report = analysis.write_report(tmp_path).read_text()
    assert (
        "EM's imputation (conditional mean and sd) of the 3 missing values of the first 272 "
        "rows (bgmm.em.impute imputes every row)." in report
    )
