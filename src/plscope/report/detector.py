"""The detector report: one self-contained HTML file (figures embedded as PNG data URIs).

With a figure sink (as :func:`plscope.pipeline.detector.run_detector` passes), every
figure is also kept for ``figures/<id>.png|svg|pdf`` next to the report.

Renders only: every number comes from the analysis result and its summary.
Figures (each a ``<figure>`` with an ``id``; the paper panel of
J. Mater. Chem. C 2025, 13, 12685 in ``data-paper-figure``):

==================  ======  ==============================================
id                  paper   content
==================  ======  ==============================================
``fig-traces``      4d/4g   every record with its on-segments shaded
``fig-pyro``        2       pyroelectric pulses superposed, P_e per pulse
``fig-dose``        4f/4h   current density and SNR against dose rate, fits
                            and 95 % bands (weighted and unweighted SNR line)
``fig-cycle``       S12     cycle average of the highest dose rate, 10/90 %
``fig-iv``          4a-c    dark I-V, irradiated I-V (V_oc), Hecht fit
``fig-records``     4i      dark-current drift and stability records
==================  ======  ==============================================
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .html import _safe_figure
from .page import render_page

logger = logging.getLogger(__name__)

__all__ = ["render_detector_report"]

_ROWS = [
    ("pyroelectric_coefficient_uC_per_cm2_K", "pyroelectric_coefficient_std_uC_per_cm2_K", "P_e (µC cm⁻² K⁻¹)", "sd"),
    ("sensitivity_uC_per_Gy_cm2", "sensitivity_se_uC_per_Gy_cm2", "sensitivity (µC Gy⁻¹ cm⁻²)", "SE"),
    ("detection_limit_nGy_per_s", "detection_limit_se_nGy_per_s", "detection limit, weighted SNR line (nGy s⁻¹)", "SE"),
    ("detection_limit_unweighted_nGy_per_s", None, "detection limit, unweighted line (nGy s⁻¹)", ""),
    ("rise_time_s", None, "rise time 10–90 % (s)", ""), ("decay_time_s", None, "decay time 90–10 % (s)", ""),
    ("rise_tau_s", "rise_tau_se_s", "rise time constant τ (s)", "SE"),
    ("decay_tau_s", "decay_tau_se_s", "decay time constant τ (s)", "SE"),
    ("contrast_percent", None, "pyro-photovoltaic contrast (%)", ""),
    ("resistivity_ohm_cm", "resistivity_se_ohm_cm", "resistivity ρ (Ω cm)", "SE"),
    ("open_circuit_voltage_V", "open_circuit_voltage_se_V", "open-circuit voltage (V)", "SE"),
    ("mu_tau_cm2_per_V", "mu_tau_se_cm2_per_V", "µτ (cm² V⁻¹), modified Hecht", "SE"),
    ("dark_current_drift_nA_per_cm_s_V", "dark_current_drift_se_nA_per_cm_s_V", "dark-current drift (nA cm⁻¹ s⁻¹ V⁻¹)", "SE"),
    ("responsivity_A_per_W", None, "responsivity (A W⁻¹), pyro pulses", ""),
    ("specific_detectivity_Jones", None, "specific detectivity D* (Jones)", ""),
    ("linear_dynamic_range_dB", None, "linear dynamic range over the dose rates (dB)", ""),
    ("stability_change_percent", None, "change under continuous exposure (%)", ""),
]  # fmt: skip


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, (float, int, np.floating)):
        return f"{v:.4g}"
    return html.escape(str(v))


def _shade(ax, seg) -> None:
    for a, b in zip(seg["on_s"], seg["off_s"]):
        ax.axvspan(a, b, color="#f2c14e", alpha=0.25, lw=0)


def _traces(res) -> Figure:
    n = len(res.traces)
    fig = Figure(figsize=(9, 1.9 * n + 0.5), layout="constrained")
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    for ax, tr in zip(axes, res.traces):
        ax.plot(tr["time_s"], tr["current_A"] * 1e12, lw=0.6, color="#1f5fa8")
        _shade(ax, tr["segments"])
        label = tr["file"] + (f" ({tr['dose_rate_nGy_per_s']:g} nGy/s)" if tr["kind"] == "xray" else "")
        if tr.get("wavelength_nm"):
            label += f" ({tr['wavelength_nm']:g} nm"
            label += (
                f", {tr['power_density_mW_per_cm2']:g} mW/cm²)" if tr.get("power_density_mW_per_cm2") else ")"
            )
        ax.set_title(f"{label}; on/off from {tr['stimulus']}", fontsize=8, loc="left")
        ax.set_ylabel("I (pA)", fontsize=8)
    axes[-1].set_xlabel("time (s)")
    return fig


def _pyro(res) -> Figure:
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for tr in (t for t in res.traces if t["kind"] == "pyro"):
        t, i, seg = tr["time_s"], tr["current_A"], tr["segments"]
        for a in seg["on_s"]:
            sel = (t >= a - 1) & (t < a + (seg["off_s"] - seg["on_s"]).median() + 2)
            ax1.plot(t[sel] - a, i[sel] * 1e12, lw=0.7)
    ax1.set(xlabel="time from turn-on (s)", ylabel="I (pA)", title="heating pulses superposed")
    pe = res.pulses["pyroelectric_coefficient_uC_per_cm2_K"].to_numpy() * 1e4
    ax2.bar(np.arange(1, pe.size + 1), pe, color="#4c9f70")
    ax2.axhline(35, color="k", ls="--", lw=1, label="CY-I paper (35)")
    ax2.set(xlabel="pulse", ylabel="P_e (10⁻⁴ µC cm⁻² K⁻¹)", title="pyroelectric coefficient per pulse")
    ax2.legend(fontsize=8)
    return fig


def _band(ax, fit, x, scale, color, y_scale=1.0):
    from ..detector.stats import t_interval

    xs = np.linspace(0, x.max() * 1.05, 100)
    y = fit(xs)
    se = np.sqrt(np.einsum("ij,jk,ik->i", np.column_stack([np.ones_like(xs), xs]), fit.cov,
                           np.column_stack([np.ones_like(xs), xs])))  # fmt: skip
    lo, hi = t_interval(0.0, 1.0, fit.dof)
    ax.plot(xs * scale, y * y_scale, color=color, lw=1)
    ax.fill_between(
        xs * scale, (y + lo * se) * y_scale, (y + hi * se) * y_scale, color=color, alpha=0.2, lw=0
    )


def _dose(res) -> Figure:
    tab, s = res.dose_rates, res.summary
    d = tab["dose_rate_nGy_per_s"].to_numpy(float)
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.errorbar(
        d, tab["current_density_A_per_cm2"] * 1e9, yerr=tab["current_density_se_A_per_cm2"] * 1e9, fmt="o"
    )
    if "fit_current_density" in res.fits:  # fitted in uA/cm2 against Gy/s: x1000 for nA/cm2
        _band(ax1, res.fits["fit_current_density"], d * 1e-9, 1e9, "#1f5fa8", y_scale=1e3)
    ax1.set(xlabel="dose rate (nGy s⁻¹)", ylabel="J (nA cm⁻²)",
            title=f"sensitivity {_fmt(s.get('sensitivity_uC_per_Gy_cm2'))} µC Gy⁻¹ cm⁻²")  # fmt: skip
    ax2.errorbar(d, tab["snr"], yerr=tab["snr_se"], fmt="o", color="k")
    if "fit_snr" in res.fits:
        _band(ax2, res.fits["fit_snr"], d, 1.0, "#c44e52")
        _band(ax2, res.fits["fit_snr_unweighted"], d, 1.0, "#999999")
    ax2.axhline(3, color="k", ls=":", lw=1)
    dl = s.get("detection_limit_nGy_per_s")
    if dl is not None:
        ax2.axvline(dl, color="#c44e52", ls="--", lw=1)
    ax2.set(xlabel="dose rate (nGy s⁻¹)", ylabel="SNR",
            title=f"limit {_fmt(dl)} nGy/s (red weighted, grey unweighted)")  # fmt: skip
    if "fit_snr" in res.fits and dl is not None:  # zoom on the lowest dose rates and the limit
        inset = ax2.inset_axes([0.58, 0.08, 0.38, 0.38])
        low = d <= max(3 * dl, float(np.sort(d)[min(1, d.size - 1)]))
        inset.errorbar(d[low], tab["snr"][low], yerr=tab["snr_se"][low], fmt="o", color="k", ms=3)
        xs = np.linspace(0, d[low].max() * 1.1, 50)
        inset.plot(xs, res.fits["fit_snr"](xs), color="#c44e52", lw=1)
        inset.plot(xs, res.fits["fit_snr_unweighted"](xs), color="#999999", lw=1)
        inset.axhline(3, color="k", ls=":", lw=0.8)
        inset.axvline(dl, color="#c44e52", ls="--", lw=0.8)
        inset.tick_params(labelsize=6)
    for ax in (ax1, ax2):
        ax.title.set_fontsize(9)
    return fig


def _cycle(res) -> Figure:
    top = max((t for t in res.traces if t["kind"] == "xray"), key=lambda t: t["dose_rate_nGy_per_s"])
    r = top["result"]
    fig = Figure(figsize=(9, 3.0), layout="constrained")
    ax = fig.subplots()
    ax.plot(r.t_rel_s, r.average_A * 1e12, color="#1f5fa8")
    ax.axvspan(0, r.on_duration_s, color="#f2c14e", alpha=0.25, lw=0)
    dark, photo = r.row["dark_current_A"], r.row["photocurrent_A"]
    for f in (0.1, 0.9):
        ax.axhline((dark + f * (photo - dark)) * 1e12, color="k", ls=":", lw=0.8)
    ax.set(xlabel="time from turn-on (s)", ylabel="I (pA)",
           title=f"cycle average, {top['dose_rate_nGy_per_s']:g} nGy/s ({r.row['n_cycles']} cycles): rise "
           f"{_fmt(r.row['rise_time_s'])} s, decay {_fmt(r.row['decay_time_s'])} s, contrast "
           f"{_fmt(r.row['contrast_percent'])} %")  # fmt: skip
    ax.title.set_fontsize(9)
    return fig


def _iv(res) -> Figure:
    from ..detector import hecht_current

    names = [n for n in ("dark", "irradiated", "hecht") if n in res.sweeps]
    fig = Figure(figsize=(9, 3.0), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    s = res.summary
    for ax, name in zip(axes, names):
        v, i = res.sweeps[name]
        ax.plot(v, i * 1e12, "o", ms=3)
        if name == "dark" and "iv_dark" in res.fits:
            ax.plot(v, res.fits["iv_dark"](v) * 1e12, "-", lw=1)
            ax.set_title(f"dark: ρ = {_fmt(s.get('resistivity_ohm_cm'))} Ω cm", fontsize=9)
        elif name == "irradiated":
            ax.axhline(0, color="k", lw=0.5)
            if s.get("open_circuit_voltage_V") is not None:
                ax.axvline(s["open_circuit_voltage_V"], color="#c44e52", ls="--", lw=1)
            ax.set_title(f"irradiated: V_oc = {_fmt(s.get('open_circuit_voltage_V'))} V", fontsize=9)
        elif name == "hecht" and "hecht" in res.fits:
            h = res.fits["hecht"]
            vv = np.linspace(max(v[v > 0].min(), 1e-3), v.max(), 200)
            ax.plot(vv, hecht_current(vv, h["i0_A"], h["mu_tau_cm2_per_V"], h["s_over_mu_V_per_cm"],
                                      res.config.device.electrode_spacing_cm) * 1e12, lw=1)  # fmt: skip
            ax.set_title(f"Hecht: µτ = {_fmt(s.get('mu_tau_cm2_per_V'))} cm² V⁻¹", fontsize=9)
        ax.set(xlabel="V (V)", ylabel="I (pA)")
    return fig


def _records(res) -> Figure:
    names = [n for n in ("drift", "stability") if n in res.sweeps]
    fig = Figure(figsize=(9, 3.0), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        t, i = res.sweeps[name]
        ax.plot(t, i * 1e12, lw=0.5)
        ax.plot(t, res.fits[name](t) * 1e12, color="#c44e52", lw=1)
        key = "dark_current_drift_nA_per_cm_s_V" if name == "drift" else "stability_change_percent"
        ax.set_title(f"{name}: {key} = {_fmt(res.summary.get(key))}", fontsize=9)
        ax.set(xlabel="time (s)", ylabel="I (pA)")
    return fig


def _table(summary: dict) -> str:
    paper = summary.get("paper_cy_i", {})
    rows = []
    for key, err, label, errname in _ROWS:
        v = summary.get(key)
        e = summary.get(err) if err else None
        unc = f"{errname} {_fmt(e)}" if e is not None else ""
        ci_key = key.replace("_uC", "_ci95_uC").replace("_nGy", "_ci95_nGy") if "ci95" not in key else None
        ci = summary.get(ci_key) if ci_key and ci_key != key else None
        if ci:
            unc += f"; 95 % CI {_fmt(ci)}"
        rows.append(f"<tr><td class='k'>{html.escape(label)}</td><td>{_fmt(v)}</td><td>{unc}</td>"
                    f"<td>{_fmt(paper.get(key))}</td></tr>")  # fmt: skip
    head = "<tr><th>figure of merit</th><th>this run</th><th>uncertainty</th><th>CY-I (paper)</th></tr>"
    return f"<table id='merits'>{head}{''.join(rows)}</table>"


def render_detector_report(res, summary: dict, *, figures_sink: dict | None = None) -> str:
    """The report of a detector run as one HTML string (figures as data URIs).

    Parameters
    ----------
    res : plscope.pipeline.detector.DetectorResult
    summary : dict
        The JSON-ready summary (as written to detector_summary.json).
    figures_sink : dict, optional
        Receives every figure drawn (for :func:`plscope.report.html.save_figure_files`, which
        writes them as PNG, SVG and PDF); the figure captions then name those files.
    """
    sink = figures_sink

    def _figure(build: Callable[[], Figure], caption: str, fig_id: str, paper: str) -> str:
        return _safe_figure(build, caption, fig_id, paper, sink=sink)

    parts = [f"<h1>Detector run: {html.escape(summary.get('sample') or res.run_dir)}</h1>",
             f"<p>{html.escape(res.run_dir)}</p>"]  # fmt: skip
    parts += [f"<div class='warn'>{html.escape(w)}</div>" for w in summary.get("warnings", [])]
    parts += ["<h2>Figures of merit</h2>", _table(summary)]
    if res.traces:
        parts += [
            "<h2>Records</h2>",
            _figure(lambda: _traces(res), "current records, source on (shaded)", "fig-traces", "4d"),
        ]
    if not res.pulses.empty:
        parts.append(_figure(lambda: _pyro(res), "pyroelectric pulses and P_e per pulse", "fig-pyro", "2"))
    if len(res.dose_rates):
        parts += ["<h2>X-ray response</h2>",
                  _figure(lambda: _dose(res), "current density and SNR against dose rate, fits and 95 % bands", "fig-dose", "4f-h"),
                  _figure(lambda: _cycle(res), "cycle average of the highest dose rate with the 10 % and 90 % levels", "fig-cycle", "S12")]  # fmt: skip
    if any(k in res.sweeps for k in ("dark", "irradiated", "hecht")):
        parts += [
            "<h2>Sweeps</h2>",
            _figure(lambda: _iv(res), "I–V sweeps and the Hecht fit", "fig-iv", "4a-c"),
        ]
    if any(k in res.sweeps for k in ("drift", "stability")):
        parts.append(_figure(lambda: _records(res), "dark-current drift and stability", "fig-records", "4i"))
    body = "\n".join(parts)
    return render_page("plscope detector report", body)
