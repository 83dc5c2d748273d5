"""Traces of 200 particles: plscope's streaming pass against trackpy.batch, side by side.

A 512 x 512 x 2000 uint16 movie (1 GB; ``--quick``: 200 frames) of 200
blurred square particles (400-1300 nm, PSF sigma 130 nm, 100 nm pixels) on
a background with a 20 % illumination gradient, shot and read noise, per
frame brightness changes (field-like modulation, blinks) and a 1.5 px stage
drift, is written to a temporary folder as a plain TIFF. Then, each in its
own process (so that peak memory is measured cleanly), on the same file:

- ``plscope``: the tracking stage as the pipeline runs it on the lazy dask
  stack of :func:`plscope.io.open_stack`: reference image, particles
  (detection, residual splitting, sizes), whole-movie drift, and the
  streaming traces pass (drift-following apertures, crosstalk unmixing,
  per-frame centroids and peaks). The traces pass alone is timed too.
- ``trackpy``: ``trackpy.batch`` locating every frame of the same
  memory-mapped stack (diameter 9, ``processes`` = CPU count), which is
  what a trackpy-based analysis needs before it can link and integrate.

Printed: seconds, frames/s, the ratio, and the peak memory of each process:
``ru_maxrss`` (children included for trackpy's worker processes; it counts
the pages of the memory-mapped movie that were touched) and the sampled peak
``RssAnon`` (the memory the method itself allocated).
Results go to ``benchmarks/results/traces.json``.

Run: ``python benchmarks/bench_traces.py [--quick] [--frames N] [--keep]``.
trackpy uses numba when it can import it (``trackpy_engine`` in the output);
put a numba on ``PYTHONPATH`` to compare against trackpy at its fastest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_PARTICLES = 200
SHAPE = (512, 512)
SIGMA_PX = 1.3
RESULTS = Path(__file__).resolve().parent / "results" / "traces.json"


def make_movie(path: Path, n_frames: int, seed: int = 0) -> dict:
    """Write the benchmark movie; returns a small description (positions, sizes)."""
    import tifffile

    from plscope.sim.render import background_image, place_particles
    from plscope.tracking.models import box_profile

    rng = np.random.default_rng(seed)
    sides = rng.uniform(4.0, 13.0, N_PARTICLES)
    x, y = place_particles(sides, SHAPE, rng=rng, clearance_px=6.0, border_px=10.0)
    totals = 200.0 * sides**2 * rng.uniform(0.6, 1.6, N_PARTICLES)
    bg = background_image(SHAPE, 30.0, angle_rad=0.7)
    # per-frame brightness: a slow modulation (field-like) and blinks
    t = np.arange(n_frames)
    factors = 1.0 - 0.4 * (((t // 50) % 2) == 1)[:, None] * rng.uniform(0.5, 1.0, N_PARTICLES)[None, :]
    blink = rng.random((n_frames, N_PARTICLES)) < 0.01
    factors = np.where(blink, 0.3 * factors, factors)
    drift = np.column_stack([1.5 * np.sin(np.pi * t / max(n_frames - 1, 1)), 0.8 * t / max(n_frames - 1, 1)])
    half = (sides / 2 + 5 * SIGMA_PX).astype(int) + 2
    with tifffile.TiffWriter(path, bigtiff=n_frames * SHAPE[0] * SHAPE[1] * 2 > 2**31) as tif:
        for k in range(n_frames):
            lam = bg.copy()
            for i in range(N_PARTICLES):
                cx, cy = x[i] + drift[k, 0], y[i] + drift[k, 1]
                c0, c1 = max(int(cx) - half[i], 0), min(int(cx) + half[i] + 1, SHAPE[1])
                r0, r1 = max(int(cy) - half[i], 0), min(int(cy) + half[i] + 1, SHAPE[0])
                lam[r0:r1, c0:c1] += np.outer(
                    box_profile(np.arange(r0, r1), cy, sides[i], SIGMA_PX),
                    box_profile(np.arange(c0, c1), cx, sides[i], SIGMA_PX),
                ) * (totals[i] * factors[k, i] / sides[i] ** 2)
            frame = rng.poisson(lam) + 100.0 + rng.normal(0.0, 2.0, SHAPE)
            tif.write(
                np.clip(np.rint(frame), 0, 65535).astype(np.uint16),
                contiguous=True,
                photometric="minisblack",
                metadata={"axes": "TYX"},
            )
    return {"n_frames": n_frames, "x_px": x.tolist(), "y_px": y.tolist(), "side_px": sides.tolist()}


class _AnonSampler:
    """Peak anonymous resident memory (``RssAnon``: not the memory-mapped movie's page cache)
    of this process and, optionally, its children, sampled every 20 ms from /proc."""

    def __init__(self, children: bool = False):
        import threading

        self.children = children
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _anon_kb(pid: int | str) -> int:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _pids(self) -> list[int]:
        me = os.getpid()
        pids = [me]
        if self.children:
            for d in os.listdir("/proc"):
                if d.isdigit():
                    try:
                        with open(f"/proc/{d}/stat") as fh:
                            if int(fh.read().rsplit(")", 1)[1].split()[1]) == me:
                                pids.append(int(d))
                    except (OSError, ValueError, IndexError):
                        pass
        return pids

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, sum(self._anon_kb(p) for p in self._pids()))
            self._stop.wait(0.02)

    def __enter__(self) -> _AnonSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024.0


def _peak_rss_mb(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux: kB


def worker_plscope(movie: Path) -> dict:
    from plscope.io.stack import open_stack
    from plscope.tracking import estimate_drift, extract_traces, find_particles, reference_image

    with _AnonSampler() as mem:
        t0 = time.perf_counter()
        stack = open_stack(movie)
        data = stack.data
        ref = reference_image(data)
        particles, labels, _ = find_particles(ref, pixel_size_nm=100.0)
        t1 = time.perf_counter()
        drift = estimate_drift(data, reference=ref)
        t2 = time.perf_counter()
        traces = extract_traces(
            data,
            particles,
            labels=labels,
            drift=drift,
            centroids=True,
            peaks=True,
            psf_margin_sigma=1.5,
            drift_margin_px=0.5,
        )
        t3 = time.perf_counter()
    n_frames = int(data.shape[0])
    return {
        "method": "plscope",
        "n_frames": n_frames,
        "n_particles": int(len(particles)),
        "seconds": t3 - t0,
        "particles_s": t1 - t0,
        "drift_s": t2 - t1,
        "traces_s": t3 - t2,
        "n_rows": int(len(traces)),
        "peak_rss_mb": _peak_rss_mb(),
        "peak_anon_mb": mem.peak_mb,
        "chunk_frames": int(data.chunks[0][0]),
    }


def worker_trackpy(movie: Path, processes: int) -> dict:
    import warnings

    import tifffile
    import trackpy
    from trackpy.try_numba import NUMBA_AVAILABLE

    trackpy.quiet()
    frames = tifffile.memmap(movie)
    with _AnonSampler(children=True) as mem, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        features = trackpy.batch(frames, 9, minmass=500, processes=processes)
        t1 = time.perf_counter()
    return {
        "method": "trackpy.batch",
        "n_frames": int(frames.shape[0]),
        "seconds": t1 - t0,
        "n_features": int(len(features)),
        "features_per_frame": float(len(features) / frames.shape[0]),
        "processes": processes,
        "trackpy_engine": "numba" if NUMBA_AVAILABLE else "python",
        "trackpy_version": trackpy.__version__,
        "peak_rss_mb": max(_peak_rss_mb(), _peak_rss_mb(children=True)),
        "peak_anon_mb": mem.peak_mb,
    }


def run_worker(kind: str, movie: Path, processes: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--movie", str(movie), "--processes", str(processes)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 frames instead of 2000")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="trackpy.batch processes")
    ap.add_argument("--keep", action="store_true", help="keep the movie in the temporary folder")
    ap.add_argument("--worker", choices=["plscope", "trackpy"], help=argparse.SUPPRESS)
    ap.add_argument("--movie", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        res = (
            worker_plscope(args.movie)
            if args.worker == "plscope"
            else worker_trackpy(args.movie, args.processes)
        )
        print(json.dumps(res))
        return 0

    n_frames = args.frames or (200 if args.quick else 2000)
    tmp = Path(tempfile.mkdtemp(prefix="plscope-bench-traces-"))
    movie = tmp / "movie.tif"
    try:
        t0 = time.perf_counter()
        make_movie(movie, n_frames)
        gen_s = time.perf_counter() - t0
        size_gb = movie.stat().st_size / 1e9
        # read once so that both methods start from a warm page cache
        with open(movie, "rb") as fh:
            while fh.read(1 << 24):
                pass
        ours = run_worker("plscope", movie, args.processes)
        theirs = run_worker("trackpy", movie, args.processes)
    finally:
        if not args.keep:
            for p in tmp.iterdir():
                p.unlink()
            tmp.rmdir()
    fps_ours = ours["n_frames"] / ours["seconds"]
    fps_traces = ours["n_frames"] / ours["traces_s"]
    fps_drift = ours["n_frames"] / ours["drift_s"]
    fps_theirs = theirs["n_frames"] / theirs["seconds"]
    rows = [
        (
            "plscope tracking stage (all)",
            ours["seconds"],
            fps_ours,
            ours["peak_rss_mb"],
            ours["peak_anon_mb"],
        ),
        (
            "  of which particles (ref., find, sizes)",
            ours["particles_s"],
            float("nan"),
            float("nan"),
            float("nan"),
        ),
        ("  of which drift (whole movie)", ours["drift_s"], fps_drift, float("nan"), float("nan")),
        ("  of which traces pass", ours["traces_s"], fps_traces, float("nan"), float("nan")),
        (
            f"trackpy.batch ({theirs['trackpy_engine']}, {theirs['processes']} proc.)",
            theirs["seconds"],
            fps_theirs,
            theirs["peak_rss_mb"],
            theirs["peak_anon_mb"],
        ),
    ]
    print(
        f"movie: {n_frames} frames of {SHAPE[0]}x{SHAPE[1]} uint16 ({size_gb:.2f} GB), "
        f"{N_PARTICLES} particles; generated in {gen_s:.0f} s"
    )
    print(f"{'method':<44}{'seconds':>9}{'frames/s':>11}{'peak RSS MB':>13}{'peak anon MB':>14}")
    for name, sec, fps, mem, anon in rows:
        fps_s = f"{fps:11.0f}" if np.isfinite(fps) else " " * 11
        mem_s = f"{mem:13.0f}{anon:14.0f}" if np.isfinite(mem) else ""
        print(f"{name:<44}{sec:9.1f}{fps_s}{mem_s}")
    ratio_all = theirs["seconds"] / ours["seconds"]
    ratio_traces = theirs["seconds"] / ours["traces_s"]
    print(f"ratio trackpy.batch / plscope: {ratio_all:.1f}x (whole stage), {ratio_traces:.1f}x (traces pass)")
    print(
        f"plscope found {ours['n_particles']} particles; trackpy {theirs['features_per_frame']:.0f} features/frame"
    )
    result = {
        "benchmark": "traces",
        "n_frames": n_frames,
        "shape": list(SHAPE),
        "n_particles": N_PARTICLES,
        "movie_gb": size_gb,
        "plscope": ours,
        "trackpy": theirs,
        "ratio_stage": ratio_all,
        "ratio_traces_pass": ratio_traces,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
