"""Image stacks as lazy dask arrays: TIFF (plain, BigTIFF, ImageJ, OME,
Micro-Manager), Princeton Instruments SPE, Andor SIF, Nikon ND2, and series
of files.

:func:`open_stack` checks a movie at the door and returns a :class:`Stack`
whose ``data`` is a lazy ``(t, y, x)`` dask array chunked along time only.

Accepted movies:

- a TIFF or BigTIFF file: plain page sequence, ImageJ stack/hyperstack
  with one non-singleton axis, OME-TIFF (pixel size, axes, frame interval
  from the OME-XML), also when the OME-XML spreads the frames over several
  files (give the file that holds the metadata; a part that holds
  ``BinaryOnly`` metadata is redirected to it);
- a Micro-Manager ``*_MMStack_*.ome.tif`` dataset: give any of its files,
  the whole dataset (cut into files at 4 GB) is read; frames missing from
  the dataset are reported and their frame numbers recorded;
- a Princeton Instruments ``.spe`` file (v2.x and v3.0, see :mod:`.spe`),
  with its wavelength axis (v2 polynomial, v3 per-pixel XML);
- an Andor ``.sif`` file (images, and spectra of one track: frames of one
  row), with its wavelength axis and cycle time (see :mod:`.sif`);
- a Nikon ``.nd2`` file: one channel, z plane and position, chosen by the
  ``channel``/``z``/``position`` arguments when the file has several (a
  file with several and no choice is refused naming its axes, see :mod:`.nd2`);
- a TIFF whose metadata give leading axes of unknown meaning (tifffile's
  ``Q``, e.g. ``QQYX`` (20, 100, 512, 512) from a writer that saved frame
  blocks with a shape): flattened into time in file order, with a warning;
- a glob such as ``"movie_*.tif"``: the matching files concatenated along
  time in natural name order (a glob over the files of one multi-file
  dataset reads the dataset once).

Design (see ``shared/perf-notes.md``): the dask graph holds one small
picklable :class:`~._frames.LazyFrames` that carries file names, frame
counts and byte offsets, never an open handle or image data, so graphs
pickle to a few kB and run on a cluster. Uncompressed frames are read with
one ``readinto`` per run of contiguous frames straight into the chunk (no
memory map: resident memory stays at one chunk per running task whatever
the size of the file); compressed or tiled pages are decoded by tifffile
page range by page range.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import tifffile

from ..errors import RunFolderError
from ._frames import FrameSource, LazyFrames

if TYPE_CHECKING:
    import dask.array

logger = logging.getLogger(__name__)

__all__ = ["FrameSource", "LazyFrames", "Stack", "TiffFrames", "open_stack", "stack_frame_times"]

#: Backwards-compatible name of the lazy array (it reads SPE files too).
TiffFrames = LazyFrames

#: Nanometres per length unit, as written in ImageJ and OME metadata.
_UNIT_NM = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "um": 1e3,
    "\u00b5m": 1e3,
    "\u03bcm": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "millimetre": 1e6,
    "cm": 1e7,
    "centimeter": 1e7,
    "centimetre": 1e7,
    "m": 1e9,
    "meter": 1e9,
    "metre": 1e9,
    "\u00c5": 0.1,
    "\u212b": 0.1,
    "angstrom": 0.1,
}
#: Seconds per time unit, as written in ImageJ and OME metadata.
_UNIT_S = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "ms": 1e-3,
    "msec": 1e-3,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ns": 1e-9,
    "min": 60.0,
    "h": 3600.0,
}
#: tifffile log messages that mean the file structure is broken.
_FATAL_LOG = ("invalid page offset", "failed to reshape", "corrupted", "truncated")
_MAX_LOGGED = 5
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@dataclass(frozen=True, eq=False)
class Stack:
    """A lazily read image stack.

    Attributes
    ----------
    data : dask.array.Array
        Frames, shape ``(t, y, x)`` (rows, columns), chunked along time only.
    paths : tuple of str
        The files holding the frames, in the order their frames appear.
    pixel_size_nm : float or None
        Pixel size in the sample plane from the metadata (OME
        ``PhysicalSizeX``, ImageJ resolution + unit, Micro-Manager
        ``PixelSize_um``), None when absent.
    dtype : numpy.dtype
        Pixel type (native byte order).
    shape : tuple of int
        ``(n_frames, height, width)``.
    frame_offsets : tuple of int
        Index of the first frame of each entry of ``paths`` in ``data``.
    warnings : tuple of str
        Recoverable oddities of the files (also logged).
    axes : str
        Axes of the first file's image series as its metadata name them
        (``'TYX'``; ``'IYX'`` for a plain page sequence; ``'ZYX'`` or
        ``'CYX'`` is read as time with a warning; ``'YX'`` for one frame).
    format : str
        ``'tiff'``, ``'imagej'``, ``'ome'``, ``'mmstack'`` or ``'spe'``
        (of the first file).
    frame_interval_s : float or None
        Frame interval recorded by the acquisition software (OME
        ``TimeIncrement``, ImageJ ``finterval``, Micro-Manager
        ``Interval_ms``, or the median of ``frame_time_s``), None if absent.
    frame_numbers : numpy.ndarray or None
        The acquisition's own index of each frame, shape ``(t,)``, when it
        is recorded and may skip (Micro-Manager time index, SPE v3 frame
        tracking number); a jump means frames are missing from the movie.
    frame_time_s : numpy.ndarray or None
        Per-frame time stamps of the camera/acquisition clock relative to
        the first frame (SPE v3 exposure start, OME ``DeltaT``, ND2 and SIF
        time stamps), or None.
    wavelength_nm : numpy.ndarray or None
        Wavelength of every column (``x``) when the file carries a
        spectrograph calibration (SIF ``Calibration_data`` and SPE v2
        polynomial, both evaluated at the vendors' 1-based pixel numbers; SPE
        v3 per-pixel XML), else None.
    exposure_s : float or None
        Exposure time from the metadata (SIF, SPE v2), else None.
    """

    data: dask.array.Array
    paths: tuple[str, ...]
    pixel_size_nm: float | None
    dtype: np.dtype
    shape: tuple[int, int, int]
    frame_offsets: tuple[int, ...] = (0,)
    warnings: tuple[str, ...] = ()
    axes: str = "TYX"
    format: str = "tiff"
    frame_interval_s: float | None = None
    frame_numbers: np.ndarray | None = None
    frame_time_s: np.ndarray | None = None
    wavelength_nm: np.ndarray | None = None
    exposure_s: float | None = None

    @property
    def n_frames(self) -> int:
        """Number of frames (length of the time axis)."""
        return self.shape[0]


@dataclass(frozen=True, eq=False)
class _Probed:
    """One movie file (or multi-file dataset) checked at the door."""

    sources: tuple[FrameSource, ...]
    format: str
    axes: str
    pixel_size_nm: float | None = None
    frame_interval_s: float | None = None
    frame_numbers: np.ndarray | None = None
    frame_time_s: np.ndarray | None = None
    warnings: tuple[str, ...] = ()
    files: tuple[str, ...] = field(default=())
    wavelength_nm: np.ndarray | None = None
    exposure_s: float | None = None

    @property
    def n_frames(self) -> int:
        return sum(s.n_frames for s in self.sources)

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.sources[0].frame_shape

    @property
    def dtype(self) -> np.dtype:
        return self.sources[0].dtype

    @property
    def path(self) -> str:
        return self.sources[0].path


# --------------------------------------------------------------------------
# file names
# --------------------------------------------------------------------------


def _natural_key(path: str) -> list:
    """Sort key: digit runs compare as numbers (movie_2 before movie_10)."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path)]


