"""The spectral analysis of a simulated run against its ground truth (the issue's "Must show").

Simulated run (``conftest.spectral_run``): cubic dispersion 485-585 nm over
512 px, a neon lamp with a saturated line and a blend, two particles along
the slit with Lorentzian peaks (FWHM 18-24 nm) that blue-shift by
``slope * E`` (slope -0.86 nm / 130 kV/cm +- 10 % per particle) with the
biexponential polarization kinetics, PL quenching, bleaching, a 0.3 nm
drift, shot and read noise, 3 field levels x 2 cycles, 950 frames.
"""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pandas as pd
import pytest

from plscope.pipeline.spectra import SPECTRA_COLUMNS, analyze_spectra

pytestmark = pytest.mark.slow

SPEC_SUMMARY_KEYS = (
    "n_particles",
    "n_frames",
    "fields_kV_per_cm",
    "temperature_K",
    "ion_mobility_cm2_per_Vs",
    "ion_mobility_std_cm2_per_Vs",
    "ion_mobility_fit_cm2_per_Vs",
    "diffusion_coefficient_cm2_per_s",
    "tau_size_slope_s_per_nm",
    "spectral_shift_nm",
    "spectral_shift_slope_nm_per_kV_per_cm",
    "warnings",
    "provenance",
)


def test_peak_positions_match_the_truth(spectral_output):
    _, result, truth = spectral_output
    tab = result.table
    assert result.summary["spectral_fit_ok_fraction"] > 0.99
    for p in truth["particles"]:
        got = tab[tab["particle_id"] == p["particle_id"]].sort_values("frame")["peak_nm"].to_numpy()
        want = np.asarray(truth["frame_peak_nm"][p["particle_id"]])
        d = got - want
        # per-frame precision ~0.06-0.1 nm (shot noise on a 20 nm wide peak): the median frame is well
        # within 0.1 nm, and there is no bias beyond a few hundredths of a nm
        assert np.nanmedian(np.abs(d)) < 0.1
        assert abs(np.nanmedian(d)) < 0.03
        fwhm = tab.loc[tab["particle_id"] == p["particle_id"], "fwhm_nm"].median()
        assert fwhm == pytest.approx(p["fwhm_nm"], rel=0.02)


def test_shift_per_field_and_slope_match_the_truth(spectral_output):
    _, result, truth = spectral_output
    s = result.summary
    got = {round(e["field_kV_per_cm"]): e["shift_nm"] for e in s["spectral_shift_nm"]}
    want = {round(e["field_kV_per_cm"]): e["shift_nm"] for e in truth["spectral_shift_nm"]}
    assert sorted(got) == sorted(want) == [70, 100, 130]
    for e in want:
        assert got[e] == pytest.approx(want[e], abs=0.1)
    slope = s["spectral_shift_slope_nm_per_kV_per_cm"]
    assert slope == pytest.approx(truth["spectral_shift_slope_nm_per_kV_per_cm"], rel=0.10)
    assert 0 < s["spectral_shift_slope_err_nm_per_kV_per_cm"] < 0.05 * abs(slope)
    detail = {round(d["field_kV_per_cm"]): d for d in s["spectral_shift_detail"]}
    # field-off frames against their own cycle's baseline (drift removed): no shift
    assert abs(detail[0]["shift_nm"]) < 0.02
    assert abs(s["spectral_shift_intercept_nm"]) < 0.03


def test_frames_are_labelled_from_the_daq(spectral_output):
    _, result, truth = spectral_output
    tab = result.table
    assert list(tab.columns[:5]) == SPECTRA_COLUMNS
    assert len(tab) == truth["n_frames"] * truth["n_particles"]
    on = tab[tab["state"] == "on"]
    assert sorted(np.round(on["field_kV_per_cm"].unique(), 1)) == [70.0, 100.0, 130.0]
    # frame times: mid-exposure on the DAQ clock
    t0 = truth["first_frame_time_s"] + truth["exposure_s"] / 2
    first = tab[tab["frame"] == 0]["time_s"].iloc[0]
    assert first == pytest.approx(t0, abs=2e-3)
    switch = np.asarray(truth["switch_times_s"])
    mid = tab["time_s"].to_numpy()
    inside = np.any(
        (mid[:, None] > switch[None, :, 0] + 0.2) & (mid[:, None] < switch[None, :, 1] - 0.2), axis=1
    )
    assert (tab.loc[inside, "state"] == "on").all()


