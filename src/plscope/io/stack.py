"""Image stacks: TIFF files (plain, ImageJ, OME-TIFF) as lazy dask arrays.

:func:`open_stack` checks a TIFF file (or a glob of files, concatenated
along time in name order) at the door and returns a :class:`Stack` whose
``data`` is a lazy ``(t, y, x)`` dask array chunked along time only.

Design (see ``shared/perf-notes.md``):

- The dask graph holds one small picklable :class:`TiffFrames` object that
  carries file names, frame counts and byte offsets, never an open handle
  or image data, so graphs pickle to a few kB and run on a cluster.
- Uncompressed contiguous image data are read through a memory map that
  is opened once per process and file (an LRU cache keyed by path, offset
  and the file's size/mtime) and copied chunk by chunk into a fresh array.
- Anything else (compressed, tiled, scattered pages) is read page range by
  page range with tifffile, reopening the file in each task.

Peak memory is one chunk per running task, whatever the number of frames.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import logging
import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import tifffile

from ..errors import RunFolderError

if TYPE_CHECKING:
    import dask.array

logger = logging.getLogger(__name__)

__all__ = ["Stack", "TiffFrames", "open_stack"]

#: Nanometres per length unit, as written in ImageJ and OME metadata.
_UNIT_NM = {
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0,
    "um": 1e3, "\u00b5m": 1e3, "\u03bcm": 1e3, "micron": 1e3, "microns": 1e3,
    "micrometer": 1e3, "micrometre": 1e3,
    "mm": 1e6, "millimeter": 1e6, "millimetre": 1e6,
    "cm": 1e7, "centimeter": 1e7, "centimetre": 1e7,
    "m": 1e9, "meter": 1e9, "metre": 1e9,
    "\u00c5": 0.1, "\u212b": 0.1, "angstrom": 0.1,
}
#: tifffile log messages that mean the file structure is broken.
_FATAL_LOG = ("invalid page offset", "failed to reshape", "corrupted", "truncated")
_MAX_LOGGED = 5


@dataclass(frozen=True)
class _FileInfo:
    """What a task needs to read frames of one TIFF file (plain data only)."""

    path: str
    n_frames: int
    frame_shape: tuple[int, int]
    dtype: np.dtype             # native byte order
    mode: Literal["memmap", "pages"]
    offset: int | None          # byte offset of frame 0 (memmap mode)
    first_page: int | None      # file page of frame 0 when frames are consecutive pages
    file_dtype: str             # dtype string with the file's byte order
    stamp: tuple[int, int]      # (st_size, st_mtime_ns) when opened
    pixel_size_nm: float | None
    warnings: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class Stack:
    """A lazily read image stack.

    Attributes
    ----------
    data : dask.array.Array
        Frames, shape ``(t, y, x)`` (rows, columns), chunked along time only.
    paths : tuple of str
        The files, in the order their frames appear in ``data``.
    pixel_size_nm : float or None
        Pixel size in the sample plane from the TIFF metadata (ImageJ
        resolution + unit, or OME ``PhysicalSizeX``), None when absent.
    dtype : numpy.dtype
        Pixel type (native byte order).
    shape : tuple of int
        ``(n_frames, height, width)``.
    frame_offsets : tuple of int
        Index of the first frame of each file in ``data``.
    warnings : tuple of str
        Recoverable oddities of the metadata (also logged).
    """

    data: "dask.array.Array"
    paths: tuple[str, ...]
    pixel_size_nm: float | None
    dtype: np.dtype
    shape: tuple[int, int, int]
    frame_offsets: tuple[int, ...] = (0,)
    warnings: tuple[str, ...] = ()

    @property
    def n_frames(self) -> int:
        """Number of frames (length of the time axis)."""
        return self.shape[0]


# --------------------------------------------------------------------------
# the lazy array handed to dask
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=32)
def _memmap(path: str, offset: int, shape: tuple[int, int, int], file_dtype: str,
            stamp: tuple[int, int]) -> np.memmap:
    """Memory map of a contiguous TIFF series, opened once per process.

    ``stamp`` is part of the cache key so that a rewritten file is remapped.
    """
    return np.memmap(path, dtype=np.dtype(file_dtype), mode="r", offset=offset, shape=shape)


class TiffFrames:
    """A picklable, array-like view of the frames of one or more TIFF files.

    Indexing reads only the requested frames. The object holds file names,
    frame counts and offsets only (no open handle, no image data), which is
    what a dask graph may carry. It deliberately has no ``copy`` method.

    Parameters
    ----------
    files : sequence of _FileInfo
        As produced by :func:`open_stack`; all with the same frame shape
        and dtype.
    """

    def __init__(self, files: tuple[_FileInfo, ...]):
        self.files = tuple(files)
        first = self.files[0]
        self.dtype = first.dtype
        starts = np.cumsum([0] + [f.n_frames for f in self.files])
        self._starts = tuple(int(s) for s in starts)
        self.shape = (self._starts[-1], *first.frame_shape)
        self.ndim = 3

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"TiffFrames({len(self.files)} file(s), shape={self.shape}, dtype={self.dtype})"

    def __dask_tokenize__(self) -> tuple:
        return ("plscope.TiffFrames",
                tuple((f.path, f.stamp, f.n_frames, f.offset) for f in self.files))

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key) or len(key) > 3:
            raise IndexError("TiffFrames supports up to 3 indices (t, y, x) without Ellipsis")
        k0, rest = (key[0] if key else slice(None)), key[1:]
        n = self.shape[0]
        if isinstance(k0, slice) and (k0.step is None or k0.step == 1):
            start, stop, _ = k0.indices(n)
            frames = self._read(start, max(start, stop))
        elif isinstance(k0, (int, np.integer)):
            i = int(k0) + n if k0 < 0 else int(k0)
            if not 0 <= i < n:
                raise IndexError(f"frame {k0} out of range for {n} frames")
            frames = self._read(i, i + 1)[0]
        else:  # step slice, integer array, boolean mask: frame by frame
            idx = np.arange(n)[k0]
            frames = np.empty((idx.size, *self.shape[1:]), self.dtype)
            for j, i in enumerate(idx.ravel()):
                frames[j] = self._read(int(i), int(i) + 1)[0]
            frames = frames.reshape(*idx.shape, *self.shape[1:])
        if not rest:
            return frames
        return frames[(slice(None),) * (frames.ndim - 2) + rest]

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` (global indices) as a new array."""
        out = np.empty((stop - start, *self.shape[1:]), self.dtype)
        if stop <= start:
            return out
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        for fi in range(first, len(self.files)):
            f0 = self._starts[fi]
            if f0 >= stop:
                break
            a, b = max(start, f0), min(stop, self._starts[fi + 1])
            if b > a:
                _read_file(self.files[fi], a - f0, b - f0, out[a - start:b - start])
        return out


