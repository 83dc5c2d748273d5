"""Ownership, not guesswork: plscope deletes or replaces only what it can prove it wrote (issue 13).

Each test names the case of the issue it covers. The refusals happen before
any analysis, so most of these tests are fast; a tree snapshot (checksums)
proves that nothing of the user's changed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from plscope.errors import RunFolderError
from plscope.pipeline.output import MARKER, AtomicOutputDir, _FolderLock, read_marker

from .helpers import last_line, run_cli, snapshot

# --------------------------------------------------------------------------
# `run --out` over inputs
# --------------------------------------------------------------------------


def test_run_out_is_the_run_folder_with_a_stray_summary_is_refused(tiny_run, capsys):
    (tiny_run / "summary.json").write_text("{}")  # echo '{}' > R/summary.json
    before = snapshot(tiny_run)
    code, _, err = run_cli(["run", tiny_run, "--out", tiny_run, "--no-progress"], capsys)
    assert code == 2
    assert last_line(err).startswith(f"plscope: error: {tiny_run}: output folder is or lies inside the input")
    assert snapshot(tiny_run) == before


def test_run_out_is_the_parent_session_folder_is_refused(tiny_run, capsys):
    session = tiny_run.parent
    (session / "summary.json").write_text("{}")
    shutil.copytree(tiny_run, session / "sibling")
    before = snapshot(session)
    code, _, err = run_cli(["run", tiny_run, "--out", session, "--no-progress"], capsys)
    assert code == 2
    assert "output folder contains the input" in last_line(err)
    assert snapshot(session) == before


def test_run_out_inside_the_run_folder_is_refused(tiny_run, capsys):
    before = snapshot(tiny_run)
    code, _, err = run_cli(["run", tiny_run, "--out", tiny_run / "results", "--no-progress"], capsys)
    assert code == 2 and "inside the input" in last_line(err)
    assert snapshot(tiny_run) == before


def test_stray_summary_json_without_marker_is_refused_naming_the_files(tiny_run, tmp_path, capsys):
    out = tmp_path / "looks_like_output"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    code, _, err = run_cli(["run", tiny_run, "--out", out, "--no-progress"], capsys)
    line = last_line(err)
    assert code == 2
    assert "holds no plscope results" in line and "notes.txt, summary.json" in line
    assert snapshot(out) == before


def test_output_path_that_is_a_symlink_is_refused(tiny_run, tmp_path, capsys):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    code, _, err = run_cli(["run", tiny_run, "--out", tmp_path / "link", "--no-progress"], capsys)
    assert code == 2 and "symbolic link" in last_line(err)
    assert list(real.iterdir()) == []


# --------------------------------------------------------------------------
# re-runs keep the user's files; only manifest files are replaced or deleted
# --------------------------------------------------------------------------


def test_rerun_keeps_files_the_user_added_and_removes_only_stale_files_of_ours(tmp_path):
    out = tmp_path / "res"
    with AtomicOutputDir(out) as tmp:
        (tmp / "summary.json").write_text('{"n": 1}')
        (tmp / "old_only.csv").write_text("ours")
    (out / "annotations.txt").write_text("user notes")
    with AtomicOutputDir(out) as tmp:
        (tmp / "summary.json").write_text('{"n": 2}')
    assert (out / "annotations.txt").read_text() == "user notes"
    assert not (out / "old_only.csv").exists()  # ours, no longer written
    assert json.loads((out / "summary.json").read_text()) == {"n": 2}
    assert read_marker(out)["files"] == ["summary.json"]


def test_rerun_refuses_when_a_user_file_holds_the_name_of_a_new_result(tmp_path):
    out = tmp_path / "res"
    with AtomicOutputDir(out) as tmp:
        (tmp / "summary.json").write_text("{}")
    (out / "report.html").write_text("the user's own page")
    with pytest.raises(RunFolderError, match="did not write are in the way \\(report.html\\)"):
        with AtomicOutputDir(out) as tmp:
            (tmp / "summary.json").write_text("{}")
            (tmp / "report.html").write_text("ours")
    assert (out / "report.html").read_text() == "the user's own page"


@pytest.mark.slow
def test_rerun_of_plscope_run_keeps_annotations_txt(tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(["-q", "run", tiny_run, "--out", out, "--no-progress"], capsys)[0] == 0
    (out / "annotations.txt").write_text("particle 2 looks odd")
    assert run_cli(["-q", "run", tiny_run, "--out", out, "--no-progress"], capsys)[0] == 0
    assert (out / "annotations.txt").read_text() == "particle 2 looks odd"
    assert not list(out.glob(".plscope-staging-*"))


def test_reanalyze_keeps_annotations_txt(tiny_output, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(tiny_output, out)
    (out / "annotations.txt").write_text("keep me")
    code, _, _ = run_cli(["-q", "reanalyze", out], capsys)
    assert code == 0
    assert (out / "annotations.txt").read_text() == "keep me"


def test_reanalyze_out_writes_side_by_side_and_only_reads_the_source(tiny_output, tmp_path, capsys):
    src = tmp_path / "out"
    shutil.copytree(tiny_output, src)
    before = snapshot(src)
    code, _, _ = run_cli(["-q", "reanalyze", src, "--out", tmp_path / "again"], capsys)
    assert code == 0
    assert snapshot(src) == before
    assert (tmp_path / "again" / "summary.json").is_file()
    assert read_marker(tmp_path / "again")["kind"] == "run"


def test_reanalyze_out_inside_the_source_is_refused(tiny_output, tmp_path, capsys):
    src = tmp_path / "out"
    shutil.copytree(tiny_output, src)
    before = snapshot(src)
    code, _, err = run_cli(["reanalyze", src, "--out", src / "sub"], capsys)
    assert code == 2 and "inside the input" in last_line(err)
    assert snapshot(src) == before


def test_reanalyze_in_place_of_a_folder_without_marker_is_refused(tiny_output, tmp_path, capsys):
    src = tmp_path / "out"
    shutil.copytree(tiny_output, src)
    (src / MARKER).unlink()
    before = snapshot(src)
    code, _, err = run_cli(["reanalyze", src], capsys)
    assert code == 2 and "holds no plscope results" in last_line(err)
    assert snapshot(src) == before


def test_reanalyze_never_copies_the_target_of_a_symlinked_calibration_json(tiny_output, tmp_path, capsys):
    src = tmp_path / "out"
    shutil.copytree(tiny_output, src)
    secret = tmp_path / "secret.txt"
    secret.write_text("ssh key")
    (src / "calibration.json").symlink_to(secret)
    code, _, err = run_cli(["reanalyze", src, "--out", tmp_path / "again"], capsys)
    assert code == 2
    assert last_line(err) == (
        f"plscope: error: {src / 'calibration.json'}: is a symbolic link; "
        "plscope re-analyses only files it wrote (not followed)"
    )
    assert not (tmp_path / "again").exists()
    assert secret.read_text() == "ssh key"


# --------------------------------------------------------------------------
# simulate, calibrate
# --------------------------------------------------------------------------


def test_simulate_over_a_real_run_folder_is_refused(tiny_run, capsys):
    before = snapshot(tiny_run)
    code, _, err = run_cli(["simulate", tiny_run, "--particles", "2", "--cycles", "1"], capsys)
    assert code == 2 and "holds no plscope results" in last_line(err) and "movie.tif" in last_line(err)
    assert snapshot(tiny_run) == before


def test_run_out_over_a_simulated_run_is_refused(tiny_run, tmp_path, capsys):
    sim = tmp_path / "sim"
    sim.mkdir()
    (sim / MARKER).write_text(
        json.dumps({"plscope_output": 1, "id": "x", "kind": "simulate", "files": [], "complete": True})
    )
    code, _, err = run_cli(["run", tiny_run, "--out", sim, "--no-progress"], capsys)
    assert code == 2 and "holds plscope simulate output, not run output" in last_line(err)


def _lamp_files(tmp_path: Path) -> tuple[Path, Path]:
    import numpy as np

    px = np.arange(512)
    lines = [500.0, 520.0, 545.0, 580.0]
    wl = 480.0 + 0.2 * px
    counts = 100 + sum(5000 * np.exp(-0.5 * ((wl - w) / 0.4) ** 2) for w in lines)
    lamp = tmp_path / "lamp.csv"
    lamp.write_text("pixel,counts\n" + "".join(f"{p},{c:.1f}\n" for p, c in zip(px, counts)))
    known = tmp_path / "lines.csv"
    known.write_text("wavelength_nm\n" + "".join(f"{w}\n" for w in lines))
    return lamp, known


def test_calibrate_out_onto_the_lamp_file_is_refused(tmp_path, capsys):
    lamp, known = _lamp_files(tmp_path)
    before = snapshot(tmp_path)
    code, _, err = run_cli(["calibrate", lamp, "--lines", known, "--out", lamp, "--guess=480,0.2"], capsys)
    assert code == 2 and last_line(err).startswith(f"plscope: error: {lamp}: is an input of this command")
    assert snapshot(tmp_path) == before


def test_calibrate_out_onto_a_file_plscope_did_not_write_is_refused(tmp_path, capsys):
    lamp, known = _lamp_files(tmp_path)
    other = tmp_path / "results.json"
    other.write_text('{"mine": 1}')
    code, _, err = run_cli(["calibrate", lamp, "--lines", known, "--out", other, "--guess=480,0.2"], capsys)
    assert code == 2 and "not a calibration file written by plscope" in last_line(err)
    assert other.read_text() == '{"mine": 1}'


def test_calibrate_replaces_its_own_calibration_file(tmp_path, capsys):
    lamp, known = _lamp_files(tmp_path)
    out = tmp_path / "cal.json"
    args = ["-q", "calibrate", lamp, "--lines", known, "--out", out, "--guess=480,0.2"]
    assert run_cli(args, capsys)[0] == 0
    first = out.read_bytes()
    assert run_cli(args, capsys)[0] == 0
    assert out.read_bytes() == first  # deterministic: the same inputs give the same bytes


# --------------------------------------------------------------------------
# concurrency and kill -9 leftovers
# --------------------------------------------------------------------------


def test_concurrent_command_on_one_output_is_refused_by_the_lock(tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    with AtomicOutputDir(out) as tmp:
        (tmp / "summary.json").write_text("{}")
    lock = _FolderLock(out)
    lock.acquire()  # another plscope command at work (flock: per open file, also within one process)
    try:
        before = snapshot(out)
        code, _, err = run_cli(["run", tiny_run, "--out", out, "--no-progress"], capsys)
        assert code == 2 and "another plscope command is writing this output folder" in last_line(err)
        assert snapshot(out) == before
    finally:
        lock.release()


def test_kill_9_leftovers_are_cleaned_by_the_next_command_only_if_marked_ours(tmp_path):
    out = tmp_path / "out"
    with AtomicOutputDir(out) as tmp:
        (tmp / "summary.json").write_text("{}")
    stale = out / ".plscope-staging-12345-deadbeef"  # as a killed command leaves it
    stale.mkdir()
    (stale / MARKER).write_text(
        json.dumps({"plscope_output": 1, "id": "y", "kind": "staging", "files": [], "complete": False})
    )
    (stale / "traces.csv.gz").write_bytes(b"half")
    foreign = out / ".plscope-staging-not-ours"  # same name pattern, no marker: the user's
    foreign.mkdir()
    (foreign / "keep.txt").write_text("keep")
    with AtomicOutputDir(out) as tmp:
        (tmp / "summary.json").write_text("{}")
    assert not stale.exists()
    assert (foreign / "keep.txt").read_text() == "keep"


def test_failure_in_a_fresh_folder_leaves_no_trace(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with AtomicOutputDir(out):
            raise RuntimeError
    assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuntimeError):
        with AtomicOutputDir(empty):
            raise RuntimeError
    assert list(empty.iterdir()) == []


def test_enospc_while_moving_results_into_place_is_one_line_and_keeps_user_files(tmp_path, monkeypatch):
    import errno

    out = tmp_path / "out"
    with AtomicOutputDir(out) as tmp:
        (tmp / "summary.json").write_text("{}")
    (out / "annotations.txt").write_text("mine")
    real_replace = os.replace

    def full_disk(src, dst):
        if Path(dst).name == "report.html":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(RunFolderError, match="results cannot be moved into place: No space left on device"):
        with AtomicOutputDir(out) as tmp:
            (tmp / "summary.json").write_text("{}")
            (tmp / "report.html").write_text("x")
    monkeypatch.setattr(os, "replace", real_replace)
    assert (out / "annotations.txt").read_text() == "mine"
    assert not (out / "summary.json").exists()  # nothing looks complete
    assert read_marker(out)["complete"] is False
    with AtomicOutputDir(out) as tmp:  # the next run repairs it
        (tmp / "summary.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "annotations.txt",
        "summary.json",
    ]


@pytest.mark.slow
def test_kill_9_during_a_run_then_the_next_run_cleans_up(tiny_run, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "plscope", "run", str(tiny_run), "--out", str(out), "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not list(out.glob(".plscope-staging-*")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert list(out.glob(".plscope-staging-*")) and not (out / "summary.json").exists()
    (out / "annotations.txt").write_text("added while the folder was broken")
    code = subprocess.run(
        [sys.executable, "-m", "plscope", "-q", "run", str(tiny_run), "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
    ).returncode
    assert code == 0
    assert not list(out.glob(".plscope-staging-*"))
    assert (out / "summary.json").is_file() and read_marker(out)["complete"] is True
    assert (out / "annotations.txt").read_text() == "added while the folder was broken"
