"""The per-dataset HTML report: one file, figures embedded, no server needed.

Every figure of the paper (Chem. Sci. 2025, 16, 22417) that a run can give
is rebuilt from the run's own data; each ``<figure>`` has an ``id`` and a
``data-paper-figure`` attribute naming the panel it regenerates:

=====================  ==========  =====================================
id                     paper       content
=====================  ==========  =====================================
``fig-reference``      --          detected particles and their sizes
``fig-trace``          1b          PL trace with the field schedule
``fig-superposition``  1c          cycles superposed, average
``fig-se``             1d-e        switching efficiency per field
``fig-size-examples``  2a-f        small / medium / large, with fits
``fig-tau-size``       2g-h        tau against size, fit and band
``fig-field-curves``   3a          one particle at every field
``fig-tau-field``      3b-d        tau against field
``fig-mobility``       3e          mobility histogram, mean, sd, CI
``fig-velocity``       S10         drift velocity against field
=====================  ==========  =====================================

A figure that cannot be drawn (e.g. a run without field cycles) is left out
with a note; it never stops the report. HTML fragments of other analyses
(e.g. the spectra) are appended from ``result.extra_sections``.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import pandas as pd
from matplotlib.layout_engine import ConstrainedLayoutEngine

from . import figures
from .figures import MU_SCALE, MU_UNIT, SLOPE_SCALE, SLOPE_UNIT
from .page import render_page
from .provenance import provenance_section_html
from .tables import KINETICS_SHOWN, PARTICLES_SHOWN, table_html

if TYPE_CHECKING:  # pragma: no cover
    from ..results import RunResult

logger = logging.getLogger(__name__)


#: decimals of the figure-fraction positions of the axes after the layout (1e-6 of the figure: < 0.002 px)
POSITION_DECIMALS = 6


class _SteadyLayout(ConstrainedLayoutEngine):
    """Constrained layout, then every axes' position rounded to :data:`POSITION_DECIMALS`.

    The solver's result can differ in its last bits between processes (the order in which it sums
    depends on where its objects sit in memory), and the SVG backend names each clip path after the
    full-precision rectangle: the same figure got other clip-path ids now and then. Rounded, the
    positions are the same in every process; they move by at most 5e-7 of the figure.
    """

    def execute(self, fig):
        from matplotlib.transforms import Bbox

        info = super().execute(fig)
        for ax in fig.axes:
            extents = np.round(ax.get_position(original=True).extents, POSITION_DECIMALS)
            in_layout = ax.get_in_layout()
            ax.set_position(Bbox.from_extents(*extents), which="both")
            ax.set_in_layout(in_layout)  # set_position takes an axes out of the layout: as it was
        return info


def _steady_layout(fig) -> None:
    """Give a figure laid out by constrained layout the :class:`_SteadyLayout` (same settings)."""
    engine = fig.get_layout_engine()
    if type(engine) is ConstrainedLayoutEngine:
        fig.set_layout_engine(_SteadyLayout(compress=getattr(engine, "_compress", False), **engine.get()))


def _png_bytes(fig) -> bytes:
    """The PNG of the report (110 dpi); the figure is laid out here (:class:`_SteadyLayout`), once."""
    _steady_layout(fig)
    buf = io.BytesIO()
    fig.draw = functools.partial(_draw_or_lay_out, fig)  # savefig's dry draw: the layout alone
    try:
        fig.savefig(buf, format="png", dpi=110)
    finally:
        del fig.draw
    return buf.getvalue()


def _draw_or_lay_out(fig, renderer) -> None:
    """``fig.draw(renderer)``, but only the layout when the renderer draws nothing.

    A figure with a layout engine is drawn twice by ``savefig``: first with its renderer's
    drawing switched off (``RendererBase._draw_disabled``: every ``open_*``, ``close_*`` and
    ``draw_*`` method shadowed by a no-op), to run the layout, then for the file. Of that first
    draw only the layout, run as ``Figure.draw`` runs it, is kept: the same PNG bytes (tested)
    for ~8 % less time. Any other renderer is drawn on as always.
    """
    if "open_group" not in vars(renderer):  # drawing for real
        type(fig).draw(fig, renderer)
        return
    engine = fig.get_layout_engine()
    if fig.axes and engine is not None:
        try:
            engine.execute(fig)
        except ValueError:  # as Figure.draw
            pass


def figure_html(fig, caption: str, fig_id: str, paper: str | None = None, sink: dict | None = None) -> str:
    """One ``<figure>`` with the PNG embedded; with ``sink``, the figure is kept for :func:`save_figure_files`."""
    png = _png_bytes(fig)
    if sink is not None:
        sink[fig_id] = (fig, png)
    return _figure_tag(png, caption, fig_id, paper, files=sink is not None)


def _figure_tag(png: bytes, caption: str, fig_id: str, paper: str | None, *, files: bool) -> str:
    attr = f' data-paper-figure="{html.escape(paper)}"' if paper else ""
    label = f"Fig. {paper} — " if paper else ""
    text = html.escape(label + caption)
    return (
        f'<figure id="{fig_id}"{attr}><img alt="{text}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"><figcaption>{text}'
        f"{_files_note(fig_id) if files else ''}</figcaption></figure>"
    )


def _files_note(fig_id: str) -> str:
    return (
        f" <span class='files'>Files: figures/{fig_id}.png, "
        f"<a href='figures/{fig_id}.svg'>.svg</a>, <a href='figures/{fig_id}.pdf'>.pdf</a></span>"
    )


def _safe_figure(
    build: Callable[[], Any], caption: str, fig_id: str, paper: str | None = None, *, sink: dict | None = None
) -> str:
    """A figure, or a note when it cannot be drawn (the report is never lost to one figure)."""
    try:
        return figure_html(build(), caption, fig_id, paper, sink)
    except Exception as exc:
        return _missing_figure(fig_id, paper, type(exc).__name__, str(exc))


def _missing_figure(fig_id: str, paper: str | None, error_type: str, message: str) -> str:
    logger.warning("report figure %s could not be drawn: %s: %s", fig_id, error_type, message)
    return (
        f"<div class='warn' id='{fig_id}-missing'>Figure {html.escape(paper or fig_id)} could not be "
        f"drawn: {html.escape(error_type)}: {html.escape(message)}</div>"
    )


@dataclass(frozen=True)
class _FigureJob:
    """One figure of the report: ``build()`` makes it (a picklable partial: it can run in a worker)."""

    build: Callable[[], Any]
    caption: str
    fig_id: str
    paper: str | None = None


def _raise(exc: Exception) -> NoReturn:
    """The ``build`` of a figure whose inputs could not be prepared (drawn as a note)."""
    raise exc


def _draw_serial(jobs: list[_FigureJob], sink: dict | None) -> list[str]:
    return [_safe_figure(j.build, j.caption, j.fig_id, j.paper, sink=sink) for j in jobs]


def _draw_files(job: _FigureJob, folder: Path) -> tuple[bool, bytes | tuple[str, str]]:
    """In a worker: draw one figure and write its PNG, SVG and PDF (:func:`save_figure_files`).

    Returns ``(True, PNG bytes)`` or ``(False, (error type, message))`` when it cannot be drawn.
    """
    try:
        fig = job.build()
        png = _png_bytes(fig)
    except Exception as exc:
        return False, (type(exc).__name__, str(exc))
    save_figure_files({job.fig_id: (fig, png)}, folder)
    return True, png


def _draw_with(mapper: Callable, folder: Path, names: list[str], jobs: list[_FigureJob]) -> Iterator[str]:
    """Hand the figures to ``mapper`` (worker processes) now; their HTML, in order, as they are read.

    ``names`` receives the files written.
    """
    results = mapper(functools.partial(_draw_files, folder=folder), jobs)  # an executor submits them all now
    return _tags(jobs, results, names)


def _tags(jobs: list[_FigureJob], results: Iterable, names: list[str]) -> Iterator[str]:
    for job, (ok, value) in zip(jobs, results, strict=True):
        if ok:
            names += [f"{job.fig_id}.png", f"{job.fig_id}.svg", f"{job.fig_id}.pdf"]
            yield _figure_tag(value, job.caption, job.fig_id, job.paper, files=True)
        else:
            yield _missing_figure(job.fig_id, job.paper, *value)


def rc_unchanged() -> bool:
    """matplotlib's settings are those of its matplotlibrc (what a fresh worker process draws with)."""
    import matplotlib as mpl

    orig = dict(mpl.rcParamsOrig)
    return all(k == "backend" or orig.get(k) == v for k, v in dict.items(mpl.rcParams))


