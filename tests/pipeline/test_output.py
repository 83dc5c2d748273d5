"""Atomic output folders: complete results or nothing."""

import json

import numpy as np
import pytest

from plscope.errors import RunFolderError
from plscope.pipeline.output import AtomicOutputDir, write_json


def test_success_moves_into_place(tmp_path):
    out = tmp_path / "res"
    with AtomicOutputDir(out) as tmp:
        (tmp / "summary.json").write_text("{}")
        assert not (out / "summary.json").exists()  # nothing looks complete before the end
    assert (out / "summary.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["res"]
    assert sorted(p.name for p in out.iterdir()) == [".plscope-output.json", ".plscope.lock", "summary.json"]


def test_failure_leaves_nothing(tmp_path):
    out = tmp_path / "res"
    with pytest.raises(KeyError):
        with AtomicOutputDir(out) as tmp:
            (tmp / "summary.json").write_text("{}")
            raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_previous_complete_results(tmp_path):
    out = tmp_path / "res"
    with AtomicOutputDir(out) as tmp:
        (tmp / "summary.json").write_text('{"old": true}')
    with pytest.raises(RuntimeError):
        with AtomicOutputDir(out) as tmp:
            (tmp / "summary.json").write_text('{"old": false}')
            raise RuntimeError
    assert json.loads((out / "summary.json").read_text()) == {"old": True}
    with AtomicOutputDir(out) as tmp:
        (tmp / "summary.json").write_text('{"old": false}')
    assert json.loads((out / "summary.json").read_text()) == {"old": False}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]


def test_refuses_foreign_nonempty_folder(tmp_path):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.docx").write_text("precious")
    with pytest.raises(RunFolderError, match="not empty"):
        with AtomicOutputDir(out):
            pass
    assert (out / "chapter1.docx").read_text() == "precious"


def test_unwritable_output_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunFolderError, match="cannot be created"):
        with AtomicOutputDir(blocker / "sub" / "out"):
            pass


def test_write_json_nan_is_null(tmp_path):
    write_json(tmp_path / "a.json", {"x": np.float64("nan"), "y": np.int64(3), "z": [np.inf, 1.5]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None, "y": 3, "z": [None, 1.5]}
