"""CSV files with exactly the bytes of pandas' ``DataFrame.to_csv(index=False)``, written faster.

A bottom-floor helper (imports nothing of plscope). pandas formats a float
column with ``ndarray.astype(str)`` (NumPy's Dragon4, about 1.3 µs a value)
and passes every row through :mod:`csv`; the per-frame traces of a
512×512 × 2000-frame run (400 000 rows, 9 columns) took 5 s of CPU that way.
Here a number column is formatted by Arrow's cast to text
(``pyarrow.compute.cast``, vectorized, about 0.1 µs a value; pyarrow is
already a dependency for Parquet): integers as they are; float64 through
the shortest round-trip digits that Python's ``repr`` (and NumPy's
``astype(str)``) also writes, keeping Arrow's text where its layout is
``repr``'s (a value with a fraction, from 1e-4 up, without an exponent),
writing an integral value below 1e16 as its integer and ``.0``, and only
the rest (below 1e-4, from 1e16 or where Arrow writes an exponent, inf,
-0.0) through ``repr``; NaN is an empty field. Rows of numbers are joined
by Arrow's CSV writer (``quoting_style="none"``: no field of a number needs
quoting) and a gzip file is compressed in a second thread while the next
block of rows is formatted (ISA-L's deflate, ``isal.igzip``, at the levels
0-3 it has, three times faster than :mod:`zlib`'s level 1 with a smaller
file; both and Arrow release the GIL). The text inside is pandas'; the
compressed bytes are not (another deflate encoder, with blocks cut where it
is handed the data), but they are reproducible (no time stamp, fixed
blocks of rows). Tables
with text columns still go through :mod:`csv` for the quoting; tables with
other column types (nullable integers, categories, dates, non-text column
labels) are written by pandas itself. The tests compare the bytes with
pandas' on tricky values, edge values (powers of ten and two and their
neighbours, subnormals, integers about 2**53 and 1e16, tied shortest
digits) and arbitrary float64 columns (hypothesis).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from isal import igzip, isal_zlib

__all__ = ["csv_text", "write_csv"]

#: rows formatted (and handed to the compressing thread) at a time
CHUNK_ROWS = 50_000
#: below this magnitude Python's ``repr`` writes an exponent (``1e-05``), Arrow may not (``0.00001``)
_SMALL = 1e-4
#: from this magnitude Python's ``repr`` writes an exponent (``1e+16``); Arrow's switch lies below
_LARGE = 1e16


def _fast_column(dtype: np.dtype) -> bool:
    """Columns formatted here: float64, integers and bools (numbers need no quoting)."""
    return dtype == np.float64 or dtype.kind in "iub"


def _text_column(dtype) -> bool:
    """Columns handed to :mod:`csv` as objects, as pandas does: object and the text dtype (``str``)."""
    return (isinstance(dtype, np.dtype) and dtype.kind == "O") or isinstance(dtype, pd.StringDtype)


def _format_floats(values: np.ndarray) -> pa.StringArray:
    """Text of a float64 column as pandas writes it: Python's ``repr``, NaN as an empty field.

    Arrow's cast writes the same shortest round-trip digits as ``repr``
    (both the shortest decimal that reads back as the value, the closest of
    them to it) but lays some out differently: no ``.0`` after an integral
    value (``553``), an exponent from about 1e10 (``1.2e+10``), none down to
    1e-7 (``0.00001``), one-digit exponents (``1e-7``), ``-0``, ``nan``.
    Its text is kept where the layouts agree: a value with a fraction (so
    below 2**52 < 1e16, where ``repr`` writes no exponent) of magnitude at
    least 1e-4, written without an exponent. An integral value below 1e16 is
    its integer and ``.0``; the rest (small, huge, infinite, -0.0) is
    formatted by ``repr``.
    """
    text = pc.cast(pa.array(values), pa.string())
    magnitude = np.abs(values)
    with np.errstate(invalid="ignore"):
        # -0.0: repr writes '-0.0', the integer '0'
        integral = (values == np.trunc(values)) & (magnitude < _LARGE) & ~((values == 0) & np.signbit(values))
        kept = (magnitude >= _SMALL) & ~integral & np.isfinite(values)
    kept &= ~pc.match_substring(text, "e").to_numpy(zero_copy_only=False)
    if integral.any():
        whole = pc.cast(pa.array(values[integral].astype(np.int64)), pa.string())
        text = pc.replace_with_mask(text, integral, pc.binary_join_element_wise(whole, ".0", ""))
    rest = ~(kept | integral)
    if rest.any():
        odd = [repr(v) if v == v else "" for v in values[rest].tolist()]
        text = pc.replace_with_mask(text, rest, pa.array(odd, pa.string()))
    return text


def _format_numbers(values: np.ndarray) -> pa.StringArray:
    """Text of a float64, integer or bool column as pandas writes it (NaN as an empty field)."""
    if values.dtype.kind == "f":
        return _format_floats(values)
    if values.dtype.kind == "b":
        return pc.if_else(pa.array(values), "True", "False")
    return pc.cast(pa.array(values), pa.string())  # the decimal integer, as str()


def _format_objects(values: np.ndarray) -> list:
    """An object column as pandas hands it to :mod:`csv` (missing values as empty text)."""
    out = np.array(values, dtype=object)
    out[pd.isna(out)] = ""
    return out.tolist()


def _chunks(table: pd.DataFrame, *, header: bool = True) -> Iterator[bytes] | None:
    """The CSV bytes of ``table`` in blocks of rows (header first), or None if pandas must write it."""
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
    return _generate(list(table.columns), arrays, plain, CHUNK_ROWS, header=header)


def _join_plain(cols: list[pa.StringArray]) -> bytes:
    """Rows of number texts joined by Arrow's CSV writer (no field needs quoting: none is quoted)."""
    sink = pa.BufferOutputStream()
    names = [str(j) for j in range(len(cols))]
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none", batch_size=len(cols[0]) or 1)
    pa_csv.write_csv(pa.table(cols, names=names), sink, options)
    return sink.getvalue().to_pybytes()


