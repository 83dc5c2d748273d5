"""`plscope batch`: many runs, one broken, real Dask schedulers, interruption and re-runs."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from plscope.cli import main

pytestmark = pytest.mark.slow

#: plscope's ownership marker and lock file in a batch output folder
OWN = (".plscope-output.json", ".plscope.lock")


def _make_root(simulate_tiny, root: Path, n: int, *, broken: bool) -> Path:
    for i in range(n):
        simulate_tiny(root / f"run{i}", seed=10 + i)
    if broken:
        bad = root / "sub" / "broken"
        simulate_tiny(bad, seed=99)
        (bad / "daq.csv").write_text("time_s,camera_ttl,fg_voltage\n0,0,0\n")  # a DAQ log with no frames
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory, simulate_tiny):
    return _make_root(simulate_tiny, tmp_path_factory.mktemp("batch") / "session", 3, broken=True)


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "batch.csv", newline="") as fh:
        return {r["run"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def embedded(root, tmp_path_factory):
    out = tmp_path_factory.mktemp("emb") / "out"
    code = main(["batch", str(root), "--out", str(out), "--workers", "2", "--no-progress"])
    return code, out


def test_broken_run_is_named_and_the_others_complete(embedded, capfd):
    code, out = embedded
    assert code == 1
    rows = _rows(out)
    assert {r: rows[r]["status"] for r in rows} == {
        "run0": "ok",
        "run1": "ok",
        "run2": "ok",
        "broken": "failed",
    }
    assert "daq.csv" in rows["broken"]["reason"]
    assert not (out / "broken").exists()  # nothing presented as a result
    for r in ("run0", "run1", "run2"):
        s = json.loads((out / r / "summary.json").read_text())
        assert s["n_particles"] == 3 and (out / r / "report.html").exists()
    index = (out / "index.html").read_text()
    assert "broken" in index and "failed" in index and "run0/report.html" in index
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name not in OWN]


def test_distributed_local_cluster_gives_identical_numbers(root, embedded, tmp_path):
    from distributed import LocalCluster

    _, out_emb = embedded
    out = tmp_path / "out"
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1"
    ) as cluster:
        code = main(
            ["batch", str(root), "--out", str(out), "--scheduler", cluster.scheduler_address, "--no-progress"]
        )
    assert code == 1
    for r in ("run0", "run1", "run2"):
        a = pd.read_parquet(out_emb / r / "kinetics.parquet")
        b = pd.read_parquet(out / r / "kinetics.parquet")
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        sa = json.loads((out_emb / r / "summary.json").read_text())
        sb = json.loads((out / r / "summary.json").read_text())
        sa.pop("provenance"), sb.pop("provenance")
        assert sa == sb


def test_rerun_skips_unchanged_and_force_redoes(root, embedded, capsys):
    _, out = embedded
    assert main(["batch", str(root), "--out", str(out), "--workers", "1", "--no-progress"]) == 1
    rows = _rows(out)
    assert [rows[r]["status"] for r in ("run0", "run1", "run2")] == ["skipped"] * 3
    assert "skipped run0: inputs and settings unchanged" in capsys.readouterr().out
    # a changed input is noticed by its checksum
    toml = root / "run1" / "experiment.toml"
    toml.write_text(toml.read_text() + "\n# edited\n")
    assert main(["batch", str(root), "--out", str(out), "--workers", "1", "--no-progress"]) == 1
    rows = _rows(out)
    assert rows["run1"]["status"] == "ok" and rows["run0"]["status"] == "skipped"


def test_killed_batch_resumes_without_redoing_finished_runs(tmp_path, simulate_tiny):
    root = _make_root(simulate_tiny, tmp_path / "session", 3, broken=False)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "plscope",
        "batch",
        str(root),
        "--out",
        str(out),
        "--workers",
        "1",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # a wait, not a speed limit: generous so that a loaded CI machine does not fail it
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None and not list(out.glob("run*/summary.json")):
            time.sleep(0.2)
        assert list(out.glob("run*/summary.json")), "no run finished in time"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert "Traceback" not in err
    finished = sorted(p.parent.name for p in out.glob("run*/summary.json"))
    # every run folder is complete or holds only plscope's hidden marker/staging (a run cut short);
    # nothing half-written looks like a result
    for d in out.iterdir():
        if d.is_dir() and not d.name.startswith("."):
            visible = [p for p in d.iterdir() if not p.name.startswith(".")]
            assert visible == [] or ((d / "summary.json").exists() and (d / "report.html").exists())
    mtimes = {r: (out / r / "summary.json").stat().st_mtime_ns for r in finished}
    assert main(["batch", str(root), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    rows = _rows(out)
    assert all(rows[r]["status"] == "skipped" for r in finished)
    assert all(rows[r]["status"] in ("ok", "skipped") for r in rows) and len(rows) == 3
    assert {r: (out / r / "summary.json").stat().st_mtime_ns for r in finished} == mtimes
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name not in OWN]
