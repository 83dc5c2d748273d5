"""The batch index (``OUT/index.html``), in the manner of MultiQC: one row per run, plots across runs.

Renders only: :mod:`plscope.pipeline.batch` reads the runs' saved summaries
and tables and hands plain rows (the ``batch.csv`` rows) and the pooled
kinetics rows to :func:`render_index`. The page is the Jinja2 template
``templates/batch_index.html.j2`` with the one style sheet of every plscope
page, self-contained (figures are SVG data URIs, the table sorter a few
lines of inline script) and opens offline.

Numbers are shown rounded to what their uncertainty supports (two
significant digits of the uncertainty, ISO GUM style), on a power of ten
shared by the whole column, and never wrap inside a number (non-breaking
spaces and dashes).
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup
from matplotlib.figure import Figure

from .figures import FIELD_CMAP, OFF_COLOR, ON_COLOR
from .links import relative_href
from .page import _environment, css

__all__ = ["Cell", "fields_text", "render_index", "value_with_interval"]

NBSP = "\u00a0"
#: forbids a line break where it stands (after the en dash of an interval)
WORD_JOINER = "\u2060"
#: a minus sign that never starts a new line (U+2212 is a mathematical symbol, not a hyphen)
MINUS = "\u2212"
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")

#: what each kind of run is called in the index
KIND_NAMES = {"imaging": "PL imaging", "spectra": "PL spectra", "detector": "detector"}


@dataclass(frozen=True)
class Cell:
    """One table cell: the text shown and the value the table sorts by."""

    text: str
    sort: str | float | None = None
    title: str = ""


# --------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _decimals(uncertainty: float) -> int:
    """Decimals that keep two significant digits of an uncertainty (at least 0)."""
    if not _finite(uncertainty) or uncertainty <= 0:
        return 3
    return max(0, 1 - math.floor(math.log10(uncertainty)))


def _num(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}".replace("-", MINUS)


def power_of_ten(values: Sequence[Any]) -> int:
    """The power of ten a column of numbers is shown on (0 for values between 0.01 and 10 000).

    Examples
    --------
    >>> power_of_ten([2.7e-10, 3.1e-10]), power_of_ten([90.0, 130.0]), power_of_ten([])
    (-10, 0, 0)
    """
    finite = [abs(v) for v in values if _finite(v) and v != 0]
    if not finite:
        return 0
    exp = math.floor(math.log10(float(np.median(finite))))
    return 0 if -2 <= exp < 4 else exp


def value_with_interval(
    value: Any, *, err: Any = None, low: Any = None, high: Any = None, exp: int = 0
) -> str:
    """``value ± err`` or ``value (low–high)`` on ``10**exp``, rounded to the uncertainty, unbreakable.

    Examples
    --------
    >>> text = value_with_interval(2.7136e-10, low=2.6599e-10, high=2.8158e-10, exp=-10)
    >>> text.replace(NBSP, " ").replace(WORD_JOINER, "")
    '2.714 (2.660–2.816)'
    >>> value_with_interval(0.0028928, err=0.00048, exp=-3).replace(NBSP, " ")
    '2.89 ± 0.48'
    >>> value_with_interval(None)
    '—'
    """
    if not _finite(value):
        return "—"
    scale = 10.0**exp
    v = value / scale
    if _finite(low) and _finite(high):
        lo, hi = low / scale, high / scale
        half = min(abs(v - lo), abs(hi - v)) or abs(hi - lo) / 2
        d = _decimals(half)
        return f"{_num(v, d)}{NBSP}({_num(lo, d)}\u2013{WORD_JOINER}{_num(hi, d)})"
    if _finite(err) and err > 0:
        d = _decimals(err / scale)
        return f"{_num(v, d)}{NBSP}±{NBSP}{_num(err / scale, d)}"
    return _num(v, max(0, 2 - math.floor(math.log10(abs(v)))) if v else 0)


def fields_text(fields: Any) -> str:
    """Field levels to 0.1 kV/cm without trailing zeros: ``90, 110, 130`` (not ``90.0013 110.005``).

    Examples
    --------
    >>> fields_text([90.0013, 110.005, 129.998])
    '90, 110, 130'
    >>> fields_text("90.0013 110.005 129.998")
    '90, 110, 130'
    """
    if isinstance(fields, str):
        fields = [float(x) for x in fields.split()]
    if not fields:
        return "—"
    return ", ".join(f"{round(float(e), 1):g}".replace("-", MINUS) for e in fields)


def _unit_header(name: str, unit: str, exp: int) -> str:
    scale = f"10{str(exp).translate(_SUPERSCRIPT)}{NBSP}" if exp else ""
    return f"{name} ({scale}{unit})" if unit or scale else name


# --------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------


def status_cell(row: Mapping[str, Any]) -> Cell:
    """``ok`` / ``warn`` / ``failed`` / ``not reached``, or ``skipped`` with the earlier result's verdict."""
    status, qc = row.get("status") or "", row.get("qc_status") or ""
    if status == "ok":
        shown = "warn" if qc == "warn" else "ok"
        return Cell(shown, sort={"ok": 0, "warn": 1}[shown])
    if status == "skipped":
        earlier = "warn" if qc == "warn" else ("ok" if qc else "unknown")
        return Cell(
            f"skipped (earlier: {earlier})",
            sort=2 + (qc == "warn"),
            title="inputs and settings unchanged: the earlier result is kept",
        )
    return Cell(status, sort={"failed": 5, "not reached": 4}.get(status, 6))


