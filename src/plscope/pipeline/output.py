"""Output folders plscope can prove it owns: complete results or nothing, user files kept.

Rules (issue 13, "ownership, not guesswork"):

- An output folder is plscope's only if it holds the marker file
  :data:`MARKER` (a random id, the kind of output and the manifest of the
  files plscope wrote there). A folder that is not empty and has no marker
  is refused, naming the files in it; a stray ``summary.json`` proves
  nothing.
- Only files listed in the manifest are ever replaced or deleted. Files the
  user added (``annotations.txt``) survive a re-run or re-analysis.
- An output folder is never an input folder, nor an ancestor or a
  descendant of one.
- Results are written into a hidden staging folder inside the output
  folder and moved into place only when the whole command has succeeded;
  ``summary.json`` is moved last (it marks the results complete).
- One command at a time per output folder: a lock file (``fcntl.flock``,
  released by the kernel even after ``kill -9``); a second command is
  refused with one line. Staging folders left by a killed command are
  removed by the next command into the same folder (they are ours: they
  live inside a marked folder and hold a marker themselves).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from .._json import jsonable, write_json
from ..errors import RunFolderError

logger = logging.getLogger(__name__)

#: the file whose presence marks complete results (moved into place last)
COMPLETE_MARKER = "summary.json"
#: plscope's ownership marker and manifest
MARKER = ".plscope-output.json"
#: lock file held while a command writes into the folder
LOCK = ".plscope.lock"
#: errors of writing (full disk, quota, read-only or too large): told in one line, not as a crash
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
#: prefix of the staging folders inside an output folder
STAGING_PREFIX = ".plscope-staging-"


# --------------------------------------------------------------------------
# marker and manifest
# --------------------------------------------------------------------------


def read_marker(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The ownership marker of ``folder`` or None (absent, unreadable or not plscope's)."""
    path = Path(folder) / MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("plscope_output") != 1 or not isinstance(data.get("id"), str):
        return None
    files = data.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) and _safe_relpath(f) for f in files):
        return None
    return data


