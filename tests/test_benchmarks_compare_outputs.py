"""``python -m benchmarks.compare_outputs``: output folders equal but for the run's times, name and id."""

from __future__ import annotations

from pathlib import Path

from benchmarks.compare_outputs import differences  # the repository root is on pytest's path


def _folder(root: Path, started: str, marker_id: str) -> Path:
    (root / "figures").mkdir(parents=True)
    (root / "traces.csv").write_text("frame,intensity\n0,1.5\n")
    (root / "figures" / "a.svg").write_text("<svg/>")
    (root / "provenance.json").write_text(f'{{"started_utc": "{started}", "out": "{root}"}}')
    (root / ".plscope-output.json").write_text(f'{{"id": "{marker_id}", "complete": true}}')
    return root


def test_equal_folders_differ_only_in_times_name_and_id(tmp_path):
    old = _folder(tmp_path / "old", "2026-12-05T14:19:59+00:00", "220ed54d")
    new = _folder(tmp_path / "new", "2026-12-05T14:24:45+00:00", "6d99e8a1")
    assert differences(old, new) == []
    (new / "traces.csv").write_text("frame,intensity\n0,1.5000001\n")
    (new / "figures" / "b.svg").write_text("<svg/>")
    (new / "provenance.json").write_text('{"started_utc": "2026-12-05T14:24:45+00:00", "out": "elsewhere"}')
    assert differences(old, new) == [
        "figures/b.svg: only in new",
        "provenance.json: bytes differ",
        "traces.csv: bytes differ",
    ]
    assert differences(old, new, skip=("traces.csv", "figures/b.svg", "provenance.json")) == []
