"""Spectral figures of the report (paper Fig. 4a-d) and their HTML section.

Figure functions take arrays/tables and return a
:class:`matplotlib.figure.Figure` built without pyplot. :func:`spectra_section_html`
returns the ``<h2>Spectra</h2>`` fragment (figures embedded as PNG data
URIs) for the run report; :func:`render_spectra_report` a whole page for
spectra-only runs.
"""

from __future__ import annotations

import functools
import html
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .html import _qc_banner, figure_html
from .page import render_page
from .provenance import provenance_section_html

if TYPE_CHECKING:  # pragma: no cover
    from ..results import SpectraResult

__all__ = [
    "calibration_residuals",
    "peak_positions",
    "render_spectra_report",
    "shift_histograms",
    "shift_vs_field",
    "spectra_over_time",
    "spectra_section_html",
]

ON_COLOR = "#f28e2b"  # field on (orange, as in the paper)
OFF_COLOR = "#4e79a7"  # field off (blue)
_MAX_COLUMNS = 1200  # time bins of the pseudo-colour image


def _fig(w: float, h: float, **kw) -> Figure:
    return Figure(figsize=(w, h), layout="constrained", **kw)


def _level_colors(levels: list[float]) -> dict[float, Any]:
    from matplotlib import colormaps

    cmap = colormaps["Oranges"]
    n = max(len(levels), 1)
    return {e: cmap(0.4 + 0.35 * i / max(n - 1, 1)) for i, e in enumerate(sorted(levels))}


def _shade(ax, cycles: pd.DataFrame, colors: dict[float, Any]) -> None:
    for c in cycles.itertuples():
        ax.axvspan(
            c.on_start_s, c.on_end_s, color=colors.get(float(c.field_kV_per_cm), ON_COLOR), alpha=0.18, lw=0
        )


