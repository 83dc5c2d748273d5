"""Andor SIF files (Andor Solis: iXon/Newton/iDus cameras, Shamrock/Kymera spectrographs).

The header is parsed by `sif_parser <https://github.com/fujiisoup/sif_parser>`_;
the frames are little-endian float32, stored one after the other after the
header, so :func:`probe_sif` returns a strided :class:`~._frames.FrameSource`
and the frames are read lazily like any other stack (no handle, no memory
map in the dask graph).

Images are ``(rows, columns)`` frames; a spectrum read out as one track
(full vertical binning, or one user-defined track) is a frame of one row.
The spectrograph's pixel -> wavelength polynomial (``Calibration_data``,
coefficients ``c0 .. c3``) is turned into the wavelength of every column.
Andor counts pixels from 1: the first column is at ``c0 + c1 * 1 + ...``
(checked against Solis' own text export to 1e-5 nm).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from ..errors import RunFolderError
from ._frames import FrameSource

logger = logging.getLogger(__name__)

__all__ = ["SIF_MAGIC", "SifInfo", "probe_sif"]

#: First bytes of every SIF file.
SIF_MAGIC = b"Andor Technology Multi-Channel File"


@dataclass(frozen=True, eq=False)
class SifInfo:
    """What :func:`probe_sif` found.

    Attributes
    ----------
    source : FrameSource
        Where the frames are.
    wavelength_nm : numpy.ndarray or None
        Wavelength of every column (Andor's calibration evaluated at pixels
        ``1 .. width``), None for an image without a spectral calibration.
    calibration_nm : tuple of float or None
        Andor's coefficients ``(c0, c1, c2, c3)`` for 1-based pixels.
    exposure_s : float or None
    frame_interval_s : float or None
        Kinetic cycle time (series of several frames) or, for one frame, the
        time it took (accumulations x accumulation cycle time).
    frame_time_s : numpy.ndarray or None
        Per-frame time stamps relative to the first frame, when the file has them.
    detector : str
    warnings : tuple of str
    """

    source: FrameSource
    wavelength_nm: np.ndarray | None = None
    calibration_nm: tuple[float, ...] | None = None
    exposure_s: float | None = None
    frame_interval_s: float | None = None
    frame_time_s: np.ndarray | None = None
    detector: str = ""
    warnings: tuple[str, ...] = ()


def _text(v) -> str:
    return v.decode("latin-1", "replace") if isinstance(v, bytes) else str(v)


def _positive(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f > 0 and np.isfinite(f) else None


class _StrictReader:
    """A binary file whose reads past the end raise (sif_parser would loop forever on a truncated header)."""

    def __init__(self, fh):
        self._fh = fh

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        if n and not data:
            raise EOFError("the header ends before it is complete")
        return data

    def readline(self, *args) -> bytes:
        data = self._fh.readline(*args)
        if not data:
            raise EOFError("the header ends before it is complete")
        return data

    def seek(self, *args) -> int:
        return self._fh.seek(*args)

    def tell(self) -> int:
        return self._fh.tell()


def _read_header(path: str) -> tuple[tuple[int, int], int, dict]:
    """(width, height), number of frames and the info dict of sif_parser."""
    try:
        from sif_parser._sif_open import _open  # the header parser behind sif_parser.np_open
    except ImportError:  # pragma: no cover - declared dependency
        raise RunFolderError(path, "reading Andor SIF files needs the 'sif_parser' package") from None
    try:
        with open(path, "rb") as fh:
            _, size, n_frames, info = _open(_StrictReader(fh))
    except OSError as exc:
        raise RunFolderError(path, f"cannot be read: {exc.strerror or exc}") from None
    except Exception as exc:
        raise RunFolderError(
            path, f"not a readable Andor SIF file, or its header is corrupt ({type(exc).__name__}: {exc})"
        ) from None
    return (int(size[0]), int(size[1])), int(n_frames), info


def _wavelengths(info: dict, width: int, warnings: list[str]) -> tuple[np.ndarray | None, tuple | None]:
    coefs = info.get("Calibration_data")
    if coefs is None:
        return None, None
    try:
        c = tuple(float(x) for x in np.atleast_1d(coefs))
    except (TypeError, ValueError):
        warnings.append(f"spectral calibration {coefs!r} cannot be read; no wavelength axis")
        return None, None
    is_identity = len(c) >= 2 and c[0] == 0 and c[1] == 1 and not any(c[2:])
    if len(c) < 2 or is_identity or not all(np.isfinite(c)) or c[1] == 0:
        return None, None
    if "Calibration_data_for_frame_1" in info:
        warnings.append("frames have their own calibrations (step and glue?); using that of frame 1")
        c = tuple(float(x) for x in np.atleast_1d(info["Calibration_data_for_frame_1"]))
    px = np.arange(1, width + 1, dtype=np.float64)  # Andor numbers pixels from 1
    wl = np.polynomial.polynomial.polyval(px, np.asarray(c, np.float64))
    d = np.diff(wl)
    if wl.size > 1 and not (np.all(d > 0) or np.all(d < 0)):
        warnings.append(f"spectral calibration {list(c)} is not monotonic over {width} pixels; not used")
        return None, None
    return wl, c


def _timing(info: dict, n_frames: int) -> tuple[float | None, float | None, np.ndarray | None]:
    exposure = _positive(info.get("ExposureTime"))
    if n_frames > 1:
        interval = _positive(info.get("CycleTime"))  # kinetic cycle time
    else:
        interval = _positive(info.get("StackCycleTime")) or _positive(info.get("CycleTime"))
    stamps = [info.get(f"timestamp_of_{k}") for k in range(n_frames)]
    times = None
    if n_frames > 1 and all(isinstance(s, (int, float)) for s in stamps):
        arr = np.asarray(stamps, dtype=np.float64)
        if np.all(np.diff(arr) > 0):  # microseconds since the start of the series
            times = (arr - arr[0]) * 1e-6
    return exposure, interval, times


def probe_sif(path: str | os.PathLike) -> SifInfo:
    """Check an Andor SIF file and locate its frames.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    SifInfo

    Raises
    ------
    RunFolderError
        Not a SIF file, a corrupt header, or fewer bytes than its frames need.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
        with open(path, "rb") as fh:
            magic = fh.read(len(SIF_MAGIC))
    except OSError as exc:
        raise RunFolderError(path, f"cannot be read: {exc.strerror}") from None
    if magic != SIF_MAGIC:
        raise RunFolderError(path, f"not an Andor SIF file (starts with {magic[:12]!r})")
    (width, height), n_frames, info = _read_header(path)
    warnings: list[str] = []
    if width < 1 or height < 1 or n_frames < 1:
        raise RunFolderError(path, f"SIF header describes {n_frames} frame(s) of {height}x{width} pixels")
    offset = int(info["offset"])
    nbytes = width * height * 4
    end = offset + n_frames * nbytes
    if end > st.st_size:
        have = max(0, (st.st_size - offset) // nbytes)
        raise RunFolderError(
            path,
            f"truncated: {n_frames} frames need {end} bytes but the file has {st.st_size} "
            f"(about {have} complete frames)",
        )
    wavelength, coefs = _wavelengths(info, width, warnings)
    exposure, interval, times = _timing(info, n_frames)
    source = FrameSource(
        path=path,
        n_frames=n_frames,
        frame_shape=(height, width),
        file_dtype="<f4",
        stamp=(st.st_size, st.st_mtime_ns),
        mode="strided",
        offset=offset,
        stride=nbytes,
    )
    detector = _text(info.get("DetectorType", "")).strip()
    logger.debug("%s: SIF %s, %d frame(s) of %dx%d", path, detector, n_frames, height, width)
    return SifInfo(
        source=source,
        wavelength_nm=wavelength,
        calibration_nm=coefs,
        exposure_s=exposure,
        frame_interval_s=interval,
        frame_time_s=times,
        detector=detector,
        warnings=tuple(warnings),
    )
