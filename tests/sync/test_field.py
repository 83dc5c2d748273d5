"""Field levels, segments and cycles against synthetic ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plscope.sync import (
    CYCLE_COLUMNS,
    LEVEL_COLUMNS,
    SEGMENT_COLUMNS,
    cycles_from_segments,
    field_kV_per_cm,
    field_levels,
    field_segments,
)

FS_HZ = 1000.0
GAIN = 20.0
GAP_UM = 10.0
#: Recorded volts per kV/cm for GAIN and GAP_UM (130 kV/cm <-> 6.5 V).
V_PER_KV_CM = GAP_UM * 1e-4 * 1e3 / GAIN


def synthetic_field(
    rng: np.random.Generator,
    levels_kV_per_cm,
    *,
    on_s: float = 2.0,
    off_s: float = 2.0,
    lead_s: float = 1.0,
    noise: float = 0.01,
    signs=None,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Square wave stepping through the levels, with 2-sample ramps and 1 % noise.

    Returns time, recorded voltage and the true segments.
    """
    dt = 1 / FS_HZ
    n = len(levels_kV_per_cm)
    signs = np.ones(n) if signs is None else np.asarray(signs, float)
    start = lead_s + (on_s + off_s) * np.arange(n) + rng.uniform(0, dt, n)
    end = start + on_s + rng.uniform(0, dt, n)
    t = np.arange(int((end[-1] + off_s) * FS_HZ)) * dt
    v = np.zeros_like(t)
    for a, b, e, s in zip(start, end, levels_kV_per_cm, signs):
        up = np.clip((t - a) / (2 * dt) + 0.5, 0, 1)
        down = np.clip((t - b) / (2 * dt) + 0.5, 0, 1)
        v += s * e * V_PER_KV_CM * (up - down)
    v += rng.normal(0, 1, t.size) * (noise * np.abs(v) + 0.002)
    truth = pd.DataFrame(
        {"start_s": start, "end_s": end, "field_kV_per_cm": levels_kV_per_cm, "sign": signs.astype(int)}
    )
    return t, v, truth


def test_field_from_voltage():
    assert field_kV_per_cm(6.5, amplifier_gain=20, electrode_gap_um=10) == pytest.approx(130.0)
    np.testing.assert_allclose(
        field_kV_per_cm(np.array([-1.0, 0.0, 2.0]), amplifier_gain=10, electrode_gap_um=5), [20.0, 0.0, 40.0]
    )
    with pytest.raises(ValueError, match="electrode_gap_um"):
        field_kV_per_cm(1.0, amplifier_gain=20, electrode_gap_um=0)


def test_stepped_levels_with_noise_and_glitches_give_exact_segments():
    rng = np.random.default_rng(10)
    levels = [90, 110, 130] * 4
    t, v, truth = synthetic_field(rng, levels)
    # a 2-sample spike during OFF and a 2-sample dropout during ON
    k_off = np.searchsorted(t, truth["end_s"][2] + 1.0)
    v[k_off : k_off + 2] = 110 * V_PER_KV_CM
    k_on = np.searchsorted(t, truth["start_s"][5] + 0.7)
    v[k_on : k_on + 2] = 0.0

    seg = field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM, source="daq.csv")
    assert list(seg.columns) == list(SEGMENT_COLUMNS)
    assert len(seg) == len(levels)
    assert seg["segment"].tolist() == list(range(len(levels)))
    np.testing.assert_allclose(seg["start_s"], truth["start_s"], atol=1 / FS_HZ, rtol=0)
    np.testing.assert_allclose(seg["end_s"], truth["end_s"], atol=1 / FS_HZ, rtol=0)
    np.testing.assert_allclose(seg["field_kV_per_cm"], levels, rtol=0.005)
    assert seg["level"].tolist() == [0, 1, 2] * 4
    np.testing.assert_allclose(seg["level_kV_per_cm"], levels, rtol=0.005)
    assert (seg["sign"] == 1).all()


def test_sign_alternating_field_gives_signs_and_one_level():
    rng = np.random.default_rng(11)
    signs = [1, -1, 1, -1, 1, -1]
    t, v, truth = synthetic_field(rng, [120] * 6, signs=signs)
    seg = field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM)
    assert seg["sign"].tolist() == signs
    assert (seg["level"] == 0).all()
    np.testing.assert_allclose(seg["level_kV_per_cm"], 120, rtol=0.005)


