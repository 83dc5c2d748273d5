"""The spectral part of a run: ``[spectra]`` of experiment.toml to ``spectra.csv`` and summary keys.

:func:`analyze_spectra` wires the pure stages together:

1. calibration -- :func:`plscope.spectra.calibrate` on the lamp spectrum
   and ``lamp_lines_nm``, or the given ``dispersion_nm``;
2. extraction -- particle stripes along the slit
   (:func:`plscope.spectra.find_stripes`), background-subtracted spectra
   of every frame (:func:`plscope.spectra.extract_spectra_dask`);
3. fits -- a Lorentzian + linear baseline per frame and particle, in nm
   (:func:`plscope.spectra.fit_lorentzians_dask`, batched, dask chunks);
4. timing and field -- frames timed by the ``spectra.camera_ttl`` channel,
   labelled by the field segments of the DAQ voltage (:mod:`plscope.sync`);
5. shifts -- per-cycle field-off baselines, histograms with normal fits,
   the shift per field level and its slope (:mod:`plscope.spectra.shifts`).

:func:`run_spectra` writes a spectra-only run (no ``[movie]``) to an output
folder; :func:`write_spectra_outputs` writes the spectral files into the
output folder of a combined run. :func:`calibrate_command` is the work of
``plscope calibrate``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd

from .. import __version__, columns
from .._csv import write_csv
from .._progress import dask_progress
from ..columns import KINETICS_SPEC_COLUMNS
from ..config.experiment import field_warning
from ..errors import RunFolderError
from ..io import DaqLog, ExperimentConfig, Stack, load_experiment, open_stack, read_daq
from ..io.stack import AUTO_CHUNK_BYTES, stack_frame_times
from ..report.html import save_figure_files
from ..report.spectra import render_spectra_report
from ..results import SpectraResult
from ..spectra.analysis import (
    StripeGraph,
    is_track_readout,
    shift_table,
    spectra_summary_keys,
    spectra_table,
    stripe_graph,
)
from ..spectra.calibration import Calibration, CalibrationError, calibrate
from ..spectra.lamp import read_lamp, read_lines
from ..spectra.lorentz import fits_to_frame
from ..spectra.qc import spectra_qc, with_spectral_qc
from ..sync import FieldWiring, RecordTiming, camera_pulses, timing_from_daq, timing_from_frame_times
from .output import AtomicOutputDir, write_json
from .provenance import input_files, provenance, stable_provenance

logger = logging.getLogger(__name__)

__all__ = [
    "SPECTRA_COLUMNS",
    "SpectraResult",
    "analyze_spectra",
    "calibrate_command",
    "calibration_for",
    "run_spectra",
    "spectra_summary_keys",
    "write_spectra_outputs",
]

#: the spec's leading columns of spectra.csv (:data:`plscope.columns.SPECTRA_COLUMNS`, as a list)
SPECTRA_COLUMNS = list(columns.SPECTRA_COLUMNS)
#: summary keys of the spec filled by the spectral analysis
SUMMARY_KEYS = ("spectral_shift_nm", "spectral_shift_slope_nm_per_kV_per_cm")
#: default fraction of each ON/OFF interval left out as transient
SETTLE_FRACTION = 0.5


def _note(warnings: list[str], text: str) -> None:
    """Record a recoverable oddity found here (and log it; those of lower layers are logged there)."""
    warnings.append(text)
    logger.warning("%s", text)


# --------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------


def calibration_for(
    cfg: ExperimentConfig, *, guess: Sequence[float] | None = None, stack=None
) -> Calibration:
    """The calibration of ``[spectra]``.

    In order: the lamp against its lines (``lamp`` + ``lamp_lines_nm``), a
    ``calibration.json`` written by ``plscope calibrate`` (``calibration``),
    the given coefficients (``dispersion_nm``, pixels from
    ``dispersion_first_pixel``), else the wavelength axis stored in the
    spectra file (``stack.wavelength_nm``: SIF, SPE).

    Raises
    ------
    RunFolderError
        The lamp file cannot be read or calibrated (naming the lamp file),
        the calibration file is unusable (naming it), the given
        coefficients are unusable, or nothing gives a wavelength axis
        (naming experiment.toml).
    """
    spec = cfg.spectra
    assert spec is not None
    if spec.calibration:
        return _calibration_file(cfg.resolve(spec.calibration))
    if not (spec.lamp and spec.lamp_lines_nm) and not spec.dispersion_nm:
        axis = None if stack is None else getattr(stack, "wavelength_nm", None)
        if axis is None:
            raise RunFolderError(
                cfg.file,
                f"[spectra] gives no wavelength calibration (lamp + lamp_lines_nm, calibration or "
                f"dispersion_nm) and {spec.path} has no wavelength axis of its own",
            )
        try:
            return Calibration.from_axis(
                axis, detail=f"the wavelength axis stored in the {getattr(stack, 'format', '')} file"
            )
        except CalibrationError as exc:
            raise RunFolderError(cfg.resolve(spec.path), f"wavelength axis: {exc}") from None
    if spec.lamp and spec.lamp_lines_nm:
        lamp_path = cfg.resolve(spec.lamp)
        lamp = _read_lamp_any(lamp_path)
        try:
            cal = calibrate(lamp.x, lamp.y, spec.lamp_lines_nm, guess=guess)
        except CalibrationError as exc:
            raise RunFolderError(
                lamp_path, f"calibration against spectra.lamp_lines_nm in {cfg.file} failed: {exc}"
            ) from None
        if spec.dispersion_nm:
            cal = _with_warning(
                cal,
                "both lamp + lamp_lines_nm and dispersion_nm are given in [spectra]; "
                "the lamp calibration is used",
            )
        return cal
    try:
        return Calibration.from_coefficients(
            spec.dispersion_nm or (), first_pixel=spec.dispersion_first_pixel
        )
    except CalibrationError as exc:
        raise RunFolderError(cfg.file, f"spectra.dispersion_nm: {exc}") from None


def _read_lamp_any(path, **columns):
    """A lamp spectrum from a text table, or from a camera file (SIF, SPE, ND2, TIFF).

    A camera file's frames are summed over rows and frames into counts per
    column (pixel ``0 .. width - 1``).
    """
    from ..io.inspect import MOVIE_SUFFIXES
    from ..spectra.lamp import SpectrumTable

    name = os.fspath(path)
    if not name.lower().endswith(MOVIE_SUFFIXES):
        return read_lamp(path, **columns)
    stack = open_stack(name)
    counts = np.asarray(stack.data.sum(axis=(0, 1)).compute(), dtype=np.float64)
    return SpectrumTable(
        path=name,
        x=np.arange(counts.size, dtype=np.float64),
        y=counts,
        x_name="column",
        y_name=f"counts summed over {stack.shape[0]} frame(s) x {stack.shape[1]} row(s)",
        warnings=tuple(stack.warnings),
    )


def _calibration_file(path: Path) -> Calibration:
    """A ``calibration.json`` as ``plscope calibrate`` (or a run) wrote it."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RunFolderError(path, f"cannot be read: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunFolderError(path, f"not valid JSON: {exc}") from None
    try:
        cal = Calibration.from_dict(record)
    except CalibrationError as exc:
        raise RunFolderError(path, str(exc)) from None
    return dataclasses.replace(cal, detail=f"{Path(path).name} ({cal.source})")


