"""Smoke test of the benchmark suite (``python -m benchmarks``) at tiny sizes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("tifffile")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    return env


def test_suite_runs_and_prints_the_table(tmp_path):
    out = tmp_path / "suite.md"
    cmd = [sys.executable, "-m", "benchmarks", "--shape", "64x64", "--frames", "240,480"]
    cmd += ["--particles", "1,2,2", "--stages", "plscope-read", "--no-scaling", "--no-spectra", "--no-fits"]
    cmd += ["--data-dir", str(tmp_path), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| data | stage | frames | s | frames/s | x read | peak RSS MB (set-up) | load |" in proc.stdout
    assert "tifffile read (baseline)" in proc.stdout
    assert "reading (plscope lazy stack)" in proc.stdout
    assert out.read_text().startswith("# plscope benchmark suite")
    assert "python -m benchmarks --shape 64x64" in out.read_text()
    # the generated data are deleted afterwards
    assert [p.name for p in tmp_path.iterdir()] == ["suite.md"]


def test_generated_run_folder_is_a_valid_run(tmp_path):
    """The independent generator writes a folder plscope accepts, with the field it declares."""
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import generate
    finally:
        sys.path.remove(str(ROOT))
    from plscope.io import load_experiment, read_daq

    run = generate.write_run(tmp_path / "run", 800, 2, (64, 64))
    cfg = load_experiment(run)
    assert cfg.movie.pixel_size_nm == generate.PIXEL_NM
    daq = read_daq(cfg.resolve(cfg.daq.path), channels=["camera_ttl", "fg_voltage"])
    ttl = daq.channel("camera_ttl") > 2.5
    assert int(np.sum(ttl[1:] & ~ttl[:-1])) == 800  # one rising edge per frame
    volts = daq.channel("fg_voltage")
    field = volts.max() * generate.GAIN / (generate.GAP_UM * 1e-4) / 1e3  # V / cm -> kV/cm
    assert field == pytest.approx(max(generate.FIELDS_KV_PER_CM), rel=1e-4)
