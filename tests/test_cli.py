import subprocess
import sys

import pytest

from bgmm.cli import main


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


def test_demo_writes_plot_and_prints_parameters(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "converged: True" in out
    assert "component 1: weight" in out
    png = tmp_path / "out" / "faithful_em.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in png.parent.iterdir() if p.name.startswith(".")]  # no temp files left


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "-k", "0"], "n_components must be at least 1, got 0"),
        (["demo", "-k", "300"], "n_components=300 is more than the 272 samples"),
        (["demo", "-k", "two"], "argument -k: invalid int value: 'two'"),
        (["demo", "--n-init", "0"], "n_init must be an integer >= 1, got 0"),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_bad_input_exit_code_2_one_message_no_traceback(argv, message):
    proc = subprocess.run(
        [sys.executable, "-m", "bgmm.cli", *argv], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_help_everywhere():
    for argv in (["--help"], ["explain", "--help"], ["demo", "--help"]):
        proc = subprocess.run(
            [sys.executable, "-m", "bgmm.cli", *argv], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0 and "usage: bgmm" in proc.stdout
