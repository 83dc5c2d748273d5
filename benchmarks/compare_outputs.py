"""Compare two ``plscope run`` output folders file by file (issue 16: memory work must not change output).

    python -m benchmarks.compare_outputs OLD NEW

Every file must be byte-identical, except what names the run itself: in ``provenance.json`` and
``report.html`` the ISO times (``started_utc``, ``finished_utc``) and the output folder's name
(the command line), in ``.plscope-output.json`` the random folder id. A gzip file (``traces.csv.gz``)
is compared by the bytes it decompresses to: the compressed bytes depend on the deflate encoder
(``plscope._csv`` uses ISA-L's since session 7, zlib's before). Files given with ``--skip``
are not compared. Prints one line per difference and exits 1, else prints ``identical``.
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
from pathlib import Path

_ISO_TIME = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)")
_MARKER_ID = re.compile(rb'"id": "[0-9a-f]+"')
_NAMES_THE_RUN = ("provenance.json", "report.html", ".plscope-output.json")


def _normalized(data: bytes, folder: Path) -> bytes:
    """The bytes without the run's times, folder id and folder name."""
    data = _MARKER_ID.sub(b'"id": ""', _ISO_TIME.sub(b"<time>", data))
    return data.replace(str(folder).encode(), b"<out>")


def differences(old: Path, new: Path, skip: tuple[str, ...] = ()) -> list[str]:
    """The files that differ (or exist on one side only), as lines."""
    names = {p.relative_to(old).as_posix() for p in old.rglob("*") if p.is_file()}
    names |= {p.relative_to(new).as_posix() for p in new.rglob("*") if p.is_file()}
    out = []
    for name in sorted(set(names) - set(skip)):
        a, b = old / name, new / name
        if not (a.is_file() and b.is_file()):
            out.append(f"{name}: only in {'new' if b.is_file() else 'old'}")
            continue
        da, db = a.read_bytes(), b.read_bytes()
        if name in _NAMES_THE_RUN:
            da, db = _normalized(da, old), _normalized(db, new)
        if name.endswith(".gz") and da != db:
            da, db = gzip.decompress(da), gzip.decompress(db)
        if da != db:
            out.append(f"{name}: bytes differ")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--skip", action="append", default=[], help="a relative path not to compare")
    a = ap.parse_args(argv)
    diff = differences(a.old, a.new, tuple(a.skip))
    print("\n".join(diff) if diff else f"identical: {a.old} {a.new}")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
