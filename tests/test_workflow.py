import numpy as np
import pytest

from bgmm import fit_em, load_old_faithful
from bgmm.em import standard_errors
from bgmm.exceptions import InputValueError
from bgmm.workflow import analyse


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
