"""DAQ logs in HDF5 files (optional: needs ``h5py``, ``pip install plscope[hdf5]``).

Layout accepted (what lab scripts writing HDF5 logs commonly do):

- every 1-D numeric dataset is a channel, named by its path without the
  leading ``/`` (``"daq/camera_ttl"``; a bare name is enough when unique);
- a channel is timed by a dataset of its group whose name starts with
  ``time`` or is ``t`` (seconds, or the unit in its name such as
  ``time_ms``, or in a ``unit``/``units`` attribute), or else by waveform
  attributes on the channel or its group: a sample interval
  (``wf_increment``, ``dt_s`` or ``dt``) or rate (``sample_rate_hz``,
  ``rate_hz``), and optionally a start (``wf_start_offset``, ``t0_s``).

Channels on another time base than the first requested (or first timed)
channel are left out with a warning, as for TDMS. Samples are read on first
use, in blocks, into one float64 array.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from ...errors import RunFolderError
from . import _log
from ._log import TIME_UNITS_S, DaqLog, check_stamp, file_stamp, is_time_name, time_scale

logger = logging.getLogger(__name__)

__all__ = ["read_hdf5_log"]

_BLOCK = 1 << 20
_DT_ATTRS = ("wf_increment", "dt_s", "dt")
_RATE_ATTRS = ("sample_rate_hz", "rate_hz")
_START_ATTRS = ("wf_start_offset", "t0_s", "t0")


def _h5py():
    try:
        import h5py
    except ImportError:
        return None
    return h5py


def _attr(obj, names: Sequence[str]) -> float | None:
    for name in names:
        if name in obj.attrs:
            try:
                return float(np.asarray(obj.attrs[name]).ravel()[0])
            except (TypeError, ValueError, IndexError):
                return None
    return None


def _unit_scale(ds) -> float:
    for key in ("unit", "units"):
        if key in ds.attrs:
            unit = ds.attrs[key]
            unit = unit.decode() if isinstance(unit, bytes) else str(unit)
            return TIME_UNITS_S.get(unit.strip().lower(), 1.0)
    scale = time_scale(ds.name.rsplit("/", 1)[-1])
    return 1.0 if scale is None else scale


def read_hdf5_log(path: str | os.PathLike, *, channels: Sequence[str] = ()) -> DaqLog:
    """Read a DAQ log from an HDF5 file (see the module docstring for the layout).

    Parameters
    ----------
    path : str or path-like
        The HDF5 file.
    channels : sequence of str, optional
        Channels the caller needs; the first one found sets the time base.

    Returns
    -------
    DaqLog
        Channels are read from the file on first use.

    Raises
    ------
    RunFolderError
        h5py is not installed, the file is not HDF5, or no channel has a
        time base.
    """
    path = os.fspath(path)
    h5py = _h5py()
    if h5py is None:
        raise RunFolderError(
            path,
            "reading HDF5 logs needs the optional 'h5py' package "
            "(pip install h5py, or pip install plscope[hdf5])",
        )
    stamp = file_stamp(path)
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise RunFolderError(path, f"not a readable HDF5 file ({exc})") from None
    with fh:
        entries, left_out = _timed_datasets(fh, h5py)
        if not entries:
            raise RunFolderError(
                path,
                "has no 1-D numeric dataset with a time base (a 'time_s' "
                "dataset beside it, or a 'dt_s'/'sample_rate_hz' attribute)",
            )
        main = _log.main_time_base(
            entries, channels, lambda e, want: e[0] == want or e[0].rsplit("/", 1)[-1] == want
        )
        base = main[1]
        names = [name for name, b in entries if b == base]
        for name, b in entries:
            if b != base:
                left_out[name] = f"has a different time base from '{main[0]}' and is left out"
        n = base[1]
        time_s = _time_axis(fh, path, main)
    if n < 2:
        raise RunFolderError(path, f"has {n} sample(s); expected a time series")
    warnings = [f"channel '{k}' {why}" for k, why in left_out.items()]

    def load(name: str) -> np.ndarray:
        check_stamp(path, stamp)
        out = np.empty(n, dtype=np.float64)
        with h5py.File(path, "r") as f:
            ds = f[name]
            for a in range(0, n, _BLOCK):
                b = min(n, a + _BLOCK)
                out[a:b] = ds[a:b]
        return out

    return _log.lazy_log(path, time_s, names, load, warnings, left_out, "HDF5", logger)


def _timed_datasets(fh, h5py) -> tuple[list[tuple[str, tuple]], dict[str, str]]:
    """Every 1-D numeric dataset with its time base ``('dataset', n, time dataset)`` or
    ``('wf', n, dt, t0)``, and the datasets left out with the reason."""
    datasets: list = []
    fh.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
    by_group: dict[str, list] = {}
    for ds in datasets:
        by_group.setdefault(ds.parent.name, []).append(ds)
    entries: list[tuple[str, tuple]] = []
    left_out: dict[str, str] = {}
    for members in by_group.values():
        tds = next(
            (
                d
                for d in members
                if is_time_name(d.name.rsplit("/", 1)[-1]) and d.ndim == 1 and d.shape[0] > 1
            ),
            None,
        )
        for ds in members:
            name = ds.name.lstrip("/")
            if tds is not None and ds.name == tds.name:
                continue
            if ds.ndim != 1 or not (np.issubdtype(ds.dtype, np.number) or ds.dtype == np.bool_):
                left_out[name] = f"is not a 1-D numeric dataset ({ds.dtype}, shape {ds.shape})"
                continue
            base = _time_base(ds, tds)
            if base is None:
                left_out[name] = "has no time dataset in its group nor sample-interval attributes"
                continue
            entries.append((name, base))
    return entries, left_out


def _time_base(ds, tds) -> tuple | None:
    """A dataset's time base: the time dataset of its group, else its (or its group's) waveform
    attributes (None: neither)."""
    n = int(ds.shape[0])
    dt = _attr(ds, _DT_ATTRS) or _attr(ds.parent, _DT_ATTRS)
    rate = _attr(ds, _RATE_ATTRS) or _attr(ds.parent, _RATE_ATTRS)
    if dt is None and rate:
        dt = 1.0 / rate
    if tds is not None and tds.shape[0] == n:
        return ("dataset", n, tds.name)
    if dt is not None:
        t0 = _attr(ds, _START_ATTRS) or _attr(ds.parent, _START_ATTRS) or 0.0
        return ("wf", n, dt, t0)
    return None


def _time_axis(fh, path: str, main: tuple[str, tuple]) -> np.ndarray:
    """Sample times of the time base ``main`` sets, s (checked)."""
    base = main[1]
    if base[0] == "wf":
        if not base[2] > 0:
            raise RunFolderError(
                path,
                f"channel '{main[0]}' has a sample interval of {base[2]}; expected a positive number",
            )
        return _log.regular_time_s(base[1], base[2], base[3])
    tds = fh[base[2]]
    time_s = np.asarray(tds[()], dtype=np.float64) * _unit_scale(tds)
    if not (np.isfinite(time_s).all() and (np.diff(time_s) > 0).all()):
        raise RunFolderError(path, f"time dataset '{base[2]}' is not finite and strictly increasing")
    return time_s
