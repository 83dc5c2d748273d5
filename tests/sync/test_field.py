"""Field levels, segments and cycles against synthetic ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plscope.sync import (CYCLE_COLUMNS, SEGMENT_COLUMNS, cycles_from_segments, field_kV_per_cm,
                          field_segments)

FS_HZ = 1000.0
GAIN = 20.0
GAP_UM = 10.0
#: Recorded volts per kV/cm for GAIN and GAP_UM (130 kV/cm <-> 6.5 V).
V_PER_KV_CM = GAP_UM * 1e-4 * 1e3 / GAIN


def synthetic_field(rng: np.random.Generator, levels_kV_per_cm, *, on_s: float = 2.0,
                    off_s: float = 2.0, lead_s: float = 1.0, noise: float = 0.01,
                    signs=None) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
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
    truth = pd.DataFrame({"start_s": start, "end_s": end, "field_kV_per_cm": levels_kV_per_cm,
                          "sign": signs.astype(int)})
    return t, v, truth


def test_field_from_voltage():
    assert field_kV_per_cm(6.5, amplifier_gain=20, electrode_gap_um=10) == pytest.approx(130.0)
    np.testing.assert_allclose(
        field_kV_per_cm(np.array([-1.0, 0.0, 2.0]), amplifier_gain=10, electrode_gap_um=5),
        [20.0, 0.0, 40.0])
    with pytest.raises(ValueError, match="electrode_gap_um"):
        field_kV_per_cm(1.0, amplifier_gain=20, electrode_gap_um=0)


def test_stepped_levels_with_noise_and_glitches_give_exact_segments():
    rng = np.random.default_rng(10)
    levels = [90, 110, 130] * 4
    t, v, truth = synthetic_field(rng, levels)
    # a 2-sample spike during OFF and a 2-sample dropout during ON
    k_off = np.searchsorted(t, truth["end_s"][2] + 1.0)
    v[k_off:k_off + 2] = 110 * V_PER_KV_CM
    k_on = np.searchsorted(t, truth["start_s"][5] + 0.7)
    v[k_on:k_on + 2] = 0.0

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
    merged = field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM)
    assert merged["level"].tolist() == [0, 0, 0]
    split = field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM,
                           level_tolerance=0.02)
    assert split["level"].tolist() == [0, 1, 0]
    assert field_segments(t, v, amplifier_gain=GAIN, electrode_gap_um=GAP_UM,
                          min_duration_s=1.5).empty


def test_no_field_gives_an_empty_table_with_the_columns():
    rng = np.random.default_rng(14)
    t = np.arange(5000) / FS_HZ
    seg = field_segments(t, rng.normal(0, 0.002, t.size), amplifier_gain=GAIN,
                         electrode_gap_um=GAP_UM)
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
