"""``python -m benchmarks.compare_outputs``: output folders equal but for the run's times, name and id."""

from __future__ import annotations

import gzip
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


def test_gzip_files_compared_by_their_text(tmp_path):
    old = _folder(tmp_path / "old", "2026-12-05T14:19:59+00:00", "220ed54d")
    new = _folder(tmp_path / "new", "2026-12-05T14:24:45+00:00", "6d99e8a1")
    text = b"frame,intensity\n" + b"".join(b"%d,%d.5\n" % (i, i % 7) for i in range(2000))
    (old / "traces.csv.gz").write_bytes(gzip.compress(text, compresslevel=1, mtime=0))
    (new / "traces.csv.gz").write_bytes(gzip.compress(text, compresslevel=9, mtime=0))
    assert (old / "traces.csv.gz").read_bytes() != (new / "traces.csv.gz").read_bytes()
    assert differences(old, new) == []  # other compression, same text
    (new / "traces.csv.gz").write_bytes(gzip.compress(text + b"1,1.5\n", mtime=0))
    assert differences(old, new) == ["traces.csv.gz: bytes differ"]
