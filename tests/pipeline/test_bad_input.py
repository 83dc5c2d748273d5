"""Bad input at the command line: one clear line, non-zero exit, nothing written.

Every test copies the simulated ``small_run`` folder, breaks one thing the
way real run folders get broken, runs ``plscope run`` through
:func:`plscope.cli.main` and checks that

- the exit code is not zero,
- the last line on stderr is ``plscope: error: <file>: <problem>`` naming
  the offending file (and the problem), with no traceback,
- the output folder holds no ``summary.json`` or other result files, and no
  temporary folder is left beside it.

The interrupted-run tests kill a real ``plscope run`` process.
"""

from __future__ import annotations

import glob
import json
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plscope.cli import main
from plscope.pipeline.output import AtomicOutputDir


@pytest.fixture
def run(small_run, tmp_path) -> Path:
    """A private copy of the simulated run folder, to break."""
    src, _ = small_run
    dst = tmp_path / "run"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("ground_truth.json"))
    return dst


def _edit_toml(run: Path, old: str, new: str) -> None:
    path = run / "experiment.toml"
    text = path.read_text()
    assert old in text, f"{old!r} not in experiment.toml"
    path.write_text(text.replace(old, new, 1))


def _edit_daq(run: Path, change) -> None:
    path = run / "daq.csv"
    df = pd.read_csv(path)
    change(df)
    df.to_csv(path, index=False, float_format="%.6g")


