"""The whole-trace fits are written back into all particles' tables at once (issue 16).

:func:`plscope.kinetics.refine._apply_all` groups the tables by columns and
dtypes, rebuilds each group in one frame and splits it; it must give exactly
the tables of writing every particle's rows back one table at a time
(``_table_like``), including where a group's dtypes change on the way back.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from plscope.kinetics import analyze_particle
from plscope.kinetics.refine import _apply_all, _apply_rows, _determined, _table_like
from plscope.kinetics.trace_fit import _sort_order, fit_trace, trace_geometry

from .synth import simulate_trace


@pytest.fixture(scope="module")
def fitted():
    out = []
    for seed, bleach in ((1, 1.0), (2, 0.5), (3, 2.0), (4, 1.0)):
        sim = simulate_trace(
            fields_kV_per_cm=(90.0, 130.0),
            n_cycles=3,
            bleach_percent_per_min=bleach,
            rng=np.random.default_rng(seed),
        )
        pk = analyze_particle(sim.time_s, sim.intensity, sim.cycles, exposure_s=sim.exposure_s, size_nm=700.0)
        g = trace_geometry(sim.time_s, sim.intensity, sim.cycles, sim.exposure_s)
        out.append((pk, fit_trace(g), g))
    return out


def _one_at_a_time(pk, tf, g) -> pd.DataFrame:
    rows = pk.table.to_dict("records")
    _apply_rows(pk, tf, g.frame_interval_s, rows)
    return _table_like(pk.table, rows)


def _with_table(pk, table):
    return dataclasses.replace(pk, table=table)


def test_batched_write_back_equals_one_table_at_a_time(fitted):
    items = [*fitted, fitted[0]]  # the first group: two tables
    # a second group (another dtype), and a group whose rebuilt dtypes differ (an all-None object column
    # that receives floats: written cell by cell into the table as one table at a time does)
    pk, tf, g = items[1]
    items[1] = (_with_table(pk, pk.table.astype({"n_cycles": float})), tf, g)
    for k in (2, 3):
        pk, tf, g = items[k]
        items[k] = (_with_table(pk, pk.table.assign(velocity_nm_per_s=None)), tf, g)
    got = _apply_all(items)
    assert len(got) == len(items)
    for table, item in zip(got, items, strict=True):
        want = _one_at_a_time(*item)
        pd.testing.assert_frame_equal(table, want, check_exact=True)
        assert table.dtypes.equals(want.dtypes)
    assert (
        got[2]["velocity_nm_per_s"].dtype == object
        and np.isfinite(got[2]["velocity_nm_per_s"].astype(float)).any()
    )
    assert (got[0]["tau_pol_err_method"] == "trace_fit").all()


def test_level_rows_are_the_per_level_table(fitted):
    for _, tf, _ in fitted:
        per = tf.per_level
        assert per.to_dict("records") == list(tf.level_rows)
        cols = ["tau_pol_err_s", "tau_rec_err_s", "se_err"]
        want = bool(
            tf.success
            and np.isfinite(per[cols].to_numpy(float)).all()
            and (per["se"].abs() > 3 * per["se_err"]).all()
        )
        assert _determined(tf) is want


def test_cycle_order_is_sort_values_order():
    # trace_geometry orders the cycles without sorting the table: the same order, NaN last, ties kept as
    # pandas' quicksort keeps them
    rng = np.random.default_rng(3)
    values = rng.integers(0, 20, 200).astype(float)
    values[rng.integers(0, 200, 15)] = np.nan
    table = pd.DataFrame({"on_start_s": values, "row": np.arange(200)})
    want = table.sort_values("on_start_s")["row"].to_numpy()
    np.testing.assert_array_equal(_sort_order(values), want)
