"""Tables written a row group at a time: the bytes of pandas' ``to_parquet`` (issue 16, memory)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plscope import results
from plscope.results import PARQUET_ROW_GROUP_ROWS, write_parquet


def _traces(n_frames: int, n_particles: int, seed: int = 0) -> pd.DataFrame:
    """A traces-like table: frame-major rows, integer keys, floats with NaN, -0.0 and repeats."""
    rng = np.random.default_rng(seed)
    n = n_frames * n_particles
    intensity = rng.normal(1000.0, 30.0, n)
    intensity[rng.random(n) < 0.01] = np.nan
    intensity[:3] = [-0.0, 0.0, np.inf]
    return pd.DataFrame(
        {
            "frame": np.repeat(np.arange(n_frames, dtype=np.int64), n_particles),
            "particle_id": np.tile(np.arange(n_particles, dtype=np.int64), n_frames),
            "intensity": intensity,
            "drift_x_px": np.repeat(rng.normal(0.0, 0.1, n_frames), n_particles),
        }
    )


def test_row_groups_written_one_at_a_time_give_pandas_bytes(tmp_path, monkeypatch):
    table = _traces(350, 10)  # 3500 rows: groups of 1000, 1000, 1000, 500
    monkeypatch.setattr(results, "PARQUET_ROW_GROUP_ROWS", 1000)
    write_parquet(table, tmp_path / "ours.parquet")
    table.to_parquet(tmp_path / "pandas.parquet", index=False, row_group_size=1000)
    assert (tmp_path / "ours.parquet").read_bytes() == (tmp_path / "pandas.parquet").read_bytes()
    back = pd.read_parquet(tmp_path / "ours.parquet")
    pd.testing.assert_frame_equal(back, table)


def test_default_row_group_size_is_pandas_own(tmp_path):
    """Above pyarrow's default group size the file equals ``to_parquet`` without options: the
    constant is pyarrow's default (a pyarrow that changes it fails here, not silently)."""
    table = _traces(PARQUET_ROW_GROUP_ROWS // 50 + 3000, 50)[["frame", "intensity"]]
    assert len(table) > PARQUET_ROW_GROUP_ROWS
    write_parquet(table, tmp_path / "ours.parquet")
    table.to_parquet(tmp_path / "pandas.parquet", index=False)
    assert (tmp_path / "ours.parquet").read_bytes() == (tmp_path / "pandas.parquet").read_bytes()


@pytest.mark.parametrize("attrs", [{}, {"note": "kept in pandas' metadata"}])
def test_small_tables_and_attrs_go_through_pandas(tmp_path, attrs):
    table = _traces(20, 3)
    table.attrs = attrs
    write_parquet(table, tmp_path / "ours.parquet")
    table.to_parquet(tmp_path / "pandas.parquet", index=False)
    assert (tmp_path / "ours.parquet").read_bytes() == (tmp_path / "pandas.parquet").read_bytes()
