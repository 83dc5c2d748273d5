"""TTL edge detection and frame timing against synthetic ground truth."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from plscope.errors import SyncError
from plscope.sync import FrameTiming, frame_timing, ttl_pulses

FS_HZ = 10_000.0
HIGH_V = 5.0


def _ramp_steps(t: np.ndarray, edges_s: np.ndarray, sign: float, width_s: float) -> np.ndarray:
    """Sum of linear ramps of the given width centred on each edge time."""
    out = np.zeros_like(t)
    for e in edges_s:
        a, b = np.searchsorted(t, [e - width_s, np.inf])
        out[a:b] += sign * np.clip((t[a:b] - e) / width_s + 0.5, 0.0, 1.0)
    return out


def synthetic_ttl(
    rng: np.random.Generator,
    *,
    n_pulses: int = 60,
    interval_s: float = 0.05,
    exposure_s: float = 0.02,
    noise_V: float = 0.05,
    ringing: bool = True,
    glitches: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A camera TTL with sub-sample edges, 2-sample ramps, ringing, noise, glitches.

    Returns time, signal, true rising and true falling edge times.
    """
    dt = 1 / FS_HZ
    rise = 0.0123 + interval_s * np.arange(n_pulses) + rng.uniform(0, dt, n_pulses)
    fall = rise + exposure_s + rng.uniform(0, dt, n_pulses)
    t = np.arange(int((rise[-1] + interval_s) * FS_HZ)) * dt
    width = 2 * dt  # both samples bracketing the 50 % level lie on the ramp
    x = HIGH_V * (_ramp_steps(t, rise, 1, width) + _ramp_steps(t, fall, -1, width))
    if ringing:  # damped 1/8-sample-rate ringing after every edge, 15 % of the swing
        for edges, sign in ((rise, 1), (fall, -1)):
            for e in edges:
                a, b = np.searchsorted(t, [e + width / 2, e + 40 * dt])
                u = t[a:b] - e - width / 2
                x[a:b] += sign * 0.15 * HIGH_V * np.exp(-u / (5 * dt)) * np.sin(2 * np.pi * FS_HZ / 8 * u)
    x += rng.normal(0, noise_V, t.size)
    if glitches:
        low_idx = np.searchsorted(t, fall[:-1] + 0.01)  # mid-OFF samples
        high_idx = np.searchsorted(t, rise + 0.01)  # mid-ON samples
        x[low_idx[::7]] = HIGH_V  # single-sample spikes
        x[high_idx[3::11]] = 0.0  # single-sample dropouts
        x[low_idx[5::13]] = 0.5 * HIGH_V  # half-level glitches
    return t, x, rise, fall


def test_edges_recovered_within_a_tenth_of_a_sample():
    rng = np.random.default_rng(1)
    t, x, rise, fall = synthetic_ttl(rng)
    pulses = ttl_pulses(t, x)
    assert list(pulses.columns) == ["start_s", "end_s"]
    assert len(pulses) == rise.size
    dt = 1 / FS_HZ
    np.testing.assert_allclose(pulses["start_s"], rise, atol=0.1 * dt, rtol=0)
    np.testing.assert_allclose(pulses["end_s"], fall, atol=0.1 * dt, rtol=0)


def test_inverted_levels_and_offset_do_not_matter():
    rng = np.random.default_rng(2)
    t, x, rise, _ = synthetic_ttl(rng, glitches=False)
    pulses = ttl_pulses(t, 0.4 * x + 1.0)  # 1 V offset, 2 V swing
    np.testing.assert_allclose(pulses["start_s"], rise, atol=0.1 / FS_HZ, rtol=0)


def test_low_duty_cycle_pulses_are_found():
    # 0.6 % duty: the 99th percentile is on the low level; levels must still be right
    rng = np.random.default_rng(3)
    t, x, rise, _ = synthetic_ttl(
        rng, n_pulses=40, interval_s=0.1, exposure_s=0.0006, ringing=False, glitches=False
    )
    pulses = ttl_pulses(t, x)
    np.testing.assert_allclose(pulses["start_s"], rise, atol=0.1 / FS_HZ, rtol=0)


def test_explicit_thresholds_and_min_width():
    t = np.arange(100) / 1000.0
    x = np.zeros(100)
    x[10:20] = 5  # 10 ms pulse
    x[50:53] = 5  # 3 ms pulse
    both = ttl_pulses(t, x, low=1.0, high=4.0)
    assert len(both) == 2
    long_only = ttl_pulses(t, x, min_width_s=0.005)
    assert len(long_only) == 1
    assert long_only["start_s"][0] == pytest.approx(0.0095)
    assert long_only["end_s"][0] == pytest.approx(0.0195)


