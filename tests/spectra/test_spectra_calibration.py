"""Lamp calibration: peaks, line identification, dispersion polynomial, the calibrate command."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from plscope.errors import PlscopeError, RunFolderError
from plscope.pipeline.spectra import calibrate_command
from plscope.sim import NEON_LINES_NM, SpectralSimParams, lamp_spectrum
from plscope.spectra.calibration import (
    CalibrationError,
    calibrate,
    find_lamp_peaks,
    fit_dispersion,
    wavelength_at,
)

PARAMS = SpectralSimParams()  # cubic dispersion 485-585 nm over 512 px, Ne lines in view


def _lamp(params=PARAMS, seed=0):
    counts, info = lamp_spectrum(params, rng=np.random.default_rng(seed))
    return counts, info


def test_lamp_peaks_are_located_to_a_small_fraction_of_a_pixel():
    counts, info = _lamp(dataclasses.replace(PARAMS, noise=False))
    peaks = find_lamp_peaks(counts)
    truth = np.asarray(info["pixels"])
    isolated = np.array([np.sum(np.abs(truth - t) < 3.0) == 1 for t in truth])
    n_checked = 0
    for p, sat in zip(peaks["pixel"], peaks["saturated"]):
        j = int(np.argmin(np.abs(truth - p)))
        if isolated[j]:  # (the 534.11/534.33 nm pair, 1 px apart, is one blended peak)
            assert abs(truth[j] - p) < (0.6 if sat else 0.01)  # flat tops: centre of the plateau
            n_checked += 1
    assert n_checked == isolated.sum() == len(truth) - 2
    assert peaks["saturated"].sum() == len(info["saturated_nm"]) == 1


def test_blind_calibration_with_the_lines_in_view_reproduces_the_dispersion():
    counts, info = _lamp()
    cal = calibrate(None, counts, info["lines_nm"])
    px = np.arange(PARAMS.n_pixels)
    err = cal.wavelength_nm(px) - wavelength_at(px, PARAMS.dispersion_nm)
    # 12 lines located to ~0.005 px (0.001 nm) determine a cubic to well under a hundredth of a nm
    assert np.sqrt(np.mean(err**2)) < 0.005
    assert cal.order == 3
    assert cal.rms_nm < 0.005
    lines = cal.lines.set_index("wavelength_nm")
    # the saturated line is identified but not used; the 534.11/534.33 nm pair (1 px apart) is a blend
    assert bool(lines.loc[540.0562, "saturated"]) and not bool(lines.loc[540.0562, "used"])
    assert bool(lines.loc[534.1094, "blended"]) and not bool(lines.loc[534.1094, "used"])
    assert not lines.loc[lines["used"], "saturated"].any()
    assert cal.n_lines >= 10


def test_guess_makes_a_long_line_list_usable():
    counts, _ = _lamp()
    every_line = [w for w, _ in NEON_LINES_NM]  # 34 lines, 470-600 nm
    with pytest.raises(CalibrationError, match="guess"):
        calibrate(None, counts, every_line + list(np.linspace(600, 900, 300)))
    # a straight-line guess through the ends is off by ~2.6 nm mid-detector (the curvature)
    guess = [485.0, (584.7 - 485.0) / 511]
    cal = calibrate(None, counts, every_line, guess=guess)
    px = np.arange(PARAMS.n_pixels)
    assert np.max(np.abs(cal.wavelength_nm(px) - wavelength_at(px, PARAMS.dispersion_nm))) < 0.01


def test_fit_dispersion_chooses_the_order_and_rejects_an_outlier():
    rng = np.random.default_rng(5)
    px = np.sort(rng.uniform(0, 1000, 15))
    quad = 400.0 + 0.1 * px - 2e-5 * px**2 + rng.normal(0, 0.003, px.size)
    coefs, used, order = fit_dispersion(px, quad)
    assert order == 2 and used.all()
    lin = 400.0 + 0.1 * px + rng.normal(0, 0.003, px.size)
    _, _, order = fit_dispersion(px, lin)
    assert order == 1
    bad = quad.copy()
    bad[7] += 0.2  # a misidentified line
    coefs, used, order = fit_dispersion(px, bad)
    assert order == 2
    assert used.tolist() == [i != 7 for i in range(px.size)]
    np.testing.assert_allclose(wavelength_at(px, coefs), 400.0 + 0.1 * px - 2e-5 * px**2, atol=0.01)


def test_no_peaks_is_a_calibration_error():
    flat = np.random.default_rng(0).normal(500.0, 5.0, 512)
    with pytest.raises(CalibrationError, match="peak"):
        calibrate(None, flat, [500.0, 520.0, 540.0])


def test_calibrate_command_writes_the_json(tmp_path):
    counts, info = _lamp()
    lamp = tmp_path / "lamp.txt"
    # a vendor-like export: header lines, ';' separators, decimal commas, pixel and counts among other columns
    rows = [f"{i};{485 + 0.2 * i:.2f}".replace(".", ",") + f";{int(c)},0000;0" for i, c in enumerate(counts)]
    lamp.write_text(
        "Date;2024-01-01\nintegration (ms);800\nPixel;Wavelength;Raw data #1;Dark;\n"
        + "\n".join(rows)
        + "\n",
        encoding="latin-1",
    )
    lines = tmp_path / "lines.csv"
    lines.write_text(
        "# Ne I\nwavelength_nm,rel_intensity\n" + "".join(f"{w},{i}\n" for w, i in NEON_LINES_NM),
        encoding="ascii",
    )
    out = tmp_path / "calib.json"
    record = calibrate_command(lamp, lines, out, guess=[485.0, 0.195])
    on_disk = json.loads(out.read_text())
    assert on_disk == record
    assert len(on_disk["dispersion_nm"]) == 4
    assert on_disk["rms_nm"] < 0.005
    assert on_disk["lamp_columns"] == ["Pixel", "Raw data #1"]
    used = [ln for ln in on_disk["lines"] if ln["used"]]
    assert all(abs(ln["residual_nm"]) < 0.02 for ln in used)
    assert any(ln["saturated"] and not ln["used"] for ln in on_disk["lines"])
    assert not list(tmp_path.glob(".*part*"))  # written atomically, nothing left behind


def test_calibrate_command_bad_input_names_the_file(tmp_path):
    lines = tmp_path / "lines.csv"
    lines.write_text("wavelength_nm\n500\n520\n540\n")
    with pytest.raises(RunFolderError, match="missing.txt"):
        calibrate_command(tmp_path / "missing.txt", lines, tmp_path / "c.json")
    flat = tmp_path / "flat.csv"
    flat.write_text("pixel,counts\n" + "".join(f"{i},{500 + (i % 3)}\n" for i in range(200)))
    with pytest.raises(RunFolderError, match="flat.csv") as exc:
        calibrate_command(flat, lines, tmp_path / "c.json")
    assert "calibration" in str(exc.value)
    with pytest.raises(PlscopeError, match="does not exist"):
        calibrate_command(flat, lines, tmp_path / "no" / "c.json")
    assert not (tmp_path / "c.json").exists()
