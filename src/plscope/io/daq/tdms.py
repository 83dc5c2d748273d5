"""NI ``.tdms`` DAQ logs (LabVIEW, DAQmx logging) through npTDMS, streamed.

Channels are named ``group/channel`` and timed by their waveform properties
(``wf_increment``, ``wf_start_offset``) or by a time channel of their group;
DAQmx raw data are scaled (npTDMS applies the scales stored in the file).
Only the metadata are read at the door; a channel's samples are read, chunk
by chunk into one float64 array, the first time the channel is used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import RunFolderError
from . import _log
from ._log import DaqLog, check_stamp, file_stamp, is_time_name, time_scale

logger = logging.getLogger(__name__)

__all__ = ["read_tdms_log"]


def _tdmstime_scale(name: str) -> float:
    scale = time_scale(name)
    return 1.0 if scale is None else scale


def read_tdms_log(path: str | os.PathLike, *, channels: Sequence[str] = ()) -> DaqLog:
    """Read the channels of an NI ``.tdms`` file on one time base, lazily.

    Parameters
    ----------
    path : str or path-like
        The ``.tdms`` file.
    channels : sequence of str, optional
        Channels the caller needs; the first one found sets the time base.

    Returns
    -------
    DaqLog
        Channels are read from the file (in chunks) on first use.

    Raises
    ------
    RunFolderError
        Not a readable TDMS file, or no channel with a time base.
    """
    path = os.fspath(path)
    wanted = list(channels)
    try:
        from nptdms import TdmsFile
    except ImportError:  # pragma: no cover - a declared dependency
        raise RunFolderError(
            path, "reading TDMS logs needs the 'npTDMS' package (pip install npTDMS)"
        ) from None
    stamp = file_stamp(path)
    try:
        # our own handle: npTDMS leaves a file it opened open when parsing fails
        with open(path, "rb") as fh, TdmsFile.open(fh) as tdms:
            return _tdms_log(tdms, path, stamp, wanted)
    except RunFolderError:
        raise
    except Exception as exc:
        raise RunFolderError(path, f"not a readable TDMS file ({type(exc).__name__}: {exc})") from None


def _tdms_log(tdms, path: str, stamp: tuple[int, int], wanted: Sequence[str]) -> DaqLog:
    warnings: list[str] = []
    entries, left_out, time_channels = _timed_channels(tdms)
    if not entries:
        raise RunFolderError(
            path,
            "has no channel with waveform timing (wf_increment) or a time channel; cannot build a time base",
        )
    main = _log.main_time_base(entries, wanted, lambda e, name: e[0] == name or e[2] == name)
    base = main[3]
    names: dict[str, tuple[str, str]] = {}
    for name, gname, cname, b in entries:
        if b == base:
            names[name] = (gname, cname)
        else:
            left_out[name] = (
                f"has a different time base ({b[1]} samples"
                + (f" every {b[2]:g} s" if b[0] == "wf" else f" timed by group '{b[2]}'")
                + f") from '{main[0]}' and is left out"
            )
    for name, why in left_out.items():
        warnings.append(f"channel '{name}' {why}")
    n = base[1]
    time_s = _time_axis(tdms, path, main, time_channels)
    if n < 2:
        raise RunFolderError(path, f"has {n} sample(s); expected a time series")
    status = tdms.file_status
    if status.incomplete_final_segment:
        warnings.append(
            "the last data segment is incomplete (logging was interrupted?); the samples written are used"
        )
    return _log.lazy_log(
        path, time_s, list(names), _loader(path, stamp, names, n), warnings, left_out, "TDMS", logger
    )


def _timed_channels(tdms):
    """Every numeric channel ``(name, group, channel, time base)``, the channels left out with the
    reason, and the time channel of each group timed by one: ``group -> (channel, s per unit)``."""
    entries: list[tuple[str, str, str, tuple]] = []
    left_out: dict[str, str] = {}
    time_channels: dict[str, tuple[str, float]] = {}
    for group in tdms.groups():
        chans = group.channels()
        timed = any("wf_increment" in ch.properties for ch in chans)
        if not timed:
            tch = next((ch for ch in chans if is_time_name(ch.name) and len(ch) > 1), None)
            if tch is not None:
                time_channels[group.name] = (tch.name, _tdmstime_scale(tch.name))
        for ch in chans:
            name = f"{group.name}/{ch.name}"
            if len(ch) == 0:
                continue
            if group.name in time_channels and ch.name == time_channels[group.name][0]:
                continue
            dtype = ch.dtype
            if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
                left_out[name] = f"is not numeric ({dtype})"
                continue
            props = ch.properties
            base: tuple[Any, ...]  # ("wf", n, increment, offset, start) or ("channel", n, group)
            if "wf_increment" in props:
                base = (
                    "wf",
                    len(ch),
                    float(props["wf_increment"]),
                    float(props.get("wf_start_offset", 0.0)),
                    str(props.get("wf_start_time")),
                )
            elif group.name in time_channels:
                base = ("channel", len(ch), group.name)
            else:
                left_out[name] = "has no waveform timing (wf_increment) and its group no time channel"
                continue
            entries.append((name, group.name, ch.name, base))
    return entries, left_out, time_channels


def _time_axis(tdms, path: str, main: tuple, time_channels: dict[str, tuple[str, float]]) -> np.ndarray:
    """Sample times of the time base ``main`` sets, s (checked)."""
    base = main[3]
    if base[0] == "wf":
        inc, off = base[2], base[3]
        if not inc > 0:
            raise RunFolderError(
                path, f"channel '{main[0]}' has wf_increment={inc}; expected a positive sample interval"
            )
        return _log.regular_time_s(base[1], inc, off)
    tname, scale = time_channels[base[2]]
    t = tdms[base[2]][tname].read_data()
    if np.issubdtype(t.dtype, np.datetime64):
        time_s = (t - t[0]).astype("timedelta64[ns]").astype(np.int64) * 1e-9
    else:
        time_s = np.asarray(t, dtype=np.float64) * scale
    dt = np.diff(time_s)
    if not (np.isfinite(time_s).all() and (dt > 0).all()):
        raise RunFolderError(path, f"time channel '{base[2]}/{tname}' is not finite and strictly increasing")
    return time_s


def _loader(path: str, stamp: tuple[int, int], names: dict[str, tuple[str, str]], n: int):
    """Reads one channel, chunk by chunk, into a float64 array of ``n`` samples (file unchanged)."""

    def load(name: str) -> np.ndarray:
        from nptdms import TdmsFile

        check_stamp(path, stamp)
        gname, cname = names[name]
        out = np.empty(n, dtype=np.float64)
        filled = 0
        try:
            with open(path, "rb") as fh, TdmsFile.open(fh) as f:
                for chunk in f[gname][cname].data_chunks():
                    values = chunk[:]
                    m = min(len(values), n - chunk.offset)
                    out[chunk.offset : chunk.offset + m] = values[:m]
                    filled = max(filled, chunk.offset + m)
        except Exception as exc:
            raise RunFolderError(
                path, f"channel '{name}' cannot be read ({type(exc).__name__}: {exc})"
            ) from None
        if filled < n:
            raise RunFolderError(path, f"channel '{name}' has {filled} of its {n} samples (truncated file?)")
        logger.debug("%s: read channel '%s' (%d samples)", path, name, n)
        return out

    return load
