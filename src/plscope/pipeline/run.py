"""``plscope run``: one imaging run folder to summary, tables and report."""

from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import RunFolderError
from ..io import ExperimentConfig, load_experiment
from .output import AtomicOutputDir, write_json
from .provenance import provenance

logger = logging.getLogger(__name__)

#: column order of the spec's tables (more columns follow)
PARTICLE_COLUMNS = ["particle_id", "x_px", "y_px", "size_nm"]
KINETICS_COLUMNS = ["particle_id", "field_kV_per_cm", "tau_pol_s", "tau_rec_s",
                    "switching_efficiency", "velocity_nm_per_s", "mobility_cm2_per_Vs", "fit_ok"]


@dataclass
class RunResult:
    """Everything one imaging run produced (in memory)."""

    summary: dict[str, Any]
    particles: pd.DataFrame
    kinetics: pd.DataFrame
    traces: pd.DataFrame
    reference_image: np.ndarray
    frame_time_s: np.ndarray
    cycles: pd.DataFrame
    curves: dict[tuple[int, float, str], pd.DataFrame] = field(default_factory=dict)
    field_trace: tuple[np.ndarray, np.ndarray] | None = None
    config: ExperimentConfig | None = None


def _input_files(cfg: ExperimentConfig, movie_paths: Sequence[str]) -> list[Path]:
    files = [cfg.file, *map(Path, movie_paths)]
    if cfg.daq is not None:
        files.append(cfg.resolve(cfg.daq.path))
    return files


def _frame_times(cfg: ExperimentConfig, n_frames: int, warnings: list[str]):
    """Frame times (mid-exposure), exposure, the DAQ log (or None)."""
    from ..io.daq import read_daq
    from ..sync import frame_timing, ttl_pulses

    if cfg.daq is None:
        rate = cfg.movie.frame_rate_hz if cfg.movie else None
        if rate:
            warnings.append("no [daq]: frames timed by movie.frame_rate_hz")
            return np.arange(n_frames) / rate, 0.0, None
        warnings.append("no [daq] and no movie.frame_rate_hz: time is the frame index")
        return np.arange(n_frames, dtype=float), 0.0, None
    daq_path = cfg.resolve(cfg.daq.path)
    daq = read_daq(daq_path)
    warnings.extend(daq.warnings)
    source = f"{daq_path} channel '{cfg.daq.camera_ttl}'"
    pulses = ttl_pulses(daq.time_s, daq.channel(cfg.daq.camera_ttl), source=source)
    timing = frame_timing(pulses, n_frames, source=source)
    warnings.extend(timing.warnings)
    return np.asarray(timing.mid_time_s, float), float(timing.exposure_s), daq