def _safe_relpath(rel: str) -> bool:
    p = Path(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts


def _write_marker(folder: Path, data: dict[str, Any]) -> None:
    tmp = folder / f"{MARKER}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, folder / MARKER)


def new_marker(kind: str) -> dict[str, Any]:
    """A fresh marker: random id, kind of output, empty manifest, not complete."""
    return {"plscope_output": 1, "id": uuid.uuid4().hex, "kind": kind, "files": [], "complete": False}


def is_complete_output(folder: str | os.PathLike, kind: str = "run") -> bool:
    """Whether ``folder`` holds complete plscope results of this kind (marker and summary)."""
    m = read_marker(folder)
    return (
        m is not None
        and m.get("kind") == kind
        and bool(m.get("complete"))
        and COMPLETE_MARKER in m["files"]
        and (Path(folder) / COMPLETE_MARKER).is_file()
    )


def owned_files(folder: str | os.PathLike) -> list[str]:
    """The manifest of ``folder`` (relative paths plscope wrote), [] if it is not plscope's."""
    m = read_marker(folder)
    return list(m["files"]) if m else []


def _list_names(folder: Path, limit: int = 6) -> str:
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError:
        return "?"
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


# --------------------------------------------------------------------------
# inputs versus outputs
# --------------------------------------------------------------------------


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def check_not_input(out_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse an output path that is an input, or an ancestor or a descendant of an input folder.

    ``inputs`` are input folders and files (for a file, its folder counts too).

    Raises
    ------
    RunFolderError
    """
    out = _resolved(out_dir)
    for item in inputs:
        p = _resolved(item)
        folders = [p] if p.is_dir() else [p, p.parent]
        for f in folders:
            if out == f or f in out.parents:
                raise RunFolderError(
                    out_dir,
                    f"output folder is or lies inside the input folder {f}; choose an --out "
                    "outside the input (plscope never writes into its inputs)",
                )
            if out in f.parents:
                raise RunFolderError(
                    out_dir,
                    f"output folder contains the input {f}; choose an --out outside the input",
                )


# --------------------------------------------------------------------------
# the lock
# --------------------------------------------------------------------------


class _FolderLock:
    """An exclusive, non-blocking lock on ``folder/.plscope.lock`` (kernel lock: dies with the process)."""

    def __init__(self, folder: Path, what: str = "output folder"):
        self.folder = folder
        self.what = what
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return
        try:
            self.fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise RunFolderError(self.folder, f"lock file cannot be created: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise RunFolderError(
                self.folder,
                f"another plscope command is writing this {self.what} (locked: {LOCK}); "
                "wait for it to finish or choose another --out",
            ) from None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None


# --------------------------------------------------------------------------
# the output folder
# --------------------------------------------------------------------------


def claim_folder(out: Path, kind: str, *, what: str = "output folder") -> tuple[dict[str, Any], bool]:
    """Make sure ``out`` is (or becomes) a plscope folder of ``kind``; return (marker, created).

    A missing or empty folder is created and marked. An existing folder must
    carry a marker of the same kind; otherwise :class:`RunFolderError` names
    its files and nothing is touched.
    """
    if out.is_symlink():
        raise RunFolderError(out, f"{what} is a symbolic link; give the real folder")
    if out.exists() and not out.is_dir():
        raise RunFolderError(out, "output path exists and is not a folder")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise RunFolderError(out, f"output folder cannot be created: {parent} is a file, not a folder")
    created = False
    if out.is_dir():
        try:
            empty = not any(out.iterdir())
        except OSError as exc:
            raise RunFolderError(out, f"{what} cannot be read: {exc.strerror or exc}") from None
        marker = read_marker(out)
        if marker is None and not empty:
            raise RunFolderError(
                out,
                f"{what} is not empty and holds no plscope results (no {MARKER} ownership marker); "
                f"it holds {_list_names(out)}; choose another --out "
                "(plscope never deletes or replaces files it did not write)",
            )
        if marker is not None and marker.get("kind") != kind:
            raise RunFolderError(
                out,
                f"{what} holds plscope {marker.get('kind')!s} output, not {kind} output; choose another --out",
            )
        if marker is not None:
            return marker, False
    else:
        try:
            out.mkdir(parents=True)
        except OSError as exc:
            raise RunFolderError(out, f"output folder cannot be created: {exc.strerror or exc}") from None
        created = True
    marker = new_marker(kind)
    try:
        _write_marker(out, marker)
    except OSError as exc:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise RunFolderError(out, f"output folder cannot be written: {exc.strerror or exc}") from None
    return marker, created


def clean_stale_staging(out: Path) -> list[str]:
    """Remove staging folders a killed command left in ``out`` (only marked ones). Call under the lock."""
    removed = []
    for p in sorted(out.glob(STAGING_PREFIX + "*")):
        if p.is_dir() and not p.is_symlink() and read_marker(p) is not None:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    for name in (f"{MARKER}.tmp",):
        with contextlib.suppress(OSError):
            (out / name).unlink()
    if removed:
        logger.info("removed %d temporary folder(s) left by an interrupted command in %s", len(removed), out)
    return removed


def _walk_files(folder: Path) -> list[str]:
    files = []
    for dirpath, _dirs, names in os.walk(folder):
        for n in names:
            rel = (Path(dirpath) / n).relative_to(folder).as_posix()
            if rel != MARKER:
                files.append(rel)
    return sorted(files)


def _prune_empty_dirs(out: Path, rels: Iterable[str]) -> None:
    for rel in sorted(rels, key=lambda r: -len(Path(r).parts)):
        parent = (out / rel).parent
        while parent != out and out in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def commit_staging(out: Path, staging: Path, marker: dict[str, Any]) -> dict[str, Any]:
    """Move the files of ``staging`` into ``out``; delete only manifest files no longer written.

    ``summary.json`` goes last. Files of ``out`` not in the manifest are
    never touched; a new result whose name is taken by such a file is
    refused before anything moves.
    """
    old = set(marker.get("files", []))
    new = _walk_files(staging)
    clash = [f for f in new if f not in old and (os.path.lexists(out / f))]
    if clash:
        raise RunFolderError(
            out,
            "results cannot be written: files plscope did not write are in the way ("
            + ", ".join(clash[:6])
            + "); move them away or choose another --out",
        )
    marker = dict(marker, files=sorted(old | set(new)), complete=False)
    _write_marker(out, marker)
    with contextlib.suppress(FileNotFoundError):
        if COMPLETE_MARKER in old:
            (out / COMPLETE_MARKER).unlink()
    last = [f for f in new if f == COMPLETE_MARKER]
    for rel in [f for f in new if f != COMPLETE_MARKER] + last:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, target)
    gone = sorted(old - set(new))
    for rel in gone:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            (out / rel).unlink()
    _prune_empty_dirs(out, gone)
    marker = dict(marker, files=new, complete=COMPLETE_MARKER in new)
    _write_marker(out, marker)
    return marker


class AtomicOutputDir:
    """Context manager yielding a staging folder whose files become the results in ``out_dir``.

    On success the staged files replace plscope's previous files in
    ``out_dir`` (listed in its manifest); the user's files there are kept.
    On any exception the staging folder is removed and ``out_dir`` is left
    as it was (a folder created for this command is removed again).

    Parameters
    ----------
    out_dir : path-like
        Final output folder.
    inputs : iterable of path-like, optional
        Input folders/files; ``out_dir`` must be none of them, nor an
        ancestor or a descendant of one.
    kind : str
        Kind of output ("run", "simulate"); an existing folder of another
        kind is refused.

    Raises
    ------
    RunFolderError
        If the output folder cannot be created or written, is an input, is
        not empty without plscope's marker, or is being written by another
        plscope command.
    """

    def __init__(
        self, out_dir: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (), kind: str = "run"
    ):
        self.out_dir = Path(out_dir)
        self.inputs = list(inputs)
        self.kind = kind
        self.tmp: Path | None = None
        self._lock: _FolderLock | None = None
        self._created = False
        self._had_marker = False

    def __enter__(self) -> Path:
        out = self.out_dir
        check_not_input(out, self.inputs)
        had_marker = read_marker(out) is not None if out.is_dir() else False
        marker, self._created = claim_folder(out, self.kind)
        self._had_marker = had_marker
        self._lock = _FolderLock(out)
        try:
            self._lock.acquire()
            clean_stale_staging(out)
            self.tmp = out / f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self.tmp.mkdir()
            _write_marker(self.tmp, new_marker("staging"))
        except BaseException as exc:
            self._undo()
            if isinstance(exc, OSError):
                raise RunFolderError(out, f"output folder cannot be written: {exc.strerror or exc}") from None
            raise
        return self.tmp

    def _undo(self) -> None:
        """Remove what this command added (staging; marker and lock of a folder it marked)."""
        out = self.out_dir
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if not self._had_marker:
            for name in (LOCK, MARKER):
                with contextlib.suppress(OSError):
                    (out / name).unlink()
            if self._created:
                with contextlib.suppress(OSError):
                    out.rmdir()
        if self._lock is not None:
            self._lock.release()

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        assert self.tmp is not None and self._lock is not None
        out = self.out_dir
        if exc_type is not None:
            self._undo()
            if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
                raise RunFolderError(
                    out, f"results cannot be written: {exc.strerror or exc}; nothing was kept"
                ) from None
            return False
        try:
            marker = read_marker(out)
            if marker is None:
                raise RunFolderError(out, f"the ownership marker {MARKER} vanished during the run")
            (self.tmp / MARKER).unlink()
            commit_staging(out, self.tmp, marker)
        except RunFolderError:
            self._undo()
            raise
        except OSError as exc:  # part moved: the marker (complete: false) lists every file of ours
            shutil.rmtree(self.tmp, ignore_errors=True)
            self._lock.release()
            raise RunFolderError(out, f"results cannot be moved into place: {exc.strerror or exc}") from None
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._lock.release()
        logger.info("results written to %s", out)
        return False


__all__ = [
    "COMPLETE_MARKER",
    "LOCK",
    "MARKER",
    "AtomicOutputDir",
    "check_not_input",
    "claim_folder",
    "is_complete_output",
    "jsonable",
    "owned_files",
    "read_marker",
    "write_json",
]
