"""The detector report in headless Chromium: loads from disk, no console errors, every figure visible."""

from __future__ import annotations

import shutil

import pytest

from plscope.cli import main

from .test_cli_detector import sim_out, sim_run  # noqa: F401  (module fixtures)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (installed by .ci/run)"),
]
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip


def test_detector_report_in_browser(sim_out):  # noqa: F811
    playwright = pytest.importorskip("playwright.sync_api")
    assert main  # the CLI wrote sim_out
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((sim_out / "report.html").resolve().as_uri())
        page.wait_for_load_state("load")
        assert errors == []
        imgs = page.locator("figure img")
        assert imgs.count() == 6
        for k in range(imgs.count()):
            img = imgs.nth(k)
            img.scroll_into_view_if_needed()
            assert img.is_visible()
            assert img.evaluate("e => e.complete && e.naturalWidth > 100 && e.naturalHeight > 100")
        assert page.locator("#merits tr").count() >= 15
        browser.close()
