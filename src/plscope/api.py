"""The Python API: analyse a run folder, load results, re-analyse with other settings, simulate.

The command line is a thin layer over these functions (``plscope run`` is
:func:`analyze` with ``out=``; ``plscope simulate`` is :func:`simulate`), so a
notebook and the command line give the same numbers for the same settings.

>>> import plscope, tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> truth = plscope.simulate(folder / "run", n_particles=4, fields_kV_per_cm=(20.0,),
...                          cycles_per_level=2, image_shape=(96, 96))
>>> res = plscope.analyze(folder / "run")                                  # doctest: +SKIP
>>> res.kinetics[["particle_id", "field_kV_per_cm", "tau_pol_s"]].head()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from .config import AnalysisSettings, load_experiment
from .config._base import load_toml
from .errors import RunFolderError
from .pipeline import analyze_extraction, analyze_imaging, run_imaging
from .pipeline import reanalyze as pipeline_reanalyze
from .pipeline.imaging import stored_settings
from .pipeline.output import AtomicOutputDir
from .pipeline.spectra import analyze_spectra
from .report import figures
from .results import Extraction, RunResult, SpectraResult, lazy_table, stored_traces
from .sim import ImagingSimParams, SpectralSimParams, simulate_imaging_run, simulate_spectral_run

__all__ = ["FIGURES", "Results", "analyze", "load", "reanalyze", "simulate"]

#: figures :meth:`Results.figure` draws on demand
FIGURES = ("reference_image", "tau_vs_size", "tau_vs_field", "mobility_histogram")

SettingsLike = AnalysisSettings | Mapping[str, Any] | str | os.PathLike | None


@dataclass
class Results:
    """The results of one run: tables as DataFrames, the summary, figures on demand.

    Attributes
    ----------
    summary : dict
        ``summary.json`` (ion mobility, diffusion coefficient, time constants,
        QC, warnings, ...).
    particles : pandas.DataFrame
        One row per particle (``particles.csv``).
    kinetics : pandas.DataFrame
        One row per particle and field level (``kinetics.csv``).
    cycles : pandas.DataFrame
        Field ON/OFF cycles (``cycles.csv``).
    traces : pandas.DataFrame or None
        Per-frame intensities (imaging runs); read from the results folder's
        ``traces.parquet`` when first used.
    spectra : pandas.DataFrame or None
        Per-frame Lorentzian fits (``spectra.csv``; runs with ``[spectra]``).
    settings : AnalysisSettings
        The settings the numbers were computed with.
    out_dir : pathlib.Path or None
        The results folder (None for an analysis kept in memory).
    extraction : Extraction or None
        What the stack gave before any kinetics (what :func:`reanalyze` works from).
    run : RunResult or None
        Everything the imaging analysis produced (curves, population fits, ...).
    changes : dict or None
        For a re-analysis: ``{"settings": {key: [old, new]}, "summary": {...}}``.
    """

    summary: dict[str, Any]
    particles: pd.DataFrame
    kinetics: pd.DataFrame
    cycles: pd.DataFrame
    traces: pd.DataFrame | None = None
    spectra: pd.DataFrame | None = None
    settings: AnalysisSettings = field(default_factory=AnalysisSettings)
    out_dir: Path | None = None
    extraction: Extraction | None = None
    run: RunResult | None = None
    changes: dict[str, Any] | None = None

    def __repr__(self) -> str:
        s = self.summary
        where = f" in {self.out_dir}" if self.out_dir else " (in memory)"
        return (
            f"<plscope.Results {s.get('run')!s}{where}: {len(self.particles)} particles, "
            f"{len(self.kinetics)} kinetics rows, ion mobility {s.get('ion_mobility_cm2_per_Vs')}>"
        )

    @property
    def warnings(self) -> list[str]:
        """The run's warnings (numbers that may be unreliable say so here)."""
        return list(self.summary.get("warnings", []))

    def figure(self, name: str) -> Figure:
        """Draw one of :data:`FIGURES` from the tables (a matplotlib Figure).

        Raises
        ------
        ValueError
            Unknown figure name, or a figure that needs what this run lacks.
        """
        s, kin = self.summary, self.kinetics
        if name == "reference_image":
            if self.extraction is None:
                raise ValueError("reference_image needs the stored extraction (an imaging run)")
            return figures.reference_image(
                self.extraction.reference_image, self.particles, pixel_size_nm=s.get("pixel_size_nm") or 1.0
            )
        if name == "tau_vs_size":
            fields = s.get("fields_kV_per_cm") or []
            if not fields:
                raise ValueError("tau_vs_size needs a field")
            return figures.tau_vs_size(kin, self.particles, field_kV_per_cm=max(fields))
        if name == "tau_vs_field":
            return figures.tau_vs_field(kin)
        if name == "mobility_histogram":
            return figures.mobility_histogram(
                kin, mean=s.get("ion_mobility_cm2_per_Vs"), std=s.get("ion_mobility_std_cm2_per_Vs")
            )
        raise ValueError(f"unknown figure {name!r}; one of {', '.join(FIGURES)}")


