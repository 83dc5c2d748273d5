"""The spectral QC verdict: warns on what may make a spectral number wrong, never on notes."""

from __future__ import annotations

import json

import pytest

from plscope.pipeline.batch import summary_numbers
from plscope.spectra.qc import MIN_FIT_OK_FRACTION, spectra_qc, with_spectral_qc

CLEAN = {
    "spectral_fit_ok_fraction": 1.0,
    "spectral_shift_nm": [{"field_kV_per_cm": 100.0, "shift_nm": -0.7}],
    "spectral_shift_detail": [
        {"field_kV_per_cm": 0.0, "shift_nm": 0.0, "not_settled": False},
        {"field_kV_per_cm": 100.0, "shift_nm": -0.7, "not_settled": False},
    ],
    "spectral_peak_nm_median": 531.0,
    # lambda(px) = 485 + 0.2 px over lines at pixels 10..490: 487-583 nm
    "spectral_calibration": {"dispersion_nm": [485.0, 0.2], "pixel_range": [10.0, 490.0]},
}


def test_a_clean_run_is_ok():
    qc = spectra_qc(CLEAN, has_field=True)
    assert qc == {
        "status": "ok",
        "reasons": [],
        "checks": {
            "fits_ok": True,
            "shifts_available": True,
            "shifts_settled": True,
            "shifts_intensity_consistent": None,
            "peak_within_calibration": True,
        },
    }


@pytest.mark.parametrize(
    "change, check",
    [
        ({"spectral_fit_ok_fraction": MIN_FIT_OK_FRACTION - 0.01}, "fits_ok"),
        ({"spectral_shift_nm": None}, "shifts_available"),
        (
            {"spectral_shift_detail": [{"field_kV_per_cm": 100.0, "shift_nm": -0.7, "not_settled": True}]},
            "shifts_settled",
        ),
        ({"spectral_peak_nm_median": 600.0}, "peak_within_calibration"),
        (
            {
                "spectral_shift_detail": [
                    {"field_kV_per_cm": 100.0, "shift_nm": -0.7, "intensity_consistent": False}
                ]
            },
            "shifts_intensity_consistent",
        ),
    ],
)
def test_each_check_makes_the_run_warn_with_a_reason(change, check):
    qc = spectra_qc({**CLEAN, **change}, has_field=True)
    assert qc["status"] == "warn" and qc["checks"][check] is False
    assert len(qc["reasons"]) == 1 and qc["reasons"][0].startswith("spectra: ")


def test_without_a_field_missing_shifts_are_not_a_failure():
    qc = spectra_qc({**CLEAN, "spectral_shift_nm": None, "spectral_shift_detail": []}, has_field=False)
    assert qc["status"] == "ok" and qc["checks"]["shifts_available"] is None


def test_the_spectral_verdict_folds_into_the_run_verdict_once():
    run = {"status": "ok", "reasons": [], "checks": {"velocity_slope_positive": True}}
    bad = spectra_qc({**CLEAN, "spectral_peak_nm_median": 600.0}, has_field=True)
    merged = with_spectral_qc(with_spectral_qc(run, bad), bad)  # re-analysis merges again
    assert merged["status"] == "warn" and len(merged["reasons"]) == 1
    assert merged["checks"]["velocity_slope_positive"] is True
    assert with_spectral_qc(merged, spectra_qc(CLEAN, has_field=True))["status"] == "ok"


def test_a_clean_spectra_run_with_notes_is_ok_everywhere(spectral_output):
    """Notes (surplus TTL edges, no [movie]) stay warnings; the verdict is about the numbers.

    The shifts of this run are within the tests' tolerance of the truth
    (test_spectra_pipeline), so the verdict must not cry wolf.
    """
    out, _, _ = spectral_output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["warnings"]  # the notes are still there
    assert summary["qc"]["status"] == "ok", summary["qc"]
    assert summary_numbers(summary)["qc_status"] == "ok"
    assert "id='qc-banner'" in (out / "report.html").read_text()


def test_spectral_shifts_say_how_each_settled_shift_was_fitted(spectral_output):
    """Joint intensity fit, its fallback and the error widening are in spectral_shifts.csv."""
    import pandas as pd

    out, _, _ = spectral_output
    shifts = pd.read_csv(out / "spectral_shifts.csv")
    fitted = shifts[shifts["shift_method"] == "settled_fit"]
    assert len(fitted)
    assert fitted["joint_intensity"].isin([True, False]).all()
    assert fitted["intensity_consistent"].isin([True, False]).all()
    assert (fitted["shift_error_inflation"] >= 1.0).all()  # errors are only ever widened
    window = shifts[shifts["level"] < 0]  # the field-off rows have no settled fit
    assert window["joint_intensity"].isna().all() and window["shift_error_inflation"].isna().all()
