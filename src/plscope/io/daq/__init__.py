"""DAQ logs: the camera TTL and function-generator voltage on the DAQ clock.

:func:`read_daq` reads a log into a :class:`DaqLog` (one time base, one
array per channel):

- CSV (header row; a time column and one column per channel). What real
  exports vary in is accepted: ``,``, ``;`` or tab separators, decimal
  commas, any column order, a few bad rows (dropped, counted and reported).
- NI ``.tdms`` (LabVIEW, DAQmx logging) through npTDMS: channels are named
  ``group/channel`` and timed by their waveform properties
  (``wf_increment``, ``wf_start_offset``) or by a time channel of their
  group; DAQmx raw data are scaled (npTDMS applies the scales stored in the
  file). The file is opened in streaming mode: only the metadata are read
  at the door, and a channel's samples are read, chunk by chunk into one
  float64 array, the first time the channel is used, so memory holds only
  the channels the analysis needs.
- HDF5 (``.h5``/``.hdf5``, needs the optional ``h5py``; see
  :mod:`plscope.io.daq.hdf5`), read lazily the same way.

One reader per format (:mod:`~plscope.io.daq.csv`,
:mod:`~plscope.io.daq.tdms`, :mod:`~plscope.io.daq.hdf5`), all returning
the :class:`DaqLog` of :mod:`~plscope.io.daq._log`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ...errors import RunFolderError
from . import hdf5
from ._log import TIME_COLUMN, DaqLog, LazyChannels
from .csv import read_csv_log
from .hdf5 import read_hdf5_log
from .tdms import read_tdms_log

__all__ = [
    "TIME_COLUMN",
    "DaqLog",
    "LazyChannels",
    "read_csv_log",
    "read_daq",
    "read_hdf5_log",
    "read_tdms_log",
]

#: file name endings read as HDF5 logs
HDF5_SUFFIXES = (".h5", ".hdf5", ".he5", ".hdf")


def read_daq(
    path: str | os.PathLike,
    *,
    channels: Sequence[str] | None = None,
    sample_rate_hz: float | None = None,
) -> DaqLog:
    """Read a DAQ log.

    Parameters
    ----------
    path : str or path-like
        A CSV file with a header row. The time column is ``time_s``, else
        the first column whose name starts with ``time`` (a unit in the name
        such as ``time_ms`` or ``Time (ms)`` is converted to seconds), else
        the first column. Every other numeric column is a channel.
        Or an NI ``.tdms`` file: numeric channels named ``group/channel``
        (:meth:`DaqLog.channel` also accepts the bare channel name when it is
        unique), timed by their waveform properties or by a channel of their
        group whose name starts with ``time``.
        Or an HDF5 file (``.h5``, ``.hdf5``; needs h5py), see
        :func:`plscope.io.daq.hdf5.read_hdf5_log`.
    channels : sequence of str, optional
        Channels the caller needs. They are checked at the door (a missing
        one raises, naming the channels that exist), and for TDMS/HDF5 the
        time base is that of the first of them (default: of the first
        timed channel in the file).
    sample_rate_hz : float, optional
        CSV/text logs without a time column: sample ``k`` is at
        ``k / sample_rate_hz`` s and every column is a channel.

    Returns
    -------
    DaqLog

    Raises
    ------
    RunFolderError
        Missing or empty file, no data rows, a single column, or a time
        column that does not increase strictly (after dropping bad rows);
        an unreadable ``.tdms``/HDF5 file or one without timing; a channel
        of ``channels`` that does not exist or is on another time base.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise RunFolderError(path, "file does not exist")
    if not os.path.isfile(path):
        raise RunFolderError(path, "is a folder, not a DAQ log file")
    wanted = list(channels or [])
    lower = path.lower()
    if lower.endswith(".tdms_index"):
        raise RunFolderError(path, "is a TDMS index file; give the .tdms file itself")
    if lower.endswith(".tdms"):
        log = read_tdms_log(path, channels=wanted)
    elif lower.endswith(HDF5_SUFFIXES):
        log = hdf5.read_hdf5_log(path, channels=wanted)
    else:
        log = read_csv_log(path, sample_rate_hz=sample_rate_hz)
    for name in wanted:
        log.channel(name)  # raises naming the channels that exist
    return log
