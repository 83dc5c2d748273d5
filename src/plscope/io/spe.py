"""Princeton Instruments SPE files (WinView/WinSpec v2.x, LightField v3.0).

An SPE file is a 4100-byte binary header followed by the frames, row-major,
little-endian. Version 2 describes the frames in the header (width at byte
42, height at 656, pixel type at 108, frame count at 1446). Version 3
(``file_header_ver`` at byte 1992 >= 3) adds an XML footer (its offset is
the uint64 at byte 678) whose ``DataFormat`` gives the authoritative frame
layout, including per-frame metadata stored after each frame (time stamps,
frame tracking number), which makes the frame stride larger than the frame.

:func:`probe_spe` checks a file at the door and says where its frames are;
:func:`plscope.io.open_stack` reads it lazily like any other stack.
"""

from __future__ import annotations

import logging
import os
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ..errors import RunFolderError
from ._frames import FrameSource

logger = logging.getLogger(__name__)

__all__ = ["SpeInfo", "probe_spe"]

HEADER_BYTES = 4100
#: v2 header: data type code -> numpy type (little-endian)
_V2_TYPES = {0: "<f4", 1: "<i4", 2: "<i2", 3: "<u2", 5: "<f8", 6: "<u1", 8: "<u4"}
#: v3 footer: pixelFormat -> numpy type
_V3_TYPES = {"MonochromeUnsigned16": "<u2", "MonochromeUnsigned32": "<u4", "MonochromeFloating32": "<f4"}


@dataclass(frozen=True, eq=False)
class SpeInfo:
    """What :func:`probe_spe` found.

    Attributes
    ----------
    source : FrameSource
        Where the frames are.
    version : float
        ``file_header_ver`` (0 or 2.x for WinView files, 3.0 for LightField).
    exposure_s : float or None
        Exposure time from the header (v2), or None.
    frame_numbers : numpy.ndarray or None
        Per-frame tracking numbers (v3 metadata), shape ``(n_frames,)``.
    frame_time_s : numpy.ndarray or None
        Per-frame exposure start on the camera clock, seconds (v3 metadata).
    wavelength_nm : numpy.ndarray or None
        Wavelength of every column: v2, the header's polynomial evaluated at
        pixels ``1 .. width`` (WinSpec counts pixels from 1); v3, the
        ``WavelengthMapping`` of the XML footer (one value per sensor pixel,
        cut to the region and averaged over binned pixels). None when the
        file has no valid calibration.
    warnings : tuple of str
    """

    source: FrameSource
    version: float
    exposure_s: float | None = None
    frame_numbers: np.ndarray | None = None
    frame_time_s: np.ndarray | None = None
    wavelength_nm: np.ndarray | None = None
    warnings: tuple[str, ...] = ()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_footer(path: str, raw: bytes) -> ET.Element:
    try:
        return ET.fromstring(raw.rstrip(b"\x00"))
    except ET.ParseError as exc:
        raise RunFolderError(path, f"SPE v3 XML footer cannot be parsed ({exc})") from None