def test_record_ending_during_a_pulse_gives_nan_end_and_leading_fall_is_ignored():
    t = np.arange(60) / 1000.0
    x = np.zeros(60)
    x[:5] = 5  # record starts high: no rising edge, ignored
    x[20:30] = 5
    x[50:] = 5  # still high at the end
    pulses = ttl_pulses(t, x)
    assert len(pulses) == 2
    assert np.isnan(pulses["end_s"].iloc[-1])
    assert pulses["start_s"].iloc[-1] == pytest.approx(0.0495)


def test_flat_channel_raises_naming_the_source():
    rng = np.random.default_rng(4)
    t = np.arange(5000) / FS_HZ
    with pytest.raises(SyncError, match="daq.csv:camera_ttl.*flat: no TTL edges"):
        ttl_pulses(t, 0.01 * rng.normal(size=t.size), source="daq.csv:camera_ttl")
    with pytest.raises(SyncError, match="flat"):
        ttl_pulses(t, np.full(t.size, 3.3))


def test_nan_and_mismatched_input_raise():
    t = np.arange(10.0)
    with pytest.raises(SyncError, match="NaN"):
        ttl_pulses(t, np.where(t == 3, np.nan, 0.0))
    with pytest.raises(SyncError, match="same length"):
        ttl_pulses(t, np.zeros(9))


def test_a_million_samples():
    """Vectorized edge finding on a long log (its speed is measured in benchmarks/, not here)."""
    rng = np.random.default_rng(5)
    n = 1_000_000
    t = np.arange(n) / 1e5
    x = np.where((np.arange(n) // 500) % 4 == 1, 5.0, 0.0) + rng.normal(0, 0.05, n)
    pulses = ttl_pulses(t, x)
    assert len(pulses) == 500


# --------------------------------------------------------------------------
# frame timing
# --------------------------------------------------------------------------


def _pulses(starts, width=0.02):
    starts = np.asarray(starts, float)
    return pd.DataFrame({"start_s": starts, "end_s": starts + width})


def test_frame_timing_from_synthetic_ttl():
    rng = np.random.default_rng(6)
    t, x, rise, fall = synthetic_ttl(rng)
    timing = frame_timing(ttl_pulses(t, x), rise.size)
    assert isinstance(timing, FrameTiming)
    np.testing.assert_allclose(timing.time_s, rise, atol=0.1 / FS_HZ, rtol=0)
    assert timing.exposure_s == pytest.approx(0.02, abs=1 / FS_HZ)
    assert timing.frame_interval_s == pytest.approx(0.05, abs=1 / FS_HZ)
    np.testing.assert_allclose(timing.mid_time_s, timing.time_s + timing.exposure_s / 2)
    assert timing.warnings == ()


def test_surplus_edges_warn_with_their_count(caplog):
    with caplog.at_level(logging.WARNING, logger="plscope.sync.frames"):
        timing = frame_timing(_pulses(0.1 * np.arange(12)), 9, source="daq.csv")
    assert timing.n_frames == 9
    np.testing.assert_allclose(timing.time_s, 0.1 * np.arange(9))
    assert len(timing.warnings) == 1 and "3 surplus" in timing.warnings[0]
    assert "3 surplus" in caplog.text


def test_fewer_edges_than_frames_raise():
    with pytest.raises(SyncError, match="daq.csv: 8 TTL edges for 10 frames"):
        frame_timing(_pulses(0.1 * np.arange(8)), 10, source="daq.csv")


def test_dropped_frame_raises_naming_frame_and_interval():
    starts = np.delete(0.1 * np.arange(30), 17)  # edge of frame 17 missing
    with pytest.raises(SyncError, match=r"0\.2 s .*between frames 16 and 17.*dropped frame"):
        frame_timing(_pulses(starts), 25)


def test_gap_after_the_last_frame_is_not_an_error():
    starts = np.delete(0.1 * np.arange(30), 27)
    assert frame_timing(_pulses(starts), 20).n_frames == 20


def test_spurious_edge_raises():
    starts = np.sort(np.append(0.1 * np.arange(20), 0.53))
    with pytest.raises(SyncError, match="spurious"):
        frame_timing(_pulses(starts), 20)


def test_single_frame():
    timing = frame_timing(_pulses([0.5]), 1)
    assert timing.time_s.tolist() == [0.5]
    assert np.isnan(timing.frame_interval_s)
    assert timing.mid_time_s[0] == pytest.approx(0.51)


def test_line_toggling_every_sample_keeps_its_single_sample_pulses():
    t = np.arange(2000) / 2000.0
    x = (np.arange(2000) % 2).astype(float)  # 0, 1, 0, 1 ... (a clock sampled at 2x)
    pulses = ttl_pulses(t, x)
    assert len(pulses) == 1000
    np.testing.assert_allclose(np.diff(pulses["start_s"]), 0.001)


def test_quantization_noise_on_a_flat_input_is_flat():
    rng = np.random.default_rng(7)
    t = np.arange(5000) / FS_HZ
    lsb = 20.0 / 2**16  # one count of a +-10 V 16-bit DAQ
    with pytest.raises(SyncError, match="flat"):
        ttl_pulses(t, lsb * rng.integers(0, 2, t.size))