def _expand(path: str) -> list[str]:
    if os.path.exists(path):
        if not os.path.isfile(path):
            raise RunFolderError(path, "is a folder, not a movie file")
        return [path]
    if any(ch in path for ch in "*?["):
        matches = sorted((p for p in glob.glob(path) if os.path.isfile(p)), key=_natural_key)
        if not matches:
            raise RunFolderError(path, "no file matches this pattern")
        return matches
    raise RunFolderError(path, "file does not exist")


# --------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------


def _length_unit_nm(unit: Any) -> float | None:
    if not isinstance(unit, str):
        return None
    u = unit.strip()
    if "\\u" in u:  # ImageJ writes e.g. "\u00B5m" escaped
        try:
            u = u.encode("latin-1", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError:
            pass
    return _UNIT_NM.get(u, _UNIT_NM.get(u.lower()))


def _positive(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v > 0 and math.isfinite(v) else None


def _ome_pixels(tif: tifffile.TiffFile, warnings: list[str]) -> ET.Element | None:
    if not (tif.is_ome and tif.ome_metadata):
        return None
    try:
        root = ET.fromstring(tif.ome_metadata)
    except ET.ParseError as exc:
        warnings.append(f"OME-XML metadata cannot be parsed ({exc}); pixel size not read")
        return None
    return next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)


def _ome_pixel_size_nm(pixels: ET.Element, warnings: list[str]) -> float | None:
    if "PhysicalSizeX" not in pixels.attrib:
        return None
    unit = pixels.attrib.get("PhysicalSizeXUnit", "\u00b5m")
    scale = _length_unit_nm(unit)
    size = _positive(pixels.attrib["PhysicalSizeX"])
    if scale is None or size is None:
        warnings.append(
            f"OME PhysicalSizeX={pixels.attrib['PhysicalSizeX']!r} {unit!r} "
            "is not a usable length; pixel size not read"
        )
        return None
    size_y = pixels.attrib.get("PhysicalSizeY")
    if size_y is not None and _positive(size_y) != size:
        warnings.append(
            f"pixels are not square (PhysicalSizeX={pixels.attrib['PhysicalSizeX']}, "
            f"PhysicalSizeY={size_y}); using X"
        )
    return size * scale


def _ome_timing(pixels: ET.Element, n_frames: int) -> tuple[float | None, np.ndarray | None]:
    """OME TimeIncrement and per-plane DeltaT (seconds) along T."""
    interval = None
    inc = _positive(pixels.attrib.get("TimeIncrement"))
    scale = _UNIT_S.get(pixels.attrib.get("TimeIncrementUnit", "s"))
    if inc is not None and scale is not None:
        interval = inc * scale
    delta: dict[int, float] = {}
    for plane in pixels:
        if plane.tag.rsplit("}", 1)[-1] != "Plane" or "DeltaT" not in plane.attrib:
            continue
        if int(plane.attrib.get("TheC", 0)) or int(plane.attrib.get("TheZ", 0)):
            continue
        unit = _UNIT_S.get(plane.attrib.get("DeltaTUnit", "s"))
        try:
            t = float(plane.attrib["DeltaT"]) * (unit or math.nan)
            delta[int(plane.attrib.get("TheT", 0))] = t
        except ValueError:
            continue
    times = None
    if n_frames > 1 and sorted(delta) == list(range(n_frames)):
        arr = np.array([delta[k] for k in range(n_frames)])
        if np.isfinite(arr).all():
            times = arr - arr[0]
    return interval, times


def _imagej_pixel_size_nm(tif: tifffile.TiffFile, warnings: list[str]) -> float | None:
    meta = tif.imagej_metadata or {}
    unit = meta.get("unit")
    if unit is None or str(unit).strip().lower() in ("", "pixel", "pixels", "px"):
        return None
    scale = _length_unit_nm(unit)
    if scale is None:
        warnings.append(f"ImageJ unit {unit!r} is not a length unit; pixel size not read")
        return None
    xres, yres = tif.pages.first.get_resolution()
    if not (xres > 0 and math.isfinite(xres)):
        return None
    if yres > 0 and not math.isclose(xres, yres, rel_tol=1e-6):
        warnings.append(f"pixels are not square (x {1 / xres:g}, y {1 / yres:g} {unit}); using x")
    return scale / xres


def _metadata(
    tif: tifffile.TiffFile, n_frames: int, warnings: list[str]
) -> tuple[float | None, float | None, np.ndarray | None]:
    """Pixel size (nm), frame interval (s) and per-frame times (s) from the metadata."""
    pixel_size = interval = times = None
    pixels = _ome_pixels(tif, warnings)
    if pixels is not None:
        pixel_size = _ome_pixel_size_nm(pixels, warnings)
        interval, times = _ome_timing(pixels, n_frames)
    if tif.is_micromanager:
        summary = (tif.micromanager_metadata or {}).get("Summary") or {}
        if pixel_size is None:
            um = _positive(summary.get("PixelSize_um"))
            pixel_size = None if um is None else um * 1e3
        if interval is None:
            ms = _positive(summary.get("Interval_ms"))
            interval = None if ms is None else ms * 1e-3
    if tif.is_imagej:
        meta = tif.imagej_metadata or {}
        if pixel_size is None:
            pixel_size = _imagej_pixel_size_nm(tif, warnings)
        if interval is None:
            unit = _UNIT_S.get(str(meta.get("tunit", "s")).strip().lower(), 1.0)
            fi = _positive(meta.get("finterval"))
            interval = None if fi is None else fi * unit
    if interval is None and times is not None and times.size > 1:
        interval = float(np.median(np.diff(times)))
    return pixel_size, interval, times


# --------------------------------------------------------------------------
# TIFF
# --------------------------------------------------------------------------


class _CaptureLog(logging.Filter):
    """Collects (and keeps out of the root log) tifffile's messages.

    tifffile reports structural problems by logging, not raising; while a
    file is inspected they are collected here and either turned into our
    error or re-logged as warnings naming the file.
    """

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False

    def __enter__(self) -> _CaptureLog:
        logging.getLogger("tifffile").addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("tifffile").removeFilter(self)

    def messages(self, min_level: int = logging.WARNING) -> list[str]:
        """The messages, without tifffile's ``<tifffile.TiffFile 'x.tif'>`` prefixes."""
        return [
            re.sub(r"^(<tifffile\.[^>]*>\s*)+", "", r.getMessage())
            for r in self.records
            if r.levelno >= min_level
        ]


def _binary_only_target(tif: tifffile.TiffFile, path: str) -> str | None:
    """The metadata file of an OME-TIFF part whose XML is ``BinaryOnly``."""
    if not (tif.is_ome and tif.ome_metadata):
        return None
    try:
        root = ET.fromstring(tif.ome_metadata)
    except ET.ParseError:
        return None
    for el in root:
        if el.tag.rsplit("}", 1)[-1] == "BinaryOnly":
            name = el.attrib.get("MetadataFile", "")
            target = os.path.join(os.path.dirname(path), name)
            if not name or not os.path.isfile(target):
                raise RunFolderError(
                    path,
                    f"is one part of a multi-file OME-TIFF whose metadata "
                    f"are in '{name}', which does not exist",
                )
            if not target.lower().endswith((".tif", ".tiff")):
                raise RunFolderError(
                    path,
                    f"is one part of a multi-file OME-TIFF whose metadata "
                    f"are in the companion file '{name}'; companion "
                    "files are not supported, give a glob of the parts",
                )
            return target
    return None


def _page_file(page: Any, default: str) -> str:
    parent = getattr(page, "parent", None)
    fh = getattr(parent, "filehandle", None)
    p = getattr(fh, "path", None)
    return p if p else default


def _group_sources(
    frames: list[tuple[str, int, int]],
    *,
    frame_shape: tuple[int, int],
    file_dtype: str,
    stamps: dict[str, tuple[int, int]],
    mode: str,
) -> list[FrameSource]:
    """Runs of consecutive frames in one file as sources.

    ``frames`` holds (file, byte offset or page index, _) per frame.
    """
    out: list[FrameSource] = []
    nbytes = frame_shape[0] * frame_shape[1] * np.dtype(file_dtype).itemsize
    i = 0
    while i < len(frames):
        j = i + 1
        while j < len(frames) and frames[j][0] == frames[i][0]:
            j += 1
        path = frames[i][0]
        vals = [f[1] for f in frames[i:j]]
        common: dict[str, Any] = dict(
            path=path, n_frames=j - i, frame_shape=frame_shape, file_dtype=file_dtype, stamp=stamps[path]
        )
        if mode == "pages":
            out.append(FrameSource(mode="pages", pages=tuple(vals), **common))
        else:
            steps = np.diff(vals)
            if len(vals) == 1 or (steps[0] >= nbytes and (steps == steps[0]).all()):
                stride = int(steps[0]) if len(vals) > 1 else nbytes
                out.append(FrameSource(mode="strided", offset=int(vals[0]), stride=stride, **common))
            else:
                out.append(FrameSource(mode="offsets", offsets=tuple(int(v) for v in vals), **common))
        i = j
    return out


_SELECT_AXES = {"C": "channel", "Z": "z", "R": "position"}


def _tiff_selection(
    path: str, axes: str, shape: tuple[int, ...], select: dict[str, Any]
) -> np.ndarray | None:
    """Flat frame indices (time order) of the channel / z / position chosen in a TIFF hyperstack.

    None when the series has one frame axis and nothing is chosen.

    Raises
    ------
    RunFolderError
        A needed choice is missing, out of range or names an axis the file lacks.
    """
    lead = list(zip(axes[:-2], (int(n) for n in shape[:-2])))
    chosen = {k: v for k, v in select.items() if v is not None}
    multi = [(a, n) for a, n in lead if n > 1]
    if len(multi) <= 1 and not chosen:
        return None
    what = "a multi-position dataset" if "R" in dict(multi) else "a hyperstack"
    slices: list[Any] = []
    missing, time_axes = [], []
    for a, n in lead:
        key = _SELECT_AXES.get(a)
        if key is None:
            if n > 1:
                time_axes.append(a)
            slices.append(slice(None))
            continue
        v = chosen.pop(key, None)
        if v is None:
            if n > 1:
                missing.append(f"{key} = 0..{n - 1}")
            slices.append(0)
        elif isinstance(v, str) or not 0 <= int(v) < n:
            raise RunFolderError(
                path, f"{key} = {v!r} is not an index 0..{n - 1} of axis {a} ({axes} {shape})"
            )
        else:
            slices.append(int(v))
    given = {k: v for k, v in chosen.items() if v != 0}
    if given:
        raise RunFolderError(
            path,
            f"{', '.join(f'{k} = {v}' for k, v in given.items())} given but the image series has axes {axes} and shape {shape}",
        )
    if missing or len(time_axes) > 1:
        hint = f": choose with [movie] {', '.join(missing)}" if missing and len(time_axes) <= 1 else ""
        raise RunFolderError(
            path,
            f"image series has axes {axes} and shape {shape}; expected a single time axis (t, y, x), not {what}{hint}",
        )
    n_total = int(np.prod(shape[:-2], dtype=np.int64))
    return np.arange(n_total).reshape(shape[:-2])[tuple(slices)].ravel()


def _select_sources(
    sources: list[FrameSource], idx: np.ndarray, stamps: dict[str, tuple[int, int]]
) -> list[FrameSource]:
    """Sources of the frames ``idx`` (global indices into ``sources``, in that order)."""
    frames: list[tuple[str, int, int]] = []
    for src in sources:
        for k in range(src.n_frames):
            if src.mode == "strided":
                assert src.offset is not None and src.stride is not None
                where = src.offset + k * src.stride
            elif src.mode == "offsets":
                assert src.offsets is not None
                where = src.offsets[k]
            else:
                assert src.pages is not None
                where = src.pages[k]
            frames.append((src.path, int(where), len(frames)))
    first = sources[0]
    return _group_sources(
        [frames[int(i)] for i in idx],
        frame_shape=first.frame_shape,
        file_dtype=first.file_dtype,
        stamps=stamps,
        mode="pages" if first.mode == "pages" else "offsets",
    )


def _inspect_tiff(
    tif: tifffile.TiffFile,
    path: str,
    st: os.stat_result,
    log: _CaptureLog,
    select: dict[str, Any] | None = None,
) -> _Probed:
    """Check that the first series of ``tif`` is a complete (t, y, x) stack (or a chosen part of one)."""
    warnings: list[str] = []
    series, kind, frame_shape = _first_series(tif, path, warnings)
    fmt = {"mmstack": "mmstack", "ome": "ome", "imagej": "imagej"}.get(kind, "tiff")
    shape, axes = tuple(series.shape), series.axes
    chosen_idx = _time_axis(path, axes, shape, select, warnings)
    n_total = int(np.prod(shape[:-2], dtype=np.int64)) if len(shape) > 2 else 1

    fatal = [m for m in log.messages() if any(s in m for s in _FATAL_LOG)]
    if fatal:
        raise RunFolderError(path, f"truncated or corrupt TIFF ({fatal[0]}; the file has {st.st_size} bytes)")

    file_dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder).str
    nbytes = frame_shape[0] * frame_shape[1] * np.dtype(file_dtype).itemsize
    stamps = {path: (st.st_size, st.st_mtime_ns)}
    frame_numbers = None
    if not series.is_multifile and series.dataoffset is not None and series.keyframe.is_final:
        # one contiguous block of frames (tifffile, ImageJ, BigTIFF writers)
        sources = [
            _contiguous_source(path, int(series.dataoffset), n_total, nbytes, frame_shape, file_dtype, st)
        ]
    else:
        layout = (n_total, nbytes, frame_shape, file_dtype)
        sources, frame_numbers = _page_sources(path, series, kind, log, layout, stamps, warnings)

    if chosen_idx is not None:
        if frame_numbers is not None:
            raise RunFolderError(
                path,
                "choosing a channel / z plane of a Micro-Manager dataset with missing frames is not supported",
            )
        sources = _select_sources(list(sources), chosen_idx, stamps)
    n_frames = sum(s.n_frames for s in sources)
    pixel_size, interval, times = _metadata(tif, n_frames if chosen_idx is not None else n_total, warnings)
    if times is not None and frame_numbers is not None:
        times = times[frame_numbers]
    files = tuple(dict.fromkeys(s.path for s in sources))
    if len(files) > 1:
        logger.debug("%s: %s dataset of %d files, %d frames", path, fmt, len(files), n_frames)
    return _Probed(
        sources=tuple(sources),
        format=fmt,
        axes=axes,
        pixel_size_nm=pixel_size,
        frame_interval_s=interval,
        frame_numbers=frame_numbers,
        frame_time_s=times,
        warnings=tuple(warnings),
        files=files,
    )


