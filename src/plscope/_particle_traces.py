"""Some columns of a traces table stored particle-major in a scratch file, read one particle at a time.

The traces of a run are a frame-major table (``frame, particle_id, ...``, one
row per frame and particle): every step after the extraction (the kinetics,
the centroid shift, the report's gallery) reads them particle by particle,
and holding whole columns for that (plus the per-particle copies a
``groupby`` makes) is what made the memory of ``plscope run`` grow with the
number of frames (issue 16: 13 MB per column at 8000 frames x 200 particles,
58 MB at 36 000). :meth:`ParticleTraces.build` writes the columns asked for,
transposed, to a file (one column at a time); a particle's values are then
one contiguous read (:func:`numpy.fromfile`, not a memory map: nothing of the
file stays resident in the process), the same values as the table's rows of
that particle in frame order.

Only a complete, regular table is stored (every particle in every frame, the
frames increasing and, within each frame, the particles in increasing order:
what the extraction makes); for any other table :meth:`ParticleTraces.build`
returns None and the caller works from the table as before.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ParticleTraces"]

#: where there is no ``os.pwrite``, the pass's threads write the scratch file one at a time
_WRITE_LOCK = threading.Lock()


def _regular_grid(frame: np.ndarray, pid: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(frames, particle ids)`` of a frame-major grid of rows, or None if the rows are not one."""
    n = frame.size
    if n == 0 or pid.size != n or frame.dtype.kind not in "iu" or pid.dtype.kind not in "iu":
        return None
    change = np.flatnonzero(frame != frame[0])
    n_particles = int(change[0]) if change.size else n
    if n % n_particles:
        return None
    ids = pid[:n_particles]
    frames = frame[::n_particles]
    if np.any(np.diff(ids) <= 0) or np.any(np.diff(frames) <= 0):
        return None
    grid_pid = pid.reshape(-1, n_particles)
    grid_frame = frame.reshape(-1, n_particles)
    if not (np.array_equal(grid_pid, np.broadcast_to(ids, grid_pid.shape))):
        return None
    if not np.array_equal(grid_frame, np.broadcast_to(frames[:, None], grid_frame.shape)):
        return None
    return frames.copy(), ids.copy()


def _columns(table: Any, names: Sequence[str]) -> pd.DataFrame:
    """The columns ``names`` that ``table`` has (views of a DataFrame's; read from a stored table)."""
    have = set(table.columns)
    names = [c for c in names if c in have]
    return table[names] if isinstance(table, pd.DataFrame) else table.read(names)