def _with_warning(cal: Calibration, text: str) -> Calibration:
    return dataclasses.replace(cal, warnings=tuple(cal.warnings) + (text,))


#: key present in every calibration file plscope writes: ``calibrate --out`` replaces only such files
#: (a fixed value, not a random id, so that the same inputs give the same bytes)
CALIBRATION_KEY = "written_by"


def _check_calibration_target(out: Path, inputs: list) -> None:
    """Refuse to overwrite an input, a symbolic link or a file plscope did not write."""
    if not os.path.lexists(out):
        return
    if out.is_symlink():
        raise RunFolderError(out, "is a symbolic link; give a new file name for the calibration")
    for item in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(out, item):
                raise RunFolderError(out, "is an input of this command; give a new file name with --out")
    try:
        data = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        data = None
    if not (isinstance(data, dict) and data.get(CALIBRATION_KEY) == "plscope calibrate"):
        raise RunFolderError(
            out,
            "exists and is not a calibration file written by plscope; "
            "plscope never replaces files it did not write (give a new file name with --out)",
        )


def calibrate_command(
    lamp_path: str | os.PathLike,
    lines_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    guess: Sequence[float] | None = None,
    pixel_column: int | str | None = None,
    counts_column: int | str | None = None,
    lines_column: int | str | None = None,
    min_intensity: float | None = None,
    order: int | None = None,
    max_order: int = 3,
    min_snr: float = 8.0,
    saturation_counts: float | str | None = "auto",
) -> dict[str, Any]:
    """``plscope calibrate LAMP --lines LINES --out CALIB_JSON``: calibrate and write the JSON.

    Parameters
    ----------
    lamp_path : path-like
        Lamp spectrum (pixel, counts), see :func:`plscope.spectra.read_lamp`.
    lines_path : path-like
        Known lines, see :func:`plscope.spectra.read_lines`.
    out_path : path-like
        JSON file to write (atomically: a temporary file renamed into place).
    guess : sequence of float, optional
        Rough ``[c0, c1, ...]`` (needed for long line lists).
    pixel_column, counts_column, lines_column : int or str, optional
        Columns by 0-based index or name.
    min_intensity : float, optional
        Only lines at least this intense (lines file with an intensity column).
    order, max_order, min_snr, saturation_counts :
        See :func:`plscope.spectra.calibrate`.

    Returns
    -------
    dict
        What was written: ``dispersion_nm``, ``rms_nm``, ``order``,
        ``n_lines``, ``lines`` (per line: wavelength, pixel, fit, residual,
        used/saturated/blended/rejected), ``unmatched_px``, ``warnings``,
        ``lamp``, ``lines_file``, ``guess``, ``plscope_version``.

    Raises
    ------
    RunFolderError
        Unreadable inputs, a calibration that fails (naming the lamp file),
        or an output folder that does not exist / cannot be written.
    """
    out = Path(out_path)
    if out.exists() and out.is_dir():
        raise RunFolderError(out, "is a folder; give the JSON file to write")
    if not out.parent.is_dir():
        raise RunFolderError(out.parent, "output folder does not exist")
    _check_calibration_target(out, [lamp_path, lines_path])
    lamp = _read_lamp_any(lamp_path, pixel_column=pixel_column, counts_column=counts_column)
    lines = read_lines(lines_path, column=lines_column, min_intensity=min_intensity)
    try:
        cal = calibrate(
            lamp.x,
            lamp.y,
            lines.wavelength_nm,
            guess=guess,
            order=order,
            max_order=max_order,
            min_snr=min_snr,
            saturation_counts=saturation_counts,
        )
    except CalibrationError as exc:
        raise RunFolderError(
            lamp_path, f"calibration against {os.fspath(lines_path)} failed: {exc}"
        ) from None
    record = cal.to_dict()
    record["warnings"] = list(lamp.warnings) + record["warnings"]
    record.update(
        {
            "lamp": os.fspath(lamp_path),
            "lamp_columns": [lamp.x_name, lamp.y_name],
            "lines_file": os.fspath(lines_path),
            "n_known_lines": int(lines.wavelength_nm.size),
            "guess": None if guess is None else [float(g) for g in guess],
            "plscope_version": __version__,
            CALIBRATION_KEY: "plscope calibrate",
        }
    )
    try:
        write_json(out, record)
    except OSError as exc:
        raise RunFolderError(out, f"cannot be written: {exc.strerror or exc}") from None
    return record