lazy_table(Results, "traces")


def _settings(settings: SettingsLike, base: AnalysisSettings | None = None) -> AnalysisSettings:
    """Settings from settings, or a (partial, nested) mapping or TOML file over ``base``.

    Keys a mapping or a file leaves out keep their value in ``base`` (the
    defaults when ``base`` is None).
    """
    if settings is None:
        return base or AnalysisSettings()
    if isinstance(settings, AnalysisSettings):
        return settings
    if isinstance(settings, Mapping):
        merged = _merge((base or AnalysisSettings()).to_dict(), settings)
        return AnalysisSettings.from_dict(merged, source="settings")
    if base is None:
        return AnalysisSettings.from_toml(settings)
    merged = _merge(base.to_dict(), load_toml(settings, what="settings file"))
    return AnalysisSettings.from_dict(merged, source=settings)


def _api_call(name: str, first: Any, **kwargs: Any) -> list[str]:
    """How the API was called, for ``provenance.json``'s ``command_line`` (not the interpreter's argv).

    >>> _api_call("analyze", Path("runs/a"), settings={"kinetics": {"n_bootstrap": 500}}, out="res")
    ["plscope.analyze('runs/a', settings={'kinetics': {'n_bootstrap': 500}}, out='res')"]
    """

    def arg(value: Any) -> str:
        if isinstance(value, (str, os.PathLike)):
            return repr(os.fspath(value))
        if isinstance(value, Results):
            return f"<Results of {os.fspath(value.out_dir)!r}>" if value.out_dir else "<Results>"
        if isinstance(value, AnalysisSettings):
            return "AnalysisSettings(...)"  # recorded in full under "settings"
        return repr(value)

    parts = [arg(first)] + [f"{k}={arg(v)}" for k, v in kwargs.items() if v is not None]
    return [f"plscope.{name}({', '.join(parts)})"]


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in changes.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def _from_run(result: RunResult, settings: AnalysisSettings, out_dir: Path | None) -> Results:
    return Results(
        summary=result.summary,
        particles=result.particles,
        kinetics=result.kinetics,
        cycles=result.cycles,
        traces=stored_traces(result),  # a stored table stays on disk until it is used
        spectra=None if result.spectra is None else result.spectra.table,
        settings=settings,
        out_dir=out_dir,
        extraction=result.extraction,
        run=result,
    )


def _from_spectra(result: SpectraResult, settings: AnalysisSettings, out_dir: Path | None) -> Results:
    st = result.stripes
    return Results(
        summary=result.summary,
        particles=pd.DataFrame({"particle_id": st["particle_id"], "slit_row": st["row"]}),
        kinetics=pd.DataFrame(),
        cycles=result.cycles,
        spectra=result.table,
        settings=settings,
        out_dir=out_dir,
    )


