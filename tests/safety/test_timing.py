"""Timing you can trust: TTL polarity and DAQ-log gaps (issue 13).

The simulator's DAQ log (an independent record of when the camera exposed:
active-high TTL, exposure 0.15 s every 0.2 s) is inverted or cut, and the
frame times must come out as from the intact log.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from plscope.errors import SyncError
from plscope.sync import bridge_daq_gaps, detect_ttl_polarity, frame_timing, ttl_pulses

from .helpers import run_cli


def _daq(run):
    df = pd.read_csv(run / "daq.csv")
    return df, df["time_s"].to_numpy(float), df["camera_ttl"].to_numpy(float)


def _n_frames(run) -> int:
    import tifffile

    with tifffile.TiffFile(run / "movie.tif") as tif:
        return len(tif.pages)


def test_inverted_ttl_is_detected_from_the_idle_level_and_gives_the_true_exposure(tiny_src, tiny_params):
    _, t, ttl = _daq(tiny_src)
    inverted = ttl.max() + ttl.min() - ttl
    assert detect_ttl_polarity(t, ttl).polarity == "high"
    pol = detect_ttl_polarity(t, inverted)
    assert (pol.polarity, pol.how) == ("low", "idle level")
    ref = ttl_pulses(t, ttl)
    got = ttl_pulses(t, inverted, polarity=pol.polarity)
    dt = float(np.median(np.diff(t)))
    np.testing.assert_allclose(got["start_s"], ref["start_s"], atol=dt)
    width = float(np.nanmedian(got["end_s"] - got["start_s"]))
    assert width == pytest.approx(tiny_params.exposure_s, abs=dt)  # 0.15 s, not the 0.05 s gap


def test_ttl_polarity_key_overrides_detection(tiny_src):
    _, t, ttl = _daq(tiny_src)
    assert detect_ttl_polarity(t, ttl, declared="low").how == "declared"
    with pytest.raises(SyncError, match="ttl_polarity must be one of auto, high, low"):
        detect_ttl_polarity(t, ttl, declared="inverted")


def test_ttl_polarity_ambiguous_duty_without_idle_stretch_is_a_clear_error():
    t = np.arange(0, 20, 1e-3)
    square = ((t % 0.2) < 0.1).astype(float) * 5  # 50 % duty, pulsing from the first to the last sample
    with pytest.raises(SyncError, match='cannot tell the TTL polarity.*set ttl_polarity = "high"'):
        detect_ttl_polarity(t, square)


def test_ttl_polarity_from_the_duty_alone_is_flagged_unreliable():
    t = np.arange(0, 20, 1e-3)
    low_duty = ((t % 0.2) < 0.05).astype(float) * 5  # high 25 %: taken for an inverted line, but flagged
    pol = detect_ttl_polarity(t, low_duty)
    assert (pol.polarity, pol.how, pol.reliable) == ("low", "exposure duty", False)
    assert pol.high_duty == pytest.approx(0.25, abs=0.01)


def _cut(df: pd.DataFrame, t0: float, t1: float) -> pd.DataFrame:
    return df[(df["time_s"] < t0) | (df["time_s"] >= t1)].reset_index(drop=True)


def test_daq_gap_is_told_apart_from_dropped_frames(tiny_src, tiny_params):
    df, t, ttl = _daq(tiny_src)
    n = _n_frames(tiny_src)
    ref = frame_timing(ttl_pulses(t, ttl), n, on_dropped="map")
    cut = _cut(df, 20.03, 22.11)  # 2.08 s of the log missing: ~10 exposures not recorded
    tc = cut["time_s"].to_numpy(float)
    pulses, notes = bridge_daq_gaps(ttl_pulses(tc, cut["camera_ttl"].to_numpy(float)), tc)
    assert len(notes) == 1 and "missing samples, not dropped frames" in notes[0]
    got = frame_timing(pulses, n, on_dropped="error")  # no frame is taken for dropped
    assert got.n_dropped == 0
    interval = 1.0 / tiny_params.frame_rate_hz
    np.testing.assert_allclose(got.time_s, ref.time_s, atol=0.02 * interval)


def test_daq_gap_that_is_not_a_whole_number_of_frames_is_a_clear_error():
    t = np.arange(0, 10, 1e-3)
    ttl = ((t % 0.2) < 0.15).astype(float) * 5
    keep = (t < 4.0) | (t >= 5.0)
    t2, ttl2 = t[keep], ttl[keep]
    ttl2[t2 >= 5.0] = ((t2[t2 >= 5.0] - 0.1) % 0.2 < 0.15) * 5.0  # the camera restarted half a frame late
    with pytest.raises(SyncError, match="not a whole number; frame times cannot be recovered"):
        bridge_daq_gaps(ttl_pulses(t2, ttl2), t2, source="daq.csv")


# --------------------------------------------------------------------------
# end to end: plscope run on the inverted and on the cut log
# --------------------------------------------------------------------------


def _summary(out):
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def reference_summary(tiny_output):
    return _summary(tiny_output)


@pytest.mark.slow
def test_run_with_inverted_ttl_reports_polarity_and_gives_the_same_mobility(
    tiny_src, tiny_params, reference_summary, tmp_path, capsys
):
    run = tmp_path / "run"
    shutil.copytree(tiny_src, run)
    df = pd.read_csv(run / "daq.csv")
    df["camera_ttl"] = df["camera_ttl"].max() + df["camera_ttl"].min() - df["camera_ttl"]
    df.to_csv(run / "daq.csv", index=False, float_format="%.6g")
    assert run_cli(["-q", "run", run, "--out", tmp_path / "out", "--no-progress"], capsys)[0] == 0
    s = _summary(tmp_path / "out")
    assert (s["ttl_polarity"], s["ttl_polarity_source"]) == ("low", "idle level")
    assert any("inverted TTL" in w for w in s["warnings"])
    assert s["exposure_s"] == pytest.approx(tiny_params.exposure_s, rel=0.02)
    mu, mu_ref = s["ion_mobility_cm2_per_Vs"], reference_summary["ion_mobility_cm2_per_Vs"]
    assert abs(mu - mu_ref) < 0.5 * reference_summary["ion_mobility_std_cm2_per_Vs"]


@pytest.mark.slow
def test_run_with_a_gap_in_the_daq_log_does_not_remap_frames(tiny_src, reference_summary, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_src, run)
    df = pd.read_csv(run / "daq.csv")
    _cut(df, 20.03, 22.11).to_csv(run / "daq.csv", index=False, float_format="%.6g")
    assert run_cli(["-q", "run", run, "--out", tmp_path / "out", "--no-progress"], capsys)[0] == 0
    s = _summary(tmp_path / "out")
    assert s["n_dropped_frames"] == 0
    assert any("not dropped frames" in w for w in s["warnings"])
    mu, mu_ref = s["ion_mobility_cm2_per_Vs"], reference_summary["ion_mobility_cm2_per_Vs"]
    assert abs(mu - mu_ref) < 2 * reference_summary["ion_mobility_std_cm2_per_Vs"]
