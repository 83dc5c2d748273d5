"""Where the memory of one ``plscope`` command goes over time (issue 16, memory).

Runs the ``plscope`` command line in this process and, every 10 ms, samples the
resident memory (``VmRSS``) and glibc's heap (``mallinfo2``: bytes in use,
and bytes the heaps hold, in use or free); at every new maximum of the
resident memory or of the heap in use it records the main thread's Python
stack. Writes a JSON file and prints the peak (``VmHWM``, what
``/usr/bin/time -v`` reports as the maximum resident set size) and where it
was reached::

    python -m benchmarks.memory_probe OUT.json run RUN_DIR --out OUT_DIR --no-progress -q

Resident memory minus the heaps is the libraries' code, Python's small-object
arenas and Arrow's allocator; the heaps minus the bytes in use is free memory
glibc kept. Linux with glibc only (reads ``/proc/self/status``).
"""

from __future__ import annotations

import ctypes
import json
import os
import runpy
import sys
import threading
import time
import traceback


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _status(key: str) -> float:
    """A ``/proc/self/status`` value in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str]) -> None:
    out, command = argv[0], argv[1:]
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _MallInfo2
    main_id = threading.main_thread().ident
    series: list[tuple] = []
    peaks: list[tuple] = []
    stop = threading.Event()

    def stack() -> list[str]:
        frame = sys._current_frames().get(main_id)
        walk = traceback.walk_stack(frame) if frame else ()
        return [f"{os.path.basename(f.f_code.co_filename)}:{n} {f.f_code.co_name}" for f, n in walk][:16]

    def sample() -> None:
        best_rss = best_used = 0.0
        t0 = time.time()
        while not stop.is_set():
            m = mallinfo2()
            rss = _status("VmRSS")
            used = (m.uordblks + m.hblkhd) / 2**20
            heaps = (m.arena + m.hblkhd) / 2**20
            t = round(time.time() - t0, 2)
            series.append((t, round(rss), round(used), round(heaps)))
            if rss > best_rss + 5:
                best_rss = rss
                peaks.append(("rss", t, round(rss), round(used), stack()))
            if used > best_used + 5:
                best_used = used
                peaks.append(("heap_used", t, round(rss), round(used), stack()))
            time.sleep(0.01)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    sys.argv = ["plscope", *command]
    try:
        runpy.run_module("plscope", run_name="__main__")
    except SystemExit:
        pass
    finally:
        stop.set()
        thread.join()
        hwm = _status("VmHWM")
        top = max((p for p in peaks if p[0] == "rss"), key=lambda p: p[2], default=None)
        with open(out, "w") as fh:
            json.dump({"vmhwm_mb": round(hwm), "columns": "t_s, rss_mb, heap_used_mb, heaps_mb",
                       "series": series[::5], "peaks": peaks}, fh)  # fmt: skip
        print(f"peak RSS (VmHWM) {hwm:.0f} MB; sampled maximum at:", file=sys.stderr)
        for line in (top[4] if top else [])[:10]:
            print("   ", line, file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
