"""The :class:`DaqLog` every DAQ reader returns, and helpers the readers share."""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import RunFolderError

__all__ = [
    "TIME_COLUMN",
    "TIME_UNITS_S",
    "DaqLog",
    "LazyChannels",
    "check_stamp",
    "file_stamp",
    "is_time_name",
    "lazy_log",
    "main_time_base",
    "regular_time_s",
    "time_scale",
]

#: Name of the time column written by our own tools (seconds).
TIME_COLUMN = "time_s"
#: seconds per unit of the time units accepted in column/dataset names and attributes
TIME_UNITS_S = {
    "s": 1.0,
    "sec": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ns": 1e-9,
    "min": 60.0,
}


class LazyChannels(Mapping):
    """Channel name -> samples, each read from its file on first access.

    Parameters
    ----------
    names : sequence of str
        The channels, in file order.
    load : callable
        ``load(name) -> numpy.ndarray`` (float64, one value per sample).
    """

    def __init__(self, names: Sequence[str], load: Callable[[str], np.ndarray]):
        self._names = tuple(names)
        self._load = load
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        if name not in self._cache:
            self._cache[name] = self._load(name)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __repr__(self) -> str:
        return f"LazyChannels({list(self._names)}, loaded={list(self._cache)})"


@dataclass(frozen=True, eq=False)
class DaqLog:
    """Channels of a DAQ log on a common time base.

    Attributes
    ----------
    path : str
        The file read.
    time_s : numpy.ndarray
        Sample times in seconds, shape ``(n,)``, strictly increasing.
    channels : mapping of str to numpy.ndarray
        Each channel's samples (float64, shape ``(n,)``), by name (a
        :class:`LazyChannels` for TDMS and HDF5 logs: read on first use).
    warnings : tuple of str
        Recoverable problems (dropped rows, ignored columns), also logged.
    left_out : dict of str to str
        Channels of the file that are not on this time base (or not
        numeric), with the reason; asking for one raises that reason.
    """

    path: str
    time_s: np.ndarray
    channels: Mapping[str, np.ndarray] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    left_out: dict[str, str] = field(default_factory=dict)

    def _resolve(self, name: str) -> str | None:
        if name in self.channels:
            return name
        # TDMS/HDF5: a bare channel name (which may itself hold '/') is enough when unique
        found = [k for k in self.channels if k.endswith("/" + name)]
        return found[0] if len(found) == 1 else None

    def channel(self, name: str) -> np.ndarray:
        """Samples of channel ``name`` (``group/channel`` or a unique bare name).

        Raises
        ------
        RunFolderError
            If there is no such channel on the log's time base; the message
            lists the channels.
        """
        key = self._resolve(name)
        if key is not None:
            return self.channels[key]
        names = ", ".join(self.channels) or "(none)"
        other = [k for k in self.left_out if k == name or k.endswith("/" + name)]
        if other:
            raise RunFolderError(
                self.path,
                f"channel '{other[0]}' {self.left_out[other[0]]}; "
                f"channels on the log's time base are: {names}",
            )
        close = difflib.get_close_matches(name, list(self.channels), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise RunFolderError(self.path, f"no channel '{name}'{hint}; channels are: {names}")

    def has_channel(self, name: str) -> bool:
        """Whether :meth:`channel` would find ``name``."""
        return self._resolve(name) is not None

    @property
    def sample_rate_hz(self) -> float:
        """Sampling rate from the median sample interval (of the first 100 000;
        NaN for one sample)."""
        if self.time_s.size < 2:
            return float("nan")
        return float(1.0 / np.median(np.diff(self.time_s[:100_001])))

    @property
    def n_samples(self) -> int:
        return int(self.time_s.size)


def file_stamp(path: str) -> tuple[int, int]:
    """(size, mtime_ns) of a file: what :func:`check_stamp` compares before a lazy read."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def check_stamp(path: str, stamp: tuple[int, int]) -> None:
    """Raise if ``path`` changed since :func:`file_stamp` gave ``stamp``."""
    try:
        now = file_stamp(path)
    except OSError as exc:
        raise RunFolderError(path, f"cannot be read any more: {exc.strerror}") from None
    if now != stamp:
        raise RunFolderError(path, "file changed since it was opened; read it again")


def is_time_name(name: str) -> bool:
    """Whether a channel/dataset name is a time axis (``t``, ``time...``)."""
    n = name.strip().lower()
    return n == "t" or n.startswith("time")


def time_scale(name: str) -> float | None:
    """Seconds per unit of a time column named like 'time_ms' or 'Time (ms)' (None: no unit)."""
    m = re.search(r"(?:^time|^t)[\s_\-\[\(]*([a-z\u00b5\u03bc]+)[\]\)]?\s*$", name.strip().lower())
    if m:
        return TIME_UNITS_S.get(m.group(1))
    return None


def main_time_base(entries: Sequence, wanted: Sequence[str], matches: Callable[[Any, str], bool]):
    """The entry that sets a log's time base: that of the first wanted channel found, else the first."""
    for name in wanted:
        hit = [e for e in entries if matches(e, name)]
        if hit:
            return hit[0]
    return entries[0]


def regular_time_s(n: int, interval_s: float, offset_s: float) -> np.ndarray:
    """``offset_s + k * interval_s`` for ``k < n``, float64 (in place: one array of n floats at a time)."""
    time_s = np.arange(n, dtype=np.float64)
    time_s *= interval_s
    time_s += offset_s
    return time_s


def lazy_log(
    path: str,
    time_s: np.ndarray,
    names: Sequence[str],
    load: Callable[[str], np.ndarray],
    warnings: Sequence[str],
    left_out: dict[str, str],
    kind: str,
    logger: logging.Logger,
) -> DaqLog:
    """A :class:`DaqLog` whose channels ``load`` reads on first use; its warnings logged to ``logger``."""
    for w in warnings:
        logger.warning("%s: %s", path, w)
    log = DaqLog(
        path=path,
        time_s=time_s,
        channels=LazyChannels(list(names), load),
        warnings=tuple(warnings),
        left_out=left_out,
    )
    logger.debug(
        "%s: %d samples at %.6g Hz, channels %s (%s)",
        path,
        log.n_samples,
        log.sample_rate_hz,
        list(names),
        kind,
    )
    return log
