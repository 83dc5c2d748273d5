"""Generate the page of output columns (``_generated/columns.md``) from :mod:`plscope.columns`.

Every ``*_COLUMNS`` tuple of :mod:`plscope.columns` becomes a table of its
columns, each with the unit read from its name (:func:`plscope.columns.unit_of`)
and, where known, a meaning from :data:`MEANINGS`. The table's caption is the
constant's own ``#:`` comment, so a column added to :mod:`plscope.columns`
appears here at the next build.
"""

from __future__ import annotations

from sphinx.pycode import ModuleAnalyzer

from plscope import columns

#: meaning of the column names (the unit is read from the name)
MEANINGS: dict[str, str] = {
    "frame": "frame index in the movie (0-based)",
    "time_s": "frame time on the DAQ clock (see the caption of each table for which instant)",
    "mid_time_s": "middle of the exposure",
    "frame_start_s": "start of the exposure",
    "segment": "index of the field-ON segment",
    "start_s": "start of the segment",
    "end_s": "end of the segment",
    "cycle": "index of the field cycle (ON segment + the OFF interval after it)",
    "level": "index of the field level (segments clustered by field)",
    "field_kV_per_cm": "electric field |V| × gain / gap",
    "level_kV_per_cm": "mean field of the level",
    "sign": "polarity of the applied voltage (+1 or -1)",
    "polarity": "polarities seen at this level",
    "n_segments": "number of ON segments at this level",
    "n_positive": "number of ON segments of positive polarity",
    "n_negative": "number of ON segments of negative polarity",
    "on_start_s": "field switched on",
    "on_end_s": "field switched off",
    "off_end_s": "end of the OFF interval (next switch-on or end of the record)",
    "particle_id": "particle index (as in particles.csv)",
    "n_cycles": "cycles at this field level",
    "n_cycles_used": "cycles averaged for the polarization",
    "n_cycles_used_rec": "cycles averaged for the recovery",
    "n_cycles_spoiled": "cycles rejected (blinks, exposure straddling an edge, ...)",
    "switching_efficiency": "settled quench depth 1 - I_quenched / I_bright (fraction)",
    "switching_efficiency_std": "spread of the per-cycle switching efficiency",
    "switching_efficiency_fit": "asymptote of the fitted polarization",
    "switching_efficiency_window": "depth reached at the end of the ON window",
    "not_settled": "the fitted response reached < 95 % of its amplitude in its window",
    "pol_settled_fraction": "fraction of the polarization reached by the end of the ON window",
    "rec_settled_fraction": "fraction of the recovery reached by the end of the OFF window",
    "tau_pol_s": "amplitude-weighted polarization time constant (field ON)",
    "tau_pol_err_s": "standard error of tau_pol_s",
    "tau_rec_s": "amplitude-weighted recovery time constant (field OFF)",
    "tau_rec_err_s": "standard error of tau_rec_s",
    "tau_pol_fast_s": "fast component tau1 of the polarization",
    "tau_pol_slow_s": "slow component tau2 of the polarization",
    "tau_rec_fast_s": "fast component tau1 of the recovery",
    "tau_rec_slow_s": "slow component tau2 of the recovery",
    "pol_model": "model reported for the polarization: biexp, mono or none",
    "rec_model": "model reported for the recovery: biexp, mono or none",
    "pol_fit_ok": "the polarization fit is usable",
    "rec_fit_ok": "the recovery fit is usable",
    "fit_ok": "both fits usable: the row's tau, v and mu may be used",
    "size_nm": "side length of the particle (PSF-corrected fit)",
    "size_err_nm": "standard error of size_nm",
    "velocity_nm_per_s": "ion drift velocity v = L / tau_pol",
    "velocity_err_nm_per_s": "standard error of the velocity",
    "mobility_cm2_per_Vs": "ion mobility mu = v / E",
    "mobility_err_cm2_per_Vs": "standard error of the mobility",
    "bleach_percent_per_min": "photobleaching rate estimated from the OFF plateaus",
    "flags": "semicolon-separated quality flags of the fits",
    "tau_pol_err_method": "how tau_pol_err_s was obtained (covariance, bootstrap, ...)",
    "tau_rec_err_method": "how tau_rec_err_s was obtained",
    "pol_delta_bic": "BIC(biexponential) - BIC(monoexponential) of the free polarization fits",
    "rec_delta_bic": "BIC(biexponential) - BIC(monoexponential) of the free recovery fits",
    "pol_frac": "fast fraction I1/(I1+I2) of the polarization",
    "rec_frac": "fast fraction I1/(I1+I2) of the recovery",
    "exclusion_reason": "empty when the row enters the mobility statistics, else why not",
    "bright": "pre-ON plateau of the cycle (background-subtracted intensity)",
    "quenched": "plateau at the end of the ON window",
    "used": "the cycle entered the average",
    "peak_nm": "Lorentzian centre",
    "peak_err_nm": "standard error of peak_nm",
    "fwhm_nm": "Lorentzian full width at half maximum",
    "fwhm_err_nm": "standard error of fwhm_nm",
    "state": "off, on or switching (exposure straddles an edge)",
    "phase": "place of the frame in its cycle",
    "settled": "the frame lies after the polarization / recovery transient",
    "shift_nm": "shift relative to the field-off baseline (spectra: of the peak; centroid_shift.csv: of the "
    "optical centroid)",
    "shift_err_nm": "standard error of the shift",
    "baseline_nm": "field-off baseline of the peak at this frame",
    "amplitude": "Lorentzian peak height (counts)",
    "amplitude_err": "standard error of the amplitude",
    "baseline_counts": "constant term of the linear baseline",
    "baseline_slope_per_nm": "slope of the linear baseline (counts per nm)",
    "intensity": "background-subtracted intensity (ADU summed over the aperture or stripe)",
    "redchi": "reduced chi-square of the fit",
    "sigma_nm": "standard deviation of the fitted normal distribution",
    "mean_nm": "mean of the shifts",
    "median_nm": "median of the shifts",
    "n_frames": "number of frames",
    "method": "how the window histogram was summarised (normal fit or median)",
    "shift_window_nm": "centre of the histogram of the settled-window frames (end of each window)",
    "shift_window_err_nm": "standard error of shift_window_nm",
    "shift_settled_nm": "settled shift S of the whole peak-trace fit (state carried across edges)",
    "shift_settled_err_nm": "standard error of shift_settled_nm",
    "shift_tau_pol_s": "amplitude-weighted time of the peak shift after switch-on (trace fit)",
    "shift_tau_rec_s": "amplitude-weighted time of the peak's return after switch-off (trace fit)",
    "shift_method": "which estimate shift_nm is: settled_fit or window",
    "settled_fit_ok": "the whole peak-trace fit is usable",
    "n_frames_fitted": "frames in the whole peak-trace fit",
    "before_s": "median time of the field-off frames before the ON interval",
    "before_nm": "median field-off peak before the ON interval",
    "n_before": "frames in before_nm",
    "after_s": "median time of the field-off frames after the ON interval",
    "after_nm": "median field-off peak after the ON interval",
    "n_after": "frames in after_nm",
    "on_fraction": "fraction of the exposure spent with the field ON",
    "x_px": "column of the particle centre (pixel i has its centre at i)",
    "y_px": "row of the particle centre",
    "slit_row": "row of the particle along the slit",
    "fwhm_rows": "width of the particle's stripe along the slit",
    "snr": "signal-to-noise ratio",
}

