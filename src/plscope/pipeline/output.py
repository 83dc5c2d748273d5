"""Atomic output folders: results appear complete or not at all.

Everything is written into a hidden sibling folder and renamed into place
only when the whole run has succeeded, so an error, Ctrl-C or a killed
process never leaves results that look complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

from .._json import jsonable, write_json
from ..errors import RunFolderError

logger = logging.getLogger(__name__)

#: the file whose presence marks a complete plscope output folder
COMPLETE_MARKER = "summary.json"
#: ... and that of a detector run's output folder
_OTHER_MARKERS = ("detector_summary.json",)


class AtomicOutputDir:
    """Context manager yielding a temporary folder that becomes ``out_dir``.

    On success the temporary folder replaces ``out_dir`` (a previous
    plscope output there is replaced whole). On any exception it is removed
    and ``out_dir`` is left as it was.

    Parameters
    ----------
    out_dir : path-like
        Final output folder.

    Raises
    ------
    RunFolderError
        If the output folder cannot be created or written, or if it exists,
        is not empty and is not a plscope output folder (its files are never
        deleted).
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise RunFolderError(out, "output path exists and is not a folder")
        markers = (COMPLETE_MARKER, *_OTHER_MARKERS)
        if out.is_dir() and any(out.iterdir()) and not any((out / m).exists() for m in markers):
            raise RunFolderError(
                out,
                "output folder exists, is not empty and holds no plscope results; "
                "choose another --out (plscope never deletes files it did not write)",
            )
        for parent in out.parents:
            if parent.exists() and not parent.is_dir():
                raise RunFolderError(
                    out, f"output folder cannot be created: {parent} is a file, not a folder"
                )
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = out.parent / f".{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self.tmp.mkdir()
        except OSError as exc:
            raise RunFolderError(out, f"output folder cannot be created: {exc.strerror or exc}") from None
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        out = self.out_dir
        old = None
        try:
            if out.exists():
                old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(out, old)
            os.replace(self.tmp, out)
        except OSError as exc:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if old is not None and not out.exists():
                os.replace(old, out)
            raise RunFolderError(out, f"results cannot be moved into place: {exc.strerror or exc}") from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("results written to %s", out)
        return False


__all__ = ["COMPLETE_MARKER", "AtomicOutputDir", "jsonable", "write_json"]
