"""The report: the reader's order, one self-contained HTML file, and nothing lost to a figure."""

import base64
import re
import shutil
import subprocess

import matplotlib
import pytest

from bgmm import plots
from bgmm.compare import compare
from bgmm.em import StandardErrors, standard_errors
from bgmm.io import load_fit
from bgmm.report import write_report

matplotlib.use("Agg")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def written(tmp_path_factory, tree, simulated):
    sim, em = simulated
    out = tmp_path_factory.mktemp("report")
    se = standard_errors(em.params, sim.data)
    comparison = compare(em, tree, standard_error=se)
    write_report(
        out,
        sim.data,
        em,
        posterior=tree,
        comparison=comparison,
        title="two clusters",
        standard_error=se,
        notes=("a note for the reader",),
    )
    return out


def test_markdown_opens_with_the_verdict_then_em_then_the_table_then_figures(written):
    text = (written / "report.md").read_text()
    order = [
        "# two clusters",
        "a note for the reader",
        "## Verdict",
        "## EM",
        "### Covariances",
        "### History",
        "## EM against the posterior",
        "## Figures",
    ]
    positions = [text.index(heading) for heading in order]
    assert positions == sorted(positions), positions
    assert "| fit | log_likelihood | n_parameters | bic |" in text  # BIC with the EM fit
    assert "| Σ[0] |" in text and "| Σ[1] |" in text  # one covariance table per component
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):  # every figure is on disk
        assert (written / name).read_bytes()[:8] == PNG, name


def test_html_is_one_self_contained_file(written):
    page = (written / "report.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (written / "report.md").read_text())
    assert len(sources) == len(figures) >= 5
    for src, name in zip(sources, figures, strict=True):  # the PNGs themselves, embedded
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == (written / name).read_bytes()
    # nothing fetched from anywhere: no links, scripts or style sheets outside the file
    assert not re.search(r'(href|src)="(?!data:)', page)
    assert "<script" not in page
    assert page.index("<h2>Verdict</h2>") < page.index("<h2>EM</h2>")
    assert page.index("<h2>EM</h2>") < page.index("<h2>EM against the posterior</h2>")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Appended to a copy of the report: after loading, the page reports whether every embedded
# figure decoded (naturalWidth > 0) into an element that --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const ok = imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = `images ${imgs.length} decoded ${ok} width ${document.body.scrollWidth}`;
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt-get install chromium): the report's rendering "
    "in a real browser is not checked here",
)
def test_report_renders_in_headless_chromium(written, tmp_path):
    page = (written / "report.html").read_text().replace("</body>", PROBE + "</body>")
    probe = tmp_path / "probe.html"
    probe.write_text(page)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--window-size=1200,2000",
    ]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    found = re.search(r"images (\d+) decoded (\d+) width (\d+)", dom)
    assert found, dom[-2000:]
    n_images, decoded, width = (int(v) for v in found.groups())
    assert n_images >= 5 and decoded == n_images
    assert width <= 1200  # wide tables scroll inside the page; nothing overflows it
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", probe.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.read_bytes()[:8] == PNG and shot.stat().st_size > 20_000  # not a blank page


def test_a_figure_that_fails_is_a_note_and_the_fit_is_saved_first(
    tmp_path, tree, simulated, monkeypatch
):
    sim, em = simulated
    seen = {}

    def broken():
        seen["fit.nc saved before drawing"] = (tmp_path / "fit.nc").exists()
        raise ValueError("Requested 42 subplots, which exceeds rcParams['plot.max_subplots']")

    real = plots.comparison_pages

    def with_a_broken_page(*args, **kwargs):
        return [
            plots.FigurePage("broken.png", "a figure that fails", broken),
            *real(*args, **kwargs),
        ]

    monkeypatch.setattr(plots, "comparison_pages", with_a_broken_page)
    report = write_report(tmp_path, sim.data, em, posterior=tree, comparison=compare(em, tree))
    assert seen == {"fit.nc saved before drawing": True}
    text = report.read_text()
    assert "broken.png (a figure that fails) could not be drawn: ValueError: Requested 42" in text
    assert not (tmp_path / "broken.png").exists()
    assert (tmp_path / "em_trace.png").exists()  # the other figures are drawn
    assert load_fit(tmp_path / "fit.nc").posterior is not None


def test_missing_standard_errors_are_reported_with_their_reason(tmp_path, simulated):
    sim, em = simulated
    k, d = em.means.shape
    se = StandardErrors.missing(k, d, "feature(s) ['c'] are constant")
    report = write_report(tmp_path, sim.data, em, standard_error=se, save=False)
    text = report.read_text()
    assert "Standard errors are missing: feature(s) ['c'] are constant" in text
    assert "| 0 | " in text and " — |" in text  # the SE cells say missing, not nan
    assert "nan" not in text