def _v3_layout(path: str, root: ET.Element) -> tuple[int, int, int, str, int, int, ET.Element | None]:
    """Frames, rows, columns, dtype, frame bytes, stride, MetaBlock from the footer."""
    fmt = next((el for el in root if _local(el.tag) == "DataFormat"), None)
    blocks = [] if fmt is None else [el for el in fmt if _local(el.tag) == "DataBlock"]
    block = next((el for el in blocks if el.get("type") == "Frame"), blocks[0] if blocks else None)
    if block is None:
        raise RunFolderError(path, "SPE v3 footer has no DataFormat/DataBlock of type 'Frame'")
    regions = [el for el in block if _local(el.tag) == "DataBlock" and el.get("type") == "Region"]
    if len(regions) != 1:
        raise RunFolderError(
            path,
            f"SPE v3 frames have {len(regions)} regions of interest; only single-region movies are supported",
        )
    region = regions[0]
    pixel_format = region.get("pixelFormat") or block.get("pixelFormat")
    if pixel_format not in _V3_TYPES:
        raise RunFolderError(
            path,
            f"SPE v3 pixel format {pixel_format!r} is not supported (expected one of {', '.join(_V3_TYPES)})",
        )
    try:
        count = int(block.get("count", ""))
        size = int(block.get("size", ""))
        stride = int(block.get("stride", size))
        width = int(region.get("width", ""))
        height = int(region.get("height", ""))
    except ValueError:
        raise RunFolderError(
            path, "SPE v3 footer lacks the frame count, size, stride, width or height of its DataBlock"
        ) from None
    meta = None
    for el in root:
        if _local(el.tag) == "MetaFormat":
            metas = [m for m in el if _local(m.tag) == "MetaBlock"]
            meta = next((m for m in metas if m.get("type") == "Frame"), metas[0] if metas else None)
    return count, height, width, _V3_TYPES[pixel_format], size, stride, meta


def _v2_wavelength(head: bytes, width: int, warnings: list[str]) -> np.ndarray | None:
    """The x calibration of a v2 header (struct at byte 3000) at pixels 1 .. width."""
    valid = head[3098]
    order = head[3101]
    coefs = struct.unpack_from("<6d", head, 3263)
    if not valid or not 1 <= order <= 5 or not any(coefs[1 : order + 1]):
        return None
    c = np.asarray(coefs[: order + 1], np.float64)
    if not np.all(np.isfinite(c)):
        return None
    wl = np.polynomial.polynomial.polyval(np.arange(1, width + 1, dtype=np.float64), c)
    d = np.diff(wl)
    if wl.size > 1 and not (np.all(d > 0) or np.all(d < 0)):
        warnings.append(f"x calibration {list(c)} is not monotonic over {width} pixels; not used")
        return None
    if not (50.0 < float(np.median(wl)) < 1e5):
        warnings.append(
            f"x calibration gives {wl[0]:g}..{wl[-1]:g}: not wavelengths in nm (other unit?); not used"
        )
        return None
    return wl


def _v3_wavelength(root: ET.Element, width: int, warnings: list[str]) -> np.ndarray | None:
    """``Calibrations/WavelengthMapping`` of a v3 footer, cut to the region of the frames."""
    cal = next((el for el in root if _local(el.tag) == "Calibrations"), None)
    if cal is None:
        return None
    mapping = next((el for el in cal if _local(el.tag) == "WavelengthMapping"), None)
    if mapping is None:
        return None
    values = next(
        (el for el in mapping if _local(el.tag) in ("Wavelength", "WavelengthError") and el.text), None
    )
    if values is None:
        return None
    try:
        text = values.text or ""  # not empty: selected above
        parts = (
            [p.split(",")[0] for p in text.split(" ")]
            if _local(values.tag) == "WavelengthError"
            else text.split(",")
        )
        wl = np.array([float(v) for v in parts if v.strip()], np.float64)
    except ValueError:
        warnings.append("SPE v3 wavelength mapping cannot be parsed; no wavelength axis")
        return None
    if wl.size == width:
        return wl
    sensor = next((el for el in cal if _local(el.tag) == "SensorMapping"), None)
    try:
        x0 = int(sensor.get("x", "0")) if sensor is not None else 0
        xbin = int(sensor.get("xBinning", "1")) if sensor is not None else 1
    except ValueError:
        x0, xbin = 0, 1
    if xbin >= 1 and x0 + width * xbin <= wl.size:
        return wl[x0 : x0 + width * xbin].reshape(width, xbin).mean(axis=1)
    warnings.append(
        f"SPE v3 wavelength mapping has {wl.size} values for frames {width} pixels wide; no wavelength axis"
    )
    return None


