"""Reading 1-D spectra from text files: lamp spectra, line lists, exported spectra.

What real exports vary in is accepted (the same spirit as
:func:`plscope.io.read_daq`): ``,``, ``;``, tab or blank separators,
decimal commas (when the separator is not a comma), any number of header
lines before the data (``key;value`` metadata lines are kept, e.g. a vendor's
pixel->nm coefficients), a column-name row, trailing separators and blank
cells. The numeric block is found automatically; the two columns used are
chosen by name or by 0-based index.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import RunFolderError

logger = logging.getLogger(__name__)

__all__ = ["LineList", "SpectrumTable", "read_lamp", "read_lines", "read_spectrum_table"]

#: candidate separators, in order of preference on ties
_SEPARATORS = (";", "\t", ",", None)  # None: runs of blanks
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
#: default names of the pixel column and of the counts column (case-insensitive prefixes)
PIXEL_NAMES = ("pixel", "pix", "px", "channel", "index")
COUNTS_NAMES = ("counts", "count", "intensity", "raw data", "raw", "signal", "dark subtracted", "cts")
WAVELENGTH_NAMES = ("wavelength", "lambda", "wl", "nm", "line")


@dataclass(frozen=True, eq=False)
class SpectrumTable:
    """Two numeric columns of a text file, with what surrounded them.

    Attributes
    ----------
    path : str
        The file read.
    x, y : numpy.ndarray, shape (n,)
        The chosen columns (float64), rows with a blank in either dropped,
        in file order.
    x_name, y_name : str
        Their names (the column-name row, or ``column <i>``).
    columns : tuple of str
        Names of every column of the numeric block.
    metadata : dict
        ``key -> value`` pairs of the header lines (numbers converted,
        decimal commas understood), e.g. a vendor's ``coefs_a0``.
    separator : str
        The separator found (``"blank"`` for runs of spaces/tabs).
    decimal_comma : bool
        Whether numbers were written with decimal commas.
    warnings : tuple of str
        Recoverable oddities (dropped rows), also logged.
    """

    path: str
    x: np.ndarray
    y: np.ndarray
    x_name: str
    y_name: str
    columns: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    separator: str = ","
    decimal_comma: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return int(self.x.size)


@dataclass(frozen=True, eq=False)
class LineList:
    """Known wavelengths of calibration lines.

    Attributes
    ----------
    wavelength_nm : numpy.ndarray, shape (n,)
        Sorted, unique wavelengths in nm.
    intensity : numpy.ndarray or None, shape (n,)
        Relative intensities when the file has them.
    path : str
    """

    wavelength_nm: np.ndarray
    intensity: np.ndarray | None = None
    path: str = ""


def _read_text(path: str) -> str:
    if not os.path.exists(path):
        raise RunFolderError(path, "file does not exist")
    if not os.path.isfile(path):
        raise RunFolderError(path, "is a folder, not a text file")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise RunFolderError(path, f"cannot be read: {exc.strerror}") from None
    if not raw.strip():
        raise RunFolderError(path, "is empty")
    if b"\x00" in raw[:4096]:
        raise RunFolderError(path, "is a binary file, not a text table of numbers")
    for enc in ("utf-8-sig", "latin-1"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise RunFolderError(path, "cannot be decoded as text")  # pragma: no cover - latin-1 decodes anything


def _split(line: str, sep: str | None) -> list[str]:
    parts = line.split() if sep is None else line.split(sep)
    if sep is not None and parts and not parts[-1].strip():  # trailing separator
        parts = parts[:-1]
    return [p.strip() for p in parts]


def _to_number(text: str, decimal_comma: bool) -> float | None:
    t = text.strip().strip('"').strip("'")
    if decimal_comma:
        t = t.replace(",", ".")
    if _NUMBER.match(t):
        return float(t)
    if t.lower() in ("nan", "inf", "-inf", "+inf"):
        return float(t)
    return None


def _data_row(fields: list[str], decimal_comma: bool) -> list[float] | None:
    """Numbers of a data row (blank cells NaN), or None if it is not a data row."""
    if len(fields) < 2:
        return None
    out: list[float] = []
    n_num = 0
    for f in fields:
        if not f:
            out.append(math.nan)
            continue
        v = _to_number(f, decimal_comma)
        if v is None:
            return None
        out.append(v)
        n_num += 1
    return out if n_num >= 2 else None


def _best_layout(lines: list[str]) -> tuple[str | None, bool, list[int]]:
    """Separator, decimal comma, and the indices of the data rows.

    Each candidate separator is tried; the one under which most lines are
    data rows (every non-blank cell numeric, at least two of them) wins.
    """
    best: tuple[int, str | None, bool, list[int]] = (-1, ",", False, [])
    sample = lines if len(lines) <= 4000 else lines[:2000] + lines[-2000:]
    for sep in _SEPARATORS:
        decimal_comma = sep != ","
        rows = [
            i
            for i, ln in enumerate(sample)
            if ln.strip() and _data_row(_split(ln, sep), decimal_comma) is not None
        ]
        if len(rows) > best[0]:
            best = (len(rows), sep, decimal_comma, rows)
    _, sep, decimal_comma, _ = best
    rows = [
        i
        for i, ln in enumerate(lines)
        if ln.strip() and _data_row(_split(ln, sep), decimal_comma) is not None
    ]
    return sep, decimal_comma, rows


def _pick(
    columns: Sequence[str],
    choice: int | str | None,
    defaults: Sequence[str],
    fallback: int | None,
    *,
    what: str,
    path: str,
    exclude: int | None = None,
) -> int:
    n = len(columns)
    if choice is not None:
        if isinstance(choice, (int, np.integer)) and not isinstance(choice, bool):
            if not 0 <= int(choice) < n:
                raise RunFolderError(
                    path,
                    f"{what} column index {choice} is out of range: the table has "
                    f"{n} columns (0-based: {', '.join(columns)})",
                )
            return int(choice)
        text = str(choice).strip()
        if text.lstrip("-").isdigit():
            return _pick(columns, int(text), defaults, fallback, what=what, path=path)
        low = [c.lower() for c in columns]
        if text.lower() in low:
            return low.index(text.lower())
        starts = [i for i, c in enumerate(low) if c.startswith(text.lower())]
        if len(starts) == 1:
            return starts[0]
        raise RunFolderError(path, f"no {what} column named '{text}'; columns are: {', '.join(columns)}")
    low = [c.lower() for c in columns]
    for name in defaults:
        for i, c in enumerate(low):
            if i != exclude and (c == name or c.startswith(name)):
                return i
    if fallback is not None and fallback < n and fallback != exclude:
        return fallback
    raise RunFolderError(
        path,
        f"cannot tell which column holds the {what}; columns are: "
        f"{', '.join(columns)} (choose one by name or 0-based index)",
    )


def _numeric_rows(
    lines: Sequence[str], rows: Sequence[int], sep: str | None, decimal_comma: bool
) -> np.ndarray:
    """The numbers of the table rows ``rows`` as a float array (short rows padded with NaN)."""
    data = [_data_row(_split(lines[i], sep), decimal_comma) for i in rows]
    width = max(len(r) for r in data if r is not None)  # type: ignore[arg-type]
    arr = np.full((len(data), width), np.nan)
    for k, r in enumerate(data):
        arr[k, : len(r)] = r  # type: ignore[arg-type]
    return arr


def _header(
    head: Sequence[str], sep: str | None, decimal_comma: bool, width: int
) -> tuple[list[str], dict[str, Any]]:
    """Column names (from a name row just above the numbers) and ``key value`` metadata of the header."""
    columns = [f"column {i}" for i in range(width)]
    metadata: dict[str, Any] = {}
    header_rows = [i for i in range(len(head)) if head[i].strip()]
    if header_rows:
        names = _split(head[header_rows[-1]], sep)
        if len(names) in (width, width + 1) and all(_to_number(n, decimal_comma) is None for n in names if n):
            columns = [n.strip('"').strip("'") or f"column {i}" for i, n in enumerate(names[:width])]
            header_rows = header_rows[:-1]
        for i in header_rows:
            kv = _split(head[i], sep) if sep is not None else head[i].split(None, 1)
            if len(kv) >= 2 and kv[0]:
                value = _to_number(kv[1], decimal_comma)
                metadata[kv[0]] = value if value is not None else kv[1]
    return columns, metadata


def _xy_columns(
    columns: Sequence[str],
    choice: tuple[int | str | None, int | str | None],
    names: tuple[Sequence[str], Sequence[str]],
    path: str,
) -> tuple[int, int]:
    """Indices of the x and counts columns (chosen, or by their default name prefixes)."""
    x_column, y_column = choice
    ix = _pick(columns, x_column, names[0], 0, what="x (pixel)", path=path)
    iy = _pick(
        columns,
        y_column,
        names[1],
        1 if len(columns) == 2 else None,
        what="counts",
        path=path,
        exclude=ix if y_column is None else None,
    )
    if ix == iy:
        raise RunFolderError(path, f"the same column '{columns[ix]}' is chosen for x and counts")
    return ix, iy


def read_spectrum_table(
    path: str | os.PathLike,
    *,
    x_column: int | str | None = None,
    y_column: int | str | None = None,
    x_names: Sequence[str] = PIXEL_NAMES,
    y_names: Sequence[str] = COUNTS_NAMES,
) -> SpectrumTable:
    """Read two numeric columns (x, counts) of a text table.

    Parameters
    ----------
    path : path-like
        A text file: any header lines, then rows of numbers separated by
        ``,``, ``;``, tabs or blanks (decimal commas are read when the
        separator is not a comma). A column-name row just above the numbers
        names the columns.
    x_column, y_column : int or str, optional
        Column by 0-based index or by (case-insensitive, unique-prefix)
        name. By default the first column whose name starts with one of
        ``x_names`` (else column 0), and the first whose name starts with one
        of ``y_names`` (else column 1 when the table has exactly two columns).
    x_names, y_names : sequence of str
        Default name prefixes, lower case.

    Returns
    -------
    SpectrumTable

    Raises
    ------
    RunFolderError
        Missing, empty or binary file; no block of at least 3 numeric rows;
        a column that does not exist or cannot be told apart.
    """
    path = os.fspath(path)
    text = _read_text(path)
    lines = text.splitlines()
    sep, decimal_comma, rows = _best_layout(lines)
    if len(rows) < 3:
        raise RunFolderError(
            path,
            "no table of numbers found (need at least 3 rows of 2 or more numbers "
            "separated by ',', ';', tabs or blanks)",
        )
    arr = _numeric_rows(lines, rows, sep, decimal_comma)
    warnings: list[str] = []
    inside = set(rows)
    skipped = [i for i in range(rows[0], rows[-1] + 1) if lines[i].strip() and i not in inside]
    if skipped:
        warnings.append(
            f"{len(skipped)} non-numeric row(s) inside the table ignored (first: line {skipped[0] + 1})"
        )
    columns, metadata = _header(lines[: rows[0]], sep, decimal_comma, arr.shape[1])
    ix, iy = _xy_columns(columns, (x_column, y_column), (x_names, y_names), path)
    x, y = arr[:, ix], arr[:, iy]
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.all():
        warnings.append(
            f"{int((~ok).sum())} row(s) with a blank or non-finite '{columns[ix]}' or '{columns[iy]}' dropped"
        )
    x, y = x[ok], y[ok]
    if x.size < 3:
        raise RunFolderError(
            path, f"columns '{columns[ix]}' and '{columns[iy]}' have fewer than 3 numeric rows"
        )
    for w in warnings:
        logger.warning("%s: %s", path, w)
    return SpectrumTable(
        path=path,
        x=x,
        y=y,
        x_name=columns[ix],
        y_name=columns[iy],
        columns=tuple(columns),
        metadata=metadata,
        separator="blank" if sep is None else sep,
        decimal_comma=decimal_comma and any("," in lines[i] for i in rows[:50]),
        warnings=tuple(warnings),
    )


def read_lamp(
    path: str | os.PathLike, *, pixel_column: int | str | None = None, counts_column: int | str | None = None
) -> SpectrumTable:
    """Read a calibration-lamp spectrum: pixel and counts.

    See :func:`read_spectrum_table` for the accepted layouts and the column
    choice; ``x`` is the pixel (0-based detector column), ``y`` the counts.
    Rows are sorted by pixel.

    Raises
    ------
    RunFolderError
        As :func:`read_spectrum_table`, and when pixels repeat.
    """
    tab = read_spectrum_table(path, x_column=pixel_column, y_column=counts_column)
    order = np.argsort(tab.x, kind="stable")
    x, y = tab.x[order], tab.y[order]
    if np.any(np.diff(x) == 0):
        k = int(np.flatnonzero(np.diff(x) == 0)[0])
        raise RunFolderError(
            tab.path,
            f"pixel {x[k]:g} appears twice in column '{tab.x_name}': is it the "
            "pixel column? (choose the columns explicitly)",
        )
    return SpectrumTable(
        path=tab.path,
        x=x,
        y=y,
        x_name=tab.x_name,
        y_name=tab.y_name,
        columns=tab.columns,
        metadata=tab.metadata,
        separator=tab.separator,
        decimal_comma=tab.decimal_comma,
        warnings=tab.warnings,
    )


def _table_lines(
    lines: list[str], column: int | str | None, min_intensity: float | None, path: str
) -> tuple[list[float], np.ndarray | None]:
    """Wavelengths (and intensities, with an intensity column) of a line table with columns."""
    intensity = None
    sep, decimal_comma, rows = _best_layout(lines)
    if not rows:
        raise RunFolderError(path, "no wavelengths found (a column of numbers in nm)")
    arr = _numeric_rows(lines, rows, sep, decimal_comma)
    width = arr.shape[1]
    columns = [f"column {i}" for i in range(width)]
    if rows[0] > 0:
        names = _split(lines[rows[0] - 1], sep)
        if len(names) in (width, width + 1):
            columns = [n or f"column {i}" for i, n in enumerate(names[:width])]
    iw = _pick(columns, column, WAVELENGTH_NAMES, 0, what="wavelength", path=path)
    vals = arr[:, iw]
    ii = next((i for i, c in enumerate(columns) if "intens" in c.lower()), None)
    if min_intensity is not None:
        if ii is None:
            raise RunFolderError(
                path,
                f"has no intensity column (columns: {', '.join(columns)}); min_intensity cannot be applied",
            )
        keep = arr[:, ii] >= float(min_intensity)
        vals = vals[keep]
        arr = arr[keep]
    values = vals[np.isfinite(vals)].tolist()
    if ii is not None:
        intensity = arr[np.isfinite(arr[:, iw]), ii]
    return values, intensity


def read_lines(
    path: str | os.PathLike, *, column: int | str | None = None, min_intensity: float | None = None
) -> LineList:
    """Read a list of known line wavelengths (nm).

    Parameters
    ----------
    path : path-like
        A text table (``#`` comment lines allowed) with a wavelength column,
        e.g. ``wavelength_nm,rel_intensity``, or one number per line.
    column : int or str, optional
        The wavelength column (default: the first whose name starts with
        ``wavelength``/``lambda``/``wl``/``nm``, else column 0).
    min_intensity : float, optional
        Keep only lines at least this intense (needs an intensity column,
        one whose name contains ``intens``).

    Returns
    -------
    LineList

    Raises
    ------
    RunFolderError
        No wavelengths, non-positive wavelengths, or ``min_intensity``
        without an intensity column.
    """
    path = os.fspath(path)
    text = _read_text(path)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    values: list[float] = []
    single = [_to_number(ln, False) for ln in lines]
    intensity = None
    if (
        lines
        and sum(v is not None for v in single) >= max(1, len(lines) - 1)
        and all(len(_split(ln, s)) == 1 for ln in lines[:5] for s in (",", ";", "\t"))
    ):
        values = [v for v in single if v is not None]
        if min_intensity is not None:
            raise RunFolderError(path, "has no intensity column; min_intensity cannot be applied")
    else:
        values, intensity = _table_lines(lines, column, min_intensity, path)
    wl = np.asarray(values, dtype=float)
    if wl.size == 0:
        raise RunFolderError(path, "no line wavelengths found")
    if np.any(wl <= 0):
        raise RunFolderError(path, f"line wavelengths must be positive (nm), found {wl[wl <= 0][0]:g}")
    order = np.argsort(wl, kind="stable")
    wl = wl[order]
    if intensity is not None:
        intensity = np.asarray(intensity, float)[order]
    keep = np.concatenate(([True], np.diff(wl) > 0))
    return LineList(
        wavelength_nm=wl[keep], intensity=None if intensity is None else intensity[keep], path=path
    )
