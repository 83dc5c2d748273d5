"""Dropped frames: detected, refused by default, or mapped to the right pulses.

Ground truth: a camera exposing at slots ``0..n-1`` of a fixed frame
interval; the TTL is its exposure output (one pulse per exposure), sampled
by a DAQ at 10 kHz with noise; frames are then removed in the two ways a
camera run loses them (exposure skipped -> no pulse; exposed frame lost by
the acquisition -> pulse present).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from plscope.errors import SyncError
from plscope.sync import frame_timing, ttl_pulses

FS_HZ = 10_000.0
INTERVAL_S = 0.1
EXPOSURE_S = 0.03


def ttl_signal(
    slots: np.ndarray, *, lead_s: float = 0.5, seed: int = 0, tail_s: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampled exposure TTL with a pulse at each slot; returns t, signal, true rising edges."""
    rng = np.random.default_rng(seed)
    rise = lead_s + INTERVAL_S * np.asarray(slots, float) + rng.uniform(0, 1 / FS_HZ, len(slots))
    t = np.arange(int((rise[-1] + tail_s) * FS_HZ)) / FS_HZ
    x = np.zeros_like(t)
    for r in rise:
        x[(t >= r) & (t < r + EXPOSURE_S)] = 5.0
    return t, x + rng.normal(0, 0.05, t.size), rise


def _pulses(starts, width=EXPOSURE_S):
    starts = np.asarray(starts, float)
    return pd.DataFrame({"start_s": starts, "end_s": starts + width})


def test_skipped_exposure_is_refused_by_default_naming_the_frames():
    slots = np.delete(np.arange(40), [17, 30])  # the camera skipped two exposures
    t, x, _ = ttl_signal(slots)
    pulses = ttl_pulses(t, x, source="daq.csv channel 'camera_ttl'")
    with pytest.raises(
        SyncError,
        match=r"daq\.csv channel 'camera_ttl': frame interval jumps to "
        r"0\.2\d* s \(2x the median 0\.1\d* s\) between frames 16 "
        r"and 17 .*2 dropped frame\(s\) \(frames followed by a "
        r"gap: 16, 28\).*on_dropped='map'",
    ):
        frame_timing(pulses, slots.size, source="daq.csv channel 'camera_ttl'")


def test_skipped_exposure_mapped_keeps_every_frame_on_its_own_pulse(caplog):
    slots = np.delete(np.arange(40), [17, 30, 31])
    t, x, rise = ttl_signal(slots)
    pulses = ttl_pulses(t, x)
    with caplog.at_level(logging.WARNING, logger="plscope.sync.frames"):
        timing = frame_timing(pulses, slots.size, on_dropped="map")
    np.testing.assert_allclose(timing.time_s, rise, atol=1 / FS_HZ, rtol=0)  # edges sampled at 10 kHz
    np.testing.assert_array_equal(timing.slot, slots)
    np.testing.assert_array_equal(timing.pulse_index, np.arange(slots.size))
    assert timing.dropped_after == (16, 28) and timing.n_dropped == 3
    assert timing.frame_interval_s == pytest.approx(INTERVAL_S, abs=1 / FS_HZ)
    assert timing.exposure_s == pytest.approx(EXPOSURE_S, abs=2 / FS_HZ)
    assert "3 dropped frame(s)" in timing.warnings[0] and "own slot" in timing.warnings[0]
    assert "3 dropped frame(s)" in caplog.text


def test_frames_lost_by_the_acquisition_are_mapped_by_their_frame_numbers():
    t, x, rise = ttl_signal(np.arange(50))  # the camera exposed 50 frames
    lost = [12, 13, 33]
    numbers = np.delete(np.arange(50), lost) + 1  # the movie holds 47, numbered from 1
    pulses = ttl_pulses(t, x)
    with pytest.raises(SyncError, match="3 dropped frame"):
        frame_timing(pulses, numbers.size, frame_numbers=numbers)
    timing = frame_timing(pulses, numbers.size, frame_numbers=numbers, on_dropped="map")
    np.testing.assert_allclose(timing.time_s, rise[numbers - 1], atol=1 / FS_HZ, rtol=0)
    np.testing.assert_array_equal(timing.pulse_index, numbers - 1)
    assert timing.dropped_after == (11, 30) and timing.n_dropped == 3
    assert any("3 TTL pulse(s) within the movie belong to frames missing" in w for w in timing.warnings)
    # without the frame numbers the loss cannot be seen: frames would take the first pulses
    blind = frame_timing(pulses, numbers.size)
    assert np.abs(blind.time_s - timing.time_s).max() == pytest.approx(3 * INTERVAL_S, abs=1e-3)