MEANINGS.update(
    {
        # particles.csv and traces.csv.gz of an imaging run (detection, size fit, quality, traces)
        "area_px": "area of the segmented region",
        "bbox_x_min_px": "bounding box of the segmented region",
        "bbox_y_min_px": "bounding box of the segmented region",
        "bbox_x_max_px": "bounding box of the segmented region",
        "bbox_y_max_px": "bounding box of the segmented region",
        "mass_adu": "sum of the background-subtracted reference image over the region",
        "smooth_background_adu": "smooth background (offset + illumination) at the particle",
        "touches_border": "the particle touches the image border",
        "total_adu": "integrated particle signal above background (size fit)",
        "total_err_adu": "standard error of total_adu",
        "size_fit_ok": "the blurred-square fit converged to a usable size",
        "near_diffraction_limit": "side below a few PSF sigma: only an upper bound is reliable",
        "side_px": "side of the fitted square",
        "side_err_px": "statistical error of side_px",
        "x_err_px": "standard error of x_px",
        "y_err_px": "standard error of y_px",
        "background_adu": "local background per pixel",
        "psf_sigma_px": "PSF standard deviation used",
        "psf_sigma_fit_nm": "free-sigma fit of this particle when the PSF was estimated",
        "chi2_red": "reduced chi-square of the size fit",
        "n_fit_px": "pixels in the fit",
        "group_size": "particles fitted jointly",
        "fit_message": "message of the optimizer",
        "equivalent_diameter_nm": "diameter of the disk of the same area (PSF-corrected moments)",
        "aspect_ratio": "long / short axis (>= 1)",
        "orientation_deg": "long axis from +x towards +y, 0-180",
        "size_fallback": "the fit failed: size_nm is NaN, side_px is the segmented footprint",
        "size_upper_bound_nm": "upper bound of the side for particles near the diffraction limit",
        "side_long_nm": "long side of a rectangle at any angle",
        "side_short_nm": "short side of a rectangle at any angle",
        "snr_quality": "median intensity / frame-to-frame noise of the trace",
        "noise_adu": "frame-to-frame noise of the trace",
        "blink_fraction": "fraction of frames blinked off",
        "n_blinks": "number of blinks",
        "bleach_fraction": "loss of the unperturbed level over the run",
        "bleach_rate_per_s": "photobleaching rate",
        "saturated_fraction": "frames with an aperture pixel at saturation",
        "annulus_masked_fraction": "fraction of the background annulus masked by neighbours",
        "n_tracks": "trajectories the particle's centroid split into (-1: not tracked)",
        "low_snr": "flag: SNR below the threshold",
        "blinking": "flag: blinks too often",
        "bleached": "flag: bleached too much",
        "saturated": "flag: saturated frames",
        "crowded": "flag: background annulus too masked by neighbours",
        "ok": "no quality flag, not at the border, one trajectory",
        "reason": "why not ok (empty when ok)",
        "x_ref_px": "column of the centre on the reference image (before drift)",
        "y_ref_px": "row of the centre on the reference image (before drift)",
        "excluded": "empty when the particle enters the statistics, else why not",
        "background": "local background per pixel (annulus)",
        "peak_adu": "brightest pixel, background-subtracted",
        "shift_x_px": "centroid displacement along x, field on minus off",
        "shift_y_px": "centroid displacement along y, field on minus off",
        "shift_px": "length of the centroid displacement",
        "shift_err_px": "standard error of shift_px",
        "n_on_frames": "field-on frames averaged",
        "n_off_frames": "field-off frames averaged",
        "drift_x_px": "stage drift along x relative to the reference image",
        "drift_y_px": "stage drift along y relative to the reference image",
    }
)


