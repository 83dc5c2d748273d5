"""CSV DAQ logs: separators, decimal commas and bad rows as real exports have them."""

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


def read_csv_log(path: str | os.PathLike) -> DaqLog:
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
    return parse_csv_log(raw, path)


def parse_csv_log(raw: bytes, path: str) -> DaqLog:
    """Parse the bytes of a CSV DAQ log read from ``path`` (see :func:`read_csv_log`)."""
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
    scale = 1.0 if tcol == TIME_COLUMN else time_scale(tcol)
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
