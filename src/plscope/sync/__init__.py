"""Synchronization: TTL edges, frame times, field levels and ON/OFF cycles.

All functions here are pure (arrays in, arrays or tidy DataFrames out);
reading the DAQ log is :func:`plscope.io.read_daq`;
:func:`timing_from_daq` turns it into frame times and field cycles.
"""

from .edges import (
    PULSE_COLUMNS,
    TtlPolarity,
    bridge_daq_gaps,
    camera_pulses,
    daq_gaps,
    detect_ttl_polarity,
    ttl_pulses,
)
from .field import (
    CYCLE_COLUMNS,
    LEVEL_COLUMNS,
    SEGMENT_COLUMNS,
    cycles_from_segments,
    field_kV_per_cm,
    field_levels,
    field_segments,
)
from .frames import FrameTiming, LostFrames, find_lost_frames, frame_timing
from .timing import (
    FieldCycles,
    FieldWiring,
    RecordTiming,
    field_cycles,
    timing_from_clock,
    timing_from_daq,
    timing_from_frame_times,
)

__all__ = [
    "CYCLE_COLUMNS",
    "LEVEL_COLUMNS",
    "PULSE_COLUMNS",
    "SEGMENT_COLUMNS",
    "FieldWiring",
    "FrameTiming",
    "TtlPolarity",
    "bridge_daq_gaps",
    "camera_pulses",
    "daq_gaps",
    "detect_ttl_polarity",
    "RecordTiming",
    "FieldCycles",
    "field_cycles",
    "cycles_from_segments",
    "field_kV_per_cm",
    "field_levels",
    "field_segments",
    "LostFrames",
    "find_lost_frames",
    "frame_timing",
    "timing_from_clock",
    "timing_from_daq",
    "timing_from_frame_times",
    "ttl_pulses",
]