def test_calibration_from_the_lamp(spectral_output):
    _, result, truth = spectral_output
    cal = result.calibration
    px = np.arange(truth["n_pixels"])
    true_wl = np.polynomial.polynomial.polyval(px, truth["dispersion_nm"])
    assert np.max(np.abs(cal.wavelength_nm(px) - true_wl)) < 0.01
    assert cal.lines.loc[cal.lines["saturated"], "wavelength_nm"].tolist() == truth["lamp"]["saturated_nm"]


def test_output_folder(spectral_output):
    out, result, truth = spectral_output
    summary = json.loads((out / "summary.json").read_text())
    for key in SPEC_SUMMARY_KEYS:
        assert key in summary
    assert summary["n_frames"] == truth["n_frames"]
    assert summary["n_particles"] == truth["n_particles"]
    assert summary["ion_mobility_cm2_per_Vs"] is None
    assert any("no [movie]" in w for w in summary["warnings"])
    assert [round(e) for e in summary["fields_kV_per_cm"]] == [70, 100, 130]
    assert summary["spectral_shift_nm"] == result.summary["spectral_shift_nm"]
    csv = pd.read_csv(out / "spectra.csv")
    assert list(csv.columns[:5]) == SPECTRA_COLUMNS
    assert len(csv) == len(result.table)
    assert list(pd.read_csv(out / "kinetics.csv").columns[:2]) == ["particle_id", "field_kV_per_cm"]
    parts = pd.read_csv(out / "particles.csv")
    np.testing.assert_allclose(parts["y_px"], [p["row"] for p in truth["particles"]], atol=0.3)
    cal = json.loads((out / "calibration.json").read_text())
    assert cal["rms_nm"] < 0.01 and len(cal["dispersion_nm"]) == 4
    html = (out / "report.html").read_text()
    for fig in ("fig-4a", "fig-4b", "fig-4c", "fig-4d"):
        assert f'<figure id="{fig}"><img' in html
        # every figure also as files: the PNG is the one embedded, SVG and PDF beside it
        png = (out / "figures" / f"{fig}.png").read_bytes()
        assert base64.b64encode(png).decode("ascii") in html
        assert (out / "figures" / f"{fig}.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
        assert (out / "figures" / f"{fig}.pdf").read_bytes()[:5] == b"%PDF-"
    assert "spectra.tif" in json.dumps(summary["provenance"])


def test_coefficients_without_daq(spectral_run, tmp_path):
    """Given dispersion, no [daq]/[field]: peaks still right, shifts null with a reason."""
    run, truth = spectral_run
    (tmp_path / "experiment.toml").write_text(
        "schema = 1\n[inputs]\nallow_outside_run_folder = true\n[spectra]\n"  # spectra.tif is elsewhere
        f'path = "{(run / "spectra.tif").as_posix()}"\n'
        "dispersion_nm = [" + ", ".join(repr(c) for c in truth["dispersion_nm"]) + "]\n"
    )
    result = analyze_spectra(tmp_path)
    s = result.summary
    assert result.calibration.source == "coefficients"
    assert s["spectral_shift_nm"] is None and s["spectral_shift_slope_nm_per_kV_per_cm"] is None
    assert any("no [daq]" in w for w in result.warnings)
    assert any("null" in w for w in result.warnings)
    tab = result.table[result.table["particle_id"] == 0].sort_values("frame")
    assert tab["time_s"].tolist()[:3] == [0.0, 1.0, 2.0]  # timed by frame index
    d = tab["peak_nm"].to_numpy() - np.asarray(truth["frame_peak_nm"][0])
    assert np.nanmedian(np.abs(d)) < 0.1
    assert math.isnan(tab["shift_nm"].iloc[0])
