"""``python -m benchmarks.memory_probe`` samples a plscope command's memory and writes it (issue 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and glibc's mallinfo2")
def test_probe_writes_the_series_and_the_peak(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    out = tmp_path / "probe.json"
    cmd = [sys.executable, "-m", "benchmarks.memory_probe", str(out), "--version"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "peak RSS (VmHWM)" in proc.stderr
    data = json.loads(out.read_text())
    assert data["vmhwm_mb"] > 0 and data["series"]
    t, rss, used, heaps = data["series"][-1]
    assert rss > 0 and 0 < used <= heaps
