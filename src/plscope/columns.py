"""Column names of every table plscope writes or passes between stages, with units.

A leaf module: it imports nothing of plscope, and everything may import it.
Units are in the names (``tau_pol_s``, ``size_nm``, ``field_kV_per_cm``);
:func:`unit_of` reads them back, and :data:`UNITS` lists the suffixes.

Times: ``time_s`` is the **start of the exposure** in ``frames.parquet``
(camera TTL rising edge) and ``mid_time_s`` its middle; in ``spectra.csv``
``time_s`` is the middle of the exposure and ``frame_start_s`` its start.
"""

from __future__ import annotations

__all__ = [
    "BASELINE_COLUMNS",
    "CENTROID_SHIFT_COLUMNS",
    "CYCLE_COLUMNS",
    "DRIFT_TABLE_COLUMNS",
    "FRAME_COLUMNS",
    "FRAME_FIELD_COLUMNS",
    "KINETICS_COLUMNS",
    "KINETICS_SPEC_COLUMNS",
    "LEVEL_COLUMNS",
    "PARTICLES_CSV_COLUMNS",
    "PARTICLE_COLUMNS",
    "QUALITY_COLUMNS",
    "SEGMENT_COLUMNS",
    "SETTLED_SHIFT_COLUMNS",
    "SE_CYCLE_COLUMNS",
    "SHIFT_STAT_COLUMNS",
    "SIZE_COLUMNS",
    "SLIT_PARTICLE_COLUMNS",
    "SPECTRAL_SHIFT_COLUMNS",
    "SPECTRA_COLUMNS",
    "SPECTRA_EXTRA_COLUMNS",
    "TRACES_CSV_COLUMNS",
    "TRACE_CENTROID_COLUMNS",
    "TRACE_COLUMNS",
    "TRACE_DRIFT_COLUMNS",
    "TRACE_PEAK_COLUMNS",
    "UNITS",
    "unit_of",
    "MEANINGS",
]

#: unit of each name suffix (longest match wins); a column without one is dimensionless or a label
UNITS: dict[str, str] = {
    "_s": "s",
    "_per_s": "1/s",
    "_per_min": "1/min",
    "_percent_per_min": "%/min",
    "_nm": "nm",
    "_um": "µm",
    "_px": "px",
    "_adu": "ADU (camera counts)",
    "_K": "K",
    "_kV_per_cm": "kV/cm",
    "_nm_per_s": "nm/s",
    "_cm2_per_Vs": "cm²/(V·s)",
    "_cm2_per_s": "cm²/s",
    "_nm_per_kV_per_cm": "nm/(kV/cm)",
    "_s_per_nm": "s/nm",
    "_hz": "Hz",
}


def unit_of(column: str) -> str:
    """The unit a column name carries in its suffix ('' when it has none).

    >>> unit_of("tau_pol_s"), unit_of("mobility_cm2_per_Vs"), unit_of("fit_ok")
    ('s', 'cm²/(V·s)', '')
    """
    best = ""
    for suffix in UNITS:
        if column.endswith(suffix) and len(suffix) > len(best):
            best = suffix
    return UNITS.get(best, "")


# --------------------------------------------------------------------------
# synchronisation (plscope.sync)
# --------------------------------------------------------------------------

#: frames.parquet: frame index, exposure start (TTL rising edge or clock) and middle, s
FRAME_COLUMNS = ("frame", "time_s", "mid_time_s")
#: field-ON segments of the DAQ voltage (:func:`plscope.sync.field_segments`)
SEGMENT_COLUMNS = ("segment", "start_s", "end_s", "field_kV_per_cm", "sign", "level", "level_kV_per_cm")
#: cycles.csv: one row per field-ON segment and the OFF interval after it
CYCLE_COLUMNS = ("cycle", "level", "field_kV_per_cm", "sign", "on_start_s", "on_end_s", "off_end_s")
#: field levels (:func:`plscope.sync.field_levels`)
LEVEL_COLUMNS = ("level", "field_kV_per_cm", "n_segments", "n_positive", "n_negative", "polarity")

# --------------------------------------------------------------------------
# tracking (plscope.tracking): particles.csv, traces
# --------------------------------------------------------------------------