def save_figure_files(figs: dict, folder: str | os.PathLike) -> list[str]:
    """Write every figure as PNG (the bytes embedded in the report), SVG and PDF into ``folder``.

    SVG and PDF carry no date and fixed ids, so the same results give the same bytes.
    They keep the layout the PNG was drawn with: the layout engine (constrained
    layout, the larger part of a save) is not run again for each format, so
    the three files have the same geometry and the figures are left with their
    layout fixed (no layout engine, :func:`_fixed_layout`). Returns the file names written.
    """
    from matplotlib import rc_context

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    with rc_context({"svg.hashsalt": "plscope", "pdf.compression": 6}):
        for fig_id, (fig, png) in figs.items():
            (folder / f"{fig_id}.png").write_bytes(png)
            _fixed_layout(fig)  # the PNG's savefig laid the figure out
            fig.savefig(folder / f"{fig_id}.svg", format="svg", dpi=110, metadata={"Date": None})
            fig.savefig(
                folder / f"{fig_id}.pdf",
                format="pdf",
                dpi=110,
                metadata={"CreationDate": None, "ModDate": None},
            )
            names += [f"{fig_id}.png", f"{fig_id}.svg", f"{fig_id}.pdf"]
    return names


def _fixed_layout(fig) -> None:
    """Leave a laid-out figure as it is from now on: no layout engine at all.

    With any engine, even ``"none"`` (a placeholder), ``savefig`` draws the
    whole figure twice, the first time without output for a layout; with none
    it draws once: the same SVG and PDF bytes (tested) for a third less time.
    Where the settings would give a figure without an engine one of theirs
    (``figure.autolayout``, ``figure.constrained_layout.use``), the placeholder.
    """
    import matplotlib as mpl

    rc = mpl.rcParams
    auto = rc["figure.autolayout"] or rc["figure.constrained_layout.use"]
    fig.set_layout_engine("none" if auto else None)