def _row_class(row: Mapping[str, Any]) -> str:
    status = str(row.get("status") or "")
    if status == "ok" and row.get("qc_status") == "warn":
        return "qc-warn"
    return status.replace(" ", "-")


def _reasons(row: Mapping[str, Any]) -> list[str]:
    """The QC reasons of a run's result (the earlier result's for a skipped run; none for a failed one)."""
    if row.get("status") in ("failed", "not reached"):
        return []
    reasons = row.get("qc_reasons") or []
    if isinstance(reasons, str):
        reasons = [r for r in reasons.split(" | ") if r]
    return [str(r) for r in reasons]


# --------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------

#: (header, unit, value key, interval keys (low, high) or error key) of the numeric columns
_NUMBER_COLUMNS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("µ|95\u00a0% CI", "cm²\u00a0V⁻¹\u00a0s⁻¹", "ion_mobility_cm2_per_Vs",
     ("ion_mobility_ci95_low", "ion_mobility_ci95_high")),
    ("D|95\u00a0% CI", "cm²\u00a0s⁻¹", "diffusion_coefficient_cm2_per_s",
     ("diffusion_ci95_low", "diffusion_ci95_high")),
    ("τ_pol per size|± standard error", "s/nm", "tau_size_slope_s_per_nm", ("tau_size_slope_err_s_per_nm",)),
    ("peak shift per field|± standard error", "nm per kV/cm", "spectral_shift_slope_nm_per_kV_per_cm",
     ("spectral_shift_slope_err_nm_per_kV_per_cm",)),
    ("P_e|± sd over pulses", "µC\u00a0cm⁻²\u00a0K⁻¹", "pyroelectric_coefficient_uC_per_cm2_K",
     ("pyroelectric_coefficient_std_uC_per_cm2_K",)),
    ("S|± standard error", "µC\u00a0Gy⁻¹\u00a0cm⁻²", "sensitivity_uC_per_Gy_cm2", ("sensitivity_se_uC_per_Gy_cm2",)),
    ("detection limit", "nGy\u00a0s⁻¹", "detection_limit_nGy_per_s", ()),
)  # fmt: skip


def _number_cell(row: Mapping[str, Any], key: str, extra: tuple[str, ...], exp: int) -> Cell:
    value = _float(row.get(key))
    if len(extra) == 2:
        text = value_with_interval(
            value, low=_float(row.get(extra[0])), high=_float(row.get(extra[1])), exp=exp
        )
    elif extra:
        text = value_with_interval(value, err=_float(row.get(extra[0])), exp=exp)
    else:
        text = value_with_interval(value, exp=exp)
    return Cell(text, sort=value if _finite(value) else None)