#: particles found in the reference image (:func:`plscope.tracking.detect_particles`)
PARTICLE_COLUMNS = (
    "particle_id",
    "x_px",
    "y_px",
    "area_px",
    "bbox_x_min_px",
    "bbox_y_min_px",
    "bbox_x_max_px",
    "bbox_y_max_px",
    "peak_adu",
    "mass_adu",
    "smooth_background_adu",
    "snr",
    "touches_border",
)
#: size fits of the particles (:func:`plscope.tracking.measure_sizes`)
SIZE_COLUMNS = (
    "particle_id",
    "size_nm",
    "size_err_nm",
    "x_px",
    "y_px",
    "total_adu",
    "size_fit_ok",
    "near_diffraction_limit",
    "side_px",
    "side_err_px",
    "x_err_px",
    "y_err_px",
    "total_err_adu",
    "background_adu",
    "psf_sigma_px",
    "psf_sigma_fit_nm",
    "chi2_red",
    "n_fit_px",
    "group_size",
    "fit_message",
    "equivalent_diameter_nm",
    "aspect_ratio",
    "orientation_deg",
    "size_fallback",
    "size_upper_bound_nm",
    "side_long_nm",
    "side_short_nm",
    "possibly_merged",
    "size_model_err_nm",
)
#: per-particle quality of the traces (:func:`plscope.tracking.quality_flags`)
QUALITY_COLUMNS = (
    "particle_id",
    "snr",
    "noise_adu",
    "blink_fraction",
    "n_blinks",
    "bleach_fraction",
    "bleach_rate_per_s",
    "saturated_fraction",
    "annulus_masked_fraction",
    "touches_border",
    "n_tracks",
    "n_positions",
    "low_snr",
    "blinking",
    "bleached",
    "saturated",
    "crowded",
    "ok",
    "reason",
)
#: traces: one row per frame and particle (:func:`plscope.tracking.extract_traces`, without the extras)
TRACE_COLUMNS = ("frame", "particle_id", "intensity", "background")
#: extra trace columns when drift is estimated or corrected
TRACE_DRIFT_COLUMNS = ("drift_x_px", "drift_y_px")
#: extra trace columns with ``centroids=True``: per-frame intensity-weighted centroid (frame coordinates)
TRACE_CENTROID_COLUMNS = ("x_px", "y_px")
#: extra trace column with ``peaks=True``: brightest raw pixel of the aperture (ADU)
TRACE_PEAK_COLUMNS = ("peak_adu",)
#: drift.parquet: stage drift per frame (:func:`plscope.tracking.estimate_drift`)
DRIFT_TABLE_COLUMNS = ("frame", *TRACE_DRIFT_COLUMNS)
#: centroid_shift.csv: optical-centroid displacement field on vs off (:func:`plscope.tracking.centroid_shift`)
CENTROID_SHIFT_COLUMNS = (
    "particle_id",
    "field_kV_per_cm",
    "shift_x_px",
    "shift_y_px",
    "shift_px",
    "shift_err_px",
    "shift_nm",
    "shift_err_nm",
    "n_cycles",
    "n_on_frames",
    "n_off_frames",
)
#: particles.csv of an imaging run (one row per particle: detection, size fit, quality)
PARTICLES_CSV_COLUMNS = (
    *PARTICLE_COLUMNS[:3],
    "size_nm",
    *PARTICLE_COLUMNS[3:],
    *(c for c in SIZE_COLUMNS if c not in ("particle_id", "size_nm", "x_px", "y_px")),
    *(
        "snr_quality" if c == "snr" else c
        for c in QUALITY_COLUMNS
        if c not in ("particle_id", "touches_border")
    ),
    "x_ref_px",
    "y_ref_px",
    "excluded",
)
#: traces.csv.gz of an imaging run (one row per frame and particle)
TRACES_CSV_COLUMNS = (*TRACE_COLUMNS, *TRACE_CENTROID_COLUMNS, *TRACE_PEAK_COLUMNS, *TRACE_DRIFT_COLUMNS)

# --------------------------------------------------------------------------
# kinetics (plscope.kinetics) and kinetics.csv
# --------------------------------------------------------------------------