def _safe_section(build: Callable[[], str], section_id: str) -> str:
    """A section, or a note when it cannot be rendered (the report is never lost to one section)."""
    try:
        return build()
    except Exception as exc:
        logger.warning("report section %s could not be rendered: %s: %s", section_id, type(exc).__name__, exc)
        return (
            f"<div class='warn' id='{section_id}-missing'>Section {html.escape(section_id)} could not be "
            f"rendered: {html.escape(type(exc).__name__)}: {html.escape(str(exc))}</div>"
        )


def _gallery(result, pixel_size_nm: float, curves: pd.DataFrame | None = None) -> str:
    """Every particle's card (report/gallery.py), from the saved tables and curves.

    ``curves``: ``result.curve_table()`` when the caller has it already (it is what ``curves.parquet`` holds).
    """
    from .gallery import gallery_html

    if curves is None:
        curves = result.curve_table() if hasattr(result, "curve_table") else pd.DataFrame()
    return gallery_html(
        particles=result.particles,
        kinetics=result.kinetics,
        traces=_report_traces(result),
        frame_time_s=result.frame_time_s,
        cycles=result.cycles,
        curves=curves,
        reference_image=result.reference_image,
        pixel_size_nm=pixel_size_nm,
    )


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "—"
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        if len(v) == 2 and all(isinstance(x, (float, int, type(None))) for x in v):
            return f"[{_fmt(v[0])}, {_fmt(v[1])}]"
        return ", ".join(_fmt(x) for x in v)
    return html.escape(str(v))


#: summary.json keys shown in the summary table: (key, label, unit, scale, format)
_SUMMARY_KEYS = [
    ("n_particles", "particles", "", 1, "d"),
    ("n_particles_used", "particles in the statistics", "", 1, "d"),
    ("n_frames", "frames", "", 1, "d"),
    ("fields_kV_per_cm", "field levels", "kV/cm", 1, ".4g"),
    ("temperature_K", "temperature", "K", 1, ".2f"),
    ("psf_sigma_nm", "PSF σ", "nm", 1, ".4g"),
    ("ion_mobility_cm2_per_Vs", "ion mobility µ, mean over particles and fields", MU_UNIT, MU_SCALE, ".4g"),
    ("ion_mobility_std_cm2_per_Vs", "  µ spread (sd over particles and fields)", MU_UNIT, MU_SCALE, ".4g"),
    (
        "ion_mobility_sem_cm2_per_Vs",
        "  standard error of the mean (bootstrap over particles)",
        MU_UNIT,
        MU_SCALE,
        ".4g",
    ),
    ("ion_mobility_ci95_cm2_per_Vs", "  95 % confidence interval of the mean", MU_UNIT, MU_SCALE, ".4g"),
    ("ion_mobility_fit_cm2_per_Vs", "µ from the slope of v against E", MU_UNIT, MU_SCALE, ".4g"),
    ("ion_mobility_fit_err_cm2_per_Vs", "  standard error", MU_UNIT, MU_SCALE, ".4g"),
    ("ion_mobility_fit_ci95_cm2_per_Vs", "  95 % confidence interval", MU_UNIT, MU_SCALE, ".4g"),
    ("diffusion_coefficient_cm2_per_s", "diffusion coefficient D = µ k_B T / q", "cm² s⁻¹", 1, ".4g"),
    ("diffusion_coefficient_err_cm2_per_s", "  standard error", "cm² s⁻¹", 1, ".4g"),
    ("diffusion_coefficient_ci95_cm2_per_s", "  95 % confidence interval", "cm² s⁻¹", 1, ".4g"),
    ("tau_size_slope_s_per_nm", "slope of τ_pol against size", SLOPE_UNIT, SLOPE_SCALE, ".4g"),
    ("tau_size_slope_err_s_per_nm", "  standard error", SLOPE_UNIT, SLOPE_SCALE, ".4g"),
    ("recovery_independent_of_field", "recovery time independent of the field (95 %)", "", 1, ""),
]