def _float(v: Any) -> float | None:
    if v is None or v == "":
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """Headers and rows (cells) of the index table; numeric columns no run fills are left out."""
    columns = [c for c in _NUMBER_COLUMNS if any(_finite(_float(r.get(c[2]))) for r in rows)]
    exps = {c[2]: power_of_ten([_float(r.get(c[2])) for r in rows]) for c in columns}
    headers = [(h, "") for h in ("run", "sample", "kind", "status", "QC / reason", "particles")]
    headers += [("fields (kV/cm)", "")]
    for name, unit, key, _ in columns:
        text, _, note = name.partition("|")
        headers.append((_unit_header(text, unit, exps[key]), note))
    headers += [("time (s)", "")]
    out = []
    for r in rows:
        n = _float(r.get("n_particles"))
        cells = [
            Cell(str(r.get("sample") or ""), sort=str(r.get("sample") or "").lower()),
            Cell(KIND_NAMES.get(str(r.get("kind") or ""), str(r.get("kind") or "")), sort=str(r.get("kind"))),
            status_cell(r),
        ]
        numbers = [
            Cell(f"{n:.0f}" if _finite(n) else "—", sort=n),
            Cell(fields_text(r.get("fields_kV_per_cm") or "")),
            *(_number_cell(r, key, extra, exps[key]) for _, _, key, extra in columns),
            Cell(f"{_float(r.get('seconds')) or 0.0:.1f}", sort=_float(r.get("seconds"))),
        ]
        out.append(
            {
                "name": str(r.get("shown") or r.get("run")),
                "href": relative_href(str(r["run"]), "report.html")
                if r.get("status") in ("ok", "skipped")
                else None,
                "cls": _row_class(r),
                "cells": cells,
                "reasons": _reasons(r),
                "failure": str(r.get("reason") or "") if r.get("status") in ("failed", "not reached") else "",
                "n_warnings": int(_float(r.get("n_warnings")) or 0),
                "numbers": numbers,
            }
        )
    return headers, out


# --------------------------------------------------------------------------
# plots across runs
# --------------------------------------------------------------------------


