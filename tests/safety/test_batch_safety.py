"""A batch that accounts for every run folder, keeps what is not its own and treats names as data (issue 13).

Fast tests call the discovery, the naming and the index writer directly
(or stop before a cluster starts); the end-to-end batch is marked slow.
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import os
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest

from plscope.cli import main
from plscope.errors import RunFolderError
from plscope.pipeline import batch as batch_mod
from plscope.pipeline.batch import RunOutcome, csv_safe, discover_runs, run_names, write_index
from plscope.pipeline.output import MARKER, _FolderLock, claim_folder, read_marker

from .helpers import last_line, run_cli, snapshot

HOSTILE = (
    "javascript:void(document.title='PWNED')",
    "a#b?c=%41",
    "index.html",
    "x\"><script>document.title='PWNED'</script>",
    '=HYPERLINK("http://evil")',
)


def _fake_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "experiment.toml").write_text("# a run folder\n")
    return folder


# --------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------


def test_run_names_a_x_b_x_and_a__x_give_three_unique_reversible_folders(tmp_path):
    runs = [_fake_run(tmp_path / p) for p in ("a/x", "b/x", "a__x")]
    names = run_names(sorted(runs), tmp_path)
    assert len(set(names)) == 3
    assert sorted(unquote(n) for n in names) == ["a/x", "a__x", "b/x"]


def test_run_folder_named_index_html_or_batch_csv_gets_its_own_output_folder(tmp_path):
    runs = [_fake_run(tmp_path / n) for n in ("index.html", "Batch.CSV", "%41")]
    names = run_names(runs, tmp_path)
    assert "index.html" not in names and "Batch.CSV" not in names
    assert [unquote(n) for n in names] == ["index.html", "Batch.CSV", "%41"]


def test_hostile_names_are_unique_and_reversible(tmp_path):
    runs = sorted(_fake_run(tmp_path / n) for n in HOSTILE)
    names = run_names(runs, tmp_path)
    assert [unquote(n) for n in names] == [r.name for r in runs]
    assert len(set(names)) == len(names)


# --------------------------------------------------------------------------
# discovery: nothing skipped silently
# --------------------------------------------------------------------------


def test_symlinked_run_folder_is_reported_as_failed_not_followed(tmp_path):
    root = tmp_path / "root"
    _fake_run(root / "real")
    target = _fake_run(tmp_path / "elsewhere")
    (root / "linked").symlink_to(target)
    runs, problems = discover_runs(root)
    assert runs == [root / "real"]
    assert [(p.name, "not followed" in why) for p, why in problems] == [("linked", True)]


def test_unreadable_folder_is_reported_as_failed(tmp_path, monkeypatch):
    root = tmp_path / "root"
    _fake_run(root / "ok")
    locked = _fake_run(root / "locked")
    real_scandir = os.scandir

    def scandir(path="."):  # chmod 000 does not stop root: refuse like the kernel would
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    runs, problems = discover_runs(root)
    assert runs == [root / "ok"]
    assert problems == [(locked, "folder cannot be read: Permission denied; not searched")]


# --------------------------------------------------------------------------
# refusals before a cluster starts
# --------------------------------------------------------------------------


def _previous_batch(out: Path) -> dict[str, str]:
    claim_folder(out, "batch")
    write_index(
        [RunOutcome(run="r", run_dir="/x/r", out_dir=str(out / "r"), status="ok")],
        out,
        started=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        root=Path("/x"),
    )
    (out / "my_notes.txt").write_text("keep")
    lock = _FolderLock(out)  # as the previous batch left it: its (empty) lock file
    lock.acquire()
    lock.release()
    return snapshot(out)


def test_scheduler_not_a_url_is_one_line_exit_2_and_keeps_the_previous_index(tmp_path, capsys):
    _fake_run(tmp_path / "root" / "r")
    out = tmp_path / "out"
    before = _previous_batch(out)
    code, _, err = run_cli(["batch", tmp_path / "root", "--out", out, "--scheduler", "not a url"], capsys)
    assert code == 2
    assert last_line(err).startswith(
        "plscope: error: --scheduler: expected local, slurm or a scheduler address"
    )
    assert len(err.strip().splitlines()) == 1
    assert snapshot(out) == before


def test_cluster_that_fails_to_start_keeps_the_previous_index(tmp_path, capsys, monkeypatch):
    _fake_run(tmp_path / "root" / "r")
    out = tmp_path / "out"
    before = _previous_batch(out)

    def boom(self):
        raise RuntimeError("no ports left")

    monkeypatch.setattr(batch_mod._ClusterContext, "_start", boom)
    code, _, err = run_cli(["batch", tmp_path / "root", "--out", out, "--no-progress"], capsys)
    assert code == 2
    assert "could not start: RuntimeError: no ports left; the previous index was kept" in last_line(err)
    assert snapshot(out) == before


def test_workers_minus_one_is_refused(tmp_path, capsys):
    _fake_run(tmp_path / "root" / "r")
    code, _, err = run_cli(["batch", tmp_path / "root", "--out", tmp_path / "o", "--workers", "-1"], capsys)
    assert code == 2 and "--workers" in last_line(err) and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_batch_out_with_user_files_and_no_marker_is_refused(tmp_path, capsys):
    _fake_run(tmp_path / "root" / "r")
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_text("my homepage")
    (out / ".hidden.partial-1").mkdir()  # looks like an old temporary folder; not ours
    before = snapshot(out)
    code, _, err = run_cli(["batch", tmp_path / "root", "--out", out], capsys)
    assert code == 2 and "holds no plscope results" in last_line(err) and "index.html" in last_line(err)
    assert snapshot(out) == before


def test_batch_out_that_is_the_root_run_folder_is_refused(tmp_path, capsys):
    root = _fake_run(tmp_path / "root")
    code, _, err = run_cli(["batch", root, "--out", root / "results"], capsys)
    assert code == 2 and "inside the input" in last_line(err)
    assert sorted(p.name for p in root.iterdir()) == ["experiment.toml"]


def test_second_batch_on_the_same_output_is_refused_by_the_lock(tmp_path, capsys):
    _fake_run(tmp_path / "root" / "r")
    out = tmp_path / "out"
    before = _previous_batch(out)
    lock = _FolderLock(out)
    lock.acquire()  # the first batch at work
    try:
        code, _, err = run_cli(["batch", tmp_path / "root", "--out", out, "--no-progress"], capsys)
    finally:
        lock.release()
    assert code == 2 and "another plscope command is writing this batch output folder" in last_line(err)
    assert snapshot(out) == before


# --------------------------------------------------------------------------
# the index: names are data
# --------------------------------------------------------------------------


def test_csv_cells_starting_with_a_formula_character_are_neutralized(tmp_path):
    out = tmp_path / "out"
    claim_folder(out, "batch")
    outcomes = [
        RunOutcome(run=n, run_dir=f"/r/{n}", out_dir="", status="failed", reason=r)
        for n, r in (("=1+1", "+cmd"), ("@SUM(A1)", "-2"), ("plain", "ok"))
    ]
    write_index(outcomes, out, started=dt.datetime.now(dt.UTC), root=tmp_path)
    with open(out / "batch.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for key in ("run", "reason", "run_dir"):
            assert not row[key].startswith(("=", "+", "-", "@")), row
    assert [r["run"] for r in rows] == ["'=1+1", "'@SUM(A1)", "plain"]
    assert csv_safe(-2.5) == -2.5  # numbers stay numbers


def test_index_links_are_relative_url_encoded_and_escaped(tmp_path):
    out = tmp_path / "out"
    claim_folder(out, "batch")
    runs = sorted(_fake_run(tmp_path / "root" / n) for n in HOSTILE)
    names = run_names(runs, tmp_path / "root")
    outcomes = [RunOutcome(run=n, run_dir=str(r), out_dir="", status="ok") for n, r in zip(names, runs)]
    write_index(outcomes, out, started=dt.datetime.now(dt.UTC), root=tmp_path / "root")
    page = (out / "index.html").read_text()
    assert "<script>" not in page and "javascript:" not in page.split("<body>")[1].split("href=")[1][:20]
    assert 'href="./javascript%3Avoid%28document.title%3D%27PWNED%27%29/report.html"' in page
    assert 'href="./a%23b%3Fc%3D%252541/report.html"' in page
    assert read_marker(out)["files"] == ["batch.csv", "index.html"]


def test_full_disk_during_the_index_write_is_one_line_and_keeps_the_previous_index(tmp_path, monkeypatch):
    out = tmp_path / "out"
    before = _previous_batch(out)
    real_replace = os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(RunFolderError, match="batch.csv: cannot be written: No space left on device"):
        write_index([], out, started=dt.datetime.now(dt.UTC), root=tmp_path)
    monkeypatch.setattr(os, "replace", real_replace)
    assert snapshot(out) == before


# --------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_batch(tiny_src, tmp_path_factory):
    """A real batch over run folders named a/x, b/x, a__x, index.html and javascript:..., one symlinked."""
    base = tmp_path_factory.mktemp("hostile")
    root = base / "root"
    for rel in ("a/x", "b/x", "a__x", "index.html", HOSTILE[0]):
        shutil.copytree(tiny_src, root / rel)
    (root / "link").symlink_to(root / "a__x")
    out = base / "out"
    out.mkdir()
    code = main(["-q", "batch", str(root), "--out", str(out), "--workers", "2", "--no-progress"])
    return code, root, out


@pytest.mark.slow
def test_batch_accounts_for_every_run_folder(hostile_batch):
    code, root, out = hostile_batch
    assert code == 1  # the symlink is reported as failed
    with open(out / "batch.csv", newline="") as fh:
        rows = {unquote(r["run"]): r for r in csv.DictReader(fh)}
    assert {k: r["status"] for k, r in rows.items()} == {
        "a/x": "ok",
        "b/x": "ok",
        "a__x": "ok",
        "index.html": "ok",
        HOSTILE[0]: "ok",
        "link": "failed",
    }
    outputs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(outputs) == 5 and all((out / n / "summary.json").is_file() for n in outputs)
    assert (out / "index.html").is_file() and not (out / "index.html").is_dir()


@pytest.mark.slow
def test_interrupted_batch_is_written_as_interrupted_listing_the_runs_not_reached(tiny_src, tmp_path):
    root = tmp_path / "root"
    for i in range(3):
        shutil.copytree(tiny_src, root / f"r{i}")
    out = tmp_path / "out"

    def stop_after_first(outcome):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch_mod.run_batch(root, out, workers=1, progress=False, on_outcome=stop_after_first)
    with open(out / "batch.csv", newline="") as fh:
        rows = {r["run"]: r["status"] for r in csv.DictReader(fh)}
    # the first run is ok; a run the worker finished while the cluster closed is ok too (its result is
    # committed: "finished after the batch was interrupted"), the others are not reached
    visible = {p.parent.name for p in out.glob("*/summary.json")}
    assert set(rows) == {"r0", "r1", "r2"} and 1 <= len(visible) <= 2
    assert {run for run, status in rows.items() if status == "ok"} == visible
    assert {run for run, status in rows.items() if status != "ok"} == {"r0", "r1", "r2"} - visible
    page = (out / "index.html").read_text()
    assert "INTERRUPTED" in page and f"{3 - len(visible)} run(s) not reached" in page
    # runs cut short hold no visible result (a killed worker's staging is removed by the next batch)
    assert all(status == "not reached" for run, status in rows.items() if run not in visible)
    assert MARKER in os.listdir(out)


def test_a_run_finished_after_the_interruption_is_listed_with_its_result(small_output, tmp_path):
    """The index accounts for what the batch leaves on disk: a result committed after the batch
    started is 'ok' with its numbers; an earlier batch's result, or none, is 'not reached'."""
    import json

    out = tmp_path / "r1"
    shutil.copytree(small_output, out)
    begun = dt.datetime.fromisoformat(json.loads((out / "provenance.json").read_text())["started_utc"])
    late = batch_mod.unfinished_outcome(tmp_path / "run", "r1", out, begun + dt.timedelta(microseconds=999))
    assert late.status == "ok" and late.reason == "finished after the batch was interrupted"
    assert late.numbers and late.numbers == batch_mod._saved_numbers(out / "summary.json", "run")
    earlier = batch_mod.unfinished_outcome(tmp_path / "run", "r1", out, begun + dt.timedelta(seconds=1))
    assert earlier.status == "not reached" and not earlier.numbers
    (out / "summary.json").unlink()
    assert batch_mod.unfinished_outcome(tmp_path / "run", "r1", out, begun).status == "not reached"
    empty = batch_mod.unfinished_outcome(tmp_path / "run", "r2", tmp_path / "nothing", begun)
    assert empty.status == "not reached" and empty.reason == "batch interrupted before this run finished"