def analyze(
    run_dir: str | os.PathLike,
    *,
    settings: SettingsLike = None,
    out: str | os.PathLike | None = None,
    progress: bool = False,
    command_line: Sequence[str] | None = None,
) -> Results:
    """Analyse a run folder: particles, sizes, kinetics, ion mobility (and spectra).

    Parameters
    ----------
    run_dir : path-like
        A run folder with ``experiment.toml`` (see the documentation).
    settings : AnalysisSettings, mapping, or path-like, optional
        Analysis settings; a mapping of changed sections
        (``{"kinetics": {"n_bootstrap": 500}}``) or a settings TOML file.
        Default: the same defaults as ``plscope run``.
    out : path-like, optional
        Write the results folder here (what ``plscope run --out`` writes,
        atomically); by default nothing is written.
    progress : bool
        Progress bars on stderr.
    command_line : sequence of str, optional
        Recorded in the provenance when ``out`` is given (default: this call,
        e.g. ``["plscope.analyze('my_run', out='res')"]``, not the interpreter's argv).

    Returns
    -------
    Results

    Raises
    ------
    plscope.PlscopeError
        Bad input, naming the file and the problem.

    Examples
    --------
    >>> res = plscope.analyze("my_run")                   # doctest: +SKIP
    >>> res.summary["ion_mobility_cm2_per_Vs"]            # doctest: +SKIP
    """
    s = _settings(settings)
    if out is not None:
        if command_line is None:
            command_line = _api_call("analyze", run_dir, settings=settings, out=out)
        result = run_imaging(run_dir, out, settings=s, progress=progress, command_line=command_line)
        if isinstance(result, SpectraResult):
            return _from_spectra(result, s, Path(out))
        return _from_run(result, s, Path(out))
    cfg = load_experiment(run_dir)
    if cfg.movie is None:
        return _from_spectra(analyze_spectra(cfg, progress=progress), s, None)
    result = analyze_imaging(run_dir, s, progress=progress)
    if cfg.spectra is not None:
        spectral = analyze_spectra(cfg, progress=progress)
        result.spectra = spectral
        result.summary.update({k: v for k, v in spectral.summary.items() if k != "warnings"})
        result.summary["warnings"].extend(spectral.warnings)
    return _from_run(result, s, None)


def _read_table(folder: Path, stem: str) -> pd.DataFrame:
    """A results table: the exact Parquet copy when there is one, else the CSV."""
    pq, csv = folder / f"{stem}.parquet", folder / f"{stem}.csv"
    if pq.is_file():
        return pd.read_parquet(pq)
    if csv.is_file():
        text = csv.read_text(encoding="utf-8")
        return pd.read_csv(io.StringIO(text)) if text.strip() else pd.DataFrame()
    return pd.DataFrame()


def load(out_dir: str | os.PathLike) -> Results:
    """Load a results folder written by :func:`analyze` (``out=``) or ``plscope run``.

    Raises
    ------
    RunFolderError
        Not a complete plscope results folder.
    """
    folder = Path(out_dir)
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except OSError:
        raise RunFolderError(folder, "not a plscope results folder (no summary.json)") from None
    except ValueError as exc:
        raise RunFolderError(folder / "summary.json", f"not valid JSON: {exc}") from None
    prov = summary.get("provenance") or {}
    settings = AnalysisSettings.from_dict(prov["settings"]) if prov.get("settings") else AnalysisSettings()
    extraction = Extraction.load(folder) if (folder / "extraction.json").is_file() else None
    spectra = folder / "spectra.csv"
    return Results(
        summary=summary,
        particles=extraction.particles if extraction is not None else _read_table(folder, "particles"),
        kinetics=_read_table(folder, "kinetics"),
        cycles=extraction.cycles if extraction is not None else _read_table(folder, "cycles"),
        traces=None if extraction is None else stored_traces(extraction),
        spectra=pd.read_csv(spectra) if spectra.is_file() else None,
        settings=settings,
        out_dir=folder,
        extraction=extraction,
    )