# --------------------------------------------------------------------------
# timing and field
# --------------------------------------------------------------------------


def _timing(cfg: ExperimentConfig, daq: DaqLog | None, stack: Stack, warnings: list[str]) -> RecordTiming:
    """Frame times and field of the spectra: the ``spectra.camera_ttl`` channel and the DAQ voltage."""
    assert cfg.spectra is not None  # called for runs with [spectra] only
    n_frames = int(stack.data.shape[0])
    if cfg.daq is None:
        rate = cfg.spectra.frame_rate_hz or (cfg.movie.frame_rate_hz if cfg.movie is not None else None)
        t, how = stack_frame_times(stack, rate)
        _note(warnings, f"no [daq]: spectra timed by {how}")
        _note(warnings, "no [field]/[daq]: spectral shifts against the field are null")
        return timing_from_frame_times(t)
    if daq is None:
        daq = read_daq(cfg.resolve(cfg.daq.path), sample_rate_hz=cfg.daq.sample_rate_hz)
        warnings.extend(daq.warnings)
    channel = cfg.spectra.camera_ttl
    notes: list[str] = []
    pulses = camera_pulses(
        daq.time_s, daq.channel(channel), cfg.daq, f"{daq.path} channel '{channel}'", notes, {}
    )
    warnings.extend(f"spectra: {w}" for w in notes)
    wiring = FieldWiring.from_experiment(cfg)
    timing = timing_from_daq(
        daq,
        n_frames,
        camera_ttl=channel,
        pulses=pulses,
        wiring=wiring,
        on_dropped=cfg.daq.dropped_frames,
        cycles="overlapping",
    )
    warnings.extend(f"spectra: {w}" for w in timing.warnings)
    if wiring is None:
        _note(warnings, "no [field]/[daq]: spectral shifts against the field are null")
        return timing
    source = f"{daq.path} channel '{wiring.voltage}'"
    high = field_warning(timing.peak_field_kV_per_cm, source)
    if high:
        warnings.append(high)
    warnings.extend(f"spectra: {w}" for w in timing.field_warnings)
    if len(timing.cycles) == 0:
        _note(warnings, f"{source}: no field-ON segment during the spectra; spectral shifts are null")
    return timing


