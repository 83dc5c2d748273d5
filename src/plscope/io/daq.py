"""DAQ logs: the camera TTL and function-generator voltage on the DAQ clock.

:func:`read_daq` reads a CSV log (header row; a time column and one column
per channel) into a :class:`DaqLog`. What real exports vary in is accepted:
``,``, ``;`` or tab separators, decimal commas, any column order, a few
bad rows (dropped, counted and reported). NI ``.tdms`` files are read with
npTDMS: channels are named ``group/channel`` and timed by their waveform
properties (``wf_increment``, ``wf_start_offset``).
"""

from __future__ import annotations

import difflib
import io
import logging
import os
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import RunFolderError

logger = logging.getLogger(__name__)

__all__ = ["DaqLog", "read_daq"]

#: Name of the time column written by our own tools (seconds).
TIME_COLUMN = "time_s"
_TIME_UNITS_S = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "\u00b5s": 1e-6,
                 "\u03bcs": 1e-6, "ns": 1e-9, "min": 60.0}
_SNIFF_BYTES = 64 * 1024


@dataclass(frozen=True, eq=False)
class DaqLog:
    """Channels of a DAQ log on a common time base.

    Attributes
    ----------
    path : str
        The file read.
    time_s : numpy.ndarray
        Sample times in seconds, shape ``(n,)``, strictly increasing.
    channels : dict of str to numpy.ndarray
        Each channel's samples (float64, shape ``(n,)``), by column name.
    warnings : tuple of str
        Recoverable problems (dropped rows, ignored columns), also logged.
    """

    path: str
    time_s: np.ndarray
    channels: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def channel(self, name: str) -> np.ndarray:
        """Samples of channel ``name``.

        Raises
        ------
        RunFolderError
            If there is no such channel; the message lists the channels.
        """
        try:
            return self.channels[name]
        except KeyError:
            pass
        if "/" not in name:  # TDMS: a bare channel name is enough when it is unique
            found = [k for k in self.channels if k.rsplit("/", 1)[-1] == name]
            if len(found) == 1:
                return self.channels[found[0]]
        names = ", ".join(self.channels) or "(none)"
        close = difflib.get_close_matches(name, list(self.channels), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise RunFolderError(self.path, f"no channel '{name}'{hint}; channels are: {names}")

    @property
    def sample_rate_hz(self) -> float:
        """Sampling rate from the median sample interval (NaN for one sample)."""
        if self.time_s.size < 2:
            return float("nan")
        return float(1.0 / np.median(np.diff(self.time_s)))

    @property
    def n_samples(self) -> int:
        return int(self.time_s.size)


def read_daq(path: str | os.PathLike) -> DaqLog:
    """Read a DAQ log.

    Parameters
    ----------
    path : str or path-like
        A CSV file with a header row. The time column is ``time_s``, else
        the first column whose name starts with ``time`` (a unit in the name
        such as ``time_ms`` or ``Time (ms)`` is converted to seconds), else
        the first column. Every other numeric column is a channel.
        Or an NI ``.tdms`` file: every numeric channel with waveform timing
        on the time base of the first one, named ``group/channel``
        (:meth:`DaqLog.channel` also accepts the bare channel name when it is
        unique).

    Returns
    -------
    DaqLog

    Raises
    ------
    RunFolderError
        Missing or empty file, no data rows, a single column, or a time
        column that does not increase strictly (after dropping bad rows);
        an unreadable ``.tdms`` file or one without waveform timing.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise RunFolderError(path, "file does not exist")
    if not os.path.isfile(path):
        raise RunFolderError(path, "is a folder, not a DAQ log file")
    if path.lower().endswith(".tdms_index"):
        raise RunFolderError(path, "is a TDMS index file; give the .tdms file itself")
    if path.lower().endswith(".tdms"):
        return _read_tdms(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise RunFolderError(path, f"cannot be read: {exc.strerror}") from None
    return _parse_csv(raw, path)


# --------------------------------------------------------------------------
# TDMS
# --------------------------------------------------------------------------

def _read_tdms(path: str) -> DaqLog:
    """Channels of a TDMS file on the time base of the first waveform channel."""
    try:
        from nptdms import TdmsFile
    except ImportError:  # pragma: no cover - optional dependency
        raise RunFolderError(path, "reading TDMS logs needs the 'npTDMS' package "
                                   "(pip install npTDMS)") from None
    try:
        tdms = TdmsFile.read(path)
    except Exception as exc:  # noqa: BLE001 - npTDMS raises many types on bad files
        raise RunFolderError(path, f"not a readable TDMS file ({type(exc).__name__}: {exc})") from None
    warnings: list[str] = []
    time_s: np.ndarray | None = None
    timing: tuple | None = None
    channels: dict[str, np.ndarray] = {}
    for group in tdms.groups():
        for ch in group.channels():
            name = f"{group.name}/{ch.name}"
            props = ch.properties
            if "wf_increment" not in props:
                warnings.append(f"channel '{name}' has no waveform timing (wf_increment) and "
                                "is left out")
                continue
            data = ch[:]
            if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
                warnings.append(f"channel '{name}' is not numeric ({data.dtype}) and is left out")
                continue
            this = (len(data), float(props["wf_increment"]),
                    float(props.get("wf_start_offset", 0.0)), str(props.get("wf_start_time")))
            if timing is None:
                timing = this
                n, inc, off = this[:3]
                if not inc > 0:
                    raise RunFolderError(path, f"channel '{name}' has wf_increment={inc}; "
                                               "expected a positive sample interval")
                time_s = off + inc * np.arange(n)
            elif this != timing:
                warnings.append(f"channel '{name}' has a different time base ({this[0]} samples "
                                f"every {this[1]:g} s) and is left out")
                continue
            channels[name] = np.asarray(data, dtype=np.float64)
    if time_s is None or not channels:
        raise RunFolderError(path, "has no channel with waveform timing (wf_increment); "
                                   "cannot build a time base")
    if time_s.size < 2:
        raise RunFolderError(path, f"has {time_s.size} sample(s); expected a time series")
    for w in warnings:
        logger.warning("%s: %s", path, w)
    log = DaqLog(path=path, time_s=time_s, channels=channels, warnings=tuple(warnings))
    logger.debug("%s: %d samples at %.6g Hz, channels %s (TDMS)", path, log.n_samples,
                 log.sample_rate_hz, list(channels))
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
            raise RunFolderError(path, f"has a single column ('{header.strip()[:40]}'); expected a "
                                       "time column and channels separated by ',' or ';'")
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
        df = pd.read_csv(io.BytesIO(raw), sep=sep, decimal=decimal, engine="c",
                         on_bad_lines="skip", skipinitialspace=True, encoding="utf-8",
                         encoding_errors="replace", low_memory=False)
    except pd.errors.EmptyDataError:
        raise RunFolderError(path, "is empty: expected a CSV header row and data rows") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise RunFolderError(path, f"cannot be parsed as CSV: {exc}") from None
    df.columns = [str(c).strip().lstrip("\ufeff") for c in df.columns]
    if df.shape[1] < 2:
        raise RunFolderError(path, f"has a single column ('{df.columns[0]}'); expected a time "
                                   "column and at least one channel")
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
            warnings.append(f"no column named 'time_s': using the first column '{tcol}' as time "
                            "(seconds unless its name gives a unit)")
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
        warnings.append(f"dropped {int(bad.sum())} row(s) with non-numeric or empty fields "
                        f"(first at data row {first + 1})")
        table = table.loc[~bad]
    if len(table) == 0:
        raise RunFolderError(path, "has no complete numeric data row")

    time_s = table[tcol].to_numpy(np.float64) * scale
    dt = np.diff(time_s)
    if dt.size and not (dt > 0).all():
        k = int(np.flatnonzero(~(dt > 0))[0])
        raise RunFolderError(path, f"time column '{tcol}' is not strictly increasing: "
                                   f"{float(time_s[k + 1]):.9g} s follows {float(time_s[k]):.9g} s at data row "
                                   f"{k + 2} (after dropping bad rows)")
    channels = {c: np.ascontiguousarray(table[c].to_numpy(np.float64))
                for c in table.columns if c != tcol}
    for w in warnings:
        logger.warning("%s: %s", path, w)
    log = DaqLog(path=path, time_s=np.ascontiguousarray(time_s), channels=channels,
                 warnings=tuple(warnings))
    logger.debug("%s: %d samples at %.6g Hz, channels %s (sep %r, decimal %r)", path,
                 log.n_samples, log.sample_rate_hz, list(channels), sep, decimal)
    return log
