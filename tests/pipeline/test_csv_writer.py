"""plscope._csv writes the bytes of pandas' ``to_csv(index=False)``, faster (issue 16).

The reference is pandas itself: every table here is written both ways and
the texts compared byte for byte (so the values and dtypes read back with
``pd.read_csv`` are the same too).
"""

from __future__ import annotations

import gzip
import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from plscope import _csv
from plscope._csv import csv_text, write_csv

TRICKY_FLOATS = [
    0.0,
    -0.0,
    np.nan,
    np.inf,
    -np.inf,
    553.0,
    1.0,
    -7.0,
    0.1,
    1 / 3,
    1e15,
    1e16,
    9999999999999998.0,
    1.5e16,
    1e22,
    1e-4,
    1e-5,
    1.2345e-7,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    28488.041015625,
    -0.00061117510559101,
]


def tricky_table(n_repeat: int = 1) -> pd.DataFrame:
    n = len(TRICKY_FLOATS)
    text = ["plain", "a,b", 'say "hi"', "two\nlines", "", None, np.nan, " lead", "tab\there", "é ü", "x"]
    df = pd.DataFrame(
        {
            "f": TRICKY_FLOATS,
            "integral": np.arange(n, dtype=float) * 3.0,  # every value integral: pandas writes 3.0
            "i": np.arange(n, dtype=np.int64) * -(10**17),
            "u": np.full(n, 2**64 - 1, dtype=np.uint64),
            "small": np.arange(n, dtype=np.int8),
            "b": np.arange(n) % 3 == 0,
            "text": (text * n)[:n],  # pandas 3: the str dtype
            "object_text": pd.Series((text * n)[:n], dtype=object),
            "mixed": ([1.5, "s", None, 2, True, np.float64(0.25)] * n)[:n],
        }
    )
    return pd.concat([df] * n_repeat, ignore_index=True)


def test_tricky_values_give_pandas_bytes():
    df = tricky_table()
    assert csv_text(df) == df.to_csv(index=False)
    numeric = df.drop(columns=["text", "object_text", "mixed"])  # the str.join path (no text column)
    assert csv_text(numeric) == numeric.to_csv(index=False)


def test_long_tables_in_blocks_and_through_distinct_values(monkeypatch):
    monkeypatch.setattr(_csv, "CHUNK_ROWS", 1000)
    rng = np.random.default_rng(7)
    df = tricky_table(300)  # 6900 rows: 7 blocks
    df["unique"] = rng.standard_normal(len(df)) * 10.0 ** rng.integers(-30, 30, len(df))
    df.loc[::97, "unique"] = np.nan
    assert csv_text(df) == df.to_csv(index=False)
    numeric = df.drop(columns=["text", "object_text", "mixed"])
    assert csv_text(numeric) == numeric.to_csv(index=False)


@pytest.mark.parametrize(
    "df",
    [
        pd.DataFrame({"a": pd.Series([], dtype=float), "b": pd.Series([], dtype=object)}),  # header only
        pd.DataFrame({"only": [1.0, np.nan, 2.0]}),  # one column: an empty row is written '""'
        pd.DataFrame({"only": ["", "x"]}),
        pd.DataFrame({"s": pd.array(["a", None], dtype="string"), "x": [1.0, 2.0]}),  # pd.NA
        pd.DataFrame({"": [1.0], "b,c": [2]}),  # column names quoted as pandas does
        pd.DataFrame(),
        pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "x": [1.0, 2.0]}),  # pandas writes these
        pd.DataFrame({"c": pd.Categorical(["a", "b"]), "x": [1.0, 2.0]}),
        pd.DataFrame({"t": pd.to_datetime(["2024-01-01", None]), "x": [1.0, 2.0]}),
        pd.DataFrame({"f32": np.array([0.1, np.nan], dtype=np.float32), "x": [1.0, 2.0]}),
        pd.DataFrame({1: [1.0], 2.5: [2.0]}),  # column labels that are not text
    ],
)
def test_edge_tables_give_pandas_bytes(df):
    assert csv_text(df) == df.to_csv(index=False)


