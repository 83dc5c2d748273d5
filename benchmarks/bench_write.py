"""Writing the results of one run: the CSV tables, ``curves.parquet`` and the report, timed (issue 16).

Works on a stored :class:`~plscope.results.RunResult` (a pickle), so that the
writing is timed without the minutes of analysis before it:

``python benchmarks/bench_write.py --make-result OUT_FOLDER RESULT.pkl``
    analyse the stored extraction of a ``plscope run`` output folder once
    (:func:`~plscope.pipeline.imaging.analyze_extraction`) and pickle it.
``python benchmarks/bench_write.py RESULT.pkl [--rounds 3]``
    in this process, alternating, ``--rounds`` times: the CSV tables of
    ``_write_results`` written by pandas' ``to_csv`` and by
    :func:`plscope._csv.write_csv` (texts compared: identical, the gzip
    file decompressed); then the whole ``_write_results`` of the tree on
    ``PYTHONPATH`` (CSV, Parquet, ``curves.parquet``, report with
    ``figures/``). CPU seconds of the process (``time.process_time``, the
    least disturbed by other jobs on a shared machine), CPU seconds of the
    report's figure worker processes (read from ``/proc`` as their pool shuts
    down; Linux) and wall seconds.

``python benchmarks/bench_write.py --traces OUT_FOLDER [--old-csv OLD_CSV_PY] [--rounds 3]``
    ``traces.csv.gz`` alone, as ``_write_tables`` writes it
    (``write_csv(traces, path, gzip_level=1)``) from the ``traces.parquet``
    of a ``plscope run`` output folder, alternating with pandas'
    ``to_csv`` (the baseline: ratio of CPU seconds) and, with
    ``--old-csv``, with another copy of ``plscope/_csv.py`` (a leaf module:
    ``git show REV:src/plscope/_csv.py > old.py``). The decompressed texts
    are compared with each other and with the folder's own
    ``traces.csv.gz``.

To compare two trees, run the second form with ``PYTHONPATH`` set to each
tree's ``src`` in turn (the pickle needs the same classes in both).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path


def _make_result(out_folder: str, pickle_path: str) -> None:
    from plscope.pipeline.imaging import analyze_extraction
    from plscope.results import Extraction

    result = analyze_extraction(Extraction.load(out_folder))
    with open(pickle_path, "wb") as fh:
        pickle.dump(result, fh, protocol=5)


def _tables(result) -> dict:
    tables = {
        "particles.csv": result.particles,
        "kinetics.csv": result.kinetics,
        "traces.csv.gz": result.traces,
        "cycles.csv": result.cycles,
    }
    if result.centroid_shift is not None:
        tables["centroid_shift.csv"] = result.centroid_shift
    if result.population is not None:
        tables["switching_efficiency_cycles.csv"] = result.population.se_cycles
    return tables


#: CPU seconds of the worker processes of process pools, read from /proc when a pool shuts down
_WORKER_CPU: list[float] = []


def _count_worker_cpu() -> None:
    """Record the CPU time of a ``ProcessPoolExecutor``'s workers before it shuts down (Linux)."""
    from concurrent.futures import ProcessPoolExecutor

    shutdown = ProcessPoolExecutor.shutdown

    def counted(self, *args, **kwargs):
        tick = os.sysconf("SC_CLK_TCK")
        for pid in list(getattr(self, "_processes", None) or {}):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                _WORKER_CPU.append((int(fields[11]) + int(fields[12])) / tick)  # utime + stime
            except (OSError, IndexError, ValueError):
                pass
        return shutdown(self, *args, **kwargs)

    ProcessPoolExecutor.shutdown = counted  # type: ignore[method-assign]


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _csv_rounds(result, rounds: int, folder: Path) -> dict:
    from plscope._csv import write_csv

    tables = _tables(result)

    def by_pandas(d: Path) -> None:
        for name, t in tables.items():
            comp = {"method": "gzip", "mtime": 0, "compresslevel": 1} if name.endswith(".gz") else None
            t.to_csv(d / name, index=False, compression=comp)

    def by_write_csv(d: Path) -> None:
        for name, t in tables.items():
            write_csv(t, d / name, gzip_level=1 if name.endswith(".gz") else None)

    out: dict = {"pandas": [], "write_csv": []}
    for _ in range(rounds):
        for label, fn in (("pandas", by_pandas), ("write_csv", by_write_csv)):
            (folder / label).mkdir(exist_ok=True)
            out[label].append(_timed(lambda fn=fn, label=label: fn(folder / label)))
            wall, cpu = out[label][-1]
            print(
                f"  CSV tables, {label:9s}: {cpu:6.2f} s CPU {wall:6.2f} s wall (load {os.getloadavg()[0]:.1f})"
            )
    for name in tables:
        a, b = ((folder / label / name).read_bytes() for label in ("pandas", "write_csv"))
        if name.endswith(".gz"):
            a, b = gzip.decompress(a), gzip.decompress(b)
        out.setdefault("identical", {})[name] = a == b
    return out


