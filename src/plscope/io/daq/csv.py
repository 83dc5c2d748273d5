"""CSV DAQ logs: separators, decimal commas and bad rows as real exports have them.

Text exports of LabVIEW (``.lvm``, "Write to Measurement File"), Keithley
and similar instruments put lines of metadata above the table: the table is
found as the first run of numeric rows with the same number of fields, its
column names on the line just above it (a leading ``#`` removed), and
everything above that is skipped. A log without a time column is read with
``sample_rate_hz`` (time = row / rate).
"""

from __future__ import annotations

import io
import logging
import os
import re

import numpy as np
import pandas as pd

from ...errors import RunFolderError
from ._log import TIME_COLUMN, DaqLog, time_scale

logger = logging.getLogger(__name__)

__all__ = ["parse_csv_log", "read_csv_log"]

_SNIFF_BYTES = 64 * 1024


_SEPARATORS = (";", "\t", ",", r"\s+")
#: numeric rows in a row that mark the start of the table
_RUN = 3


def _fields(line: str, sep: str) -> list[str]:
    parts = line.strip().split() if sep == r"\s+" else line.strip().split(sep)
    while parts and not parts[-1].strip():  # trailing separators (LabVIEW)
        parts.pop()
    return [p.strip() for p in parts]


def _is_number(text: str, decimal: str) -> bool:
    try:
        float(text.replace(",", ".") if decimal == "," else text)
    except ValueError:
        return False
    return True


def _numeric_width(line: str, sep: str, decimal: str) -> int:
    """Number of fields of ``line`` if all are numbers, else 0."""
    parts = _fields(line, sep)
    return len(parts) if parts and all(_is_number(p, decimal) for p in parts) else 0


def _locate_table(raw: bytes, path: str) -> tuple[str, str, int, bool] | None:
    """Separator, decimal mark, lines to skip and whether a header row is there.

    None when the file starts with its header row (the plain case, sniffed
    by :func:`_sniff`).
    """
    text = raw[:_SNIFF_BYTES].decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = text.split("\n")
    if len(raw) > _SNIFF_BYTES:
        lines = lines[:-1]  # maybe cut
    for sep in _SEPARATORS:
        for decimal in (",", ".") if sep != "," else (".",):
            widths = [_numeric_width(ln, sep, decimal) if ln.strip() else -1 for ln in lines]
            body = [i for i, w in enumerate(widths) if w != -1]
            for j in range(len(body) - _RUN + 1):
                run = [widths[body[j + k]] for k in range(_RUN)]
                if run[0] >= 1 and len(set(run)) == 1 and (run[0] >= 2 or sep == r"\s+"):
                    first = body[j]
                    before = body[:j]
                    if decimal == "," and not any(
                        re.search(r"\d,\d", lines[body[j + k]]) for k in range(_RUN)
                    ):
                        break  # no decimal comma in the data: try '.'
                    if not before:
                        return (sep, decimal, 0, False) if run[0] >= 1 else None
                    head = before[-1]
                    names = _fields(lines[head].lstrip("#").strip(), sep)
                    adjacent = head == first - 1  # column names sit right above the numbers
                    if adjacent and len(names) >= run[0] and not all(_is_number(n, decimal) for n in names):
                        return sep, decimal, head, True
                    return sep, decimal, first, False
    return None


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