@settings(max_examples=30, deadline=None)
@given(arrays(np.int64, st.integers(1, 300), elements=st.integers(-(2**63), 2**63 - 1)))
def test_any_float64_bit_pattern_gives_pandas_bytes(bits):
    df = pd.DataFrame({"x": bits.view(np.float64), "y": bits})
    assert csv_text(df) == df.to_csv(index=False)


@pytest.mark.parametrize("level", [None, 1])
def test_written_file_equals_pandas(tmp_path, monkeypatch, level):
    monkeypatch.setattr(_csv, "CHUNK_ROWS", 50)
    df = tricky_table(20)
    name = "t.csv.gz" if level else "t.csv"
    compression = {"method": "gzip", "mtime": 0, "compresslevel": level} if level else None
    df.to_csv(tmp_path / f"pandas-{name}", index=False, compression=compression)
    write_csv(df, tmp_path / name, gzip_level=level)
    ours, theirs = (tmp_path / name).read_bytes(), (tmp_path / f"pandas-{name}").read_bytes()
    if level:
        # same text inside; the gzip header names the file as pandas' does and carries no time
        # (the deflate stream differs: ISA-L's, cut where the data are handed over; so does the
        # compression hint, byte 8)
        assert ours[:8] == theirs[:8] and ours[9:10] == theirs[9:10] and ours[10:].startswith(b"t.csv\x00")
        ours, theirs = gzip.decompress(ours), gzip.decompress(theirs)
    assert ours == theirs
    back = pd.read_csv(io.BytesIO(ours))
    pd.testing.assert_frame_equal(back, pd.read_csv(io.BytesIO(theirs)))


def test_gzip_output_is_reproducible(tmp_path):
    """The same table gives the same bytes (no time stamp; blocks of a fixed number of rows)."""
    df = tricky_table(50)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        write_csv(df, tmp_path / sub / "t.csv.gz", gzip_level=1)
    assert (tmp_path / "a" / "t.csv.gz").read_bytes() == (tmp_path / "b" / "t.csv.gz").read_bytes()


def _edge_floats() -> np.ndarray:
    """Where Arrow's layout and ``repr``'s part: powers of ten and two and their neighbours
    (1e-5 / 1e-4, 1e10, 1e16 boundaries, subnormals), integers about 2**53 and 1e16, and values
    whose shortest digits tie (2**50 + 0.25, 2**33 + 2**-7)."""
    powers = np.array([10.0**k for k in range(-324, 309)] + [2.0**k for k in range(-1074, 1024)])
    powers = np.concatenate([powers, -powers, 3 * powers[:600], 7.5 * powers[:600]])
    near = [np.nextafter(powers, np.inf), np.nextafter(powers, -np.inf), np.nextafter(powers, 0)]
    top = 2.0 ** np.arange(40, 54)
    quarters = (top[:, None] + np.arange(-40, 40)[None, :] * (top[:, None] * 2.0**-52)).ravel()
    integers = np.concatenate(
        [2.0**53 + np.arange(-50, 50), 1e16 + np.arange(-50, 50) * 2.0, 10.0 ** np.arange(17)]
    )
    subnormal = np.arange(1, 2000, dtype=np.int64).view(np.float64)
    # 2**33 + 2**-7 = 8589934592.0078125: two shortest texts (...007812, ...007813) equally close
    ties = (2.0 ** np.arange(-10, 34)[:, None] + 2.0 ** -np.arange(1, 24)[None, :]).ravel()
    return np.concatenate(
        [powers, *near, quarters, -quarters, integers, -integers, subnormal, -subnormal, ties, -ties]
    )


def test_edge_floats_give_pandas_bytes():
    x = _edge_floats()
    df = pd.DataFrame({"x": x, "y": x[::-1].copy()})
    assert csv_text(df) == df.to_csv(index=False)


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 400), st.integers(1, 3)),
        elements=st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=64),
    )
)
def test_any_float64_columns_give_pandas_bytes(values):
    """Arbitrary float64 columns (hypothesis favours the edges: 0, -0.0, nan, inf, subnormals, integers)."""
    df = pd.DataFrame(values, columns=[f"c{j}" for j in range(values.shape[1])])
    assert csv_text(df) == df.to_csv(index=False)
