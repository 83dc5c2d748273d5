"""Nikon NIS-Elements ND2 files, read with the `nd2 <https://github.com/tlambert03/nd2>`_ package.

An ND2 file is a sequence of frames, each holding every channel, over
loops of time (``T``), z planes (``Z``) and stage positions (``P``).
plscope reads a ``(t, y, x)`` movie: one channel, one z plane and one
position. When the file has more than one of any of those, the choice is
made in experiment.toml (``[movie] channel``, ``z``, ``position``);
without it the file is refused with a message naming its axes and their
sizes, never silently reduced.

:func:`probe_nd2` returns a :class:`~._frames.FrameSource` in ``'nd2'`` mode
(file name, the sequence indices of the chosen frames and the channel):
the frames are read lazily, opening the file in each task.
"""

from __future__ import annotations

import logging
import os
import warnings as _warnings
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ..errors import RunFolderError
from ._frames import FrameSource

logger = logging.getLogger(__name__)

__all__ = ["Nd2Info", "probe_nd2"]

ND2_MAGIC = (b"\xda\xce\xbe\x0a", b"\x00\x00\x00\x0c")


@dataclass(frozen=True, eq=False)
class Nd2Info:
    """What :func:`probe_nd2` found (see :class:`plscope.io.Stack` for the fields)."""

    source: FrameSource
    axes: str
    sizes: dict
    channel_names: tuple[str, ...]
    pixel_size_nm: float | None = None
    frame_interval_s: float | None = None
    frame_time_s: np.ndarray | None = None
    warnings: tuple[str, ...] = ()


def _describe(sizes: dict, channels: tuple[str, ...]) -> str:
    dims = " ".join(f"{k}={v}" for k, v in sizes.items())
    text = f"axes {''.join(sizes)} ({dims})"
    if len(channels) > 1:
        text += "; channels " + ", ".join(f"{i} '{n}'" for i, n in enumerate(channels))
    return text


def _pick(
    path: str,
    axis: str,
    key: str,
    value: int | str | None,
    size: int,
    names: tuple[str, ...],
    what: str,
) -> int:
    """Index along ``axis`` chosen by the experiment.toml key ``key`` (None: only one there)."""
    if value is None:
        if size > 1:
            raise RunFolderError(
                path,
                f"Nikon ND2 file with {what}; plscope reads one {axis} of it: "
                f"choose with [movie] {key} = 0..{size - 1}"
                + (" or a channel name" if axis == "channel" else ""),
            )
        return 0
    if isinstance(value, str):
        if value in names:
            return names.index(value)
        raise RunFolderError(path, f"{key} = '{value}' is not one of its channels {list(names)} ({what})")
    if not 0 <= int(value) < size:
        raise RunFolderError(path, f"{key} = {value} is outside 0..{size - 1} ({what})")
    return int(value)


def _sequences(f: Any, z: int, position: int) -> list[int]:
    """Sequence indices of the frames at z plane ``z`` and stage position ``position``, in time order."""
    seqs = [i for i, idx in enumerate(f.loop_indices) if idx.get("Z", 0) == z and idx.get("P", 0) == position]
    return sorted(seqs, key=lambda i: f.loop_indices[i].get("T", 0))


def _pixel_size_nm(f: Any, notes: list[str]) -> float | None:
    vx = f.voxel_size()
    pixel = float(vx.x) * 1e3 if vx and vx.x and np.isfinite(vx.x) and vx.x > 0 else None
    if pixel is not None and vx.y and not np.isclose(vx.x, vx.y, rtol=1e-6):
        notes.append(f"pixels are not square (x {vx.x:g}, y {vx.y:g} µm); using x")
    return pixel


def _frame_times_s(f: Any, seqs: list[int], channel: int) -> np.ndarray | None:
    """Per-frame time stamps relative to the first frame (None when absent or not increasing)."""
    if len(seqs) < 2:
        return None
    try:
        t_ms = [cast(Any, f.frame_metadata(i)).channels[channel].time.relativeTimeMs for i in seqs]
    except Exception:  # metadata absent in legacy files
        return None
    arr = (np.asarray(t_ms, float) - t_ms[0]) * 1e-3
    return arr if np.all(np.diff(arr) > 0) else None


