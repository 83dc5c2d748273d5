"""`plscope batch --scheduler slurm` against a real (one-node, local) Slurm controller through dask-jobqueue.

Two small simulated runs are analysed once on the embedded local cluster and
once as Slurm jobs; every table (CSV) and the summary must be identical, and
the work must have been done by Dask workers that Slurm started.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from plscope.cli import main

pytestmark = pytest.mark.slow
pytest.importorskip("dask_jobqueue", reason="--scheduler slurm needs dask-jobqueue (plscope[slurm])")

#: batch.csv columns that differ between two batches by nature (wall time, where the output went)
VARYING = ("seconds", "run_dir", "out_dir")


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "batch.csv", newline="") as fh:
        return {r["run"]: {k: v for k, v in r.items() if k not in VARYING} for r in csv.DictReader(fh)}


def _tables(run_out: Path) -> list[str]:
    return sorted(p.name for p in run_out.iterdir() if p.name.endswith((".csv", ".csv.gz")))


@pytest.fixture(scope="module")
def session(tmp_path_factory, simulate_tiny):
    root = tmp_path_factory.mktemp("slurm-session")
    for i in range(2):  # the tiny run of tests/conftest.py: one level and two cycles
        simulate_tiny(root / f"run{i}", seed=40 + i)
    out = tmp_path_factory.mktemp("slurm-local") / "out"
    assert main(["batch", str(root), "--out", str(out), "--workers", "2", "--no-progress"]) == 0
    return root, out


def test_slurm_batch_gives_the_tables_of_the_local_cluster(slurm_cluster, session, tmp_path):
    root, out_local = session
    out = tmp_path / "out"
    logs = tmp_path / "worker-logs"
    env = {
        **slurm_cluster.env,  # SLURM_CONF: sbatch/scancel talk to the test controller
        # the site configuration a user would put in ~/.config/dask/jobqueue.yaml
        "DASK_JOBQUEUE__SLURM__QUEUE": "debug",
        "DASK_JOBQUEUE__SLURM__MEMORY": "1GiB",
        "DASK_JOBQUEUE__SLURM__WALLTIME": "00:15:00",
        "DASK_JOBQUEUE__SLURM__LOG_DIRECTORY": str(logs),
    }
    cmd = [sys.executable, "-m", "plscope", "batch", str(root), "--out", str(out)]
    cmd += ["--scheduler", "slurm", "--workers", "2", "--no-progress"]
    t0 = time.monotonic()
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}\n{slurm_cluster.log_tail()}"
    print(f"slurm batch: {time.monotonic() - t0:.1f} s")

    # the work was done by Dask workers that Slurm started (one job per --workers)
    worker_logs = sorted(logs.glob("*.err"))
    assert len(worker_logs) == 2, sorted(p.name for p in logs.iterdir())
    assert any("Registered to" in p.read_text() for p in worker_logs)
    assert not list(tmp_path.glob("slurm-*.out"))  # the log directory was honoured
    deadline = time.monotonic() + 60  # generous: a loaded machine (the whole suite beside it) is slow
    while slurm_cluster.jobs() and time.monotonic() < deadline:  # closing the cluster cancels its jobs
        time.sleep(0.5)
    assert slurm_cluster.jobs() == []

    # the same index and the same tables as the local cluster
    assert _rows(out) == _rows(out_local)
    assert {r["status"] for r in _rows(out).values()} == {"ok"}
    for run in ("run0", "run1"):
        a, b = out_local / run, out / run
        assert _tables(b) == _tables(a) and "particles.csv" in _tables(a) and "kinetics.csv" in _tables(a)
        for name in _tables(a):
            pd.testing.assert_frame_equal(pd.read_csv(b / name), pd.read_csv(a / name), check_exact=True)
        sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
        sa.pop("provenance"), sb.pop("provenance")
        assert sb == sa
    assert os.path.exists(out / "index.html")


def test_a_job_slurm_refuses_is_one_clear_error_not_a_hang(slurm_cluster, tmp_path, monkeypatch, capsys):
    import dask

    (tmp_path / "root" / "run0").mkdir(parents=True)
    (tmp_path / "root" / "run0" / "experiment.toml").write_text("schema = 1\n")  # found; never read
    for key in ("SLURM_CONF", "PATH"):
        monkeypatch.setenv(key, slurm_cluster.env[key])
    out = tmp_path / "out"
    with dask.config.set({"jobqueue.slurm.memory": "100TiB"}):  # more than the node has
        code = main(["batch", str(tmp_path / "root"), "--out", str(out), "--scheduler", "slurm"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "plscope: error: --scheduler slurm: Slurm refuses the worker job ("
    )
    assert "the previous index was kept" in err[0]
    assert slurm_cluster.jobs() == []  # nothing was submitted
    assert not [p for p in out.iterdir() if not p.name.startswith(".")]
