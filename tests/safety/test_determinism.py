"""Determinism: the same input gives byte-identical outputs (issue 13).

Only provenance.json may differ (when and how the command was run), and
plscope's ownership marker (a random id by design) and its lock file.
``summary.json`` carries the stable part of the provenance (versions,
config, settings, input checksums). The report shows the date and the
command line in one block, ``<div id="provenance-run">``; every other byte
of it must be the same.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from plscope.pipeline.output import LOCK, MARKER

from .helpers import run_cli, snapshot

#: the only files allowed to differ between two runs of the same input
VOLATILE = {"provenance.json", MARKER, LOCK}
#: the report's block of dates and command lines (the only part of report.html that may differ)
RUN_BLOCK = re.compile(r'<div id="provenance-run">.*?</div>', re.S)


def _outputs(folder):
    out = {k: v for k, v in snapshot(folder).items() if k not in VOLATILE}
    report = (folder / "report.html").read_text(encoding="utf-8")
    blocks = RUN_BLOCK.findall(report)
    assert len(blocks) == 1 and "command-line" in blocks[0]
    out["report.html"] = hashlib.sha256(RUN_BLOCK.sub("", report).encode()).hexdigest()
    return out


@pytest.mark.slow
def test_run_twice_gives_byte_identical_outputs(tiny_src, tiny_output, tmp_path, capsys):
    again = tmp_path / "again"
    assert run_cli(["-q", "run", tiny_src, "--out", again, "--no-progress"], capsys)[0] == 0
    first, second = _outputs(tiny_output), _outputs(again)
    assert sorted(first) == sorted(second)
    differ = sorted(k for k in first if first[k] != second[k])
    assert differ == [], f"outputs differ between two runs of the same input: {differ}"
    assert "traces.csv.gz" in first and "summary.json" in first


def test_reanalyze_twice_gives_byte_identical_outputs(tiny_output, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli(["-q", "reanalyze", tiny_output, "--out", a], capsys)[0] == 0
    assert run_cli(["-q", "reanalyze", tiny_output, "--out", b], capsys)[0] == 0
    first, second = _outputs(a), _outputs(b)
    assert sorted(first) == sorted(second)
    assert sorted(k for k in first if first[k] != second[k]) == []