class ParticleTraces:
    """Columns of a regular traces table, particle-major in a scratch file (see the module docstring).

    Attributes
    ----------
    path : Path
        The scratch file (deleted by :meth:`close`).
    frames : ndarray
        The table's frames, increasing (every particle has one row in each).
    particle_ids : ndarray
        The particles, increasing.
    columns : tuple of str
        The columns stored (besides ``frame`` and ``particle_id``).
    """

    def __init__(
        self,
        path: Path,
        frames: np.ndarray,
        ids: np.ndarray,
        dtypes: dict[str, np.dtype],
        *,
        names: Sequence[str] | None = None,
        per_frame: dict[str, np.ndarray] | None = None,
    ):
        self.path = path
        self.frames = frames
        self.particle_ids = ids
        self._dtypes = dtypes
        self._offsets: dict[str, int] = {}
        offset = 0
        for name, dtype in dtypes.items():
            self._offsets[name] = offset
            offset += ids.size * frames.size * dtype.itemsize
        self.size_bytes = offset
        self._row = {int(p): k for k, p in enumerate(ids.tolist())}
        #: columns with one value a frame (the same for every particle), held here
        self.per_frame = dict(per_frame or {})
        #: the table's columns in order (``frame, particle_id``, stored and per-frame ones)
        self.names = list(names) if names is not None else ["frame", "particle_id", *dtypes]
        #: the table's ``attrs`` (the extraction's per-particle aperture facts)
        self.attrs: dict[str, Any] = {}

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        frames: np.ndarray,
        ids: np.ndarray,
        dtypes: dict[str, np.dtype],
        *,
        names: Sequence[str],
        per_frame: Sequence[str] = (),
    ) -> ParticleTraces:
        """An empty store of ``dtypes`` columns (filled by :meth:`write_frames`) and ``per_frame`` ones
        (filled in :attr:`per_frame`), for the table of columns ``names``."""
        frames = np.asarray(frames, np.int64)
        store = cls(
            Path(path),
            frames,
            np.asarray(ids, np.int64),
            {k: np.dtype(v) for k, v in dtypes.items()},
            names=names,
            per_frame={name: np.full(frames.size, np.nan) for name in per_frame},
        )
        with open(store.path, "wb") as f:
            f.truncate(store.size_bytes)
        return store

    def write_frames(self, column: str, start: int, values: np.ndarray) -> None:
        """The values ``(t, n_particles)`` of the frames at positions ``start .. start + t``
        (thread-safe: each particle's run of frames written in place)."""
        dtype = self._dtypes[column]
        per_particle = np.ascontiguousarray(np.asarray(values, dtype=dtype).T)
        t = per_particle.shape[1]
        step = self.frames.size * dtype.itemsize
        base = self._offsets[column] + start * dtype.itemsize
        if not hasattr(os, "pwrite"):  # Windows: one writer at a time
            with _WRITE_LOCK, open(self.path, "r+b") as f:
                for k in range(per_particle.shape[0]):
                    f.seek(base + k * step)
                    f.write(per_particle[k].data)
            return
        fd = os.open(self.path, os.O_WRONLY)
        try:
            for k in range(per_particle.shape[0]):
                if os.pwrite(fd, per_particle[k].data, base + k * step) != t * dtype.itemsize:
                    raise OSError(f"{self.path}: short write of the traces' scratch file")
        finally:
            os.close(fd)

    @property
    def n_rows(self) -> int:
        """Rows of the table (frames x particles)."""
        return int(self.frames.size * self.particle_ids.size)

    def rows(self, start: int, stop: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The table's rows ``start:stop`` (frame-major, the particles in id order in each frame)."""
        n = self.n_particles
        f0, f1 = start // n, -(-stop // n)
        cut = slice(start - f0 * n, stop - f0 * n)
        data: dict[str, np.ndarray] = {}
        for name in columns if columns is not None else self.names:
            if name == "frame":
                data[name] = np.repeat(self.frames[f0:f1], n)[cut]
            elif name == "particle_id":
                data[name] = np.tile(self.particle_ids, f1 - f0)[cut]
            elif name in self.per_frame:
                data[name] = np.repeat(self.per_frame[name][f0:f1], n)[cut]
            else:
                data[name] = self._frame_window(name, f0, f1).ravel()[cut]
        return pd.DataFrame(data)

    def _frame_window(self, column: str, f0: int, f1: int) -> np.ndarray:
        """``(f1 - f0, n_particles)``: the values of the frames at positions ``f0:f1``."""
        dtype = self._dtypes[column]
        t = f1 - f0
        out = np.empty((self.n_particles, t), dtype)
        step = self.frames.size * dtype.itemsize
        base = self._offsets[column] + f0 * dtype.itemsize
        with open(self.path, "rb", buffering=0) as f:
            for k in range(self.n_particles):
                f.seek(base + k * step)
                if f.readinto(out[k].data) != t * dtype.itemsize:
                    raise OSError(f"{self.path}: scratch file of the traces is shorter than written")
        return out.T

    def row_blocks(self, n_rows: int) -> Iterator[pd.DataFrame]:
        """The whole table, ``n_rows`` rows at a time (the last block shorter)."""
        for start in range(0, self.n_rows, n_rows):
            yield self.rows(start, min(start + n_rows, self.n_rows))

    def table(self) -> pd.DataFrame:
        """The whole table (as the extraction made it, with its ``attrs``)."""
        out = self.rows(0, self.n_rows)
        out.attrs = dict(self.attrs)
        return out

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._dtypes)

    @property
    def n_particles(self) -> int:
        return int(self.particle_ids.size)

    @classmethod
    def build(cls, table: Any, columns: Sequence[str], path: str | os.PathLike) -> ParticleTraces | None:
        """Store ``columns`` of ``table`` (a DataFrame, or a stored table: ``read(columns)``, e.g.
        :class:`plscope.results.StoredTable`) in ``path``; None (nothing written) when the table is not a regular grid of rows or lacks
        ``frame``, ``particle_id`` or one of ``columns``."""
        names = list(columns)
        keys = _columns(table, ("frame", "particle_id"))
        if list(keys.columns) != ["frame", "particle_id"]:
            return None
        grid = _regular_grid(keys["frame"].to_numpy(), keys["particle_id"].to_numpy())
        del keys
        if grid is None:
            return None
        frames, ids = grid
        path = Path(path)
        dtypes: dict[str, np.dtype] = {}
        try:
            with open(path, "wb") as f:
                for name in names:
                    col = _columns(table, (name,))
                    if name not in col.columns or col[name].dtype.kind not in "fiub":
                        break  # not stored (the file is deleted below)
                    values = col[name].to_numpy()
                    del col
                    dtypes[name] = values.dtype
                    # (frames, particles) -> (particles, frames): each particle's values contiguous
                    np.ascontiguousarray(values.reshape(frames.size, ids.size).T).tofile(f)
                    del values
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if len(dtypes) != len(names):
            path.unlink(missing_ok=True)
            return None
        return cls(path, frames, ids, dtypes)

    def values(self, column: str, start: int, stop: int) -> np.ndarray:
        """``(stop - start, n_frames)``: the values of the particles ``start:stop`` (in id order)."""
        dtype = self._dtypes[column]
        n_frames = self.frames.size
        offset = self._offsets[column] + start * n_frames * dtype.itemsize
        count = (stop - start) * n_frames
        out = np.fromfile(self.path, dtype=dtype, count=count, offset=offset)
        if out.size != count:
            raise OSError(f"{self.path}: scratch file of the traces is shorter than written")
        return out.reshape(stop - start, n_frames)

    def get(self, pid: Any, column: str) -> np.ndarray | None:
        """One particle's values of ``column``, in frame order (None: no such particle)."""
        k = self._row.get(int(pid)) if isinstance(pid, (int, np.integer)) else None
        return None if k is None else self.values(column, k, k + 1)[0]

    def per_particle(self, column: str) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
        """``(particle_id, frames, values)`` of every particle, in id order (one read each)."""
        for k, pid in enumerate(self.particle_ids):
            yield pid, self.frames, self.values(column, k, k + 1)[0]

    def blocks(self, columns: Sequence[str], n_particles: int = 16) -> Iterator[pd.DataFrame]:
        """The table's rows (``frame, particle_id, *columns``), ``n_particles`` whole particles at a time,
        in id order; within a block, particle-major (each particle's rows in frame order)."""
        n_frames = self.frames.size
        for start in range(0, self.n_particles, n_particles):
            stop = min(start + n_particles, self.n_particles)
            data: dict[str, np.ndarray] = {
                "frame": np.tile(self.frames, stop - start),
                "particle_id": np.repeat(self.particle_ids[start:stop], n_frames),
            }
            for name in columns:
                if name in self.per_frame:
                    data[name] = np.tile(self.per_frame[name], stop - start)
                else:
                    data[name] = self.values(name, start, stop).ravel()
            yield pd.DataFrame(data)

    def arrays(self, column: str) -> ColumnArrays:
        """``particle_id -> (frames, values of column)``, read when asked (what the report's gallery draws)."""
        return ColumnArrays(self, column)

    def close(self) -> None:
        """Delete the scratch file."""
        self.path.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return (
            f"ParticleTraces({str(self.path)!r}, {self.n_particles} particles x {self.frames.size} frames, "
            f"{list(self._dtypes)})"
        )


class ColumnArrays:
    """One column of a :class:`ParticleTraces`: ``get(particle_id) -> (frames, values)`` read when asked."""

    def __init__(self, store: ParticleTraces, column: str) -> None:
        self.store = store
        self.column = column

    def get(self, pid: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """The particle's frames and values in frame order (None: no such particle)."""
        values = self.store.get(pid, self.column)
        return None if values is None else (self.store.frames, values)

    def per_particle(self) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
        """``(particle_id, frames, values)`` of every particle, in id order."""
        return self.store.per_particle(self.column)
