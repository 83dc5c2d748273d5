"""Wavelength axes from the files themselves, calibration.json, Andor's 1-based
coefficients, and lamp calibrations that extrapolate.

Real files (``../shared/data/real/``): the spectra-only run folders whose
``[spectra] path`` is a SIF series or an SPE file (no lamp, no DAQ) run end to
end through ``plscope run``; the wavelength axis they use equals the vendor's
export to 1e-4 nm.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from plscope.cli import main
from plscope.spectra.calibration import Calibration, shift_pixel_origin, wavelength_at

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"
VENDOR = REAL / "vendor_formats"


def _real(path: Path) -> Path:
    if not path.is_file():
        pytest.skip("real data not available")
    return path


def _solis_export(path: Path) -> np.ndarray:
    rows = []
    for line in path.read_text(encoding="latin-1").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                rows.append((float(parts[0]), float(parts[1])))
            except ValueError:
                continue
    return np.array(rows)


# --------------------------------------------------------------------------
# pure: coefficients and axes
# --------------------------------------------------------------------------


def test_one_based_coefficients_give_the_same_wavelengths_at_0_based_columns():
    andor = [405.184510498139, 0.0486615559015733, -3.17780657750795e-07, -1.1864020166803e-10]
    cal = Calibration.from_coefficients(andor, first_pixel=1)
    col = np.arange(1024)
    np.testing.assert_allclose(cal.wavelength_nm(col), wavelength_at(col + 1, andor), rtol=0, atol=1e-9)
    # pasted as if 0-based, the axis sits one pixel (0.049 nm) too low
    shift = wavelength_at(col + 1, andor) - Calibration.from_coefficients(andor).wavelength_nm(col)
    assert shift.min() > 0.04
    assert shift_pixel_origin([1.0, 2.0], 0) == (1.0, 2.0)


def test_axis_calibration_keeps_a_table_it_cannot_write_as_a_polynomial():
    px = np.arange(200)
    smooth = 500 + 0.2 * px - 1e-5 * px**2
    cal = Calibration.from_axis(smooth)
    assert cal.table_nm is None and cal.order == 2 and cal.source == "file"
    wiggly = smooth + 1e-3 * np.sin(px / 3.0)
    cal = Calibration.from_axis(wiggly)
    assert cal.table_nm is not None
    np.testing.assert_array_equal(cal.wavelength_nm(px), wiggly)
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_array_equal(back.wavelength_nm(px), wiggly)


# --------------------------------------------------------------------------
# real lamp: extrapolation beyond the outermost lines is warned about
# --------------------------------------------------------------------------


@pytest.mark.realdata
def test_785_nm_neon_lamp_warns_where_it_extrapolates_and_records_the_valid_range():
    from plscope.spectra import calibrate, read_lamp, read_lines

    lamp = read_lamp(_real(REAL / "spectra" / "Ne_785nm_x20_50ms.txt"))
    lines = read_lines(_real(REAL / "spectra" / "neon_nist_wl_nm.csv"))
    vendor = [float(lamp.metadata[f"coefs_a{i}"]) for i in range(4)]
    cal = calibrate(lamp.x, lamp.y, lines.wavelength_nm, guess=vendor[:2])
    lo, hi = cal.pixel_range
    used = cal.lines.loc[cal.lines["used"], "pixel"]
    assert (lo, hi) == (used.min(), used.max())
    assert hi < lamp.n - 1  # the last lines are well inside the detector
    assert any("extrapolated beyond the outermost lines" in w for w in cal.warnings)
    # beyond the lines, the fit departs from the vendor's cubic (0.2 nm at the last pixel) and the
    # recorded spread of neighbouring orders is at least that large
    px = np.arange(lamp.n)
    diff = np.abs(cal.wavelength_nm(px) - wavelength_at(px, vendor))
    inside = (px >= lo) & (px <= hi)
    assert diff[inside].max() < 0.05
    assert cal.extrapolation_nm is not None and cal.extrapolation_nm >= diff[~inside].max()


# --------------------------------------------------------------------------
# end to end: spectra-only run folders of vendor files
# --------------------------------------------------------------------------


def _run(run: Path, out: Path) -> dict:
    assert main(["-q", "run", str(run), "--out", str(out), "--no-progress"]) == 0
    return json.loads((out / "summary.json").read_text())


@pytest.mark.realdata
@pytest.mark.slow
def test_sif_series_spectra_only_run_uses_the_files_wavelength_axis(tmp_path):
    sif = _real(VENDOR / "andor_sif" / "raman1.sif")
    export = _solis_export(_real(VENDOR / "andor_sif" / "raman1_solis_export.asc"))
    run = tmp_path / "run"
    run.mkdir()
    for k in (1, 2, 3):
        shutil.copy(sif, run / f"raman_{k:03d}.sif")
    (run / "experiment.toml").write_text('schema = 1\n[spectra]\npath = "raman_*.sif"\n')
    summary = _run(run, tmp_path / "out")
    assert summary["n_frames"] == 3 and summary["n_particles"] == 1
    cal = json.loads((tmp_path / "out" / "calibration.json").read_text())
    assert cal["source"] == "file"
    wl = Calibration.from_dict(cal).wavelength_nm(np.arange(1024))
    np.testing.assert_allclose(wl, export[:, 0], rtol=0, atol=1e-4)
    table = np.genfromtxt(tmp_path / "out" / "spectra.csv", delimiter=",", names=True)
    assert np.all((table["peak_nm"] > export[0, 0]) & (table["peak_nm"] < export[-1, 0]))
    assert any("track read-outs" in w for w in summary["warnings"])
    assert any("frame index" in w for w in summary["warnings"])  # single-frame files: no interval


@pytest.mark.realdata
@pytest.mark.slow
def test_spe_spectra_only_run_finds_the_laser_line(tmp_path):
    spe = _real(VENDOR / "princeton_spe" / "Testfile_Single_SPE2.SPE")
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(spe, run / "spectra.spe")
    (run / "experiment.toml").write_text('schema = 1\n[spectra]\npath = "spectra.spe"\n')
    summary = _run(run, tmp_path / "out")
    assert summary["n_frames"] == 35
    # the export's header: "Laser Wavelength (nm): 636.3"; the strongest line of these spectra
    assert summary["spectral_peak_nm_median"] == pytest.approx(636.3, abs=0.2)


@pytest.mark.realdata
@pytest.mark.slow
def test_calibration_json_key_reads_what_plscope_calibrate_writes(tmp_path):
    """A lamp calibrated with ``plscope calibrate``, named by ``[spectra] calibration``."""
    neon = _real(REAL / "spectra" / "Ne_532nm_x50_800ms.txt")
    nist = _real(REAL / "spectra" / "neon_nist_wl_nm.csv")
    spe = _real(VENDOR / "princeton_spe" / "Testfile_Single_SPE2.SPE")
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(spe, run / "spectra.spe")
    assert (
        main(
            [
                "-q",
                "calibrate",
                str(neon),
                "--lines",
                str(nist),
                "--out",
                str(run / "cal.json"),
                "--guess",
                "530,0.078",
            ]
        )
        == 0
    )
    written = json.loads((run / "cal.json").read_text())
    (run / "experiment.toml").write_text(
        'schema = 1\n[spectra]\npath = "spectra.spe"\ncalibration = "cal.json"\n'
    )
    _run(run, tmp_path / "out")
    used = json.loads((tmp_path / "out" / "calibration.json").read_text())
    assert used["dispersion_nm"] == written["dispersion_nm"]
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert "cal.json" in json.dumps(prov)


def test_spectra_without_any_wavelength_axis_are_refused_in_one_line(tmp_path, capsys):
    import tifffile

    run = tmp_path / "run"
    run.mkdir()
    tifffile.imwrite(run / "spectra.tif", np.zeros((5, 20, 64), np.uint16))
    (run / "experiment.toml").write_text('schema = 1\n[spectra]\npath = "spectra.tif"\n')
    assert main(["run", str(run), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("plscope: error: ") and "no wavelength axis" in err[-1]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_lamp_given_as_a_camera_file_calibrates_like_its_table(spectral_run, tmp_path):
    """A lamp spectrum recorded with the camera (one-row frames) instead of a pixel,counts table."""
    import tifffile

    from plscope.io import load_experiment
    from plscope.pipeline.spectra import calibration_for
    from plscope.spectra import read_lamp

    run, _ = spectral_run
    table = read_lamp(run / "lamp.csv")
    assert np.array_equal(table.x, np.arange(table.n))
    frames = np.stack([table.y[None, :] / 2, table.y[None, :] / 2]).astype(np.float32)  # 2 frames, 1 row
    work = tmp_path / "run"
    shutil.copytree(run, work, ignore=shutil.ignore_patterns("ground_truth.json"))
    tifffile.imwrite(work / "lamp.tif", frames)
    cfg_csv = load_experiment(work)
    toml = (work / "experiment.toml").read_text().replace('lamp = "lamp.csv"', 'lamp = "lamp.tif"')
    (work / "experiment.toml").write_text(toml)
    cfg_tif = load_experiment(work)
    assert cfg_tif.spectra.lamp == "lamp.tif"
    a, b = calibration_for(cfg_csv), calibration_for(cfg_tif)
    px = np.arange(table.n)
    np.testing.assert_allclose(b.wavelength_nm(px), a.wavelength_nm(px), rtol=0, atol=1e-3)