def _first_series(tif: tifffile.TiffFile, path: str, warnings: list[str]) -> tuple[Any, str, tuple[int, int]]:
    """The first image series, its kind and its frame shape; refused unless its pages are 2-D grayscale."""
    if not tif.series:
        raise RunFolderError(path, "contains no image data (empty or corrupt TIFF)")
    series = tif.series[0]
    kind = series.kind or "tiff"
    if len(tif.series) > 1:
        warnings.append(
            f"has {len(tif.series)} image series; reading only the first ({series.axes} {series.shape})"
        )
    key = series.keyframe
    if key.samplesperpixel > 1:
        raise RunFolderError(
            path,
            f"frames have {key.samplesperpixel} samples per pixel "
            "(colour?); expected grayscale frames (t, y, x)",
        )
    if len(key.shape) != 2 or series.dtype is None:
        raise RunFolderError(
            path,
            f"pages of shape {key.shape} and type {series.dtype} are not "
            "supported; expected 2-D grayscale frames",
        )
    frame_shape = (int(key.shape[0]), int(key.shape[1]))
    shape, axes = tuple(series.shape), series.axes
    if shape[-2:] != frame_shape:
        raise RunFolderError(
            path, f"image series {axes} {shape} does not end with the page shape {frame_shape}"
        )
    return series, kind, frame_shape


