import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from bgmm.cli import main
from bgmm.exceptions import InputValueError
from bgmm.io import load_fit

PNG = b"\x89PNG\r\n\x1a\n"
EM_FIT = ["-k", "2", "--columns", "a,b", "--method", "em"]


def run_cli(*argv, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "bgmm.cli", *argv], capture_output=True, text=True, timeout=timeout
    )


def test_explain_prints_the_documents_numbers(capsys):
    assert main(["explain"]) == 0
    out = capsys.readouterr().out
    assert "= 1 / 62.83" in out
    assert "Mahalanobis = 0.8 " in out and "Mahalanobis = 125 " in out
    assert "N(A|women) = 1/62.83 exp(-0.4) = 1/62.83 x 0.6703 = 0.0107" in out
    assert "N(A|men) = 1/62.83 exp(-62.5) = 1/62.83 x 7.2e-28 = 1.15e-29" in out
    assert "(exact 1.14397e-29)" in out
    assert "C          170      65  0.9999998982" in out
    assert "m_c = sum_i r_ic:         women 3 (2.999999898), men 3 (3.000000102)" in out
    assert "pi_c = m_c / m:           women 0.5" in out
    assert "women [165, 60], men [185, 80]" in out
    assert "women  [[16.67, 16.67], [16.67, 16.67]]" in out
    assert "singular" in out


