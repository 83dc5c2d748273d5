"""The batch index in headless Chromium (issue 15): the table sorts, the plots show, offline, no errors.

The run folders' saved summaries and kinetics tables are hand-made (no
analysis runs), so the test is quick. Screenshot: ``test-artifacts/batch_index.png``
(or $PLSCOPE_TEST_ARTIFACTS).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

from plscope.pipeline.batch import RunOutcome, summary_numbers, write_index
from plscope.pipeline.output import claim_folder

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (installed by .ci/run)"),
]
ARTIFACTS = Path(
    os.environ.get("PLSCOPE_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

#: (run, µ, its 95 % interval, QC verdict, status) of the hand-made runs
RUNS = (
    ("session_a", 2.71e-10, (2.66e-10, 2.82e-10), "ok", "ok"),
    ("session_b", 1.95e-10, (1.70e-10, 2.30e-10), "warn", "ok"),
    ("session_c", 3.40e-10, (3.10e-10, 3.65e-10), "ok", "skipped"),
)


def _summary(mu: float, ci: tuple[float, float], qc: str) -> dict:
    return {
        "sample": f"MAPbBr3, µ {mu:.2e}",
        "n_particles": 8,
        "fields_kV_per_cm": [90.0013, 110.005, 129.998],
        "ion_mobility_cm2_per_Vs": mu,
        "ion_mobility_ci95_cm2_per_Vs": list(ci),
        "diffusion_coefficient_cm2_per_s": mu * 0.0255,
        "qc": {"status": qc, "reasons": ["fewer than 5 used particles per field"] if qc == "warn" else []},
        "warnings": [],
    }


@pytest.fixture
def index(tmp_path):
    out = tmp_path / "out"
    claim_folder(out, "batch")
    outcomes = []
    for i, (name, mu, ci, qc, status) in enumerate(RUNS):
        folder = out / name
        folder.mkdir()
        (folder / "report.html").write_text("<!DOCTYPE html><title>report</title>")
        rows = [
            f"{p},{e},{(0.8 + 0.002 * size) * 130 / e:.3f},0.1,{size},True"
            for p, size in enumerate((500 + 60 * i, 700 + 50 * i, 900 + 40 * i))
            for e in (90.0, 130.0)
        ]
        (folder / "kinetics.csv").write_text(
            "particle_id,field_kV_per_cm,tau_pol_s,tau_pol_err_s,size_nm,used\n" + "\n".join(rows) + "\n"
        )
        numbers = summary_numbers(_summary(mu, ci, qc), folder_name=name)
        outcomes.append(
            RunOutcome(name, f"/r/{name}", str(folder), status, seconds=10.0 + i, numbers=numbers)
        )
    outcomes.append(RunOutcome("broken", "/r/broken", "", "failed", reason="/r/broken/daq.csv: no TTL edges"))
    write_index(outcomes, out, started=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), root=tmp_path / "root")
    return out


def test_index_sorts_shows_its_plots_offline_and_without_errors(index):
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            errors: list[str] = []
            fetched: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: fetched.append(r.url))
            page.goto((index / "index.html").resolve().as_uri())
            page.wait_for_load_state("load")

            def names() -> list[str]:
                return page.locator("#runs tbody tr td:first-child").all_inner_texts()

            assert names() == ["session_a", "session_b", "session_c", "broken"]
            mu = page.locator("#runs thead th", has_text="µ")
            mu.click()
            assert names() == ["session_b", "session_a", "session_c", "broken"]  # no value: last
            assert mu.get_attribute("aria-sort") == "ascending"
            mu.click()
            assert names() == ["session_c", "session_a", "session_b", "broken"]
            page.locator("#runs thead th", has_text="run").first.click()
            assert names() == ["broken", "session_a", "session_b", "session_c"]
            status = page.locator("#runs tbody tr", has_text="session_c").locator("td").nth(3)
            assert status.inner_text() == "skipped (earlier: ok)"
            page.locator("#runs tbody tr", has_text="session_b").locator("summary").click()
            assert page.get_by_text("fewer than 5 used particles per field").is_visible()

            figures = page.locator("figure img")
            assert figures.count() == 2
            for i in range(2):
                img = figures.nth(i)
                img.scroll_into_view_if_needed()
                assert img.evaluate("e => e.complete && e.naturalWidth > 100 && e.naturalHeight > 50")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "batch_index.png"), full_page=True)
            assert errors == []
            assert all(u.startswith(("file:", "data:")) for u in fetched), fetched  # self-contained
        finally:
            browser.close()
    assert (ARTIFACTS / "batch_index.png").stat().st_size > 10_000
