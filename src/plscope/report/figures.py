"""Figures of the per-dataset report, one function per figure of the paper.

Each function takes plain arrays/tables and returns a
:class:`matplotlib.figure.Figure` built without pyplot (no global state, no
display backend needed). Missing data give an empty panel with a note, never
an exception or a warning.

========================  =============================  ==========================
paper (Chem. Sci. 2025)   content                        function
========================  =============================  ==========================
Fig. 1b                   PL trace with field schedule   :func:`trace_with_field`
Fig. 1c                   cycle superposition + average  :func:`cycle_superposition`
Fig. 1d-e                 SE per field, histogram        :func:`switching_efficiency`
Fig. 2a-f                 pol./rec. curves with fits,    :func:`size_examples`
                          small / medium / large
Fig. 2g-h                 tau against size, fit + band   :func:`tau_vs_size`
Fig. 3a                   pol. curves at every field     :func:`field_curves`
Fig. 3b-d                 tau against field              :func:`tau_vs_field`
Fig. 3e                   mobility histogram             :func:`mobility_histogram`
Fig. S10                  drift velocity against field   :func:`velocity_vs_field`
========================  =============================  ==========================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

ON_COLOR = "#f28e2b"  # field on / polarization (orange, as in the paper)
OFF_COLOR = "#4e79a7"  # field off / recovery (blue)
AVG_COLOR = "#e15759"  # cycle average (red, as in the paper's Fig. 1c)
FIT_COLOR = "k"
FIELD_CMAP = "viridis"
#: display unit of the mobilities: the same in the report's summary table and in Figs. 3e and S10
MU_UNIT, MU_SCALE = "10⁻¹⁰ cm² V⁻¹ s⁻¹", 1e10
#: display unit of the slopes of tau against size: the same in the summary table and in Fig. 2g-h
SLOPE_UNIT, SLOPE_SCALE = "ms/nm", 1e3


def _fig(w: float = 6.4, h: float = 4.0, nrows: int = 1, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(w, h), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, list(axes.ravel())


def _no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _finite(*arrays):
    ok = np.ones(np.asarray(arrays[0]).shape, bool)
    for a in arrays:
        ok &= np.isfinite(np.asarray(a, dtype=float))
    return ok


def _used(kinetics: pd.DataFrame) -> pd.DataFrame:
    """Rows that enter the statistics: the table's ``used`` column (written by the analysis).

    Tables without it (older results) fall back to ``fit_ok`` and empty
    ``exclusion_reason`` / ``excluded``.
    """
    if len(kinetics) == 0:
        return kinetics
    if "used" in kinetics.columns:
        return kinetics[kinetics["used"].fillna(False).astype(bool)]
    ok = kinetics["fit_ok"].astype(bool)
    for col in ("exclusion_reason", "excluded"):
        if col in kinetics.columns:
            ok &= kinetics[col].fillna("").astype(str) == ""
    return kinetics[ok]


def _shown(fig: Figure, **numbers) -> None:
    """Record the numbers a figure displays (``fig.plscope_shown``), for the report-equals-results test."""
    shown = getattr(fig, "plscope_shown", {})
    shown.update(numbers)
    cast(Any, fig).plscope_shown = shown  # an attribute of ours on matplotlib's Figure


def _field_colors(fields: Sequence[float]) -> dict[float, tuple]:
    from matplotlib import colormaps

    cmap = colormaps[FIELD_CMAP]
    n = len(fields)
    return {f: cmap(0.15 + 0.7 * (i / max(n - 1, 1))) for i, f in enumerate(fields)}


def _fmt_pm(value: float, err: float | None, unit: str = "s") -> str:
    if err is None or not np.isfinite(err):
        return f"{value:.2f} {unit}"
    return f"{value:.2f} ± {err:.2f} {unit}"


# --------------------------------------------------------------------------
# particles
# --------------------------------------------------------------------------


def nice_length_um(width_um: float, fraction: float = 0.2) -> float:
    """A round scale-bar length (1, 2 or 5 × 10^k µm) close to ``fraction`` of ``width_um``.

    >>> nice_length_um(25.6), nice_length_um(4.0), nice_length_um(100.0)
    (5.0, 1.0, 20.0)
    """
    target = max(width_um * fraction, 1e-6)
    k = float(np.floor(np.log10(target)))
    steps = [m * 10.0**k for m in (1.0, 2.0, 5.0, 10.0)]
    best = min(steps, key=lambda v: abs(float(np.log(v / target))))
    return float(round(best, 6))


def add_scale_bar(ax, *, pixel_size_nm: float, width_px: float, color: str = "white") -> float:
    """Draw a labelled scale bar in the lower right of an image axis (pixels); return its length in µm."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length_um = nice_length_um(width_px * pixel_size_nm / 1e3)
    label = f"{length_um:g} µm"
    bar = AnchoredSizeBar(
        ax.transData,
        length_um * 1e3 / pixel_size_nm,
        label,
        "lower right",
        pad=0.4,
        color=color,
        frameon=False,
        size_vertical=max(width_px / 150, 0.5),
        fontproperties={"size": 8},
    )
    ax.add_artist(bar)
    return length_um


