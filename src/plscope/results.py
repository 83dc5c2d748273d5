"""Result types: what an analysis returns and what a report renders.

A bottom-floor module: it imports only :mod:`plscope.errors` and
:mod:`plscope._json` at run time (and, for type checkers only, the config,
settings, kinetics and calibration types), so ``pipeline`` produces these and
``report`` renders them without importing each other.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._json import write_json
from .errors import RunFolderError

if TYPE_CHECKING:  # types only: no run-time import of the floors above
    from .io.config import ExperimentConfig
    from .kinetics.population import PopulationKinetics
    from .pipeline.settings import AnalysisSettings
    from .spectra.calibration import Calibration

__all__ = ["EXTRACTION_FILES", "Extraction", "RunResult", "SpectraResult"]


#: files of a stored extraction (inside an output folder)
EXTRACTION_FILES = (
    "extraction.json",
    "frames.parquet",
    "particles.parquet",
    "traces.parquet",
    "cycles.parquet",
    "reference.npy",
    "field_trace.parquet",
)


@dataclass
class Extraction:
    """What the stack and the DAQ log give, before any kinetics."""

    meta: dict[str, Any]  # run, sample, n_frames, pixel/psf/exposure, temperature, warnings
    frames: pd.DataFrame  # frame, time_s (TTL rising edge or clock), mid_time_s
    particles: pd.DataFrame  # one row per particle (detection + size + flags)
    traces: pd.DataFrame  # frame, particle_id, intensity, background (+ drift)
    cycles: pd.DataFrame  # one row per field-ON segment
    reference_image: np.ndarray
    field_trace: pd.DataFrame | None = None  # time_s, field_kV_per_cm (decimated, for the report)
    drift: pd.DataFrame | None = None  # frame, drift_x_px, drift_y_px (stage drift)

    def save(self, folder: str | os.PathLike) -> None:
        """Store exactly (Parquet, NPY, JSON) into ``folder``."""
        folder = Path(folder)
        write_json(folder / "extraction.json", self.meta)
        self.frames.to_parquet(folder / "frames.parquet", index=False)
        self.particles.to_parquet(folder / "particles.parquet", index=False)
        self.traces.to_parquet(folder / "traces.parquet", index=False)
        self.cycles.to_parquet(folder / "cycles.parquet", index=False)
        np.save(folder / "reference.npy", self.reference_image)
        if self.field_trace is not None:
            self.field_trace.to_parquet(folder / "field_trace.parquet", index=False)
        if self.drift is not None:
            self.drift.to_parquet(folder / "drift.parquet", index=False)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Extraction:
        """Read a stored extraction (written by :meth:`save`)."""
        folder = Path(folder)
        missing = [f for f in EXTRACTION_FILES[:-1] if not (folder / f).is_file()]
        if missing:
            raise RunFolderError(
                folder,
                "not a complete plscope output folder (missing "
                + ", ".join(missing)
                + "); run `plscope run` first",
            )
        try:
            meta = json.loads((folder / "extraction.json").read_text())
            ft = folder / "field_trace.parquet"
            dr = folder / "drift.parquet"
            ex = cls(
                meta=meta,
                frames=pd.read_parquet(folder / "frames.parquet"),
                particles=pd.read_parquet(folder / "particles.parquet"),
                traces=pd.read_parquet(folder / "traces.parquet"),
                cycles=pd.read_parquet(folder / "cycles.parquet"),
                reference_image=np.load(folder / "reference.npy"),
                field_trace=pd.read_parquet(ft) if ft.is_file() else None,
                drift=pd.read_parquet(dr) if dr.is_file() else None,
            )
        except (OSError, ValueError, EOFError) as exc:
            raise RunFolderError(folder, f"stored extraction cannot be read: {exc}") from None
        _check_stored(ex, folder)
        return ex


def _check_stored(ex: Extraction, folder: Path) -> None:
    """A stored extraction that was tampered with is refused in one line, naming the file."""

    def bad(name: str, problem: str) -> RunFolderError:
        return RunFolderError(folder / name, f"{problem}; not as plscope wrote it (run `plscope run` again)")

    if not isinstance(ex.meta, dict):
        raise bad("extraction.json", f"expected a JSON object, found {type(ex.meta).__name__}")
    for key in ("temperature_K", "n_frames"):
        value = ex.meta.get(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not np.isfinite(value)
            or value <= 0
        ):
            raise bad("extraction.json", f"'{key}' is missing or not a positive number ({value!r})")
    ref = ex.reference_image
    if ref.ndim != 2 or ref.size == 0 or not np.issubdtype(ref.dtype, np.number):
        raise bad("reference.npy", f"expected a 2-D numeric image, found {ref.dtype} of shape {ref.shape}")
    tables = (
        ("frames.parquet", ex.frames, ["frame"]),
        ("particles.parquet", ex.particles, ["particle_id"]),
        ("traces.parquet", ex.traces, ["particle_id", "frame"]),
    )
    for name, table, key_columns in tables:
        missing = [c for c in key_columns if c not in table.columns]
        if missing:
            raise bad(name, f"column(s) {', '.join(missing)} missing")
        n_dup = int(table.duplicated(subset=key_columns).sum())
        if n_dup:
            raise bad(name, f"{n_dup} duplicated row(s) of {'/'.join(key_columns)}")


@dataclass
class SpectraResult:
    """Everything the spectral analysis of one run produced (in memory).

    Attributes
    ----------
    table : pandas.DataFrame
        ``spectra.csv``: one row per frame and particle, columns
        :data:`SPECTRA_COLUMNS` then ``particle_id, state, level, cycle,
        phase, settled, shift_nm, baseline_nm, peak_err_nm, ...``.
    shifts : pandas.DataFrame
        Shift statistics per field level, pooled (``particle_id`` -1) and
        per particle (``spectral_shifts.csv``).
    summary : dict
        Keys for summary.json (``spectral_shift_nm``,
        ``spectral_shift_slope_nm_per_kV_per_cm`` and more ``spectral_*``).
    calibration : plscope.spectra.Calibration
    stripes : pandas.DataFrame
        Particles along the slit.
    wavelength_nm : numpy.ndarray, shape (n_pixels,)
    spectra : numpy.ndarray, shape (n_frames, n_particles, n_pixels), float32
        Background-subtracted stripe spectra (counts per pixel).
    frame_time_s : numpy.ndarray, shape (n_frames,)
        Mid-exposure times.
    cycles : pandas.DataFrame
        ON/OFF cycles during the spectra (empty without a field).
    field_trace : (time_s, field_kV_per_cm) or None
        Decimated field record over the spectra, for figures.
    reference_image : numpy.ndarray, shape (rows, n_pixels)
    warnings : list of str
    config : ExperimentConfig or None
    """

    table: pd.DataFrame
    shifts: pd.DataFrame
    summary: dict[str, Any]
    calibration: Calibration
    stripes: pd.DataFrame
    wavelength_nm: np.ndarray
    spectra: np.ndarray
    frame_time_s: np.ndarray
    cycles: pd.DataFrame
    field_trace: tuple[np.ndarray, np.ndarray] | None = None
    reference_image: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    config: ExperimentConfig | None = None
    input_files: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    """Everything one imaging run produced (in memory).

    Attributes
    ----------
    summary : dict
        The run's ``summary.json`` (keys of the spec, then more).
    particles, kinetics, traces, cycles : pandas.DataFrame
        ``particles.csv``, ``kinetics.csv`` (columns
        :data:`plscope.columns.KINETICS_SPEC_COLUMNS` first), the per-frame
        traces and ``cycles.csv`` (:data:`plscope.columns.CYCLE_COLUMNS`).
    reference_image : numpy.ndarray, shape (rows, columns)
    frame_time_s : numpy.ndarray, shape (n_frames,)
        Middle of each exposure, s.
    curves : dict
        ``(particle_id, field_kV_per_cm, phase) -> cycle-averaged curve``.
    field_trace : (time_s, field_kV_per_cm) or None
        Decimated field record, for figures.
    config, extraction, settings :
        What the run was made from.
    extra_sections : list of str
        Further HTML sections of the report (the spectra of a combined run).
    population : plscope.kinetics.PopulationKinetics or None
    spectra : SpectraResult or None
    centroid_shift : pandas.DataFrame or None
        Optical-centroid displacement field on vs off.
    """

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
    extraction: Extraction | None = None
    settings: AnalysisSettings | None = None
    extra_sections: list[str] = field(default_factory=list)
    population: PopulationKinetics | None = None  # per-cycle SE, bleaching, shape priors
    spectra: SpectraResult | None = None  # when [spectra] is given
    centroid_shift: pd.DataFrame | None = None  # optical-centroid displacement field on vs off
