"""CSV files with exactly the bytes of pandas' ``DataFrame.to_csv(index=False)``, written faster.

A bottom-floor helper (imports nothing of plscope). pandas formats a float
column with ``ndarray.astype(str)`` (NumPy's Dragon4, about 1.3 µs a value)
and passes every row through :mod:`csv`; the per-frame traces of a
512×512 × 2000-frame run (400 000 rows, 9 columns) took 5 s of CPU that way.
Here a float64 column is formatted with Python's ``repr`` (the same shortest
round-trip text as NumPy's: checked value by value in the tests), a column
with few distinct values (frame numbers, per-frame drift, integral peak
values) formats each distinct value once, rows of numbers are joined with
``str.join`` (no field of a number needs quoting), and a gzip file is
compressed in a second thread while the next block of rows is formatted
(:mod:`zlib` releases the GIL). Tables with text columns still go through
:mod:`csv` for the quoting; tables with other column types (nullable
integers, categories, dates, non-text column labels) are written by pandas
itself. The tests compare the bytes with pandas' on tricky values.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["csv_text", "write_csv"]

#: rows formatted (and handed to the compressing thread) at a time
CHUNK_ROWS = 50_000
#: a column is formatted through its distinct values when a sample of this many rows ...
_SAMPLE = 4096
#: ... holds at most this fraction of distinct values
_DISTINCT_FRACTION = 0.25


def _fast_column(dtype: np.dtype) -> bool:
    """Columns formatted here: float64, integers and bools (numbers need no quoting)."""
    return dtype == np.float64 or dtype.kind in "iub"


def _text_column(dtype) -> bool:
    """Columns handed to :mod:`csv` as objects, as pandas does: object and the text dtype (``str``)."""
    return (isinstance(dtype, np.dtype) and dtype.kind == "O") or isinstance(dtype, pd.StringDtype)


def _format_numbers(values: np.ndarray) -> list[str]:
    """Text of a float64, integer or bool column as pandas writes it (NaN as an empty field)."""
    fmt = repr if values.dtype.kind == "f" else str
    sample = values[:_SAMPLE]
    if values.size > _SAMPLE and np.unique(sample).size <= _DISTINCT_FRACTION * sample.size:
        # bit patterns, not values: -0.0 and 0.0 are written differently
        key = values.view(np.int64) if values.dtype.kind == "f" else values
        distinct, inverse = np.unique(key, return_inverse=True)
        distinct_values = distinct.view(np.float64) if values.dtype.kind == "f" else distinct
        text = np.array(list(map(fmt, distinct_values.tolist())), dtype=object)
        if values.dtype.kind == "f":
            text[np.isnan(distinct_values)] = ""
        return text[inverse.ravel()].tolist()
    out = list(map(fmt, values.tolist()))
    if values.dtype.kind == "f":
        for i in np.flatnonzero(np.isnan(values)).tolist():
            out[i] = ""
    return out


def _format_objects(values: np.ndarray) -> list:
    """An object column as pandas hands it to :mod:`csv` (missing values as empty text)."""
    out = np.array(values, dtype=object)
    out[pd.isna(out)] = ""
    return out.tolist()


def _chunks(table: pd.DataFrame) -> Iterator[str] | None:
    """The CSV text of ``table`` in blocks of rows (header first), or None if pandas must write it."""
    if not table.shape[1] or not all(isinstance(c, str) for c in table.columns):
        return None
    columns = [table.iloc[:, j] for j in range(table.shape[1])]
    if not all(
        _text_column(c.dtype) or (isinstance(c.dtype, np.dtype) and _fast_column(c.dtype)) for c in columns
    ):
        return None
    if os.linesep != "\n":  # pragma: no cover - pandas ends lines with os.linesep
        return None
    arrays = [c.to_numpy(dtype=object) if _text_column(c.dtype) else c.to_numpy() for c in columns]
    # numbers need no quoting; text (and a row of one empty field, written '""') goes through csv
    plain = table.shape[1] > 1 and all(_fast_column(a.dtype) for a in arrays)
    return _generate(list(table.columns), arrays, plain, CHUNK_ROWS)


def _generate(names: list[str], arrays: list[np.ndarray], plain: bool, chunk_rows: int) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    yield buf.getvalue()
    n = arrays[0].size if arrays else 0
    for start in range(0, n, chunk_rows):
        block = [a[start : start + chunk_rows] for a in arrays]
        cols = [_format_numbers(a) if _fast_column(a.dtype) else _format_objects(a) for a in block]
        if plain:
            yield "\n".join(map(",".join, zip(*cols, strict=True))) + "\n"
        else:
            buf.seek(0)
            buf.truncate()
            writer.writerows(zip(*cols, strict=True))
            yield buf.getvalue()


def csv_text(table: pd.DataFrame) -> str:
    """``table.to_csv(index=False)``: the same text, faster for numeric tables."""
    chunks = _chunks(table)
    return table.to_csv(index=False) if chunks is None else "".join(chunks)


def write_csv(table: pd.DataFrame, path: str | os.PathLike, *, gzip_level: int | None = None) -> None:
    """Write ``table`` as ``table.to_csv(path, index=False)`` does, byte for byte, faster.

    Parameters
    ----------
    table : pandas.DataFrame
    path : path-like
        Output file (UTF-8 text).
    gzip_level : int, optional
        Compress with gzip at this level and no time stamp: the bytes of
        ``to_csv(path, index=False, compression={"method": "gzip",
        "mtime": 0, "compresslevel": gzip_level})``. The compression of a
        block of rows runs in a second thread while the next is formatted.
    """
    chunks = _chunks(table)
    if chunks is None:
        compression = (
            None if gzip_level is None else {"method": "gzip", "mtime": 0, "compresslevel": gzip_level}
        )
        table.to_csv(path, index=False, compression=compression)
        return
    if gzip_level is None:
        with open(path, "wb") as fh:
            for text in chunks:
                fh.write(text.encode("utf-8"))
        return
    # the file name goes into the gzip header, as when pandas opens it
    with gzip.GzipFile(filename=str(Path(path)), mode="wb", compresslevel=gzip_level, mtime=0) as gz:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="plscope-gzip") as pool:
            pending: Future | None = None
            for text in chunks:
                data = text.encode("utf-8")
                if pending is not None:
                    pending.result()
                pending = pool.submit(gz.write, data)
            if pending is not None:
                pending.result()
