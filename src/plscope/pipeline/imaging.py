"""The imaging pipeline (``plscope run``, ``plscope reanalyze``): one run folder to results.

A run is split in two:

1. :func:`extract_imaging` reads the stack once (the expensive part): frame
   times, field cycles, particles, sizes and per-frame traces, an
   :class:`Extraction` that is stored in the output folder (Parquet/NumPy,
   exact).
2. :func:`analyze_extraction` computes kinetics, mobility and the summary
   from an :class:`Extraction` alone, so :func:`reanalyze` can redo it years
   later with other settings without reading the stack, and gives the same
   numbers bit for bit for the same settings.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import json
import logging
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._csv import CHUNK_ROWS as CSV_CHUNK_ROWS
from .._csv import write_csv, write_csv_blocks
from .._json import jsonable
from .._particle_traces import ParticleTraces
from ..columns import KINETICS_SPEC_COLUMNS
from ..config.experiment import field_warning
from ..errors import PlscopeError, RunFolderError, SyncError
from ..io import DaqLog, ExperimentConfig, Stack, load_experiment, open_stack, read_daq
from ..io.stack import AUTO_CHUNK_BYTES, stack_frame_times
from ..kinetics import PopulationKinetics, analyze_population, population_summary
from ..kinetics.mobility import kinetics_used
from ..report import write_report
from ..report.html import save_figure_files
from ..report.spectra import spectra_section_html
from ..results import (
    EXTRACTION_FILES,
    Extraction,
    RunResult,
    SpectraResult,
    StoredTable,
    stored_traces,
    table_columns,
)
from ..spectra.qc import with_spectral_qc
from ..sync import (
    FieldWiring,
    RecordTiming,
    camera_pulses,
    field_cycles,
    find_lost_frames,
    timing_from_daq,
    timing_from_frame_times,
)
from ..tracking import (
    centroid_shift,
    extract_run_traces,
    find_particles,
    link_particle_centroids,
    quality_flags,
    reference_image,
)
from ..tracking.quality import without_attrs
from .figure_workers import figure_mapper
from .memory import release_free_memory
from .output import AtomicOutputDir, check_not_input, write_json
from .parallel import particle_mapper
from .provenance import BackgroundRecords, input_files, provenance, stable_provenance
from .settings import AnalysisSettings
from .spectra import analyze_spectra, run_spectra, write_spectra_outputs

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------
# extraction
# --------------------------------------------------------------------------


def _timing(
    cfg: ExperimentConfig, stack: Stack, warnings: list[str], info: dict[str, Any]
) -> tuple[RecordTiming, DaqLog | None]:
    """Frame times and field cycles of the movie (DAQ log, else the stack's own timing), and the DAQ log."""
    n_frames = int(stack.data.shape[0])
    if cfg.daq is None:
        rate = cfg.movie.frame_rate_hz if cfg.movie else None
        t, how = stack_frame_times(stack, rate)
        warnings.append(f"no [daq]: frames timed by {how}")
        warnings.append("no [field]/[daq]: field quantities are null")
        return timing_from_frame_times(t), None
    wiring = FieldWiring.from_experiment(cfg)
    wanted = [cfg.daq.camera_ttl] + ([wiring.voltage] if wiring is not None else [])
    daq = read_daq(cfg.resolve(cfg.daq.path), channels=wanted, sample_rate_hz=cfg.daq.sample_rate_hz)
    warnings.extend(daq.warnings)
    source = f"{daq.path} channel '{cfg.daq.camera_ttl}'"
    pulses = camera_pulses(daq.time_s, daq.channel(cfg.daq.camera_ttl), cfg.daq, source, warnings, info)
    timing = timing_from_daq(
        daq,
        n_frames,
        camera_ttl=cfg.daq.camera_ttl,
        pulses=pulses,
        wiring=wiring,
        on_dropped=cfg.daq.dropped_frames,
        frame_numbers=getattr(stack, "frame_numbers", None),
        cycles="started",
    )
    # for the lost-frame check after the traces (popped before the summary)
    info["_pulse_mid_s"] = pulses["start_s"].to_numpy(float) + timing.exposure_s / 2
    info["_mapped_by_camera"] = getattr(stack, "frame_numbers", None) is not None
    info["n_dropped_frames"] = timing.n_dropped
    info["dropped_after_frames"] = timing.dropped_after
    warnings.extend(timing.warnings)
    if wiring is None:
        warnings.append("no [field]/[daq]: field quantities are null")
        return timing, daq
    source = f"{daq.path} channel '{wiring.voltage}'"
    high = field_warning(timing.peak_field_kV_per_cm, source)
    if high:
        warnings.append(high)
    warnings.extend(timing.field_warnings)
    if len(timing.cycles) == 0:
        warnings.append(f"{source}: no field-ON segment during the movie; field quantities are null")
    else:
        info["field_levels"] = timing.field_levels
    return timing, daq


def _exclusions(particles: pd.DataFrame, settings: AnalysisSettings) -> pd.Series:
    """Reason each particle is left out of the statistics ('' = kept)."""
    ex = settings.exclusion
    reasons = pd.Series([""] * len(particles), index=particles.index, dtype=object)

    def add(mask, why):
        mask = mask.fillna(False).astype(bool) if hasattr(mask, "fillna") else mask
        reasons[mask] = [f"{r};{why}" if r else why for r in reasons[mask]]

    if ex.exclude_border and "touches_border" in particles:
        add(particles["touches_border"], "touches_border")
    if ex.exclude_near_diffraction_limit and "near_diffraction_limit" in particles:
        add(particles["near_diffraction_limit"], "near_diffraction_limit")
    if ex.exclude_failed_size_fit and "size_fit_ok" in particles:
        add(~particles["size_fit_ok"].fillna(False).astype(bool), "size_fit_failed")
    if ex.exclude_poor_quality and "ok" in particles:
        add(~particles["ok"].fillna(True).astype(bool), "quality")
    return reasons


def _population_response(traces: pd.DataFrame, off: np.ndarray, trim: float = 0.125) -> np.ndarray:
    """Trimmed mean over particles of each trace divided by its median on field-off frames.

    The ``trim`` fraction of the lowest and of the highest particles is left
    out of each frame's mean: one particle blinking near a field edge would
    otherwise shift the population response by a whole 1/n_particles.
    """
    wide = traces.pivot_table(index="frame", columns="particle_id", values="intensity").sort_index()
    vals = wide.to_numpy(float)
    ref = np.nanmedian(vals[off[: vals.shape[0]]], axis=0) if off.any() else np.nanmedian(vals, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = vals / np.where(ref > 0, ref, np.nan)
    if not norm.shape[1]:
        return np.full(vals.shape[0], np.nan)
    s = np.sort(norm, axis=1)  # NaN last
    n = np.isfinite(s).sum(axis=1)
    k = np.floor(trim * n).astype(int)
    col = np.arange(s.shape[1])[None, :]
    use = (col >= k[:, None]) & (col < (n - k)[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(use, s, 0.0).sum(axis=1) / (n - 2 * k), np.nan)


def _warn_non_finite(traces: pd.DataFrame | ParticleTraces, movie: str, warnings: list[str]) -> None:
    """Flag trace samples made of non-finite pixels (a NaN block in a float movie)."""
    if "intensity" not in traces.columns:
        return
    blocks = traces.blocks(("intensity",)) if isinstance(traces, ParticleTraces) else [traces]
    n_bad, lo, hi = 0, None, None
    for block in blocks:
        bad = ~np.isfinite(block["intensity"].to_numpy(float))
        if bad.any():
            frames = block["frame"].to_numpy()[bad]
            n_bad += int(bad.sum())
            lo = int(frames.min()) if lo is None else min(lo, int(frames.min()))
            hi = int(frames.max()) if hi is None else max(hi, int(frames.max()))
    if n_bad:
        warnings.append(
            f"{movie}: {n_bad} trace sample(s) are not finite (NaN or infinite pixels in the movie, "
            f"frames {lo}-{hi}); numbers that use those frames are unreliable"
        )


def _check_lost_frames(cfg, daq, traces, frames, cycles, field_trace, exposure_s, warnings, info):
    """Frames lost by the acquisition while their TTL pulses were logged: found from the PL
    response at the field edges, then mapped (with a warning naming them) or refused."""
    mid = info.pop("_pulse_mid_s", None)
    by_camera = info.pop("_mapped_by_camera", False)
    n_frames = len(frames)
    if mid is None or by_camera or not len(cycles) or mid.size <= n_frames:
        return frames, cycles, field_trace
    if isinstance(traces, ParticleTraces):  # the columns read (only when frames may be lost)
        traces = traces.rows(0, traces.n_rows, ("frame", "particle_id", "intensity"))
    response = _population_response(
        without_attrs(traces), _field_off(frames["mid_time_s"].to_numpy(float), cycles)
    )
    edges = np.concatenate([cycles["on_start_s"].to_numpy(float), cycles["on_end_s"].to_numpy(float)])
    edges = edges[(edges > mid[0]) & (edges < mid[-1])]
    lost = find_lost_frames(response, mid, edges, max_lost=mid.size - n_frames, exposure_s=exposure_s)
    info["lost_frames_checked"] = bool(lost.checked)
    if not lost.message:
        return frames, cycles, field_trace
    source = f"{cfg.resolve(cfg.daq.path)} channel '{cfg.daq.camera_ttl}'"
    if not lost.lost_between:
        warnings.append(f"lost frames: {lost.message}")
        return frames, cycles, field_trace
    if cfg.daq.dropped_frames == "error":
        raise SyncError(source, f'{lost.message}; refused ([daq] dropped_frames = "error")')
    warnings.append(f"lost frames: {lost.message}")
    info["n_lost_frames"] = len(lost.lost_between)
    info["lost_frames_between_pulses"] = [list(map(int, r)) for r in lost.lost_between]
    new_mid = mid[lost.pulse_index]
    frames = frames.assign(time_s=new_mid - exposure_s / 2, mid_time_s=new_mid)
    wiring = FieldWiring.from_experiment(cfg)
    if wiring is None:
        return frames, cycles, field_trace
    field = field_cycles(daq, wiring, new_mid, exposure_s, which="started")
    cycles = _drop_uncertain_cycles(field.cycles, mid, lost.lost_between, warnings)
    if len(cycles) == 0:
        return frames, pd.DataFrame(), None
    return frames, cycles, field.trace


def _drop_uncertain_cycles(cycles: pd.DataFrame, mid: np.ndarray, lost_between, warnings: list[str]):
    """Leave out the cycles with a field edge inside a lost frame's interval (their timing may be off)."""
    if not len(cycles):
        return cycles
    bad = np.zeros(len(cycles), bool)
    for a, b in lost_between:
        lo, hi = float(mid[a]), float(mid[min(b, mid.size - 1)])
        for col in ("on_start_s", "on_end_s"):
            t = cycles[col].to_numpy(float)
            bad |= (t > lo) & (t <= hi)
    if bad.any():
        warnings.append(
            f"lost frames: {int(bad.sum())} field cycle(s) with an edge inside a lost frame's interval "
            f"(ON at {np.round(cycles.loc[bad, 'on_start_s'].to_numpy(float), 2).tolist()} s) left out of the "
            "kinetics: where the frame was lost is not known, so their frames may be mis-timed"
        )
    return cycles.loc[~bad].reset_index(drop=True)


def _particle_warnings(particles: pd.DataFrame) -> list[str]:
    """Warnings for an unreliable PSF sigma and for particles whose size fit failed."""
    out = []
    method = str(particles.attrs.get("psf_sigma_method", ""))
    if "rough" in method or "less reliable" in method:
        out.append(f"psf_sigma_nm: estimated from {method}; sizes are unreliable: set [movie] psf_sigma_nm")
    if "size_fallback" in particles.columns and particles["size_fallback"].any():
        ids = particles.loc[particles["size_fallback"].astype(bool), "particle_id"].tolist()
        out.append(
            f"size_nm: the size fit of {len(ids)} particle(s) failed or was absurd (particle_id "
            f"{ids[:10]}{' ...' if len(ids) > 10 else ''}); size not reported, aperture from the footprint"
        )
    if "possibly_merged" in particles.columns and particles["possibly_merged"].any():
        ids = particles.loc[particles["possibly_merged"].astype(bool), "particle_id"].tolist()
        out.append(
            f"size_nm: {len(ids)} particle(s) are elongated, possibly two touching particles segmented as "
            f"one (particle_id {ids[:10]}{' ...' if len(ids) > 10 else ''}); their sizes are unreliable and "
            "left out of the statistics"
        )
    return out


def extract_imaging(
    cfg: ExperimentConfig,
    settings: AnalysisSettings | None = None,
    *,
    progress: bool = False,
    scratch: str | os.PathLike | None = None,
) -> Extraction:
    """Read the stack and the DAQ log once: frames, cycles, particles, traces.

    ``scratch``: a file the traces may be filled into particle-major
    (:class:`~plscope._particle_traces.ParticleTraces`) rather than held as a
    table; ``Extraction.traces`` then holds it (read as the table when first
    used) and the quality flags read it a few particles at a time.

    Raises
    ------
    PlscopeError
        For bad input, naming the file and the problem.
    """
    settings = settings or AnalysisSettings()
    warnings: list[str] = list(cfg.warnings)
    stack, movie, pixel_size_nm = _open_movie(cfg, settings, warnings)
    n_frames = int(stack.data.shape[0])
    info: dict[str, Any] = {}
    timing, daq = _timing(cfg, stack, warnings, info)
    frames, exposure_s, cycles = timing.frames, timing.exposure_s, timing.cycles
    field_trace = timing.field_trace if len(cycles) else None

    ref = reference_image(stack.data, n_frames=settings.detection.reference_frames)
    particles, labels, psf_sigma_nm = _find_particles(
        ref, cfg.resolve(movie.path), movie.psf_sigma_nm, pixel_size_nm, settings, warnings
    )
    # Normalized traces only need a constant fraction of each particle's light:
    # a tight aperture (1.5 sigma of PSF tail) that follows the drift halves
    # the background noise of the full-light aperture.
    traces, drift = extract_run_traces(
        stack.data,
        particles,
        labels=labels,
        reference=ref,
        settings=settings.traces,
        progress=progress,
        scratch=scratch,
    )
    release_free_memory()  # the chunk buffers and the copies made while the traces table was built
    _warn_non_finite(traces, movie.path, warnings)
    frames, cycles, field_trace = _check_lost_frames(
        cfg, daq, traces, frames, cycles, field_trace, exposure_s, warnings, info
    )
    particles = _with_quality(particles, traces, frames, cycles, drift)
    particles["excluded"] = _exclusions(particles, settings)
    traces.attrs = {}
    release_free_memory()  # the per-particle copies of the quality flags
    meta = {
        "run": str(cfg.run_dir),
        "sample": cfg.sample.name,
        "temperature_K": cfg.sample.temperature_K,
        "n_frames": n_frames,
        "pixel_size_nm": float(pixel_size_nm),
        "psf_sigma_nm": float(psf_sigma_nm),
        "exposure_s": exposure_s,
        "frame_interval_s": float(np.median(np.diff(frames["time_s"]))) if n_frames > 1 else None,
        "movie_format": getattr(stack, "format", None),
        **info,
        "warnings": warnings,
    }
    return Extraction(
        meta=meta,
        frames=frames,
        particles=particles,
        traces=traces,
        cycles=cycles,
        reference_image=ref,
        field_trace=field_trace,
        drift=drift,
    )


def _open_movie(cfg: ExperimentConfig, settings: AnalysisSettings, warnings: list[str]):
    """``(stack, [movie] table, pixel size in nm)``: the movie opened lazily, its pixel size checked."""
    movie = cfg.movie
    if movie is None:
        raise RunFolderError(cfg.file, "imaging analysis needs a [movie] table")
    stack = open_stack(
        cfg.resolve(movie.path),
        chunk_frames=settings.traces.chunk_frames,
        max_chunk_bytes=AUTO_CHUNK_BYTES,  # 16 MiB: chunk buffers reused, not mapped anew
        channel=movie.channel,
        z=movie.z,
        position=movie.position,
    )
    warnings.extend(getattr(stack, "warnings", ()))
    pixel_size_nm = movie.pixel_size_nm or stack.pixel_size_nm
    if not pixel_size_nm:
        raise RunFolderError(
            cfg.file, "movie.pixel_size_nm is missing and the TIFF metadata has no pixel size"
        )
    logger.info(
        "movie %s: %d frames of %s, %.1f nm/px",
        movie.path,
        int(stack.data.shape[0]),
        stack.data.shape[1:],
        pixel_size_nm,
    )
    return stack, movie, pixel_size_nm


def _find_particles(ref, movie_file: Path, psf_sigma_nm, pixel_size_nm, settings, warnings: list[str]):
    """``(particles, labels, psf_sigma_nm)`` in the reference image; refused when there is none."""
    det = settings.detection
    try:
        particles, labels, psf_sigma_nm = find_particles(
            ref,
            pixel_size_nm=pixel_size_nm,
            psf_sigma_nm=psf_sigma_nm,
            detect_options=dict(
                threshold_sigma=det.threshold_sigma,
                min_area_px=det.min_area_px,
                exclude_border_px=det.exclude_border_px,
                split_touching=det.split_touching,
            ),
        )
    except PlscopeError as exc:
        if isinstance(exc, RunFolderError):
            raise
        raise RunFolderError(movie_file, str(exc)) from None
    warnings.extend(_particle_warnings(particles))
    if len(particles) == 0:
        raise RunFolderError(movie_file, "no particles found in the reference image")
    logger.info("%d particles; PSF sigma %.0f nm", len(particles), psf_sigma_nm)
    return particles, labels, psf_sigma_nm


def _field_off(t_mid: np.ndarray, cycles: pd.DataFrame) -> np.ndarray:
    """Frames whose mid-exposure lies outside every field-ON window."""
    off = np.ones(t_mid.size, bool)
    for c in cycles.itertuples() if len(cycles) else ():
        off &= ~((t_mid >= c.on_start_s) & (t_mid < c.on_end_s))
    return off


def _columns(table: pd.DataFrame, names: Sequence[str], *, keep_attrs: bool = False) -> pd.DataFrame:
    """The columns ``names`` of ``table`` that it has, as views (no data copied).

    The per-particle loops downstream (``groupby``) sort a copy of every column
    of the table they are given, and keep per-particle arrays that are views
    into it: handed only the columns they read, that copy is those columns
    (at 8000 frames x 200 particles 13 MB a column, against 115 MB for the
    whole traces table). ``keep_attrs`` keeps ``attrs`` (shallow).
    """
    out = without_attrs(table)[[c for c in names if c in table.columns]]
    out.attrs = dict(table.attrs) if keep_attrs else {}
    return out


def _with_quality(particles, traces, frames, cycles, drift) -> pd.DataFrame:
    """Particles with their quality flags (blinking, bleaching, saturation, SNR, identity; on field-off
    frames) and positions in the first frame (``x_px, y_px``; ``*_ref_px`` in the reference)."""
    t_mid = frames["mid_time_s"].to_numpy()
    off = _field_off(t_mid, cycles)
    if isinstance(traces, ParticleTraces):  # a few particles at a time
        tracks = link_particle_centroids(
            traces.blocks(("intensity", "x_px", "y_px", *sorted(traces.per_frame)))
        )
        quality = _block_quality(traces, particles, t_mid, tracks, np.flatnonzero(off))
    else:
        tracks = link_particle_centroids(traces)
        # the columns quality_flags reads, and its attrs (saturation level, masked annulus fractions)
        quality = quality_flags(
            _columns(traces, ("frame", "particle_id", "intensity", "peak_adu"), keep_attrs=True),
            particles,
            frame_time_s=t_mid,
            tracks=tracks,
            reference_frames=np.flatnonzero(off),
        )
    # one line for the run (the stored traces are flagged a block of particles at a time)
    logger.info("quality_flags: %d of %d particle(s) pass", int(quality["ok"].sum()), len(quality))
    particles = particles.merge(
        quality.drop(columns=["touches_border"], errors="ignore"),
        on="particle_id",
        how="left",
        suffixes=("", "_quality"),
    )
    # spec: x_px, y_px are positions in the first frame (the reference is a mean of the first frames)
    particles["x_ref_px"] = particles["x_px"]
    particles["y_ref_px"] = particles["y_px"]
    if drift is not None and len(drift):
        d0 = drift.sort_values("frame").iloc[0]
        particles["x_px"] = particles["x_ref_px"] + float(d0["drift_x_px"])
        particles["y_px"] = particles["y_ref_px"] + float(d0["drift_y_px"])
    return particles


# --------------------------------------------------------------------------
# analysis
# --------------------------------------------------------------------------


def _block_quality(traces: ParticleTraces, particles, t_mid, tracks, reference_frames) -> pd.DataFrame:
    """:func:`quality_flags` of a stored table, a few particles at a time (the same rows in order)."""
    parts = []
    names = [c for c in ("intensity", "peak_adu") if c in traces.columns]
    for block in traces.blocks(names):
        block.attrs = dict(traces.attrs)  # saturation level, masked annulus fractions
        parts.append(
            quality_flags(
                block, particles, frame_time_s=t_mid, tracks=tracks, reference_frames=reference_frames
            )
        )
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _kinetics_qc(population: dict, used: pd.DataFrame, settings: AnalysisSettings) -> dict:
    """The run-level QC block (computed once; report, terminal and batch index render it)."""
    from ..kinetics import KineticsSettings
    from ..kinetics.qc import kinetics_qc

    return kinetics_qc(
        population,
        used,
        kinetics_settings=settings.kinetics.to_dict(),
        defaults=KineticsSettings().to_dict(),
        exclusion=dataclasses.asdict(settings.exclusion),
    )


def _without_traces(population: PopulationKinetics) -> PopulationKinetics:
    """The population without every particle's copies of its whole trace (no longer read once it is
    made; :meth:`~plscope.kinetics.analysis.ParticleKinetics.without_trace`)."""
    particles = {pid: pk.without_trace() for pid, pk in population.particles.items()}
    return dataclasses.replace(population, particles=particles)


def _kinetics_table(kinetic_population: PopulationKinetics | None, particles: pd.DataFrame) -> pd.DataFrame:
    """``kinetics.csv``: the spec's columns first, sorted, with ``excluded`` and ``used``."""
    if kinetic_population is not None and len(kinetic_population.table):
        kinetics = kinetic_population.table
        lead = list(KINETICS_SPEC_COLUMNS)
        kinetics = kinetics[lead + [c for c in kinetics.columns if c not in lead]]
        kinetics = kinetics.sort_values(["particle_id", "field_kV_per_cm"]).reset_index(drop=True)
        excluded = particles.set_index("particle_id")["excluded"]
        kinetics["excluded"] = kinetics["particle_id"].map(excluded).fillna("")
    else:
        kinetics = pd.DataFrame(columns=[*KINETICS_SPEC_COLUMNS, "excluded"])
    # the one statement of which rows enter the statistics; the report draws from it
    kinetics["used"] = kinetics_used(kinetics) if len(kinetics) else pd.Series(dtype=bool)
    return kinetics


def _run_summary(
    meta: dict[str, Any], particles: pd.DataFrame, cycles: pd.DataFrame, *, n_excluded: int, exposure_s: float
) -> dict[str, Any]:
    """The run's own keys of summary.json (the population's follow)."""
    return {
        "schema": 1,
        "run": meta.get("run"),
        "sample": meta.get("sample"),
        "n_particles": int(len(particles)),
        "n_particles_excluded": n_excluded,
        "n_frames": int(meta["n_frames"]),
        "fields_kV_per_cm": sorted(float(x) for x in cycles["field_kV_per_cm"].unique())
        if len(cycles)
        else [],
        "temperature_K": float(meta["temperature_K"]),
        "pixel_size_nm": meta.get("pixel_size_nm"),
        "psf_sigma_nm": meta.get("psf_sigma_nm"),
        "frame_interval_s": meta.get("frame_interval_s"),
        "exposure_s": exposure_s,
        "n_cycles": int(len(cycles)),
        "n_dropped_frames": meta.get("n_dropped_frames", 0),
        "ttl_polarity": meta.get("ttl_polarity"),
        "ttl_polarity_source": meta.get("ttl_polarity_source"),
        "field_levels": meta.get("field_levels", []),
        "spectral_shift_nm": None,
        "spectral_shift_slope_nm_per_kV_per_cm": None,
    }


def analyze_extraction(
    ex: Extraction, settings: AnalysisSettings | None = None, *, by_particle: ParticleTraces | None = None
) -> RunResult:
    """Kinetics, mobility and the run summary from an :class:`Extraction`.

    Pure computation on the stored tables: the same extraction and settings
    give the same numbers, bit for bit. ``by_particle``: the traces' columns
    ``intensity, x_px, y_px`` particle-major in a scratch file (made by
    ``plscope run``): each particle's trace is read from it when a step needs
    it, rather than whole columns of the table held (the same numbers).
    """
    settings = settings or AnalysisSettings()
    meta = ex.meta
    warnings = list(meta.get("warnings", []))
    particles = ex.particles
    cycles = ex.cycles
    traces = stored_traces(ex)  # in memory, or stored (StoredTable): only the columns each step reads
    assert traces is not None  # an extraction always has its traces table
    t_mid = ex.frames["mid_time_s"].to_numpy(float)
    exposure_s = float(meta.get("exposure_s") or 0.0)

    curves: dict[tuple[int, float, str], pd.DataFrame] = {}
    kinetic_population = None
    if len(cycles):
        # all particles at once: the biexponential shape is pooled over the population; particles
        # with a non-empty 'excluded' are analysed but do not inform the pooled shape
        # what it reads: whole columns, or each particle's trace from the scratch file
        signal = (
            by_particle
            if by_particle is not None
            else table_columns(traces, ("particle_id", "frame", "intensity"))
        )
        n_particles = _n_particles(signal)
        with particle_mapper(settings.kinetics.workers, n_particles) as mapper:  # kinetics.workers
            kinetic_population = analyze_population(
                signal,
                t_mid,
                cycles,
                exposure_s=exposure_s,
                particles=particles,
                settings=settings.kinetics,
                mapper=mapper,
            )
        del signal
        kinetic_population = _without_traces(kinetic_population)
        curves = kinetic_population.curves
        release_free_memory()  # what the kinetics freed, before the summary and the centroid shift
    kinetics = _kinetics_table(kinetic_population, particles)
    used = kinetics[kinetics["excluded"] == ""] if len(kinetics) else kinetics
    n_excluded = int((particles["excluded"] != "").sum())
    if n_excluded:
        warnings.append(f"{n_excluded} particle(s) left out of the statistics (see particles.csv 'excluded')")
    temperature_K = float(meta["temperature_K"])
    population = population_summary(
        used,
        particles[particles["excluded"] == ""],
        temperature_K=temperature_K,
        n_bootstrap=settings.kinetics.n_bootstrap,
        seed=settings.kinetics.bootstrap_seed,
        population=kinetic_population,
    ).to_dict()
    warnings.extend(population.pop("warnings", []))
    qc = _kinetics_qc(population, used, settings)
    summary = _run_summary(meta, particles, cycles, n_excluded=n_excluded, exposure_s=exposure_s)
    for k, v in population.items():
        summary.setdefault(k, v)
    summary["qc"] = qc
    summary["analysis_settings"] = qc["settings"]
    summary["warnings"] = warnings
    shift = None
    if len(cycles) and "x_px" in traces.columns:
        shift = centroid_shift(
            by_particle.blocks(("x_px", "y_px"))  # a few particles at a time
            if by_particle is not None and {"x_px", "y_px"} <= set(by_particle.columns)
            else table_columns(traces, ("frame", "particle_id", "x_px", "y_px")),
            cycles,
            t_mid,
            exposure_s=exposure_s,
            pixel_size_nm=meta.get("pixel_size_nm"),
        )
    ft = (
        None
        if ex.field_trace is None
        else (ex.field_trace["time_s"].to_numpy(), ex.field_trace["field_kV_per_cm"].to_numpy())
    )
    return RunResult(
        summary=summary,
        particles=particles,
        kinetics=kinetics,
        traces=traces,  # as held: a stored table stays on disk
        reference_image=ex.reference_image,
        frame_time_s=t_mid,
        cycles=cycles,
        curves=curves,
        field_trace=ft,
        extraction=ex,
        settings=settings,
        centroid_shift=shift,
        population=kinetic_population,
        particle_traces=by_particle,
    )


def _n_particles(signal: Any) -> int:
    """Particles of the kinetics' input (a table, or a per-particle store)."""
    if isinstance(signal, ParticleTraces):
        return signal.n_particles
    return int(signal["particle_id"].nunique()) if "particle_id" in signal else 0


def analyze_imaging(
    run_dir: str | os.PathLike, settings: AnalysisSettings | None = None, *, progress: bool = False
) -> RunResult:
    """Analyse an imaging run folder in memory (nothing is written)."""
    cfg = load_experiment(run_dir)
    result = analyze_extraction(extract_imaging(cfg, settings, progress=progress), settings)
    result.config = cfg
    return result


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------


def _write_tables(result: RunResult, folder: Path) -> None:
    """The result tables (CSV, Parquet) of :func:`_write_results`."""
    # write_csv: the bytes of DataFrame.to_csv(index=False), faster (plscope._csv)
    write_csv(result.particles, folder / "particles.csv")
    write_csv(result.kinetics, folder / "kinetics.csv")
    result.kinetics.to_parquet(folder / "kinetics.parquet", index=False)
    # gzip header without a time stamp: the same input gives the same bytes
    # gzip level 1: 6x faster than the default 9 for ~12 % more bytes; the same CSV inside
    stored = stored_traces(result)
    # traces stored in this folder: traces.csv.gz was written with traces.parquet (_analyze_stored)
    if not (isinstance(stored, StoredTable) and stored.path.parent == folder.absolute()):
        write_csv(result.traces, folder / "traces.csv.gz", gzip_level=1)
    write_csv(result.cycles, folder / "cycles.csv")
    if result.centroid_shift is not None:
        write_csv(result.centroid_shift, folder / "centroid_shift.csv")
    if result.population is not None:  # switching efficiency of every particle and cycle (Fig. 1d-e)
        write_csv(result.population.se_cycles, folder / "switching_efficiency_cycles.csv")


def _write_results(result: RunResult, folder: Path, prov: dict[str, Any]) -> None:
    release_free_memory()  # before the report: what the summary and the centroid shift freed
    result.summary["provenance"] = stable_provenance(prov)  # timestamps: provenance.json only
    # cycle averages and their fits of every particle: what the report's gallery draws (made once)
    curves = result.curve_table()
    curves.to_parquet(folder / "curves.parquet", index=False)
    workers = getattr(getattr(result.settings, "kinetics", None), "workers", "auto")
    report = functools.partial(
        write_report,
        result,
        folder / "report.html",
        provenance=prov,
        figures_dir=folder / "figures",
        curves=curves,
    )
    with figure_mapper(len(result.particles), workers) as mapper:
        if mapper is None:
            _write_tables(result, folder)
            report()
        else:  # figures in worker processes; the tables are written here meanwhile
            with ThreadPoolExecutor(1, thread_name_prefix="plscope-tables") as pool:
                tables = pool.submit(_write_tables, result, folder)
                report(mapper=mapper)
                tables.result()
    write_json(folder / "provenance.json", prov)
    write_json(folder / "summary.json", result.summary)  # last: marks the folder complete


def run_imaging(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    settings: AnalysisSettings | None = None,
    progress: bool = False,
    command_line: Sequence[str] | None = None,
) -> RunResult | SpectraResult:
    """Analyse a run folder and write its results to ``out_dir`` atomically.

    Writes the spec's ``summary.json``, ``particles.csv``, ``kinetics.csv``,
    ``report.html``, plus ``provenance.json``, ``traces.csv.gz``,
    ``cycles.csv`` and the stored extraction (Parquet/NumPy) that
    :func:`reanalyze` works from. Nothing appears in ``out_dir`` unless the
    whole run succeeded.
    """
    settings = settings or AnalysisSettings()
    started = _dt.datetime.now(_dt.UTC)
    cfg = load_experiment(run_dir)
    if cfg.movie is None:  # a spectra-only run folder
        return run_spectra(run_dir, out_dir, progress=progress, command_line=command_line, settings=settings)
    inputs = [run_dir, *input_files(cfg)]
    with (
        AtomicOutputDir(out_dir, inputs=inputs) as tmp,  # fails early if out_dir cannot be written
        BackgroundRecords(input_files(cfg)) as records,  # input checksums, overlapping the analysis
    ):
        ex = extract_imaging(cfg, settings, progress=progress, scratch=tmp / SCRATCH_TRACES)
        result = _analyze_stored(ex, settings, tmp)
        try:
            result.config = cfg
            if cfg.spectra is not None:
                _add_spectra(result, cfg, tmp, progress=progress)
            prov = provenance(
                inputs=input_files(cfg),
                config=cfg.to_dict(),
                settings=settings.to_dict(),
                settings_digest=settings.digest(),
                started=started,
                command_line=command_line,
                records=records,
            )
            _write_results(result, tmp, prov)
        finally:  # the scratch file is not part of the results
            if result.particle_traces is not None:
                result.particle_traces.close()
                result.particle_traces = None
    _moved_traces(result, ex, Path(out_dir))
    return result


def _analyze_stored(ex: Extraction, settings: AnalysisSettings, folder: Path) -> RunResult:
    """:func:`analyze_extraction` of ``ex`` after storing it in ``folder``, without holding its traces.

    The extraction and ``traces.csv.gz`` are written first (the same files; the CSV in a thread
    while the Parquet files are written), then the traces are read back, column by column, where
    a step needs them (:class:`~plscope.results.StoredTable`): the whole table (115 MB at 8000
    frames x 200 particles) is not held through the kinetics and the report. Writing the CSV
    beside the kinetics instead kept the table (and the CSV's buffers) on top of their first pass:
    the run's peak at 8000 frames.
    With the traces filled particle-major into the folder's scratch file by the one pass
    (:class:`~plscope._particle_traces.ParticleTraces`), both files are written from it, a
    block of rows at a time, and the steps read each particle's trace from it.
    """
    held = stored_traces(ex)
    by_particle = held if isinstance(held, ParticleTraces) else None  # filled particle-major already
    csv = (
        functools.partial(write_csv_blocks, by_particle.row_blocks(CSV_CHUNK_ROWS))
        if by_particle is not None
        else functools.partial(write_csv, held)
    )
    with ThreadPoolExecutor(1, thread_name_prefix="plscope-traces-csv") as pool:
        written = pool.submit(csv, folder / "traces.csv.gz", gzip_level=1)
        ex.save(folder)
        written.result()
    if by_particle is None:  # what the kinetics, the centroid shift and the report read, particle by particle
        by_particle = ParticleTraces.build(held, ("intensity", "x_px", "y_px"), folder / SCRATCH_TRACES)
    del held
    ex.traces = StoredTable(folder / "traces.parquet")
    release_free_memory()  # the table, and the buffers of writing it (Arrow's pool, the thread's heap)
    try:
        return analyze_extraction(ex, settings, by_particle=by_particle)
    except BaseException:
        if by_particle is not None:
            by_particle.close()
        raise


def _moved_traces(result: RunResult, ex: Extraction, out_dir: Path) -> None:
    """Point traces stored in the staging folder at the results folder they were moved into."""
    for holder in (result, ex):
        traces = stored_traces(holder)
        if isinstance(traces, StoredTable):
            holder.traces = traces.moved_to(out_dir)


#: the scratch file of :class:`~plscope._particle_traces.ParticleTraces` in a staged output folder
#: (deleted before the folder is committed)
SCRATCH_TRACES = ".plscope-traces-by-particle.tmp"

#: files of the spectral analysis, carried over unchanged by :func:`reanalyze`
SPECTRA_FILES = ("spectra.csv", "spectral_shifts.csv", "calibration.json")


def _add_spectra(result: RunResult, cfg: ExperimentConfig, folder: Path, *, progress: bool) -> None:
    """Analyse ``[spectra]`` next to the imaging run: outputs, summary keys, report section."""
    spectral = analyze_spectra(cfg, progress=progress)
    result.spectra = spectral
    result.summary.update({k: v for k, v in spectral.summary.items() if k != "warnings"})
    result.summary["warnings"].extend(spectral.warnings)
    result.summary["qc"] = with_spectral_qc(result.summary.get("qc"), spectral.summary.get("spectral_qc"))
    write_spectra_outputs(spectral, folder)
    figures: dict = {}
    result.extra_sections.append(spectra_section_html(spectral, figures_sink=figures))
    save_figure_files(figures, folder / "figures")  # beside the imaging figures: PNG, SVG and PDF


# --------------------------------------------------------------------------
# re-analysis
# --------------------------------------------------------------------------


def _changes(old: Any, new: Any, prefix: str = "") -> dict[str, Any]:
    """Flat {dotted key: [old, new]} of what differs between two nested mappings."""
    out: dict[str, Any] = {}
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            out.update(_changes(old.get(k), new.get(k), f"{prefix}{k}."))
        return out
    if old != new:
        out[prefix.rstrip(".")] = [old, new]
    return out


def _read_stored_json(folder: Path, name: str) -> dict[str, Any]:
    """A JSON object written by plscope into an output folder (one line of error otherwise)."""
    path = folder / name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunFolderError(path, f"cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(data, dict):
        raise RunFolderError(
            path, f"expected a JSON object, found {type(data).__name__}; not plscope's output"
        )
    return data


def _refuse_symlinks(folder: Path) -> None:
    """Re-analysis reads (and copies) only real files: a symbolic link is refused, never followed."""
    for name in (*EXTRACTION_FILES, "summary.json", "provenance.json", *SPECTRA_FILES):
        if (folder / name).is_symlink():
            raise RunFolderError(
                folder / name, "is a symbolic link; plscope re-analyses only files it wrote (not followed)"
            )


def _stored_inputs(prov: dict[str, Any]) -> list[Path]:
    """The input files a results folder was made from (its provenance; their folders count as inputs)."""
    inputs = prov.get("inputs")
    return sorted(Path(f) for f in inputs) if isinstance(inputs, dict) else []


def stored_settings(out_dir: str | os.PathLike) -> AnalysisSettings:
    """The settings an output folder was last analysed with (its ``provenance.json``).

    Raises
    ------
    RunFolderError
        Not a plscope output folder, a symbolic link among its files, or an
        unreadable record (one line naming the file).
    """
    out_dir = Path(out_dir)
    if not (out_dir / "summary.json").is_file():
        raise RunFolderError(out_dir, "not a plscope output folder (no summary.json)")
    _refuse_symlinks(out_dir)
    stored = _read_stored_json(out_dir, "provenance.json").get("settings")
    if not stored:  # written before settings were recorded: they were the defaults
        return AnalysisSettings()
    return AnalysisSettings.from_dict(stored, source=out_dir / "provenance.json")


def reanalyze(
    out_dir: str | os.PathLike,
    settings: AnalysisSettings | None = None,
    *,
    command_line: Sequence[str] | None = None,
    to: str | os.PathLike | None = None,
) -> tuple[RunResult, dict[str, Any]]:
    """Recompute kinetics, summary and report of an output folder from its stored traces.

    The stack is not read. plscope's files in the folder are replaced
    atomically (files the user added are kept), or, with ``to``, a new
    output folder is written side by side and ``out_dir`` is only read. Its
    ``provenance.json`` records the previous and the new settings, and which
    summary numbers changed. Without ``settings`` the folder's own settings
    (its ``provenance.json``) are kept, never reset to the defaults.

    Returns
    -------
    result : RunResult
    changes : dict
        ``{"settings": {key: [old, new]}, "summary": {key: [old, new]}}``.
    """
    out_dir = Path(out_dir)
    dest = Path(to) if to is not None else out_dir
    settings = settings or stored_settings(out_dir)  # keep what the folder was last analysed with
    started = _dt.datetime.now(_dt.UTC)
    old_prov = _read_stored_json(out_dir, "provenance.json")
    old_summary = _read_stored_json(out_dir, "summary.json")
    # beside: never into (or around) the results folder read, nor the raw run folder it came from
    inputs = [out_dir, *_stored_inputs(old_prov)] if dest.resolve() != out_dir.resolve() else []
    check_not_input(dest, inputs)  # refused before any work
    ex = Extraction.load(out_dir)
    result = analyze_extraction(ex, settings)
    # spectra are not re-fitted (their frames are not stored): carry over their results
    spectral_keys = {k: v for k, v in old_summary.items() if k.startswith("spectral_")}
    result.summary.update(spectral_keys)
    if any(v is not None for v in spectral_keys.values()):
        result.summary["warnings"].append("re-analysis: spectral results carried over from the original run")
        result.summary["qc"] = with_spectral_qc(result.summary.get("qc"), spectral_keys.get("spectral_qc"))
    with AtomicOutputDir(dest, inputs=inputs) as tmp:
        ex.save(tmp)
        for name in SPECTRA_FILES:
            if (out_dir / name).is_file() and not (out_dir / name).is_symlink():
                shutil.copyfile(out_dir / name, tmp / name, follow_symlinks=False)
        prov = dict(old_prov)
        history = list(old_prov.get("reanalyses", []))
        summary_now = json.loads(json.dumps(jsonable(result.summary)))
        skip = {"provenance", "run"}
        changes = {
            "settings": _changes(old_prov.get("settings", {}), settings.to_dict()),
            "summary": _changes(
                {k: v for k, v in old_summary.items() if k not in skip},
                {k: v for k, v in summary_now.items() if k not in skip},
            ),
        }
        history.append(
            {
                "at_utc": started.isoformat(timespec="seconds"),
                "command_line": list(command_line) if command_line is not None else None,
                "previous_settings_digest": old_prov.get("settings_digest"),
                "settings_digest": settings.digest(),
                "changes": changes,
            }
        )
        prov.update(settings=settings.to_dict(), settings_digest=settings.digest(), reanalyses=history)
        _write_results(result, tmp, prov)
    return result, changes
