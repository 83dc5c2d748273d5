"""DAQ logs: the camera TTL and function-generator voltage on the DAQ clock.

:func:`read_daq` reads a log into a :class:`DaqLog` (one time base, one
array per channel):

- CSV (header row; a time column and one column per channel). What real
  exports vary in is accepted: ``,``, ``;`` or tab separators, decimal
  commas, any column order, a few bad rows (dropped, counted and reported).
- NI ``.tdms`` (LabVIEW, DAQmx logging) through npTDMS: channels are named
  ``group/channel`` and timed by their waveform properties
  (``wf_increment``, ``wf_start_offset``) or by a time channel of their
  group; DAQmx raw data are scaled (npTDMS applies the scales stored in the
  file). The file is opened in streaming mode: only the metadata are read
  at the door, and a channel's samples are read, chunk by chunk into one
  float64 array, the first time the channel is used, so memory holds only
  the channels the analysis needs.
- HDF5 (``.h5``/``.hdf5``, needs the optional ``h5py``; see
  :mod:`plscope.io.hdf5`), read lazily the same way.
"""

from __future__ import annotations

import difflib
import io
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import RunFolderError

logger = logging.getLogger(__name__)

__all__ = ["DaqLog", "LazyChannels", "read_daq"]

#: Name of the time column written by our own tools (seconds).
TIME_COLUMN = "time_s"
_TIME_UNITS_S = {
    "s": 1.0,
    "sec": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ns": 1e-9,
    "min": 60.0,
}
_SNIFF_BYTES = 64 * 1024
_HDF5_SUFFIXES = (".h5", ".hdf5", ".he5", ".hdf")


class LazyChannels(Mapping):
    """Channel name -> samples, each read from its file on first access.

    Parameters
    ----------
    names : sequence of str
        The channels, in file order.
    load : callable
        ``load(name) -> numpy.ndarray`` (float64, one value per sample).
    """

    def __init__(self, names: Sequence[str], load: Callable[[str], np.ndarray]):
        self._names = tuple(names)
        self._load = load
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        if name not in self._cache:
            self._cache[name] = self._load(name)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __repr__(self) -> str:
        return f"LazyChannels({list(self._names)}, loaded={list(self._cache)})"