KINETICS_COLUMNS = (
    "particle_id",
    "level",
    "field_kV_per_cm",
    "n_cycles",
    "n_cycles_used",
    "n_cycles_used_rec",
    "n_cycles_spoiled",
    "switching_efficiency",
    "switching_efficiency_std",
    "switching_efficiency_fit",
    "switching_efficiency_window",
    "not_settled",
    "pol_settled_fraction",
    "rec_settled_fraction",
    "tau_pol_s",
    "tau_pol_err_s",
    "tau_rec_s",
    "tau_rec_err_s",
    "tau_pol_fast_s",
    "tau_pol_slow_s",
    "tau_rec_fast_s",
    "tau_rec_slow_s",
    "pol_model",
    "rec_model",
    "pol_fit_ok",
    "rec_fit_ok",
    "fit_ok",
    "size_nm",
    "velocity_nm_per_s",
    "mobility_cm2_per_Vs",
    "bleach_percent_per_min",
    "flags",
    "tau_pol_err_method",
    "tau_rec_err_method",
    "pol_delta_bic",
    "rec_delta_bic",
    "pol_frac",
    "rec_frac",
    "size_err_nm",
    "velocity_err_nm_per_s",
    "mobility_err_cm2_per_Vs",
    "exclusion_reason",
)
"""Columns of :attr:`ParticleKinetics.table` (one row per field level).

``*_delta_bic`` is BIC(biexponential) - BIC(monoexponential) of the free fits
(negative: the biexponential wins); ``*_model`` is the model reported
('biexp', 'mono' or 'none'); ``*_frac`` the fast fraction ``I1/(I1+I2)``;
``exclusion_reason`` is empty for a row that enters the mobility statistics,
else a sentence saying why not.

``switching_efficiency`` is the *settled* quench depth: the asymptote of the
fitted polarization (``switching_efficiency_fit``) when that fit is usable,
else the depth at the end of the ON window. The depth reached at the end of
the ON window (mean over the used cycles of ``1 - quenched / bright`` from the
plateaus) is ``switching_efficiency_window``. ``pol_settled_fraction`` /
``rec_settled_fraction``: the fraction of the fitted response reached by the
end of its window; ``not_settled`` is true when either is below 0.95 (the
settled values are then extrapolations of the fit)."""

#: the spec's leading columns of kinetics.csv (the rest of :data:`KINETICS_COLUMNS` follows)
KINETICS_SPEC_COLUMNS = (
    "particle_id",
    "field_kV_per_cm",
    "tau_pol_s",
    "tau_rec_s",
    "switching_efficiency",
    "velocity_nm_per_s",
    "mobility_cm2_per_Vs",
    "fit_ok",
)

#: switching_efficiency_cycles.csv: the switching efficiency of every particle and cycle
SE_CYCLE_COLUMNS = (
    "particle_id",
    "cycle",
    "level",
    "field_kV_per_cm",
    "bright",
    "quenched",
    "switching_efficiency",
    "used",
)

# --------------------------------------------------------------------------
# spectra (plscope.spectra): spectra.csv, spectral_shifts.csv
# --------------------------------------------------------------------------