def _fails(run: Path, tmp_path: Path, capsys, *, out: Path | None = None) -> tuple[int, str, str]:
    """Run plscope on ``run``; return (exit code, last stderr line, all stderr)."""
    out = tmp_path / "out" if out is None else out
    code = main(["run", str(run), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code != 0
    assert "Traceback" not in err
    assert lines, "nothing on stderr"
    if out.exists() and out.is_dir():
        assert list(out.iterdir()) == [], f"results left in {out}: {list(out.iterdir())}"
    leftovers = [p for p in out.parent.glob(f".{out.name}*")]
    assert leftovers == [], f"temporary folders left: {leftovers}"
    return code, lines[-1], err


def _names(line: str, path: Path) -> str:
    """The problem part of 'plscope: error: <path>: <problem>' (asserts the prefix)."""
    prefix = f"plscope: error: {path}"
    assert line.startswith(prefix), f"{line!r} does not start with {prefix!r}"
    return line[len(prefix) :]


# --------------------------------------------------------------------------
# the movie
# --------------------------------------------------------------------------


def test_truncated_tiff(run, tmp_path, capsys):
    movie = run / "movie.tif"
    movie.write_bytes(movie.read_bytes()[: movie.stat().st_size // 2])
    code, last, _ = _fails(run, tmp_path, capsys)
    assert code == 2
    assert _names(last, movie).startswith(": truncated")


def test_corrupt_tiff(run, tmp_path, capsys):
    movie = run / "movie.tif"
    raw = bytearray(movie.read_bytes())
    raw[8:72] = b"\xff" * 64  # the first IFD overwritten
    movie.write_bytes(bytes(raw))
    code, last, _ = _fails(run, tmp_path, capsys)
    assert code == 2
    assert "header is corrupt" in _names(last, movie)


def test_tiff_pointing_past_its_end(run, tmp_path, capsys):
    movie = run / "movie.tif"
    raw = bytearray(movie.read_bytes())
    struct.pack_into("<I", raw, 4, len(raw) + 1000)  # first IFD offset beyond the file
    movie.write_bytes(bytes(raw))
    _, last, _ = _fails(run, tmp_path, capsys)
    assert "no image data (empty or corrupt TIFF)" in _names(last, movie)


def test_missing_movie_file(run, tmp_path, capsys):
    (run / "movie.tif").unlink()
    _, last, _ = _fails(run, tmp_path, capsys)
    assert "does not exist" in _names(last, run.resolve() / "movie.tif")


def test_movie_that_is_not_an_image(run, tmp_path, capsys):
    shutil.copy(run / "daq.csv", run / "movie.tif")
    _, last, _ = _fails(run, tmp_path, capsys)
    assert "not a TIFF file" in _names(last, run.resolve() / "movie.tif")


# --------------------------------------------------------------------------
# experiment.toml
# --------------------------------------------------------------------------


def test_experiment_toml_not_valid_toml(run, tmp_path, capsys):
    _edit_toml(run, "[field]", "[field")
    _, last, _ = _fails(run, tmp_path, capsys)
    assert "not valid TOML" in _names(last, run / "experiment.toml")


@pytest.mark.parametrize(
    "line, key",
    [
        ("electrode_gap_um = 10.0", "field.electrode_gap_um"),
        ("amplifier_gain = 20.0", "field.amplifier_gain"),
        ('path = "movie.tif"', "movie.path"),
        ('path = "daq.csv"', "daq.path"),
    ],
)
def test_required_key_missing(run, tmp_path, capsys, line, key):
    _edit_toml(run, line, "")
    _, last, _ = _fails(run, tmp_path, capsys)
    assert f"required key '{key}' is missing" in _names(last, run / "experiment.toml")


@pytest.mark.parametrize(
    "old, new, key",
    [
        ("pixel_size_nm = 100.0", "pixel_size_nm = 0.0", "movie.pixel_size_nm"),
        ("pixel_size_nm = 100.0", "pixel_size_nm = -100.0", "movie.pixel_size_nm"),
        ("amplifier_gain = 20.0", "amplifier_gain = 0", "field.amplifier_gain"),
        ("amplifier_gain = 20.0", "amplifier_gain = -20.0", "field.amplifier_gain"),
        ("electrode_gap_um = 10.0", "electrode_gap_um = 0.0", "field.electrode_gap_um"),
        ("electrode_gap_um = 10.0", "electrode_gap_um = -10", "field.electrode_gap_um"),
    ],
)
def test_zero_or_negative_pixel_size_gain_or_gap(run, tmp_path, capsys, old, new, key):
    _edit_toml(run, old, new)
    _, last, _ = _fails(run, tmp_path, capsys)
    value = new.split("=")[1].strip()
    assert f"'{key}' must be a positive number, got {value}" in _names(last, run / "experiment.toml")


def test_wrong_type_in_experiment_toml(run, tmp_path, capsys):
    _edit_toml(run, "pixel_size_nm = 100.0", 'pixel_size_nm = "100 nm"')
    _, last, _ = _fails(run, tmp_path, capsys)
    assert "'movie.pixel_size_nm' must be a number, got '100 nm'" in _names(last, run / "experiment.toml")


# --------------------------------------------------------------------------
# the DAQ log and synchronization
# --------------------------------------------------------------------------


def test_ttl_channel_missing_names_the_channels_that_exist(run, tmp_path, capsys):
    _edit_toml(run, 'camera_ttl = "camera_ttl"', 'camera_ttl = "cam_ttl"')
    _, last, _ = _fails(run, tmp_path, capsys)
    problem = _names(last, run.resolve() / "daq.csv")
    assert "no channel 'cam_ttl'" in problem
    assert "channels are: camera_ttl, fg_voltage, aux_photodiode" in problem


def test_ttl_channel_flat(run, tmp_path, capsys):
    _edit_daq(run, lambda df: df.__setitem__("camera_ttl", 0.0))
    _, last, _ = _fails(run, tmp_path, capsys)
    problem = _names(last, run.resolve() / "daq.csv")
    assert problem.startswith(" channel 'camera_ttl': TTL channel is flat: no TTL edges")


def test_fewer_ttl_edges_than_frames(run, tmp_path, capsys):
    def stop_early(df):  # the DAQ stopped at half the movie
        df.loc[df["time_s"] > df["time_s"].iloc[-1] / 2, "camera_ttl"] = 0.0

    _edit_daq(run, stop_early)
    _, last, _ = _fails(run, tmp_path, capsys)
    problem = _names(last, run.resolve() / "daq.csv")
    assert " TTL edges for 650 frames: the camera TTL does not time every frame" in problem


def test_dropped_frame_refused_when_asked(run, tmp_path, capsys):
    def drop_pulse(df):  # the camera skipped the exposure of slot 300 (no pulse, no frame)
        t0 = df.loc[df["camera_ttl"].diff() > 2.5, "time_s"].to_numpy()[300]
        df.loc[(df["time_s"] >= t0 - 0.01) & (df["time_s"] < t0 + 0.15), "camera_ttl"] = 0.0

    _edit_daq(run, drop_pulse)
    _edit_toml(run, 'voltage = "fg_voltage"', 'voltage = "fg_voltage"\ndropped_frames = "error"')
    _, last, _ = _fails(run, tmp_path, capsys)
    problem = _names(last, run.resolve() / "daq.csv")
    assert "between frames 299 and 300" in problem and "1 dropped frame(s)" in problem


def test_missing_daq_file(run, tmp_path, capsys):
    (run / "daq.csv").unlink()
    _, last, _ = _fails(run, tmp_path, capsys)
    assert "does not exist" in _names(last, run.resolve() / "daq.csv")


def test_daq_file_without_data_rows(run, tmp_path, capsys):
    (run / "daq.csv").write_text("time_s,camera_ttl,fg_voltage\n")
    _, last, _ = _fails(run, tmp_path, capsys)
    assert "has a header but no data rows" in _names(last, run.resolve() / "daq.csv")


@pytest.mark.slow
def test_daq_with_non_numeric_and_empty_rows_is_read_with_a_warning(run, tmp_path, capsys):
    path = run / "daq.csv"
    lines = path.read_text().splitlines()
    for k in (500, 20_000, 90_000):  # a logger hiccup, an empty field, a stray note
        lines[k] = lines[k].replace(",", ",n/a,", 1).rsplit(",", 1)[0]
    lines[60_000] = lines[60_000].rsplit(",", 1)[0] + ","
    lines.insert(70_000, "# operator note: laser power changed")
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    code = main(["run", str(run), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_frames"] == 650 and summary["n_particles"] == 6
    assert any("dropped 5 row(s) with non-numeric or empty fields" in w for w in summary["warnings"]), (
        summary["warnings"]
    )


# --------------------------------------------------------------------------
# the output folder
# --------------------------------------------------------------------------


def test_output_path_that_cannot_be_created(run, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "results"
    _, last, _ = _fails(run, tmp_path, capsys, out=out)
    assert "output folder cannot be created" in _names(last, out)
    assert blocker.read_text() == "not a folder"


def test_output_path_that_is_a_file(run, tmp_path, capsys):
    out = tmp_path / "results.txt"
    out.write_text("precious")
    _, last, _ = _fails(run, tmp_path, capsys, out=out)
    assert "exists and is not a folder" in _names(last, out)
    assert out.read_text() == "precious"


def test_output_folder_with_foreign_files_is_not_touched(run, tmp_path, capsys):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("precious")
    code = main(["run", str(run), "--out", str(out), "--no-progress"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert "not empty and holds no plscope results" in _names(last, out)
    assert [p.name for p in out.iterdir()] == ["chapter1.tex"]


# --------------------------------------------------------------------------
# interrupted runs
# --------------------------------------------------------------------------


def _start(run: Path, out: Path) -> subprocess.Popen:
    # a child of a shell job may inherit an ignored SIGINT: restore the default
    return subprocess.Popen(
        [sys.executable, "-m", "plscope", "run", str(run), "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _kill_during_work(proc: subprocess.Popen, out: Path, sig: int) -> tuple[int, str]:
    deadline = time.monotonic() + 60
    while not glob.glob(str(out / ".plscope-staging-*")):  # analysis under way
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.5)  # well inside the tracking stage (~7 s in all)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_no_results_and_keeps_the_previous_ones(small_run, tmp_path, sig):
    run, _ = small_run
    out = tmp_path / "out"
    with AtomicOutputDir(out) as tmp:  # an earlier complete run
        (tmp / "summary.json").write_text('{"previous": true}')
    code, err = _kill_during_work(_start(run, out), out, sig)
    assert code == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "plscope: interrupted; no partial results were kept"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["summary.json"]
    assert not list(out.glob(".plscope-staging-*"))
    assert json.loads((out / "summary.json").read_text()) == {"previous": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.slow
def test_killed_run_leaves_nothing_that_looks_complete(small_run, tmp_path):
    run, _ = small_run
    out = tmp_path / "out"
    code, _ = _kill_during_work(_start(run, out), out, signal.SIGKILL)
    assert code == -signal.SIGKILL
    # only plscope's marker, lock and a hidden staging folder can remain (no cleanup after SIGKILL);
    # the next command into the same folder removes the staging folder (tests/safety)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".plscope-staging-")) == [
        ".plscope-output.json",
        ".plscope.lock",
    ]
    assert not list(tmp_path.glob("**/summary.json"))
    assert np.all([not p.name.endswith(".csv") for p in tmp_path.glob("*")])
