"""RunResult.curve_table joins the curves column by column: the same frame as pandas' concat (issue 16)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plscope.results import RunResult

COLS = ["t_s", "mean", "sem", "n_cycles", "fit"]


def _curve(n: int, seed: int, *, drop: str | None = None, n_cycles_dtype=np.int64) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "t_s": np.arange(n) * 0.05,
            "mean": rng.normal(1.0, 0.1, n),
            "sem": rng.uniform(0, 0.01, n),
            "n_cycles": np.full(n, 3, dtype=n_cycles_dtype),
            "fit": np.where(rng.random(n) < 0.1, np.nan, rng.normal(1.0, 0.1, n)),
            "cycle_0": rng.normal(1.0, 0.1, n),
        }
    )
    return df.drop(columns=[drop]) if drop else df


def _result(curves: dict) -> RunResult:
    empty = pd.DataFrame()
    return RunResult(
        summary={}, particles=empty, kinetics=empty, traces=empty, reference_image=np.zeros((2, 2)),
        frame_time_s=np.zeros(0), cycles=empty, curves=curves,
    )  # fmt: skip


def _by_pandas(curves: dict) -> pd.DataFrame:
    """The table as pandas assembles it: one frame per curve, concatenated (the former code)."""
    frames = []
    for (pid, field, phase), df in sorted(
        curves.items(), key=lambda kv: (kv[0][0], float(kv[0][1]), kv[0][2])
    ):
        if df is None or not len(df):
            continue
        head = pd.DataFrame(
            {
                "particle_id": np.full(len(df), pid),
                "field_kV_per_cm": np.full(len(df), float(field)),
                "phase": np.array([phase] * len(df), dtype=object),
            }
        )
        frames.append(pd.concat([head, df.reindex(columns=COLS).reset_index(drop=True)], axis=1))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize(
    "variant",
    ["uniform", "a curve without 'fit'", "float n_cycles in one curve", "empty and None curves"],
)
def test_curve_table_equals_pandas_concat(variant):
    curves = {
        (pid, field, phase): _curve(5 + pid, seed=pid * 10 + int(field))
        for pid in (3, 1, 2)
        for field in (90.0, 60)
        for phase in ("rec", "pol")
    }
    if variant == "a curve without 'fit'":
        curves[(1, 60, "pol")] = _curve(4, 99, drop="fit")
    elif variant == "float n_cycles in one curve":
        curves[(2, 90.0, "rec")] = _curve(4, 98, n_cycles_dtype=float)
    elif variant == "empty and None curves":
        curves[(4, 60.0, "pol")] = _curve(0, 1)
        curves[(5, 60.0, "pol")] = None
    got = _result(curves).curve_table()
    pd.testing.assert_frame_equal(got, _by_pandas(curves), check_exact=True)
    assert list(got.columns) == ["particle_id", "field_kV_per_cm", "phase", *COLS]
