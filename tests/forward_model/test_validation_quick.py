"""A quick subset of ``python -m validation`` (the full table is docs/validation.md)."""

from __future__ import annotations

import numpy as np
import pytest
from validation.registry import load_all
from validation.run import TARGETS, run_scenarios, to_markdown


def test_registry_has_the_particle_scenarios():
    names = set(load_all())
    assert {
        "squares_any_angle",
        "rectangles_aspect_1.5",
        "discs_rounded",
        "lost_frame_1",
        "lost_frames_3",
        "real_bead_like",
    } <= names


@pytest.mark.slow
def test_quick_validation_squares_any_angle_meets_issue_targets(tmp_path):
    df = run_scenarios(["squares_any_angle"], [1], tmp_path, log=lambda s: None)
    row = df.iloc[0]
    assert row["rc"] == 0
    for metric, limit in TARGETS["squares_any_angle"].items():
        assert np.isfinite(row[metric]) and abs(row[metric]) <= limit, (metric, row[metric])
    md = to_markdown(df, "test")
    targets = [ln for ln in md.split("## Runs")[0].splitlines() if ln.startswith("- squares_any_angle:")]
    assert len(targets) == 3 and not any("MISSED" in ln for ln in targets)
