"""Real spectra (ramanchada2 test data, MIT; see shared/data/real/SOURCES.md).

- A B&W Tek neon lamp spectrum (532 nm system, 2048 px) calibrated against
  the NIST Ne lines must reproduce the vendor's cubic from the file header
  to <= 0.05 nm rms over the detector, without the saturated lines.
- The silicon phonon line is at 520.5 cm^-1 (520.7 at room temperature in
  the literature); a Lorentzian fit of the two silicon spectra must find it
  within +-1.5 cm^-1, the spread of spectrometer calibrations.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from plscope.spectra import (
    calibrate,
    fit_lorentzian,
    read_lamp,
    read_lines,
    read_spectrum_table,
    wavelength_at,
)

REAL_SPECTRA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "spectra"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not REAL_SPECTRA.is_dir(), reason="shared/data/real/spectra not available"),
]

NEON = REAL_SPECTRA / "Ne_532nm_x50_800ms.txt"
NIST = REAL_SPECTRA / "neon_nist_wl_nm.csv"
#: a user's rough knowledge of the spectrometer: about 530 nm at pixel 0 and 0.078 nm per pixel
#: (a straight line through the ends of the range; 5 nm off mid-detector because of the curvature)
GUESS = (530.0, 0.078)


def _vendor_cubic(lamp) -> list[float]:
    return [float(lamp.metadata[f"coefs_a{i}"]) for i in range(4)]


def test_neon_lamp_reproduces_the_vendor_cubic():
    lamp = read_lamp(NEON)
    assert lamp.x_name == "Pixel" and lamp.y_name == "Raw data #1" and lamp.n == 2048
    lines = read_lines(NIST)
    cal = calibrate(lamp.x, lamp.y, lines.wavelength_nm, guess=GUESS)
    px = np.arange(2048)
    diff = cal.wavelength_nm(px) - wavelength_at(px, _vendor_cubic(lamp))
    rms = float(np.sqrt(np.mean(diff**2)))
    assert rms <= 0.05, f"rms {rms:.4f} nm from the vendor's cubic"
    assert cal.order == 3
    # the lines themselves sit on the polynomial to a few pm (sub-pixel centres, 0.086 nm/px)
    assert cal.rms_nm < 0.01
    used, sat = cal.lines["used"], cal.lines["saturated"]
    assert sat.sum() >= 15  # the file's many lines at 65535
    assert not (used & sat).any()
    assert used.sum() >= 12


def test_calibrate_command_on_the_real_lamp(tmp_path):
    from plscope.pipeline.spectra import calibrate_command

    out = tmp_path / "neon.json"
    rec = calibrate_command(NEON, NIST, out, guess=GUESS)
    on_disk = json.loads(out.read_text())
    assert on_disk["dispersion_nm"] == rec["dispersion_nm"]
    px = np.arange(2048)
    lamp = read_lamp(NEON)
    diff = wavelength_at(px, on_disk["dispersion_nm"]) - wavelength_at(px, _vendor_cubic(lamp))
    assert np.sqrt(np.mean(diff**2)) <= 0.05


@pytest.mark.parametrize(
    "name, columns",
    [
        ("S0N_HLR633_Z010_100_15sx5.txt", {}),
        ("S0N02_iRPlus532_Z100_100_28000ms.txt", {"x_column": "Raman Shift", "y_column": "Raw data #1"}),
    ],
)
def test_silicon_line_from_a_lorentzian_fit(name, columns):
    spec = read_spectrum_table(REAL_SPECTRA / name, **columns)
    window = (spec.x > 470) & (spec.x < 570)
    fit = fit_lorentzian(spec.x[window], spec.y[window])
    assert fit.ok
    assert fit.center == pytest.approx(520.5, abs=1.5)
    assert fit.center_err < 0.5
    assert 2.0 < fit.fwhm < 15.0  # Si: ~3-4 cm^-1 intrinsic, broadened by the spectrometer
