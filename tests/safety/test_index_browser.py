"""The batch index in headless Chromium with hostile run-folder names (issue 13, "content is data").

Run folders named ``javascript:void(document.title='PWNED')``, with ``#``,
``?``, ``%``, quotes and a ``<script>`` tag: opening the index runs no script
(``document.title`` unchanged, no console error) and every link opens the
report of its own run.
"""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from plscope.pipeline.batch import RunOutcome, run_names, write_index
from plscope.pipeline.output import claim_folder

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (installed by .ci/run)"),
]
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

HOSTILE = (
    "javascript:void(document.title='PWNED')",
    "javascript:alert(1)",
    "a#b",
    "q?x=1&y=%41",
    'it\'s "quoted"',
    "<script>document.title='PWNED'</script>",
    "index.html",
    "plain run",
)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """An index over hostile names; each run folder holds a report.html that names its run."""
    base = tmp_path_factory.mktemp("hostile_index")
    root = base / "root"
    runs = []
    for n in HOSTILE:
        (root / n).mkdir(parents=True)
        runs.append(root / n)
    runs.sort()
    out = base / "out"
    claim_folder(out, "batch")
    names = run_names(runs, root)
    for name, run in zip(names, runs):
        (out / name).mkdir()
        marker = f"REPORT OF {len(run.name)}:{runs.index(run)}"
        (out / name / "report.html").write_text(
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{marker}</title></head><body></body></html>"
        )
    outcomes = [
        RunOutcome(run=n, run_dir=str(r), out_dir=str(out / n), status="ok") for n, r in zip(names, runs)
    ]
    write_index(outcomes, out, started=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), root=root)
    return out, runs


def test_hostile_names_run_no_script_and_every_link_opens_its_report(index):
    playwright = pytest.importorskip("playwright.sync_api")
    out, runs = index
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            dialogs: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto((out / "index.html").resolve().as_uri())
            page.wait_for_load_state("load")
            title = page.title()
            assert title.startswith("plscope batch") and "PWNED" not in title
            links = page.locator("table#runs a")
            assert links.count() == len(runs)
            hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
            assert all(h.startswith("./") and h.endswith("/report.html") for h in hrefs)
            texts = [links.nth(i).inner_text() for i in range(links.count())]
            assert sorted(texts) == sorted(r.name for r in runs)  # names shown as plain text
            for i, text in enumerate(texts):
                run = next(r for r in runs if r.name == text)
                links.nth(i).click()
                page.wait_for_load_state("load")
                assert page.title() == f"REPORT OF {len(run.name)}:{runs.index(run)}", text
                assert page.url.startswith((out.resolve()).as_uri())
                page.go_back()
                page.wait_for_load_state("load")
                assert "PWNED" not in page.title()
            assert errors == [] and dialogs == []
        finally:
            browser.close()