def _caption(lines: list[str]) -> str:
    text = " ".join(line.strip() for line in lines).strip()
    # roles of the Python docs become literals here (the page is Markdown)
    for role in (":func:", ":attr:", ":data:", ":mod:", ":class:"):
        text = text.replace(role, "")
    return text.replace("``", "`")


def _table(names: tuple[str, ...]) -> list[str]:
    rows = ["| column | unit | meaning |", "| --- | --- | --- |"]
    for name in names:
        unit = columns.unit_of(name) or "–"
        rows.append(f"| `{name}` | {unit} | {MEANINGS.get(name, '')} |")
    return rows


def units_markdown() -> str:
    """The Markdown table of unit suffixes (:data:`plscope.columns.UNITS`)."""
    rows = ["| suffix | unit |", "| --- | --- |"]
    rows += [f"| `{suffix}` | {unit} |" for suffix, unit in columns.UNITS.items()]
    return "\n".join(rows) + "\n"


def columns_markdown() -> str:
    """The Markdown of the generated page (every table, column, unit)."""
    docs = ModuleAnalyzer.for_module("plscope.columns").find_attr_docs()
    out = [
        "<!-- generated from plscope.columns by docs/_columns.py at each build; do not edit -->",
        "",
    ]
    for (_, name), lines in docs.items():
        value = getattr(columns, name, None)
        if not name.endswith("_COLUMNS") or not isinstance(value, tuple):
            continue
        out += [f"### `{name}`", "", _caption(lines), ""] + _table(value) + [""]
    return "\n".join(out)