def _cycles(cfg: ExperimentConfig, daq, t_frames: np.ndarray, exposure_s: float,
            warnings: list[str]) -> tuple[pd.DataFrame, tuple[np.ndarray, np.ndarray] | None]:
    from ..sync import cycles_from_segments, field_kV_per_cm, field_segments

    if daq is None or cfg.field is None:
        warnings.append("no [field]/[daq]: field quantities are null")
        return pd.DataFrame(), None
    voltage = daq.channel(cfg.daq.voltage)
    source = f"{cfg.resolve(cfg.daq.path)} channel '{cfg.daq.voltage}'"
    segments = field_segments(daq.time_s, voltage, amplifier_gain=cfg.field.amplifier_gain,
                              electrode_gap_um=cfg.field.electrode_gap_um, source=source)
    t_end = float(t_frames[-1] + exposure_s / 2)
    t_start = float(t_frames[0] - exposure_s / 2)
    if len(segments):
        segments = segments[(segments["start_s"] > t_start) & (segments["start_s"] < t_end)]
    if len(segments) == 0:
        warnings.append(f"{source}: no field-ON segment during the movie; field quantities are null")
        return pd.DataFrame(), None
    cycles = cycles_from_segments(segments.reset_index(drop=True), record_end_s=t_end)
    # the field trace over the movie, decimated for the report
    sel = (daq.time_s >= t_start) & (daq.time_s <= t_end)
    step = max(1, int(sel.sum() // 20000))
    e = field_kV_per_cm(voltage[sel][::step], amplifier_gain=cfg.field.amplifier_gain,
                        electrode_gap_um=cfg.field.electrode_gap_um)
    return cycles, (daq.time_s[sel][::step], e)


def analyze_imaging(run_dir: str | os.PathLike, *, progress: bool = False) -> RunResult:
    """Analyse an imaging run folder in memory (nothing is written).

    Parameters
    ----------
    run_dir : path-like
        Folder holding experiment.toml, the movie and the DAQ log.
    progress : bool
        Show progress bars for the long stages.

    Returns
    -------
    RunResult

    Raises
    ------
    PlscopeError
        For bad input, naming the file and the problem.
    """
    from ..io.stack import open_stack
    from ..kinetics import analyze_particle, summarize_population
    from ..tracking import detect_particles, extract_traces, measure_sizes, reference_image

    cfg = load_experiment(run_dir)
    warnings: list[str] = list(cfg.warnings)
    if cfg.movie is None:
        raise RunFolderError(cfg.file, "imaging analysis needs a [movie] table")
    stack = open_stack(cfg.resolve(cfg.movie.path))
    n_frames = int(stack.data.shape[0])
    pixel_size_nm = cfg.movie.pixel_size_nm or stack.pixel_size_nm
    if not pixel_size_nm:
        raise RunFolderError(cfg.file, "movie.pixel_size_nm is missing and the TIFF metadata has no pixel size")
    logger.info("movie %s: %d frames of %s, %.1f nm/px", cfg.movie.path, n_frames,
                stack.data.shape[1:], pixel_size_nm)

    t_frames, exposure_s, daq = _frame_times(cfg, n_frames, warnings)
    cycles, field_trace = _cycles(cfg, daq, t_frames, exposure_s, warnings)

    ref = reference_image(stack.data)
    detected, labels = detect_particles(ref)
    if len(detected) == 0:
        raise RunFolderError(cfg.resolve(cfg.movie.path), "no particles found in the reference image")
    sizes, psf_sigma_nm = measure_sizes(ref, detected, pixel_size_nm=pixel_size_nm,
                                        psf_sigma_nm=cfg.movie.psf_sigma_nm, labels=labels)
    particles = detected.drop(columns=[c for c in ("x_px", "y_px") if c in sizes.columns],
                              errors="ignore").merge(sizes, on="particle_id")
    particles = particles[PARTICLE_COLUMNS + [c for c in particles.columns if c not in PARTICLE_COLUMNS]]
    logger.info("%d particles; PSF sigma %.0f nm", len(particles), psf_sigma_nm)
    # Normalized traces only need a constant fraction of each particle's light:
    # a tight aperture (1.5 sigma of PSF tail) that follows the drift halves
    # the background noise of the full-light aperture.
    traces = extract_traces(stack.data, particles, labels=labels, progress=progress, drift="correct",
                            reference=ref, psf_margin_sigma=1.5, drift_margin_px=0.5)

    tables: list[pd.DataFrame] = []
    curves: dict[tuple[int, float, str], pd.DataFrame] = {}
    if len(cycles):
        size_by_id = particles.set_index("particle_id")["size_nm"]
        for pid, tr in traces.groupby("particle_id", sort=True):
            tr = tr.sort_values("frame")
            res = analyze_particle(t_frames[tr["frame"].to_numpy()], tr["intensity"].to_numpy(float),
                                   cycles, exposure_s=exposure_s, particle_id=int(pid),
                                   size_nm=float(size_by_id[pid]))
            tables.append(res.table)
            for key, df in res.curves.items():
                curves[(int(pid), *key)] = df
    if tables:
        kinetics = pd.concat(tables, ignore_index=True)
        kinetics = kinetics[KINETICS_COLUMNS + [c for c in kinetics.columns if c not in KINETICS_COLUMNS]]
        kinetics = kinetics.sort_values(["particle_id", "field_kV_per_cm"]).reset_index(drop=True)
    else:
        kinetics = pd.DataFrame(columns=KINETICS_COLUMNS)

    temperature_K = cfg.sample.temperature_K
    population = summarize_population(kinetics, particles, temperature_K=temperature_K)
    warnings.extend(population.pop("warnings", []))
    summary: dict[str, Any] = {
        "schema": 1,
        "run": str(Path(run_dir)),
        "sample": cfg.sample.name,
        "n_particles": int(len(particles)),
        "n_frames": n_frames,
        "fields_kV_per_cm": sorted(float(x) for x in cycles["field_kV_per_cm"].unique()) if len(cycles) else [],
        "temperature_K": temperature_K,
        "pixel_size_nm": float(pixel_size_nm),
        "psf_sigma_nm": float(psf_sigma_nm),
        "frame_interval_s": float(np.median(np.diff(t_frames))) if n_frames > 1 else None,
        "exposure_s": exposure_s,
        "n_cycles": int(len(cycles)),
        "spectral_shift_nm": None,
        "spectral_shift_slope_nm_per_kV_per_cm": None,
    }
    for k, v in population.items():
        summary.setdefault(k, v)
    if cfg.spectra is not None:
        warnings.append("[spectra] is not analysed by this version of plscope; spectral keys are null")
    summary["warnings"] = warnings
    return RunResult(summary=summary, particles=particles, kinetics=kinetics, traces=traces,
                     reference_image=ref, frame_time_s=t_frames, cycles=cycles, curves=curves,
                     field_trace=field_trace, config=cfg)


def run_imaging(run_dir: str | os.PathLike, out_dir: str | os.PathLike, *, progress: bool = False,
                command_line: Sequence[str] | None = None) -> RunResult:
    """Analyse a run folder and write its results to ``out_dir`` atomically.

    Writes ``summary.json``, ``particles.csv``, ``kinetics.csv``,
    ``traces.csv.gz``, ``cycles.csv`` and ``report.html``. Results are
    written to a temporary folder and moved into place only when complete.
    """
    from ..report import write_report

    started = _dt.datetime.now(_dt.timezone.utc)
    with AtomicOutputDir(out_dir) as tmp:  # fails early if out_dir cannot be written
        result = analyze_imaging(run_dir, progress=progress)
        cfg = result.config
        from ..io.stack import open_stack

        movie_paths = open_stack(cfg.resolve(cfg.movie.path)).paths
        result.summary["provenance"] = provenance(
            inputs=_input_files(cfg, movie_paths), config=cfg.to_dict(), started=started,
            command_line=command_line)
        result.particles.to_csv(tmp / "particles.csv", index=False)
        result.kinetics.to_csv(tmp / "kinetics.csv", index=False)
        result.traces.to_csv(tmp / "traces.csv.gz", index=False)
        result.cycles.to_csv(tmp / "cycles.csv", index=False)
        write_report(result, tmp / "report.html")
        write_json(tmp / "summary.json", result.summary)
    return result
