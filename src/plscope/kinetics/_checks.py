"""Input checks shared by the kinetics modules (structure only, never data quality).

Structural problems (arrays of different lengths, missing table columns) are
programming errors of the caller and raise :class:`KineticsInputError`.
Poor *data* (NaN, flat traces, too few cycles) never raises: it is returned
as flagged results.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..columns import CYCLE_COLUMNS
from ..errors import PlscopeError


class KineticsInputError(PlscopeError):
    """Arrays or tables handed to :mod:`plscope.kinetics` have the wrong structure."""


def as_1d_float(name: str, values, *, length: int | None = None) -> np.ndarray:
    """Return ``values`` as a 1-D float array, checking its length."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise KineticsInputError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if length is not None and arr.size != length:
        raise KineticsInputError(f"{name}: expected {length} values (one per frame), got {arr.size}")
    return arr


def check_time(time_s) -> np.ndarray:
    """Frame times: 1-D, finite, strictly increasing."""
    t = as_1d_float("time_s", time_s)
    if t.size and not np.all(np.isfinite(t)):
        raise KineticsInputError("time_s: frame times must be finite (mid-exposure, DAQ clock)")
    if t.size > 1 and not np.all(np.diff(t) > 0):
        raise KineticsInputError("time_s: frame times must be strictly increasing")
    return t


def check_exposure(exposure_s: float) -> float:
    """Exposure time: finite and >= 0."""
    e = float(exposure_s)
    if not np.isfinite(e) or e < 0:
        raise KineticsInputError(f"exposure_s: expected a finite value >= 0, got {exposure_s!r}")
    return e


def check_cycles(cycles: pd.DataFrame) -> pd.DataFrame:
    """The per-cycle table: required columns present; returned sorted by ``on_start_s``."""
    if not isinstance(cycles, pd.DataFrame):
        raise KineticsInputError(f"cycles: expected a pandas DataFrame, got {type(cycles).__name__}")
    missing = [c for c in CYCLE_COLUMNS if c not in cycles.columns]
    if missing:
        raise KineticsInputError(f"cycles: missing column(s) {missing}; expected {list(CYCLE_COLUMNS)}")
    times = _sorted_times(cycles)
    if times is not None:  # already sorted with a plain index: the same table, as a copy
        out = cycles.copy()
        bad = ~((times[0] <= times[1]) & (times[1] <= times[2]))
    else:
        out = cycles.sort_values("on_start_s", kind="stable").reset_index(drop=True)
        bad = ~((out["on_start_s"] <= out["on_end_s"]) & (out["on_end_s"] <= out["off_end_s"]))
    if bool(bad.any()):
        raise KineticsInputError(
            "cycles: each row needs on_start_s <= on_end_s <= off_end_s; "
            f"violated in cycle(s) {out.loc[bad, 'cycle'].tolist()}"
        )
    return out


def _sorted_times(cycles: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``on_start_s, on_end_s, off_end_s`` when the table is already what :func:`check_cycles` makes
    of it (numeric numpy columns, ``on_start_s`` non-decreasing, index ``0 .. n-1``; a table of every
    particle's analysis), else None (sorted by pandas)."""
    idx = cycles.index
    if not (isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1):
        return None
    cols = [cycles[k] for k in ("on_start_s", "on_end_s", "off_end_s")]
    if not all(isinstance(c.dtype, np.dtype) and c.dtype.kind in "iuf" for c in cols):
        return None
    on_start, on_end, off_end = (c.to_numpy() for c in cols)
    if not np.all(on_start[1:] >= on_start[:-1]):  # NaN: not sorted
        return None
    return on_start, on_end, off_end