def test_direct_polarity_reversal_splits_segments():
    # +E immediately followed by -E (no OFF time in between)
    rng = np.random.default_rng(12)
    t = np.arange(8000) / FS_HZ
    v = np.zeros_like(t)
    v[1000:3000] = 5.0
    v[3000:5000] = -5.0
    v += rng.normal(0, 0.02, t.size)
    seg = field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM)
    assert seg["sign"].tolist() == [1, -1]
    assert seg["end_s"][0] == pytest.approx(seg["start_s"][1], abs=2 / FS_HZ)
    assert seg["level"].tolist() == [0, 0]


def test_segment_cut_by_the_record_start_is_kept_with_a_warning(caplog):
    rng = np.random.default_rng(16)
    t = np.arange(6000) / FS_HZ
    v = np.where((t < 1.5) | ((t >= 3.0) & (t < 4.5)), 4.0, 0.0) + rng.normal(0, 0.01, t.size)
    seg = field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM, source="daq.csv")
    assert len(seg) == 2 and seg["start_s"][0] == 0.0
    assert seg["end_s"][0] == pytest.approx(1.4995, abs=1e-3)
    assert "ON at the start of the record" in seg.attrs["warnings"][0]
    assert "daq.csv: the field is ON at the start" in caplog.text


def test_min_duration_and_level_tolerance_are_respected():
    rng = np.random.default_rng(13)
    t, v, _ = synthetic_field(rng, [100, 104, 100], on_s=1.0)
    merged = field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM, level_tolerance=0.05)
    assert merged["level"].tolist() == [0, 0, 0]
    split = field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM, level_tolerance=0.02)
    assert split["level"].tolist() == [0, 1, 0]
    assert field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM, min_duration_s=1.5).empty


def test_no_field_gives_an_empty_table_with_the_columns():
    rng = np.random.default_rng(14)
    t = np.arange(5000) / FS_HZ
    seg = field_segments(t, rng.normal(0, 0.002, t.size), amplifier_gain=GAIN, electrode_gap_um=GAP_UM)
    assert seg.empty and list(seg.columns) == list(SEGMENT_COLUMNS)
    cycles = cycles_from_segments(seg, record_end_s=5.0)
    assert cycles.empty and list(cycles.columns) == list(CYCLE_COLUMNS)


def test_cycles_from_segments():
    rng = np.random.default_rng(15)
    levels = [90, 130, 90]
    t, v, truth = synthetic_field(rng, levels)
    seg = field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM)
    cycles = cycles_from_segments(seg, record_end_s=float(t[-1]))
    assert list(cycles.columns) == list(CYCLE_COLUMNS)
    assert cycles["cycle"].tolist() == [0, 1, 2]
    assert cycles["level"].tolist() == [0, 1, 0]
    np.testing.assert_allclose(cycles["on_start_s"], seg["start_s"])
    np.testing.assert_allclose(cycles["on_end_s"], seg["end_s"])
    np.testing.assert_allclose(cycles["off_end_s"][:2], seg["start_s"][1:])
    assert cycles["off_end_s"].iloc[-1] == t[-1]
    np.testing.assert_allclose(cycles["field_kV_per_cm"], seg["level_kV_per_cm"])
    with pytest.raises(ValueError, match="record_end_s"):
        cycles_from_segments(seg, record_end_s=1.0)


# --------------------------------------------------------------------------
# stepped and ramped level sequences, polarity
# --------------------------------------------------------------------------


