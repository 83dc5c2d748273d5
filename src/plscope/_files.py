"""The one atomic writer: files appear complete under their name or not at all.

A bottom-floor helper (imports nothing of plscope). Output *folders* are made
atomic by :class:`plscope.pipeline.output.AtomicOutputDir`; single files and
groups of files (a simulated run folder, ``calibration.json``, a batch index)
by :func:`atomic_files` here.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_files", "atomic_write_text", "part_path"]


def part_path(path: str | os.PathLike) -> Path:
    """The hidden temporary sibling a file is written to before it is renamed into place."""
    path = Path(path)
    return path.with_name(f".{path.name}.part-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextmanager
def atomic_files(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Yield temporary paths for ``paths``; rename them all into place if the block succeeds.

    On an exception nothing is renamed and the temporary files are removed,
    so a reader never sees a half-written file (nor, for a group, a mix of
    new and old files written by one failed call).

    Parameters
    ----------
    *paths : path-like
        Final file names.

    Yields
    ------
    list of pathlib.Path
        One temporary path per final path, in the same folder (same file
        system, so :func:`os.replace` is atomic).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_files(folder / "a.txt") as (tmp,):
    ...     _ = tmp.write_text("done")
    >>> (folder / "a.txt").read_text()
    'done'
    """
    finals = [Path(p) for p in paths]
    parts = [part_path(p) for p in finals]
    try:
        yield parts
        for part, final in zip(parts, finals, strict=True):
            os.replace(part, final)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (a temporary sibling renamed into place)."""
    with atomic_files(path) as (part,):
        part.write_text(text, encoding=encoding)