@dataclass(frozen=True, eq=False)
class DaqLog:
    """Channels of a DAQ log on a common time base.

    Attributes
    ----------
    path : str
        The file read.
    time_s : numpy.ndarray
        Sample times in seconds, shape ``(n,)``, strictly increasing.
    channels : mapping of str to numpy.ndarray
        Each channel's samples (float64, shape ``(n,)``), by name (a
        :class:`LazyChannels` for TDMS and HDF5 logs: read on first use).
    warnings : tuple of str
        Recoverable problems (dropped rows, ignored columns), also logged.
    left_out : dict of str to str
        Channels of the file that are not on this time base (or not
        numeric), with the reason; asking for one raises that reason.
    """

    path: str
    time_s: np.ndarray
    channels: Mapping[str, np.ndarray] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    left_out: dict[str, str] = field(default_factory=dict)

    def _resolve(self, name: str) -> str | None:
        if name in self.channels:
            return name
        # TDMS/HDF5: a bare channel name (which may itself hold '/') is enough when unique
        found = [k for k in self.channels if k.endswith("/" + name)]
        return found[0] if len(found) == 1 else None

    def channel(self, name: str) -> np.ndarray:
        """Samples of channel ``name`` (``group/channel`` or a unique bare name).

        Raises
        ------
        RunFolderError
            If there is no such channel on the log's time base; the message
            lists the channels.
        """
        key = self._resolve(name)
        if key is not None:
            return self.channels[key]
        names = ", ".join(self.channels) or "(none)"
        other = [k for k in self.left_out if k == name or k.endswith("/" + name)]
        if other:
            raise RunFolderError(
                self.path,
                f"channel '{other[0]}' {self.left_out[other[0]]}; "
                f"channels on the log's time base are: {names}",
            )
        close = difflib.get_close_matches(name, list(self.channels), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise RunFolderError(self.path, f"no channel '{name}'{hint}; channels are: {names}")

    def has_channel(self, name: str) -> bool:
        """Whether :meth:`channel` would find ``name``."""
        return self._resolve(name) is not None

    @property
    def sample_rate_hz(self) -> float:
        """Sampling rate from the median sample interval (of the first 100 000;
        NaN for one sample)."""
        if self.time_s.size < 2:
            return float("nan")
        return float(1.0 / np.median(np.diff(self.time_s[:100_001])))

    @property
    def n_samples(self) -> int:
        return int(self.time_s.size)


def read_daq(path: str | os.PathLike, *, channels: Sequence[str] | None = None) -> DaqLog:
    """Read a DAQ log.

    Parameters
    ----------
    path : str or path-like
        A CSV file with a header row. The time column is ``time_s``, else
        the first column whose name starts with ``time`` (a unit in the name
        such as ``time_ms`` or ``Time (ms)`` is converted to seconds), else
        the first column. Every other numeric column is a channel.
        Or an NI ``.tdms`` file: numeric channels named ``group/channel``
        (:meth:`DaqLog.channel` also accepts the bare channel name when it is
        unique), timed by their waveform properties or by a channel of their
        group whose name starts with ``time``.
        Or an HDF5 file (``.h5``, ``.hdf5``; needs h5py), see
        :func:`plscope.io.hdf5.read_hdf5_log`.
    channels : sequence of str, optional
        Channels the caller needs. They are checked at the door (a missing
        one raises, naming the channels that exist), and for TDMS/HDF5 the
        time base is that of the first of them (default: of the first
        timed channel in the file).

    Returns
    -------
    DaqLog

    Raises
    ------
    RunFolderError
        Missing or empty file, no data rows, a single column, or a time
        column that does not increase strictly (after dropping bad rows);
        an unreadable ``.tdms``/HDF5 file or one without timing; a channel
        of ``channels`` that does not exist or is on another time base.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise RunFolderError(path, "file does not exist")
    if not os.path.isfile(path):
        raise RunFolderError(path, "is a folder, not a DAQ log file")
    wanted = list(channels or [])
    lower = path.lower()
    if lower.endswith(".tdms_index"):
        raise RunFolderError(path, "is a TDMS index file; give the .tdms file itself")
    if lower.endswith(".tdms"):
        log = _read_tdms(path, wanted)
    elif lower.endswith(_HDF5_SUFFIXES):
        from .hdf5 import read_hdf5_log

        log = read_hdf5_log(path, channels=wanted)
    else:
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise RunFolderError(path, f"cannot be read: {exc.strerror}") from None
        log = _parse_csv(raw, path)
    for name in wanted:
        log.channel(name)  # raises naming the channels that exist
    return log


def _stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _check_stamp(path: str, stamp: tuple[int, int]) -> None:
    try:
        now = _stamp(path)
    except OSError as exc:
        raise RunFolderError(path, f"cannot be read any more: {exc.strerror}") from None
    if now != stamp:
        raise RunFolderError(path, "file changed since it was opened; read it again")


# --------------------------------------------------------------------------
# TDMS
# --------------------------------------------------------------------------


def _tdms_time_scale(name: str) -> float:
    scale = _time_scale(name)
    return 1.0 if scale is None else scale


def _read_tdms(path: str, wanted: Sequence[str]) -> DaqLog:
    """Channels of a TDMS file on one time base, read lazily."""
    try:
        from nptdms import TdmsFile
    except ImportError:  # pragma: no cover - a declared dependency
        raise RunFolderError(
            path, "reading TDMS logs needs the 'npTDMS' package (pip install npTDMS)"
        ) from None
    stamp = _stamp(path)
    try:
        # our own handle: npTDMS leaves a file it opened open when parsing fails
        with open(path, "rb") as fh, TdmsFile.open(fh) as tdms:
            return _tdms_log(tdms, path, stamp, wanted)
    except RunFolderError:
        raise
    except Exception as exc:
        raise RunFolderError(path, f"not a readable TDMS file ({type(exc).__name__}: {exc})") from None


def _is_time_name(name: str) -> bool:
    n = name.strip().lower()
    return n == "t" or n.startswith("time")


def _tdms_log(tdms, path: str, stamp: tuple[int, int], wanted: Sequence[str]) -> DaqLog:
    warnings: list[str] = []
    # every numeric channel with its time base
    entries: list[tuple[str, str, str, tuple]] = []  # (name, group, channel, timebase)
    left_out: dict[str, str] = {}
    time_channels: dict[str, tuple[str, float]] = {}  # group -> (channel, seconds per unit)
    for group in tdms.groups():
        chans = group.channels()
        timed = any("wf_increment" in ch.properties for ch in chans)
        if not timed:
            tch = next((ch for ch in chans if _is_time_name(ch.name) and len(ch) > 1), None)
            if tch is not None:
                time_channels[group.name] = (tch.name, _tdms_time_scale(tch.name))
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
    if not entries:
        raise RunFolderError(
            path,
            "has no channel with waveform timing (wf_increment) or a time channel; cannot build a time base",
        )
    main = entries[0]
    for name in wanted:
        hit = [e for e in entries if e[0] == name or e[2] == name]
        if hit:
            main = hit[0]
            break
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
    if base[0] == "wf":
        inc, off = base[2], base[3]
        if not inc > 0:
            raise RunFolderError(
                path, f"channel '{main[0]}' has wf_increment={inc}; expected a positive sample interval"
            )
        time_s = np.arange(n, dtype=np.float64)  # in place: one array of n floats at a time
        time_s *= inc
        time_s += off
    else:
        tname, scale = time_channels[base[2]]
        t = tdms[base[2]][tname].read_data()
        if np.issubdtype(t.dtype, np.datetime64):
            time_s = (t - t[0]).astype("timedelta64[ns]").astype(np.int64) * 1e-9
        else:
            time_s = np.asarray(t, dtype=np.float64) * scale
        dt = np.diff(time_s)
        if not (np.isfinite(time_s).all() and (dt > 0).all()):
            raise RunFolderError(
                path, f"time channel '{base[2]}/{tname}' is not finite and strictly increasing"
            )
    if n < 2:
        raise RunFolderError(path, f"has {n} sample(s); expected a time series")
    status = tdms.file_status
    if status.incomplete_final_segment:
        warnings.append(
            "the last data segment is incomplete (logging was interrupted?); the samples written are used"
        )

    def load(name: str) -> np.ndarray:
        from nptdms import TdmsFile

        _check_stamp(path, stamp)
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

    for w in warnings:
        logger.warning("%s: %s", path, w)
    log = DaqLog(
        path=path,
        time_s=time_s,
        channels=LazyChannels(list(names), load),
        warnings=tuple(warnings),
        left_out=left_out,
    )
    logger.debug(
        "%s: %d samples at %.6g Hz, channels %s (TDMS)", path, log.n_samples, log.sample_rate_hz, list(names)
    )
    return log

    return log


# --------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------


def _sniff(raw: bytes, path: str) -> tuple[str, str]:
    """Separator and decimal mark from the header and the first data lines."""
    head = raw[:_SNIFF_BYTES].decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = [ln for ln in head.splitlines() if ln.strip()]
    if not lines:
        raise RunFolderError(path, "is empty: expected a CSV header row and data rows")
    header = lines[0]
    counts = {sep: header.count(sep) for sep in (";", "\t", ",")}
    sep = max(counts, key=lambda s: counts[s])
    if counts[sep] == 0:
        if len(header.split()) > 1:
            sep = r"\s+"
        else:
            raise RunFolderError(
                path,
                f"has a single column ('{header.strip()[:40]}'); expected a "
                "time column and channels separated by ',' or ';'",
            )
    data_lines = lines[1:21]
    decimal = "."
    if sep != "," and any(re.search(r"\d,\d", ln) for ln in data_lines):
        decimal = ","
    return sep, decimal


def _count_nonblank_lines(raw: bytes) -> int:
    """Number of lines with content (what the CSV parser sees as rows)."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    nl = np.flatnonzero(buf == ord("\n"))
    ends = np.append(nl, buf.size)
    starts = np.concatenate(([0], nl + 1))
    length = ends - starts
    # drop '\r' of CRLF line ends
    has_cr = np.zeros(length.size, bool)
    nz = length > 0
    has_cr[nz] = buf[ends[nz] - 1] == ord("\r")
    return int(np.count_nonzero(length - has_cr > 0))


def _time_scale(name: str) -> float | None:
    """Seconds per unit of a time column named like 'time_ms' or 'Time (ms)'."""
    m = re.search(r"(?:^time|^t)[\s_\-\[\(]*([a-z\u00b5\u03bc]+)[\]\)]?\s*$", name.strip().lower())
    if m:
        return _TIME_UNITS_S.get(m.group(1))
    return None


def _to_numeric(col: pd.Series, decimal: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col.astype(np.float64)
    text = col.astype("string").str.strip()
    if decimal == ",":
        text = text.str.replace(",", ".", regex=False)
    return pd.to_numeric(text, errors="coerce").astype(np.float64)


def _parse_csv(raw: bytes, path: str) -> DaqLog:
    sep, decimal = _sniff(raw, path)
    warnings: list[str] = []
    try:
        df = pd.read_csv(
            io.BytesIO(raw),
            sep=sep,
            decimal=decimal,
            engine="c",
            on_bad_lines="skip",
            skipinitialspace=True,
            encoding="utf-8",
            encoding_errors="replace",
            low_memory=False,
        )
    except pd.errors.EmptyDataError:
        raise RunFolderError(path, "is empty: expected a CSV header row and data rows") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise RunFolderError(path, f"cannot be parsed as CSV: {exc}") from None
    df.columns = [str(c).strip().lstrip("\ufeff") for c in df.columns]
    if df.shape[1] < 2:
        raise RunFolderError(
            path, f"has a single column ('{df.columns[0]}'); expected a time column and at least one channel"
        )
    if len(df) == 0:
        raise RunFolderError(path, "has a header but no data rows")

    n_lines = _count_nonblank_lines(raw) - 1  # minus the header
    n_skipped = max(0, n_lines - len(df))
    if n_skipped:
        warnings.append(f"dropped {n_skipped} row(s) with more fields than the header has columns")

    # time column
    lower = [c.lower() for c in df.columns]
    if TIME_COLUMN in df.columns:
        tcol = TIME_COLUMN
    else:
        tcol = next((c for c, lc in zip(df.columns, lower) if lc.startswith("time")), df.columns[0])
        if not tcol.lower().startswith("time"):
            warnings.append(
                f"no column named 'time_s': using the first column '{tcol}' as time "
                "(seconds unless its name gives a unit)"
            )
    scale = 1.0 if tcol == TIME_COLUMN else _time_scale(tcol)
    if scale is None:
        scale = 1.0
    elif scale != 1.0:
        logger.debug("%s: time column '%s' converted to seconds (x %g)", path, tcol, scale)

    numeric = {c: _to_numeric(df[c], decimal) for c in df.columns}
    for c in list(numeric):
        if c != tcol and numeric[c].isna().all() and df[c].notna().any():
            warnings.append(f"column '{c}' is not numeric and is ignored")
            del numeric[c]
    if len(numeric) < 2:
        raise RunFolderError(path, f"has no numeric channel besides the time column '{tcol}'")

    table = pd.DataFrame(numeric)
    bad = table.isna().any(axis=1).to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        warnings.append(
            f"dropped {int(bad.sum())} row(s) with non-numeric or empty fields "
            f"(first at data row {first + 1})"
        )
        table = table.loc[~bad]
    if len(table) == 0:
        raise RunFolderError(path, "has no complete numeric data row")

    time_s = table[tcol].to_numpy(np.float64) * scale
    dt = np.diff(time_s)
    if dt.size and not (dt > 0).all():
        k = int(np.flatnonzero(~(dt > 0))[0])
        raise RunFolderError(
            path,
            f"time column '{tcol}' is not strictly increasing: "
            f"{float(time_s[k + 1]):.9g} s follows {float(time_s[k]):.9g} s at data row "
            f"{k + 2} (after dropping bad rows)",
        )
    channels = {c: np.ascontiguousarray(table[c].to_numpy(np.float64)) for c in table.columns if c != tcol}
    for w in warnings:
        logger.warning("%s: %s", path, w)
    log = DaqLog(path=path, time_s=np.ascontiguousarray(time_s), channels=channels, warnings=tuple(warnings))
    logger.debug(
        "%s: %d samples at %.6g Hz, channels %s (sep %r, decimal %r)",
        path,
        log.n_samples,
        log.sample_rate_hz,
        list(channels),
        sep,
        decimal,
    )
    return log
