"""Tidy tables to and from Parquet, with their metadata.

The tracking stage's tables (particles, traces, drift, quality, tracks) are
long, typed DataFrames with per-table metadata in ``DataFrame.attrs``
(PSF sigma, aperture sizes per particle, saturation level, ...). Written
once as Parquet (column types kept, compressed, read back column by column),
later stages and re-analysis never re-read the movie. pandas stores
``attrs`` as JSON in the Parquet metadata; JSON turns the integer keys of
per-particle dictionaries into strings, which :func:`read_table` turns
back into integers.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from .._json import jsonable
from ..errors import PlscopeError

logger = logging.getLogger(__name__)


_jsonable = jsonable  # one implementation: plscope._json


def _int_keys(obj: Any) -> Any:
    """Dictionaries whose keys are all integer strings get integer keys back."""
    if isinstance(obj, dict):
        conv = {k: _int_keys(v) for k, v in obj.items()}
        keys = list(conv)
        if keys and all(isinstance(k, str) and k.lstrip("-").isdigit() for k in keys):
            return {int(k): v for k, v in conv.items()}
        return conv
    if isinstance(obj, list):
        return [_int_keys(v) for v in obj]
    return obj


def tidy(table: pd.DataFrame) -> pd.DataFrame:
    """A Parquet-ready copy: plain column names, object columns as strings, JSON-safe attrs.

    Parameters
    ----------
    table : pandas.DataFrame

    Returns
    -------
    pandas.DataFrame
        Same values; the index is dropped (tidy tables carry their keys as
        columns).
    """
    if not isinstance(table, pd.DataFrame):
        raise PlscopeError("table: expected a pandas DataFrame")
    out = table.reset_index(drop=True).copy()
    out.columns = [str(c) for c in out.columns]
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = (
                out[c]
                .map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
                .astype("string")
            )
    out.attrs = _jsonable(dict(table.attrs))
    return out


def write_table(table: pd.DataFrame, path: str | os.PathLike, *, compression: str = "zstd") -> Path:
    """Write a tidy table as Parquet (atomically: a temporary file renamed into place).

    Parameters
    ----------
    table : pandas.DataFrame
    path : path-like
        Destination, conventionally ``*.parquet``.
    compression : str
        Parquet codec (``"zstd"``, ``"snappy"``, ``"gzip"``, ``"none"``).

    Returns
    -------
    pathlib.Path
    """
    try:
        import pyarrow  # noqa: F401
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise PlscopeError("writing Parquet needs the 'pyarrow' package (pip install pyarrow)") from None
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    try:
        tidy(table).to_parquet(
            tmp, engine="pyarrow", compression=None if compression == "none" else compression, index=False
        )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    logger.debug("write_table: %d row(s) x %d column(s) -> %s", len(table), table.shape[1], path)
    return path


def read_table(path: str | os.PathLike, *, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a table written by :func:`write_table` (attrs restored, integer keys back).

    Parameters
    ----------
    path : path-like
    columns : list of str, optional
        Read only these columns.

    Returns
    -------
    pandas.DataFrame
    """
    path = Path(path)
    if not path.is_file():
        raise PlscopeError(f"{path}: no such table")
    out = pd.read_parquet(path, engine="pyarrow", columns=columns)
    attrs = out.attrs
    if isinstance(attrs, dict):
        out.attrs = _int_keys(json.loads(json.dumps(attrs)))
    return out
