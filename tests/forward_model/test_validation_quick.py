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


def test_the_kinetics_scenarios_exist_at_image_level():
    # issue 12: every other-physics scenario also as a run folder (PL from validation.forward.kinetics)
    from validation.forward.runfolder import schedule
    from validation.scenarios_kinetics import KINETICS_SCENARIOS, _image_experiment

    names = set(load_all())
    for n in ("per_particle_shapes", "slow_biexp", "half_mobility", "two_cycles_blinks", "signal_div6"):
        assert f"img_{n}" in names and f"img_{n}" in TARGETS
    ks = KINETICS_SCENARIOS["kin_slow_biexp"]
    exp = _image_experiment(np.random.default_rng(1), ks)
    assert len(exp.particles) == 8 and exp.cycles_per_level == 3 and exp.period_s == 40.0
    on = schedule(exp)
    starts = np.arange(1.0, on[-1][1] + 20.0, 0.2)
    pl, truth = exp.pl_model(0, starts, exp.exposure_s, on)
    se = truth["switching_efficiency_by_field"]
    # quenched towards the settled depth of each field, never below it but in a blink (~2 % of the
    # time at 1 per minute, 0.5-2 s); PL 1 before the first ON edge
    assert pl.shape == starts.shape and np.all(pl <= 1.0) and np.all(pl > 0) and pl[0] == 1.0
    assert np.mean(pl >= 1.0 - max(se.values()) - 1e-9) > 0.95
    assert se["130.0"] == pytest.approx(130.0 / 90.0 * se["90.0"], rel=1e-12)