def _read_file(info: _FileInfo, start: int, stop: int, out: np.ndarray) -> None:
    """Read frames ``start:stop`` of one file into ``out``."""
    try:
        st = os.stat(info.path)
    except OSError as exc:
        raise RunFolderError(info.path, f"cannot be read any more: {exc.strerror}") from None
    if (st.st_size, st.st_mtime_ns) != info.stamp:
        raise RunFolderError(info.path, "file changed since the stack was opened; open it again")
    if info.mode == "memmap":
        assert info.offset is not None
        mm = _memmap(info.path, info.offset, (info.n_frames, *info.frame_shape),
                     info.file_dtype, info.stamp)
        out[...] = mm[start:stop]
        return
    try:
        with tifffile.TiffFile(info.path, _multifile=False) as tif:
            if info.first_page is not None:  # no need to parse the series (all pages)
                first = info.first_page
                arr = tif.asarray(key=slice(first + start, first + stop), maxworkers=1)
            else:
                arr = tif.asarray(key=slice(start, stop), series=0, maxworkers=1)
    except Exception as exc:  # noqa: BLE001 - a file that parsed at open must still parse
        raise RunFolderError(info.path, f"cannot read frames {start}-{stop - 1}: {exc}") from exc
    out[...] = arr.reshape(out.shape)


# --------------------------------------------------------------------------
# opening and checking
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

    def __enter__(self) -> "_CaptureLog":
        logging.getLogger("tifffile").addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("tifffile").removeFilter(self)

    def messages(self, min_level: int = logging.WARNING) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= min_level]


