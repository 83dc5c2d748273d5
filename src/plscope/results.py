"""Result types: what an analysis returns and what a report renders.

A bottom-floor module: it imports only :mod:`plscope.errors` and
:mod:`plscope._json` at run time (and, for type checkers only, the config,
settings, kinetics and calibration types), so ``pipeline`` produces these and
``report`` renders them without importing each other.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._json import write_json
from .errors import RunFolderError

# The upper floors' types (ExperimentConfig, AnalysisSettings, Calibration, PopulationKinetics) are
# named in the docstrings only: even a type-checking import of them would close an import circle.

__all__ = [
    "EXTRACTION_FILES",
    "PARQUET_ROW_GROUP_ROWS",
    "Extraction",
    "PopulationSummary",
    "RunResult",
    "SpectraResult",
    "StoredTable",
    "lazy_table",
    "stored_traces",
    "table_columns",
    "write_parquet",
]


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


#: rows of a Parquet row group: pyarrow's default for a table written whole (``write_table``)
PARQUET_ROW_GROUP_ROWS = 1024 * 1024


def write_parquet(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """``table.to_parquet(path, index=False)``, byte for byte, converted one row group at a time.

    pandas converts the whole table to Arrow before pyarrow cuts it into row
    groups of :data:`PARQUET_ROW_GROUP_ROWS`: the traces of 8000 frames x
    200 particles (1.6 million rows) are 115 MB more while they are written.
    Here each group's rows (views into the table) are converted and written in
    turn, with the schema (and pandas metadata) of the first: the same row
    groups, so the same bytes (tested).
    """
    if len(table) <= PARQUET_ROW_GROUP_ROWS or table.attrs:  # attrs go into pandas' metadata
        table.to_parquet(path, index=False)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    step = PARQUET_ROW_GROUP_ROWS
    first = pa.Table.from_pandas(table.iloc[:step], preserve_index=False)
    schema = first.schema
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:  # pandas' default compression
        writer.write_table(first)
        del first
        for start in range(step, len(table), step):
            part = table.iloc[start : start + step]
            writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))


def _particle_store(value: Any) -> bool:
    """Whether ``value`` is a traces table filled particle-major into a scratch file
    (:class:`plscope._particle_traces.ParticleTraces`: ``row_blocks``, ``table``, ``n_rows``)."""
    return all(hasattr(value, name) for name in ("row_blocks", "table", "n_rows", "per_particle"))


def write_parquet_rows(store: Any, path: str | os.PathLike) -> None:
    """:func:`write_parquet` of a table filled particle-major into a scratch file (``store``:
    :class:`plscope._particle_traces.ParticleTraces`), byte for byte: the same row groups of
    :data:`PARQUET_ROW_GROUP_ROWS` rows with the same schema (and pandas metadata), each made column
    by column from the file (no DataFrame of the group beside its Arrow table)."""
    n = int(store.n_rows)
    if n == 0:
        write_parquet(store.table(), path)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    # the schema (and pandas metadata) pandas gives the table: its columns' dtypes, not its length
    schema = pa.Table.from_pandas(store.rows(0, 1), preserve_index=False).schema
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:  # as write_parquet
        for start in range(0, n, PARQUET_ROW_GROUP_ROWS):
            stop = min(start + PARQUET_ROW_GROUP_ROWS, n)
            arrays = [
                pa.array(store.rows(start, stop, [name])[name].to_numpy(), from_pandas=True)
                for name in schema.names
            ]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            del arrays


class StoredTable:
    """A table plscope wrote to a Parquet file, read back (whole, or some columns) when asked.

    ``plscope run`` keeps the per-frame traces in memory only until it has
    stored them (``traces.parquet``, before the kinetics): then
    :attr:`RunResult.traces` and :attr:`Extraction.traces` hold one of these,
    and each step reads the columns it needs (the kinetics three, the
    centroid shift four, the report three; ``traces.csv.gz`` is written with
    ``traces.parquet``). At 8000 frames x 200 particles the whole table is 115 MB;
    reading it when the attribute is first used gives the same frame
    (:func:`pandas.read_parquet` of the file).

    The file is the one plscope wrote only while it has not been replaced:
    its identity (inode, size, modification time) is taken when this is
    made, and a file replaced since (another run or re-analysis written into
    the same folder) is refused rather than read as this result's.

    Parameters
    ----------
    path : path-like
        The Parquet file, as plscope has just written it (a relative path is
        taken from the current working directory, now).
    stamp : tuple, optional
        Its identity when written (default: the file's now).
    """

    def __init__(self, path: str | os.PathLike, *, stamp: tuple[int, int, int] | None = None) -> None:
        self.path = Path(path).absolute()  # read later, maybe from another working directory
        self.stamp = stamp if stamp is not None else self._identity()

    def _identity(self) -> tuple[int, int, int] | None:
        """The file's inode, size and modification time (ns), or None if there is no such file."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def check(self) -> Path:
        """The path, once the file is known to be the one plscope wrote (else :class:`RunFolderError`)."""
        now = self._identity()
        if now is None:
            raise self._unreadable(FileNotFoundError())
        if self.stamp is not None and now != self.stamp:
            raise RunFolderError(
                self.path,
                "changed since this result was made (another run or re-analysis wrote that folder?); "
                "plscope.load the results folder again",
            )
        return self.path

    def __repr__(self) -> str:
        return f"StoredTable({str(self.path)!r})"

    def _unreadable(self, exc: Exception) -> RunFolderError:
        """The one-line error of a file that is gone or damaged since plscope wrote it."""
        detail = "no such file: moved or deleted" if isinstance(exc, FileNotFoundError) else exc
        return RunFolderError(
            self.path, f"stored traces cannot be read ({detail}); plscope.load the results folder again"
        )

    @property
    def columns(self) -> list[str]:
        """The table's column names (from the file's schema; nothing else is read)."""
        import pyarrow.parquet as pq

        path = self.check()
        try:
            return list(pq.read_schema(path).names)
        except (OSError, ValueError) as exc:  # moved, deleted or damaged since it was written
            raise self._unreadable(exc) from None

    def read(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The table, or its ``columns`` in that order (one block per column, no second copy)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        names = None if columns is None else list(columns)
        path = self.check()
        try:
            table = pq.read_table(path, columns=names)
        except (OSError, ValueError) as exc:  # moved, deleted or damaged since it was written
            raise self._unreadable(exc) from None
        # split blocks + self destruct: each column handed over as Arrow frees it, no second copy
        out = table.to_pandas(split_blocks=True, self_destruct=True)
        del table
        pa.default_memory_pool().release_unused()  # what Arrow's pool freed is not kept (mimalloc)
        return out

    def moved_to(self, folder: str | os.PathLike) -> StoredTable:
        """The same file name in ``folder`` (where a staged output folder's files end up)."""
        return StoredTable(Path(folder) / self.path.name, stamp=self.stamp)  # os.replace keeps it


def table_columns(table: pd.DataFrame | StoredTable, names: Sequence[str]) -> pd.DataFrame:
    """The columns ``names`` that ``table`` has, in that order, without ``attrs``.

    Of a table in memory: views (no data copied); of a :class:`StoredTable`:
    only those columns are read from the file.
    """
    if isinstance(table, StoredTable):
        have = set(table.columns)
        return table.read([c for c in names if c in have])
    out = table.copy(deep=False)
    out.attrs = {}
    return out[[c for c in names if c in table.columns]]


class _TableOrFile:
    """A dataclass attribute holding a DataFrame or a :class:`StoredTable`, read (and kept) when first got.

    Where plscope must not read the whole table, it takes the stored value
    with :meth:`stored` and reads the columns it needs (:func:`table_columns`).
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}_value"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__.get(self.slot)
        if isinstance(value, StoredTable):
            value = value.read()
            obj.__dict__[self.slot] = value
        elif _particle_store(value):  # filled into a scratch file by the extraction
            value = value.table()
            obj.__dict__[self.slot] = value
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value

    def stored(self, obj: Any) -> Any:
        """The value as it is held (a DataFrame, a :class:`StoredTable` or None), nothing read."""
        return obj.__dict__.get(self.slot)


def lazy_table(cls: type, name: str) -> None:
    """Make the dataclass field ``name`` of ``cls`` a :class:`_TableOrFile` (after the dataclass is made)."""
    attr = _TableOrFile()
    attr.__set_name__(cls, name)
    setattr(cls, name, attr)


def stored_traces(obj: Any) -> pd.DataFrame | StoredTable | None:
    """``obj.traces`` as it is held (:class:`RunResult`, :class:`Extraction`, ...), nothing read."""
    attr = getattr(type(obj), "traces", None)
    return attr.stored(obj) if isinstance(attr, _TableOrFile) else getattr(obj, "traces", None)


@dataclass
class Extraction:
    """What the stack and the DAQ log give, before any kinetics."""

    meta: dict[str, Any]  # run, sample, n_frames, pixel/psf/exposure, temperature, warnings
    frames: pd.DataFrame  # frame, time_s (TTL rising edge or clock), mid_time_s
    particles: pd.DataFrame  # one row per particle (detection + size + flags)
    # frame, particle_id, intensity, background (+ drift); a StoredTable is read when first used
    traces: pd.DataFrame
    cycles: pd.DataFrame  # one row per field-ON segment
    reference_image: np.ndarray
    field_trace: pd.DataFrame | None = None  # time_s, field_kV_per_cm (decimated, for the report)
    drift: pd.DataFrame | None = None  # frame, drift_x_px, drift_y_px (stage drift)

    def save(self, folder: str | os.PathLike) -> None:
        """Store exactly (Parquet, NPY, JSON) into ``folder``."""
        folder = Path(folder)
        traces = stored_traces(self)
        if isinstance(traces, StoredTable):
            traces.check()  # the file this extraction's run wrote, before anything is written
        write_json(folder / "extraction.json", self.meta)
        self.frames.to_parquet(folder / "frames.parquet", index=False)
        self.particles.to_parquet(folder / "particles.parquet", index=False)
        if isinstance(traces, StoredTable):  # the file it was read from: the same bytes
            if traces.path.resolve() != (folder / "traces.parquet").resolve():
                shutil.copyfile(traces.check(), folder / "traces.parquet")
        elif _particle_store(traces):  # one row group at a time from the scratch file
            write_parquet_rows(traces, folder / "traces.parquet")
        else:
            write_parquet(traces, folder / "traces.parquet")  # one row group at a time
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
    calibration: Any  # plscope.spectra.Calibration
    stripes: pd.DataFrame
    wavelength_nm: np.ndarray
    spectra: np.ndarray
    frame_time_s: np.ndarray
    cycles: pd.DataFrame
    field_trace: tuple[np.ndarray, np.ndarray] | None = None
    reference_image: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    config: Any = None  # plscope.io.config.ExperimentConfig or None
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
        After ``plscope run`` the traces are read from the results folder's
        ``traces.parquet`` when first used (:class:`StoredTable`; the same
        frame); :meth:`trace_columns` reads only some columns.
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
    config: Any = None  # plscope.io.config.ExperimentConfig or None
    extraction: Extraction | None = None
    settings: Any = None  # plscope.pipeline.settings.AnalysisSettings or None
    extra_sections: list[str] = field(default_factory=list)
    population: Any = (
        None  # plscope.kinetics.PopulationKinetics or None: per-cycle SE, bleaching, shape priors
    )
    spectra: SpectraResult | None = None  # when [spectra] is given
    centroid_shift: pd.DataFrame | None = None  # optical-centroid displacement field on vs off
    # while plscope run writes the results: some trace columns particle-major in a scratch file
    # (plscope._particle_traces.ParticleTraces; the report reads each particle's trace from it)
    particle_traces: Any = field(default=None, repr=False, compare=False)

    def curve_table(self) -> pd.DataFrame:
        """Every cycle-averaged curve and its fit in long format (``curves.parquet``).

        Columns ``particle_id, field_kV_per_cm, phase, t_s, mean, sem,
        n_cycles, fit`` (one row per grid point; the per-cycle curves are left
        out). ``t_s`` is the time since the switching edge, ``mean``/``sem``
        the PL normalized to the pre-switch level, ``fit`` the fitted curve
        (NaN where no fit was usable), and, when the curves carry it,
        ``fit_source``: which fit ``fit`` draws ('trace_fit': the whole-trace
        fit the row reports; 'curve_fit': the fit of the averaged curve; ''
        none). The report's gallery draws from it.
        """
        cols = ["t_s", "mean", "sem", "n_cycles", "fit"]
        keys: list[tuple[Any, float, str, int]] = []
        parts: list[pd.DataFrame] = []
        for (pid, field_kV_per_cm, phase), df in sorted(
            self.curves.items(), key=lambda kv: (kv[0][0], float(kv[0][1]), kv[0][2])
        ):
            if df is not None and len(df):
                keys.append((pid, float(field_kV_per_cm), phase, len(df)))
                parts.append(df)
        if not parts:
            return pd.DataFrame(columns=["particle_id", "field_kV_per_cm", "phase", *cols])
        n = [k[3] for k in keys]  # one concat of the values, not one frame per curve (0.5 s a run)
        values = _concat_columns(parts, cols)
        src = [_fit_source(p) for p in parts]
        if any(v is not None for v in src):  # one label per curve: repeated, not concatenated
            values["fit_source"] = np.repeat(np.array([v or "" for v in src], dtype=object), n)
        head = pd.DataFrame(
            {
                "particle_id": np.repeat([k[0] for k in keys], n),
                "field_kV_per_cm": np.repeat([k[1] for k in keys], n),
                "phase": np.repeat(np.array([k[2] for k in keys], dtype=object), n),
            }
        )
        return pd.concat([head, values], axis=1)

    def trace_columns(self, names: Sequence[str]) -> pd.DataFrame:
        """The columns ``names`` of :attr:`traces` it has (read alone when the traces are stored)."""
        return table_columns(stored_traces(self), names)


lazy_table(Extraction, "traces")
lazy_table(RunResult, "traces")


def _fit_source(curve: pd.DataFrame) -> str | None:
    """Which fit a curve's ``fit`` draws: its ``attrs['fit_source']`` (kinetics curves) or its
    ``fit_source`` column (a table read back); None when it says neither."""
    if "fit_source" in curve.attrs:
        return str(curve.attrs["fit_source"])
    if "fit_source" in curve.columns and len(curve):
        return str(curve["fit_source"].iat[0])
    return None


def _concat_columns(parts: list[pd.DataFrame], cols: list[str]) -> pd.DataFrame:
    """``pd.concat([p.reindex(columns=cols) for p in parts], ignore_index=True)``, column by column.

    When every part has the columns with one NumPy dtype per column (the
    curves of a run: 1 200 frames of 200 particles), the columns are joined
    with :func:`numpy.concatenate`: the same frame, 10x faster than pandas
    aligning 1 200 frames; any other mix goes through pandas.
    """
    seen: dict[str, set] = {c: set() for c in cols}
    for p in parts:
        if not p.columns.is_unique:
            seen[cols[0]].add(None)  # pandas decides
            break
        have = dict(zip(p.columns, p.dtypes, strict=True))
        for c in cols:
            seen[c].add(have.get(c))
    for kinds in seen.values():
        dtype = next(iter(kinds))
        if len(kinds) > 1 or not isinstance(dtype, np.dtype) or dtype.kind not in "biuf":
            return pd.concat([p.reindex(columns=cols) for p in parts], ignore_index=True)
    return pd.DataFrame({c: np.concatenate([p[c].to_numpy() for p in parts]) for c in cols})


#: fields of :class:`PopulationSummary` present only when the summary was made with a population
_POPULATION_ONLY = ("shape_priors", "kinetics_flags", "trace_shape")


@dataclass(frozen=True)
class PopulationSummary:
    """Run-level kinetics results with their uncertainties (the population part of summary.json).

    Made by :func:`plscope.kinetics.population_summary`; :meth:`to_dict` gives
    the JSON-ready keys of ``summary.json`` in their order. Values are floats
    or None (None where a quantity could not be computed, with a line in
    ``warnings``), ints, lists and plain dicts. A row is *used* when
    ``fit_ok`` is true, its ``exclusion_reason`` is empty and its mobility
    and velocity are finite with a positive field.

    Attributes
    ----------
    fields_kV_per_cm : list of float
        Sorted levels of all rows.
    temperature_K : float or None
    n_particles, n_particles_used, n_rows, n_rows_used, n_rows_excluded : int
    confidence : float
        Level of every interval; the ``*_ci_*`` attributes are written as
        ``*_ci95_*`` for 0.95 (``ci`` + the percentage).
    bootstrap : dict
        ``n_resamples``, ``seed``, ``method`` of the cluster bootstrap.
    kinetics_excluded_particles : list of dict
        ``{particle_id, reason}`` for particles with no used row.
    ion_mobility_cm2_per_Vs, ion_mobility_median_cm2_per_Vs, ion_mobility_std_cm2_per_Vs : float or None
        Mean, median and sample standard deviation over the used rows
        (particles x fields).
    ion_mobility_sem_cm2_per_Vs, ion_mobility_ci_cm2_per_Vs : float or None, [low, high] or None
        Cluster-bootstrap standard error and interval of the mean (whole
        particles resampled: the rows of one particle share its size and
        mobility).
    ion_mobility_fit_cm2_per_Vs : float or None
        Slope of drift velocity against field over all used rows (OLS with
        intercept); ``ion_mobility_fit_err_cm2_per_Vs`` its cluster-bootstrap
        standard error (the OLS one, which treats rows as independent, is
        ``ion_mobility_fit_err_ols_cm2_per_Vs``), ``ion_mobility_fit_ci_cm2_per_Vs``,
        ``ion_mobility_fit_intercept_nm_per_s``, ``ion_mobility_fit_r2``.
    diffusion_coefficient_cm2_per_s : float or None
        Einstein relation applied to the mean mobility;
        ``diffusion_coefficient_std_cm2_per_s`` (of the spread),
        ``diffusion_coefficient_err_cm2_per_s`` and
        ``diffusion_coefficient_ci_cm2_per_s`` (carried from the mobility).
    tau_size_slope_s_per_nm : float or None
        OLS of ``tau_pol_s`` against ``size_nm`` over the used rows at the
        highest field (``tau_size_slope_err_s_per_nm``, ``tau_size_intercept_s``,
        ``tau_size_field_kV_per_cm``, ``tau_size_n``); ``tau_pol_size_fit`` /
        ``tau_rec_size_fit``: the full fits (slope, errors, ``slope_ci``, r2, n)
        for polarization and recovery.
    tau_pol_field_dependence, tau_rec_field_dependence : dict or None
        The within-particle power law ``tau ~ E^p`` with its interval and
        p-value (:func:`plscope.kinetics.field_dependence`);
        ``recovery_independent_of_field``: the interval of ``p`` for the
        recovery contains 0.
    model_choice : dict
        Per phase, how many free fits the biexponential and the
        monoexponential won by BIC, the models reported and how many reported
        fits are pooled biexponentials.
    per_field : list of dict
        ``{field_kV_per_cm, n_used, tau_pol_mean_s, tau_pol_std_s,
        tau_rec_mean_s, tau_rec_std_s, switching_efficiency_mean,
        switching_efficiency_std, switching_efficiency_cycle_std,
        mobility_mean_cm2_per_Vs, mobility_sem_cm2_per_Vs}``.
    shape_priors, kinetics_flags, trace_shape : dict, list of str, dict or None
        From the population kinetics; None (and left out of :meth:`to_dict`)
        when the summary was made without them.
    warnings : list of str
        One per quantity that is None.
    """

    fields_kV_per_cm: list[float]
    temperature_K: float | None
    n_particles: int
    n_particles_used: int
    n_rows: int
    n_rows_used: int
    n_rows_excluded: int
    confidence: float
    bootstrap: dict[str, Any]
    kinetics_excluded_particles: list[dict[str, Any]]
    ion_mobility_cm2_per_Vs: float | None
    ion_mobility_median_cm2_per_Vs: float | None
    ion_mobility_std_cm2_per_Vs: float | None
    ion_mobility_sem_cm2_per_Vs: float | None
    ion_mobility_ci_cm2_per_Vs: list[float | None] | None
    ion_mobility_fit_cm2_per_Vs: float | None
    ion_mobility_fit_err_ols_cm2_per_Vs: float | None
    ion_mobility_fit_intercept_nm_per_s: float | None
    ion_mobility_fit_r2: float | None
    ion_mobility_fit_err_cm2_per_Vs: float | None
    ion_mobility_fit_ci_cm2_per_Vs: list[float | None] | None
    diffusion_coefficient_cm2_per_s: float | None
    diffusion_coefficient_std_cm2_per_s: float | None
    diffusion_coefficient_err_cm2_per_s: float | None
    diffusion_coefficient_ci_cm2_per_s: list[float | None] | None
    tau_size_slope_s_per_nm: float | None
    tau_size_slope_err_s_per_nm: float | None
    tau_size_intercept_s: float | None
    tau_size_field_kV_per_cm: float | None
    tau_size_n: int
    tau_pol_size_fit: dict[str, Any] | None
    tau_rec_size_fit: dict[str, Any] | None
    tau_pol_field_dependence: dict[str, Any] | None
    tau_rec_field_dependence: dict[str, Any] | None
    recovery_independent_of_field: bool | None
    model_choice: dict[str, dict[str, Any]]
    per_field: list[dict[str, Any]]
    shape_priors: dict[str, Any] | None = None
    kinetics_flags: list[str] | None = None
    trace_shape: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def interval_name(self) -> str:
        """How the intervals are named in :meth:`to_dict`: ``'ci95'`` for ``confidence=0.95``."""
        return f"ci{round(100 * self.confidence):d}"

    def to_dict(self) -> dict[str, Any]:
        """The summary.json keys, in order (the ``*_ci_*`` attributes named by :attr:`interval_name`)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in _POPULATION_ONLY and self.shape_priors is None:
                continue
            out[f.name.replace("_ci_", f"_{self.interval_name}_")] = getattr(self, f.name)
        return out