def _to_numeric(col: pd.Series, decimal: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col.astype(np.float64)
    text = col.astype("string").str.strip()
    if decimal == ",":
        text = text.str.replace(",", ".", regex=False)
    return pd.to_numeric(text, errors="coerce").astype(np.float64)


def read_csv_log(path: str | os.PathLike, *, sample_rate_hz: float | None = None) -> DaqLog:
    """Read a CSV DAQ log (header row; a time column and one column per channel).

    Accepts what real exports vary in: ``,``, ``;``, tab or whitespace
    separators, decimal commas, any column order, a few bad rows (dropped,
    counted and reported as warnings).

    Parameters
    ----------
    path : str or path-like
        The CSV file. The time column is ``time_s``, else the first column
        whose name starts with ``time`` (a unit in the name such as
        ``time_ms`` is converted to seconds), else the first column.
        Lines of metadata above the table are skipped (see the module).
    sample_rate_hz : float, optional
        The log has no time column: every column is a channel and sample
        ``k`` is at ``k / sample_rate_hz`` seconds.

    Returns
    -------
    DaqLog

    Raises
    ------
    RunFolderError
        Unreadable or empty file, no data rows, a single column, or a time
        column that does not increase strictly (after dropping bad rows).
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise RunFolderError(path, f"cannot be read: {exc.strerror}") from None
    return parse_csv_log(raw, path, sample_rate_hz=sample_rate_hz)


def _read_table(raw: bytes, path: str) -> tuple[pd.DataFrame, str, int]:
    """The table of a log: DataFrame, decimal mark and number of lines above it."""
    found = _locate_table(raw, path)
    if found is None or (found[2] == 0 and found[3]):
        sep, decimal = _sniff(raw, path)
        skip, header = 0, True
    else:
        sep, decimal, skip, header = found
    if skip or not header:
        logger.info(
            "%s: %d line(s) above the table skipped%s", path, skip, "" if header else "; no header row"
        )
    try:
        df = pd.read_csv(
            io.BytesIO(raw),
            sep=sep,
            decimal=decimal,
            skiprows=skip,
            header=0 if header else None,
            comment=None,
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
    if header:
        df.columns = [str(c).strip().lstrip("\ufeff").lstrip("#").strip() for c in df.columns]
    else:
        df.columns = [f"column_{k + 1}" for k in range(df.shape[1])]
    # columns without any value (a trailing separator, LabVIEW's empty 'Comment')
    empty = [c for c in df.columns if df[c].isna().all()]
    if empty and len(empty) < df.shape[1]:
        df = df.drop(columns=empty)
    return df, decimal, skip + (1 if header else 0)


def parse_csv_log(raw: bytes, path: str, *, sample_rate_hz: float | None = None) -> DaqLog:
    """Parse the bytes of a CSV DAQ log read from ``path`` (see :func:`read_csv_log`)."""
    warnings: list[str] = []
    df, decimal, above = _read_table(raw, path)
    if df.shape[1] < (1 if sample_rate_hz else 2):
        raise RunFolderError(
            path, f"has a single column ('{df.columns[0]}'); expected a time column and at least one channel"
        )
    if len(df) == 0:
        raise RunFolderError(path, "has a header but no data rows")

    n_lines = _count_nonblank_lines(raw) - _count_nonblank_lines(b"\n".join(raw.split(b"\n")[:above]))
    n_skipped = max(0, n_lines - len(df))
    if n_skipped:
        warnings.append(f"dropped {n_skipped} row(s) with more fields than the header has columns")

    if sample_rate_hz:
        return _rate_log(df, decimal, path, float(sample_rate_hz), warnings)

    tcol, scale = _time_column(df, path, warnings)
    table = _numeric_rows(df, decimal, tcol, path, warnings)
    time_s = table[tcol].to_numpy(np.float64) * scale
    _check_increasing(time_s, tcol, path)
    channels = {c: np.ascontiguousarray(table[c].to_numpy(np.float64)) for c in table.columns if c != tcol}
    for w in warnings:
        logger.warning("%s: %s", path, w)
    log = DaqLog(path=path, time_s=np.ascontiguousarray(time_s), channels=channels, warnings=tuple(warnings))
    logger.debug(
        "%s: %d samples at %.6g Hz, channels %s (decimal %r)",
        path,
        log.n_samples,
        log.sample_rate_hz,
        list(channels),
        decimal,
    )
    return log


def _time_column(df: pd.DataFrame, path: str, warnings: list[str]) -> tuple[str, float]:
    """The time column (``time_s``, else the first named ``time...``, else the first) and its
    seconds per unit."""
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
    scale = 1.0 if tcol == TIME_COLUMN else time_scale(tcol)
    if scale is None:
        scale = 1.0
    elif scale != 1.0:
        logger.debug("%s: time column '%s' converted to seconds (x %g)", path, tcol, scale)
    return tcol, scale


def _numeric_rows(df: pd.DataFrame, decimal: str, tcol: str, path: str, warnings: list[str]) -> pd.DataFrame:
    """The numeric columns (time and channels) and the rows complete in all of them."""
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
    return table


def _check_increasing(time_s: np.ndarray, tcol: str, path: str) -> None:
    """Refuse a time column that does not increase strictly, naming the first offending row."""
    dt = np.diff(time_s)
    if dt.size and not (dt > 0).all():
        k = int(np.flatnonzero(~(dt > 0))[0])
        hint = (
            ""
            if tcol.lower().startswith("time")
            else "; a log without a time column needs [daq] sample_rate_hz"
        )
        raise RunFolderError(
            path,
            f"time column '{tcol}' is not strictly increasing: "
            f"{float(time_s[k + 1]):.9g} s follows {float(time_s[k]):.9g} s at data row "
            f"{k + 2} (after dropping bad rows){hint}",
        )


def _rate_log(df: pd.DataFrame, decimal: str, path: str, rate_hz: float, warnings: list[str]) -> DaqLog:
    """A log without a time column: every numeric column a channel, sample k at k / rate."""
    numeric = {c: _to_numeric(df[c], decimal) for c in df.columns}
    for c in list(numeric):
        if numeric[c].isna().all():
            warnings.append(f"column '{c}' is not numeric and is ignored")
            del numeric[c]
    if not numeric:
        raise RunFolderError(path, "has no numeric column")
    table = pd.DataFrame(numeric)
    bad = table.isna().any(axis=1).to_numpy()
    if bad.any():
        # a missing sample would shift every later one in time: refuse rather than guess
        first = int(np.flatnonzero(bad)[0])
        raise RunFolderError(
            path,
            f"{int(bad.sum())} row(s) with non-numeric or empty fields (first at data row {first + 1}); "
            "with sample_rate_hz every row is one sample, so none may be dropped",
        )
    time_s = np.arange(len(table), dtype=np.float64) / rate_hz
    channels = {c: np.ascontiguousarray(table[c].to_numpy(np.float64)) for c in table.columns}
    for w in warnings:
        logger.warning("%s: %s", path, w)
    return DaqLog(path=path, time_s=time_s, channels=channels, warnings=tuple(warnings))
