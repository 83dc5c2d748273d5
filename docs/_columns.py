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
    "shift_nm": "peak shift relative to the cycle's field-off baseline",
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
    "method": "how the shift was estimated (normal fit or median)",
    "x_px": "column of the particle centre (pixel i has its centre at i)",
    "y_px": "row of the particle centre",
    "slit_row": "row of the particle along the slit",
    "fwhm_rows": "width of the particle's stripe along the slit",
    "snr": "signal-to-noise ratio",
}

#: tables that :mod:`plscope.columns` does not list (yet): file -> columns
OTHER_TABLES: dict[str, tuple[str, ...]] = {
    "traces.csv.gz (one row per frame and particle)": (
        "frame",
        "particle_id",
        "intensity",
        "background",
        "x_px",
        "y_px",
        "peak_adu",
        "drift_x_px",
        "drift_y_px",
    ),
}
MEANINGS.update(
    {
        "background": "local background per pixel (annulus)",
        "peak_adu": "brightest pixel of the aperture",
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
    out += ["### Other tables", ""]
    for title, names in OTHER_TABLES.items():
        out += [f"**{title}**", ""] + _table(names) + [""]
    return "\n".join(out)