def _wavelengths(
    cfg: ExperimentConfig,
    stack: Stack,
    *,
    guess: Sequence[float] | None,
    fit_range_nm: tuple[float, float] | None,
    warnings: list[str],
) -> tuple[Calibration, np.ndarray, slice]:
    """Calibration, wavelength of every pixel and the pixels fitted, checked against the spectra."""
    assert cfg.spectra is not None  # called for runs with [spectra] only
    n_px = int(stack.data.shape[2])
    cal = calibration_for(cfg, guess=guess, stack=stack)
    for w in cal.warnings:
        _note(warnings, f"calibration: {w}")
    if (
        cal.source != "lamp"  # a lamp calibration says where it extrapolates in its own warnings
        and cal.pixel_range is not None
        and (cal.pixel_range[1] < n_px - 1 - 1e-9 or cal.pixel_range[0] > 0)
    ):
        _note(
            warnings,
            f"calibration: valid for pixels {cal.pixel_range[0]:g}-{cal.pixel_range[1]:g} but "
            f"the spectra have {n_px} columns; extrapolated beyond",
        )
    if not cal.check_monotonic(n_px):
        raise RunFolderError(
            cfg.file,
            f"the dispersion {list(cal.dispersion_nm)} is not monotonic over the "
            f"{n_px} columns of {cfg.resolve(cfg.spectra.path)}",
        )
    wavelength = cal.wavelength_nm(np.arange(n_px))
    if fit_range_nm is None:
        return cal, wavelength, slice(0, n_px)
    lo, hi = sorted(float(v) for v in fit_range_nm)
    idx = np.flatnonzero((wavelength >= lo) & (wavelength <= hi))
    if idx.size < 10:
        raise RunFolderError(
            cfg.file,
            f"fit range {lo:g}-{hi:g} nm holds {int(idx.size)} pixels of "
            f"{wavelength.min():.1f}-{wavelength.max():.1f} nm",
        )
    return cal, wavelength, slice(int(idx[0]), int(idx[-1]) + 1)


