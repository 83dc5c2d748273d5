"""Spectral tables from fitted spectra: ``spectra.csv``, ``spectral_shifts.csv`` and summary keys.

Pure functions on arrays and tables (no files, no progress bars):

1. :func:`stripe_graph` -- particle stripes along the slit and the lazy
   (dask) graphs of their background-subtracted spectra and Lorentzian fits;
2. :func:`spectra_table` -- one row per frame and particle
   (:data:`plscope.columns.SPECTRA_COLUMNS` first), frames labelled by the
   field and by their cycle phase, shifts against the field-off baselines;
3. :func:`shift_table` -- shift statistics per field level, pooled and per
   particle;
4. :func:`spectra_summary_keys` -- the ``spectral_*`` keys of summary.json.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
import pandas as pd

from ..columns import SETTLED_SHIFT_COLUMNS, SPECTRA_COLUMNS, SPECTRA_EXTRA_COLUMNS, SPECTRAL_SHIFT_COLUMNS
from .extract import (
    MAX_TRACK_ROWS,
    extract_spectra_dask,
    find_stripes,
    reference_frame,
    stripe_weights,
    track_stripes,
)
from .lorentz import fit_lorentzians_dask
from .settled import settled_shifts
from .shifts import add_shifts, frame_fields, frame_phases, shift_slope, shift_statistics

if TYPE_CHECKING:
    from .calibration import Calibration

logger = logging.getLogger(__name__)

__all__ = [
    "StripeGraph",
    "is_track_readout",
    "shift_table",
    "spectra_summary_keys",
    "spectra_table",
    "stripe_graph",
]


def _note(warnings: list[str], text: str) -> None:
    """Record a recoverable oddity (and log it)."""
    warnings.append(text)
    logger.warning("%s", text)


@dataclass(frozen=True)
class StripeGraph:
    """Stripes along the slit and the lazy graphs of their spectra and fits.

    Attributes
    ----------
    reference_image : numpy.ndarray, shape (rows, n_pixels)
    stripes : pandas.DataFrame
        Particles along the slit (:data:`plscope.spectra.STRIPE_COLUMNS`);
        empty when none is found.
    spectra : dask.array.Array or None, shape (n_frames, n_particles, n_pixels)
        Background-subtracted stripe spectra, counts per pixel.
    fits : dask.array.Array or None
        Batched Lorentzian fits over the fit window (see
        :func:`plscope.spectra.fit_lorentzians_dask`).
    """

    reference_image: np.ndarray
    stripes: pd.DataFrame
    spectra: da.Array | None
    fits: da.Array | None


def is_track_readout(data: da.Array) -> bool:
    """Whether frames of so few rows are track read-outs (full vertical binning or tracks), not a slit image."""
    return int(data.shape[1]) <= MAX_TRACK_ROWS


def stripe_graph(
    data: da.Array, wavelength_nm: np.ndarray, *, fit_slice: slice, baseline: str = "linear"
) -> StripeGraph:
    """Find the stripes and build the (lazy) spectra and Lorentzian-fit graphs.

    Parameters
    ----------
    data : dask.array.Array, shape (n_frames, rows, n_pixels)
        The spectral frames (rows along the slit, pixels along wavelength).
    wavelength_nm : numpy.ndarray, shape (n_pixels,)
    fit_slice : slice
        Pixels fitted.
    baseline : {"linear", "constant"}
        Baseline under the Lorentzian.

    Frames of at most :data:`plscope.spectra.extract.MAX_TRACK_ROWS` rows
    are track read-outs: one spectrum per track, not background-subtracted.
    """
    ref = reference_frame(data)
    stripes = track_stripes(ref) if is_track_readout(data) else find_stripes(ref)
    if len(stripes) == 0:
        return StripeGraph(ref, stripes, None, None)
    spectra = extract_spectra_dask(data, stripe_weights(int(data.shape[1]), stripes))
    fits = fit_lorentzians_dask(wavelength_nm[fit_slice], spectra[:, :, fit_slice], baseline=baseline)  # type: ignore[arg-type]
    return StripeGraph(ref, stripes, spectra, fits)


def _frame_labels(
    start_s: np.ndarray,
    mid_s: np.ndarray,
    exposure_s: float,
    segments: pd.DataFrame | None,
    cycles: pd.DataFrame,
    settle_fraction: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Field state (``frame_fields``) and cycle phase (``frame_phases``) of every frame."""
    if segments is not None and len(cycles):
        ff = frame_fields(start_s, exposure_s, segments)
        ph = frame_phases(mid_s, cycles, first_frame_s=float(start_s[0]), settle_fraction=settle_fraction)
        return ff, ph
    ff = pd.DataFrame(
        {
            "frame": np.arange(start_s.size),
            "state": "off",
            "field_kV_per_cm": np.nan if segments is None else 0.0,
            "level": -1,
            "on_fraction": 0.0,
        }
    )
    return ff, frame_phases(mid_s, pd.DataFrame(), settle_fraction=settle_fraction)


