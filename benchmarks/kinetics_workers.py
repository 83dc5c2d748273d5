"""Kinetics of one run, serial against worker processes (setting ``kinetics.workers``, issue 16).

``python -m benchmarks.kinetics_workers OUT_DIR [--workers 1,2,1,2] [--particles N]``

``OUT_DIR`` is the output folder of a ``plscope run`` (only read). Every
measurement is :func:`plscope.pipeline.imaging.analyze_extraction` of its
stored extraction in a fresh process (so the start of the worker processes
is counted, as in a ``plscope run``), alternating the worker counts given.
Printed per measurement: wall time and CPU time of the analysis in the process, of the
kinetics worker processes and of the fork server that starts them (the
machine is shared: CPU time is what the load disturbs least). At the end
the kinetics tables of all measurements are asserted identical, exactly.
``--particles N`` keeps the first N particles (break-even measurements).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _measure(out_dir: str, workers: str, n_particles: int, table: str) -> dict:
    """One analysis in this process: wall, CPU (self, workers, fork server)."""
    import dataclasses
    import multiprocessing.forkserver

    import psutil

    import plscope.pipeline.imaging as imaging
    from plscope.config.settings import AnalysisSettings
    from plscope.results import Extraction

    ex = Extraction.load(out_dir)
    if n_particles:
        keep = sorted(ex.traces["particle_id"].unique())[:n_particles]
        ex = dataclasses.replace(
            ex,
            traces=ex.traces[ex.traces["particle_id"].isin(keep)],
            particles=ex.particles[ex.particles["particle_id"].isin(keep)],
        )
    worker_cpu = [0.0]
    original = imaging.particle_mapper

    @contextlib.contextmanager
    def counted(*args, **kwargs):
        with original(*args, **kwargs) as mapper:
            try:
                yield mapper
            finally:  # before the pool closes: CPU of its processes
                pool = getattr(mapper, "keywords", {}).get("pool")
                for p in (pool._processes or {}).values() if pool is not None else ():
                    with contextlib.suppress(psutil.Error):
                        c = psutil.Process(p.pid).cpu_times()
                        worker_cpu[0] += c.user + c.system

    imaging.particle_mapper = counted
    settings = AnalysisSettings.from_dict(
        {"kinetics": {"workers": workers if workers == "auto" else int(workers)}}
    )
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    result = imaging.analyze_extraction(ex, settings)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    server_cpu = 0.0
    pid = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    if pid:
        with contextlib.suppress(psutil.Error):
            c = psutil.Process(pid).cpu_times()
            server_cpu = c.user + c.system
    result.kinetics.to_parquet(table)
    return {
        "workers": workers,
        "particles": int(ex.traces["particle_id"].nunique()),
        "wall_s": wall,
        "cpu_self_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        "cpu_workers_s": worker_cpu[0],
        "cpu_forkserver_s": server_cpu,
        "load": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--workers", default="1,2,1,2", help="comma-separated kinetics.workers values, in order")
    ap.add_argument("--particles", type=int, default=0, help="keep the first N particles (0: all)")
    args = ap.parse_args(argv)
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, w in enumerate(args.workers.split(",")):
            table = str(Path(tmp) / f"{i}.parquet")
            code = (
                "import json, sys; from benchmarks.kinetics_workers import _measure; "
                f"print(json.dumps(_measure({args.out_dir!r}, {w!r}, {args.particles}, {table!r})))"
            )
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
            if proc.returncode:
                sys.stderr.write(proc.stderr[-3000:])
                return 1
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                f"workers={r['workers']:>4} particles={r['particles']:>4}: wall {r['wall_s']:7.2f} s, "
                f"CPU {r['cpu_self_s']:7.2f} s + workers {r['cpu_workers_s']:7.2f} s + "
                f"fork server {r['cpu_forkserver_s']:5.2f} s (load {r['load']:.1f})",
                flush=True,
            )
            tables.append(pd.read_parquet(table))
    for t in tables[1:]:
        pd.testing.assert_frame_equal(t, tables[0], check_exact=True)
    print(f"kinetics tables of all {len(tables)} measurements identical (exact)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
