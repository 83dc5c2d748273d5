"""One benchmark stage in a fresh process: ``python -m benchmarks.stages STAGE ARGS.json RESULT.json``.

Each stage does its untimed set-up (imports, and what the stage needs from
the stages before it), then times only its own work and writes
``{"seconds", "peak_rss_mb", "setup_rss_mb", ...}`` to ``RESULT.json``. The
peak resident memory is this process's ``VmHWM`` (set-up included;
``setup_rss_mb`` is the peak before the timed part began).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any


def _rss_mb() -> float:
    """Peak resident memory of this process (``VmHWM``), MB.

    Not ``ru_maxrss``: Linux carries the parent's peak over ``fork`` and keeps it
    across ``exec``, so a child of the suite (which rendered the data) would
    report the suite's own peak. ``VmHWM`` belongs to the new address space.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # elsewhere: kB on Linux


def _cpu_s() -> float:
    """CPU time (user + system) of this process so far, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _start(clock: dict) -> None:
    """Mark the start of the timed part (and the set-up's peak memory)."""
    clock["setup_rss_mb"] = _rss_mb()
    clock["t0"] = time.perf_counter()


def stage_read(a: dict) -> dict:
    """Baseline: the plain sequential tifffile read, page by page (each page read into memory)."""
    import numpy as np
    import tifffile

    c0, t0 = _cpu_s(), time.perf_counter()
    total = 0
    with tifffile.TiffFile(a["movie"]) as tif:
        for page in tif.pages:
            total += int(np.asarray(page.asarray()[::64, ::64], np.int64).sum())
    return {"seconds": time.perf_counter() - t0, "cpu_s": _cpu_s() - c0, "checksum": total}


def _open(a: dict):
    """The stack as ``plscope run`` opens it (default chunk frames, at most 16 MiB per chunk)."""
    from plscope.io.stack import AUTO_CHUNK_BYTES, open_stack

    try:
        return open_stack(a["movie"], max_chunk_bytes=AUTO_CHUNK_BYTES).data
    except TypeError:  # a checkout from before the cap (to compare with)
        return open_stack(a["movie"]).data


def stage_plscope_read(a: dict) -> dict:
    """plscope's lazy reader: every chunk of ``open_stack(...).data`` reduced by dask."""
    c0, t0 = _cpu_s(), time.perf_counter()
    data = _open(a)
    data[:, ::64, ::64].astype("int64").sum().compute()
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_s": _cpu_s() - c0,
        "chunk_frames": int(data.chunks[0][0]),
    }


def _reference(a: dict):
    from plscope.pipeline.settings import AnalysisSettings
    from plscope.tracking import reference_image

    data = _open(a)
    return data, reference_image(data, n_frames=AnalysisSettings().detection.reference_frames)


def _particles(ref, a: dict):
    from plscope.tracking import find_particles

    return find_particles(ref, pixel_size_nm=a["pixel_size_nm"], psf_sigma_nm=a["psf_sigma_nm"])


def stage_particles(a: dict, clock: dict) -> dict:
    """Reference image (first frames), detection, residual splitting and sizes."""
    _start(clock)
    _, ref = _reference(a)
    particles, _, _ = _particles(ref, a)
    return {"seconds": time.perf_counter() - clock["t0"], "n_particles": int(len(particles))}


def stage_drift(a: dict, clock: dict) -> dict:
    """Whole-movie drift registration against the reference."""
    from plscope.tracking import estimate_drift

    data, ref = _reference(a)
    _start(clock)
    estimate_drift(data, reference=ref)
    return {"seconds": time.perf_counter() - clock["t0"]}


def stage_traces(a: dict, clock: dict) -> dict:
    """The streaming traces pass as ``plscope run`` does it (drift given)."""
    from plscope.config.settings import TraceSettings
    from plscope.tracking import estimate_drift, extract_traces

    data, ref = _reference(a)
    particles, labels, _ = _particles(ref, a)
    drift = estimate_drift(data, reference=ref)
    tr = TraceSettings()
    _start(clock)
    traces = extract_traces(
        data,
        particles,
        labels=labels,
        drift=drift,
        reference=ref,
        psf_margin_sigma=tr.psf_margin_sigma,
        drift_margin_px=tr.drift_margin_px,
        centroids=True,
        peaks=True,
    )
    return {"seconds": time.perf_counter() - clock["t0"], "n_rows": int(len(traces))}


