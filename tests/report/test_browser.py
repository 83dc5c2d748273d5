"""The report and the batch index in a real headless browser (Chromium).

They must load from disk with no console errors, and every figure must be
visible. Screenshots go to ``test-artifacts/`` (or $PLSCOPE_TEST_ARTIFACTS).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from plscope.pipeline.batch import RunOutcome, write_index

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (installed by .ci/run)"),
]
ARTIFACTS = Path(
    os.environ.get("PLSCOPE_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def _open(browser, path: Path, shot: str, requests: list[str] | None = None):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    if requests is not None:
        page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    return page, errors


@pytest.fixture(scope="module")
def report(small_output, tmp_path_factory):
    """A copy of the shared ``plscope run`` of small_run, as ``<tmp>/run`` (the batch index is written beside it)."""
    out = tmp_path_factory.mktemp("browser") / "run"
    shutil.copytree(small_output, out)
    return out


def test_report_loads_and_every_figure_is_visible(browser, report):
    page, errors = _open(browser, report / "report.html", "report.png")
    assert errors == []
    figures = page.locator("figure img")
    n = figures.count()
    assert n >= 8
    for i in range(n):
        img = figures.nth(i)
        img.scroll_into_view_if_needed()
        assert img.is_visible()
        assert img.evaluate("e => e.complete && e.naturalWidth > 100 && e.naturalHeight > 100")
        box = img.bounding_box()
        assert box["width"] > 200 and box["height"] > 100
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


def test_index_loads_and_links_to_the_reports(browser, report):
    out = report.parent
    outcomes = [
        RunOutcome(
            run="run",
            run_dir="x",
            out_dir=str(report),
            status="ok",
            seconds=1.0,
            numbers={"n_particles": 6, "ion_mobility_cm2_per_Vs": 2.5e-10},
        ),
        RunOutcome(
            run="bad",
            run_dir="y",
            out_dir=str(out / "bad"),
            status="failed",
            reason="y/movie.tif: not a TIFF file",
        ),
    ]
    write_index(outcomes, out, started=dt.datetime.now(dt.UTC), root=out)
    page, errors = _open(browser, out / "index.html", "index.png")
    assert errors == []
    assert page.locator("#runs tr").count() == 3
    link = page.locator("a[href='./run/report.html']")  # links are relative ./… (issue 13)
    assert link.is_visible()
    link.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("run/report.html")
    assert page.locator("figure img").first.is_visible()


def test_report_gallery_has_every_particle_and_works_offline(browser, report):
    requests: list[str] = []
    page, errors = _open(browser, report / "report.html", "report-full.png", requests)
    assert errors == []
    # offline: the page asks for nothing but itself (figures and thumbnails are data: URIs)
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert len([u for u in requests if u.startswith("file:")]) == 1
    particles = pd.read_csv(report / "particles.csv")
    cards = page.locator("#gallery-cards .card")
    assert cards.count() == len(particles) > 0
    ids = sorted(int(cards.nth(i).get_attribute("data-pid")) for i in range(cards.count()))
    assert ids == sorted(particles["particle_id"])
    for i in range(cards.count()):
        card = cards.nth(i)
        assert card.locator("img.thumb").evaluate("e => e.complete && e.naturalWidth > 0")
        assert card.locator("svg.trace polyline").count() == 1
    excluded = particles["excluded"].notna() & (particles["excluded"].astype(str) != "")
    assert page.locator("#gallery-cards .card.excluded").count() == int(excluded.sum())
    page.select_option("#gallery-filter", "excluded")
    assert page.locator("#gallery-cards .card:visible").count() == int(excluded.sum())
    assert re.match(rf"{int(excluded.sum())} of {len(particles)} shown", page.inner_text("#gallery-count"))
    page.select_option("#gallery-filter", "")
    gallery = page.locator("#gallery")
    gallery.scroll_into_view_if_needed()
    gallery.screenshot(path=str(ARTIFACTS / "report-gallery.png"))


def _column(page, table: str, col: int) -> list[str]:
    return page.eval_on_selector_all(
        f"#{table} tbody tr",
        f"rows => rows.filter(r => r.style.display !== 'none').map(r => r.cells[{col}].getAttribute('data-sort'))",
    )


def test_report_tables_sort_on_a_header_click_and_filter(browser, report):
    page, errors = _open(browser, report / "report.html", "report.png")
    heads = page.locator("#kinetics-table thead th")
    names = [heads.nth(i).get_attribute("title") for i in range(heads.count())]
    col = names.index("tau_pol_s")
    heads.nth(col).click()
    up = [float(v) for v in _column(page, "kinetics-table", col) if v]
    assert up == sorted(up) and len(up) > 2
    heads.nth(col).click()
    down = [float(v) for v in _column(page, "kinetics-table", col) if v]
    assert down == sorted(up, reverse=True)
    assert heads.nth(col).get_attribute("aria-sort") == "descending"
    # the numbers are the saved ones (data-sort holds the saved value)
    saved = pd.read_csv(report / "kinetics.csv")["tau_pol_s"].dropna()
    assert sorted(down) == sorted(saved.tolist())
    # filter: rows of one particle
    pid = int(pd.read_csv(report / "kinetics.csv")["particle_id"].iloc[0])
    page.fill("input.table-filter[data-table='particles-table']", "zzz-no-such-text")
    assert page.locator("#particles-table tbody tr:visible").count() == 0
    page.fill("input.table-filter[data-table='particles-table']", "")
    assert page.locator("#particles-table tbody tr:visible").count() == len(
        pd.read_csv(report / "particles.csv")
    )
    p_heads = page.locator("#particles-table thead th")
    p_heads.nth(0).click()
    p_heads.nth(0).click()
    ids = [float(v) for v in _column(page, "particles-table", 0)]
    assert ids == sorted(ids, reverse=True) and pid in ids
    page.locator("#kinetics-table-section").screenshot(path=str(ARTIFACTS / "report-tables-sorted.png"))
    assert errors == []