def _time_axis(path: str, axes: str, shape: tuple, select: dict[str, Any] | None, warnings: list[str]):
    """The frames of the one time axis: None (all, in file order) or the file indices of the chosen
    channel / z plane / position; refused for a hyperstack without a choice."""
    lead = [(a, int(n)) for a, n in zip(axes[:-2], shape[:-2]) if n > 1]
    n_lead = int(np.prod([n for _, n in lead], dtype=np.int64)) if lead else 1
    flattened = len(lead) > 1 and all(a in "QI" for a, _ in lead)
    if flattened:
        warnings.append(
            f"image series has axes {axes} and shape {shape} of unknown meaning; "
            f"read as {n_lead} frames in file order (time)"
        )
        lead = [("T", n_lead)]
    chosen_idx = None
    if len(lead) > 1 or any(v is not None for v in (select or {}).values()):
        sel_axes, sel_shape = (axes, shape) if not flattened else ("Q" + axes[-2:], (n_lead, *shape[-2:]))
        chosen_idx = _tiff_selection(path, sel_axes, sel_shape, select or {})
        if chosen_idx is not None:
            picked = ", ".join(f"{k} {v}" for k, v in (select or {}).items() if v is not None)
            logger.info("%s: %s %s, reading %s (%d frames)", path, axes, shape, picked, chosen_idx.size)
            lead = [("T", int(chosen_idx.size))]
    if len(lead) > 1:
        what = "a multi-position dataset" if "R" in dict(lead) else "a hyperstack"
        raise RunFolderError(
            path,
            f"image series has axes {axes} and shape {shape}; expected a "
            f"single time axis (t, y, x), not {what}",
        )
    if lead and lead[0][0] in "CSZ":
        name = {"C": "channels", "S": "samples", "Z": "depth"}[lead[0][0]]
        warnings.append(
            f"the metadata call the frame axis '{lead[0][0]}' ({name}) in {axes} {shape}; reading it as time"
        )
    return chosen_idx


