"""The per-dataset HTML report: one file, figures embedded, no server needed."""

from __future__ import annotations

import base64
import html
import io
import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import figures

if TYPE_CHECKING:  # pragma: no cover
    from ..pipeline.run import RunResult

logger = logging.getLogger(__name__)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4} td.k{text-align:left;font-weight:600} figure{margin:1em 0} figcaption{font-size:.85em;color:#555}
img{max-width:100%} .warn{background:#fff4e5;border-left:4px solid #f28e2b;padding:.4em .8em;margin:.3em 0}
.small{font-size:.8em;color:#666}
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(fig, caption: str, fig_id: str) -> str:
    return (f'<figure id="{fig_id}"><img alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{_png(fig)}"><figcaption>{html.escape(caption)}</figcaption></figure>')


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if not np.isfinite(v):
            return "—"
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return html.escape(str(v))


_SUMMARY_KEYS = [
    ("n_particles", "particles"), ("n_frames", "frames"), ("fields_kV_per_cm", "field levels (kV/cm)"),
    ("temperature_K", "temperature (K)"), ("psf_sigma_nm", "PSF σ (nm)"),
    ("ion_mobility_cm2_per_Vs", "ion mobility µ (cm² V⁻¹ s⁻¹), mean"),
    ("ion_mobility_std_cm2_per_Vs", "µ spread (sd)"),
    ("ion_mobility_fit_cm2_per_Vs", "µ from slope of v against E"),
    ("ion_mobility_fit_err_cm2_per_Vs", "  standard error"),
    ("diffusion_coefficient_cm2_per_s", "diffusion coefficient D = µ k_B T / q (cm² s⁻¹)"),
    ("tau_size_slope_s_per_nm", "slope of τ_pol against size (s/nm)"),
]


def _example_particles(kinetics: pd.DataFrame, particles: pd.DataFrame, field: float) -> list[int]:
    ok = kinetics[(kinetics["field_kV_per_cm"] == field) & kinetics["fit_ok"].astype(bool)]
    sizes = particles.set_index("particle_id").loc[ok["particle_id"], "size_nm"].sort_values()
    if len(sizes) == 0:
        return []
    idx = sorted({0, len(sizes) // 2, len(sizes) - 1})
    return [int(sizes.index[i]) for i in idx]


def render_report(result: "RunResult") -> str:
    """Render the report of one imaging run as a self-contained HTML string."""
    s = result.summary
    parts: list[str] = []
    title = f"plscope report — {html.escape(s.get('sample') or str(s.get('run', '')))}"
    parts.append(f"<h1>{title}</h1><p class='small'>run folder: {html.escape(str(s.get('run', '')))}</p>")

    rows = "".join(f"<tr><td class='k'>{html.escape(label)}</td><td>{_fmt(s.get(key))}</td></tr>"
                   for key, label in _SUMMARY_KEYS if key in s)
    parts.append(f"<h2>Summary</h2><table id='summary'>{rows}</table>")
    for w in s.get("warnings", []):
        parts.append(f"<div class='warn'>{html.escape(str(w))}</div>")

    pixel = float(s.get("pixel_size_nm") or 1.0)
    parts.append("<h2>Particles</h2>")
    parts.append(_figure(figures.reference_image(result.reference_image, result.particles, pixel_size_nm=pixel),
                         "Reference image with the detected particles outlined at their fitted side length.",
                         "fig-reference"))

    kin = result.kinetics
    have_kin = len(kin) > 0 and kin["fit_ok"].astype(bool).any()
    if len(kin) and len(result.cycles):
        fields = sorted(kin["field_kV_per_cm"].unique())
        top = fields[-1]
        examples = _example_particles(kin, result.particles, top)
        parts.append("<h2>Traces and cycle averages</h2>")
        if examples:
            pid = examples[len(examples) // 2]
            tr = result.traces[result.traces["particle_id"] == pid].sort_values("frame")
            parts.append(_figure(
                figures.trace_with_field(result.frame_time_s[tr["frame"].to_numpy()], tr["intensity"].to_numpy(float),
                                         result.cycles, result.field_trace, title=f"particle {pid}"),
                f"PL trace of particle {pid} with the field schedule (orange: field on).", "fig-trace"))
        for pid in examples:
            size = float(result.particles.set_index("particle_id").loc[pid, "size_nm"])
            cur = {ph: result.curves.get((pid, top, ph)) for ph in ("pol", "rec")}
            cur = {k: v for k, v in cur.items() if v is not None}
            row = kin[(kin["particle_id"] == pid) & (kin["field_kV_per_cm"] == top)].iloc[0]
            parts.append(_figure(
                figures.cycle_curves(cur, title=f"particle {pid}, side {size:.0f} nm, {top:.0f} kV/cm: "
                                     f"τ_pol = {row['tau_pol_s']:.2f} s, τ_rec = {row['tau_rec_s']:.2f} s"),
                f"Cycle superposition (grey), average ± SEM and biexponential fit for particle {pid}.",
                f"fig-cycles-{pid}"))
    if have_kin:
        fields = sorted(kin["field_kV_per_cm"].unique())
        parts.append("<h2>Kinetics and mobility</h2>")
        parts.append(_figure(figures.tau_vs_size(kin, result.particles, field_kV_per_cm=fields[-1]),
                             "Polarization and recovery time against particle side length (highest field).",
                             "fig-tau-size"))
        parts.append(_figure(figures.tau_vs_field(kin), "Mean time constants against field.", "fig-tau-field"))
        parts.append(_figure(figures.switching_efficiency(kin), "Switching efficiency per field.", "fig-se"))
        parts.append(_figure(figures.velocity_vs_field(kin, slope_cm2_per_Vs=s.get("ion_mobility_fit_cm2_per_Vs")),
                             "Drift velocity v = L/τ_pol against field; the slope is the ion mobility.",
                             "fig-velocity"))
        parts.append(_figure(figures.mobility_histogram(kin, mean=s.get("ion_mobility_cm2_per_Vs"),
                                                        std=s.get("ion_mobility_std_cm2_per_Vs")),
                             "Histogram of ion mobility µ = v/E over particles and fields.", "fig-mobility"))

    parts.append("<h2>Tables</h2><h3>Particles</h3>")
    parts.append(result.particles.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="—"))
    if len(kin):
        parts.append("<h3>Kinetics</h3>")
        parts.append(kin.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="—"))
    prov = s.get("provenance") or {}
    versions = prov.get("versions", {})
    if versions:
        parts.append("<p class='small'>" + html.escape(", ".join(f"{k} {v}" for k, v in versions.items())) + "</p>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_CSS}</style></head><body>{body}</body></html>\n")


def write_report(result: "RunResult", path: str | os.PathLike) -> None:
    """Write :func:`render_report` to ``path``."""
    text = render_report(result)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
