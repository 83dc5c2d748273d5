"""What a file holds, for ``plscope inspect`` and ``plscope init``.

:func:`describe_movie` lists an image stack's shape, axes, pixel type,
pixel size and timing metadata (and, for a multi-dimensional ND2 or TIFF
file that needs a choice, its axes); :func:`describe_daq` lists a DAQ
log's channels with their ranges and numbers of rising edges;
:func:`describe_file` picks one by the file's kind. Nothing is written;
the results are plain dicts (JSON-ready) and :func:`format_description`
turns one into lines of text.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RunFolderError

__all__ = [
    "DAQ_SUFFIXES",
    "MOVIE_SUFFIXES",
    "count_rising_edges",
    "describe_daq",
    "describe_file",
    "describe_movie",
    "format_description",
]

#: file endings read as image stacks
MOVIE_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".spe", ".sif", ".nd2")
#: file endings read as DAQ logs
DAQ_SUFFIXES = (".csv", ".txt", ".lvm", ".dat", ".tsv", ".tdms", ".h5", ".hdf5", ".he5", ".hdf")


def count_rising_edges(samples: np.ndarray) -> tuple[int, float | None, float | None]:
    """Rising edges of a two-level signal, with hysteresis between its levels.

    The levels are the 1st and 99th percentiles; a rising edge crosses 70 %
    of the way up after the signal was below 30 %. A signal whose levels
    differ by less than 10 times its sample-to-sample noise has no edges.

    Returns
    -------
    n_edges : int
    low, high : float or None
        The two levels (None when the signal is flat).
    """
    x = np.asarray(samples, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 3:
        return 0, None, None
    lo, hi = (float(v) for v in np.percentile(x, [1, 99]))
    noise = 1.4826 * float(np.median(np.abs(np.diff(x) - np.median(np.diff(x))))) / np.sqrt(2)
    if not hi - lo > max(10 * noise, 1e-12):
        return 0, None, None
    low_th, high_th = lo + 0.3 * (hi - lo), lo + 0.7 * (hi - lo)
    state = np.full(x.size, -1, dtype=np.int8)  # -1 undecided, 0 low, 1 high
    state[x <= low_th] = 0
    state[x >= high_th] = 1
    decided = state[state >= 0]
    edges = int(np.count_nonzero((decided[1:] == 1) & (decided[:-1] == 0)))
    return edges, lo, hi


def describe_daq(path: str | os.PathLike, *, sample_rate_hz: float | None = None) -> dict[str, Any]:
    """Channels of a DAQ log with their ranges and rising edges.

    Returns
    -------
    dict
        ``kind`` ``"daq"``, ``path``, ``n_samples``, ``sample_rate_hz``,
        ``duration_s``, ``channels`` (name -> ``min``, ``max``,
        ``rising_edges``, ``low``, ``high``), ``warnings``.
    """
    from .daq import read_daq

    log = read_daq(path, sample_rate_hz=sample_rate_hz)
    channels = {}
    for name in log.channels:
        x = log.channel(name)
        edges, lo, hi = count_rising_edges(x)
        finite = x[np.isfinite(x)]
        channels[name] = {
            "min": float(finite.min()) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
            "rising_edges": edges,
            "low": lo,
            "high": hi,
        }
    t = log.time_s
    return {
        "kind": "daq",
        "path": os.fspath(path),
        "n_samples": log.n_samples,
        "sample_rate_hz": log.sample_rate_hz if log.n_samples > 1 else None,
        "duration_s": float(t[-1] - t[0]) if t.size > 1 else 0.0,
        "channels": channels,
        "warnings": list(log.warnings),
    }


def _nd2_axes(path: str) -> dict[str, Any] | None:
    try:
        import nd2

        with nd2.ND2File(path) as f:
            names = [c.channel.name for c in (f.metadata.channels or [])]
            return {"sizes": dict(f.sizes), "channel_names": names}
    except Exception:
        return None


def _tiff_axes(path: str) -> dict[str, Any] | None:
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            s = tif.series[0]
            return {"sizes": dict(zip(s.axes, (int(n) for n in s.shape))), "channel_names": []}
    except Exception:
        return None


def describe_movie(path: str | os.PathLike, **select: Any) -> dict[str, Any]:
    """Shape, axes, pixel type, pixel size and timing metadata of an image stack.

    ``select`` (``channel``, ``z``, ``position``) goes to :func:`open_stack`.
    A multi-dimensional file that needs a choice is described by its axes,
    with ``needs`` holding the reason it cannot be read as it is.
    """
    from .stack import open_stack

    spec = os.fspath(path)
    try:
        st = open_stack(spec, **select)
    except RunFolderError as exc:
        lower = spec.lower()
        axes = _nd2_axes(spec) if lower.endswith(".nd2") else _tiff_axes(spec)
        if axes is None:
            raise
        return {"kind": "movie", "path": spec, "readable": False, "needs": exc.problem, **axes}
    times = st.frame_time_s
    wl = st.wavelength_nm
    return {
        "kind": "movie",
        "path": spec,
        "readable": True,
        "format": st.format,
        "files": len(set(st.paths)),
        "shape": [int(n) for n in st.shape],
        "axes": st.axes,
        "dtype": str(st.dtype),
        "pixel_size_nm": st.pixel_size_nm,
        "frame_interval_s": st.frame_interval_s,
        "exposure_s": st.exposure_s,
        "frame_time_stamps": times is not None,
        "duration_s": float(times[-1] - times[0]) if times is not None and len(times) > 1 else None,
        "wavelength_nm": None if wl is None else [float(wl[0]), float(wl[-1])],
        "warnings": list(st.warnings),
    }


def describe_file(path: str | os.PathLike, *, sample_rate_hz: float | None = None, **select: Any) -> dict:
    """:func:`describe_movie` or :func:`describe_daq`, by the file's ending (movie first if unknown)."""
    p = Path(path)
    lower = p.name.lower()
    if lower.endswith(MOVIE_SUFFIXES) or any(ch in p.name for ch in "*?["):
        return describe_movie(p, **select)
    if lower.endswith(DAQ_SUFFIXES):
        return describe_daq(p, sample_rate_hz=sample_rate_hz)
    if not p.exists():
        raise RunFolderError(p, "file does not exist")
    try:
        return describe_movie(p, **select)
    except RunFolderError:
        return describe_daq(p, sample_rate_hz=sample_rate_hz)


