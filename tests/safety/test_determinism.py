"""Determinism: the same input gives byte-identical outputs (issue 13).

Only provenance.json may differ (when and how the command was run), and
plscope's ownership marker (a random id by design) and its lock file.
``summary.json`` carries the stable part of the provenance (versions,
config, settings, input checksums).
"""

from __future__ import annotations

import pytest

from plscope.pipeline.output import LOCK, MARKER

from .helpers import run_cli, snapshot

#: the only files allowed to differ between two runs of the same input
VOLATILE = {"provenance.json", MARKER, LOCK}


def _outputs(folder):
    return {k: v for k, v in snapshot(folder).items() if k not in VOLATILE}


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