def _outline_particles(ax, particles: pd.DataFrame, *, pixel_size_nm: float, shape: tuple) -> None:
    """Every particle's square outline (its fitted side length) and its id (:func:`reference_image`).

    The outlines are one collection and the ids plain texts: the PNG is pixel for pixel that of one
    patch and one annotation per particle (the mitred corners of a patch), at a fraction of the
    drawing time. As an annotation would, an id is drawn unclipped, and only when its anchor lies on
    the image.
    """
    if len(particles) == 0:
        return
    size = particles["size_nm"].to_numpy(float)
    side = np.where(np.isfinite(size), size / pixel_size_nm, 4.0)
    x_px, y_px = particles["x_px"].to_numpy(float), particles["y_px"].to_numpy(float)
    squares = [Rectangle((x - s / 2, y - s / 2), s, s) for x, y, s in zip(x_px, y_px, side, strict=True)]
    outlines = PatchCollection(
        squares, facecolors="none", edgecolors="#59a14f", linewidths=1.2, joinstyle="miter", capstyle="butt"
    )
    ax.add_collection(outlines, autolim=False)  # the image sets the limits (patches never moved them)
    lx, ly = x_px + side / 2 + 1, y_px - side / 2
    on_image = (lx >= -0.5) & (lx <= shape[1] - 0.5) & (ly >= -0.5) & (ly <= shape[0] - 0.5)
    for pid, tx, ty in zip(
        particles["particle_id"].to_numpy()[on_image], lx[on_image], ly[on_image], strict=True
    ):
        ax.text(tx, ty, str(pid), color="#edc948", fontsize=8, clip_on=False)


def reference_image(
    image: np.ndarray,
    particles: pd.DataFrame,
    *,
    pixel_size_nm: float,
    intensity_label: str = "mean PL of the reference frames (camera counts)",
) -> Figure:
    """Reference image with every particle outlined at its fitted size, a scale bar and a colour bar.

    Parameters
    ----------
    image : ndarray, shape (rows, columns)
        The saved reference image (mean of the first frames).
    particles : DataFrame
        ``particle_id, x_px, y_px, size_nm`` (x: column, y: row, pixels).
    pixel_size_nm : float
        Pixel size in the sample plane (for the outlines and the scale bar).
    intensity_label : str
        Label of the colour bar.
    """
    fig, (ax,) = _fig(6.4, 5.6)
    lo, hi = np.percentile(image, [1, 99.7])
    im = ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, origin="upper")
    _outline_particles(ax, particles, pixel_size_nm=pixel_size_nm, shape=image.shape)
    length_um = add_scale_bar(ax, pixel_size_nm=pixel_size_nm, width_px=image.shape[1])
    cbar = fig.colorbar(im, ax=ax, shrink=0.85, pad=0.02)
    cbar.set_label(intensity_label, fontsize=8)
    cbar.ax.tick_params(labelsize=7)
    ax.set_xlabel("x (px, column)")
    ax.set_ylabel("y (px, row)")
    ax.set_title(f"Reference image, {len(particles)} particles (outlines: fitted side length)", fontsize=10)
    _shown(fig, scale_bar_um=length_um, pixel_size_nm=pixel_size_nm, n_particles=len(particles))
    return fig


# --------------------------------------------------------------------------
# Fig. 1
# --------------------------------------------------------------------------


def _shade_field(ax, cycles: pd.DataFrame) -> None:
    for c in cycles.itertuples():
        ax.axvspan(c.on_start_s, c.on_end_s, color=ON_COLOR, alpha=0.15, lw=0)