def stage_extract(a: dict, clock: dict) -> dict:
    """Drift and traces as ``plscope run`` extracts them (``extract_run_traces``: one pass over the
    stack since issue 16, two before), after the particles; ``cpu_s``: user + system CPU, all threads."""
    from plscope.config.settings import TraceSettings
    from plscope.tracking import extract_run_traces

    data, ref = _reference(a)
    particles, labels, _ = _particles(ref, a)
    _start(clock)
    c0 = _cpu_s()
    traces, _ = extract_run_traces(data, particles, labels=labels, reference=ref, settings=TraceSettings())
    return {"seconds": time.perf_counter() - clock["t0"], "cpu_s": _cpu_s() - c0, "n_rows": int(len(traces))}


def stage_kinetics(a: dict, clock: dict) -> dict:
    """Kinetics, mobility and summary (``analyze_extraction``) from the stored extraction of a run."""
    from plscope.pipeline.imaging import analyze_extraction
    from plscope.results import Extraction

    ex = Extraction.load(a["out"])
    settings = None
    if a.get("kinetics_workers"):  # e.g. 1: serial, all the CPU in this process (bench_kinetics)
        from plscope.config.settings import AnalysisSettings

        settings = AnalysisSettings.from_dict({"kinetics": {"workers": int(a["kinetics_workers"])}})
    _start(clock)
    c0 = _cpu_s()
    result = analyze_extraction(ex, settings) if settings is not None else analyze_extraction(ex)
    seconds = time.perf_counter() - clock["t0"]
    return {"seconds": seconds, "cpu_s": _cpu_s() - c0, "n_rows": int(len(result.kinetics))}


def stage_report(a: dict, clock: dict) -> dict:
    """``report.html`` from an analysed run (figures and page) and ``figures/`` (PNG, SVG, PDF), as ``plscope run``.

    As in ``plscope run``, the figures of a run of 24 particles or more are drawn in two worker
    processes (:mod:`plscope.pipeline.figure_workers`; their start is timed).
    """
    from plscope.pipeline.figure_workers import figure_mapper
    from plscope.pipeline.imaging import analyze_extraction
    from plscope.report import write_report
    from plscope.results import Extraction

    result = analyze_extraction(Extraction.load(a["out"]))
    _start(clock)
    with figure_mapper(len(result.particles), result.settings.kinetics.workers) as mapper:
        names = write_report(
            result,
            Path(a["scratch"]) / "report.html",
            figures_dir=Path(a["scratch"]) / "figures",
            mapper=mapper,
        )
    return {
        "seconds": time.perf_counter() - clock["t0"],
        "n_figure_files": len(names),
        "figure_workers": mapper is not None,
    }


def stage_run(a: dict, clock: dict) -> dict:
    """The whole ``plscope run RUN --out OUT`` (in this process, through ``plscope.cli.main``)."""
    from plscope.cli import main

    _start(clock)
    code = main(["run", a["run"], "--out", a["out"], "--no-progress", "-q"])
    if code != 0:
        raise SystemExit(f"plscope run exited {code}")
    return {"seconds": time.perf_counter() - clock["t0"]}


def stage_fits(a: dict, clock: dict) -> dict:
    """Batched fits against an lmfit loop and scipy least_squares (see :mod:`benchmarks.fits`)."""
    from benchmarks.fits import run_fits

    _start(clock)
    return run_fits(a["model"], a["method"], a["n"], seed=a.get("seed", 0))


def _warm_dask() -> None:
    """dask's first compute imports its scheduler machinery: do it outside the timing."""
    import dask.array as da

    import plscope.io.stack  # noqa: F401

    da.ones(4, chunks=2).sum().compute()


def _preload() -> None:
    """Import what the stages use (plscope imports lazily inside functions) outside the timing."""
    _warm_dask()
    import plscope.cli
    import plscope.pipeline.imaging
    import plscope.report
    import plscope.tracking  # noqa: F401
    from plscope.spectra import fit_lorentzians  # noqa: F401


STAGES = {
    "read": stage_read,
    "plscope-read": stage_plscope_read,
    "particles": stage_particles,
    "drift": stage_drift,
    "traces": stage_traces,
    "extract": stage_extract,
    "kinetics": stage_kinetics,
    "report": stage_report,
    "run": stage_run,
    "fits": stage_fits,
}


def main(argv: list[str]) -> int:
    name, args_file, result_file = argv
    a: dict[str, Any] = json.loads(Path(args_file).read_text())
    fn = STAGES[name]
    clock: dict[str, float] = {}
    if name in ("read", "plscope-read"):
        import numpy  # noqa: F401  imports outside the timing
        import tifffile  # noqa: F401

        if name == "plscope-read":
            _warm_dask()
        setup = _rss_mb()
        out = fn(a)
    else:
        _preload()
        out = fn(a, clock)
        setup = clock.get("setup_rss_mb")
    out["peak_rss_mb"] = _rss_mb()
    out["setup_rss_mb"] = setup
    Path(result_file).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