def reanalyze(
    results: Results | str | os.PathLike,
    *,
    settings: SettingsLike = None,
    out: str | os.PathLike | None = None,
    command_line: Sequence[str] | None = None,
    **changes: Any,
) -> Results:
    """Redo the kinetics and summary from the stored traces, keeping the settings unless told otherwise.

    The stack is not read. Settings not given keep the values the results
    were last analysed with (never reset to the defaults).

    Parameters
    ----------
    results : Results or path-like
        An imaging result (from :func:`analyze` or :func:`load`) or a results folder.
    settings : AnalysisSettings, mapping or path-like, optional
        New settings; a mapping or a settings TOML file changes only the keys
        it names (default: the settings of ``results``).
    out : path-like, optional
        Write the re-analysis (what ``plscope reanalyze`` does): the results
        folder itself (plscope's files there are replaced atomically, files
        you added are kept) or a new folder beside it, in which case the
        results folder is only read. The rules of ``plscope run --out``
        apply: never into an input, never over files plscope did not write.
        Default: nothing is written.
    command_line : sequence of str, optional
        Recorded in the provenance when ``out`` is given (default: this call,
        e.g. ``["plscope.analyze('my_run', out='res')"]``, not the interpreter's argv).
    **changes : mapping
        Changed sections over those settings, e.g. ``kinetics={"n_bootstrap": 500}``.

    Returns
    -------
    Results
        ``changes`` lists the settings that differ (and, when written, the
        summary values that changed, also recorded in ``provenance.json``).

    Examples
    --------
    >>> again = plscope.reanalyze("results/demo", kinetics={"model": "mono"})          # doctest: +SKIP
    >>> plscope.reanalyze("results/demo", out="results/demo_mono", kinetics={"model": "mono"})  # doctest: +SKIP
    """
    if out is not None:
        if command_line is None:
            command_line = _api_call("reanalyze", results, settings=settings, out=out, **changes)
        return _reanalyze_to(results, out, settings, changes, command_line)
    if not isinstance(results, Results):
        results = load(results)
    if results.extraction is None:
        raise RunFolderError(results.out_dir or "results", "re-analysis needs an imaging run's stored traces")
    new = _settings(settings, base=results.settings)
    if changes:
        new = _settings(changes, base=new)
    res = _from_run(analyze_extraction(results.extraction, new), new, None)
    old, now = results.settings.to_dict(), new.to_dict()
    res.changes = {
        "settings": {
            f"{sec}.{k}": [old[sec].get(k), v]
            for sec in now
            for k, v in now[sec].items()
            if old.get(sec, {}).get(k) != v
        }
    }
    return res


def _reanalyze_to(
    results: Results | str | os.PathLike,
    out: str | os.PathLike,
    settings: SettingsLike,
    changes: Mapping[str, Any],
    command_line: Sequence[str] | None,
) -> Results:
    """:func:`reanalyze` written to ``out`` from a results folder (the pipeline's atomic rewrite)."""
    folder = results.out_dir if isinstance(results, Results) else Path(results)
    if folder is None:
        raise RunFolderError("results", "writing a re-analysis needs a results folder (plscope.load one)")
    new: AnalysisSettings | None = None  # None: the pipeline keeps the stored settings
    if settings is not None or changes:
        new = _settings(settings, base=stored_settings(folder))
        if changes:
            new = _settings(changes, base=new)
    run, diff = pipeline_reanalyze(folder, new, command_line=command_line, to=out)
    res = _from_run(run, run.settings or new or AnalysisSettings(), Path(out))
    res.changes = diff
    return res


def simulate(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    spectral: bool = False,
    clean: bool = False,
    progress: bool = False,
    **params: Any,
) -> dict[str, Any]:
    """Write a simulated run folder with known ground truth (what ``plscope simulate`` writes).

    Parameters
    ----------
    out_dir : path-like
        Folder to write (new, or a previous simulation; never over other files).
    seed : int
        Random seed (same seed, same files).
    spectral : bool
        A spectral run (slit spectra, lamp) instead of an imaging run.
    clean : bool
        Every nuisance of real rigs off (noise, drift, blinking, ...).
    progress : bool
    **params :
        Simulator parameters (:class:`plscope.sim.ImagingSimParams` or
        :class:`plscope.sim.SpectralSimParams` fields, e.g. ``n_particles``,
        ``fields_kV_per_cm``, ``mobility_cm2_per_Vs``).

    Returns
    -------
    dict
        The ground truth (also written as ``ground_truth.json``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> truth = simulate(pathlib.Path(tempfile.mkdtemp()) / "run", n_particles=3,
    ...                  fields_kV_per_cm=(20.0,), cycles_per_level=2, image_shape=(96, 96))
    >>> len(truth["particles"])
    3
    """
    # parameters checked before anything is created
    if spectral:
        sp = SpectralSimParams()
        sp = dataclasses.replace(sp.clean() if clean else sp, **params)
    else:
        ip = ImagingSimParams()
        ip = dataclasses.replace(ip.clean() if clean else ip, **params)
    with AtomicOutputDir(out_dir, kind="simulate") as tmp:  # never over files it did not write
        if spectral:
            return simulate_spectral_run(tmp, sp, seed=seed, progress=progress)
        return simulate_imaging_run(tmp, ip, seed=seed, progress=progress)