def trace_with_field(
    time_s: np.ndarray,
    intensity: np.ndarray,
    cycles: pd.DataFrame,
    field_trace: tuple[np.ndarray, np.ndarray] | None,
    *,
    title: str,
    bleach=None,
) -> Figure:
    """PL trace of one particle with the field schedule (paper Fig. 1b).

    Parameters
    ----------
    time_s, intensity : ndarray, shape (n,)
        Mid-exposure frame times (s) and the particle's PL.
    cycles : DataFrame
        ``on_start_s, on_end_s`` of every cycle (shaded orange).
    field_trace : (time_s, field_kV_per_cm) or None
        The recorded field, drawn on a second axis.
    title : str
    bleach : callable, optional
        The bleaching model ``b(t)`` divided out in the analysis (drawn as
        the expected bright level).
    """
    from matplotlib.patches import Patch

    fig, (ax,) = _fig(9.0, 3.9)
    _shade_field(ax, cycles)
    y = np.asarray(intensity, dtype=float)
    t = np.asarray(time_s, dtype=float)
    head = y[: max(5, len(y) // 50)]
    norm = np.nanmedian(head) if np.any(np.isfinite(head)) else np.nan
    if not np.isfinite(norm) or norm == 0:
        norm = np.nanmax(np.abs(y)) if np.any(np.isfinite(y)) else 1.0
    handles = ax.plot(t, y / norm, lw=0.7, color="k", label="PL (left axis)")
    if bleach is not None and t.size:
        handles += ax.plot(
            t,
            np.asarray(bleach(t), dtype=float),
            color="#59a14f",
            lw=1.0,
            ls="--",
            label="bleaching model b(t) (left axis)",
        )
    if len(cycles):
        handles.append(Patch(color=ON_COLOR, alpha=0.15, label="field on"))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("PL (normalized to the first frames)")
    if field_trace is not None:
        ax2 = ax.twinx()
        handles += ax2.plot(
            field_trace[0], field_trace[1], color=ON_COLOR, lw=0.8, label="field (right axis)"
        )
        ax2.set_ylabel("field (kV/cm)", color=ON_COLOR)
    # the legend sits above the axes: no line of either axis can run through it
    fig.legend(handles=handles, loc="outside upper right", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    return fig


def _cycle_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if str(c).startswith("cycle_")]


def cycle_superposition(
    pol: pd.DataFrame | None, rec: pd.DataFrame | None, *, on_duration_s: float, title: str
) -> Figure:
    """Every cycle superposed (grey) with their average (red): a whole field cycle (Fig. 1c).

    Parameters
    ----------
    pol, rec : DataFrame or None
        Averaged curves of one particle and field (``t_s, mean, sem, cycle_<id>``)
        for polarization and recovery, times from their switching edge.
    on_duration_s : float
        Length of the ON half; recovery times are shifted by it.
    title : str
    """
    fig, (ax,) = _fig(7.0, 3.8)
    parts = [(df, off) for df, off in ((pol, 0.0), (rec, on_duration_s)) if df is not None and len(df)]
    if not parts:
        _no_data(ax)
        return fig
    ax.axvspan(0.0, on_duration_s, color=ON_COLOR, alpha=0.12, lw=0)
    if rec is not None and len(rec):
        ax.axvspan(
            on_duration_s, on_duration_s + float(np.nanmax(rec["t_s"])), color=OFF_COLOR, alpha=0.08, lw=0
        )
    n_cycles = 0
    for df, off in parts:
        cols = _cycle_columns(df)
        n_cycles = max(n_cycles, len(cols))
        for c in cols:
            ax.plot(df["t_s"] + off, df[c], color="0.65", lw=0.6)
    for i, (df, off) in enumerate(parts):
        ax.plot(df["t_s"] + off, df["mean"], color=AVG_COLOR, lw=1.6, label="average" if i == 0 else None)
    ax.set_xlabel("time since field on (s)")
    ax.set_ylabel("PL / pre-switch level")
    ax.set_title(f"{title}: {n_cycles} cycles superposed (grey), average (red)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def switching_efficiency(
    kinetics: pd.DataFrame, *, se_cycles: pd.DataFrame | None = None, particle_id=None
) -> Figure:
    """Switching efficiency of one particle per cycle and field, and its histogram over particles (Fig. 1d-e).

    Parameters
    ----------
    kinetics : DataFrame
        Per particle and field: ``particle_id, field_kV_per_cm,
        switching_efficiency`` (+ ``switching_efficiency_std``).
    se_cycles : DataFrame, optional
        Per cycle: ``particle_id, cycle, field_kV_per_cm, switching_efficiency, used``.
    particle_id : optional
        The particle of panel (d); without per-cycle data its mean ± sd per field is shown.
    """
    fig, axes = _fig(10.0, 3.6, ncols=2)
    ax_d, ax_e = axes
    fields = sorted(kinetics["field_kV_per_cm"].dropna().unique()) if len(kinetics) else []
    colors = _field_colors(fields)
    # (d) one particle
    drawn = False
    if particle_id is not None and se_cycles is not None and len(se_cycles):
        sc = se_cycles[se_cycles["particle_id"] == particle_id]
        for f in fields:
            s = sc[np.isclose(sc["field_kV_per_cm"].to_numpy(float), f, rtol=1e-3)]
            s = s[np.isfinite(s["switching_efficiency"].to_numpy(float))]
            if len(s) == 0:
                continue
            used = s["used"].astype(bool).to_numpy() if "used" in s else np.ones(len(s), bool)
            x = np.full(len(s), f) + np.linspace(-0.6, 0.6, len(s))
            ax_d.plot(x[used], s["switching_efficiency"].to_numpy(float)[used], "o", color=colors[f], ms=5)
            if np.any(~used):
                ax_d.plot(
                    x[~used],
                    s["switching_efficiency"].to_numpy(float)[~used],
                    "x",
                    color="0.5",
                    ms=5,
                    label="spoiled by a blink",
                )
            ax_d.errorbar(
                [f + 2.0],
                [np.mean(s["switching_efficiency"].to_numpy(float)[used])] if np.any(used) else [np.nan],
                yerr=[np.std(s["switching_efficiency"].to_numpy(float)[used], ddof=1)]
                if np.count_nonzero(used) > 1
                else None,
                fmt="s",
                color="k",
                ms=4,
                capsize=3,
            )
            drawn = True
        ax_d.set_title(f"(d) particle {particle_id}: SE of every cycle (mean ± sd: black)", fontsize=9)
    elif particle_id is not None and len(kinetics):
        k = kinetics[kinetics["particle_id"] == particle_id].sort_values("field_kV_per_cm")
        se = k["switching_efficiency"].to_numpy(float)
        sd = k["switching_efficiency_std"].to_numpy(float) if "switching_efficiency_std" in k else None
        ok = np.isfinite(se)
        if np.any(ok):
            ax_d.errorbar(
                k["field_kV_per_cm"].to_numpy(float)[ok],
                se[ok],
                yerr=None if sd is None else np.where(np.isfinite(sd), sd, 0.0)[ok],
                fmt="o",
                color="k",
                capsize=3,
            )
            drawn = True
        ax_d.set_title(f"(d) particle {particle_id}: SE mean ± sd over cycles", fontsize=9)
    if drawn:
        ax_d.set_xlabel("field (kV/cm)")
        ax_d.set_ylabel("switching efficiency")
        handles, labels = ax_d.get_legend_handles_labels()
        if handles:
            uniq = dict(zip(labels, handles))
            ax_d.legend(uniq.values(), uniq.keys(), fontsize=7)
    else:
        _no_data(ax_d, "no switching efficiency")
    # (e) histogram over particles per field
    any_hist = False
    all_se = kinetics["switching_efficiency"].to_numpy(float) if len(kinetics) else np.empty(0)
    all_se = all_se[np.isfinite(all_se)]
    if all_se.size:
        bins = np.linspace(min(0.0, all_se.min()), max(all_se.max(), 0.05) * 1.05, 16)
        for f in fields:
            se = kinetics.loc[kinetics["field_kV_per_cm"] == f, "switching_efficiency"].to_numpy(float)
            se = se[np.isfinite(se)]
            if se.size:
                ax_e.hist(
                    se,
                    bins=bins,
                    alpha=0.55,
                    color=colors[f],
                    label=f"{f:.0f} kV/cm: {se.mean():.3f} ± {np.std(se, ddof=1) if se.size > 1 else 0:.3f}",
                )
                any_hist = True
    if any_hist:
        ax_e.set_xlabel("switching efficiency")
        ax_e.set_ylabel("particles")
        ax_e.set_title(f"(e) histogram over {kinetics['particle_id'].nunique()} particles", fontsize=9)
        ax_e.legend(fontsize=7)
    else:
        _no_data(ax_e, "no switching efficiency")
    return fig


# --------------------------------------------------------------------------
# Fig. 2
# --------------------------------------------------------------------------


def _curve_panel(ax, df: pd.DataFrame | None, *, color: str, title: str, show_cycles: bool = True) -> None:
    if df is None or len(df) == 0:
        _no_data(ax)
        ax.set_title(title, fontsize=9)
        return
    if show_cycles:
        for c in _cycle_columns(df):
            ax.plot(df["t_s"], df[c], color="0.75", lw=0.5)
    ax.plot(df["t_s"], df["mean"], color=color, lw=1.4, label="average")
    if "sem" in df:
        sem = df["sem"].to_numpy(float)
        ok = np.isfinite(sem)
        if np.any(ok):
            ax.fill_between(
                df["t_s"].to_numpy(float)[ok],
                (df["mean"] - df["sem"]).to_numpy(float)[ok],
                (df["mean"] + df["sem"]).to_numpy(float)[ok],
                color=color,
                alpha=0.25,
                lw=0,
            )
    if "fit" in df and np.isfinite(df["fit"].to_numpy(float)).any():
        ax.plot(df["t_s"], df["fit"], "--", color=FIT_COLOR, lw=1.0, label="fit (model in the caption)")
    ax.set_title(title, fontsize=9)


def size_examples(examples: Sequence[Mapping], *, field_kV_per_cm: float) -> Figure:
    """Polarization (top) and recovery (bottom) of small, medium and large particles (Fig. 2a-f).

    Parameters
    ----------
    examples : sequence of mapping
        One per column: ``particle_id, size_nm, pol, rec`` (curve frames as
        in :func:`cycle_superposition`), ``tau_pol_s, tau_pol_err_s,
        tau_rec_s, tau_rec_err_s``.
    field_kV_per_cm : float
    """
    n = max(len(examples), 1)
    fig, axes = _fig(3.4 * n + 0.6, 5.6, nrows=2, ncols=n)
    if not examples:
        for ax in axes:
            _no_data(ax, "no particle with usable fits")
        return fig
    letters = "abcdef"
    for j, ex in enumerate(examples):
        top, bottom = axes[j], axes[n + j]
        label = f"#{ex['particle_id']}, {ex['size_nm']:.0f} nm"
        _curve_panel(
            top,
            ex.get("pol"),
            color=ON_COLOR,
            title=f"({letters[j]}) {label}: τ_pol = {_fmt_pm(ex['tau_pol_s'], ex.get('tau_pol_err_s'))}",
        )
        _curve_panel(
            bottom,
            ex.get("rec"),
            color=OFF_COLOR,
            title=f"({letters[n + j]}) τ_rec = {_fmt_pm(ex['tau_rec_s'], ex.get('tau_rec_err_s'))}",
        )
        bottom.set_xlabel("time since switch (s)")
    axes[0].set_ylabel("PL, field on (norm.)")
    axes[n].set_ylabel("PL, field off (norm.)")
    axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(
        f"Polarization and recovery at {field_kV_per_cm:.0f} kV/cm: small, medium and large particles",
        fontsize=10,
    )
    return fig


def _fit_line(fit: Mapping, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Line and confidence band of a saved linear fit (``slope, intercept, n, resid_sd, x_mean,
    sxx, t_crit``, as in ``summary.json``)."""
    pred = fit["intercept"] + fit["slope"] * xx
    half = fit["t_crit"] * fit["resid_sd"] * np.sqrt(1.0 / fit["n"] + (xx - fit["x_mean"]) ** 2 / fit["sxx"])
    return pred, pred - half, pred + half


def tau_vs_size(
    kinetics: pd.DataFrame,
    particles: pd.DataFrame,
    *,
    field_kV_per_cm: float,
    confidence: float = 0.95,
    fits: Mapping[str, Mapping | None] | None = None,
) -> Figure:
    """Polarization and recovery times against particle size with the run's saved linear fits (Fig. 2g-h).

    Points are the kinetics rows with ``used`` at ``field_kV_per_cm``; the
    lines and bands are drawn from ``fits`` (``{"tau_pol_s": summary
    ["tau_pol_size_fit"], "tau_rec_s": ...}``), never re-fitted here.
    """
    fits = fits or {}
    fig, axes = _fig(10.0, 3.8, ncols=2)
    k = _used(kinetics)
    k = k[np.isclose(k["field_kV_per_cm"].to_numpy(float), field_kV_per_cm, rtol=1e-3)] if len(k) else k
    if "size_nm" not in k.columns or not np.isfinite(k["size_nm"].to_numpy(float)).any():
        k = k.drop(columns=["size_nm"], errors="ignore").merge(
            particles[["particle_id", "size_nm"]], on="particle_id", how="left"
        )
    for ax, col, color, name, letter in (
        (axes[0], "tau_pol_s", ON_COLOR, "polarization", "g"),
        (axes[1], "tau_rec_s", OFF_COLOR, "recovery", "h"),
    ):
        x = k["size_nm"].to_numpy(float) if len(k) else np.empty(0)
        y = k[col].to_numpy(float) if len(k) else np.empty(0)
        err = k[col.replace("_s", "_err_s")].to_numpy(float) if col.replace("_s", "_err_s") in k else None
        ok = _finite(x, y) if x.size else np.zeros(0, bool)
        if not np.any(ok):
            _no_data(ax)
            ax.set_title(f"({letter}) {name}", fontsize=9)
            continue
        yerr = None if err is None else np.where(np.isfinite(err), err, 0.0)[ok]
        ax.errorbar(x[ok], y[ok], yerr=yerr, fmt="o", color=color, ms=5, capsize=2, lw=0.8)
        fit = fits.get(col)
        title = f"({letter}) {name}"
        shown = {f"{col}_n_points": int(np.count_nonzero(ok))}
        if fit and fit.get("success"):
            xx = np.linspace(x[ok].min(), x[ok].max(), 60)
            pred, lo, hi = _fit_line(fit, xx)
            ax.plot(xx, pred, color=color, lw=1.2, ls="--")
            conf = fit.get("confidence", confidence)
            ax.fill_between(
                xx, lo, hi, color=color, alpha=0.18, lw=0, label=f"{100 * conf:.0f} % confidence band"
            )
            title += (
                f": slope {SLOPE_SCALE * fit['slope']:.2f} ± {SLOPE_SCALE * fit['slope_err']:.2f} {SLOPE_UNIT},"
                f" R² = {fit['r2']:.2f}"
                f" (n = {fit['n']})"
            )
            shown.update(
                {f"{col}_slope": fit["slope"], f"{col}_slope_err": fit["slope_err"], f"{col}_n": fit["n"]}
            )
            ax.legend(fontsize=7, loc="upper left")
        _shown(fig, **shown)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("side length L (nm)")
        ax.set_ylabel(f"τ_{name[:3]} (s)")
    fig.suptitle(f"Time constants against size at {field_kV_per_cm:.0f} kV/cm", fontsize=10)
    return fig


# --------------------------------------------------------------------------
# Fig. 3
# --------------------------------------------------------------------------


def field_curves(curves_by_field: Mapping[float, pd.DataFrame], *, title: str, phase: str = "pol") -> Figure:
    """Averaged polarization curves of one particle at every field, with their fits (Fig. 3a)."""
    fig, (ax,) = _fig(6.0, 3.8)
    fields = sorted(f for f, df in curves_by_field.items() if df is not None and len(df))
    if not fields:
        _no_data(ax)
        return fig
    colors = _field_colors(fields)
    for f in fields:
        df = curves_by_field[f]
        ax.plot(df["t_s"], df["mean"], color=colors[f], lw=1.2, label=f"{f:.0f} kV/cm")
        if "fit" in df and np.isfinite(df["fit"].to_numpy(float)).any():
            ax.plot(df["t_s"], df["fit"], "--", color="k", lw=0.8)
    ax.set_xlabel("time since switch (s)")
    ax.set_ylabel("PL (normalized)")
    ax.set_title(f"{title} ({'polarization' if phase == 'pol' else 'recovery'}; dashed: fits)", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def _tau_one_particle(ax, k: pd.DataFrame, particle_id, phases) -> None:
    """Panel (b): one particle's time constants against field."""
    kp = (
        k[k["particle_id"] == particle_id].sort_values("field_kV_per_cm")
        if particle_id is not None
        else k[:0]
    )
    if not len(kp):
        _no_data(ax)
        return
    for col, color, name in phases:
        ecol = col.replace("_s", "_err_s")
        err = kp[ecol].to_numpy(float) if ecol in kp else None
        ax.errorbar(
            kp["field_kV_per_cm"],
            kp[col],
            yerr=None if err is None else np.nan_to_num(err),
            fmt="o-",
            color=color,
            capsize=3,
            label=name,
        )
    ax.set_xlabel("field (kV/cm)")
    ax.set_ylabel("τ (s) ± standard error")
    ax.legend(fontsize=8)
    ax.set_title(f"(b) particle {particle_id}", fontsize=9)


def _tau_histograms(fig, spec, k: pd.DataFrame, phases) -> None:
    """Panel (c): small multiples, one histogram per field (rows) and phase (columns), shared bins."""
    fields = sorted(k["field_kV_per_cm"].unique()) if len(k) else []
    vals = np.concatenate([k[c].to_numpy(float) for c, _, _ in phases]) if len(k) else np.empty(0)
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        _no_data(fig.add_subplot(spec), "no time constants")
        return
    bins = np.linspace(0.0, vals.max() * 1.05, 16)
    grid = spec.subgridspec(len(fields), 2, hspace=0.08, wspace=0.08)
    first = None
    for i, f in enumerate(fields):
        for j, (col, color, name) in enumerate(phases):
            ax = fig.add_subplot(grid[i, j], sharex=first, sharey=first)
            first = first or ax
            x = k.loc[k["field_kV_per_cm"] == f, col].to_numpy(float)
            x = x[np.isfinite(x)]
            ax.hist(x, bins=bins, color=color, alpha=0.85, ec="white", lw=0.3)
            ax.text(
                0.97,
                0.9,
                f"{f:.0f} kV/cm, n = {x.size}",
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=6,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
            )
            ax.margins(y=0.25)
            ax.tick_params(labelsize=6)
            if i == 0:
                ax.set_title(("(c) " if j == 0 else "") + name, fontsize=8)
            if i < len(fields) - 1:
                ax.tick_params(labelbottom=False)
            else:
                ax.set_xlabel("τ (s)", fontsize=7)
            if j == 1:
                ax.tick_params(labelleft=False)
            elif i == len(fields) // 2:
                ax.set_ylabel("particles", fontsize=7)


def _tau_population(ax, k: pd.DataFrame, phases, dependence: Mapping | None) -> None:
    """Panel (d): mean ± sd (and SEM) over particles per field; the power-law exponents in the legend."""
    if not len(k):
        _no_data(ax)
        return
    for col, color, name in phases:
        g = k.groupby("field_kV_per_cm")[col].agg(["mean", "std", "count"])
        sem = g["std"] / np.sqrt(g["count"].clip(lower=1))
        label = name
        dep = (dependence or {}).get(col)
        if dep and dep.get("exponent") is not None:
            label += (
                f": p = {dep['exponent']:.2f} [{dep['ci_low']:.2f}, {dep['ci_high']:.2f}],"
                f" p-value {dep['p_value']:.2g}"
            )
        ax.errorbar(
            g.index,
            g["mean"],
            yerr=np.nan_to_num(g["std"].to_numpy(float)),
            fmt="o-",
            color=color,
            capsize=3,
            label=label,
        )
        ax.errorbar(
            g.index,
            g["mean"],
            yerr=np.nan_to_num(sem.to_numpy(float)),
            fmt="none",
            color="k",
            capsize=5,
            lw=1.5,
        )
    ax.set_xlabel("field (kV/cm)")
    ax.set_ylabel("τ (s): mean ± sd (black: ± SEM)")
    ax.legend(fontsize=7, title="exponent p of τ ∝ E^p within particles", title_fontsize=7)
    ax.set_title(f"(d) all particles (n = {k['particle_id'].nunique()})", fontsize=9)


def tau_vs_field(kinetics: pd.DataFrame, *, particle_id=None, dependence: Mapping | None = None) -> Figure:
    """Time constants against field: one particle (b), histograms (c), population (d) (Fig. 3b-d).

    Panel (c) is a grid of small histograms, one per field (rows) and phase
    (columns), with shared bins and axes, instead of overlapping outlines.
    Panel (d) gives the saved within-particle power-law exponents in its
    legend; no power-law line is drawn (the law is fitted within particles,
    each with its own prefactor, so it has no single curve to draw).

    Parameters
    ----------
    kinetics : DataFrame
        Per particle and field: ``tau_pol_s, tau_rec_s`` (+ ``_err_s``), ``used``.
    particle_id : optional
        The particle of panel (b).
    dependence : mapping, optional
        ``{'tau_pol_s': dict, 'tau_rec_s': dict}`` of
        :class:`~plscope.kinetics.stats.FieldDependence` results (shown in (d)).
    """
    fig = Figure(figsize=(13.5, 4.4), layout="constrained")
    gs = fig.add_gridspec(1, 3, width_ratios=[1.0, 1.1, 1.2])
    k = _used(kinetics)
    phases = (("tau_pol_s", ON_COLOR, "polarization"), ("tau_rec_s", OFF_COLOR, "recovery"))
    _tau_one_particle(fig.add_subplot(gs[0, 0]), k, particle_id, phases)
    _tau_histograms(fig, gs[0, 1], k, phases)
    _tau_population(fig.add_subplot(gs[0, 2]), k, phases, dependence)
    _shown(
        fig,
        **{f"{col}_exponent": ((dependence or {}).get(col) or {}).get("exponent") for col, _, _ in phases},
    )
    return fig


def mobility_histogram(
    kinetics: pd.DataFrame, *, mean: float | None, std: float | None, ci: Sequence[float] | None = None
) -> Figure:
    """Histogram of per-particle, per-field ion mobilities with mean ± sd and confidence interval (Fig. 3e)."""
    fig, (ax,) = _fig(5.6, 3.8)
    k = _used(kinetics)
    mu = k["mobility_cm2_per_Vs"].to_numpy(float) * MU_SCALE if len(k) else np.empty(0)
    mu = mu[np.isfinite(mu)]
    if mu.size == 0:
        _no_data(ax, "no mobility")
        return fig
    ax.hist(mu, bins=min(15, max(5, mu.size // 3)), color="#76b7b2", ec="white")
    _shown(fig, n_rows=int(mu.size), mean=mean, std=std, ci=None if ci is None else list(ci))
    if ci is not None and all(c is not None and np.isfinite(c) for c in ci):
        ax.axvspan(
            ci[0] * MU_SCALE, ci[1] * MU_SCALE, color="k", alpha=0.12, lw=0, label="95 % CI of the mean"
        )
    if mean is not None:
        ax.axvline(mean * MU_SCALE, color="k", lw=1.2, label="mean")
        if std is not None:
            ax.axvline((mean - std) * MU_SCALE, color="k", lw=0.8, ls=":")
            ax.axvline((mean + std) * MU_SCALE, color="k", lw=0.8, ls=":", label="± sd")
        ax.set_title(
            f"µ = {mean * MU_SCALE:.2f} ± {(std or 0) * MU_SCALE:.2f} (sd) {MU_UNIT}"
            + (
                f", 95 % CI [{ci[0] * MU_SCALE:.2f}, {ci[1] * MU_SCALE:.2f}]" if ci and None not in ci else ""
            ),
            fontsize=9,
        )
        ax.legend(fontsize=7)
    ax.set_xlabel(f"ion mobility µ ({MU_UNIT})")
    ax.set_ylabel("particles × fields")
    return fig


def velocity_vs_field(
    kinetics: pd.DataFrame,
    *,
    slope_cm2_per_Vs: float | None,
    slope_err_cm2_per_Vs: float | None = None,
    intercept_nm_per_s: float | None = None,
) -> Figure:
    """Drift velocity ``L / tau_pol`` against field with the slope fit (paper Fig. S10)."""
    fig, (ax,) = _fig(5.6, 3.8)
    k = _used(kinetics)
    if len(k) == 0:
        _no_data(ax)
        return fig
    x = k["field_kV_per_cm"].to_numpy(float)
    y = k["velocity_nm_per_s"].to_numpy(float)
    err = k["velocity_err_nm_per_s"].to_numpy(float) if "velocity_err_nm_per_s" in k else None
    ok = _finite(x, y)
    ax.errorbar(
        x[ok],
        y[ok],
        yerr=None if err is None else np.nan_to_num(err[ok]),
        fmt="o",
        alpha=0.6,
        color="#e15759",
        capsize=2,
        ms=4,
    )
    if slope_cm2_per_Vs is not None and np.count_nonzero(ok) > 1:
        xx = np.linspace(x[ok].min(), x[ok].max(), 20)
        slope_nm = slope_cm2_per_Vs * 1e3 / 1e-7  # (nm/s) per (kV/cm)
        b = (
            intercept_nm_per_s
            if intercept_nm_per_s is not None
            else float(np.mean(y[ok]) - slope_nm * np.mean(x[ok]))
        )
        _shown(fig, n_rows=int(np.count_nonzero(ok)), slope=slope_cm2_per_Vs, intercept=b)
        label = f"slope → µ = {slope_cm2_per_Vs * MU_SCALE:.3g}"
        if slope_err_cm2_per_Vs is not None:
            label += f" ± {slope_err_cm2_per_Vs * MU_SCALE:.2g} (standard error)"
        ax.plot(xx, b + slope_nm * xx, "k--", lw=1, label=f"{label} {MU_UNIT}")
        ax.legend(fontsize=8)
    ax.set_xlabel("field (kV/cm)")
    ax.set_ylabel("drift velocity L/τ_pol (nm/s)")
    return fig


def cycle_curves(curves: dict[str, pd.DataFrame], *, title: str) -> Figure:
    """Superposed cycles, their average and the fit, polarization and recovery of one particle."""
    fig, axes = _fig(9.0, 3.4, ncols=2)
    for ax, phase, color, name in (
        (axes[0], "pol", ON_COLOR, "polarization (field on)"),
        (axes[1], "rec", OFF_COLOR, "recovery (field off)"),
    ):
        _curve_panel(ax, curves.get(phase), color=color, title=name)
        ax.set_xlabel("time since switch (s)")
        ax.set_ylabel("PL (normalized)")
    fig.suptitle(title, fontsize=10)
    return fig