def _contiguous_source(
    path, offset: int, n_total: int, nbytes: int, frame_shape, file_dtype, st
) -> FrameSource:
    """One block of ``n_total`` frames from ``offset`` (refused when the file is shorter)."""
    end = offset + n_total * nbytes
    if end > st.st_size:
        have = max(0, (st.st_size - offset) // max(1, nbytes))
        raise RunFolderError(
            path,
            f"truncated: {n_total} frames need {end} bytes but the file "
            f"has {st.st_size} (about {have} complete frames)",
        )
    return FrameSource(
        path=path,
        n_frames=n_total,
        frame_shape=frame_shape,
        file_dtype=file_dtype,
        stamp=(st.st_size, st.st_mtime_ns),
        mode="strided",
        offset=offset,
        stride=nbytes,
    )


def _page_sources(path, series, kind: str, log: _CaptureLog, layout, stamps: dict, warnings: list[str]):
    """Frame sources page by page (``layout``: frames, bytes per frame, frame shape, dtype) and the
    frame numbers when a Micro-Manager dataset lacks some (refused: missing or truncated pages)."""
    n_total, nbytes, frame_shape, file_dtype = layout
    pages = list(series.pages)
    if len(pages) != n_total:
        raise RunFolderError(
            path,
            f"truncated or corrupt: the metadata describe {n_total} frames but {len(pages)} pages were found",
        )
    page_of = {i: p for i, p in enumerate(pages) if p is not None}
    present = list(page_of)
    missing = n_total - len(present)
    frame_numbers = None
    if missing:
        if kind != "mmstack":
            lost = [
                m.group(1)
                for m in (re.search(r"failed to read '([^']+)'", msg) for msg in log.messages())
                if m
            ]
            why = (
                f"part file '{lost[0]}' of the multi-file series cannot be read"
                if lost
                else "a file of the multi-file series is missing, or the file is truncated"
            )
            raise RunFolderError(path, f"{missing} of {n_total} frames are missing: {why}")
        gaps = [i for i in range(n_total) if pages[i] is None]
        warnings.append(
            f"{missing} of {n_total} frames are missing from the Micro-Manager "
            f"dataset (time indices {gaps[:10]}{' ...' if missing > 10 else ''}); "
            "their frame numbers are recorded"
        )
        frame_numbers = np.asarray(present, dtype=np.int64)
    frames, final = _page_frames(path, page_of, present, nbytes, series.keyframe.is_final, stamps)
    if not final:
        if kind == "mmstack":
            raise RunFolderError(
                path, "Micro-Manager dataset with compressed or scattered image data is not supported"
            )
        frames = [(f, int(page_of[i].index), i) for f, _, i in frames]
    sources = _group_sources(
        frames,
        frame_shape=frame_shape,
        file_dtype=file_dtype,
        stamps=stamps,
        mode="offsets" if final else "pages",
    )
    return sources, frame_numbers


def _page_frames(path, page_of: dict, present: list, nbytes: int, final: bool, stamps: dict):
    """``(file, data offset or page index, frame)`` of every present page, each file stamped, and
    whether every frame is one uncompressed contiguous block (refused: a page's data missing)."""
    frames: list[tuple[str, int, int]] = []
    for i in present:
        page = page_of[i]
        fpath = _page_file(page, path)
        if fpath not in stamps:
            try:
                fst = os.stat(fpath)
            except OSError as exc:
                raise RunFolderError(
                    fpath, f"part of the multi-file series {path} cannot be read: {exc.strerror}"
                ) from None
            stamps[fpath] = (fst.st_size, fst.st_mtime_ns)
        offs, counts = page.dataoffsets, page.databytecounts
        size = stamps[fpath][0]
        ends = [o + c for o, c in zip(offs, counts)]
        if not ends or max(ends) > size or min(counts) == 0:
            raise RunFolderError(
                fpath, f"truncated: image data of frame {i} are missing (file has {size} bytes)"
            )
        if final:
            contiguous = all(offs[j] + counts[j] == offs[j + 1] for j in range(len(offs) - 1))
            if not contiguous or sum(counts) != nbytes:
                final = False
        frames.append((fpath, int(offs[0]) if final else int(page.index), i))
    return frames, final


def _probe_tiff(
    path: str, st: os.stat_result, *, redirected: bool = False, select: dict[str, Any] | None = None
) -> _Probed:
    with _CaptureLog() as log:
        try:
            with tifffile.TiffFile(path) as tif:
                target = None if redirected else _binary_only_target(tif, path)
                info = None if target else _inspect_tiff(tif, path, st, log, select)
        except RunFolderError:
            raise
        except tifffile.TiffFileError as exc:
            raise RunFolderError(path, f"not a TIFF file, or its header is corrupt ({exc})") from None
        except OSError as exc:
            raise RunFolderError(path, f"cannot be read: {exc}") from None
        except Exception as exc:
            raise RunFolderError(path, f"corrupt or unsupported TIFF ({type(exc).__name__}: {exc})") from exc
    if target is not None:
        logger.info("%s: part of a multi-file OME-TIFF; reading the dataset from %s", path, target)
        return _probe_tiff(target, os.stat(target), redirected=True, select=select)
    assert info is not None
    msgs = [m for m in log.messages() if "MMStack is missing" not in m]  # reported by us
    extra = [f"tifffile: {m}" for m in msgs[:_MAX_LOGGED]]
    if len(msgs) > _MAX_LOGGED:
        extra.append(f"tifffile: ... and {len(msgs) - _MAX_LOGGED} more messages")
    if extra:
        info = dataclasses.replace(info, warnings=info.warnings + tuple(extra))
    return info


# --------------------------------------------------------------------------
# any file
# --------------------------------------------------------------------------


def _probe_spe(path: str) -> _Probed:
    from .spe import probe_spe

    spe = probe_spe(path)
    interval = None
    if spe.frame_time_s is not None and spe.frame_time_s.size > 1:
        interval = float(np.median(np.diff(spe.frame_time_s)))
    return _Probed(
        sources=(spe.source,),
        format="spe",
        axes="TYX" if spe.source.n_frames > 1 else "YX",
        frame_interval_s=interval,
        frame_numbers=spe.frame_numbers,
        frame_time_s=spe.frame_time_s,
        warnings=spe.warnings,
        files=(path,),
        wavelength_nm=spe.wavelength_nm,
        # the v2 header's exposure is in WinSpec's display unit (s or ms), which is not recorded
        exposure_s=None,
    )


def _probe_sif(path: str) -> _Probed:
    from .sif import probe_sif

    sif = probe_sif(path)
    return _Probed(
        sources=(sif.source,),
        format="sif",
        axes="TYX" if sif.source.n_frames > 1 else "YX",
        frame_interval_s=sif.frame_interval_s,
        frame_time_s=sif.frame_time_s,
        warnings=sif.warnings,
        files=(path,),
        wavelength_nm=sif.wavelength_nm,
        exposure_s=sif.exposure_s,
    )


def _probe_nd2(path: str, select: dict[str, Any]) -> _Probed:
    from .nd2 import probe_nd2

    info = probe_nd2(path, **select)
    return _Probed(
        sources=(info.source,),
        format="nd2",
        axes=info.axes,
        pixel_size_nm=info.pixel_size_nm,
        frame_interval_s=info.frame_interval_s,
        frame_time_s=info.frame_time_s,
        warnings=info.warnings,
        files=(path,),
    )


def _probe(path: str, select: dict[str, Any] | None = None) -> _Probed:
    """Open one movie file, check it, and return where its frames are."""
    from .nd2 import ND2_MAGIC
    from .sif import SIF_MAGIC

    select = select or {}
    try:
        st = os.stat(path)
        with open(path, "rb") as fh:
            head = fh.read(len(SIF_MAGIC))
        magic = head[:4]
    except OSError as exc:
        raise RunFolderError(path, f"cannot be read: {exc.strerror}") from None
    if st.st_size == 0:
        raise RunFolderError(path, "is empty (0 bytes), not a movie file")
    if path.lower().endswith(".spe"):
        return _probe_spe(path)
    if head == SIF_MAGIC:
        return _probe_sif(path)
    if magic in ND2_MAGIC or path.lower().endswith(".nd2"):
        return _probe_nd2(path, select)
    if magic not in _TIFF_MAGIC:
        raise RunFolderError(
            path, f"not a TIFF file (starts with {magic!r}) nor an SPE, Andor SIF or Nikon ND2 file"
        )
    return _probe_tiff(path, st, select=select)


#: Target chunk size of ``chunk_frames="auto"``: below glibc's largest mmap
#: threshold (32 MiB), so chunk buffers are reused instead of freshly mapped.
#: A chunk at or above it (64 frames of 512x512 uint16 is exactly 32 MiB) is
#: mapped and zeroed by the kernel anew for every chunk: measured 1.36x the
#: read time of 16 MiB chunks (800 frames of 512x512, warm cache).
AUTO_CHUNK_BYTES = 16 * 2**20


def _auto_chunk_frames(frame_shape: tuple[int, int], dtype: np.dtype) -> int:
    frame_bytes = frame_shape[0] * frame_shape[1] * np.dtype(dtype).itemsize
    return int(np.clip(AUTO_CHUNK_BYTES // max(1, frame_bytes), 1, 256))


def _probe_all(spec: str, select: dict[str, Any]) -> list[_Probed]:
    """Every file of ``spec`` probed once (a part of a multi-file dataset already read is skipped)."""
    probed: list[_Probed] = []
    covered: set[str] = set()
    for p in _expand(spec):
        if os.path.realpath(p) in covered:
            continue  # a part of a multi-file dataset already read
        info = _probe(p, select)
        covered.update(os.path.realpath(f) for f in info.files)
        probed.append(info)
    return probed


def _check_series(spec: str, probed: list[_Probed]):
    """``(warnings, pixel size, wavelength axis)`` of the files of one movie; refused when their
    frame shapes or pixel types differ (a disagreeing pixel size or wavelength axis is a warning)."""
    first = probed[0]
    warnings: list[str] = []
    for f in probed:
        warnings.extend(f"{f.path}: {w}" for w in f.warnings)
    for f in probed[1:]:
        if f.frame_shape != first.frame_shape:
            raise RunFolderError(
                f.path,
                f"frames are {f.frame_shape[0]}x{f.frame_shape[1]} pixels "
                f"but {first.path} has {first.frame_shape[0]}x"
                f"{first.frame_shape[1]}; all files of '{spec}' must "
                "have the same frame shape",
            )
        if f.dtype != first.dtype:
            raise RunFolderError(
                f.path,
                f"pixel type is {f.dtype} but {first.path} has "
                f"{first.dtype}; all files of '{spec}' must match",
            )
    sizes = {f.pixel_size_nm for f in probed}
    pixel_size = first.pixel_size_nm
    if len(sizes) > 1:
        warnings.append(
            f"{spec}: files disagree on the pixel size ({sorted(sizes, key=str)}); "
            f"using {pixel_size} nm from {first.path}"
        )
    wavelength = first.wavelength_nm
    for f in probed[1:]:
        other = f.wavelength_nm
        if (wavelength is None) != (other is None) or (
            wavelength is not None and other is not None and np.max(np.abs(other - wavelength)) > 1e-6
        ):
            warnings.append(
                f"{f.path}: wavelength axis differs from that of {first.path}; using the first file's"
            )
            break
    return warnings, pixel_size, wavelength


def _lazy_array(
    frames: LazyFrames, chunk_frames: int | str, spec: str, pixel_size, max_chunk_bytes: int | None = None
) -> Any:
    """The dask array over ``frames``, in chunks of whole frames along time (none read yet)."""
    import dask.array as da
    from dask.base import tokenize

    if chunk_frames == "auto":
        chunk_frames = _auto_chunk_frames(frames.shape[1:], frames.dtype)
    if max_chunk_bytes is not None:
        frame_bytes = int(np.prod(frames.shape[1:])) * np.dtype(frames.dtype).itemsize
        chunk_frames = min(int(chunk_frames), max(1, int(max_chunk_bytes) // max(1, frame_bytes)))
    chunks = (min(int(chunk_frames), max(1, frames.shape[0])), *frames.shape[1:])
    data = da.from_array(
        frames,
        chunks=chunks,
        name=f"frames-{tokenize(frames, chunks)}",
        meta=np.empty((0, 0, 0), frames.dtype),
        fancy=False,
        lock=False,
        asarray=False,
        inline_array=False,
    )
    sources = frames.files
    logger.debug(
        "opened %s: %d file(s), shape %s, dtype %s, %s, chunks of %d frames (%d chunks), pixel size %s nm",
        spec,
        len(sources),
        frames.shape,
        frames.dtype,
        "/".join(sorted({s.mode for s in sources})),
        chunks[0],
        len(data.chunks[0]),
        pixel_size,
    )
    return data


def open_stack(
    path: str | os.PathLike,
    *,
    chunk_frames: int | Literal["auto"] = 64,
    channel: int | str | None = None,
    z: int | None = None,
    position: int | None = None,
    max_chunk_bytes: int | None = None,
) -> Stack:
    """Open a movie (or a series of files) as a lazy ``(t, y, x)`` array.

    Parameters
    ----------
    path : str or path-like
        A TIFF/BigTIFF file (plain, ImageJ, OME-TIFF, a Micro-Manager
        MMStack dataset given by any of its files), a Princeton Instruments
        ``.spe`` file, or a glob pattern such as ``"movie_*.tif"``: the
        matching files are concatenated along time in name order (digit runs
        compared as numbers, so ``_2`` precedes ``_10``). A single-page TIFF
        gives a stack of one frame.
    chunk_frames : int or 'auto', optional
        Frames per dask chunk (time axis only; each chunk holds whole frames).
        ``'auto'``: as many frames as fit in 16 MiB (1 to 256); measured
        faster than 64 frames of 512x512 (32 MiB), whose buffers the C
        allocator maps fresh for every chunk.
    channel, z, position : optional
        For multi-dimensional Nikon ND2 files and TIFF hyperstacks (ImageJ,
        OME: axes ``C``, ``Z``, ``R``): the channel (index, or name for
        ND2), z plane and stage position to read (required when the file
        has several; the error names the file's axes).
    max_chunk_bytes : int, optional
        Fewer frames per chunk when ``chunk_frames`` frames would exceed
        this many bytes (at least one frame). ``plscope run`` passes
        :data:`AUTO_CHUNK_BYTES` (16 MiB), which keeps chunk buffers below the
        allocator's mmap threshold.

    Returns
    -------
    Stack
        Nothing but metadata is read; ``stack.data`` reads frames on compute.

    Raises
    ------
    RunFolderError
        The file is missing, not a TIFF or SPE file, truncated or corrupt,
        not a grayscale (t, y, x) stack, a file of a multi-file series is
        missing, or files of a series differ in frame shape or pixel type.
    ValueError
        ``chunk_frames`` is not a positive integer.
    """
    if chunk_frames != "auto" and (
        isinstance(chunk_frames, bool) or not isinstance(chunk_frames, (int, np.integer)) or chunk_frames < 1
    ):
        raise ValueError(f"chunk_frames must be a positive integer or 'auto', got {chunk_frames!r}")
    spec = os.fspath(path)
    probed = _probe_all(spec, {"channel": channel, "z": z, "position": position})
    first = probed[0]
    warnings, pixel_size, wavelength = _check_series(spec, probed)
    interval = first.frame_interval_s
    if len(probed) > 1 and all(f.n_frames == 1 for f in probed):
        interval = None  # the time between files of single frames is not recorded
    for w in warnings:
        logger.warning("%s", w)

    sources = tuple(s for f in probed for s in f.sources)
    frames = LazyFrames(sources)
    data = _lazy_array(frames, chunk_frames, spec, pixel_size, max_chunk_bytes)
    single = len(probed) == 1
    return Stack(
        data=data,
        paths=tuple(s.path for s in sources),
        pixel_size_nm=pixel_size,
        dtype=frames.dtype,
        shape=frames.shape,
        frame_offsets=frames._starts[:-1],
        warnings=tuple(warnings),
        axes=first.axes,
        format=first.format,
        frame_interval_s=interval,
        frame_numbers=first.frame_numbers if single else None,
        frame_time_s=first.frame_time_s if single else None,
        wavelength_nm=wavelength,
        exposure_s=first.exposure_s,
    )


def stack_frame_times(stack: Stack, frame_rate_hz: float | None = None) -> tuple[np.ndarray, str]:
    """Frame start times (s) of a stack without a DAQ log, and what they come from.

    In order of preference: a frame rate given by the user, the file's own
    per-frame time stamps, its recorded frame (cycle) interval, else the
    frame index.

    Returns
    -------
    time_s : numpy.ndarray, shape (n_frames,)
    source : str
        E.g. ``"movie.frame_rate_hz"``, ``"the file's time stamps"``,
        ``"the file's cycle time (0.1 s)"`` or ``"frame index (no frame rate known)"``.
    """
    n = int(stack.shape[0])
    if frame_rate_hz:
        return np.arange(n) / float(frame_rate_hz), f"the given frame rate ({frame_rate_hz:g} Hz)"
    times = stack.frame_time_s
    if times is not None and len(times) == n and n > 1 and np.all(np.diff(times) > 0):
        return np.asarray(times, float), "the file's own time stamps"
    if stack.frame_interval_s:
        dt = float(stack.frame_interval_s)
        return np.arange(n) * dt, f"the file's cycle time ({dt:g} s)"
    return np.arange(n, dtype=float), "frame index (no frame rate known)"
