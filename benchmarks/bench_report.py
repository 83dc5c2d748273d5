"""The report stage of ``plscope run`` alone: ``report.html`` and ``figures/`` from a stored result, timed (issue 16).

``python benchmarks/bench_report.py RESULT.pkl [--rounds 3] [--serial]``

``RESULT.pkl`` is a pickled :class:`~plscope.results.RunResult` made by
``python benchmarks/bench_write.py --make-result OUT_FOLDER RESULT.pkl`` (the
stored extraction of a ``plscope run`` output folder, analysed once). Each
round writes the report as ``plscope run`` does (:func:`~plscope.report.write_report`
with ``figures/``; the figures drawn in the two worker processes of
:func:`~plscope.pipeline.figure_workers.figure_mapper`, or with ``--serial``
in this process) and prints the CPU seconds of this process
(``time.process_time``), of the figure worker processes (read from ``/proc``
as their pool shuts down; Linux), the wall seconds and the bytes of
``figures/`` and ``report.html``. CPU seconds are the least disturbed by
other jobs on a shared machine. To compare two trees, alternate runs with
``PYTHONPATH`` set to each tree's ``src`` (the pickle needs the same classes
in both).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root on the path for ``benchmarks``
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_write import _WORKER_CPU, _count_worker_cpu


def _sizes(folder: Path) -> dict[str, int]:
    figs = sorted((folder / "figures").iterdir())
    out = {"report.html": (folder / "report.html").stat().st_size}
    for ext in ("png", "svg", "pdf"):
        out[f"figures/*.{ext}"] = sum(p.stat().st_size for p in figs if p.suffix == f".{ext}")
    return out


def _round(result, folder: Path, serial: bool) -> dict:
    from plscope.pipeline.figure_workers import figure_mapper
    from plscope.report import write_report

    _WORKER_CPU.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    mapping = contextlib.nullcontext(None) if serial else figure_mapper(len(result.particles))
    with mapping as mapper:
        write_report(result, folder / "report.html", figures_dir=folder / "figures", mapper=mapper)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_s": cpu, "worker_cpu_s": sum(_WORKER_CPU), "wall_s": wall, "workers": mapper is not None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("result", help="pickled RunResult (bench_write.py --make-result)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--serial", action="store_true", help="draw the figures in this process")
    args = ap.parse_args(argv)
    _count_worker_cpu()
    with open(args.result, "rb") as fh:
        result = pickle.load(fh)
    print(f"tree: {Path(sys.modules['plscope'].__file__).parents[1]}")
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        for i in range(args.rounds):
            folder = Path(tmp) / f"out{i}"
            folder.mkdir()
            r = _round(result, folder, args.serial)
            r["bytes"] = _sizes(folder)
            rounds.append(r)
            print(
                f"  report: {r['cpu_s']:6.2f} s CPU + {r['worker_cpu_s']:6.2f} s in figure workers = "
                f"{r['cpu_s'] + r['worker_cpu_s']:6.2f} s, {r['wall_s']:6.2f} s wall "
                f"(load {os.getloadavg()[0]:.1f}); bytes {r['bytes']}"
            )
    print(json.dumps(rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