def spectra_table(
    fits: pd.DataFrame,
    spectra: np.ndarray,
    particle_id: np.ndarray,
    *,
    start_s: np.ndarray,
    mid_s: np.ndarray,
    exposure_s: float,
    segments: pd.DataFrame | None,
    cycles: pd.DataFrame,
    settle_fraction: float,
) -> pd.DataFrame:
    """``spectra.csv``: one row per frame and particle.

    Parameters
    ----------
    fits : pandas.DataFrame
        Lorentzian fits, frame-major (row = frame * n_particles + particle),
        from :func:`plscope.spectra.fits_to_frame`.
    spectra : numpy.ndarray, shape (n_frames, n_particles, n_pixels)
    particle_id : numpy.ndarray, shape (n_particles,)
    start_s, mid_s : numpy.ndarray, shape (n_frames,)
        Exposure starts and middles, s.
    exposure_s : float
    segments : pandas.DataFrame or None
        Field-ON segments (None: no field recorded).
    cycles : pandas.DataFrame
        ON/OFF cycles (empty: no shifts against the field).
    settle_fraction : float
        Fraction of each ON and OFF interval left out as transient.

    Returns
    -------
    pandas.DataFrame
        :data:`plscope.columns.SPECTRA_COLUMNS` then those of
        :data:`plscope.columns.SPECTRA_EXTRA_COLUMNS`; ``time_s`` is the
        middle of the exposure. Failed fits have NaN peaks and widths.
    """
    n_frames, n_p = int(start_s.size), int(particle_id.size)
    ff, ph = _frame_labels(start_s, mid_s, exposure_s, segments, cycles, settle_fraction)
    frame = np.repeat(np.arange(n_frames), n_p)
    table = pd.DataFrame(
        {
            "frame": frame.astype(np.int64),
            "time_s": mid_s[frame],
            "field_kV_per_cm": ff["field_kV_per_cm"].to_numpy(float)[frame],
            "peak_nm": fits["center"].to_numpy(),
            "fwhm_nm": np.abs(fits["fwhm"].to_numpy()),
            "particle_id": np.tile(particle_id.astype(np.int64), n_frames),
            "state": ff["state"].to_numpy()[frame],
            "level": ff["level"].to_numpy(np.int64)[frame],
            "cycle": ph["cycle"].to_numpy(np.int64)[frame],
            "phase": ph["phase"].to_numpy()[frame],
            "settled": ph["settled"].to_numpy(bool)[frame],
            "peak_err_nm": fits["center_err"].to_numpy(),
            "fwhm_err_nm": fits["fwhm_err"].to_numpy(),
            "amplitude": fits["amplitude"].to_numpy(),
            "amplitude_err": fits["amplitude_err"].to_numpy(),
            "baseline_counts": fits["offset"].to_numpy(),
            "baseline_slope_per_nm": fits["slope"].to_numpy(),
            "intensity": spectra.sum(axis=2).reshape(-1),
            "redchi": fits["redchi"].to_numpy(),
            "fit_ok": fits["fit_ok"].to_numpy(bool),
            "frame_start_s": start_s[frame],
        }
    )
    for c in ("peak_nm", "fwhm_nm", "peak_err_nm", "fwhm_err_nm"):
        table.loc[~table["fit_ok"], c] = np.nan
    if segments is not None and len(cycles):
        table = add_shifts(table)
    else:  # no field-off / field-on cycles to compare
        table["shift_nm"] = np.nan
        table["baseline_nm"] = np.nan
    table = table[[*SPECTRA_COLUMNS, *[c for c in SPECTRA_EXTRA_COLUMNS if c in table.columns]]]
    return table.sort_values(["frame", "particle_id"], kind="stable", ignore_index=True)


def shift_table(
    table: pd.DataFrame,
    *,
    has_field: bool,
    cycles: pd.DataFrame | None = None,
    exposure_s: float = 0.0,
) -> pd.DataFrame:
    """``spectral_shifts.csv``: shift per level, pooled (``particle_id`` -1) then per particle.

    The histogram statistics of the settled-window frames
    (:func:`plscope.spectra.shift_statistics`) give ``shift_window_nm``;
    with ``cycles``, every particle's whole peak trace is fitted
    (:func:`plscope.spectra.settled.settled_shifts`) and ``shift_nm`` is the
    fitted settled shift where that fit is usable (see
    :data:`plscope.columns.SPECTRAL_SHIFT_COLUMNS`).
    """
    if not has_field:
        return pd.DataFrame(columns=list(SPECTRAL_SHIFT_COLUMNS))
    per = _with_window(shift_statistics(table, per_particle=True))
    pooled = _with_window(shift_statistics(table))
    if cycles is not None and len(cycles):
        fits = settled_shifts(table, cycles, exposure_s=exposure_s)
        per = _use_settled(per, fits)
        pooled = _pool_settled(pooled, per)
    out = pd.concat([pooled, per], ignore_index=True)
    return out[list(SPECTRAL_SHIFT_COLUMNS)]