# --------------------------------------------------------------------------
# analysis
# --------------------------------------------------------------------------


def _open_spectra(cfg: ExperimentConfig, chunk_frames: int, warnings: list[str]) -> tuple[Stack, list[str]]:
    """The spectral frames (lazily) and the input files they and their calibration come from."""
    assert cfg.spectra is not None
    stack = open_stack(
        cfg.resolve(cfg.spectra.path),
        chunk_frames=chunk_frames,
        max_chunk_bytes=AUTO_CHUNK_BYTES,  # 16 MiB: chunk buffers reused, not mapped anew
        channel=cfg.spectra.channel,
        z=cfg.spectra.z,
        position=cfg.spectra.position,
    )
    warnings.extend(stack.warnings)
    inputs = [str(p) for p in stack.paths]
    if cfg.spectra.lamp and cfg.spectra.lamp_lines_nm:
        inputs.append(str(cfg.resolve(cfg.spectra.lamp)))
    if cfg.spectra.calibration:
        inputs.append(str(cfg.resolve(cfg.spectra.calibration)))
    return stack, inputs


def _stripes_and_fits(
    stack: Stack,
    wavelength: np.ndarray,
    fit_slice: slice,
    *,
    spec_path: Path,
    baseline: str,
    progress: bool,
    warnings: list[str],
) -> tuple[StripeGraph, np.ndarray, pd.DataFrame]:
    """Particles along the slit, their spectra and Lorentzian fits (the heavy, dask-computed part).

    Returns the stripe graph, the spectra ``(n_frames, n_particles, n_pixels)`` and the fits,
    frame-major (row = frame * n_particles + particle).
    """
    n_rows = int(stack.data.shape[1])
    graph = stripe_graph(stack.data, wavelength, fit_slice=fit_slice, baseline=baseline)
    stripes = graph.stripes
    tracks = is_track_readout(stack.data)
    if tracks:
        _note(
            warnings,
            f"spectra: frames of {n_rows} row(s) are track read-outs (full vertical binning or tracks): "
            "one spectrum per track, not background-subtracted",
        )
    if len(stripes) == 0:
        raise RunFolderError(spec_path, "no particle stripe found along the slit (rows) of the spectra")
    missing_bg = stripes.loc[stripes["n_background_rows"] == 0, "particle_id"].tolist()
    if missing_bg and not tracks:
        _note(
            warnings,
            f"spectra: no background rows beside particle(s) {missing_bg}; not background-subtracted",
        )
    with dask_progress("spectra", enabled=progress):
        spectra, fits = dask.compute(graph.spectra, graph.fits)
    fit_tab = fits_to_frame(fits)  # frame-major: row = frame * n_p + particle
    logger.info(
        "%d particle(s) along the slit, %d Lorentzian fits, %.1f %% ok",
        len(stripes),
        len(fit_tab),
        100.0 * fit_tab["fit_ok"].mean(),
    )
    return graph, spectra, fit_tab