def _fmt_scaled(v: Any, scale: float, spec: str) -> str:
    """``v`` (a number, a list of numbers, a bool or None) times ``scale`` in format ``spec``."""
    if isinstance(v, (list, tuple)):
        inner = [_fmt_scaled(x, scale, spec) for x in v]
        return f"[{inner[0]}, {inner[1]}]" if len(v) == 2 else ", ".join(inner)
    if v is None or isinstance(v, (bool, np.bool_, str)) or not spec:
        return _fmt(v)
    x = float(v)
    if not np.isfinite(x):
        return "—"
    return format(int(x), spec) if spec == "d" else format(x * scale, spec)


def _summary_rows(s: dict) -> str:
    """The summary table's rows: label, value in the stated unit, unit; the saved value in ``data-value``."""
    import json

    rows = []
    for key, label, unit, scale, spec in _SUMMARY_KEYS:
        if key not in s:
            continue
        v = s[key]
        text = ", ".join(_fmt_scaled(x, scale, spec) for x in v) if key == "fields_kV_per_cm" else None
        raw = html.escape(json.dumps(v, default=str), quote=True)
        rows.append(
            f"<tr data-key='{key}'><td class='k'>{html.escape(label)}</td>"
            f'<td data-value="{raw}">{text or _fmt_scaled(v, scale, spec)}</td>'
            f"<td class='l'>{html.escape(unit)}</td></tr>"
        )
    return "".join(rows)


def _dependence_rows(s: dict) -> str:
    rows = []
    for key, name in (
        ("tau_pol_field_dependence", "τ_pol ∝ E^p"),
        ("tau_rec_field_dependence", "τ_rec ∝ E^p"),
    ):
        d = s.get(key)
        if not d or d.get("exponent") is None:
            continue
        rows.append(
            f"<tr><td class='k'>{html.escape(name)}: p (95 % CI), p-value</td>"
            f"<td>{d['exponent']:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}], "
            f"{d['p_value']:.2g}</td><td class='l'>dimensionless</td></tr>"
        )
    return "".join(rows)


