"""The benchmark suite of issue 16: every stage of ``plscope run`` against the plain read of its file.

Run ``python -m benchmarks`` (full size: 512 x 512 frames; 2000 and 8000
frames with 200 particles, 50 and 1000 particles at 2000 frames) or
``python -m benchmarks --quick`` (128 x 128, small), from the repository
root with plscope importable. Data are rendered by
:mod:`benchmarks.generate` (independent of ``plscope.sim``) into a
temporary folder (``--data-dir`` to choose where; deleted at the end unless
``--keep``). Each stage runs in its own fresh process
(:mod:`benchmarks.stages`) on a warm page cache; the plain read of the same
file runs before and after the stages of each data set and their mean is
the ratio's denominator. The table is printed and written, with the exact
command, the machine's load and the commit, to
``benchmarks/results/suite[-quick].md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"

#: stages run on the base data set, in order (the whole run first: it writes what kinetics/report read)
BASE_STAGES = ("plscope-read", "particles", "drift", "traces", "extract", "run", "kinetics", "report")
STAGE_LABELS = {
    "read": "tifffile read (baseline)",
    "plscope-read": "reading (plscope lazy stack)",
    "particles": "reference, detection, sizes",
    "drift": "drift",
    "traces": "traces pass",
    "extract": "drift + traces as `plscope run` (one pass)",
    "kinetics": "kinetics (from stored extraction)",
    "report": "report.html + figures/",
    "run": "whole `plscope run`",
    "spectra": "spectra: whole `plscope run`",
}


@dataclass
class Sizes:
    shape: tuple[int, int]
    frames: tuple[int, int]  # base, long
    particles: tuple[int, int, int]  # few, base, many
    spectra_frames: int
    fits: int = 2000  # fits per batched method; loops fit a tenth (lmfit) or a quarter (least_squares)


FULL = Sizes((512, 512), (2000, 8000), (50, 200, 1000), 2000, 4000)
QUICK = Sizes((128, 128), (300, 1200), (5, 20, 40), 300, 400)

#: (model, method, fraction of Sizes.fits) of the fit benchmark (benchmarks/fits.py)
FIT_METHODS = (
    ("lorentz", "plscope", 1.0),
    ("lorentz", "least_squares", 0.25),
    ("lorentz", "lmfit", 0.1),
    ("biexp", "batched", 1.0),
    ("biexp", "plscope", 0.1),
    ("biexp", "plscope_lmfit", 0.1),
    ("biexp", "least_squares", 0.25),
    ("biexp", "lmfit", 0.1),
)
FIT_LABELS = {
    ("lorentz", "plscope"): "Lorentzian: plscope batched LM (fit_lorentzians)",
    ("lorentz", "least_squares"): "Lorentzian: scipy least_squares loop",
    ("lorentz", "lmfit"): "Lorentzian: lmfit loop",
    ("biexp", "batched"): "biexponential: plscope batched LM (fit_biexponentials)",
    ("biexp", "plscope"): "biexponential: plscope fit_biexponential loop (compiled MINPACK + checks)",
    ("biexp", "plscope_lmfit"): "biexponential: plscope fit_biexponential loop on lmfit (its reference)",
    ("biexp", "least_squares"): "biexponential: scipy least_squares loop",
    ("biexp", "lmfit"): "biexponential: lmfit Model loop",
}


@dataclass
class Row:
    data: str
    stage: str
    n_frames: int
    seconds: float
    read_s: float
    peak_rss_mb: float
    setup_rss_mb: float | None
    load: float
    extra: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.n_frames / self.seconds if self.seconds > 0 else float("nan")

    @property
    def ratio(self) -> float:
        return self.seconds / self.read_s if self.read_s > 0 else float("nan")


def _child(stage: str, args: dict, work: Path, env: dict) -> dict:
    """Run one stage in a fresh interpreter; returns its result dict."""
    work.mkdir(parents=True, exist_ok=True)
    af, rf = work / f"{stage}.args.json", work / f"{stage}.result.json"
    af.write_text(json.dumps(args))
    rf.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.stages", stage, str(af), str(rf)]
    proc = subprocess.run(cmd, env=env, cwd=ROOT.parent, capture_output=True, text=True)
    if proc.returncode != 0 or not rf.exists():
        raise RuntimeError(f"stage {stage} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(rf.read_text())
    out["load"] = os.getloadavg()[0]
    return out


def _failed(exc: Exception) -> dict:
    """A failed stage: no time, the error's last line in the table."""
    last = str(exc).strip().splitlines()[-2:] if str(exc).strip() else ["?"]
    return {
        "seconds": float("nan"),
        "peak_rss_mb": float("nan"),
        "setup_rss_mb": None,
        "load": os.getloadavg()[0],
        "failed": " / ".join(last),
    }


