"""Provenance: versions, configuration and input checksums of a run."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import sys
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..config.experiment import input_files  # noqa: F401  (re-exported: pipeline modules import it from here)

#: distributions whose versions are recorded
DEPENDENCIES = (
    "numpy",
    "scipy",
    "pandas",
    "tifffile",
    "scikit-image",
    "trackpy",
    "lmfit",
    "dask",
    "matplotlib",
)


def sha256_file(
    path: str | os.PathLike, *, block_bytes: int = 8 << 20, stop: threading.Event | None = None
) -> str:
    """SHA-256 of a file, read in blocks (memory does not grow with size).

    ``stop``: when it is set, the hash is abandoned between two blocks
    (:class:`InterruptedError`).
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block_bytes):
            if stop is not None and stop.is_set():
                raise InterruptedError(f"{path}: checksum abandoned")
            h.update(chunk)
    return h.hexdigest()


def file_records(paths: Iterable[str | os.PathLike], *, stop: threading.Event | None = None) -> dict:
    """``str(path) -> {'sha256', 'bytes', 'mtime_ns'}`` of every file (the provenance's ``inputs``)."""
    files = {}
    for p in paths:
        p = Path(p)
        st = p.stat()
        files[str(p)] = {"sha256": sha256_file(p, stop=stop), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    return files


class BackgroundRecords:
    """:func:`file_records` computed in a background thread while the run goes on.

    hashlib releases the GIL while it hashes, so the checksums of a large
    movie (about 1 s of CPU per GB) overlap the analysis instead of adding to
    it. Use it as a context manager: leaving the block abandons a hash still
    running (a failed run does not wait for it).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = f.write_text("abc")
    >>> with BackgroundRecords([f]) as records:
    ...     rec = records.result()[str(f)]
    >>> rec["sha256"][:12], rec["bytes"]
    ('ba7816bf8f01', 3)
    """

    def __init__(self, paths: Iterable[str | os.PathLike]):
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="plscope-sha256")
        self._future = self._pool.submit(file_records, list(paths), stop=self._stop)

    def result(self) -> dict:
        """The records (waits for the hashes; re-raises an error of the thread, e.g. OSError)."""
        return self._future.result()

    def __enter__(self) -> BackgroundRecords:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("plscope", *DEPENDENCIES):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover
            out[name] = "not installed"
    return out


def provenance(
    *,
    inputs: Iterable[str | os.PathLike],
    config: dict[str, Any],
    started: _dt.datetime,
    command_line: Sequence[str] | None = None,
    settings: dict[str, Any] | None = None,
    settings_digest: str | None = None,
    records: dict | BackgroundRecords | None = None,
) -> dict[str, Any]:
    """Provenance record written into summary.json.

    Parameters
    ----------
    inputs : iterable of path-like
        Every input file (experiment.toml, movie files, DAQ log, ...).
    config : dict
        The resolved experiment configuration (experiment.toml).
    settings, settings_digest : dict, str
        The resolved analysis settings and their digest.
    started : datetime
        When the run started (UTC).
    command_line : sequence of str, optional
    records : dict or BackgroundRecords, optional
        The :func:`file_records` of ``inputs`` when already made (e.g. in the
        background while the run went on); default: made here.
    """
    if isinstance(records, BackgroundRecords):
        files = records.result()
    else:
        files = records if records is not None else file_records(inputs)
    return {
        "versions": package_versions(),
        "platform": platform.platform(),
        "config": config,
        "settings": settings,
        "settings_digest": settings_digest,
        "inputs": files,
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command_line": list(command_line) if command_line is not None else list(sys.argv),
    }


#: provenance entries that change from one run of the same input to the next (when, how invoked):
#: kept in provenance.json only, so every other output file is byte-identical for the same input
VOLATILE_KEYS = ("started_utc", "finished_utc", "at_utc", "command_line")


def stable_provenance(prov: Any) -> Any:
    """``prov`` without :data:`VOLATILE_KEYS` (at any depth): the part summary.json carries."""
    if isinstance(prov, dict):
        return {k: stable_provenance(v) for k, v in prov.items() if k not in VOLATILE_KEYS}
    if isinstance(prov, list):
        return [stable_provenance(v) for v in prov]
    return prov