def _natural_key(path: str) -> list:
    """Sort key: digit runs compare as numbers (movie_2 before movie_10)."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path)]


def _expand(path: str) -> list[str]:
    if os.path.exists(path):
        if not os.path.isfile(path):
            raise RunFolderError(path, "is a folder, not a TIFF file")
        return [path]
    if any(ch in path for ch in "*?["):
        matches = sorted((p for p in glob.glob(path) if os.path.isfile(p)), key=_natural_key)
        if not matches:
            raise RunFolderError(path, "no file matches this pattern")
        return matches
    raise RunFolderError(path, "file does not exist")


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


def _pixel_size_nm(tif: tifffile.TiffFile, warnings: list[str]) -> float | None:
    """Pixel size from OME PhysicalSizeX or ImageJ resolution + unit."""
    if tif.is_ome and tif.ome_metadata:
        try:
            root = ET.fromstring(tif.ome_metadata)
        except ET.ParseError as exc:
            warnings.append(f"OME-XML metadata cannot be parsed ({exc}); pixel size not read")
            return None
        pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
        if pixels is None or "PhysicalSizeX" not in pixels.attrib:
            return None
        unit = pixels.attrib.get("PhysicalSizeXUnit", "\u00b5m")
        scale = _length_unit_nm(unit)
        try:
            size = float(pixels.attrib["PhysicalSizeX"])
        except ValueError:
            size = math.nan
        if scale is None or not (size > 0 and math.isfinite(size)):
            warnings.append(f"OME PhysicalSizeX={pixels.attrib['PhysicalSizeX']!r} {unit!r} "
                            "is not a usable length; pixel size not read")
            return None
        size_y = pixels.attrib.get("PhysicalSizeY")
        if size_y is not None and size_y != pixels.attrib["PhysicalSizeX"]:
            warnings.append(f"pixels are not square (PhysicalSizeX={pixels.attrib['PhysicalSizeX']}, "
                            f"PhysicalSizeY={size_y}); using X")
        return size * scale
    if tif.is_imagej:
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
    return None


def _inspect(tif: tifffile.TiffFile, path: str, st: os.stat_result,
             log: _CaptureLog) -> _FileInfo:
    """Check that the first series of ``tif`` is a complete (t, y, x) stack."""
    warnings: list[str] = []
    if not tif.series:
        raise RunFolderError(path, "contains no image data")
    series = tif.series[0]
    if len(tif.series) > 1:
        warnings.append(f"has {len(tif.series)} image series; reading only the first "
                        f"({series.axes} {series.shape})")
    key = series.keyframe
    if key.samplesperpixel > 1:
        raise RunFolderError(path, f"frames have {key.samplesperpixel} samples per pixel "
                                   "(colour?); expected grayscale frames (t, y, x)")
    if len(key.shape) != 2 or series.dtype is None:
        raise RunFolderError(path, f"pages of shape {key.shape} and type {series.dtype} are not "
                                   "supported; expected 2-D grayscale frames")
    frame_shape = (int(key.shape[0]), int(key.shape[1]))
    shape, axes = tuple(series.shape), series.axes
    if shape[-2:] != frame_shape:
        raise RunFolderError(path, f"image series {axes} {shape} does not end with the page "
                                   f"shape {frame_shape}")
    lead = [(a, int(n)) for a, n in zip(axes[:-2], shape[:-2]) if n > 1]
    if len(lead) > 1:
        raise RunFolderError(path, f"image series has axes {axes} and shape {shape}; expected a "
                                   "single time axis (t, y, x), not a hyperstack")
    if lead and lead[0][0] in "CS":
        warnings.append(f"the metadata call the frame axis '{lead[0][0]}' (channels) in "
                        f"{axes} {shape}; reading it as time")
    n_frames = int(np.prod(shape[:-2], dtype=np.int64)) if len(shape) > 2 else 1

    fatal = [m for m in log.messages() if any(s in m for s in _FATAL_LOG)]
    if fatal:
        raise RunFolderError(path, f"truncated or corrupt TIFF ({fatal[0]})")

    dtype = np.dtype(series.dtype).newbyteorder("=")
    file_dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder).str
    nbytes = n_frames * frame_shape[0] * frame_shape[1] * dtype.itemsize
    if series.dataoffset is not None and key.is_final:
        mode: Literal["memmap", "pages"] = "memmap"
        offset: int | None = int(series.dataoffset)
        first_page: int | None = None
        end = offset + nbytes
        if end > st.st_size:
            have = max(0, (st.st_size - offset) // max(1, nbytes // max(1, n_frames)))
            raise RunFolderError(path, f"truncated: {n_frames} frames need {end} bytes but the file "
                                       f"has {st.st_size} (about {have} complete frames)")
    else:
        mode, offset = "pages", None
        pages = series.pages
        index = [getattr(p, "index", None) for p in pages]
        first_page = index[0] if index and isinstance(index[0], int) else None
        if first_page is not None and index != list(range(first_page, first_page + len(index))):
            first_page = None
        if len(pages) != n_frames:
            raise RunFolderError(path, f"truncated or corrupt: the metadata describe {n_frames} "
                                       f"frames but {len(pages)} pages were found")
        for i, page in enumerate(pages):
            if page is None:
                raise RunFolderError(path, f"page {i} is missing or corrupt")
            ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts)]
            if not ends or max(ends) > st.st_size or min(page.databytecounts) == 0:
                raise RunFolderError(path, f"truncated: image data of frame {i} are missing "
                                           f"(file has {st.st_size} bytes)")

    pixel_size = _pixel_size_nm(tif, warnings)
    return _FileInfo(path=path, n_frames=n_frames, frame_shape=frame_shape, dtype=dtype,
                     mode=mode, offset=offset, first_page=first_page, file_dtype=file_dtype,
                     stamp=(st.st_size, st.st_mtime_ns), pixel_size_nm=pixel_size,
                     warnings=tuple(warnings))


def _probe(path: str) -> _FileInfo:
    """Open one TIFF file, check it, and return how to read it."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise RunFolderError(path, f"cannot be read: {exc.strerror}") from None
    if st.st_size == 0:
        raise RunFolderError(path, "is empty (0 bytes), not a TIFF file")
    with _CaptureLog() as log:
        try:
            with tifffile.TiffFile(path, _multifile=False) as tif:
                info = _inspect(tif, path, st, log)
        except RunFolderError:
            raise
        except tifffile.TiffFileError as exc:
            raise RunFolderError(path, f"not a TIFF file, or its header is corrupt ({exc})") from None
        except OSError as exc:
            raise RunFolderError(path, f"cannot be read: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - tifffile raises many types on bad files
            raise RunFolderError(path, f"corrupt or unsupported TIFF "
                                       f"({type(exc).__name__}: {exc})") from exc
    msgs = log.messages()
    extra = [f"tifffile: {m}" for m in msgs[:_MAX_LOGGED]]
    if len(msgs) > _MAX_LOGGED:
        extra.append(f"tifffile: ... and {len(msgs) - _MAX_LOGGED} more messages")
    if extra:
        info = dataclasses.replace(info, warnings=info.warnings + tuple(extra))
    return info


def open_stack(path: str | os.PathLike, *, chunk_frames: int = 64) -> Stack:
    """Open a TIFF stack (or a series of files) as a lazy ``(t, y, x)`` array.

    Parameters
    ----------
    path : str or path-like
        A TIFF file (plain, ImageJ or OME-TIFF), or a glob pattern such as
        ``"movie_*.tif"``: the matching files are concatenated along time in
        name order (digit runs compared as numbers, so ``_2`` precedes ``_10``).
        A single-page TIFF gives a stack of one frame.
    chunk_frames : int, optional
        Frames per dask chunk (time axis only; each chunk holds whole frames).

    Returns
    -------
    Stack
        Nothing but metadata is read; ``stack.data`` reads frames on compute.

    Raises
    ------
    RunFolderError
        The file is missing, not a TIFF, truncated or corrupt, not a
        grayscale (t, y, x) stack, or files of a series differ in frame
        shape or pixel type.
    ValueError
        ``chunk_frames`` is not a positive integer.
    """
    import dask.array as da
    from dask.base import tokenize

    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, (int, np.integer)) \
            or chunk_frames < 1:
        raise ValueError(f"chunk_frames must be a positive integer, got {chunk_frames!r}")
    spec = os.fspath(path)
    files = tuple(_probe(p) for p in _expand(spec))

    first = files[0]
    warnings: list[str] = []
    for f in files:
        warnings.extend(f"{f.path}: {w}" for w in f.warnings)
    for f in files[1:]:
        if f.frame_shape != first.frame_shape:
            raise RunFolderError(f.path, f"frames are {f.frame_shape[0]}x{f.frame_shape[1]} pixels "
                                         f"but {first.path} has {first.frame_shape[0]}x"
                                         f"{first.frame_shape[1]}; all files of '{spec}' must "
                                         "have the same frame shape")
        if f.dtype != first.dtype:
            raise RunFolderError(f.path, f"pixel type is {f.dtype} but {first.path} has "
                                         f"{first.dtype}; all files of '{spec}' must match")
    sizes = {f.pixel_size_nm for f in files}
    pixel_size = first.pixel_size_nm
    if len(sizes) > 1:
        warnings.append(f"{spec}: files disagree on the pixel size ({sorted(sizes, key=str)}); "
                        f"using {pixel_size} nm from {first.path}")
    for w in warnings:
        logger.warning("%s", w)

    frames = TiffFrames(files)
    chunks = (min(int(chunk_frames), max(1, frames.shape[0])), *frames.shape[1:])
    data = da.from_array(frames, chunks=chunks, name=f"tiff-{tokenize(frames, chunks)}",
                         meta=np.empty((0, 0, 0), frames.dtype), fancy=False, lock=False,
                         asarray=False, inline_array=False)
    logger.debug("opened %s: %d file(s), shape %s, dtype %s, %s, chunks of %d frames (%d chunks), "
                 "pixel size %s nm", spec, len(files), frames.shape, frames.dtype,
                 "/".join(sorted({f.mode for f in files})), chunks[0], len(data.chunks[0]),
                 pixel_size)
    return Stack(data=data, paths=tuple(f.path for f in files), pixel_size_nm=pixel_size,
                 dtype=frames.dtype, shape=frames.shape,
                 frame_offsets=frames._starts[:-1], warnings=tuple(warnings))
