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
#: settled shift of each particle and level from its whole peak-trace fit (:func:`plscope.spectra.settled_shifts`)
SETTLED_SHIFT_COLUMNS = (
    "particle_id",
    "level",
    "shift_settled_nm",
    "shift_settled_err_nm",
    "shift_tau_pol_s",
    "shift_tau_rec_s",
    "pol_settled_fraction",
    "rec_settled_fraction",
    "not_settled",
    "settled_fit_ok",
    "n_frames_fitted",
)
SPECTRAL_SHIFT_COLUMNS = (
    *SHIFT_STAT_COLUMNS,
    "shift_window_nm",
    "shift_window_err_nm",
    "shift_settled_nm",
    "shift_settled_err_nm",
    "shift_tau_pol_s",
    "shift_tau_rec_s",
    "pol_settled_fraction",
    "rec_settled_fraction",
    "not_settled",
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
window (the settled shift is then an extrapolation of the fit)."""
#: particles.csv of a spectra-only run: the particles along the slit (y_px is the slit row)
SLIT_PARTICLE_COLUMNS = ("particle_id", "x_px", "y_px", "size_nm", "slit_row", "fwhm_rows", "snr")