def _warm(path: Path) -> None:
    """Read a file through once so that its pages are in the page cache."""
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(16 << 20)
        while fh.readinto(buf):
            pass


def _env() -> dict:
    env = dict(os.environ)
    src = ROOT.parent / "src"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT.parent), str(src), env.get("PYTHONPATH")) if p)
    return env


def measure_dataset(
    name: str, run: Path, n_frames: int, stages: tuple[str, ...], work: Path, env: dict, log
) -> list[Row]:
    """Read baseline, the stages, read baseline again; rows with ratios to the mean read."""
    movie = run / "movie.tif"
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    base = {"movie": str(movie), "run": str(run), "out": str(out), "scratch": str(work)}
    base.update(pixel_size_nm=100.0, psf_sigma_nm=130.0)
    _warm(movie)
    reads = [_child("read", base, work, env)]
    results = []
    for stage in stages:
        if stage == "run":
            shutil.rmtree(out, ignore_errors=True)
        _warm(movie)
        log(f"  {name}: {stage} ...")
        try:
            results.append((stage, _child(stage, base, work, env)))
        except RuntimeError as exc:  # recorded as a failed row; the suite goes on
            log(f"    {exc}")
            results.append((stage, _failed(exc)))
            continue
        log(f"    {results[-1][1]['seconds']:.2f} s")
    _warm(movie)
    reads.append(_child("read", base, work, env))
    read_s = sum(r["seconds"] for r in reads) / len(reads)
    rows = [
        Row(
            name,
            "read",
            n_frames,
            read_s,
            read_s,
            max(r["peak_rss_mb"] for r in reads),
            None,
            reads[0]["load"],
            {"reads_s": [r["seconds"] for r in reads]},
        )
    ]
    for stage, r in results:
        extra = {k: v for k, v in r.items() if k not in ("seconds", "peak_rss_mb", "setup_rss_mb", "load")}
        rows.append(
            Row(
                name,
                stage,
                n_frames,
                r["seconds"],
                read_s,
                r["peak_rss_mb"],
                r["setup_rss_mb"],
                r["load"],
                extra,
            )
        )
    return rows


def measure_spectra(run: Path, n_frames: int, work: Path, env: dict, log) -> list[Row]:
    movie = run / "spectra.tif"
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    a = {"movie": str(movie), "run": str(run), "out": str(out)}
    _warm(movie)
    r0 = _child("read", a, work, env)
    log("  spectra: run ...")
    try:
        r = _child("run", a, work, env)
    except RuntimeError as exc:
        log(f"    {exc}")
        r = _failed(exc)
    r1 = _child("read", a, work, env)
    read_s = (r0["seconds"] + r1["seconds"]) / 2
    return [
        Row(
            "spectra",
            "read",
            n_frames,
            read_s,
            read_s,
            max(r0["peak_rss_mb"], r1["peak_rss_mb"]),
            None,
            r0["load"],
        ),
        Row(
            "spectra",
            "spectra",
            n_frames,
            r["seconds"],
            read_s,
            r["peak_rss_mb"],
            r["setup_rss_mb"],
            r["load"],
            {"failed": r["failed"]} if "failed" in r else {},
        ),
    ]


def measure_fits(sizes: Sizes, work: Path, env: dict, log) -> list[dict]:
    rows = []
    for model, method, frac in FIT_METHODS:
        n = max(int(sizes.fits * frac), 10)
        log(f"  fits: {model} {method} x {n} ...")
        try:
            r = _child("fits", {"model": model, "method": method, "n": n}, work, env)
        except RuntimeError as exc:
            log(f"    {exc}")
            continue
        rows.append({"model": model, "method": method, **r})
    for r in rows:
        ref = next((x for x in rows if x["model"] == r["model"] and x["method"] == "lmfit"), None)
        r["x_lmfit"] = r["fits_per_s"] / ref["fits_per_s"] if ref else float("nan")
    return rows


