"""Camera pulses from a DAQ log: TTL polarity (declared or detected) and gaps in the log bridged.

Shared by the imaging and the spectral pipeline; warnings go to the run's list.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..sync import bridge_daq_gaps, detect_ttl_polarity, ttl_pulses


def camera_pulses(
    time_s: np.ndarray, ttl: np.ndarray, daq_cfg: Any, source: str, warnings: list[str], info: dict[str, Any]
) -> pd.DataFrame:
    """Exposure pulses of a camera TTL line, polarity and DAQ-log gaps taken care of.

    ``info`` receives ``ttl_polarity``, ``ttl_polarity_source`` and
    ``n_daq_gaps_bridged`` (for summary.json); an inverted line, a polarity
    decided from the duty alone and every bridged gap are warned about.
    """
    pol = detect_ttl_polarity(time_s, ttl, declared=getattr(daq_cfg, "ttl_polarity", "auto"), source=source)
    info["ttl_polarity"] = pol.polarity
    info["ttl_polarity_source"] = pol.how
    if pol.polarity == "low":
        warnings.append(
            f"{source}: inverted TTL (the camera exposes while the line is low; {pol.how}); "
            "frames timed by its falling edges"
        )
    if pol.how == "exposure duty":
        warnings.append(
            f"{source}: TTL polarity '{pol.polarity}' decided from the exposure duty "
            f"({pol.high_duty:.0%} high) alone; set [daq] ttl_polarity if the exposure is the shorter phase"
        )
    pulses = ttl_pulses(time_s, ttl, source=source, polarity=pol.polarity)
    pulses, notes = bridge_daq_gaps(pulses, time_s, source=source)
    warnings.extend(notes)
    info["n_daq_gaps_bridged"] = len(notes)
    return pulses
