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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ParticleTraces"]


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

    def __init__(self, path: Path, frames: np.ndarray, ids: np.ndarray, dtypes: dict[str, np.dtype]):
        self.path = path
        self.frames = frames
        self.particle_ids = ids
        self._dtypes = dtypes
        self._offsets: dict[str, int] = {}
        offset = 0
        for name, dtype in dtypes.items():
            self._offsets[name] = offset
            offset += ids.size * frames.size * dtype.itemsize
        self._row = {int(p): k for k, p in enumerate(ids.tolist())}

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._dtypes)

    @property
    def n_particles(self) -> int:
        return int(self.particle_ids.size)

    @classmethod
    def build(cls, table: Any, columns: Sequence[str], path: str | os.PathLike) -> ParticleTraces | None:
        """Store ``columns`` of ``table`` (a DataFrame, or anything :func:`plscope.results.table_columns`
        reads) in ``path``; None (nothing written) when the table is not a regular grid of rows or lacks
        ``frame``, ``particle_id`` or one of ``columns``."""
        from .results import table_columns

        names = list(columns)
        keys = table_columns(table, ("frame", "particle_id"))
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
                    col = table_columns(table, (name,))
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
