"""The spectral simulator: files, determinism, physics of the ground truth, parameter checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from plscope.io import load_experiment, read_daq
from plscope.sim import (
    SpectralSimError,
    SpectralSimParams,
    lamp_spectrum,
    pixel_of_wavelength,
    simulate_spectral_run,
    stripe_profile,
)
from plscope.sync import field_segments, ttl_pulses

#: a tiny run: one particle, 128 px (485-587 nm), one 130 kV/cm cycle, 40 frames.
#: Particles of 100 nm polarize with tau = L / (mu E) = 0.3 s (slow component 0.48 s) and recover
#: with 0.3 s, so 2.5 s into each 3 s ON or OFF half the state is within 0.3 % of settled.
TINY = SpectralSimParams(
    n_particles=1,
    n_rows=40,
    n_pixels=128,
    dispersion_nm=(485.0, 0.8, -1e-4),
    fields_kV_per_cm=(130.0,),
    cycles_per_level=1,
    period_s=6.0,
    lead_in_s=2.0,
    size_range_nm=(100.0, 100.0),
    tau_rec_s_per_um=3.0,
    se_at_130=(0.4, 0.4),
)


def test_run_folder_files_and_experiment(tmp_path):
    truth = simulate_spectral_run(tmp_path / "run", TINY, seed=1)
    run = tmp_path / "run"
    cfg = load_experiment(run)
    assert cfg.movie is None and cfg.spectra is not None
    assert cfg.spectra.lamp == "lamp.csv"
    assert list(cfg.spectra.lamp_lines_nm) == pytest.approx(truth["lamp"]["lines_nm"])
    import tifffile

    frames = tifffile.imread(run / "spectra.tif")
    assert frames.shape == (truth["n_frames"], 40, 128) == (40, 40, 128)
    assert frames.dtype == np.uint16
    daq = read_daq(run / "daq.csv")
    pulses = ttl_pulses(daq.time_s, daq.channel("camera_ttl"))
    assert len(pulses) == truth["n_frames"] + TINY.extra_ttl_pulses
    assert pulses["start_s"].iloc[0] == pytest.approx(truth["first_frame_time_s"], abs=1.5e-3)
    seg = field_segments(
        daq.time_s,
        daq.channel("fg_voltage"),
        amplifier_gain=TINY.amplifier_gain,
        electrode_gap_um=TINY.electrode_gap_um,
        min_duration_s=0.5,
    )
    assert len(seg) == 1 and seg["level_kV_per_cm"].iloc[0] == pytest.approx(130.0, rel=0.01)
    coef = simulate_spectral_run(
        tmp_path / "coef", dataclasses.replace(TINY, calibration="coefficients"), seed=1
    )
    cfg2 = load_experiment(tmp_path / "coef")
    assert cfg2.spectra.lamp is None and list(cfg2.spectra.dispersion_nm) == [485.0, 0.8, -1e-4]
    assert not (tmp_path / "coef" / "lamp.csv").exists()
    assert coef["frame_peak_nm"] == truth["frame_peak_nm"]


def test_same_seed_same_files(tmp_path):
    simulate_spectral_run(tmp_path / "a", TINY, seed=3)
    simulate_spectral_run(tmp_path / "b", TINY, seed=3)
    simulate_spectral_run(tmp_path / "c", TINY, seed=4)
    for name in ("spectra.tif", "lamp.csv", "daq.csv", "ground_truth.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "spectra.tif").read_bytes() != (tmp_path / "c" / "spectra.tif").read_bytes()


def test_shift_and_quenching_follow_the_field(tmp_path):
    truth = simulate_spectral_run(tmp_path, dataclasses.replace(TINY, drift=False, bleaching=False), seed=2)
    p = truth["particles"][0]
    shift = np.asarray(truth["frame_shift_nm"][0])
    t = truth["first_frame_time_s"] + np.arange(truth["n_frames"]) * truth["frame_interval_s"]
    on0, on1 = truth["switch_times_s"][0]
    settled_on = (t > on0 + 2.5) & (t + truth["exposure_s"] < on1)
    before = t + truth["exposure_s"] < on0
    late_off = t > on1 + 2.5
    # polarized: shift = slope * E; before the field and recovered: none
    assert shift[settled_on] == pytest.approx(p["shift_slope_nm_per_kV_per_cm"] * 130.0, rel=3e-3)
    assert np.all(shift[before] == 0)
    assert np.all(np.abs(shift[late_off]) < 3e-3 * abs(p["shift_slope_nm_per_kV_per_cm"] * 130.0))
    peak = np.asarray(truth["frame_peak_nm"][0])
    assert peak[before] == pytest.approx(p["peak_nm"])
    # quenching: stripe light ON / OFF = 1 - SE(130) = 0.6
    import tifffile

    frames = tifffile.imread(tmp_path / "spectra.tif").astype(float)
    row = int(round(p["row"]))
    light = frames[:, row - 3 : row + 4, :].sum(axis=(1, 2)) - frames[:, :4, :].mean(axis=1).sum(axis=1) * 7
    ratio = light[settled_on].mean() / light[before | late_off].mean()
    assert ratio == pytest.approx(1 - p["se_at_130"], abs=0.03)


def test_lamp_and_model_pieces():
    counts, info = lamp_spectrum(SpectralSimParams(), rng=None)
    px = np.asarray(info["pixels"])
    back = np.polynomial.polynomial.polyval(px, SpectralSimParams().dispersion_nm)
    np.testing.assert_allclose(back, info["lines_nm"], atol=1e-9)
    assert info["saturated_nm"] == [540.0562]
    assert counts.max() == 65535
    np.testing.assert_allclose(
        pixel_of_wavelength(back, SpectralSimParams().dispersion_nm, n_pixels=512), px, atol=1e-9
    )
    prof = stripe_profile(40, 17.3, 1.2)
    assert prof.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.sum(prof * np.arange(40)) == pytest.approx(17.3, abs=1e-6)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"n_particles": 0}, "n_particles"),
        ({"dispersion_nm": (600.0, -0.2)}, "increase"),
        ({"fields_kV_per_cm": (-50.0,)}, "fields_kV_per_cm"),
        ({"n_particles": 5}, "n_rows"),
        ({"dispersion_nm": (800.0, 0.01)}, "lamp lines"),
        ({"calibration": "vendor"}, "calibration"),
        ({"noise": "yes"}, "noise"),
    ],
)
def test_bad_parameters(changes, match):
    with pytest.raises(SpectralSimError, match=match):
        dataclasses.replace(SpectralSimParams(), **changes)


def test_bad_seed(tmp_path):
    with pytest.raises(SpectralSimError, match="seed"):
        simulate_spectral_run(tmp_path, TINY, seed=-1)
