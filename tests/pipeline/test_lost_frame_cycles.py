"""Cycles with a field edge inside a lost frame's interval are left out of the kinetics (issue 11)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from plscope.pipeline.imaging import _drop_uncertain_cycles


def test_cycles_with_an_edge_inside_a_lost_interval_are_dropped_and_named():
    mid = np.arange(1000) * 0.2 + 0.075
    cycles = pd.DataFrame({"on_start_s": [10.0, 40.0, 70.0], "on_end_s": [25.0, 55.0, 85.0]})
    warnings: list[str] = []
    # a frame lost somewhere between pulses 190 and 300 (38-60 s): the cycle ON at 40 s has both edges there
    kept = _drop_uncertain_cycles(cycles, mid, [(190, 300)], warnings)
    assert kept["on_start_s"].tolist() == [10.0, 70.0]
    assert len(warnings) == 1 and "ON at [40.0] s" in warnings[0]
    # an interval without a field edge drops nothing and says nothing
    warnings.clear()
    kept = _drop_uncertain_cycles(cycles, mid, [(130, 195)], warnings)
    assert len(kept) == 3 and not warnings