def _with_window(stats: pd.DataFrame) -> pd.DataFrame:
    """Histogram statistics with the window value under its own name and no settled fit yet."""
    out = stats.assign(
        shift_window_nm=stats["shift_nm"],
        shift_window_err_nm=stats["shift_err_nm"],
        shift_method="window",
        not_settled=False,
    )
    for c in SPECTRAL_SHIFT_COLUMNS:
        if c not in out.columns:
            out[c] = np.nan
    return out


def _use_settled(per: pd.DataFrame, fits: pd.DataFrame) -> pd.DataFrame:
    """Per-particle rows: the settled fit's values, and ``shift_nm`` from it where usable."""
    if len(fits) == 0:
        return per
    cols = [c for c in SETTLED_SHIFT_COLUMNS if c in SPECTRAL_SHIFT_COLUMNS]
    base = per.drop(columns=[c for c in cols if c not in ("particle_id", "level")])
    out = base.merge(fits[cols + ["settled_fit_ok"]], on=["particle_id", "level"], how="left")
    use = (out["level"] >= 0) & out["settled_fit_ok"].eq(True) & np.isfinite(out["shift_settled_nm"])
    out.loc[use, "shift_nm"] = out.loc[use, "shift_settled_nm"]
    out.loc[use, "shift_err_nm"] = out.loc[use, "shift_settled_err_nm"]
    out.loc[use, "shift_method"] = "settled_fit"
    out["not_settled"] = out["not_settled"].eq(True)
    return out.drop(columns=["settled_fit_ok"])


def _pool_settled(pooled: pd.DataFrame, per: pd.DataFrame) -> pd.DataFrame:
    """Pooled rows of field levels: the mean over particles of their ``shift_nm`` (settled or window).

    The error is that of the mean of the particles' values given their own
    errors (``sqrt(sum err^2) / n``), as the pooled histogram's error is
    conditional on the particles measured.
    """
    out = pooled.copy()
    for c in ("joint_intensity", "intensity_consistent"):  # true/false where a settled fit exists, else empty
        out[c] = out[c].astype(object)
    for i, row in out.iterrows():
        if row["level"] < 0:
            continue
        g = per[(per["level"] == row["level"]) & np.isfinite(per["shift_nm"])]
        if len(g) == 0 or not (g["shift_method"] == "settled_fit").any():
            continue
        n = len(g)
        out.loc[i, "shift_nm"] = float(g["shift_nm"].mean())
        out.loc[i, "shift_err_nm"] = float(np.sqrt(np.sum(g["shift_err_nm"] ** 2)) / n)
        fit = g[g["shift_method"] == "settled_fit"]
        out.loc[i, "shift_settled_nm"] = float(fit["shift_settled_nm"].mean())
        out.loc[i, "shift_settled_err_nm"] = float(
            np.sqrt(np.sum(fit["shift_settled_err_nm"] ** 2)) / len(fit)
        )
        for c in ("shift_tau_pol_s", "shift_tau_rec_s", "pol_settled_fraction", "rec_settled_fraction"):
            out.loc[i, c] = float(np.nanmedian(fit[c]))
        out.loc[i, "not_settled"] = bool(g["not_settled"].any())
        out.loc[i, "joint_intensity"] = bool(fit["joint_intensity"].eq(True).all())
        out.loc[i, "intensity_consistent"] = bool(fit["intensity_consistent"].eq(True).all())
        out.loc[i, "shift_error_inflation"] = float(np.nanmax(fit["shift_error_inflation"]))
        out.loc[i, "shift_method"] = "settled_fit"
    return out


def _num(v) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


def _flag(v) -> bool | None:
    """A true/false column value (numpy or Python bool), None where empty (no settled fit)."""
    return bool(v) if isinstance(v, (bool, np.bool_)) else None


def _note_levels(warnings: list[str], on: pd.DataFrame, mask: pd.Series, text: str) -> None:
    """Warn (``text`` with ``{fields}``: their fields) about the field-ON levels where ``mask`` holds."""
    if mask.any():
        _note(
            warnings,
            text.format(fields=", ".join(f"{e:g}" for e in on.loc[mask, "field_kV_per_cm"].round(1))),
        )


