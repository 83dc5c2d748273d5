"""Figures of the per-dataset report, one function per figure.

Each function takes plain arrays/tables and returns a
:class:`matplotlib.figure.Figure` built without pyplot (no global state, no
display backend needed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

ON_COLOR = "#f28e2b"   # field on (orange, as in the paper)
OFF_COLOR = "#4e79a7"  # field off (blue)


def _fig(w: float = 6.4, h: float = 4.0, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(w, h), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, list(np.atleast_1d(axes))


def reference_image(image: np.ndarray, particles: pd.DataFrame, *, pixel_size_nm: float) -> Figure:
    """Reference image with every particle outlined at its fitted size."""
    fig, (ax,) = _fig(6.0, 5.6)
    lo, hi = np.percentile(image, [1, 99.7])
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, origin="upper")
    for row in particles.itertuples():
        side = row.size_nm / pixel_size_nm if np.isfinite(row.size_nm) else 4.0
        ax.add_patch(Rectangle((row.x_px - side / 2, row.y_px - side / 2), side, side,
                               fill=False, ec="#59a14f", lw=1.2))
        ax.annotate(str(row.particle_id), (row.x_px + side / 2 + 1, row.y_px - side / 2),
                    color="#edc948", fontsize=8)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.set_title(f"Reference image, {len(particles)} particles (outlines: fitted side length)")
    return fig


def _shade_field(ax, cycles: pd.DataFrame) -> None:
    for c in cycles.itertuples():
        ax.axvspan(c.on_start_s, c.on_end_s, color=ON_COLOR, alpha=0.15, lw=0)


def trace_with_field(time_s: np.ndarray, intensity: np.ndarray, cycles: pd.DataFrame,
                     field_trace: tuple[np.ndarray, np.ndarray] | None, *, title: str) -> Figure:
    """PL trace of one particle with the field schedule (paper Fig. 1b)."""
    fig, (ax,) = _fig(9.0, 3.6)
    _shade_field(ax, cycles)
    norm = np.nanmedian(intensity[: max(5, len(intensity) // 50)])
    ax.plot(time_s, intensity / norm, lw=0.7, color="k")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("PL (normalized)")
    if field_trace is not None:
        ax2 = ax.twinx()
        ax2.plot(field_trace[0], field_trace[1], color=ON_COLOR, lw=0.8)
        ax2.set_ylabel("field (kV/cm)", color=ON_COLOR)
    ax.set_title(title)
    return fig


def cycle_curves(curves: dict[str, pd.DataFrame], *, title: str) -> Figure:
    """Superposed cycles, their average and the fit, polarization and recovery (Fig. 1c/2a-f)."""
    fig, axes = _fig(9.0, 3.4, ncols=2)
    for ax, phase, color, name in ((axes[0], "pol", ON_COLOR, "polarization (field on)"),
                                   (axes[1], "rec", OFF_COLOR, "recovery (field off)")):
        df = curves.get(phase)
        if df is None or len(df) == 0:
            ax.text(0.5, 0.5, "no data", ha="center", transform=ax.transAxes)
            continue
        for c in [c for c in df.columns if str(c).startswith("cycle_")]:
            ax.plot(df["t_s"], df[c], color="0.7", lw=0.6)
        ax.plot(df["t_s"], df["mean"], color=color, lw=1.5, label="cycle average")
        if "sem" in df:
            ax.fill_between(df["t_s"], df["mean"] - df["sem"], df["mean"] + df["sem"], color=color, alpha=0.25)
        if "fit" in df and np.isfinite(df["fit"]).any():
            ax.plot(df["t_s"], df["fit"], "k--", lw=1.0, label="biexponential fit")
        ax.set_xlabel("time since switch (s)")
        ax.set_ylabel("PL (normalized)")
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def _linfit_band(ax, x: np.ndarray, y: np.ndarray, color: str) -> None:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return
    p = np.polyfit(x[ok], y[ok], 1)
    xx = np.linspace(x[ok].min(), x[ok].max(), 50)
    ax.plot(xx, np.polyval(p, xx), color=color, lw=1, ls="--")


def tau_vs_size(kinetics: pd.DataFrame, particles: pd.DataFrame, *, field_kV_per_cm: float) -> Figure:
    """Polarization and recovery times against particle size (Fig. 2g-h)."""
    fig, axes = _fig(9.0, 3.6, ncols=2)
    k = kinetics[(kinetics["field_kV_per_cm"] == field_kV_per_cm) & kinetics["fit_ok"].astype(bool)]
    if "size_nm" not in k.columns:
        k = k.merge(particles[["particle_id", "size_nm"]], on="particle_id")
    for ax, col, color, name in ((axes[0], "tau_pol_s", ON_COLOR, "polarization"),
                                 (axes[1], "tau_rec_s", OFF_COLOR, "recovery")):
        ax.plot(k["size_nm"], k[col], "o", color=color, ms=5)
        _linfit_band(ax, k["size_nm"].to_numpy(float), k[col].to_numpy(float), color)
        ax.set_xlabel("side length (nm)")
        ax.set_ylabel(f"τ {name} (s)")
    fig.suptitle(f"Time constants against size at {field_kV_per_cm:.0f} kV/cm", fontsize=10)
    return fig


def tau_vs_field(kinetics: pd.DataFrame) -> Figure:
    """Mean polarization and recovery time against field (Fig. 3d)."""
    fig, (ax,) = _fig(5.0, 3.6)
    k = kinetics[kinetics["fit_ok"].astype(bool)]
    for col, color, name in (("tau_pol_s", ON_COLOR, "polarization"), ("tau_rec_s", OFF_COLOR, "recovery")):
        g = k.groupby("field_kV_per_cm")[col].agg(["mean", "std"])
        ax.errorbar(g.index, g["mean"], yerr=g["std"], fmt="o-", color=color, capsize=3, label=name)
    ax.set_xlabel("field (kV/cm)")
    ax.set_ylabel("τ (s), mean ± sd over particles")
    ax.legend(fontsize=8)
    return fig


def switching_efficiency(kinetics: pd.DataFrame) -> Figure:
    """Switching efficiency per field: values and histogram (Fig. 1d-e)."""
    fig, axes = _fig(9.0, 3.4, ncols=2)
    fields = sorted(kinetics["field_kV_per_cm"].unique())
    for i, e in enumerate(fields):
        se = kinetics.loc[kinetics["field_kV_per_cm"] == e, "switching_efficiency"].dropna()
        axes[0].plot(np.full(len(se), e) + np.linspace(-1, 1, len(se)), se, "o", ms=4, alpha=0.7)
        axes[1].hist(se, bins=12, alpha=0.6, label=f"{e:.0f} kV/cm")
    axes[0].set_xlabel("field (kV/cm)")
    axes[0].set_ylabel("switching efficiency")
    axes[1].set_xlabel("switching efficiency")
    axes[1].set_ylabel("particles")
    axes[1].legend(fontsize=8)
    return fig


def mobility_histogram(kinetics: pd.DataFrame, *, mean: float | None, std: float | None) -> Figure:
    """Histogram of per-particle, per-field ion mobilities (Fig. 3e)."""
    fig, (ax,) = _fig(5.0, 3.6)
    mu = kinetics.loc[kinetics["fit_ok"].astype(bool), "mobility_cm2_per_Vs"].dropna() * 1e10
    ax.hist(mu, bins=15, color="#76b7b2", ec="white")
    if mean is not None:
        ax.axvline(mean * 1e10, color="k", lw=1)
        ax.set_title(f"µ = ({mean * 1e10:.2f} ± {(std or 0) * 1e10:.2f})×10⁻¹⁰ cm² V⁻¹ s⁻¹", fontsize=10)
    ax.set_xlabel("ion mobility (10⁻¹⁰ cm² V⁻¹ s⁻¹)")
    ax.set_ylabel("count")
    return fig


def velocity_vs_field(kinetics: pd.DataFrame, *, slope_cm2_per_Vs: float | None) -> Figure:
    """Drift velocity against field with the slope fit (paper Fig. S10)."""
    fig, (ax,) = _fig(5.0, 3.6)
    k = kinetics[kinetics["fit_ok"].astype(bool)]
    ax.plot(k["field_kV_per_cm"], k["velocity_nm_per_s"], "o", alpha=0.6, color="#e15759")
    if slope_cm2_per_Vs is not None and len(k) > 1:
        x = np.asarray(k["field_kV_per_cm"], float)
        y = np.asarray(k["velocity_nm_per_s"], float)
        ok = np.isfinite(y)
        p = np.polyfit(x[ok], y[ok], 1)
        xx = np.linspace(x.min(), x.max(), 20)
        ax.plot(xx, np.polyval(p, xx), "k--", lw=1,
                label=f"slope → µ = {slope_cm2_per_Vs:.3g} cm² V⁻¹ s⁻¹")
        ax.legend(fontsize=8)
    ax.set_xlabel("field (kV/cm)")
    ax.set_ylabel("drift velocity L/τ (nm/s)")
    return fig