def test_frames_lost_by_the_acquisition_are_mapped_by_jittery_time_stamps():
    t, x, rise = ttl_signal(np.arange(30), seed=2)
    keep = np.delete(np.arange(30), [5, 6])
    rng = np.random.default_rng(9)
    stamps = 1234.5 + INTERVAL_S * 1.0003 * keep + rng.normal(0, 0.005, keep.size)  # other clock
    timing = frame_timing(ttl_pulses(t, x), keep.size, frame_time_s=stamps, on_dropped="map")
    np.testing.assert_allclose(timing.time_s, rise[keep], atol=1 / FS_HZ, rtol=0)  # edges sampled at 10 kHz
    assert timing.dropped_after == (4,) and timing.n_dropped == 2


def test_both_kinds_of_loss_together():
    exposed = np.delete(np.arange(40), [8])  # camera skipped slot 8 (no pulse)
    t, x, rise = ttl_signal(exposed, seed=3)
    in_movie = np.delete(np.arange(40), [8, 20])  # and the acquisition lost slot 20
    timing = frame_timing(ttl_pulses(t, x), in_movie.size, frame_numbers=in_movie, on_dropped="map")
    np.testing.assert_allclose(
        timing.time_s, rise[np.searchsorted(exposed, in_movie)], atol=1 / FS_HZ, rtol=0
    )  # edges sampled at 10 kHz
    assert timing.n_dropped == 2


def test_surplus_edges_with_a_mapped_gap():
    slots = np.delete(np.arange(35), [10])
    timing = frame_timing(_pulses(INTERVAL_S * slots), 30, on_dropped="map")
    assert timing.n_dropped == 1
    assert any("4 surplus TTL edge(s)" in w for w in timing.warnings)


def test_frame_numbers_that_contradict_the_ttl_are_refused():
    slots = np.delete(np.arange(20), [7])  # the TTL lacks slot 7 ...
    numbers = np.arange(19)  # ... but the movie says no frame is missing
    with pytest.raises(SyncError, match=r"frame 7 \(slot 7 .*\) has no TTL pulse"):
        frame_timing(_pulses(INTERVAL_S * slots), 19, frame_numbers=numbers, on_dropped="map")


def test_irregular_interval_is_refused_even_when_mapping():
    starts = INTERVAL_S * np.arange(20.0)
    starts[12:] += 0.07  # a 1.7x interval: not a whole frame
    with pytest.raises(
        SyncError,
        match=r"1\.70x the median .*not a whole number of frame "
        r"intervals",
    ):
        frame_timing(_pulses(starts), 20, on_dropped="map")


def test_spurious_edge_is_refused_even_when_mapping():
    starts = np.sort(np.append(INTERVAL_S * np.arange(20), 0.53))
    with pytest.raises(SyncError, match="spurious"):
        frame_timing(_pulses(starts), 20, on_dropped="map")


def test_camera_clock_that_disagrees_with_the_ttl_is_refused():
    with pytest.raises(SyncError, match="time stamps give a frame interval of 0.2 s"):
        frame_timing(
            _pulses(INTERVAL_S * np.arange(10)), 10, frame_time_s=0.2 * np.arange(10), on_dropped="map"
        )


def test_irregular_timing_after_the_movie_does_not_matter():
    starts = np.concatenate((INTERVAL_S * np.arange(20), [2.537, 2.61, 3.3]))  # live view later
    numbers = np.arange(20)
    assert frame_timing(_pulses(starts), 20).n_frames == 20
    assert frame_timing(_pulses(starts), 20, frame_numbers=numbers).n_dropped == 0


def test_bad_options():
    with pytest.raises(ValueError, match="on_dropped"):
        frame_timing(_pulses([0.0, 0.1]), 2, on_dropped="guess")
    with pytest.raises(ValueError, match="frame_numbers"):
        frame_timing(_pulses([0.0, 0.1]), 2, frame_numbers=np.array([0.0, 1.0]))


def test_a_faster_live_view_after_the_movie_does_not_set_the_interval():
    movie = INTERVAL_S * np.delete(np.arange(30), [12])  # one skipped exposure
    live = movie[-1] + 1.0 + 0.05 * np.arange(200)  # then live view at 2x the rate
    timing = frame_timing(_pulses(np.concatenate((movie, live)), width=0.01), 29, on_dropped="map")
    assert timing.frame_interval_s == pytest.approx(INTERVAL_S)
    assert timing.dropped_after == (11,) and timing.n_dropped == 1
    assert any("200 surplus TTL edge(s)" in w for w in timing.warnings)
