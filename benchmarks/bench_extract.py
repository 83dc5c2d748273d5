"""Marginal CPU cost per frame of the extraction (drift + traces) against the read's, side by side.

    python -m benchmarks.bench_extract RUN_SHORT RUN_LONG [--baseline OLD_SRC] [--rounds 3]

``RUN_SHORT`` and ``RUN_LONG`` are run folders of ``benchmarks.generate`` with
the same particles and different frame counts (e.g. 2000 and 8000 frames,
``python -m benchmarks --keep --data-dir DIR`` or ``generate.write_run``).
Each measurement is a fresh process (``python -m benchmarks.stages``): the
``extract`` stage (``extract_run_traces`` after the particles, as ``plscope
run`` calls it), the plain tifffile read and plscope's lazy read of the same
file, each timed as CPU (user + system, all threads: the machine is shared,
so CPU is steadier than wall time). With ``--baseline`` the same stage runs
from another checkout's ``src`` too, alternating with this one round by
round. Printed: the median of the rounds and the marginal cost per frame
``(long - short) / (frames_long - frames_short)`` of each, in ms, and its
ratio to the read's (issue 16's target: <= 1.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import tifffile

ROOT = Path(__file__).resolve().parent.parent


def _stage(stage: str, run: Path, src: Path, work: Path) -> dict:
    args = {"movie": str(run / "movie.tif"), "run": str(run), "pixel_size_nm": 100.0, "psf_sigma_nm": 130.0}
    (work / "args.json").write_text(json.dumps(args))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(ROOT)]))
    cmd = [sys.executable, "-m", "benchmarks.stages", stage, str(work / "args.json"), str(work / "out.json")]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads((work / "out.json").read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("short", type=Path)
    p.add_argument("long", type=Path)
    p.add_argument("--baseline", type=Path, help="src folder of the checkout to compare with")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    versions = {"this": ROOT / "src"}
    if a.baseline:
        versions = {"baseline": a.baseline, **versions}
    frames = {r: len(tifffile.TiffFile(r / "movie.tif").pages) for r in (a.short, a.long)}
    cpu: dict[tuple[str, Path], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for i in range(a.rounds):
            for run in (a.short, a.long):
                for what, src in [("read", versions["this"]), ("plscope-read", versions["this"])] + [
                    (f"extract {name}", path) for name, path in versions.items()
                ]:
                    r = _stage(what.split()[0], run, src, work)
                    cpu.setdefault((what, run), []).append(r["cpu_s"])
                    print(
                        f"round {i + 1}: {what:18s} {frames[run]:6d} frames: {r['cpu_s']:.2f} s CPU",
                        flush=True,
                    )
    d_frames = frames[a.long] - frames[a.short]
    med = {k: statistics.median(v) for k, v in cpu.items()}
    read_ms = (med[("read", a.long)] - med[("read", a.short)]) / d_frames * 1e3
    print(
        f"\n| measured (median of {a.rounds}, CPU s) | {frames[a.short]} frames | {frames[a.long]} frames "
        "| marginal ms/frame | x tifffile read |"
    )
    print("|---|---|---|---|---|")
    for what in ["read", "plscope-read"] + [f"extract {n}" for n in versions]:
        s, lg = med[(what, a.short)], med[(what, a.long)]
        ms = (lg - s) / d_frames * 1e3
        print(f"| {what} | {s:.2f} | {lg:.2f} | {ms:.3f} | {ms / read_ms:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