def test_ramped_level_sequence_up_and_down_gives_one_level_per_setting():
    # 90, 95, ..., 130 and back: neighbours 3.8-5.6 % apart must not chain into one level
    rng = np.random.default_rng(17)
    levels = list(range(90, 131, 5)) + list(range(130, 89, -5))
    t, v, truth = synthetic_field(rng, levels)
    seg = field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM)
    assert len(seg) == len(levels)
    np.testing.assert_allclose(seg["field_kV_per_cm"], levels, rtol=0.005)
    expected_level = [(e - 90) // 5 for e in levels]
    assert seg["level"].tolist() == expected_level
    np.testing.assert_allclose(seg["level_kV_per_cm"], levels, rtol=0.005)
    lv = field_levels(seg)
    assert lv["n_segments"].tolist() == [2] * 9


def test_fine_ramp_is_resolved_with_a_matching_tolerance():
    rng = np.random.default_rng(18)
    levels = [100 * 1.02**k for k in range(10)]  # 2 % steps
    t, v, _ = synthetic_field(rng, levels)
    coarse = field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM, level_tolerance=0.05)
    spans = coarse.groupby("level")["field_kV_per_cm"].agg(lambda f: f.max() / f.min() - 1)
    assert (spans <= 0.05).all() and coarse["level"].nunique() >= 4  # no chaining
    fine = field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM, level_tolerance=0.01)
    assert fine["level"].tolist() == list(range(10))


def test_staircase_without_off_time_is_split_at_each_step():
    # zero -> 90 -> 110 -> 130 -> zero stepwise (Fig. S7 of the paper), then one 130 pulse
    rng = np.random.default_rng(19)
    t = np.arange(0, 14, 1 / FS_HZ)
    e = np.select([t < 1, t < 3, t < 5, t < 7, t < 9, t < 11], [0, 90, 110, 130, 0, 130], 0.0)
    v = e * V_PER_KV_CM * (1 + 0.01 * rng.normal(size=t.size)) + 0.002 * rng.normal(size=t.size)
    seg = field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM)
    np.testing.assert_allclose(seg["start_s"], [1, 3, 5, 9], atol=2 / FS_HZ)
    np.testing.assert_allclose(seg["end_s"], [3, 5, 7, 11], atol=2 / FS_HZ)
    np.testing.assert_allclose(seg["field_kV_per_cm"], [90, 110, 130, 130], rtol=0.005)
    assert seg["level"].tolist() == [0, 1, 2, 2]
    cycles = cycles_from_segments(seg, record_end_s=14.0)
    np.testing.assert_allclose(cycles["off_end_s"], [3, 5, 9, 14], atol=2 / FS_HZ)


def test_trapezoidal_pulses_with_slow_slew():
    # 0.4 s linear ramps up and down: edges at half field, field from the flat top
    rng = np.random.default_rng(20)
    t = np.arange(0, 14, 1 / FS_HZ)
    e = np.interp(t, [0, 1, 1.4, 3.0, 3.4, 6, 6.4, 8, 8.4, 14], [0, 0, 120, 120, 0, 0, 120, 120, 0, 0])
    v = e * V_PER_KV_CM + 0.002 * rng.normal(size=t.size)
    seg = field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM)
    np.testing.assert_allclose(seg["start_s"], [1.2, 6.2], atol=2 / FS_HZ)
    np.testing.assert_allclose(seg["end_s"], [3.2, 8.2], atol=2 / FS_HZ)
    np.testing.assert_allclose(seg["field_kV_per_cm"], 120, rtol=0.002)
    assert seg["level"].tolist() == [0, 0]


@pytest.mark.parametrize(
    "signs, polarity",
    [
        ([1, 1, -1, -1, 1, 1], ["alternating", "alternating"]),
        ([1, 1, 1, 1, 1, 1], ["positive", "positive"]),
        ([-1, -1, -1, -1, -1, -1], ["negative", "negative"]),
        ([1, 1, -1, -1, -1, 1], ["mixed", "alternating"]),
    ],
)
def test_polarity_of_each_level_is_reported(signs, polarity):
    # levels 100, 130, 100, 130, ...: level 0 gets signs[0::2], level 1 signs[1::2]
    rng = np.random.default_rng(21)
    t, v, _ = synthetic_field(rng, [100, 130] * 3, signs=signs)
    seg = field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM)
    assert seg["sign"].tolist() == signs
    lv = field_levels(seg)
    assert list(lv.columns) == list(LEVEL_COLUMNS)
    np.testing.assert_allclose(lv["field_kV_per_cm"], [100, 130], rtol=0.005)
    for level, s in ((0, signs[0::2]), (1, signs[1::2])):
        row = lv.iloc[level]
        assert row["n_positive"] == s.count(1) and row["n_negative"] == s.count(-1)
    assert lv["polarity"].tolist() == polarity
    cycles = cycles_from_segments(seg, record_end_s=float(t[-1]))
    assert cycles["sign"].tolist() == signs
