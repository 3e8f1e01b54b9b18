import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bgmm.compare import STATISTICS, Verdict, compare, em_dataset, judge
from bgmm.diagnostics import diagnose
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


# ---------------------------------------------------------------- the verdict's rules


def verdict_table(changes=None):
    """Three free parameters, EM inside every HDI and SE ratios of 1, then ``changes``."""
    table = pd.DataFrame(
        {
            "em": [0.4, 1.0, 2.0],
            "hdi_lower": [0.3, 0.8, 1.7],
            "hdi_upper": [0.5, 1.2, 2.3],
            "em_in_hdi": [True, True, True],
            "z": [0.1, -0.2, 0.3],
            "se_ratio": [1.0, 0.95, 1.1],
        },
        index=["weights[0]", "means[0, a]", "covariances[0, a, a]"],
    )
    for (column, row), value in (changes or {}).items():
        table.loc[row, column] = value
    return table


def diagnostics_of(*edits):
    from tests.test_diagnostics import make_tree

    groups = make_tree()
    for edit in edits:
        edit(groups)
    return diagnose(xr.DataTree.from_dict(groups))


def test_verdict_agrees_on_clean_agreeing_numbers():
    verdict = judge(verdict_table(), diagnostics_of())
    assert verdict.status == "agrees" and verdict.single_mode
    assert "all 3 free parameters' EM values inside the 94% HDIs" in verdict.reasons[0]
    assert "SE ratios 0.95 to 1.1" in verdict.reasons[1]
    assert "r_hat at most 1.0" in verdict.reasons[2]
    assert str(verdict).startswith("The posterior agrees with EM.")


def test_verdict_disagrees_names_the_parameter_and_by_how_much():
    table = verdict_table({("em_in_hdi", "means[0, a]"): False, ("z", "means[0, a]"): -4.2})
    verdict = judge(table, diagnostics_of())
    assert verdict.status == "disagrees"
    assert "means[0, a]: EM 1 outside the 94% HDI [0.8, 1.2] (z = -4.20)" in verdict.reasons[0]
    table = verdict_table({("se_ratio", "covariances[0, a, a]"): 0.5})
    verdict = judge(table, diagnostics_of())
    assert verdict.status == "disagrees"
    assert "covariances[0, a, a]: SE ratio 0.5" in verdict.reasons[0]
    assert judge(verdict_table({("se_ratio", "weights[0]"): 1.45}), diagnostics_of()).status == (
        "agrees"
    )


def test_verdict_not_a_single_mode_is_judged_before_the_numbers():
    def shift(groups):
        groups["posterior"]["means"][1] += 1.0

    # Every row says em_in_hdi, as in the iris report this issue started from.
    verdict = judge(verdict_table(), diagnostics_of(shift))
    assert verdict.status == "not_single_mode" and not verdict.single_mode
    assert "r_hat after relabelling" in verdict.reasons[0]
    assert "not judged" in verdict.reasons[-1]


def test_verdict_unreliable_when_diagnostics_are_short_of_the_thresholds():
    def diverge(groups):
        groups["sample_stats"]["diverging"][0, :3] = True

    table = verdict_table({("em_in_hdi", "weights[0]"): False})
    verdict = judge(table, diagnostics_of(diverge))
    assert verdict.status == "unreliable"
    assert "3 divergent transitions" in verdict.reasons[0]
    assert "not trusted while so: weights[0]" in verdict.reasons[1]


def test_verdict_for_em_on_more_rows_uses_z_and_the_expected_se_ratio():
    # The posterior on a 1% subsample: sd ten times EM's SE, z roughly standard normal.
    table = verdict_table({("em_in_hdi", "weights[0]"): False, ("z", "weights[0]"): 2.5})
    table["se_ratio"] = [0.1, 0.095, 0.11]
    diag = diagnostics_of()
    kwargs = {"expected_se_ratio": 0.1, "same_rows": False}
    assert judge(table, diag, **kwargs).status == "agrees"
    table.loc["weights[0]", "z"] = 3.5
    verdict = judge(table, diag, **kwargs)
    assert verdict.status == "disagrees" and "weights[0]: z = 3.50" in verdict.reasons[0]


def test_easy_case_agrees_and_a_multimodal_verdict_masks_the_table(comparison):
    assert comparison.verdict.status == "agrees", str(comparison.verdict)
    table = comparison.to_dataframe()
    assert table["em_in_hdi"].all() and table["z"].notna().all()
    masked = dataclasses.replace(
        comparison, verdict=Verdict("not_single_mode", ("chains in different modes",))
    )
    shown = masked.to_dataframe()
    assert shown["em_in_hdi"].isna().all() and shown[["z", "se_ratio"]].isna().all().all()
    assert shown["mean"].equals(table["mean"])  # the summaries themselves stay
    pd.testing.assert_frame_equal(masked.to_dataframe(masked=False), table)


def test_missing_standard_errors_leave_the_se_columns_empty_and_say_why(tree, simulated):
    from bgmm.em import StandardErrors

    _, em = simulated
    k, d = em.means.shape
    se = StandardErrors.missing(k, d, "feature(s) ['c'] are constant")
    result = compare(em, tree, standard_error=se)
    table = result.to_dataframe()
    assert table["em_se"].isna().all() and table["se_ratio"].isna().all()
    assert table["z"].notna().all()  # the posterior's own columns stay
    assert result.verdict.reasons[-1] == (
        "EM's standard errors are missing, so em_se, se_ratio and the SE band are not judged: "
        "feature(s) ['c'] are constant"
    )
    assert not any("SE ratios" in r for r in result.verdict.reasons)


def test_parameter_series_labels_a_mixture_as_the_table_does(tree, simulated):
    from bgmm.compare import parameter_series

    _, em = simulated
    table = compare(em, tree).to_dataframe()
    series = parameter_series(em.params, em.feature_names)
    pd.testing.assert_series_equal(series, table["em"], check_names=False)
    diag = parameter_series(em.params, em.feature_names, covariance_type="VVI")
    assert [i for i in diag.index if i.startswith("covariances")] == [
        f"covariances[{k}, {f}, {f}]" for k in range(2) for f in em.feature_names
    ]