def _num(v: float | None, unit: str = "", fmt: str = ".6g") -> str:
    return "unknown" if v is None else f"{v:{fmt}}{unit}"


def format_description(d: dict[str, Any]) -> list[str]:
    """Lines of text for a :func:`describe_file` result."""
    out = [f"{d['path']}:"]
    if d["kind"] == "daq":
        out.append(
            f"  DAQ log: {d['n_samples']} samples at {_num(d['sample_rate_hz'], ' Hz')}, "
            f"{_num(d['duration_s'], ' s')}"
        )
        width = max((len(n) for n in d["channels"]), default=7)
        out.append(f"  {'channel':<{width}}  {'min':>12}  {'max':>12}  rising edges")
        for name, c in d["channels"].items():
            out.append(f"  {name:<{width}}  {_num(c['min']):>12}  {_num(c['max']):>12}  {c['rising_edges']}")
    elif not d["readable"]:
        dims = " ".join(f"{k}={v}" for k, v in d["sizes"].items())
        out.append(f"  image data with axes {''.join(d['sizes'])} ({dims})")
        if d.get("channel_names"):
            out.append("  channels: " + ", ".join(f"{i} '{n}'" for i, n in enumerate(d["channel_names"])))
        out.append(f"  not readable as (t, y, x) as it is: {d['needs']}")
    else:
        t, h, w = d["shape"]
        out.append(
            f"  {d['format']} movie: {t} frame(s) of {h} x {w} pixels ({d['axes']}, {d['dtype']})"
            + (f", {d['files']} files" if d["files"] > 1 else "")
        )
        out.append(f"  pixel size: {_num(d['pixel_size_nm'], ' nm')}")
        rate = 1.0 / d["frame_interval_s"] if d["frame_interval_s"] else None
        out.append(
            f"  frame interval: {_num(d['frame_interval_s'], ' s')} ({_num(rate, ' Hz', '.4g')}); "
            f"exposure: {_num(d['exposure_s'], ' s')}; per-frame time stamps: "
            f"{'yes' if d['frame_time_stamps'] else 'no'}"
        )
        if d["wavelength_nm"]:
            lo, hi = d["wavelength_nm"]
            out.append(f"  wavelength axis: {lo:.4f} .. {hi:.4f} nm over {w} columns")
    for warn in d.get("warnings", []):
        out.append(f"  warning: {warn}")
    return out
