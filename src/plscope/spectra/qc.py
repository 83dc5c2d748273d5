"""Run-level QC of the spectral analysis: which spectral numbers may be wrong.

The verdict is computed once from the spectral summary keys (pure: no
printing, no files) and rendered by the terminal, the report banner and the
batch index. Notes that say how the run was analysed (timing without a DAQ,
surplus TTL edges, a calibration that extrapolates where no peak is) do not
make a run ``warn``; these checks do:

- ``fits_ok``: at least :data:`MIN_FIT_OK_FRACTION` of the Lorentzian fits
  succeeded (otherwise the peak positions behind every shift are suspect);
- ``shifts_available``: a run with a field has a shift per field level;
- ``shifts_settled``: every field-ON shift had settled (>= 95 %) by the end
  of its window (otherwise it is an extrapolation of the whole-trace fit);
- ``shifts_intensity_consistent``: every field-ON settled shift shared its
  kinetics with the spectral intensity (otherwise some particles' shifts
  rest on the peak alone, whose error can be too small where the noisy
  peak leaves the shape of the response poorly determined: rms pull 1.55
  in a noise test of 4 cycles at 0.15 nm);
- ``peak_within_calibration``: the median peak lies inside the wavelength
  range the calibration lines cover (otherwise its wavelength, and the shift
  across it, rest on an extrapolated dispersion).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["MIN_FIT_OK_FRACTION", "spectra_qc", "with_spectral_qc"]

#: smallest share of successful Lorentzian fits for the peak positions to be trusted
MIN_FIT_OK_FRACTION = 0.9


def _calibrated_range_nm(calibration: Mapping) -> tuple[float, float] | None:
    """Wavelengths at the outermost calibration lines (``pixel_range``), or None when unknown."""
    coef = calibration.get("dispersion_nm")
    px = calibration.get("pixel_range")
    if not coef or not px or len(px) != 2:
        return None
    lam = np.polynomial.polynomial.polyval(np.asarray(px, float), np.asarray(coef, float))
    return float(np.min(lam)), float(np.max(lam))


def _check_fits(keys: Mapping) -> tuple[bool | None, str]:
    frac = keys.get("spectral_fit_ok_fraction")
    if frac is None:
        return None, ""
    ok = float(frac) >= MIN_FIT_OK_FRACTION
    return ok, f"only {100 * float(frac):.0f} % of the Lorentzian fits succeeded (peak positions suspect)"


def _check_shifts(keys: Mapping, has_field: bool) -> tuple[bool | None, str]:
    if not has_field:
        return None, ""
    ok = bool(keys.get("spectral_shift_nm"))
    return ok, "the run has a field but no spectral shift could be measured"


def _check_settled(keys: Mapping) -> tuple[bool | None, str]:
    detail = keys.get("spectral_shift_detail") or []
    on = [d for d in detail if float(d.get("field_kV_per_cm") or 0.0) != 0.0]
    if not on:
        return None, ""
    bad = [f"{float(d['field_kV_per_cm']):.0f}" for d in on if d.get("not_settled")]
    return not bad, f"the spectral shift had not settled by the end of the window at {', '.join(bad)} kV/cm"


def _check_intensity(keys: Mapping) -> tuple[bool | None, str]:
    detail = keys.get("spectral_shift_detail") or []
    on = [
        d
        for d in detail
        if float(d.get("field_kV_per_cm") or 0.0) != 0.0 and d.get("intensity_consistent") is not None
    ]
    if not on:
        return None, ""
    bad = [f"{float(d['field_kV_per_cm']):.0f}" for d in on if d["intensity_consistent"] is False]
    return not bad, (
        f"at {', '.join(bad)} kV/cm some particles' settled shifts rest on the peak alone (their intensity's "
        "kinetics differ): their errors may be too small"
    )


def _check_calibration(keys: Mapping) -> tuple[bool | None, str]:
    rng = _calibrated_range_nm(keys.get("spectral_calibration") or {})
    peak = keys.get("spectral_peak_nm_median")
    if rng is None or peak is None:
        return None, ""
    ok = rng[0] <= float(peak) <= rng[1]
    return ok, (
        f"the median peak ({float(peak):.2f} nm) lies outside the calibrated range "
        f"{rng[0]:.2f}-{rng[1]:.2f} nm (extrapolated dispersion)"
    )


def spectra_qc(keys: Mapping[str, Any], *, has_field: bool) -> dict[str, Any]:
    """Run-level QC block of the spectral analysis.

    Parameters
    ----------
    keys : mapping
        The ``spectral_*`` summary keys (:func:`plscope.spectra.spectra_summary_keys`).
    has_field : bool
        Whether the run has field levels (timing from a DAQ with a field channel).

    Returns
    -------
    dict
        ``status`` ('ok' or 'warn'), ``reasons`` (one sentence per failed
        check) and ``checks`` (name -> True/False, or None when not applicable).

    Examples
    --------
    >>> keys = {"spectral_fit_ok_fraction": 0.5, "spectral_shift_nm": None}
    >>> qc = spectra_qc(keys, has_field=True)
    >>> qc["status"], qc["checks"]["fits_ok"], qc["checks"]["shifts_available"]
    ('warn', False, False)
    """
    checks: dict[str, bool | None] = {}
    reasons: list[str] = []
    for name, (ok, why) in (
        ("fits_ok", _check_fits(keys)),
        ("shifts_available", _check_shifts(keys, has_field)),
        ("shifts_settled", _check_settled(keys)),
        ("shifts_intensity_consistent", _check_intensity(keys)),
        ("peak_within_calibration", _check_calibration(keys)),
    ):
        checks[name] = ok
        if ok is False:
            reasons.append("spectra: " + why)
    return {"status": "warn" if reasons else "ok", "reasons": reasons, "checks": checks}


def with_spectral_qc(qc: Mapping[str, Any] | None, spectral: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's QC block (e.g. the kinetics') with the spectral verdict folded in.

    The status warns when either warns; the spectral reasons follow the run's
    own and the spectral checks appear under ``checks["spectra"]``.

    Examples
    --------
    >>> run = {"status": "ok", "reasons": [], "checks": {"velocity_slope_positive": True}}
    >>> spec = {"status": "warn", "reasons": ["spectra: x"], "checks": {"fits_ok": False}}
    >>> merged = with_spectral_qc(run, spec)
    >>> merged["status"], merged["reasons"], merged["checks"]["spectra"]
    ('warn', ['spectra: x'], {'fits_ok': False})
    """
    out: dict[str, Any] = dict(qc or {"status": "ok", "reasons": [], "checks": {}})
    if not spectral:
        return out
    reasons = [r for r in out.get("reasons", []) if not str(r).startswith("spectra: ")]
    reasons += list(spectral.get("reasons", []))
    out["reasons"] = reasons
    out["status"] = "warn" if reasons else "ok"
    out["checks"] = {**dict(out.get("checks") or {}), "spectra": dict(spectral.get("checks") or {})}
    return out
