"""The HTML report: self-contained, every figure present and a real PNG."""

from __future__ import annotations

import base64
import re

import pytest

from plscope.pipeline import analyze_imaging
from plscope.report import render_report


@pytest.fixture(scope="module")
def report_html(small_run):
    run, _ = small_run
    return render_report(analyze_imaging(run))


def test_every_figure_is_embedded(report_html):
    ids = re.findall(r'<figure id="([^"]+)"><img alt="[^"]*" src="data:image/png;base64,([^"]+)"', report_html)
    names = [i for i, _ in ids]
    for expected in ("fig-reference", "fig-trace", "fig-tau-size", "fig-tau-field", "fig-se",
                     "fig-velocity", "fig-mobility"):
        assert expected in names
    assert any(n.startswith("fig-cycles-") for n in names)
    for _, data in ids:
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_self_contained(report_html):
    # no external resources: opens from a USB stick with no server
    assert not re.search(r'(src|href)="(http|//|file:)', report_html)
    assert "<script" not in report_html


def test_summary_numbers_shown(report_html):
    assert "ion mobility" in report_html and "diffusion coefficient" in report_html
    table = re.search(r"<table id='summary'>(.*?)</table>", report_html, re.S).group(1)
    assert "particles" in table and "—" not in table.split("ion mobility")[1].split("</tr>")[0]