def _spectral_tables(
    fit_tab: pd.DataFrame,
    spectra: np.ndarray,
    stripes: pd.DataFrame,
    timing: RecordTiming,
    cal: Calibration,
    *,
    settle_fraction: float,
    warnings: list[str],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """``spectra.csv``, ``spectral_shifts.csv`` and the spectral summary keys from the fits and timing."""
    table = spectra_table(
        fit_tab,
        spectra,
        stripes["particle_id"].to_numpy(np.int64),
        start_s=timing.start_s,
        mid_s=timing.mid_s,
        exposure_s=timing.exposure_s,
        segments=timing.segments,
        cycles=timing.cycles,
        settle_fraction=settle_fraction,
    )
    n_bad = int((~table["fit_ok"]).sum())
    if n_bad:
        _note(warnings, f"spectra: {n_bad} of {len(table)} Lorentzian fits failed (flagged fit_ok = false)")
    has_field = timing.segments is not None and len(timing.cycles) > 0
    shifts = shift_table(table, has_field=has_field, cycles=timing.cycles, exposure_s=timing.exposure_s)
    summary = spectra_summary_keys(
        table,
        shifts,
        cal,
        n_particles=len(stripes),
        has_field=has_field,
        settle_fraction=settle_fraction,
        warnings=warnings,
    )
    summary["spectral_qc"] = spectra_qc(summary, has_field=has_field)
    return table, shifts, summary


def analyze_spectra(
    cfg: ExperimentConfig | str | os.PathLike,
    *,
    daq=None,
    progress: bool = False,
    settle_fraction: float = SETTLE_FRACTION,
    baseline: str = "linear",
    fit_range_nm: tuple[float, float] | None = None,
    guess: Sequence[float] | None = None,
    chunk_frames: int = 128,
) -> SpectraResult:
    """Analyse the ``[spectra]`` of a run (nothing is written).

    Parameters
    ----------
    cfg : ExperimentConfig or path-like
        A loaded experiment (or its run folder) with a ``[spectra]`` table.
    daq : plscope.io.DaqLog, optional
        The run's DAQ log if already read (it is read otherwise).
    progress : bool
        Progress bar over frame chunks.
    settle_fraction : float
        Fraction of each ON and OFF interval left out of the baselines and
        histograms (polarization / recovery transients).
    baseline : {"linear", "constant"}
        Baseline under the Lorentzian.
    fit_range_nm : (float, float), optional
        Fit only this wavelength window (default: the whole detector).
    guess : sequence of float, optional
        Rough dispersion for identifying the lamp lines (long line lists).
    chunk_frames : int
        Frames per dask chunk.

    Returns
    -------
    SpectraResult

    Raises
    ------
    PlscopeError
        Bad input, naming the file and the problem (no stripe along the
        slit, a calibration that fails, frames and TTL that disagree, ...).
    """
    if not isinstance(cfg, ExperimentConfig):
        cfg = load_experiment(cfg)
    if cfg.spectra is None:
        raise RunFolderError(cfg.file, "spectral analysis needs a [spectra] table")
    warnings: list[str] = []
    spec_path = cfg.resolve(cfg.spectra.path)
    stack, inputs = _open_spectra(cfg, chunk_frames, warnings)
    n_frames, n_rows, n_px = (int(s) for s in stack.data.shape)
    cal, wavelength, fit_slice = _wavelengths(
        cfg, stack, guess=guess, fit_range_nm=fit_range_nm, warnings=warnings
    )
    logger.info(
        "spectra %s: %d frames of %d slit rows x %d pixels, %.2f-%.2f nm",
        spec_path,
        n_frames,
        n_rows,
        n_px,
        wavelength[0],
        wavelength[-1],
    )
    # timing and field first: a sync problem fails before the heavy work
    timing = _timing(cfg, daq, stack, warnings)
    if cfg.daq is not None:
        inputs.append(str(cfg.resolve(cfg.daq.path)))

    graph, spectra, fit_tab = _stripes_and_fits(
        stack,
        wavelength,
        fit_slice,
        spec_path=spec_path,
        baseline=baseline,
        progress=progress,
        warnings=warnings,
    )
    table, shifts, summary = _spectral_tables(
        fit_tab, spectra, graph.stripes, timing, cal, settle_fraction=settle_fraction, warnings=warnings
    )
    trace = timing.field_trace
    return SpectraResult(
        table=table,
        shifts=shifts,
        summary=summary,
        calibration=cal,
        stripes=graph.stripes,
        wavelength_nm=wavelength,
        spectra=spectra.astype(np.float32),
        frame_time_s=timing.mid_s,
        cycles=timing.cycles,
        field_trace=None
        if trace is None
        else (trace["time_s"].to_numpy(), trace["field_kV_per_cm"].to_numpy()),
        reference_image=graph.reference_image,
        warnings=warnings,
        config=cfg,
        input_files=inputs,
    )


# --------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------


def write_spectra_outputs(result: SpectraResult, out_dir: str | os.PathLike) -> list[str]:
    """Write ``spectra.csv``, ``spectral_shifts.csv`` and ``calibration.json`` into ``out_dir``.

    Returns the names written. (summary keys and the report are the caller's.)
    """
    out = Path(out_dir)
    write_csv(result.table, out / "spectra.csv")  # the bytes of to_csv(index=False), faster
    write_csv(result.shifts, out / "spectral_shifts.csv")
    write_json(out / "calibration.json", result.calibration.to_dict())
    return ["spectra.csv", "spectral_shifts.csv", "calibration.json"]


_SPEC_SUMMARY_NULLS = (
    "ion_mobility_cm2_per_Vs",
    "ion_mobility_std_cm2_per_Vs",
    "ion_mobility_fit_cm2_per_Vs",
    "diffusion_coefficient_cm2_per_s",
    "tau_size_slope_s_per_nm",
)


def run_spectra(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    progress: bool = False,
    command_line: Sequence[str] | None = None,
    settings=None,
    **options,
) -> SpectraResult:
    """A spectra-only run (``[spectra]`` without ``[movie]``) to ``out_dir``, atomically.

    Writes ``summary.json`` (every key of the spec; the imaging ones null
    with a warning), ``spectra.csv``, ``spectral_shifts.csv``,
    ``calibration.json``, ``particles.csv`` (the particles along the slit:
    ``y_px`` is the slit row, ``x_px`` and ``size_nm`` empty), an empty
    ``kinetics.csv`` with the spec's header, and ``report.html``.

    ``options`` go to :func:`analyze_spectra`.
    """
    started = _dt.datetime.now(_dt.UTC)
    with AtomicOutputDir(out_dir, inputs=[run_dir]) as tmp:
        cfg = load_experiment(run_dir)
        result = analyze_spectra(cfg, progress=progress, **options)
        s = result.summary
        levels = sorted({float(e["field_kV_per_cm"]) for e in (s.get("spectral_shift_nm") or [])})
        summary: dict[str, Any] = {
            "schema": 1,
            "run": str(Path(run_dir)),
            "sample": cfg.sample.name,
            "n_particles": s["spectral_n_particles"],
            "n_frames": s["spectral_n_frames"],
            "fields_kV_per_cm": levels,
            "temperature_K": cfg.sample.temperature_K,
        }
        summary.update({k: None for k in _SPEC_SUMMARY_NULLS})
        summary.update(s)
        summary["warnings"] = (
            list(cfg.warnings)
            + list(result.warnings)
            + ["no [movie]: particle sizes, kinetics, ion mobility and diffusion coefficient are null"]
        )
        prov = provenance(
            inputs=input_files(cfg),
            config=cfg.to_dict(),
            started=started,
            command_line=command_line,
            settings=None if settings is None else settings.to_dict(),
            settings_digest=None if settings is None else settings.digest(),
        )
        summary["provenance"] = stable_provenance(prov)  # timestamps: provenance.json only
        summary["qc"] = with_spectral_qc(None, s.get("spectral_qc"))  # the run's verdict: the spectral one
        result.summary = summary
        write_spectra_outputs(result, tmp)
        st = result.stripes
        pd.DataFrame(
            {
                "particle_id": st["particle_id"],
                "x_px": np.nan,
                "y_px": st["row"],
                "size_nm": np.nan,
                "slit_row": st["row"],
                "fwhm_rows": st["fwhm_rows"],
                "snr": st["snr"],
            }
        ).to_csv(tmp / "particles.csv", index=False)
        pd.DataFrame(columns=list(KINETICS_SPEC_COLUMNS)).to_csv(tmp / "kinetics.csv", index=False)
        figures: dict = {}
        report = render_spectra_report(result, provenance=prov, figures_sink=figures)
        save_figure_files(figures, tmp / "figures")  # every figure also as PNG, SVG and PDF
        (tmp / "report.html").write_text(report, encoding="utf-8")
        write_json(tmp / "provenance.json", prov)
        write_json(tmp / "summary.json", summary)
    return result