def test_demo_writes_report_plots_and_saved_fit(tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert main(["demo", "--output", str(out_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "converged True" in out and "em_in_hdi" in out and "membership: same" in out
    # Old Faithful is the easy case: the verdict comes before the table, and it agrees.
    assert out.index("The posterior agrees with EM.") < out.index("em_in_hdi")
    for name in (
        "em_fit.png",
        "em_trace.png",
        "posterior_vs_em.png",
        "forest.png",
        "rank.png",
        "ellipses.png",
        "membership.png",
    ):
        assert (out_dir / name).read_bytes()[:8] == PNG, name
    report = (out_dir / "report.md").read_text()
    assert "## EM against the posterior" in report and "![Rank plots](rank.png)" in report
    assert "**The posterior agrees with EM.**" in report
    fit = load_fit(out_dir / "fit.nc")
    assert fit.comparison.verdict.status == "agrees"
    assert fit.posterior is not None and fit.settings["command"] == "demo"
    assert fit.settings["backend"] == "jax"
    assert json.loads(fit.posterior.attrs["bgmm_settings"])["backend"] == "jax"
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".")]  # no temp files left
    # compare: the report again, from the saved fit
    assert main(["compare", str(out_dir / "fit.nc"), "--output", str(tmp_path / "again")]) == 0
    assert "weights[0]" in capsys.readouterr().out
    assert (tmp_path / "again" / "report.md").exists()


@pytest.fixture
def csv(tmp_path):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (40, 2)), rng.normal(6, 1, (40, 2))])
    path = tmp_path / "data.csv"
    lines = ["a,b,label"] + [f"{x:.6f},{y:.6f},p{i}" for i, (x, y) in enumerate(X)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_missing_values_are_fitted_with_missing_em(csv, tmp_path, capsys):
    """Empty cells: refused with the option that fits them, then fitted and reported."""
    lines = csv.read_text().splitlines()
    for i in (3, 10, 50):  # file lines 4, 11 and 51 lose a value
        a, b, label = lines[i].split(",")
        lines[i] = ",".join([a, "", label] if i % 2 else ["", b, label])
    csv.write_text("\n".join(lines) + "\n")
    out_dir = tmp_path / "fit"
    assert main(["fit", str(csv), *EM_FIT, "--output", str(out_dir)]) == 2
    assert "missing values on 3 line(s) (4, 11, 51)" in capsys.readouterr().err
    assert main(["fit", str(csv), *EM_FIT, "--missing", "em", "--output", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "3 missing value(s) on 3 line(s) (4, 11, 51), kept as missing" in out
    report = (out_dir / "report.md").read_text()
    assert "3 of 160 values are missing (in 3 of 80 rows): EM integrates them out" in report
    assert (
        "## Missing values" in report
        and "EM's imputation (conditional mean and sd) of the 3 missing values." in report
    )
    fit = load_fit(out_dir / "fit.nc")
    assert fit.data.has_missing and fit.settings["missing"] == "em"
    assert np.isnan(fit.data.values).sum() == 3


def test_fit_em_only_and_select_k(csv, tmp_path, capsys):
    out_dir = tmp_path / "fit"
    assert main(["fit", str(csv), *EM_FIT, "--output", str(out_dir)]) == 0
    assert "EM, K=2: converged True" in capsys.readouterr().out
    fit = load_fit(out_dir / "fit.nc")
    assert fit.posterior is None and fit.em.weights.shape == (2,)
    assert (
        main(
            [
                "select-k",
                str(csv),
                "--columns",
                "a,b",
                "--k-range",
                "1-3",
                "--no-loo",
                "--output",
                str(out_dir),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "bic" in out and (out_dir / "select_k.png").exists()
    argv = ["select-k", str(csv), "--columns", "a,b", "--k-range", "1-2", "--families", "EII,VVV"]
    assert main([*argv, "--no-loo", "--output", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "BIC (lower is better) by K and covariance family" in out and "best by BIC" in out
    assert "PSIS-LOO" not in out
    assert (out_dir / "bic.png").exists() and (out_dir / "select_model.csv").exists()
    # with LOO for the families the Bayesian model has (EII), not for the others (VEV)
    argv = ["select-k", str(csv), "--columns", "a,b", "--k-range", "1", "--families", "EII,VEV"]
    argv.append("--quiet")
    assert main([*argv, "--output", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "PSIS-LOO elpd (higher is better; families with a Bayesian model):" in out
    saved = pd.read_csv(out_dir / "select_model.csv").set_index("family")
    assert np.isfinite(saved.loc["EII", "elpd_loo"]) and np.isnan(saved.loc["VEV", "elpd_loo"])
    # EM of another family through bgmm fit
    argv = ["fit", str(csv), "--columns", "a,b", "-k", "2", "--method", "em"]
    argv += ["--covariance-type", "diag"]
    assert main([*argv, "--quiet", "--output", str(out_dir / "diag")]) == 0
    out = capsys.readouterr().out
    assert "EM VVI, K=2: converged True" in out
    assert load_fit(out_dir / "diag" / "fit.nc").em.covariance_type == "VVI"


@pytest.fixture
def bad_files(tmp_path):
    files = {}
    files["empty"] = tmp_path / "empty.csv"
    files["empty"].write_text("")
    files["binary"] = tmp_path / "binary.csv"
    files["binary"].write_bytes(b"\x00\x01\x02\x03PK\x00")
    files["text"] = tmp_path / "text.csv"
    files["text"].write_text("a,b\nx,y\nz,w\n")
    files["nan"] = tmp_path / "nan.csv"
    files["nan"].write_text("a,b\n1,2\n3,\n5,6\n")
    files["inf"] = tmp_path / "inf.csv"
    files["inf"].write_text("a,b\n1,2\n3,inf\n5,6\n")
    files["two_rows"] = tmp_path / "two.csv"
    files["two_rows"].write_text("a,b\n1,2\n3,4\n")
    for i in range(2):  # a glob of CSV files: lazy data
        (tmp_path / f"part-{i}.csv").write_text("a,b\n1,2\n3,4\n5,7\n")
    files["parts"] = tmp_path / "part-*.csv"
    return files


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "{missing}", "-k", "2"], "does not exist; check the path"),
        (["fit", "{empty}", "-k", "2"], "is empty; it needs a header row and data rows"),
        (["fit", "{binary}", "-k", "2"], "is binary, not a text CSV file"),
        (
            ["fit", "{text}", "-k", "2"],
            "is left to fit: {'a': 'text', 'b': 'text'}; name the columns to use with --columns",
        ),
        (
            ["fit", "{text}", "-k", "2", "--columns", "a"],
            "non-numeric column(s) ['a'] in",
        ),
        (
            ["fit", "{nan}", "-k", "2"],
            "has missing values on 1 line(s) (3) in column(s) ['b']; fit them with --missing "
            "em (EM under missing at random), leave those rows out with --dropna",
        ),
        (["fit", "{inf}", "-k", "2"], "has infinite values on 1 line(s) (3) in column(s) ['b']"),
        (["fit", "{two_rows}", "-k", "1", "--exclude", "c"], "to exclude are not in"),
        (["fit", "{parts}", "-k", "1", "--sep", ";"], "--sep apply to a single CSV file"),
        (["fit", "{two_rows}", "-k", "3"], "n_components=3 is more than the 2 samples"),
        (["fit", "{two_rows}", "-k", "0"], "n_components must be an integer >= 1, got 0"),
        (["fit", "{two_rows}", "-k", "two"], "argument -k: invalid int value: 'two'"),
        (["fit", "{two_rows}", "-k", "1", "--columns", "a,c"], "column(s) ['c'] not found"),
        (["select-k", "{two_rows}", "--k-range", "1-x"], "invalid K range '1-x'"),
        (
            ["select-k", "{two_rows}", "--k-range", "1", "--families", "EII,XYZ"],
            "covariance_type must be one of",
        ),
        (
            ["fit", "{two_rows}", "-k", "1", "--covariance-type", "VEV"],
            "the Bayesian model has no covariance_type='VEV'; it has full (VVV)",
        ),
        (
            ["fit", "{two_rows}", "-k", "1", "--scheduler", "local:0"],
            "the number of local workers must be a positive integer, as in local:4",
        ),
        (["fit", "{parts}", "-k", "1", "--method", "both"], "needs the rows in memory for MCMC"),
        (["select-k", "{parts}", "--k-range", "1"], "add --no-loo for the EM criteria"),
        (["compare", "{missing}"], "saved fit"),
        (["compare", "{text}"], "could not be read as a saved bgmm fit"),
        (["nonsense"], "invalid choice: 'nonsense'"),
        (["demo", "--backend", "c"], "argument --backend: invalid choice: 'c'"),
    ],
)
def test_bad_input_exit_code_2_one_message_no_traceback(argv, message, bad_files, tmp_path):
    names = {**{k: str(v) for k, v in bad_files.items()}, "missing": str(tmp_path / "no.csv")}
    argv = [a.format(**names) for a in argv]
    if argv[0] in ("fit", "select-k"):
        argv += ["--output", str(tmp_path / "out"), "--quiet"]
    proc = run_cli(*argv)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0])  # one message, last


def test_only_bgmms_input_errors_exit_2_a_bug_shows_its_traceback(csv, tmp_path, monkeypatch):
    import bgmm.workflow

    def broken(*args, **kwargs):
        raise ValueError("an internal bug, not bad input")

    argv = ["fit", str(csv), *EM_FIT, "--output", str(tmp_path), "--quiet"]
    monkeypatch.setattr(bgmm.workflow, "fit_em", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        main(argv)

    def refused(*args, **kwargs):
        raise InputValueError("n_components=9 is more than ...")

    monkeypatch.setattr(bgmm.workflow, "fit_em", refused)
    assert main(argv) == 2


def test_help_everywhere():
    for argv in (
        ["--help"],
        ["explain", "--help"],
        ["demo", "--help"],
        ["fit", "--help"],
        ["compare", "--help"],
        ["select-k", "--help"],
    ):
        proc = run_cli(*argv, timeout=60)
        assert proc.returncode == 0 and "usage: bgmm" in proc.stdout


def test_progress_bar_for_restarts_goes_to_stderr(csv, tmp_path):
    proc = run_cli("fit", str(csv), *EM_FIT, "--output", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert "EM, K=2: converged True" in proc.stdout
    assert "EM restarts" not in proc.stdout  # the bar never mixes into the results


def test_fit_on_a_local_cluster_prints_every_iteration(csv, tmp_path, capsys):
    out_dir = tmp_path / "lazy"
    argv = ["fit", str(csv), "--columns", "a,b", "-k", "2", "--scheduler", "local:1"]
    assert main([*argv, "--output", str(out_dir)]) == 0
    captured = capsys.readouterr()
    assert "EM, K=2: converged True" in captured.out
    assert "dashboard: http://" in captured.err
    lines = [line for line in captured.err.splitlines() if line.startswith("EM iteration")]
    assert lines[0].startswith("EM iteration    0: ln p = ") and "change +" in lines[1]
    fit = load_fit(out_dir / "fit.nc")  # parameters, history and settings, not the rows
    assert fit.data is None and fit.em.resp is None and len(lines) >= fit.em.n_iter + 1
    assert fit.settings["scheduler"] == "local:1" and fit.settings["method"] == "em"
    assert "the rows stay in their source" in (out_dir / "report.md").read_text()


def test_version():
    from bgmm import __version__

    proc = run_cli("--version", timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"bgmm {__version__}"


@pytest.mark.parametrize(
    ("k_range", "message"),
    [
        ("5-1", "invalid K range '5-1': it runs from 5 down to 1; write it as LOW-HIGH (1-6)"),
        ("0-3", "invalid K range '0-3'; write it as LOW-HIGH (1-6) or a list (1,2,4)"),
        ("a", "invalid K range 'a'; write it as LOW-HIGH"),
    ],
)
def test_k_range_says_what_form_it_expects(k_range, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["select-k", "x.csv", "--k-range", k_range])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_a_log_gets_a_timed_line_per_stage(csv, tmp_path):
    """stderr is a pipe here, as in a CI job or `2> log`: timed lines, no progress bars."""
    proc = run_cli("fit", str(csv), *EM_FIT, "--output", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    stages = [line for line in proc.stderr.splitlines() if line.startswith("[")]
    assert re.match(r"\[ +\d+\.\d s\] EM: 5 restart\(s\), K=2$", stages[0]), stages
    assert any(re.match(r"\[ +\d+\.\d s\] EM done: \d+ iterations", s) for s in stages)
    assert stages[-1].endswith("s] report written")
    assert "\x1b[" not in proc.stderr  # no terminal control codes in a log


def test_sampler_settings_reach_the_saved_fit(csv, tmp_path):
    out = tmp_path / "o"
    argv = ["fit", str(csv), "--columns", "a,b", "-k", "2", "--n-init", "2", "--chains", "1"]
    argv += ["--draws", "60", "--tune", "60", "--seed", "7", "--quiet", "--output", str(out)]
    with pytest.warns(UserWarning):  # one short chain: the sampler's diagnostics warn
        assert main(argv) == 0
    fit = load_fit(out / "fit.nc")
    assert fit.posterior.posterior.sizes["chain"] == 1
    assert fit.posterior.posterior.sizes["draw"] == 60
    assert {k: fit.settings[k] for k in ("n_init", "chains", "draws", "tune", "seed")} == {
        "n_init": 2,
        "chains": 1,
        "draws": 60,
        "tune": 60,
        "seed": 7,
    }


def test_ctrl_c_while_sampling_saves_em_and_the_report(tmp_path):
    """A real SIGINT to `bgmm demo` while the chains run: exit 130, EM saved and reported."""
    out = tmp_path / "out"
    # A job started in the background inherits SIGINT ignored; a terminal's bgmm does not.
    # So the child sets Python's own handler before running the command line.
    argv = ["bgmm", "demo", "--draws", "50000", "--output", str(out)]
    start = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        f"sys.argv = {argv!r}; runpy.run_module('bgmm.cli', run_name='__main__')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", start],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    err = ""
    while "sampling the posterior" not in err:
        line = proc.stderr.readline()
        assert line, f"bgmm demo ended before sampling: {err}"
        err += line
    time.sleep(5)  # inside the sampler
    proc.send_signal(signal.SIGINT)
    stdout, rest = proc.communicate(timeout=300)
    assert proc.returncode == 130, err + rest
    assert "EM, K=2: converged True" in stdout and "fit saved to" in stdout
    assert "interrupted (Ctrl-C) while running the sampler" in rest and "Traceback" not in rest
    fit = load_fit(out / "fit.nc")
    assert fit.em.converged and fit.posterior is None
    report = (out / "report.md").read_text()
    assert "interrupted (Ctrl-C) while running the sampler" in report
    assert "## EM" in report and "## Verdict" not in report


@pytest.fixture
def wine(tmp_path):
    """scikit-learn's wine data (178 x 13) as a user exports it: an id column, a label."""
    from sklearn.datasets import load_wine

    bunch = load_wine(as_frame=True)
    frame = bunch.data.copy()
    frame.insert(0, "id", np.arange(1, len(frame) + 1))
    frame["cultivar"] = [f"class_{t}" for t in bunch.target]
    path = tmp_path / "wine.csv"
    frame.to_csv(path, index=False)
    return path


def test_thirteen_features_give_a_whole_report(wine, tmp_path, capsys):
    """The issue's wine case (it died drawing 42 subplots): every figure pages, fit.nc saved."""
    out = tmp_path / "out"
    argv = ["fit", str(wine), "-k", "3", "--method", "both", "--chains", "1", "--draws", "40"]
    argv += ["--tune", "40", "--quiet", "--output", str(out)]
    with pytest.warns(UserWarning):  # 40 draws of one chain: the diagnostics warn
        assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "read 178 rows (lines 2-179) of wine.csv; separator ',' (detected)" in printed
    assert "columns used (13): alcohol, malic_acid," in printed
    assert "left out column 'id': looks like an identifier" in printed
    assert "left out column 'cultivar': text" in printed
    report = (out / "report.md").read_text()
    assert "could not be drawn" not in report and "could not be laid out" not in report
    figures = re.findall(r"\]\(([^)]+\.png)\)", report)
    assert {"em_fit-1.png", "posterior_vs_em-1.png", "forest-1.png"} <= set(figures)
    assert "No rank plots: they compare chains, and there is one." in report
    assert all((out / name).read_bytes()[:8] == PNG for name in figures)
    assert "The 234 correlations are in the comparison table and fit.nc, not drawn" in report
    saved = load_fit(out / "fit.nc")
    assert saved.posterior.posterior.sizes["component"] == 3
    # what the reader did is kept with the run: the report's settings and fit.nc
    settings = report.split("## Settings", 1)[1]
    assert "- read: read 178 rows (lines 2-179) of wine.csv;" in settings
    assert "; left out column 'id': looks like an identifier" in settings
    assert "- chains: 1" in settings and "- n_init: 5" in settings
    assert saved.settings["read"][1].startswith("columns used (13): alcohol,")