def _representative(kinetics: pd.DataFrame, particles: pd.DataFrame, field: float) -> list[int]:
    """Smallest, median and largest particle (by size) with usable fits at ``field``."""
    if len(kinetics) == 0:
        return []
    usable = kinetics["used"] if "used" in kinetics.columns else kinetics["fit_ok"]  # rows in the statistics
    ok = kinetics[
        np.isclose(kinetics["field_kV_per_cm"].to_numpy(float), field, rtol=1e-6)
        & usable.fillna(False).astype(bool)
    ]
    sizes = particles.drop_duplicates("particle_id").set_index("particle_id")["size_nm"]
    sizes = sizes.reindex(ok["particle_id"].unique()).dropna().sort_values()
    if len(sizes) == 0:
        return []
    idx = sorted({0, len(sizes) // 2, len(sizes) - 1})
    return [sizes.index[i] for i in idx]


def _size_of(particles: pd.DataFrame, pid) -> float:
    p = particles.drop_duplicates("particle_id").set_index("particle_id")
    return float(p.loc[pid, "size_nm"]) if pid in p.index else float("nan")


def _report_traces(result):
    """The traces' columns the report draws (only those are read when the traces are stored; while
    ``plscope run`` writes, each particle's trace alone, from its scratch file: ``get(pid)``)."""
    store = getattr(result, "particle_traces", None)
    if store is not None and "intensity" in store.columns:
        return store.arrays("intensity")
    names = ("frame", "particle_id", "intensity")
    return result.trace_columns(names) if hasattr(result, "trace_columns") else result.traces


def _trace_of(result, pid) -> tuple[np.ndarray, np.ndarray]:
    traces = _report_traces(result)
    if hasattr(traces, "per_particle"):  # one particle's trace read
        frames, y = traces.get(pid) or (np.empty(0, np.int64), np.empty(0))
        return np.asarray(result.frame_time_s)[frames], np.asarray(y, dtype=float)
    tr = traces[traces["particle_id"] == pid].sort_values("frame")
    return np.asarray(result.frame_time_s)[tr["frame"].to_numpy()], tr["intensity"].to_numpy(float)


def _row(kinetics: pd.DataFrame, pid, field: float) -> dict:
    r = kinetics[
        (kinetics["particle_id"] == pid)
        & np.isclose(kinetics["field_kV_per_cm"].to_numpy(float), field, rtol=1e-6)
    ]
    return r.iloc[0].to_dict() if len(r) else {}


def _quality_section(s: dict, result, pop) -> str:
    parts = ["<h2>Fits, uncertainties and excluded particles</h2>"]
    priors = s.get("shape_priors") or ({ph: p.to_dict() for ph, p in pop.shape_priors.items()} if pop else {})
    ts = s.get("trace_shape")
    if ts:
        parts.append(
            "<p id='trace-shape'>Reported time constants: fits of each particle's whole trace (state "
            "carried across half cycles, bleaching fitted with them); the particles' own shapes are drawn "
            f"from a population with fast fraction {ts['a1_mean']:.3f} ± {ts['a1_sd']:.3f}, "
            f"ln(τ₂/τ₁) {ts['rho_pol_mean']:.2f} ± {ts['rho_pol_sd']:.2f} (polarization) and "
            f"{ts['rho_rec_mean']:.2f} ± {ts['rho_rec_sd']:.2f} (recovery). The curve fits below start them.</p>"
        )
    if priors:
        rows = "".join(
            f"<tr><td class='k'>{'polarization' if ph == 'pol' else 'recovery'}</td><td>{p['n_curves']}</td>"
            f"<td>{p['frac_mean']:.3f} ± {p['frac_sd']:.3f}</td><td>{p['ratio']:.2f}</td>"
            f"<td>{p['log_ratio_sd']:.3f}</td></tr>"
            for ph, p in priors.items()
        )
        parts.append(
            "<p>Biexponential shape pooled over the population (prior of every fit; the reported "
            "τ is the amplitude-weighted mean time, its error the posterior standard error):</p>"
            "<table id='shape-priors'><tr><th>phase</th><th>curves</th><th>fast fraction f ± prior sd</th>"
            f"<th>τ₂/τ₁</th><th>sd of ln(τ₂/τ₁)</th></tr>{rows}</table>"
        )
    choice = s.get("model_choice") or {}
    if (s.get("analysis_settings") or {}).get("model") == "mono":
        parts.append(
            "<p id='model-choice'>model = 'mono' (analysis settings): every curve is fitted with a "
            "monoexponential; no biexponential was tried.</p>"
        )
    elif choice:
        rows = "".join(
            f"<tr><td class='k'>{'polarization' if ph == 'pol' else 'recovery'}</td>"
            f"<td>{d.get('biexp_by_bic', '—')}</td><td>{d.get('mono_by_bic', '—')}</td>"
            f"<td>{d.get('pooled', '—')}</td></tr>"
            for ph, d in choice.items()
        )
        parts.append(
            "<table id='model-choice'><tr><th>phase</th><th>biexponential wins (BIC, free fits)</th>"
            f"<th>monoexponential wins</th><th>pooled fits reported</th></tr>{rows}</table>"
        )
    excluded = s.get("kinetics_excluded_particles") or []
    excluded_rows = [
        f"<tr><td>{_fmt(e['particle_id'])}</td><td class='k'>{html.escape(str(e['reason']))}</td></tr>"
        for e in excluded
    ]
    parts_tbl = result.particles
    if "excluded" in parts_tbl.columns:
        for r in parts_tbl[parts_tbl["excluded"].fillna("").astype(str) != ""].itertuples():
            excluded_rows.append(
                f"<tr><td>{_fmt(r.particle_id)}</td><td class='k'>{html.escape(str(r.excluded))}</td></tr>"
            )
    if excluded_rows:
        parts.append(
            "<p>Particles left out of the statistics:</p><table id='excluded-particles'>"
            "<tr><th>particle</th><th>reason</th></tr>" + "".join(excluded_rows) + "</table>"
        )
    elif int(s.get("n_rows_excluded") or 0):
        parts.append(
            f"<p id='excluded-particles'>No particle was left out entirely; {int(s['n_rows_excluded'])} "
            "particle-field row(s) were (see kinetics.csv 'exclusion_reason').</p>"
        )
    else:
        parts.append("<p id='excluded-particles'>No particle was left out of the statistics.</p>")
    return "\n".join(parts)


def _model_words(s: dict) -> str:
    """Caption words for the fitted model, following the settings that produced the results."""
    st = s.get("analysis_settings") or {}
    return str(st.get("model_description") or "biexponential fit")


def _qc_banner(s: dict) -> str:
    """The run's QC verdict (summary.json 'qc', computed by the analysis) and the settings used."""
    qc = s.get("qc") or {}
    st = s.get("analysis_settings") or qc.get("settings") or {}
    used = ""
    if st:
        excl = ", ".join(k for k, v in (st.get("exclusion") or {}).items() if v) or "none"
        used = (
            f"<p class='small' id='analysis-settings'>Analysis settings: model = "
            f"{html.escape(repr(st.get('model')))} ({html.escape(str(st.get('model_description', '')))}); "
            f"shape pooling {'on' if st.get('shape_pooling') else 'off'}; min_cycles = {st.get('min_cycles')}; "
            f"time constants shorter than {st.get('min_tau_frames')} frames are not used; "
            f"exclusion rules: {html.escape(excl)}.</p>"
        )
    if qc.get("status") == "warn":
        items = "".join(f"<li>{html.escape(str(r))}</li>" for r in qc.get("reasons", []))
        return (
            "<div class='warn' id='qc-banner'><b>QC: warn</b> — the numbers of this run may be "
            f"unreliable:<ul>{items}</ul></div>" + used
        )
    if qc.get("status") == "ok":
        return "<p class='small' id='qc-banner'>QC: ok (every run-level check passed).</p>" + used
    return used


def render_report(
    result: RunResult,
    *,
    provenance: dict | None = None,
    figures_sink: dict | None = None,
    curves: pd.DataFrame | None = None,
) -> str:
    """Render the report of one imaging run as a self-contained HTML string.

    Uses ``result.population`` (a :class:`~plscope.kinetics.PopulationKinetics`)
    when present for the per-cycle switching efficiencies and the bleaching
    models; everything else comes from the result's tables.

    Parameters
    ----------
    result : RunResult
    provenance : dict, optional
        The run's whole provenance record (``provenance.json``: with dates and
        command lines); default: the stable part in ``summary["provenance"]``.
    figures_sink : dict, optional
        Filled with ``fig_id -> (Figure, PNG bytes)`` of every figure drawn
        (for :func:`save_figure_files`); the captions then name the files.
    curves : pandas.DataFrame, optional
        ``result.curve_table()`` when the caller has made it already (it is
        ``curves.parquet``); made here otherwise.
    """
    return _render(result, provenance, curves, functools.partial(_draw_serial, sink=figures_sink))


class _Slot(int):
    """The place of a figure among the parts of the page (drawn after the page is laid out)."""


def _prepared(make: Callable[[], Callable[[], Any]]) -> Callable[[], Any]:
    """``make()`` (the inputs of a figure, taken from the result here), or a ``build`` that raises its error."""
    try:
        return make()
    except Exception as exc:
        return functools.partial(_raise, exc)


def _render(
    result: RunResult,
    provenance: dict | None,
    curves: pd.DataFrame | None,
    draw: Callable[[list[_FigureJob]], Iterable[str]],
) -> str:
    """The page of :func:`render_report`; ``draw`` makes the figures' HTML from their jobs, in order
    (called once every figure is known: workers draw them while the gallery and tables are rendered)."""
    jobs: list[_FigureJob] = []

    def fig_html(build: Callable[[], Any], caption: str, fig_id: str, paper: str | None = None) -> _Slot:
        jobs.append(_FigureJob(build, caption, fig_id, paper))
        return _Slot(len(jobs) - 1)

    s = result.summary
    pop = getattr(result, "population", None)
    parts: list[Any] = []
    title = f"plscope report — {html.escape(s.get('sample') or str(s.get('run', '')))}"
    parts.append(f"<h1>{title}</h1><p class='small'>run folder: {html.escape(str(s.get('run', '')))}</p>")

    parts.append(_qc_banner(s))
    parts.append(
        "<h2>Summary</h2><table id='summary'><tr><th>quantity</th><th>value</th><th>unit</th></tr>"
        f"{_summary_rows(s)}{_dependence_rows(s)}</table>"
    )
    for w in s.get("warnings", []):
        parts.append(f"<div class='warn'>{html.escape(str(w))}</div>")

    pixel = float(s.get("pixel_size_nm") or 1.0)
    parts.append("<h2>Particles</h2>")
    parts.append(
        fig_html(
            functools.partial(
                figures.reference_image, result.reference_image, result.particles, pixel_size_nm=pixel
            ),
            "Reference image with the detected particles outlined at their fitted side length.",
            "fig-reference",
        )
    )

    kin = result.kinetics
    have_cycles = len(kin) > 0 and len(result.cycles) > 0
    if have_cycles:
        fields = sorted(kin["field_kV_per_cm"].dropna().unique())
        top = float(fields[-1])
        examples = _representative(kin, result.particles, top)
        rep = examples[len(examples) // 2] if examples else kin["particle_id"].iloc[0]
        size = _size_of(result.particles, rep)
        on_s = float(np.median(result.cycles["on_end_s"] - result.cycles["on_start_s"]))

        parts.append("<h2>Switching under the field (Fig. 1)</h2>")
        bleach = None
        if pop is not None and rep in pop.particles:
            bleach = pop.particles[rep].bleach

        def fig_trace():
            t, y = _trace_of(result, rep)
            return functools.partial(
                figures.trace_with_field,
                t,
                y,
                result.cycles,
                result.field_trace,
                title=f"particle {rep} ({size:.0f} nm)",
                bleach=bleach,
            )

        parts.append(
            fig_html(
                _prepared(fig_trace),
                f"PL trace of particle {rep} (black, normalized to its first frames; left axis), the "
                "recorded field (orange line, right axis) and the field-on intervals (orange shading)"
                + (
                    "; green dashed: the bleaching model b(t) the analysis divides out (left axis)."
                    if bleach is not None
                    else "."
                ),
                "fig-trace",
                "1b",
            )
        )
        parts.append(
            fig_html(
                functools.partial(
                    figures.cycle_superposition,
                    result.curves.get((rep, top, "pol")),
                    result.curves.get((rep, top, "rec")),
                    on_duration_s=on_s,
                    title=f"particle {rep}, {top:.0f} kV/cm",
                ),
                "Every cycle of the particle normalized to its pre-switch level and superposed, with the average "
                f"and the {_model_words(s)} (dashed; blink-spoiled cycles are drawn but left out of the average).",
                "fig-superposition",
                "1c",
            )
        )
        se_cycles = pop.se_cycles if pop is not None else None
        parts.append(
            fig_html(
                functools.partial(figures.switching_efficiency, kin, se_cycles=se_cycles, particle_id=rep),
                "Switching efficiency SE = 1 − PL_on/PL_off: (d) of one particle in every cycle at each field, "
                "(e) histogram over particles at each field.",
                "fig-se",
                "1d–e",
            )
        )

        parts.append("<h2>Size dependence (Fig. 2)</h2>")

        def fig_examples():
            exs = []
            for pid in examples:
                r = _row(kin, pid, top)
                exs.append(
                    {
                        "particle_id": pid,
                        "size_nm": _size_of(result.particles, pid),
                        "pol": result.curves.get((pid, top, "pol")),
                        "rec": result.curves.get((pid, top, "rec")),
                        "tau_pol_s": r.get("tau_pol_s", np.nan),
                        "tau_pol_err_s": r.get("tau_pol_err_s"),
                        "tau_rec_s": r.get("tau_rec_s", np.nan),
                        "tau_rec_err_s": r.get("tau_rec_err_s"),
                    }
                )
            return functools.partial(figures.size_examples, exs, field_kV_per_cm=top)

        parts.append(
            fig_html(
                _prepared(fig_examples),
                "Polarization (top) and recovery (bottom) of the smallest, a "
                "medium and the largest particle: cycles (grey), average ± SEM and the "
                f"{_model_words(s)} (dashed).",
                "fig-size-examples",
                "2a–f",
            )
        )
        parts.append(
            fig_html(
                functools.partial(
                    figures.tau_vs_size,
                    kin,
                    result.particles,
                    field_kV_per_cm=top,
                    fits={"tau_pol_s": s.get("tau_pol_size_fit"), "tau_rec_s": s.get("tau_rec_size_fit")},
                ),
                "Polarization and recovery time (s) against side length (nm) at the highest field (± standard "
                f"error), linear fit (slope in {SLOPE_UNIT}, as in the summary table) and its 95 % confidence "
                "band.",
                "fig-tau-size",
                "2g–h",
            )
        )

        parts.append("<h2>Field dependence and ion mobility (Fig. 3)</h2>")
        parts.append(
            fig_html(
                functools.partial(
                    figures.field_curves,
                    {f: result.curves.get((rep, f, "pol")) for f in fields},
                    title=f"particle {rep}",
                ),
                "Averaged polarization curves of one particle at every field with their fits.",
                "fig-field-curves",
                "3a",
            )
        )
        dependence = {
            "tau_pol_s": s.get("tau_pol_field_dependence"),
            "tau_rec_s": s.get("tau_rec_field_dependence"),
        }
        parts.append(
            fig_html(
                functools.partial(figures.tau_vs_field, kin, particle_id=rep, dependence=dependence),
                "Time constants against field: (b) one particle ± standard error; (c) histograms over "
                "particles, one small panel per field (rows) and phase (columns: polarization orange, "
                "recovery blue), same bins and axes; (d) mean ± sd over particles (black: ± SEM). The legend "
                "of (d) gives the exponent p of τ ∝ E^p fitted within particles (summary.json; p = −1 for "
                "drift-limited polarization, p = 0 when the field does not matter); no power-law line is "
                "drawn because each particle has its own prefactor.",
                "fig-tau-field",
                "3b–d",
            )
        )
        parts.append(
            fig_html(
                functools.partial(
                    figures.velocity_vs_field,
                    kin,
                    slope_cm2_per_Vs=s.get("ion_mobility_fit_cm2_per_Vs"),
                    slope_err_cm2_per_Vs=s.get("ion_mobility_fit_err_cm2_per_Vs"),
                    intercept_nm_per_s=s.get("ion_mobility_fit_intercept_nm_per_s"),
                ),
                f"Drift velocity v = L/τ_pol (nm/s, ± standard error) against field; the dashed line's slope is "
                f"the ion mobility (in {MU_UNIT}, ± standard error).",
                "fig-velocity",
                "S10",
            )
        )
        parts.append(
            fig_html(
                functools.partial(
                    figures.mobility_histogram,
                    kin,
                    mean=s.get("ion_mobility_cm2_per_Vs"),
                    std=s.get("ion_mobility_std_cm2_per_Vs"),
                    ci=s.get("ion_mobility_ci95_cm2_per_Vs"),
                ),
                f"Histogram of ion mobility µ = v/E ({MU_UNIT}) over particles and fields: mean (solid), "
                "± sd (dotted) and the bootstrap 95 % confidence interval of the mean (grey band).",
                "fig-mobility",
                "3e",
            )
        )
        parts.append(_quality_section(s, result, pop))

    pending = draw(jobs)
    parts.append(_safe_section(lambda: _gallery(result, pixel, curves), "gallery"))

    # ---- sections of other analyses (e.g. report/spectra.py) -------------------------------------
    # Each item of result.extra_sections is a self-contained HTML fragment (<h2> ... figures ...)
    # rendered by its own module; it is appended here unchanged.
    for section in getattr(result, "extra_sections", None) or []:
        parts.append(str(section))
    # ----------------------------------------------------------------------------------------------

    parts.append("<h2>Tables</h2>")
    parts.append(
        _safe_section(
            lambda: table_html(
                result.particles,
                PARTICLES_SHOWN,
                table_id="particles-table",
                title="Particles",
                csv_name="particles.csv",
            ),
            "particles-table",
        )
    )
    if len(kin):
        parts.append(
            _safe_section(
                lambda: table_html(
                    kin, KINETICS_SHOWN, table_id="kinetics-table", title="Kinetics", csv_name="kinetics.csv"
                ),
                "kinetics-table",
            )
        )
    parts.append(provenance_section_html(provenance if provenance is not None else s.get("provenance")))
    drawn = list(pending)
    body = "\n".join(drawn[p] if isinstance(p, _Slot) else p for p in parts)
    return render_page(html.unescape(title), body, with_script=True)


def write_report(
    result: RunResult,
    path: str | os.PathLike,
    *,
    provenance: dict | None = None,
    figures_dir: str | os.PathLike | None = None,
    curves: pd.DataFrame | None = None,
    mapper: Callable[..., Iterable] | None = None,
) -> list[str]:
    """Write :func:`render_report` to ``path``; with ``figures_dir``, every figure as PNG, SVG and PDF too.

    Parameters
    ----------
    result : RunResult
    path : path-like
        The HTML file.
    provenance : dict, optional
        As in :func:`render_report`.
    figures_dir : path-like, optional
        Folder of the figure files.
    curves : pandas.DataFrame, optional
        ``result.curve_table()`` if the caller has it (made here otherwise).
    mapper : callable, optional
        ``mapper(func, jobs)``, a map over worker processes (e.g. a
        ``ProcessPoolExecutor``'s ``map``): with ``figures_dir``, each figure
        is drawn and its three files written in a worker while this process
        renders the rest of the page. The files and the page are those of
        the serial drawing, byte for byte (tested). Used only while
        matplotlib's settings are those of its matplotlibrc (what a fresh
        worker draws with); otherwise the figures are drawn here.

    Returns
    -------
    list of str
        The figure files written (names inside ``figures_dir``).
    """
    names: list[str] = []
    if figures_dir is not None and mapper is not None and rc_unchanged():
        # absolute: a worker's working directory is that of the process that started its fork server
        draw = functools.partial(_draw_with, mapper, Path(figures_dir).absolute(), names)
        text = _render(result, provenance, curves, draw)
    else:
        sink: dict | None = {} if figures_dir is not None else None
        text = render_report(result, provenance=provenance, figures_sink=sink, curves=curves)
        if sink is not None and figures_dir is not None:
            names = save_figure_files(sink, figures_dir)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return names