def _generate(
    names: list[str], arrays: list[np.ndarray], plain: bool, chunk_rows: int, *, header: bool = True
) -> Iterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(names)
        yield buf.getvalue().encode("utf-8")
    n = arrays[0].size if arrays else 0
    for start in range(0, n, chunk_rows):
        block = [a[start : start + chunk_rows] for a in arrays]
        if plain:
            yield _join_plain([_format_numbers(a) for a in block])
            continue
        cols = [
            _format_numbers(a).to_pylist() if _fast_column(a.dtype) else _format_objects(a) for a in block
        ]
        buf.seek(0)
        buf.truncate()
        writer.writerows(zip(*cols, strict=True))
        yield buf.getvalue().encode("utf-8")


def csv_text(table: pd.DataFrame) -> str:
    """``table.to_csv(index=False)``: the same text, faster for numeric tables."""
    chunks = _chunks(table)
    return table.to_csv(index=False) if chunks is None else b"".join(chunks).decode("utf-8")


def write_csv(table: pd.DataFrame, path: str | os.PathLike, *, gzip_level: int | None = None) -> None:
    """Write ``table`` as ``table.to_csv(path, index=False)`` does, byte for byte, faster.

    Parameters
    ----------
    table : pandas.DataFrame
    path : path-like
        Output file (UTF-8 text).
    gzip_level : int, optional
        Compress with gzip at this level and no time stamp: a file that
        decompresses to the bytes of ``to_csv(path, index=False,
        compression={"method": "gzip", "mtime": 0, "compresslevel":
        gzip_level})``. Levels 0-3 are ISA-L's (``isal.igzip``; its level 1
        took a third of zlib's level-1 CPU time for a 6 % smaller
        ``traces.csv.gz``), higher ones zlib's. The compression of a block
        of rows runs in a second thread while the next is formatted (both
        release the GIL).
    """
    _write_chunks(_chunks(table), table, path, gzip_level)


def write_csv_blocks(
    blocks: Iterable[pd.DataFrame], path: str | os.PathLike, *, gzip_level: int | None = None
) -> None:
    """:func:`write_csv` of the table whose rows are ``blocks`` (:data:`CHUNK_ROWS` rows each, the last
    one fewer), one block in memory at a time: the same bytes (the same blocks of text are compressed)."""
    blocks = iter(blocks)
    first = next(blocks)
    head = _chunks(first)
    if head is None:  # pandas writes it: the whole table
        table = pd.concat([first, *blocks], ignore_index=True)
        _write_chunks(None, table, path, gzip_level)
        return

    def chunks() -> Iterator[bytes]:
        yield from head
        for block in blocks:
            rows = _chunks(block, header=False)
            assert rows is not None  # the first block's columns and dtypes
            yield from rows

    _write_chunks(chunks(), first, path, gzip_level)


def _write_chunks(
    chunks: Iterator[bytes] | None, table: pd.DataFrame, path: str | os.PathLike, gzip_level: int | None
) -> None:
    if chunks is None:
        compression = (
            None if gzip_level is None else {"method": "gzip", "mtime": 0, "compresslevel": gzip_level}
        )
        table.to_csv(path, index=False, compression=compression)
        return
    if gzip_level is None:
        with open(path, "wb") as fh:
            for data in chunks:
                fh.write(data)
        return
    # the file name goes into the gzip header, as when pandas opens it
    opener = igzip.GzipFile if gzip_level <= isal_zlib.ISAL_BEST_COMPRESSION else gzip.GzipFile
    with opener(filename=str(Path(path)), mode="wb", compresslevel=gzip_level, mtime=0) as gz:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="plscope-gzip") as pool:
            pending: Future | None = None
            for data in chunks:
                if pending is not None:
                    pending.result()
                pending = pool.submit(gz.write, data)
            if pending is not None:
                pending.result()