def fits_table(rows: list[dict]) -> str:
    lines = [
        "| fit | fits | s | fits/s | x lmfit | accuracy | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {FIT_LABELS[(r['model'], r['method'])]} | {r['n_fits']} | {_fmt(r['seconds'])} | "
            f"{_fmt(r['fits_per_s'], 1)} | {_fmt(r['x_lmfit'], 1)} | {r['accuracy']:.2g} ({r['accuracy_of']}) "
            f"| {r['load']:.1f} |"
        )
    return "\n".join(lines)


def _fmt(x: float | None, nd: int = 2) -> str:
    if x is None or x != x:
        return ""
    return f"{x:,.{nd}f}".replace(",", " ")


def table(rows: list[Row]) -> str:
    lines = [
        "| data | stage | frames | s | frames/s | x read | peak RSS MB (set-up) | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        setup = f" ({_fmt(r.setup_rss_mb, 0)})" if r.setup_rss_mb else ""
        if "failed" in r.extra:
            lines.append(
                f"| {r.data} | {STAGE_LABELS.get(r.stage, r.stage)} | {r.n_frames} | failed: "
                f"{r.extra['failed'].replace('|', '/')} | | | | {r.load:.1f} |"
            )
            continue
        lines.append(
            f"| {r.data} | {STAGE_LABELS.get(r.stage, r.stage)} | {r.n_frames} | {_fmt(r.seconds)} | "
            f"{_fmt(r.fps, 0)} | {_fmt(r.ratio)} | {_fmt(r.peak_rss_mb, 0)}{setup} | {r.load:.1f} |"
        )
    return "\n".join(lines)


def targets(rows: list[Row], sizes: Sizes) -> list[str]:
    """The issue's targets, computed from the rows (only those measured)."""

    def get(data: str, stage: str) -> Row | None:
        return next((r for r in rows if r.data == data and r.stage == stage), None)

    f0, f1 = sizes.frames
    p0, p1, p2 = sizes.particles
    base, long_ = f"{f0} fr, {p1} p", f"{f1} fr, {p1} p"
    _few, many = f"{f0} fr, {p0} p", f"{f0} fr, {p2} p"
    out = []
    run_long, run_base = get(long_, "run"), get(base, "run")
    if run_long:
        out.append(f"- `plscope run` / read, {long_}: {run_long.ratio:.2f}x (target <= 2x, stretch <= 1.25x)")
    if run_base:
        out.append(f"- `plscope run` / read, {base}: {run_base.ratio:.2f}x")
    if run_long and run_base and f1 != f0:  # one frame count (--frames N,N): no marginal cost
        d_run = run_long.seconds - run_base.seconds
        d_read = run_long.read_s - run_base.read_s
        out.append(
            f"- marginal cost per frame ({f1} minus {f0} frames): run {d_run / (f1 - f0) * 1e3:.3f} ms, "
            f"read {d_read / (f1 - f0) * 1e3:.3f} ms: {d_run / d_read:.2f}x the read's (target <= 1.5x)"
        )
        out.append(
            f"- peak RSS of `plscope run`: {run_base.peak_rss_mb:.0f} MB ({f0} frames), "
            f"{run_long.peak_rss_mb:.0f} MB ({f1} frames): {run_long.peak_rss_mb / run_base.peak_rss_mb - 1:+.1%} "
            "(target <= 1.5 GB and within 10 %)"
        )
    run_many = get(many, "run")
    if run_many and run_base:
        out.append(
            f"- {p2} particles / {p1} particles, `plscope run` time: {run_many.seconds / run_base.seconds:.2f}x "
            "(target <= 1.5x)"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small frames (128 x 128) and few frames")
    p.add_argument("--data-dir", type=Path, help="where to write the generated data (default: a temp folder)")
    p.add_argument("--keep", action="store_true", help="keep the generated data")
    p.add_argument("--shape", help="frame size ROWSxCOLS (overrides the preset)")
    p.add_argument("--frames", help="base,long frame counts (overrides the preset)")
    p.add_argument("--particles", help="few,base,many particle counts (overrides the preset)")
    p.add_argument("--stages", help=f"comma-separated subset of {','.join(BASE_STAGES)}")
    p.add_argument("--no-scaling", action="store_true", help="only the base data set (no scaling rows)")
    p.add_argument("--no-spectra", action="store_true", help="skip the spectra run")
    p.add_argument("--no-fits", action="store_true", help="skip the fit benchmark")
    p.add_argument("--fits", type=int, help="fits per batched method (loops fit fewer)")
    p.add_argument("--fits-only", action="store_true", help="only the fit benchmark (no data sets)")
    p.add_argument("--out", type=Path, help="results file (default benchmarks/results/suite[-quick].md)")
    a = p.parse_args(argv)
    sizes = dataclasses.replace(QUICK if a.quick else FULL)
    if a.shape:
        sizes.shape = tuple(int(v) for v in a.shape.lower().split("x"))
    if a.frames:
        sizes.frames = tuple(int(v) for v in a.frames.split(","))
        sizes.spectra_frames = sizes.frames[0]
    if a.particles:
        sizes.particles = tuple(int(v) for v in a.particles.split(","))
    if a.fits:
        sizes.fits = a.fits
    stages = tuple(a.stages.split(",")) if a.stages else BASE_STAGES
    unknown = set(stages) - set(BASE_STAGES)
    if unknown:
        p.error(f"unknown stage(s) {sorted(unknown)}")
    return run_suite(sizes, stages, a, " ".join(["python -m benchmarks", *(argv or sys.argv[1:])]))


def run_suite(sizes: Sizes, stages: tuple[str, ...], a, command: str) -> int:
    from benchmarks import generate

    env = _env()
    root = Path(tempfile.mkdtemp(prefix="plscope-bench-", dir=a.data_dir))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    f0, f1 = sizes.frames
    p0, p1, p2 = sizes.particles
    datasets = [] if a.fits_only else [(f0, p1, stages)]
    if not (a.no_scaling or a.fits_only):
        datasets += [(f1, p1, ("run",)), (f0, p2, ("run",)), (f0, p0, ("run",))]
    rows: list[Row] = []
    fit_rows: list[dict] = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = a.out or RESULTS / f"suite{'-quick' if a.quick else ''}.md"
    out.parent.mkdir(parents=True, exist_ok=True)

    def save(final: bool) -> str:  # after every data set: a long run that is stopped keeps its rows
        report = render(rows, sizes, command, started, fit_rows)
        out.write_text(report + ("\n" if final else "\n\n(incomplete: the run was still going)\n"))
        return report

    try:
        for n_frames, n_part, st in datasets:
            name = f"{n_frames} fr, {n_part} p"
            log(f"generating {name} ({sizes.shape[0]}x{sizes.shape[1]}) ...")
            t0 = time.perf_counter()
            run = generate.write_run(root / "run", n_frames, n_part, sizes.shape)
            log(f"  {time.perf_counter() - t0:.0f} s")
            rows += measure_dataset(name, run, n_frames, st, root / "work", env, log)
            shutil.rmtree(run)
            save(False)
        if not (a.no_spectra or a.fits_only):
            log("generating spectra ...")
            run = generate.write_spectra_run(root / "spec", sizes.spectra_frames)
            rows += measure_spectra(run, sizes.spectra_frames, root / "work", env, log)
            save(False)
        if not a.no_fits:
            log("fits ...")
            fit_rows = measure_fits(sizes, root / "work", env, log)
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(save(True))
    return 0


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "?"


def render(rows: list[Row], sizes: Sizes, command: str, started: str, fit_rows: list[dict]) -> str:
    head = [
        f"# plscope benchmark suite ({started})",
        "",
        f"Command: `{command}` (commit {_commit()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; `load` is the 1-minute load average when the row ran).",
        f"Frames {sizes.shape[0]}x{sizes.shape[1]} uint16; 'x read' is the stage's time over the mean of "
        "the plain tifffile reads of the same file before and after its stages (warm page cache).",
        "",
        table(rows),
        "",
        "Targets of issue 16:",
        "",
        *targets(rows, sizes),
    ]
    if fit_rows:
        head += [
            "",
            "Fits (benchmarks/fits.py; each method in its own process; target: batched >= 50x lmfit):",
            "",
        ]
        head += [fits_table(fit_rows)]
    return "\n".join(head)
