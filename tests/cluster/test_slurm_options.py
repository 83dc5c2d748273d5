"""The job script `--scheduler slurm` submits: plscope's defaults, and the site's configuration winning.

No Slurm controller is needed: the script is only written, never submitted.
"""

from __future__ import annotations

import sys

import dask
import pytest

pytest.importorskip("dask_jobqueue", reason="--scheduler slurm needs dask-jobqueue (plscope[slurm])")

from plscope.pipeline.batch import _slurm_cluster


def _script(**config) -> str:
    with dask.config.set({f"jobqueue.slurm.{k}": v for k, v in config.items()}):
        cluster = _slurm_cluster()
        try:
            return cluster.job_script()  # reads the configuration again, as scale() does
        finally:
            cluster.close()


def test_defaults_one_single_threaded_worker_per_job_on_this_python():
    script = _script()
    assert "--cpus-per-task=1" in script and "--mem=4G" in script
    assert "--nthreads 1" in script  # a run's graph is synchronous: one thread per worker, as locally
    assert f"{sys.executable} -m distributed.cli.dask_worker" in script


def test_site_configuration_wins():
    script = _script(cores=4, memory="16GiB", queue="gpu", walltime="02:00:00", account="lab")
    for line in ("--cpus-per-task=4", "--mem=16G", "-p gpu", "-t 02:00:00", "-A lab"):
        assert line in script, line
    assert "--nworkers 4" in script and "--nthreads 1" in script  # still one thread per worker process


def test_no_sbatch_is_one_clear_error(tmp_path, monkeypatch, capsys):
    from plscope.cli import main

    (tmp_path / "root" / "run0").mkdir(parents=True)
    (tmp_path / "root" / "run0" / "experiment.toml").write_text("schema = 1\n")  # found; never read
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sbatch: not a Slurm login node
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "root"), "--out", str(out), "--scheduler", "slurm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "plscope: error: --scheduler slurm: sbatch not found (not a Slurm login node?); "
        "the previous index was kept"
    ]
    assert not [p for p in out.iterdir() if not p.name.startswith(".")]  # no index, no run output
