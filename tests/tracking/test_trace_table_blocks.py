"""The traces table written straight into its blocks (issue 16, memory).

``_trace_table`` fills one int64 and one float64 block in place; the frame must be the one made
column by column from the kernel's per-frame values (the obvious construction, written out here).
"""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest

from plscope.tracking.traces import _trace_table


def _column_by_column(values, kernel, weights, *, centroids, peaks, drift) -> pd.DataFrame:
    n, t_total = len(weights.particle_id), values.shape[0]
    data = {
        "frame": np.repeat(np.arange(t_total, dtype=np.int64), n),
        "particle_id": np.tile(weights.particle_id, t_total),
        "intensity": values[:, :n].ravel(),
        "background": values[:, n : 2 * n].ravel(),
    }
    if centroids:
        data["x_px"] = values[:, kernel.col_cx : kernel.col_cx + n].ravel()
        data["y_px"] = values[:, kernel.col_cx + n : kernel.col_cx + 2 * n].ravel()
    if peaks:
        data["peak_adu"] = values[:, kernel.col_peak : kernel.col_peak + n].ravel()
    if drift:
        data["drift_x_px"] = np.repeat(values[:, kernel.col_drift], n)
        data["drift_y_px"] = np.repeat(values[:, kernel.col_drift + 1], n)
    return pd.DataFrame(data)


@pytest.mark.parametrize("shape", [(7, 5), (4, 0), (0, 3), (1, 1)])
@pytest.mark.parametrize("centroids,peaks,drift", [(1, 1, 1), (0, 0, 0), (1, 0, 1), (0, 1, 0)])
def test_trace_table_is_the_column_by_column_frame(shape, centroids, peaks, drift):
    t_total, n = shape
    kernel = types.SimpleNamespace(col_cx=2 * n, col_peak=4 * n, col_drift=5 * n)
    weights = types.SimpleNamespace(
        particle_id=np.arange(10, 10 + n, dtype=np.int64),
        n_aperture_px=np.full(n, 12),
        n_annulus_px=np.full(n, 30),
        radius_px=np.full(n, 2.5),
        annulus_masked_fraction=np.zeros(n),
    )
    values = np.random.default_rng(t_total * 10 + n).normal(size=(t_total, 5 * n + 2))
    flags = dict(centroids=bool(centroids), peaks=bool(peaks), drift=bool(drift))
    ours = _trace_table(values, kernel, weights, **flags)
    pd.testing.assert_frame_equal(ours, _column_by_column(values, kernel, weights, **flags), check_exact=True)
    assert ours.attrs["radius_px"] == dict.fromkeys(range(10, 10 + n), 2.5)
    # one block per dtype, each column a view into it (no copies)
    assert sorted(str(b.dtype) for b in ours._mgr.blocks) == ["float64", "int64"]
    floats = next(b.values for b in ours._mgr.blocks if b.dtype == np.float64)
    assert all(np.shares_memory(ours[c].to_numpy(), floats) for c in ours.columns[2:] if len(ours))


def test_chunks_of_frames_give_the_table_of_the_whole_array():
    n = 4
    kernel = types.SimpleNamespace(col_cx=2 * n, col_peak=4 * n, col_drift=5 * n)
    weights = types.SimpleNamespace(
        particle_id=np.arange(n, dtype=np.int64),
        n_aperture_px=np.full(n, 12),
        n_annulus_px=np.full(n, 30),
        radius_px=np.full(n, 2.5),
        annulus_masked_fraction=np.zeros(n),
    )
    values = np.random.default_rng(1).normal(size=(23, 5 * n + 2))
    chunks = [values[:8], values[8:8], values[8:21], values[21:]]
    flags = dict(centroids=True, peaks=True, drift=True)
    pd.testing.assert_frame_equal(
        _trace_table(chunks, kernel, weights, **flags), _trace_table(values, kernel, weights, **flags)
    )