def _svg_uri(fig: Figure) -> str:
    """A figure as a self-contained SVG data URI (no date stamp, fixed ids: the same data, the same bytes)."""
    from matplotlib import rc_context

    buf = io.BytesIO()
    with rc_context({"svg.hashsalt": "plscope-batch", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def mobility_per_run(rows: Sequence[Mapping[str, Any]]) -> Figure | None:
    """µ of each run with its 95 % interval (horizontal bars); None when no run has a mobility."""
    pts = []
    for r in rows:
        mu = _float(r.get("ion_mobility_cm2_per_Vs"))
        if _finite(mu):
            lo, hi = _float(r.get("ion_mobility_ci95_low")), _float(r.get("ion_mobility_ci95_high"))
            pts.append((str(r.get("shown") or r.get("run")), mu, lo, hi, r.get("qc_status") == "warn"))
    if not pts:
        return None
    exp = power_of_ten([p[1] for p in pts])
    fig = Figure(figsize=(6.4, 1.2 + 0.32 * len(pts)), layout="constrained")
    ax = fig.subplots()
    for i, (_, mu, lo, hi, warn) in enumerate(pts):
        color = ON_COLOR if warn else OFF_COLOR
        if _finite(lo) and _finite(hi):
            ax.plot([lo / 10**exp, hi / 10**exp], [i, i], color=color, lw=2)
        ax.plot(mu / 10**exp, i, "o", color=color, mfc="white" if warn else color)
    ax.set_yticks(range(len(pts)), [p[0] for p in pts])
    ax.invert_yaxis()
    ax.set_xlabel(f"ion mobility µ ({_unit_header('', 'cm² V⁻¹ s⁻¹', exp).strip(' ()')})")
    ax.grid(axis="x", color="0.9")
    return fig


def tau_vs_size_pooled(kinetics: pd.DataFrame | None) -> Figure | None:
    """τ_pol against particle size, the used rows of every run pooled, one colour per field level."""
    need = {"size_nm", "tau_pol_s", "field_kV_per_cm"}
    if kinetics is None or len(kinetics) == 0 or not need <= set(kinetics.columns):
        return None
    k = kinetics
    if "used" in k.columns:
        k = k[k["used"].astype(str).str.lower().isin(("true", "1", "1.0"))]
    k = k[np.isfinite(k["size_nm"].astype(float)) & np.isfinite(k["tau_pol_s"].astype(float))]
    if len(k) == 0:
        return None
    from matplotlib import colormaps

    levels = sorted({round(float(e), 0) for e in k["field_kV_per_cm"]})
    cmap = colormaps[FIELD_CMAP]
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    for i, level in enumerate(levels):
        sel = k[np.round(k["field_kV_per_cm"].astype(float), 0) == level]
        err = sel["tau_pol_err_s"].astype(float) if "tau_pol_err_s" in sel.columns else None
        ax.errorbar(
            sel["size_nm"].astype(float),
            sel["tau_pol_s"].astype(float),
            yerr=err,
            fmt="o",
            ms=4,
            capsize=0,
            color=cmap(0.15 + 0.7 * i / max(len(levels) - 1, 1)),
            label=f"{level:g} kV/cm",
        )
    ax.set_xlabel("particle size L (nm)")
    ax.set_ylabel("τ_pol (s)")
    ax.legend(title="field", fontsize="small", loc="best")
    ax.grid(color="0.92")
    return fig


# --------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------


def render_index(
    rows: Sequence[Mapping[str, Any]],
    *,
    root: str,
    started: _dt.datetime,
    interrupted: bool = False,
    kinetics: pd.DataFrame | None = None,
) -> str:
    """The whole ``index.html`` of a batch.

    Parameters
    ----------
    rows : sequence of mapping
        The ``batch.csv`` rows (``run`` is the output name, ``shown`` the folder
        name or path shown), in the order listed.
    root : str
        The batch root, shown as text.
    started : datetime
        When the batch started (UTC).
    interrupted : bool
        The batch stopped before every run finished (runs not reached are listed).
    kinetics : DataFrame, optional
        The used kinetics rows of every run (``kinetics.csv`` with a ``run``
        column), for the τ_pol-against-size plot.

    Returns
    -------
    str
        A self-contained HTML page.
    """
    headers, table_rows = table(rows)
    shown = [status_cell(r).text for r in rows]
    counts = {
        s: sum(t.startswith(s) for t in shown) for s in ("ok", "warn", "skipped", "failed", "not reached")
    }
    figures = []
    mu = mobility_per_run(rows)
    if mu is not None:
        figures.append(
            {
                "id": "fig-mobility",
                "uri": _svg_uri(mu),
                "caption": "Ion mobility µ of each run: mean over its particles (dot) and 95 % "
                "cluster-bootstrap interval (bar), from each run's summary.json. Open dots and orange: "
                "the run's QC warns.",
            }
        )
    tau = tau_vs_size_pooled(kinetics)
    if tau is not None:
        n_runs = kinetics["run"].nunique() if kinetics is not None and "run" in kinetics.columns else 0
        figures.append(
            {
                "id": "fig-tau-size",
                "uri": _svg_uri(tau),
                "caption": f"τ_pol against particle size, the particles used by each run pooled over "
                f"{n_runs} run(s) (kinetics.csv), one colour per field level; bars: each fit's "
                "standard error. No line is fitted across runs.",
            }
        )
    return (
        _environment()
        .get_template("batch_index.html.j2")
        .render(
            title=f"plscope batch — {root}",
            css=Markup(css()),
            root=root,
            started=started.isoformat(timespec="seconds"),
            interrupted=interrupted,
            counts=counts,
            n_runs=len(rows),
            headers=headers,
            rows=table_rows,
            figures=figures,
        )
    )
