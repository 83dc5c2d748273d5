"""Run ``plscope run`` on a real image as a movie-only run folder, in a child process.

The child reports its own peak resident memory (``resource.getrusage``), so
the measurement is not mixed with the test process or other children.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

#: ../shared/data/real beside the repository (as in tests/conftest.py)
REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"

_CHILD = r"""
import json, resource, sys
from plscope.cli import main
try:
    rc = main(sys.argv[1:])
finally:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    sys.stderr.write("\n@@PEAK_MB@@ %.1f\n" % peak_mb)
sys.exit(rc)
"""


def movie_only_run(run_dir: Path, movie: Path | np.ndarray, *, pixel_size_nm: float = 100.0) -> Path:
    """A run folder with only ``[movie]``: a real file referenced in place, or an array as TIFF."""
    import tifffile

    run_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(movie, np.ndarray):
        arr = movie if movie.ndim == 3 else movie[None]
        tifffile.imwrite(run_dir / "movie.tif", arr)
        path = "movie.tif"
    else:
        path = str(Path(movie).resolve())
    (run_dir / "experiment.toml").write_text(
        'schema = 1\n\n[sample]\nname = "real data conformance"\ntemperature_K = 296.15\n\n'
        f"[movie]\npath = {json.dumps(path)}\npixel_size_nm = {pixel_size_nm}\n"
    )
    return run_dir


def run_plscope(run_dir: Path, out_dir: Path, timeout_s: float = 900.0) -> dict:
    """``plscope run`` in a child process: return code, stderr, peak memory (MB)."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, "run", str(run_dir), "--out", str(out_dir), "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout_s,
    )
    peak = float("nan")
    lines = []
    for line in proc.stderr.splitlines():
        if line.startswith("@@PEAK_MB@@"):
            peak = float(line.split()[1])
        else:
            lines.append(line)
    return {"rc": proc.returncode, "stderr": "\n".join(lines), "stdout": proc.stdout, "peak_mb": peak}