def _edges(centres: np.ndarray) -> np.ndarray:
    c = np.asarray(centres, dtype=float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate(([c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]))


def spectra_over_time(
    spectra: np.ndarray,
    wavelength_nm: np.ndarray,
    time_s: np.ndarray,
    *,
    peak_nm: np.ndarray | None = None,
    cycles: pd.DataFrame | None = None,
    field_trace: tuple[np.ndarray, np.ndarray] | None = None,
    title: str = "",
) -> Figure:
    """Pseudo-colour spectra of one particle over time with the field schedule (Fig. 4a).

    Parameters
    ----------
    spectra : numpy.ndarray, shape (n_frames, n_pixels)
    wavelength_nm : numpy.ndarray, shape (n_pixels,)
    time_s : numpy.ndarray, shape (n_frames,)
    peak_nm : numpy.ndarray, shape (n_frames,), optional
        Fitted peak, drawn over the image.
    cycles, field_trace :
        ON intervals and the field record, drawn in a strip below.
    """
    fig = _fig(9.0, 4.6)
    ax, axf = fig.subplots(2, 1, sharex=True, height_ratios=[4, 1])
    data = np.asarray(spectra, dtype=float)
    t = np.asarray(time_s, dtype=float)
    n = t.size
    if n > _MAX_COLUMNS:  # average frames into time bins
        k = int(math.ceil(n / _MAX_COLUMNS))
        m = (n // k) * k
        data = data[:m].reshape(-1, k, data.shape[1]).mean(axis=1)
        t = t[:m].reshape(-1, k).mean(axis=1)
    lo, hi = np.nanpercentile(data, [1, 99.5]) if np.isfinite(data).any() else (0, 1)
    mesh = ax.pcolormesh(
        _edges(t),
        _edges(wavelength_nm),
        data.T,
        shading="flat",
        cmap="inferno",
        vmin=lo,
        vmax=hi,
        rasterized=True,
    )
    fig.colorbar(mesh, ax=ax, label="counts / pixel", pad=0.01)
    if peak_nm is not None:
        ax.plot(time_s, peak_nm, color="white", lw=0.6, alpha=0.8, label="Lorentzian peak")
        ax.legend(loc="upper right", fontsize=8)
        finite = np.asarray(peak_nm, float)[np.isfinite(peak_nm)]
        if finite.size:
            ax.set_ylim(
                max(float(wavelength_nm.min()), float(np.median(finite)) - 40),
                min(float(wavelength_nm.max()), float(np.median(finite)) + 40),
            )
    ax.set_ylabel("wavelength (nm)")
    ax.set_title(title or "PL spectra over time", fontsize=10)
    if field_trace is not None:
        axf.plot(field_trace[0], field_trace[1], color=ON_COLOR, lw=0.8)
    if cycles is not None and len(cycles):
        _shade(axf, cycles, _level_colors(sorted(cycles["field_kV_per_cm"].unique())))
    axf.set_ylabel("E (kV/cm)", fontsize=8)
    axf.set_xlabel("time (s)")
    return fig


def _normal_curve(ax, values: np.ndarray, edges: np.ndarray, center: float, sigma: float, color: str) -> None:
    if not (math.isfinite(center) and math.isfinite(sigma) and sigma > 0):
        return
    x = np.linspace(edges[0], edges[-1], 200)
    width = float(np.mean(np.diff(edges)))
    ax.plot(
        x,
        values.size * width / (sigma * math.sqrt(2 * math.pi)) * np.exp(-0.5 * ((x - center) / sigma) ** 2),
        color=color,
        lw=1.2,
    )


def shift_histograms(table: pd.DataFrame, shifts: pd.DataFrame, *, particle_id: int | None = None) -> Figure:
    """Shift time trace and histograms of field-off / field-on frames with normal fits (Fig. 4b)."""
    from ..spectra.shifts import histogram_bins

    fig = _fig(10.0, 3.8)
    ax_t, ax_h = fig.subplots(1, 2, width_ratios=[2.2, 1])
    tab = table if particle_id is None else table[table["particle_id"] == particle_id]
    levels = sorted(float(e) for e in shifts.loc[shifts["level"] >= 0, "field_kV_per_cm"].unique())
    colors = _level_colors(levels)
    state = tab["state"].astype(str)
    settled = tab["settled"].astype(bool)
    for mask, color, label in (
        (~settled | (state == "switching"), "0.75", "transient"),
        (settled & (state == "off"), OFF_COLOR, "field off"),
        (settled & (state == "on"), ON_COLOR, "field on"),
    ):
        ax_t.plot(tab.loc[mask, "time_s"], tab.loc[mask, "shift_nm"], ".", ms=2, color=color, label=label)
    ax_t.axhline(0, color="k", lw=0.5)
    ax_t.set_xlabel("time (s)")
    ax_t.set_ylabel("PL shift (nm)")
    ax_t.legend(fontsize=8, markerscale=4, loc="lower left")
    ax_t.set_title(
        "shift from the field-off baseline of each cycle"
        + ("" if particle_id is None else f", particle {particle_id}"),
        fontsize=10,
    )
    use = tab[settled & state.isin(["on", "off"]) & np.isfinite(tab["shift_nm"])]
    pooled = shifts[shifts["particle_id"] == (-1 if particle_id is None else particle_id)]
    all_vals = use["shift_nm"].to_numpy(float)
    # common bins as fine as the finest group's own bins, over the range of all groups
    widths = [
        float(np.mean(np.diff(histogram_bins(g["shift_nm"].to_numpy(float)))))
        for _, g in use.groupby("level")
        if len(g) > 1
    ]
    lo, hi = np.percentile(all_vals, [0.5, 99.5]) if all_vals.size else (-1.0, 1.0)
    width = min(widths) if widths else (hi - lo) / 20 or 0.05
    edges = np.linspace(lo, hi, int(np.clip(np.ceil((hi - lo) / width), 8, 150)) + 1)
    for row in pooled.itertuples():
        vals = use.loc[use["level"] == row.level, "shift_nm"].to_numpy(float)
        color = OFF_COLOR if row.level < 0 else colors.get(float(row.field_kV_per_cm), ON_COLOR)
        label = "off" if row.level < 0 else f"{row.field_kV_per_cm:.0f} kV/cm"
        # the histograms are of the settled-window frames: their normal fit is the window value
        centre = float(getattr(row, "shift_window_nm", row.shift_nm))
        centre = centre if math.isfinite(centre) else float(row.shift_nm)
        ax_h.hist(
            vals,
            bins=edges,
            color=color,
            alpha=0.45,
            orientation="vertical",
            label=f"{label}: {centre:+.3f} nm",
        )
        _normal_curve(ax_h, vals, edges, centre, row.sigma_nm, color)
    ax_h.set_xlabel("PL shift (nm)")
    ax_h.set_ylabel("frames")
    ax_h.legend(fontsize=7)
    ax_h.set_title("settled frames, normal fits", fontsize=10)
    return fig


def peak_positions(table: pd.DataFrame, cycles: pd.DataFrame) -> Figure:
    """Lorentzian-fitted peak position of successive spectra under the field levels (Fig. 4c)."""
    fig = _fig(9.0, 3.6)
    ax = fig.subplots()
    if len(cycles):
        _shade(ax, cycles, _level_colors(sorted(cycles["field_kV_per_cm"].unique())))
        for level, grp in cycles.groupby("field_kV_per_cm"):
            ax.annotate(
                f"{level:.0f} kV/cm",
                (grp["on_start_s"].iloc[0], 0.98),
                xycoords=("data", "axes fraction"),
                fontsize=7,
                va="top",
                color="0.3",
            )
    for pid, grp in table.groupby("particle_id"):
        ax.plot(grp["time_s"], grp["peak_nm"], ".", ms=2, label=f"particle {pid}")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("peak (nm)")
    ax.legend(fontsize=8, markerscale=4)
    ax.set_title("Lorentzian peak per frame (shaded: field on)", fontsize=10)
    return fig


def shift_vs_field(
    shifts: pd.DataFrame, *, slope: float | None, slope_err: float | None, intercept: float | None
) -> Figure:
    """Most probable shift against field with the linear fit (Fig. 4d)."""
    fig = _fig(5.2, 3.8)
    ax = fig.subplots()
    per = shifts[shifts["particle_id"] >= 0]
    for pid, grp in per.groupby("particle_id"):
        ax.plot(
            grp["field_kV_per_cm"],
            grp["shift_nm"],
            "o",
            ms=3,
            color="0.6",
            alpha=0.7,
            label="particles" if pid == per["particle_id"].min() else None,
        )
    pooled = shifts[shifts["particle_id"] == -1]
    ax.errorbar(
        pooled["field_kV_per_cm"],
        pooled["shift_nm"],
        yerr=pooled["shift_err_nm"],
        fmt="o",
        color="k",
        capsize=3,
        label="all particles (settled)"
        if "shift_method" in pooled.columns and (pooled["shift_method"] == "settled_fit").any()
        else "all frames (normal fit)",
    )
    if slope is not None and math.isfinite(slope):
        e = np.linspace(0, float(pooled["field_kV_per_cm"].max() or 1.0) * 1.05, 50)
        ax.plot(
            e,
            (intercept or 0.0) + slope * e,
            "--",
            color=ON_COLOR,
            label=f"slope {slope * 1e3:.2f} ± {(slope_err or float('nan')) * 1e3:.2f} pm/(kV/cm)",
        )
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("field (kV/cm)")
    ax.set_ylabel("PL shift (nm)")
    ax.legend(fontsize=8)
    return fig


def calibration_residuals(calibration) -> Figure:
    """Residuals of the lamp lines about the dispersion polynomial."""
    fig = _fig(6.0, 3.0)
    ax = fig.subplots()
    lines = calibration.lines
    for mask, color, label in (
        (lines["used"], "k", "used"),
        (lines["saturated"], "#e15759", "saturated"),
        (lines["blended"] & ~lines["saturated"], "#b07aa1", "blended"),
        (lines["rejected"], "#edc948", "rejected"),
    ):
        mask = mask.astype(bool)
        if mask.any():
            ax.plot(
                lines.loc[mask, "pixel"],
                lines.loc[mask, "residual_nm"] * 1e3,
                "o",
                color=color,
                ms=4,
                label=label,
            )
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set_xlabel("pixel")
    ax.set_ylabel("line − fit (pm)")
    ax.legend(fontsize=8)
    rms = calibration.rms_nm
    ax.set_title(
        f"dispersion order {calibration.order}, {calibration.n_lines} lines"
        + ("" if rms is None else f", rms {rms * 1e3:.1f} pm"),
        fontsize=10,
    )
    return fig


# --------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return "—" if not math.isfinite(v) else f"{v:.{digits}g}"
    return html.escape(str(v))


def _example_particle(result: SpectraResult) -> int:
    st = result.stripes
    return int(st.sort_values("signal", ascending=False)["particle_id"].iloc[0])


def spectra_section_html(result: SpectraResult, *, figures_sink: dict | None = None) -> str:
    """The ``Spectra`` section of a run report: calibration, Fig. 4a-d, shift table.

    ``figures_sink``: as in :func:`plscope.report.render_report` (filled with
    ``fig_id -> (Figure, PNG bytes)`` for :func:`~plscope.report.html.save_figure_files`).

    Returns
    -------
    str
        An HTML fragment (``<h2>`` heading, figures as PNG data URIs,
        tables), to be placed in the body of the run report.
    """
    _figure = functools.partial(figure_html, paper=None, sink=figures_sink)
    s = result.summary
    cal = result.calibration
    parts = ["<h2 id='spectra'>Spectra</h2>"]
    cd = cal.to_dict()
    coefs = ", ".join(f"{c:.6g}" for c in cd["dispersion_nm"])
    parts.append(
        f"<p>Calibration ({html.escape(cal.source)}): λ(px) = [{coefs}] (nm, powers of px); "
        f"order {cal.order}, {cal.n_lines} lines, rms {_fmt(cal.rms_nm)} nm. "
        f"{s.get('spectral_n_particles')} particle(s) along the slit, {s.get('spectral_n_frames')} frames, "
        f"{_fmt(100 * (s.get('spectral_fit_ok_fraction') or 0.0), 3)} % of the Lorentzian fits good; "
        f"median peak {_fmt(s.get('spectral_peak_nm_median'))} nm, FWHM "
        f"{_fmt(s.get('spectral_fwhm_nm_median'))} nm.</p>"
    )
    if len(cal.lines):
        parts.append(
            _figure(
                calibration_residuals(cal),
                "Lamp lines about the fitted dispersion polynomial.",
                "fig-calibration",
            )
        )
    pid = _example_particle(result)
    col = int(np.flatnonzero(result.stripes["particle_id"].to_numpy() == pid)[0])
    tab = result.table
    one = tab[tab["particle_id"] == pid].sort_values("frame")
    parts.append(
        _figure(
            spectra_over_time(
                result.spectra[:, col, :],
                result.wavelength_nm,
                result.frame_time_s,
                peak_nm=one["peak_nm"].to_numpy(float),
                cycles=result.cycles,
                field_trace=result.field_trace,
                title=f"particle {pid}: PL spectra over time",
            ),
            "Fig. 4a: pseudo-colour spectra of the brightest particle over time, with the fitted peak and the "
            "field schedule.",
            "fig-4a",
        )
    )
    if len(result.shifts):
        parts.append(
            _figure(
                shift_histograms(tab, result.shifts),
                "Fig. 4b: shift of each frame from the field-off baseline of its cycle (all particles) "
                "and histograms of settled field-off and field-on frames with normal fits.",
                "fig-4b",
            )
        )
    parts.append(
        _figure(
            peak_positions(tab, result.cycles),
            "Fig. 4c: Lorentzian-fitted peak position of successive spectra under the field levels.",
            "fig-4c",
        )
    )
    if len(result.shifts):
        parts.append(
            _figure(
                shift_vs_field(
                    result.shifts,
                    slope=s.get("spectral_shift_slope_nm_per_kV_per_cm"),
                    slope_err=s.get("spectral_shift_slope_err_nm_per_kV_per_cm"),
                    intercept=s.get("spectral_shift_intercept_nm"),
                ),
                "Fig. 4d: shift against field with the weighted linear fit"
                + (
                    " (settled shifts from the whole peak-trace fits; the end-of-window histogram values "
                    "are shift_window_nm in the table below)."
                    if (result.shifts.get("shift_method", pd.Series(dtype=str)) == "settled_fit").any()
                    else " (most probable shift of the settled-window frames)."
                ),
                "fig-4d",
            )
        )
        show = result.shifts.copy()
        show["particle_id"] = show["particle_id"].map(lambda p: "all" if p < 0 else str(p))
        parts.append("<h3>Shifts per field</h3>")
        parts.append(show.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="—"))
    return "\n".join(parts)


def render_spectra_report(
    result: SpectraResult, *, provenance: dict | None = None, figures_sink: dict | None = None
) -> str:
    """A whole self-contained HTML page for a spectra-only run (``provenance``, ``figures_sink``: as in
    :func:`plscope.report.render_report`)."""
    s = result.summary
    name = s.get("sample") or str(s.get("run", ""))
    title = f"plscope report — {html.escape(str(name))}"
    slope = s.get("spectral_shift_slope_nm_per_kV_per_cm")
    slope_err = s.get("spectral_shift_slope_err_nm_per_kV_per_cm")
    rows = [
        ("frames", s.get("n_frames", s.get("spectral_n_frames"))),
        ("particles along the slit", s.get("spectral_n_particles")),
        (
            "field levels (kV/cm)",
            ", ".join(f"{e['field_kV_per_cm']:.4g}" for e in s.get("spectral_shift_nm") or []) or None,
        ),
        (
            "shift per level (nm)",
            ", ".join(f"{e['shift_nm']:+.3f}" for e in s.get("spectral_shift_nm") or []) or None,
        ),
        (
            "shift slope (pm per kV/cm, as in the figure)",
            None
            if slope is None
            else f"{slope * 1e3:.4g} ± {_fmt(None if slope_err is None else slope_err * 1e3, 2)}",
        ),
    ]
    table = "".join(f"<tr><td class='k'>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in rows)
    warns = "".join(f"<div class='warn'>{html.escape(str(w))}</div>" for w in s.get("warnings", []))
    body = (
        f"<h1>{title}</h1><p class='small'>run folder: {html.escape(str(s.get('run', '')))}</p>"
        f"{_qc_banner(s)}<h2>Summary</h2><table id='summary'>{table}</table>{warns}"
        + spectra_section_html(result, figures_sink=figures_sink)
        + provenance_section_html(provenance if provenance is not None else s.get("provenance"))
    )
    return render_page(html.unescape(title), body)
