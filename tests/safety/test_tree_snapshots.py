"""Nothing the user owns changes: a tree snapshot (checksums) before and after every command.

Every command that writes (run, reanalyze --out, simulate, calibrate --out,
batch, detector) is pointed at: the run folder itself, its parent (the
session), a folder holding user files and a stray summary.json, and a batch
output holding user files. Each must refuse in one line (exit 2), or, where
plscope may write (a batch over its own batch output), keep every user file.
"""

from __future__ import annotations

import shutil

import pytest

from plscope.pipeline.output import claim_folder

from .helpers import last_line, run_cli, snapshot


@pytest.fixture
def world(tiny_run, tiny_output, tmp_path):
    """session/run (a real run folder), user/ (notes + stray summary.json), batchout/ (a batch output + notes)."""
    session = tiny_run.parent
    (session / "session_notes.txt").write_text("mine")
    user = tmp_path / "user"
    user.mkdir()
    (user / "summary.json").write_text('{"my": "summary"}')
    (user / "annotations.txt").write_text("mine")
    batchout = tmp_path / "batchout"
    claim_folder(batchout, "batch")
    (batchout / "notes.txt").write_text("mine")
    results = tmp_path / "results"
    shutil.copytree(tiny_output, results)
    lamp = tmp_path / "lamp.csv"
    lamp.write_text("pixel,counts\n" + "".join(f"{i},{100 + (i % 50)}\n" for i in range(256)))
    lines = tmp_path / "lines.csv"
    lines.write_text("wavelength_nm\n500\n520\n")
    file_in = {  # calibrate --out names a file: one the user owns in each target folder
        tiny_run: tiny_run / "experiment.toml",
        session: session / "session_notes.txt",
        user: user / "summary.json",
        batchout: batchout / "notes.txt",
    }
    return {"run": tiny_run, "session": session, "user": user, "batchout": batchout, "results": results,
            "lamp": lamp, "lines": lines, "root": tmp_path, "file_in": file_in}  # fmt: skip


COMMANDS = {
    "run": lambda w, out: ["run", w["run"], "--out", out, "--no-progress"],
    "reanalyze --out": lambda w, out: ["reanalyze", w["results"], "--out", out],
    "simulate": lambda w, out: ["simulate", out, "--particles", "2", "--cycles", "1"],
    "calibrate --out": lambda w, out: [
        "calibrate",
        w["lamp"],
        "--lines",
        w["lines"],
        "--out",
        w["file_in"][out],
    ],
    "batch": lambda w, out: ["batch", w["session"], "--out", out, "--no-progress"],
    "detector": lambda w, out: ["detector", w["run"], "--out", out],
}
TARGETS = ("run", "session", "user", "batchout")


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_with_out_at_user_data_changes_nothing(world, command, target, capsys):
    if command == "batch" and target == "batchout":
        pytest.skip("plscope's own batch output: see test_batch_over_its_own_output_keeps_user_files")
    before = snapshot(world["root"])
    args = COMMANDS[command](world, world[target])
    code, _, err = run_cli(args, capsys)
    assert code == 2, err
    assert last_line(err).startswith("plscope: error: ")
    assert snapshot(world["root"]) == before


@pytest.mark.slow
def test_batch_over_its_own_output_keeps_user_files(world, tiny_src, capsys):
    root = world["root"] / "one"
    shutil.copytree(tiny_src, root / "r")
    outside = snapshot(world["session"])
    code, _, _ = run_cli(
        ["-q", "batch", root, "--out", world["batchout"], "--no-progress", "--workers", "1"], capsys
    )
    assert code == 0
    after = snapshot(world["batchout"])
    assert (world["batchout"] / "notes.txt").read_text() == "mine"
    assert "index.html" in after and "batch.csv" in after and "r/summary.json" in after
    assert snapshot(world["session"]) == outside
