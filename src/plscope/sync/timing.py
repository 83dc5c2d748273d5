"""From a DAQ log to frame times and field cycles: the one way every pipeline times its frames.

:func:`timing_from_daq` turns the camera TTL channel into frame times and the
function-generator voltage into field-ON segments, ON/OFF cycles, field
levels and a decimated field trace, restricted to the recording.
:func:`timing_from_clock` and :func:`timing_from_frame_times` time frames
without a DAQ log (a frame rate or the frame index; given time stamps). Both return a :class:`RecordTiming`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from ..columns import FRAME_COLUMNS
from .edges import ttl_pulses
from .field import cycles_from_segments, field_kV_per_cm, field_levels, field_segments
from .frames import frame_timing

if TYPE_CHECKING:
    from ..io.daq import DaqLog

__all__ = [
    "FIELD_TRACE_POINTS",
    "FieldWiring",
    "RecordTiming",
    "timing_from_clock",
    "timing_from_daq",
    "timing_from_frame_times",
]

#: about this many points of the field record are kept for figures
FIELD_TRACE_POINTS = 20000


@dataclass(frozen=True)
class FieldWiring:
    """How the DAQ voltage channel becomes a field (``[field]`` of experiment.toml).

    Attributes
    ----------
    voltage : str
        DAQ channel of the function-generator voltage, V.
    amplifier_gain : float
        High-voltage amplifier gain (V out per V in).
    electrode_gap_um : float
        Gap between the electrodes, µm.
    level_tolerance : float
        Relative tolerance for grouping segments into field levels.
    """

    voltage: str
    amplifier_gain: float
    electrode_gap_um: float
    level_tolerance: float = 0.02

    @classmethod
    def from_experiment(cls, cfg: Any) -> FieldWiring | None:
        """The wiring of a loaded experiment.toml (None without ``[field]`` or ``[daq]``)."""
        if getattr(cfg, "field", None) is None or getattr(cfg, "daq", None) is None:
            return None
        return cls(
            voltage=cfg.daq.voltage,
            amplifier_gain=cfg.field.amplifier_gain,
            electrode_gap_um=cfg.field.electrode_gap_um,
            level_tolerance=cfg.field.level_tolerance,
        )


@dataclass(frozen=True)
class RecordTiming:
    """Frame times and field cycles of one recording (movie or spectra).

    Attributes
    ----------
    frames : pandas.DataFrame
        :data:`plscope.columns.FRAME_COLUMNS`: ``frame``, ``time_s`` (start
        of the exposure, s), ``mid_time_s`` (its middle, s).
    exposure_s : float
        Exposure time, s (0 when unknown).
    segments : pandas.DataFrame or None
        Field-ON segments overlapping the recording; None without a field.
    cycles : pandas.DataFrame
        ON/OFF cycles (:data:`plscope.columns.CYCLE_COLUMNS`); empty without
        a field or without a field-ON segment during the recording.
    field_trace : pandas.DataFrame or None
        ``time_s``, ``field_kV_per_cm`` over the recording, decimated to
        about :data:`FIELD_TRACE_POINTS` points (for figures).
    field_levels : list of dict
        The field levels of ``cycles`` (:func:`plscope.sync.field_levels`).
    n_dropped : int
        Frames the camera dropped (missing TTL slots).
    dropped_after : list of int
        Frames followed by dropped ones.
    warnings : tuple of str
        Recoverable oddities of the TTL record (frame timing).
    field_warnings : tuple of str
        Recoverable oddities of the voltage record (field segments).
    peak_field_kV_per_cm : float
        Largest segment field in the whole DAQ record (0 without segments),
        for plausibility checks.
    """

    frames: pd.DataFrame
    exposure_s: float
    segments: pd.DataFrame | None = None
    cycles: pd.DataFrame = field(default_factory=pd.DataFrame)
    field_trace: pd.DataFrame | None = None
    field_levels: list[dict[str, Any]] = field(default_factory=list)
    n_dropped: int = 0
    dropped_after: list[int] = field(default_factory=list)
    warnings: tuple[str, ...] = ()
    field_warnings: tuple[str, ...] = ()
    peak_field_kV_per_cm: float = 0.0

    @property
    def start_s(self) -> np.ndarray:
        """Exposure starts, s, shape (n_frames,)."""
        return self.frames["time_s"].to_numpy(float)

    @property
    def mid_s(self) -> np.ndarray:
        """Exposure middles, s, shape (n_frames,)."""
        return self.frames["mid_time_s"].to_numpy(float)


def _frames_table(start_s: np.ndarray, mid_s: np.ndarray) -> pd.DataFrame:
    n = start_s.size
    return pd.DataFrame(dict(zip(FRAME_COLUMNS, (np.arange(n), start_s, mid_s), strict=True)))


def timing_from_clock(n_frames: int, frame_rate_hz: float | None = None) -> RecordTiming:
    """Frames timed by a frame rate (or by their index when the rate is None); no field.

    >>> timing_from_clock(3, 10.0).frames["time_s"].tolist()
    [0.0, 0.1, 0.2]
    """
    t = np.arange(n_frames) / frame_rate_hz if frame_rate_hz else np.arange(n_frames, dtype=float)
    return RecordTiming(frames=_frames_table(t, t), exposure_s=0.0)


def timing_from_frame_times(time_s: Sequence[float] | np.ndarray) -> RecordTiming:
    """Frames timed by given start times (a file's own time stamps, say); exposure unknown; no field."""
    t = np.asarray(time_s, dtype=float)
    return RecordTiming(frames=_frames_table(t, t), exposure_s=0.0)


def timing_from_daq(
    daq: DaqLog,
    n_frames: int,
    *,
    camera_ttl: str,
    pulses: pd.DataFrame | None = None,
    wiring: FieldWiring | None = None,
    on_dropped: Literal["error", "map"] = "error",
    frame_numbers: Sequence[int] | np.ndarray | None = None,
    cycles: Literal["started", "overlapping"] = "started",
) -> RecordTiming:
    """Frame times from the camera TTL and field cycles from the voltage of a DAQ log.

    Parameters
    ----------
    daq : plscope.io.DaqLog
        The run's DAQ log.
    n_frames : int
        Frames in the recording.
    camera_ttl : str
        Channel of the camera's exposure TTL.
    pulses : pandas.DataFrame, optional
        Exposure pulses of that channel when already found (polarity
        detected, log gaps bridged); default: :func:`plscope.sync.ttl_pulses`
        of the channel, active high.
    wiring : FieldWiring, optional
        How the voltage channel becomes a field; None: no field.
    on_dropped : {"error", "map"}
        What to do when frames were dropped (see :func:`plscope.sync.frame_timing`).
    frame_numbers : array of int, optional
        Camera frame counters, to place dropped frames.
    cycles : {"started", "overlapping"}
        Which field-ON segments make cycles: those that *start* during the
        recording (imaging: the kinetics need each polarization onset), or
        every segment that *overlaps* it (spectra: a frame's field state is
        all that matters).

    Returns
    -------
    RecordTiming

    Raises
    ------
    plscope.errors.SyncError
        TTL pulses and frames that cannot be matched, a voltage without a
        usable ON/OFF pattern (naming the file and channel).
    """
    source = f"{daq.path} channel '{camera_ttl}'"
    if pulses is None:
        pulses = ttl_pulses(daq.time_s, daq.channel(camera_ttl), source=source)
    numbers = None if frame_numbers is None else np.asarray(frame_numbers)
    timing = frame_timing(pulses, n_frames, source=source, on_dropped=on_dropped, frame_numbers=numbers)
    exposure_s = float(timing.exposure_s) if math.isfinite(timing.exposure_s) else 0.0
    start = np.asarray(timing.time_s, float)
    mid = np.asarray(timing.mid_time_s, float) if exposure_s else start.copy()
    out = RecordTiming(
        frames=_frames_table(start, mid),
        exposure_s=exposure_s,
        n_dropped=int(timing.n_dropped),
        dropped_after=[int(k) for k in np.atleast_1d(timing.dropped_after)],
        warnings=tuple(timing.warnings),
    )
    if wiring is None:
        return out
    return _with_field(out, daq, wiring, cycles)


@dataclass(frozen=True)
class FieldCycles:
    """Field-ON segments, cycles, levels and trace of a DAQ voltage over one recording.

    Attributes
    ----------
    segments : pandas.DataFrame
        Field-ON segments kept (see ``which`` of :func:`field_cycles`).
    cycles : pandas.DataFrame
        ON/OFF cycles of those segments (empty when none).
    trace : pandas.DataFrame
        ``time_s``, ``field_kV_per_cm`` over the recording, decimated.
    levels : list of dict
        Field levels of the segments kept.
    peak_field_kV_per_cm : float
        Largest segment field of the whole record (0 without segments).
    warnings : tuple of str
    """

    segments: pd.DataFrame
    cycles: pd.DataFrame
    trace: pd.DataFrame
    levels: list[dict[str, Any]]
    peak_field_kV_per_cm: float
    warnings: tuple[str, ...]


def field_cycles(
    daq: DaqLog,
    wiring: FieldWiring,
    mid_s: np.ndarray,
    exposure_s: float,
    *,
    which: Literal["started", "overlapping"] = "started",
) -> FieldCycles:
    """Field segments, ON/OFF cycles, levels and a decimated field trace over frames at ``mid_s``.

    Parameters
    ----------
    daq : plscope.io.DaqLog
    wiring : FieldWiring
    mid_s : numpy.ndarray, shape (n_frames,)
        Exposure middles, s: the recording spans ``mid_s[0] - exposure_s / 2``
        to ``mid_s[-1] + exposure_s / 2``.
    exposure_s : float
    which : {"started", "overlapping"}
        Segments that start during the recording, or every one overlapping it.
    """
    voltage = daq.channel(wiring.voltage)
    gain, gap = wiring.amplifier_gain, wiring.electrode_gap_um
    segments = field_segments(
        daq.time_s,
        voltage,
        amplifier_gain=gain,
        electrode_gap_um=gap,
        source=f"{daq.path} channel '{wiring.voltage}'",
        level_tolerance=wiring.level_tolerance,
    )
    t0 = float(mid_s[0] - exposure_s / 2)
    t1 = float(mid_s[-1] + exposure_s / 2)
    warnings = tuple(segments.attrs.get("warnings", []))
    peak = float(segments["field_kV_per_cm"].max()) if len(segments) else 0.0
    if len(segments):
        start, end = segments["start_s"], segments["end_s"]
        keep = (start > t0) & (start < t1) if which == "started" else (end > t0) & (start < t1)
        segments = segments[keep].reset_index(drop=True)
    sel = (daq.time_s >= t0) & (daq.time_s <= t1)
    step = max(1, int(sel.sum() // FIELD_TRACE_POINTS))
    trace = pd.DataFrame(
        {
            "time_s": daq.time_s[sel][::step],
            "field_kV_per_cm": field_kV_per_cm(
                voltage[sel][::step], amplifier_gain=gain, electrode_gap_um=gap
            ),
        }
    )
    cycles = pd.DataFrame()
    levels: list[dict[str, Any]] = []
    if len(segments):
        cycles = cycles_from_segments(segments, record_end_s=max(t1, float(np.nanmax(segments["end_s"]))))
        levels = field_levels(segments).to_dict("records")
    return FieldCycles(segments, cycles, trace, levels, peak, warnings)


def _with_field(
    timing: RecordTiming, daq: DaqLog, wiring: FieldWiring, which: Literal["started", "overlapping"]
) -> RecordTiming:
    """``timing`` with the field segments, cycles, levels and trace of the recording."""
    f = field_cycles(daq, wiring, timing.mid_s, timing.exposure_s, which=which)
    return dataclasses.replace(
        timing,
        segments=f.segments,
        cycles=f.cycles,
        field_trace=f.trace,
        field_levels=f.levels,
        field_warnings=f.warnings,
        peak_field_kV_per_cm=f.peak_field_kV_per_cm,
    )
