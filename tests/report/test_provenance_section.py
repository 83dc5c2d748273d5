"""The report's provenance section: settings (changed ones highlighted), inputs with checksums,
versions, date and command line, all as recorded (issue 15)."""

from __future__ import annotations

import re

from plscope.config.settings import AnalysisSettings
from plscope.report.provenance import provenance_section_html, settings_rows

PROV = {
    "versions": {"python": "3.11.0", "plscope": "0.9", "numpy": "2.0"},
    "platform": "Linux-x86_64",
    "settings": AnalysisSettings.from_dict({"kinetics": {"model": "mono", "n_bootstrap": 500}}).to_dict(),
    "settings_digest": "d" * 64,
    "inputs": {"/data/run <1>/movie.tif": {"sha256": "a" * 64, "bytes": 1234, "mtime_ns": 1}},
    "started_utc": "2026-01-02T03:04:05+00:00",
    "finished_utc": "2026-01-02T03:05:00+00:00",
    "command_line": ["plscope", "run", "my run", "--out", "out"],
    "reanalyses": [
        {
            "at_utc": "2026-02-01T00:00:00+00:00",
            "command_line": ["plscope", "reanalyze", "out"],
            "changes": {"settings": {"kinetics.model": ["auto", "mono"]}, "summary": {}},
        }
    ],
}


def test_changed_settings_are_highlighted_and_counted():
    rows = {r["key"]: r for r in settings_rows(PROV["settings"])}
    assert rows["kinetics.model"]["changed"] and rows["kinetics.model"]["default"] == "auto"
    assert rows["kinetics.n_bootstrap"]["changed"]
    assert sum(r["changed"] for r in rows.values()) == 2
    assert rows["detection.min_area_px"]["unit"] == "px" and rows["detection.min_area_px"]["doc"]
    text = provenance_section_html(PROV)
    changed = re.findall(r'<tr class="changed"><td class="l"><code>([^<]+)</code>', text)
    assert sorted(changed) == ["kinetics.model", "kinetics.n_bootstrap"]
    assert "2 setting(s) differ from the defaults" in text


def test_inputs_versions_date_and_command_line_are_shown_escaped():
    text = provenance_section_html(PROV)
    assert "/data/run &lt;1&gt;/movie.tif" in text and "a" * 64 in text and ">1234<" in text
    assert "numpy 2.0" in text and "Linux-x86_64" in text
    run_block = re.search(r'<div id="provenance-run">(.*?)</div>', text, re.S).group(1)
    assert "2026-01-02T03:04:05+00:00" in run_block
    assert "plscope run &#39;my run&#39; --out out" in run_block  # shlex-quoted, then HTML-escaped
    assert "re-analysis 1" in run_block and "kinetics.model" in run_block


def test_no_record_gives_defaults_and_says_so():
    text = provenance_section_html(None)
    assert "recorded no analysis settings" in text and 'class="changed"' not in text
    assert "no input files recorded" in text
