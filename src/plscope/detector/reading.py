"""Electrometer logs: spec CSVs, Keithley TSB/KickStart exports, DAQ logs (TDMS/HDF5).

:func:`read_log` returns a :class:`Log`: one time base (or a sweep's voltage
axis) and named columns converted to SI units. What is accepted:

- the spec's CSV (header row, ``time_s``/``voltage_V``, channels in A);
- exports as labs write them: leading comment or metadata lines (``#``
  lines, instrument banners), the header possibly inside the last comment
  line (``# Time, s,1,2,3``), units in the header (``Current (A)``,
  ``Time (s)``, ``I [nA]``, ``Time, s``), ``,``/``;``/tab/blank separators,
  several measurements as columns of one file sharing a time column;
- ``.tdms`` and HDF5 logs through :func:`plscope.io.daq.read_daq`.

Channels are found by exact name, by name without unit (``Current`` for
``Current (A)``), or case-insensitively with units stripped (``current_A``
matches ``Current (A)``).
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import RunFolderError

__all__ = ["Log", "read_log"]

_UNIT_SCALE = {
    "a": 1.0, "ma": 1e-3, "ua": 1e-6, "\u00b5a": 1e-6, "\u03bca": 1e-6, "na": 1e-9, "pa": 1e-12, "fa": 1e-15,
    "s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "\u00b5s": 1e-6, "min": 60.0, "h": 3600.0,
    "v": 1.0, "mv": 1e-3, "kv": 1e3,
}  # fmt: skip
_NUM = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
_UNIT_IN_NAME = re.compile(r"^(.*?)[\s_]*[\(\[]\s*([^\)\]]+?)\s*[\)\]]\s*$")
_UNIT_SUFFIX = re.compile(r"^(.*?)_([a-zA-Z\u00b5\u03bc]{1,3})$")
_TEXT_PROBE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Log:
    """Columns of one file on a shared axis, in SI units (s, A, V).

    Attributes
    ----------
    path : str
    axis_s : numpy.ndarray
        The first (axis) column: time in s for traces, volts for sweeps.
    axis_name : str
    columns : dict of str to numpy.ndarray
        Every other column by its name in the file.
    warnings : tuple of str
    """

    path: str
    axis: np.ndarray
    axis_name: str
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def column(self, name: str) -> np.ndarray:
        """Samples of column ``name`` (exact, without unit, or unit-stripped case-insensitive).

        Raises
        ------
        RunFolderError
            No such column; the message names the columns that exist.
        """
        if name in self.columns:
            return self.columns[name]
        want = _bare(name)
        found = [k for k in self.columns if _bare(k) == want or k.endswith("/" + name)]  # TDMS: group/channel
        if len(found) == 1:
            return self.columns[found[0]]
        names = ", ".join(f"'{k}'" for k in self.columns) or "(none)"
        raise RunFolderError(self.path, f"no column '{name}'; columns are: {names}")


def _split_unit(name: str) -> tuple[str, str | None]:
    m = _UNIT_IN_NAME.match(name)
    if m:
        return m.group(1).strip(), m.group(2).strip()
    m = _UNIT_SUFFIX.match(name)
    if m and m.group(2).lower() in _UNIT_SCALE:
        return m.group(1).strip(), m.group(2)
    return name.strip(), None


def _bare(name: str) -> str:
    return _split_unit(name)[0].lower().replace(" ", "_")


def _scale(name: str) -> float:
    unit = _split_unit(name)[1]
    return 1.0 if unit is None else _UNIT_SCALE.get(unit.lower(), 1.0)


def _text(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise RunFolderError(path, f"cannot be read: {exc.strerror}") from None
    if b"\x00" in raw[:_TEXT_PROBE_BYTES]:
        raise RunFolderError(path, "is not a CSV text file (binary content)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return raw.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover
            raise RunFolderError(path, "is not a CSV text file (undecodable bytes)") from None


def _sep_of(line: str) -> str:
    for sep in ("\t", ";", ","):
        if sep in line:
            return sep
    return r"\s+"


def _fields(line: str, sep: str) -> list[str]:
    parts = re.split(sep, line.strip()) if sep == r"\s+" else line.strip().split(sep)
    return [p.strip() for p in parts]


def _is_data(line: str, sep: str) -> bool:
    f = [x for x in _fields(line, sep) if x != ""]
    return len(f) >= 2 and all(_NUM.match(x) for x in f)


def _header(lines: list[str], start: int, sep: str, ncol: int) -> list[str]:
    """Column names from the last non-empty line before the data (comment marks stripped)."""
    for line in reversed(lines[:start]):
        text = line.strip().lstrip("#%;/").strip()
        if not text:
            continue
        names = _fields(text, sep)
        if len(names) == ncol + 1 and names[1].lower() in _UNIT_SCALE:  # 'Time, s' split by the separator
            names = [f"{names[0]} ({names[1]})", *names[2:]]
        if len(names) == ncol:
            return names
        break
    return ["time_s", *[str(i) for i in range(1, ncol)]]


def _parse_text(path: str) -> tuple[pd.DataFrame, list[str]]:
    text = _text(path)
    lines = text.splitlines()
    start = None
    for i, line in enumerate(lines[:2000]):
        if line.strip() and _is_data(line, _sep_of(line)):
            start = i
            break
    if start is None:
        raise RunFolderError(
            path, "is not a CSV log: no row of numbers found (expected a header and data rows)"
        )
    sep = _sep_of(lines[start])
    ncol = len(_fields(lines[start], sep))
    names = _header(lines, start, sep, ncol)
    try:
        df = pd.read_csv(io.StringIO("\n".join(lines[start:])), sep=sep, header=None, names=names,
                         engine="python" if sep == r"\s+" else "c", on_bad_lines="skip", comment=None)  # fmt: skip
    except (pd.errors.ParserError, ValueError) as exc:
        raise RunFolderError(path, f"cannot be parsed as CSV: {exc}") from None
    df = df.apply(pd.to_numeric, errors="coerce")
    warnings = []
    bad = df.isna().any(axis=1)
    if bad.any():
        warnings.append(f"dropped {int(bad.sum())} row(s) with non-numeric or empty fields")
        df = df.loc[~bad]
    if len(df) < 1:
        raise RunFolderError(path, "has no complete numeric data row")
    return df, warnings


def _from_daq(path: str) -> Log:
    from ..io.daq import read_daq

    daq = read_daq(path)
    cols = {k: np.asarray(daq.channels[k], float) for k in daq.channels}
    return Log(path=path, axis=np.asarray(daq.time_s, float), axis_name="time_s", columns=cols,
               warnings=tuple(daq.warnings))  # fmt: skip


def read_log(path: str | os.PathLike, *, axis: str | None = None, kind: str = "time") -> Log:
    """Read an electrometer log or an I-V sweep.

    Parameters
    ----------
    path : path-like
    axis : str, optional
        Name of the axis column (default ``time_s``/``voltage_V`` if present,
        else the first column whose name starts with ``time``/``volt``,
        else the first column).
    kind : {"time", "voltage"}
        What the axis is; time must increase strictly, a sweep's voltage
        is sorted.

    Returns
    -------
    Log

    Raises
    ------
    RunFolderError
        Missing file, binary or non-tabular content, no numeric rows, a
        time axis that does not increase strictly (naming the row).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise RunFolderError(path, "file does not exist")
    if path.lower().endswith((".tdms", ".h5", ".hdf5")):
        log = _from_daq(path)
        return _check_axis(log, kind)
    df, warnings = _parse_text(path)
    names = list(df.columns)
    default = "time_s" if kind == "time" else "voltage_V"
    prefix = "t" if kind == "time" else "v"
    if axis is not None:
        key = axis if axis in names else next((n for n in names if _bare(n) == _bare(axis)), None)
        if key is None:
            raise RunFolderError(path, f"no column '{axis}'; columns are: {', '.join(names)}")
    elif default in names:
        key = default
    else:
        key = next((n for n in names if n.lower().lstrip().startswith(prefix)), names[0])
    cols = {n: df[n].to_numpy(float) * _scale(n) for n in names if n != key}
    log = Log(path=path, axis=df[key].to_numpy(float) * _scale(key), axis_name=key, columns=cols,
              warnings=tuple(warnings))  # fmt: skip
    return _check_axis(log, kind)


def _check_axis(log: Log, kind: str) -> Log:
    x = log.axis
    if kind == "time":
        d = np.diff(x)
        if d.size and not (d > 0).all():
            k = int(np.flatnonzero(~(d > 0))[0])
            raise RunFolderError(
                log.path,
                f"time column '{log.axis_name}' is not strictly increasing: "
                f"{x[k + 1]:.9g} s follows {x[k]:.9g} s at data row {k + 2}",
            )
        return log
    order = np.argsort(x, kind="stable")
    cols = {k: v[order] for k, v in log.columns.items()}
    return Log(path=log.path, axis=x[order], axis_name=log.axis_name, columns=cols, warnings=log.warnings)