def probe_nd2(
    path: str | os.PathLike,
    *,
    channel: int | str | None = None,
    z: int | None = None,
    position: int | None = None,
) -> Nd2Info:
    """Check a Nikon ND2 file and locate the frames of one channel, z plane and position.

    Parameters
    ----------
    path : str or path-like
    channel : int or str, optional
        Channel index or name; required when the file has several channels.
    z : int, optional
        Z plane index; required when the file has several.
    position : int, optional
        Stage position (``P`` loop) index; required when there are several.

    Returns
    -------
    Nd2Info

    Raises
    ------
    RunFolderError
        Not readable as ND2, RGB frames, or several channels / z planes /
        positions without a choice (the message names the file's axes).
    """
    try:
        import nd2
    except ImportError:  # pragma: no cover - declared dependency
        raise RunFolderError(path, "reading Nikon ND2 files needs the 'nd2' package") from None
    path = os.fspath(path)
    notes: list[str] = []
    try:
        st = os.stat(path)
        with _warnings.catch_warnings(record=True) as caught, nd2.ND2File(path) as f:
            _warnings.simplefilter("always")
            layout = _layout(f, path, channel, z, position, notes)
        for w in caught:
            notes.append(f"nd2: {w.message}")
    except RunFolderError:
        raise
    except OSError as exc:
        raise RunFolderError(path, f"cannot be read: {exc.strerror or exc}") from None
    except Exception as exc:
        raise RunFolderError(path, f"not a readable Nikon ND2 file ({type(exc).__name__}: {exc})") from None
    return _info(path, (st.st_size, st.st_mtime_ns), layout, notes)


def _layout(f: Any, path: str, channel, z, position, notes: list[str]) -> dict[str, Any]:
    """Axes, the chosen channel / z / position and their frames, pixel size and frame times of an
    open ND2 file (refused: RGB frames, unknown axes, an ambiguous or missing choice)."""
    sizes = dict(f.sizes)
    if f.is_rgb:
        raise RunFolderError(
            path, f"Nikon ND2 file with RGB frames ({_describe(sizes, ())}); expected grayscale"
        )
    names = tuple(c.channel.name for c in (f.metadata.channels or []))
    n_c = int(sizes.get("C", 1))
    if len(names) != n_c:
        names = tuple(str(i) for i in range(n_c))
    what = _describe(sizes, names)
    unknown = [a for a in sizes if a not in "TZCPYX"]
    if unknown:
        raise RunFolderError(path, f"Nikon ND2 file with {what}: axes {unknown} are not supported")
    c = _pick(path, "channel", "channel", channel, n_c, names, what)
    zi = _pick(path, "z plane", "z", z, int(sizes.get("Z", 1)), (), what)
    pi = _pick(path, "position", "position", position, int(sizes.get("P", 1)), (), what)
    seqs = _sequences(f, zi, pi)
    if not seqs:
        raise RunFolderError(path, f"Nikon ND2 file with {what}: no frame at z {zi}, position {pi}")
    return {
        "sizes": sizes,
        "names": names,
        "what": what,
        "c": c,
        "zi": zi,
        "pi": pi,
        "seqs": seqs,
        "shape": (int(sizes["Y"]), int(sizes["X"])),
        "dtype": np.dtype(f.dtype),
        "pixel": _pixel_size_nm(f, notes),
        "times": _frame_times_s(f, seqs, c),
    }


def _info(path: str, stamp: tuple[int, int], layout: dict[str, Any], notes: list[str]) -> Nd2Info:
    """The :class:`Nd2Info` (frame source, axes, pixel size, frame times) of a probed layout."""
    sizes, seqs, times, c = layout["sizes"], layout["seqs"], layout["times"], layout["c"]
    axes = "TYX" if len(seqs) > 1 else "YX"
    dropped = [f"{k}={v}" for k, v in sizes.items() if k in "CZP" and v > 1]
    if dropped:
        logger.info(
            "%s: ND2 %s; reading channel %d, z %d, position %d",
            path,
            layout["what"],
            c,
            layout["zi"],
            layout["pi"],
        )
    source = FrameSource(
        path=path,
        n_frames=len(seqs),
        frame_shape=layout["shape"],
        file_dtype=layout["dtype"].str,
        stamp=stamp,
        mode="nd2",
        pages=tuple(int(s) for s in seqs),
        channel=c,
    )
    interval = float(np.median(np.diff(times))) if times is not None and times.size > 1 else None
    return Nd2Info(
        source=source,
        axes=axes,
        sizes=sizes,
        channel_names=layout["names"],
        pixel_size_nm=layout["pixel"],
        frame_interval_s=interval,
        frame_time_s=times,
        warnings=tuple(notes),
    )
