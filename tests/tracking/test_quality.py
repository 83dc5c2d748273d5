"""Quality flags: blinking, bleaching, saturation, SNR, reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plscope.errors import PlscopeError
from plscope.sim.kinetics import quench_state, switch_schedule
from plscope.tracking import QUALITY_COLUMNS, blink_mask, quality_flags

N_FRAMES = 600
DT_S = 0.2


def field_modulated_trace(
    rng, *, level=5000.0, bleach_fraction=0.3, blinks=(), noise=60.0, tau_rec_s=1.5, size_nm=500.0
):
    """PL of one particle under the simulator's field switching (fast small particle), bleaching and blinks.

    ``blinks``: (start_frame, n_frames, factor). Returns (trace, true blinked mask).
    """
    t = np.arange(N_FRAMES) * DT_S
    switches, fields = switch_schedule([130.0], cycles_per_level=6, period_s=16.0, duty=0.5, first_on_s=8.0)
    q = quench_state(
        t + 0.5 * DT_S,
        switches,
        fields,
        size_nm=np.array([size_nm]),
        mobility_cm2_per_Vs=np.array([3e-10]),
        tau_rec_s=np.array([tau_rec_s]),
        se_at_130=np.array([0.55]),
        fast_fraction=0.6,
        fast_ratio=0.6,
    )[0]
    pl = level * (1 - q) * (1 - bleach_fraction) ** (t / t[-1])
    blinked = np.zeros(N_FRAMES, bool)
    for start, length, factor in blinks:
        pl[start : start + length] *= factor
        blinked[start : start + length] = True
    return pl + rng.normal(0, noise, N_FRAMES), blinked


def traces_table(ys, **attrs):
    n = len(ys)
    out = pd.DataFrame(
        {
            "frame": np.repeat(np.arange(N_FRAMES), n),
            "particle_id": np.tile(np.arange(n), N_FRAMES),
            "intensity": np.stack(ys, axis=1).ravel(),
        }
    )
    out.attrs.update(attrs)
    return out


def test_blinks_found_and_field_switching_is_not_blinking(rng):
    blinks = [(40, 3, 0.4), (150, 12, 0.5), (300, 1, 0.2), (420, 30, 0.05), (505, 6, 0.6)]
    y, truth = field_modulated_trace(rng, blinks=blinks)
    mask = blink_mask(y)
    assert (mask & truth).sum() >= 0.95 * truth.sum()  # blinks found, long and short
    assert (mask & ~truth).sum() <= 2  # no switching edge taken for a blink
    steady, _ = field_modulated_trace(rng)
    assert blink_mask(steady).sum() == 0


def test_quality_table(rng):
    steady, _ = field_modulated_trace(rng, bleach_fraction=0.3)
    blinky, truth = field_modulated_trace(
        rng, bleach_fraction=0.3, blinks=[(50 + 60 * k, 15, 0.3) for k in range(9)]
    )
    dim, _ = field_modulated_trace(rng, level=150.0, bleach_fraction=0.3)
    bleached, _ = field_modulated_trace(rng, bleach_fraction=0.8)
    traces = traces_table(
        [steady, blinky, dim, bleached],
        saturation_adu=65535.0,
        annulus_masked_fraction={0: 0.1, 1: 0.0, 2: 0.7, 3: 0.2},
    )
    traces["peak_adu"] = np.where(traces["particle_id"] == 0, 60000.0, 3000.0)
    traces.loc[(traces["particle_id"] == 0) & (traces["frame"] < 30), "peak_adu"] = 65535.0
    particles = pd.DataFrame(
        {
            "particle_id": [0, 1, 2, 3],
            "touches_border": [False, False, False, True],
            "size_fit_ok": [True, True, True, True],
        }
    )
    t = np.arange(N_FRAMES) * DT_S
    off = np.ones(N_FRAMES, bool)  # reference frames: field off (8 s lead-in, then half of each period)
    off[(t >= 8.0) & (((t - 8.0) % 16.0) < 8.0) & (t < 8.0 + 6 * 16.0)] = False
    q = quality_flags(traces, particles, frame_time_s=t, reference_frames=np.flatnonzero(off))
    assert tuple(q.columns) == QUALITY_COLUMNS
    q = q.set_index("particle_id")
    assert q.loc[1, "blink_fraction"] == pytest.approx(truth.mean(), abs=0.03)
    assert q.loc[1, "n_blinks"] == 9 and q.loc[1, "blinking"]
    assert q.loc[0, "blink_fraction"] == 0.0 and not q.loc[0, "blinking"]
    # bleaching over the run, from the field-off frames: 30 % and 80 %
    assert q.loc[0, "bleach_fraction"] == pytest.approx(0.3, abs=0.04)
    assert q.loc[3, "bleach_fraction"] == pytest.approx(0.8, abs=0.04)
    assert q.loc[0, "bleach_rate_per_s"] == pytest.approx(-np.log(0.7) / t[-1], rel=0.15)
    assert q.loc[3, "bleached"] and not q.loc[0, "bleached"]
    # SNR: median level over the frame-to-frame noise (60 ADU)
    assert q.loc[2, "low_snr"] and q.loc[2, "snr"] < 5 and q.loc[0, "snr"] > 50
    assert q.loc[0, "saturated_fraction"] == pytest.approx(0.05) and q.loc[0, "saturated"]
    assert q.loc[2, "crowded"] and not q.loc[0, "crowded"]
    assert not q["ok"].any()
    assert q.loc[0, "reason"] == "saturated in 5% of frames"
    assert "touches the border" in q.loc[3, "reason"] and "bleached" in q.loc[3, "reason"]
    assert "SNR" in q.loc[2, "reason"] and "neighbours cover 70%" in q.loc[2, "reason"]
    assert q.loc[1, "reason"].startswith("blinking")


def test_quality_rejects_incomplete_traces():
    with pytest.raises(PlscopeError, match="intensity"):
        quality_flags(pd.DataFrame({"frame": [0], "particle_id": [0]}))