#: the spec's columns of spectra.csv, first (``time_s``: middle of the exposure)
SPECTRA_COLUMNS = ("frame", "time_s", "field_kV_per_cm", "peak_nm", "fwhm_nm")
#: further columns of spectra.csv, in order (those present)
SPECTRA_EXTRA_COLUMNS = (
    "particle_id",
    "state",
    "level",
    "cycle",
    "phase",
    "settled",
    "shift_nm",
    "baseline_nm",
    "peak_err_nm",
    "fwhm_err_nm",
    "amplitude",
    "amplitude_err",
    "baseline_counts",
    "baseline_slope_per_nm",
    "intensity",
    "redchi",
    "fit_ok",
    "frame_start_s",
)
#: frame labels by the field (:func:`plscope.spectra.frame_fields`)
FRAME_FIELD_COLUMNS = ("frame", "state", "field_kV_per_cm", "level", "on_fraction")
#: field-off peak before and after each cycle's ON interval (:func:`plscope.spectra.cycle_baselines`)
BASELINE_COLUMNS = (
    "particle_id",
    "cycle",
    "before_s",
    "before_nm",
    "n_before",
    "after_s",
    "after_nm",
    "n_after",
)
#: histogram statistics of the settled-window frames (:func:`plscope.spectra.shift_statistics`)
SHIFT_STAT_COLUMNS = (
    "particle_id",
    "field_kV_per_cm",
    "level",
    "shift_nm",
    "shift_err_nm",
    "sigma_nm",
    "mean_nm",
    "median_nm",
    "n_frames",
    "method",
)
# the settled-shift values, in spectral_shifts.csv as in settled_shifts.csv
_SETTLED_VALUES = (
    "shift_settled_nm",
    "shift_settled_err_nm",
    "shift_tau_pol_s",
    "shift_tau_rec_s",
    "pol_settled_fraction",
    "rec_settled_fraction",
    "not_settled",
    "joint_intensity",
    "intensity_consistent",
    "shift_error_inflation",
)
#: settled shift of each particle and level from its whole peak-trace fit (:func:`plscope.spectra.settled_shifts`)
SETTLED_SHIFT_COLUMNS = ("particle_id", "level", *_SETTLED_VALUES, "settled_fit_ok", "n_frames_fitted")
SPECTRAL_SHIFT_COLUMNS = (
    *SHIFT_STAT_COLUMNS,
    "shift_window_nm",
    "shift_window_err_nm",
    *_SETTLED_VALUES,
    "shift_method",
)
"""spectral_shifts.csv: shift per field level, pooled (particle_id -1) and per particle.

``shift_nm`` is the *settled* shift: the settled value ``S`` of the particle's
whole peak-trace fit (``shift_settled_nm``, :mod:`plscope.spectra.settled`)
when that fit is usable (``shift_method`` ``"settled_fit"``), else the centre of
the histogram of the settled-window frames (``"window"``). The window value is
kept as ``shift_window_nm``. The pooled row (``particle_id`` -1) is the mean of
the particles' ``shift_nm``; the field-off row (level -1) is always the window
value. ``not_settled``: the fitted response reached < 95 % by the end of its
window (the settled shift is then an extrapolation of the fit). ``joint_intensity``:
the settled fit shared its times and shape with the spectral intensity (the PL
quench of the same spectra); ``intensity_consistent`` false: the peak's own
times and shape fitted its trace far better than the joint fit's (the intensity's
kinetics are not the peak's) and the peak alone's values are reported;
``shift_error_inflation``: the factor by which ``shift_settled_err_nm`` was
widened for residuals correlated within half cycles (1 for white residuals;
pooled rows: the largest over their particles)."""
#: particles.csv of a spectra-only run: the particles along the slit (y_px is the slit row)
SLIT_PARTICLE_COLUMNS = ("particle_id", "x_px", "y_px", "size_nm", "slit_row", "fwhm_rows", "snr")


#: meaning of every column name of plscope's tables (the unit is read from the name,
#: :func:`unit_of`); the docs' column pages and the report's column glossary use it
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
    "joint_intensity": "the settled peak fit shared its times and shape with the spectral intensity",
    "intensity_consistent": "false when the joint fit misfit the peak and the peak alone was fitted",
    "shift_error_inflation": "widening of the settled shift's error for residuals correlated within half cycles",
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
    "possibly_merged": "elongated (aspect > 1.6, short side > 0.4 x and long side < 1.6 x size): possibly two touching particles; size unreliable",
    "size_model_err_nm": "model-mismatch part of size_err_nm (square fit vs PSF-corrected moments)",
    "snr_quality": "median intensity / frame-to-frame noise of the trace",
    "noise_adu": "frame-to-frame noise of the trace",
    "blink_fraction": "fraction of frames blinked off",
    "n_blinks": "number of blinks",
    "bleach_fraction": "loss of the unperturbed level over the run",
    "bleach_rate_per_s": "photobleaching rate",
    "saturated_fraction": "frames with an aperture pixel at saturation",
    "annulus_masked_fraction": "fraction of the background annulus masked by neighbours",
    "n_tracks": "trajectories the particle's centroid split into (-1: not tracked)",
    "n_positions": "distinct places among those trajectories (> 1: identity lost; -1: not tracked)",
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
