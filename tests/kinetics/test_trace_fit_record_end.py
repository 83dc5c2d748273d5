"""Regression: a record that ends inside (or at the end of) an ON window crashed the whole-trace fit.

``plscope run`` on a movie whose last field cycle had no OFF part raised
``ValueError: math domain error`` (the start value of ``tau_rec`` was
``log(0.15 * 0)``). Found by the benchmark generator (issue 16).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from plscope.kinetics.trace_fit import fit_trace, trace_geometry


def test_last_cycle_without_off_window_is_fitted():
    rng = np.random.default_rng(0)
    t = np.arange(0.05, 50.0, 0.1)  # frame mid-times, 10 frames/s, record ends at 50 s
    cycles = pd.DataFrame(
        {
            "cycle": [0, 1],
            "level": [0, 1],
            "field_kV_per_cm": [60.0, 90.0],
            "sign": [1, 1],
            "on_start_s": [5.0, 40.0],
            "on_end_s": [15.0, 50.0],
            "off_end_s": [40.0, 50.0],  # the last cycle: the record ends with the field ON
        }
    )
    on = ((t >= 5) & (t < 15)) | (t >= 40)
    y = 1000.0 * np.where(on, 0.7, 1.0) + rng.normal(0.0, 5.0, t.size)
    g = trace_geometry(t, y, cycles, 0.08)
    assert g is not None and g.off_s[1] == 0.0
    fit = fit_trace(g)
    assert fit is not None
    assert np.all(np.isfinite(fit.per_level["tau_pol_s"]))
