"""Tidy tables to Parquet and back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plscope.errors import PlscopeError
from plscope.tracking import read_table, tidy, write_table


def test_traces_round_trip_with_metadata(tmp_path):
    rng = np.random.default_rng(0)
    traces = pd.DataFrame(
        {
            "frame": np.repeat(np.arange(50, dtype=np.int64), 3),
            "particle_id": np.tile(np.arange(3, dtype=np.int64), 50),
            "intensity": rng.normal(1000, 30, 150),
            "background": rng.normal(100, 1, 150),
        }
    )
    traces.loc[7, "intensity"] = np.nan
    traces.attrs = {
        "n_aperture_px": {0: 121, 1: 81, 2: 169},
        "saturation_adu": 65535.0,
        "radius_px": {0: np.float64(5.5), 1: 4.5, 2: 6.5},
    }
    path = write_table(traces, tmp_path / "traces.parquet")
    assert path.exists() and not (tmp_path / "traces.parquet.part").exists()
    back = read_table(path)
    pd.testing.assert_frame_equal(back, traces)
    assert back.attrs == {
        "n_aperture_px": {0: 121, 1: 81, 2: 169},
        "saturation_adu": 65535.0,
        "radius_px": {0: 5.5, 1: 4.5, 2: 6.5},
    }
    assert list(read_table(path, columns=["frame", "intensity"]).columns) == ["frame", "intensity"]


def test_object_columns_become_strings(tmp_path):
    sizes = pd.DataFrame(
        {
            "particle_id": [0, 1],
            "fit_message": np.array(["ok", None], dtype=object),
            "size_fit_ok": [True, False],
        }
    )
    out = tidy(sizes)
    assert pd.api.types.is_string_dtype(out["fit_message"]) and out["fit_message"].dtype != object
    assert out["size_fit_ok"].dtype == bool
    back = read_table(write_table(sizes, tmp_path / "sizes.parquet"))
    assert back["fit_message"].iloc[0] == "ok" and pd.isna(back["fit_message"].iloc[1])


def test_missing_table(tmp_path):
    with pytest.raises(PlscopeError, match="no such table"):
        read_table(tmp_path / "nothing.parquet")