def spectra_summary_keys(
    table: pd.DataFrame,
    shifts: pd.DataFrame,
    calibration: Calibration,
    *,
    n_particles: int,
    has_field: bool,
    settle_fraction: float,
    warnings: list[str],
) -> dict[str, Any]:
    """summary.json keys of the spectral analysis.

    ``spectral_shift_nm`` (list of ``{"field_kV_per_cm", "shift_nm"}``, one
    per field level, from the pooled histogram fits) and
    ``spectral_shift_slope_nm_per_kV_per_cm`` (weighted line through the
    field-off point and those shifts) as in the spec; plus its standard
    error and intercept, the per-level details, the calibration and fit
    quality. Null with a warning when they cannot be given.
    """
    ok = table["fit_ok"].astype(bool)
    out: dict[str, Any] = {
        "spectral_shift_nm": None,
        "spectral_shift_slope_nm_per_kV_per_cm": None,
        "spectral_shift_slope_err_nm_per_kV_per_cm": None,
        "spectral_shift_intercept_nm": None,
        "spectral_shift_detail": [],
        "spectral_n_particles": int(n_particles),
        "spectral_n_frames": int(table["frame"].nunique()) if len(table) else 0,
        "spectral_fit_ok_fraction": float(ok.mean()) if len(table) else None,
        "spectral_peak_nm_median": float(np.nanmedian(table.loc[ok, "peak_nm"])) if ok.any() else None,
        "spectral_fwhm_nm_median": float(np.nanmedian(table.loc[ok, "fwhm_nm"])) if ok.any() else None,
        "spectral_settle_fraction": float(settle_fraction),
        "spectral_calibration": {
            k: v
            for k, v in calibration.to_dict().items()
            if k
            in (
                "dispersion_nm",
                "rms_nm",
                "order",
                "n_lines",
                "source",
                "pixel_range",
                "extrapolation_nm",
                "detail",
            )
        },
    }
    if has_field:
        out.update(_shift_summary(shifts, warnings))
    return out


def _shift_summary(shifts: pd.DataFrame, warnings: list[str]) -> dict[str, Any]:
    """The ``spectral_shift*`` keys from the pooled rows of ``spectral_shifts.csv`` (nulls with a warning)."""
    out: dict[str, Any] = {}
    pooled = shifts[shifts["particle_id"] == -1]
    on = pooled[pooled["level"] >= 0]
    if len(on) == 0:
        _note(warnings, "spectra: no settled field-ON frame with a good fit; spectral shifts are null")
        return out
    out["spectral_shift_nm"] = [
        {"field_kV_per_cm": float(r.field_kV_per_cm), "shift_nm": float(r.shift_nm)} for r in on.itertuples()
    ]
    out["spectral_shift_detail"] = [
        {
            "field_kV_per_cm": float(r.field_kV_per_cm),
            "shift_nm": float(r.shift_nm),
            "shift_err_nm": float(r.shift_err_nm),
            "sigma_nm": float(r.sigma_nm),
            "n_frames": int(r.n_frames),
            "method": r.method,
            "shift_window_nm": _num(getattr(r, "shift_window_nm", None)),
            "shift_method": getattr(r, "shift_method", "window"),
            "not_settled": bool(getattr(r, "not_settled", False)),
            "intensity_consistent": _flag(getattr(r, "intensity_consistent", None)),
        }
        for r in pooled.itertuples()
    ]
    none = pd.Series(False, index=on.index)
    _note_levels(
        warnings,
        on,
        on["intensity_consistent"].map(_flag).eq(False) if "intensity_consistent" in on.columns else none,
        "spectra: at {fields} kV/cm the settled shift of some particles rests on the peak alone (their "
        "intensity's kinetics differ from the peak's): its error may be too small where the peak alone "
        "leaves the shape of the response poorly determined (intensity_consistent false in "
        "spectral_shifts.csv)",
    )
    _note_levels(
        warnings,
        on,
        on["not_settled"].eq(True) if "not_settled" in on.columns else none,
        "spectra: the peak shift had not settled (< 95 %) by the end of the window at {fields} kV/cm: "
        "the settled shift is extrapolated by the whole-trace fit (the window value is "
        "shift_window_nm in spectral_shifts.csv)",
    )
    fit = shift_slope(pooled["field_kV_per_cm"], pooled["shift_nm"], pooled["shift_err_nm"])
    if math.isfinite(fit.slope_nm_per_kV_per_cm):
        out["spectral_shift_slope_nm_per_kV_per_cm"] = fit.slope_nm_per_kV_per_cm
        out["spectral_shift_slope_err_nm_per_kV_per_cm"] = fit.slope_err_nm_per_kV_per_cm
        out["spectral_shift_intercept_nm"] = fit.intercept_nm
    else:
        _note(warnings, "spectra: fewer than two field values with shifts; no slope")
    return out
