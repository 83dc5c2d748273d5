"""Benchmark: `plscope batch` of 8 simulated runs on 1 vs 2 Dask worker processes.

Both batches run in this one invocation, side by side, on the same inputs
(each with --force so nothing is skipped); the figure of merit is the
speed-up ratio, which is robust to the +-30 % noise of these machines.

    python benchmarks/bench_batch.py [--quick] [--runs 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from plscope.pipeline.batch import run_batch
from plscope.sim import ImagingSimParams, simulate_imaging_run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="small runs (a smoke test of the benchmark)")
    args = ap.parse_args(argv)
    params = ImagingSimParams(fields_kV_per_cm=(110.0, 130.0), cycles_per_level=3)
    if args.quick:
        params = ImagingSimParams(
            n_particles=4, image_shape=(80, 80), fields_kV_per_cm=(130.0,), cycles_per_level=2, period_s=24.0
        )
    with tempfile.TemporaryDirectory(prefix="plscope-bench-batch-") as tmp:
        root = Path(tmp) / "session"
        t0 = time.perf_counter()
        for i in range(args.runs):
            simulate_imaging_run(root / f"run{i:02d}", params, seed=100 + i)
        frames = params.n_frames * args.runs
        print(
            f"simulated {args.runs} runs ({frames} frames of {params.image_shape}) in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        times = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            res = run_batch(root, Path(tmp) / f"out{workers}", workers=workers, force=True, progress=False)
            times[workers] = time.perf_counter() - t0
            assert res.n_failed == 0, [o.reason for o in res.outcomes if o.status == "failed"]
    speedup = times[1] / times[2]
    rows = [("1 worker", times[1], frames / times[1]), ("2 workers", times[2], frames / times[2])]
    print(f"\n{'scheduler':<12}{'wall (s)':>10}{'frames/s':>10}")
    for name, t, fps in rows:
        print(f"{name:<12}{t:>10.1f}{fps:>10.0f}")
    print(f"speed-up 2 vs 1 workers: {speedup:.2f}x (cores: {os.cpu_count()})")
    out = Path(__file__).parent / "results" / "batch.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "runs": args.runs,
                "frames_per_run": params.n_frames,
                "quick": args.quick,
                "wall_s": {"1": times[1], "2": times[2]},
                "speedup": speedup,
                "cpu_count": os.cpu_count(),
                "python": sys.version.split()[0],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
