"""Benchmark: reading a >= 4 GB BigTIFF chunk by chunk, plscope vs tifffile.

One invocation generates a BigTIFF stack (512x512 uint16 frames; 8704
frames = 4.25 GiB by default) in a temporary folder under /tmp, reads it
with each reader in its own fresh subprocess (so that each peak resident
memory, VmHWM, is its own), cold (the file's pages evicted from the page
cache with posix_fadvise) and warm, alternating the readers, and deletes
the file at the end. Every reader does the same light work per chunk (a
strided checksum, which also proves they read the same pixels):

- ``tifffile pages``: ``for page in TiffFile(path).pages: page.asarray()``,
  the plain sequential tifffile read (the baseline of the issue);
- ``tifffile chunks``: ``TiffFile.asarray(key=range(a, a + 64))``;
- ``tifffile imread``: ``tifffile.imread(path)``, the whole file at once
  (fast, but needs the whole stack in memory; skipped when RAM is short);
- ``plscope 1 thread`` / ``plscope 2 threads``: ``open_stack(path).data``
  (64-frame chunks), reduced by dask with the synchronous and the threaded
  scheduler; ``plscope auto 2 thr``: ``chunk_frames="auto"`` (16 MiB chunks,
  32 frames here), threaded.

    python benchmarks/bench_read.py [--quick] [--size-gib 4.25] [--repeats 2]

Prints a table and writes benchmarks/results/read.json. Throughput ratios
(plscope / tifffile pages) from the same run are the figure of merit: these
machines vary by +-30 % between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FRAME_SHAPE = (512, 512)
CHUNK = 64
METHODS = (
    "tifffile pages",
    "tifffile chunks",
    "tifffile imread",
    "plscope 1 thread",
    "plscope 2 threads",
    "plscope auto 2 thr",
)


# --------------------------------------------------------------------------
# child: one reader, one pass
# --------------------------------------------------------------------------


def _consume(block: np.ndarray) -> int:
    """The same light work for every reader: a strided checksum of the chunk."""
    return int(block[..., ::8, ::8].sum(dtype=np.int64))


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _child(method: str, path: str) -> None:
    import tifffile

    if method.startswith("plscope"):  # imports and dask's first-use set-up are not the read
        import dask
        import dask.array as da

        from plscope.io import open_stack

        da.ones((4, 4), chunks=2).sum().compute(scheduler="threads")
    base_rss = _rss_mb()
    t0 = time.perf_counter()
    total, frames = 0, 0
    if method == "tifffile pages":
        with tifffile.TiffFile(path) as tif:
            for page in tif.pages:
                total += _consume(page.asarray())
                frames += 1
    elif method == "tifffile chunks":
        with tifffile.TiffFile(path) as tif:
            n = len(tif.pages)
            for a in range(0, n, CHUNK):
                block = tif.asarray(key=range(a, min(n, a + CHUNK)), maxworkers=1)
                total += _consume(block)
                frames += block.shape[0]
    elif method == "tifffile imread":
        data = tifffile.imread(path, maxworkers=1)
        total, frames = _consume(data), data.shape[0]
        del data
    else:
        scheduler = "synchronous" if method == "plscope 1 thread" else "threads"
        stack = open_stack(path, chunk_frames="auto" if "auto" in method else CHUNK)
        sums = stack.data[:, ::8, ::8].sum(axis=(1, 2), dtype=np.int64)
        with dask.config.set(scheduler=scheduler, num_workers=2):
            total = int(sums.compute().sum())
        frames = stack.n_frames
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "method": method,
                "seconds": seconds,
                "frames": frames,
                "checksum": total,
                "peak_rss_mb": _peak_rss_mb(),
                "rss_after_imports_mb": base_rss,
            }
        )
    )


# --------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------


def _generate(path: Path, n_frames: int) -> float:
    import tifffile

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    base = rng.integers(100, 4000, size=(CHUNK, *FRAME_SHAPE), dtype=np.uint16)
    mm = tifffile.memmap(
        path, shape=(n_frames, *FRAME_SHAPE), dtype=np.uint16, bigtiff=True, photometric="minisblack"
    )
    for a in range(0, n_frames, CHUNK):
        b = min(n_frames, a + CHUNK)
        np.add(base[: b - a], np.uint16(a // CHUNK), out=mm[a:b])
        if (a // CHUNK) % 16 == 15:
            mm.flush()
    mm.flush()
    del mm
    return time.perf_counter() - t0


def _evict(path: Path) -> None:
    """Drop this file's pages from the page cache (only this file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _run_child(method: str, path: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", method, str(path)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mem_available_bytes() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 256 MiB stack, one repeat (smoke test)")
    ap.add_argument("--size-gib", type=float, default=4.25, help="stack size (default 4.25 GiB)")
    ap.add_argument("--repeats", type=int, default=2, help="passes per reader and cache state")
    ap.add_argument("--dir", default="/tmp", help="where the temporary stack is written")
    ap.add_argument("--child", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    size_gib = 0.25 if args.quick else args.size_gib
    repeats = 1 if args.quick else args.repeats
    frame_bytes = FRAME_SHAPE[0] * FRAME_SHAPE[1] * 2
    n_frames = int(size_gib * 2**30 // frame_bytes)
    size = n_frames * frame_bytes
    free = shutil.disk_usage(args.dir).free
    if free < 2 * size:
        print(f"not enough space in {args.dir}: {free / 2**30:.1f} GiB free, need {2 * size / 2**30:.1f}")
        return 1
    methods = list(METHODS)
    if _mem_available_bytes() < 2.5 * size:
        methods.remove("tifffile imread")
        print("skipping 'tifffile imread': not enough free memory for the whole stack")

    tmp = Path(tempfile.mkdtemp(prefix="plscope-bench-read-", dir=args.dir))
    try:
        path = tmp / "stack.btf"
        gen_s = _generate(path, n_frames)
        print(
            f"generated {path} ({n_frames} frames of {FRAME_SHAPE[0]}x{FRAME_SHAPE[1]} uint16, "
            f"{path.stat().st_size / 2**30:.2f} GiB) in {gen_s:.1f} s"
        )
        runs: dict[tuple[str, str], list[dict]] = {}
        for rep in range(repeats):
            for state in ("cold", "warm"):
                order = methods if rep % 2 == 0 else methods[::-1]
                for method in order:
                    if state == "cold":
                        _evict(path)
                    else:
                        _run_child("plscope 2 threads", path) if rep == 0 and method == order[0] else None
                    res = _run_child(method, path)
                    runs.setdefault((method, state), []).append(res)
                    print(
                        f"  {state} {method:<18} {res['seconds']:7.2f} s  {res['peak_rss_mb']:7.0f} MB",
                        flush=True,
                    )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    checks = {r["checksum"] for rs in runs.values() for r in rs}
    assert len(checks) == 1, f"readers disagree on the data: {checks}"
    table = []
    for state in ("cold", "warm"):
        base = statistics.median(r["seconds"] for r in runs[("tifffile pages", state)])
        for method in methods:
            rs = runs[(method, state)]
            sec = statistics.median(r["seconds"] for r in rs)
            table.append(
                {
                    "state": state,
                    "method": method,
                    "seconds": sec,
                    "frames_per_s": n_frames / sec,
                    "gib_per_s": size / 2**30 / sec,
                    "ratio_vs_tifffile_pages": base / sec,
                    "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                    "rss_after_imports_mb": max(r["rss_after_imports_mb"] for r in rs),
                }
            )
    print(
        f"\n{'cache':<6}{'reader':<20}{'time (s)':>9}{'frames/s':>10}{'GiB/s':>7}"
        f"{'x pages':>9}{'peak RSS (MB)':>15}{'(imports)':>11}"
    )
    for row in table:
        print(
            f"{row['state']:<6}{row['method']:<20}{row['seconds']:>9.2f}{row['frames_per_s']:>10.0f}"
            f"{row['gib_per_s']:>7.2f}{row['ratio_vs_tifffile_pages']:>9.2f}{row['peak_rss_mb']:>15.0f}"
            f"{row['rss_after_imports_mb']:>11.0f}"
        )
    out = Path(__file__).parent / "results" / "read.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "n_frames": n_frames,
                "frame_shape": FRAME_SHAPE,
                "dtype": "uint16",
                "bytes": size,
                "bigtiff": True,
                "chunk_frames": CHUNK,
                "repeats": repeats,
                "quick": args.quick,
                "results": table,
                "cpu_count": os.cpu_count(),
                "python": sys.version.split()[0],
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