def _load_module(path: str, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _traces_rounds(out_folder: str, old_csv: str | None, rounds: int) -> dict:
    """``traces.csv.gz`` written by pandas, by ``write_csv`` (and an old copy), alternating; CPU seconds."""
    import numpy as np
    import pandas as pd

    from plscope import _csv

    traces = pd.read_parquet(Path(out_folder) / "traces.parquet")
    print(f"traces of {out_folder}: {traces.shape[0]} rows x {traces.shape[1]} columns")

    def by_pandas(path: Path) -> None:
        traces.to_csv(path, index=False, compression={"method": "gzip", "mtime": 0, "compresslevel": 1})

    writers = {"pandas": by_pandas, "write_csv": lambda p: _csv.write_csv(traces, p, gzip_level=1)}
    if old_csv:
        old = _load_module(old_csv, "_csv_old")
        writers["old write_csv"] = lambda p: old.write_csv(traces, p, gzip_level=1)
    out: dict = {
        "rows": traces.shape[0],
        "cpu_s": {k: [] for k in writers},
        "wall_s": {k: [] for k in writers},
    }
    with tempfile.TemporaryDirectory(prefix="bench-traces-") as tmp:
        for _ in range(rounds):
            for label, fn in writers.items():
                path = Path(tmp) / f"{label.replace(' ', '_')}.csv.gz"
                wall, cpu = _timed(lambda fn=fn, path=path: fn(path))
                out["cpu_s"][label].append(cpu)
                out["wall_s"][label].append(wall)
                print(f"  {label:13s}: {cpu:6.2f} s CPU {wall:6.2f} s wall (load {os.getloadavg()[0]:.1f})")
            out["bytes"] = {
                label: (Path(tmp) / f"{label.replace(' ', '_')}.csv.gz").stat().st_size for label in writers
            }
        texts = {
            label: gzip.decompress((Path(tmp) / f"{label.replace(' ', '_')}.csv.gz").read_bytes())
            for label in writers
        }
    stored = Path(out_folder) / "traces.csv.gz"
    if stored.is_file():
        texts["stored traces.csv.gz"] = gzip.decompress(stored.read_bytes())
    out["identical"] = {label: text == texts["pandas"] for label, text in texts.items()}
    median = {label: float(np.median(v)) for label, v in out["cpu_s"].items()}
    out["ratio_to_pandas"] = {label: median[label] / median["pandas"] for label in writers}
    print("  decompressed text identical to pandas':", out["identical"])
    print(
        "  CPU medians:",
        {k: round(v, 2) for k, v in median.items()},
        "ratio to pandas:",
        {k: round(v, 3) for k, v in out["ratio_to_pandas"].items()},
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("result", nargs="?", help="pickled RunResult")
    ap.add_argument("--make-result", nargs=2, metavar=("OUT_FOLDER", "RESULT_PKL"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-csv", action="store_true", help="time only the whole _write_results")
    ap.add_argument("--provenance", help="provenance.json of the run (drawn in the report)")
    ap.add_argument("--traces", metavar="OUT_FOLDER", help="time traces.csv.gz alone (from traces.parquet)")
    ap.add_argument("--old-csv", metavar="OLD_CSV_PY", help="with --traces: also an old copy of _csv.py")
    args = ap.parse_args(argv)
    if args.make_result:
        _make_result(*args.make_result)
        return 0
    if args.traces:
        print(json.dumps(_traces_rounds(args.traces, args.old_csv, args.rounds)))
        return 0
    if not args.result:
        ap.error("give RESULT.pkl or --make-result")
    from plscope.pipeline.imaging import _write_results

    _count_worker_cpu()

    with open(args.result, "rb") as fh:
        result = pickle.load(fh)
    print(f"tree: {Path(sys.modules['plscope'].__file__).parents[1]}")
    report: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-write-") as tmp:
        if not args.no_csv:
            report["csv"] = _csv_rounds(result, args.rounds, Path(tmp))
            print("  texts identical:", report["csv"]["identical"])
        report["write_results"] = []
        for i in range(args.rounds):
            folder = Path(tmp) / f"out{i}"
            folder.mkdir()
            prov = json.loads(Path(args.provenance).read_text()) if args.provenance else {"inputs": []}
            _WORKER_CPU.clear()
            wall, cpu = _timed(lambda f=folder, p=prov: _write_results(result, f, p))
            workers = sum(_WORKER_CPU)
            report["write_results"].append({"wall_s": wall, "cpu_s": cpu, "worker_cpu_s": workers})
            print(
                f"  _write_results: {cpu:6.2f} s CPU (+ {workers:.2f} s in figure workers) {wall:6.2f} s wall "
                f"(load {os.getloadavg()[0]:.1f})"
            )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
