"""Spectra: lamp calibration, stripe extraction, batched Lorentzian fits, field-induced shifts.

- :mod:`plscope.spectra.lamp` -- text readers for lamp spectra and line lists;
- :mod:`plscope.spectra.calibration` -- lamp peaks, line identification,
  dispersion polynomial (:func:`calibrate`);
- :mod:`plscope.spectra.extract` -- particle stripes along the slit and
  their background-subtracted spectra;
- :mod:`plscope.spectra.lorentz` -- Lorentzian + baseline fits, one or
  thousands at once (batched Levenberg-Marquardt, dask);
- :mod:`plscope.spectra.shifts` -- frames labelled by the field, per-cycle
  baselines, histograms with normal fits, shift against field;
- :mod:`plscope.spectra.analysis` -- ``spectra.csv``, ``spectral_shifts.csv``
  and the ``spectral_*`` summary keys from the fits.

The orchestration of a run is :mod:`plscope.pipeline.spectra`.
"""

from .analysis import (
    StripeGraph,
    is_track_readout,
    shift_table,
    spectra_summary_keys,
    spectra_table,
    stripe_graph,
)
from .calibration import (
    LINE_COLUMNS,
    PEAK_COLUMNS,
    Calibration,
    CalibrationError,
    calibrate,
    find_lamp_peaks,
    fit_dispersion,
    identify_lines,
    wavelength_at,
)
from .extract import (
    STRIPE_COLUMNS,
    ExtractionError,
    extract_spectra,
    extract_spectra_dask,
    find_stripes,
    reference_frame,
    stripe_weights,
)
from .lamp import LineList, SpectrumTable, read_lamp, read_lines, read_spectrum_table
from .lorentz import (
    FIT_COLUMNS,
    LorentzFit,
    SpectrumFitError,
    fit_lorentzian,
    fit_lorentzians,
    fit_lorentzians_dask,
    fits_to_frame,
    guess_lorentzians,
    lmfit_lorentzian,
    lorentzian,
    lorentzian_baseline,
)
from .settled import SETTLED_SHIFT_COLUMNS, SettledTraceFit, fit_settled_trace, settled_shifts
from .shifts import (
    BASELINE_COLUMNS,
    FRAME_FIELD_COLUMNS,
    SHIFT_STAT_COLUMNS,
    NormalFit,
    ShiftInputError,
    ShiftSlope,
    add_shifts,
    cycle_baselines,
    frame_fields,
    frame_phases,
    histogram_bins,
    normal_fit,
    shift_slope,
    shift_statistics,
)

__all__ = [
    "StripeGraph",
    "is_track_readout",
    "shift_table",
    "spectra_summary_keys",
    "spectra_table",
    "stripe_graph",
    "BASELINE_COLUMNS",
    "FIT_COLUMNS",
    "FRAME_FIELD_COLUMNS",
    "LINE_COLUMNS",
    "PEAK_COLUMNS",
    "SETTLED_SHIFT_COLUMNS",
    "SHIFT_STAT_COLUMNS",
    "STRIPE_COLUMNS",
    "Calibration",
    "CalibrationError",
    "ExtractionError",
    "LineList",
    "LorentzFit",
    "NormalFit",
    "ShiftInputError",
    "SettledTraceFit",
    "ShiftSlope",
    "SpectrumFitError",
    "SpectrumTable",
    "add_shifts",
    "calibrate",
    "cycle_baselines",
    "extract_spectra",
    "extract_spectra_dask",
    "find_lamp_peaks",
    "find_stripes",
    "fit_settled_trace",
    "fit_dispersion",
    "fit_lorentzian",
    "fit_lorentzians",
    "fit_lorentzians_dask",
    "fits_to_frame",
    "frame_fields",
    "frame_phases",
    "guess_lorentzians",
    "histogram_bins",
    "identify_lines",
    "lmfit_lorentzian",
    "lorentzian",
    "lorentzian_baseline",
    "normal_fit",
    "read_lamp",
    "read_lines",
    "read_spectrum_table",
    "reference_frame",
    "settled_shifts",
    "shift_slope",
    "shift_statistics",
    "stripe_weights",
    "wavelength_at",
]