def _frame_metadata(
    path: str, fh, meta: ET.Element, *, offset: int, count: int, size: int, stride: int, warnings: list[str]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Exposure-start time stamps and frame tracking numbers stored after each frame."""
    fields: list[tuple[str, str, float]] = []  # (name, dtype, ticks per second)
    pos = 0
    items = []
    for el in meta:
        bits = int(el.get("bitDepth", "64"))
        items.append((el, pos, bits))
        pos += bits // 8
    if size + pos > stride:
        warnings.append(f"per-frame metadata ({pos} bytes) do not fit the frame stride; time stamps not read")
        return None, None
    numbers = times = None
    for el, at, bits in items:
        kind = _local(el.tag)
        dt = {"Int64": "<i8", "Int32": "<i4", "UInt64": "<u8"}.get(el.get("type", "Int64"), "<i8")
        if np.dtype(dt).itemsize * 8 != bits:
            continue
        if kind == "TimeStamp" and el.get("event") == "ExposureStarted":
            fields.append(("t", dt, float(el.get("resolution", "1000000"))))
            times = at
        elif kind == "FrameTrackingNumber":
            fields.append(("n", dt, 1.0))
            numbers = at
    if not fields:
        return None, None
    # read the metadata of every frame: one small read per frame
    buf = np.empty((count, stride - size), np.uint8)
    for k in range(count):
        fh.seek(offset + k * stride + size)
        got = fh.readinto(memoryview(buf[k]))
        if got != stride - size:
            warnings.append("per-frame metadata are truncated; time stamps not read")
            return None, None
    out_t = out_n = None
    for name, dt, res in fields:
        at = cast(int, times if name == "t" else numbers)  # set whenever its field is listed
        nb = np.dtype(dt).itemsize
        vals = np.ascontiguousarray(buf[:, at : at + nb]).view(dt).ravel()
        if name == "t":
            out_t = (vals - vals[0]).astype(np.float64) / res
        else:
            out_n = vals.astype(np.int64)
    return out_n, out_t


def _v3_frames(path: str, fh: Any, footer_at: int, file_size: int, warnings: list[str]) -> tuple:
    """Frame layout of an SPE 3.0 file from its XML footer: ``(n_frames, height, width, dtype,
    stride, end of the frames, frame numbers, frame times, wavelengths)``; refused when corrupt."""
    if footer_at > file_size or footer_at < HEADER_BYTES:
        raise RunFolderError(
            path,
            f"truncated or corrupt SPE v3 file: the XML footer "
            f"should start at byte {footer_at} but the file has "
            f"{file_size} bytes",
        )
    fh.seek(footer_at)
    root = _parse_footer(path, fh.read())
    n_frames, height, width, file_dtype, size, stride, meta = _v3_layout(path, root)
    wavelength = _v3_wavelength(root, width, warnings)
    if size != height * width * np.dtype(file_dtype).itemsize:
        raise RunFolderError(
            path,
            f"SPE v3 frame size {size} bytes does not match {height}x{width} pixels of {file_dtype}",
        )
    end = HEADER_BYTES + n_frames * stride
    if end > footer_at:
        raise RunFolderError(
            path,
            f"corrupt SPE v3 file: {n_frames} frames of {stride} "
            f"bytes overlap the XML footer at byte {footer_at}",
        )
    numbers = times = None
    if meta is not None and stride > size:
        numbers, times = _frame_metadata(
            path,
            fh,
            meta,
            offset=HEADER_BYTES,
            count=n_frames,
            size=size,
            stride=stride,
            warnings=warnings,
        )
    return n_frames, height, width, file_dtype, stride, end, numbers, times, wavelength


def _v2_frames(path: str, head: bytes, type_code: int, height: int, width: int, n_frames: int, warnings):
    """Frame layout of an SPE 2.x file from its header: ``(dtype, stride, end of the frames,
    wavelengths)``; refused for an unknown pixel type."""
    if type_code not in _V2_TYPES:
        raise RunFolderError(
            path,
            f"SPE data type code {type_code} at byte 108 is not known: not an SPE file, or a corrupt header",
        )
    file_dtype = _V2_TYPES[type_code]
    wavelength = _v2_wavelength(head, width, warnings) if width else None
    stride = height * width * np.dtype(file_dtype).itemsize
    end = HEADER_BYTES + max(n_frames, 0) * stride
    return file_dtype, stride, end, wavelength


def _check_extent(
    path, n_frames, height, width, end, stride, file_size, version, warnings: list[str]
) -> None:
    """Refuse a header without image data or a file shorter than its frames; note trailing bytes."""
    if width == 0 or height == 0 or n_frames < 1:
        raise RunFolderError(
            path,
            f"SPE header describes {n_frames} frame(s) of {height}x{width} "
            "pixels: no image data (not an SPE file?)",
        )
    if end > file_size:
        have = max(0, (file_size - HEADER_BYTES) // stride)
        raise RunFolderError(
            path,
            f"truncated: {n_frames} frames need {end} bytes but the file "
            f"has {file_size} (about {have} complete frames)",
        )
    if version < 3.0 and end < file_size:
        warnings.append(f"{file_size - end} bytes after the last of {n_frames} frames ignored")


def probe_spe(path: str | os.PathLike) -> SpeInfo:
    """Check an SPE file and locate its frames.

    Parameters
    ----------
    path : str or path-like
        A ``.spe`` file, version 2.x or 3.0.

    Returns
    -------
    SpeInfo

    Raises
    ------
    RunFolderError
        The file is missing, shorter than its header, declares an unknown
        pixel type or zero-sized frames, has several regions of interest, or
        is truncated (fewer bytes than its frames need).
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
        fh = open(path, "rb")
    except OSError as exc:
        raise RunFolderError(path, f"cannot be read: {exc.strerror}") from None
    warnings: list[str] = []
    with fh:
        head = fh.read(HEADER_BYTES)
        if len(head) < HEADER_BYTES:
            raise RunFolderError(
                path,
                f"is {len(head)} bytes long, shorter than the "
                f"{HEADER_BYTES}-byte SPE header: not an SPE file",
            )
        width = struct.unpack_from("<H", head, 42)[0]
        height = struct.unpack_from("<H", head, 656)[0]
        type_code = struct.unpack_from("<h", head, 108)[0]
        n_frames = struct.unpack_from("<i", head, 1446)[0]
        version = float(struct.unpack_from("<f", head, 1992)[0])
        footer_at = struct.unpack_from("<Q", head, 678)[0]
        exposure = float(struct.unpack_from("<f", head, 10)[0])
        numbers = times = None
        if version >= 3.0 and footer_at:
            v3 = _v3_frames(path, fh, footer_at, st.st_size, warnings)
            n_frames, height, width, file_dtype, stride, end, numbers, times, wavelength = v3
        else:
            file_dtype, stride, end, wavelength = _v2_frames(
                path, head, type_code, height, width, n_frames, warnings
            )
    _check_extent(path, n_frames, height, width, end, stride, st.st_size, version, warnings)
    source = FrameSource(
        path=path,
        n_frames=int(n_frames),
        frame_shape=(int(height), int(width)),
        file_dtype=np.dtype(file_dtype).str,
        stamp=(st.st_size, st.st_mtime_ns),
        mode="strided",
        offset=HEADER_BYTES,
        stride=int(stride),
    )
    logger.debug(
        "%s: SPE v%g, %d frames of %dx%d %s, stride %d bytes",
        path,
        version,
        n_frames,
        height,
        width,
        file_dtype,
        stride,
    )
    return SpeInfo(
        source=source,
        version=version,
        exposure_s=exposure if exposure > 0 and np.isfinite(exposure) else None,
        frame_numbers=numbers,
        frame_time_s=times,
        wavelength_nm=wavelength,
        warnings=tuple(warnings),
    )
