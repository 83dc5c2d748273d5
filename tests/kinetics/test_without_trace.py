"""A particle's kinetics without its copies of the whole trace (issue 16, memory).

``plscope run`` drops them once the population's tables are made; what is left must still be
refitted to the same table, and what the report reads (tables, curves, fits, bleaching) is unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from plscope.kinetics import ShapePrior, refit_particle

from .synth import simulate_trace
from .test_analysis import FIELDS, SIZE_NM, run


def test_without_trace_keeps_everything_but_the_trace_and_refits_the_same():
    sim = simulate_trace(fields_kV_per_cm=FIELDS, n_cycles=3, se=0.3, rng=np.random.default_rng(4))
    full = run(sim, size_nm=SIZE_NM)
    bare = full.without_trace()
    ctx = bare._context
    assert ctx.time_s is None and ctx.norm_intensity is None and ctx.raw_intensity is None
    assert full._context.time_s is not None  # the original is not changed
    assert bare.particle_id == full.particle_id
    pd.testing.assert_frame_equal(bare.table, full.table)
    assert bare.curves is full.curves and bare.fits is full.fits and bare.bleach is full.bleach
    assert bare.without_trace() is bare
    prior = ShapePrior(frac_mean=0.6, frac_sd=0.1, log_ratio_mean=float(np.log(1.6 / 0.6)), log_ratio_sd=0.1)
    pd.testing.assert_frame_equal(
        refit_particle(bare, {"pol": prior}).table, refit_particle(full, {"pol": prior}).table
    )


def test_first_pass_without_report_refits_to_the_full_result():
    """``analyze_particle(report=False)`` (a population's first pass, whose tables the refit replaces)
    leaves the tables out; :func:`refit_particle` then makes exactly the full result's."""
    sim = simulate_trace(fields_kV_per_cm=FIELDS, n_cycles=3, se=0.3, rng=np.random.default_rng(5))
    full = run(sim, particle_id=7, size_nm=SIZE_NM)
    lean = run(sim, particle_id=7, size_nm=SIZE_NM, report=False)
    assert len(lean.table) == 0 and list(lean.table.columns) == list(full.table.columns)
    assert lean.curves == {} and lean.fits == {}
    pd.testing.assert_frame_equal(lean.se_cycles, full.se_cycles)
    assert lean.free_fits.keys() == full.free_fits.keys()
    prior = ShapePrior(frac_mean=0.6, frac_sd=0.1, log_ratio_mean=float(np.log(1.6 / 0.6)), log_ratio_sd=0.1)
    for priors in (None, {"pol": prior}):
        a, b = refit_particle(lean, priors), refit_particle(full, priors)
        pd.testing.assert_frame_equal(a.table, b.table)
        assert repr(a.fits) == repr(b.fits) and a.curves.keys() == b.curves.keys()
        for key, curve in a.curves.items():
            pd.testing.assert_frame_equal(curve, b.curves[key])
    pd.testing.assert_frame_equal(refit_particle(lean, None).table, full.table)
