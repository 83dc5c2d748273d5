"""Run-level quality control of the kinetics, computed once and shown everywhere.

:func:`kinetics_qc` looks at a run summary (from
:func:`~plscope.kinetics.mobility.summarize_population`) and the kinetics
table, and returns a JSON-ready block ``{"status": "ok" | "warn", "reasons":
[...], "checks": {...}, "settings": {...}}``. The pipeline stores it as
``summary.json['qc']``; the report banner, the terminal and the batch index
only render it (they never recompute it).

Checks (each gives one reason when it fails)
--------------------------------------------
- ``tau_pol_decreases_with_field``: ``tau_pol = L / (mu E)`` must fall with
  the field; a within-particle exponent whose interval reaches 0 or above
  means the data do not show it (wrong physics, or time constants that are
  not what they claim);
- ``velocity_slope_positive``: the slope of ``v`` against ``E`` (the slope
  mobility) must be positive;
- ``mean_median_agree``: mean and median mobility must agree within
  ``2.5`` standard errors of their difference (``0.76 x SEM`` for normal
  data); a few wild rows pull the mean away;
- ``mobility_fields_agree``: the mean mobilities of the fields agree within
  their errors (chi^2 p-value at least ``0.01``); otherwise an error shared
  by the particles at a field (a field-dependent model error) moves the slope
  mobility, whose error is widened by the scale factor but which is then
  called unreliable;
- ``excluded_share``: at most ``qc_max_excluded_fraction`` of the rows left
  out of the statistics;
- ``particles_per_field``: at least ``qc_min_particles_per_field`` used
  particles at every field;
- ``cycles_per_field``: at least 3 cycles per field (with 2 there is no
  third cycle to tell a blink from the response, and the slope mobility
  scatters by ~15 % on clean data);
- ``not_settled_share``: at most ``qc_max_excluded_fraction`` of the used
  rows whose fitted polarization has not reached 95 % by the end of the ON
  window (the settled values are extrapolated);
- ``default_model``: settings that change the model (``model``,
  ``shape_pooling``, ``tau_bounds_s``, weights, blink rules) are named.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["MODEL_SETTINGS", "kinetics_qc", "settings_record"]

MODEL_SETTINGS = (
    "model",
    "shape_pooling",
    "tau_bounds_s",
    "weight_by_sem",
    "weight_by_noise",
    "min_cycles",
    "outlier_k",
    "spoil_fraction",
    "min_tau_frames",
    "correct_bleaching",
    "fit_method",
)
"""Kinetics settings whose change alters the fitted model (named by the QC when not default)."""

_MEAN_MEDIAN_SE = 0.76  # SE(mean - median) / SEM for normal data: sqrt(pi/2 - 1)
_MEAN_MEDIAN_K = 2.5
_FIELDS_AGREE_P = 0.01  # the field means' chi^2 p-value below which the slope mobility is unreliable


def settings_record(kinetics_settings: Mapping, exclusion: Mapping | None = None) -> dict:
    """The settings that produced the results, for ``summary.json`` and the report.

    Parameters
    ----------
    kinetics_settings : mapping
        :meth:`~plscope.kinetics.KineticsSettings.to_dict`.
    exclusion : mapping, optional
        The exclusion rules of the run (pipeline settings).

    Returns
    -------
    dict
        ``model``, ``shape_pooling``, ``min_cycles``, ``min_tau_frames``,
        ``blink_masking`` and ``exclusion`` (plain values).
    """
    k = dict(kinetics_settings)
    return {
        "model": k.get("model"),
        "model_description": model_description(k),
        "shape_pooling": bool(k.get("shape_pooling")),
        "min_cycles": k.get("min_cycles"),
        "min_tau_frames": k.get("min_tau_frames"),
        "fit_method": k.get("fit_method"),
        "blink_masking": {"outlier_k": k.get("outlier_k"), "spoil_fraction": k.get("spoil_fraction")},
        "exclusion": dict(exclusion or {}),
    }


def model_description(kinetics_settings: Mapping) -> str:
    """Caption words for the fitted model, e.g. 'biexponential fit (shape pooled over particles)'."""
    model = kinetics_settings.get("model", "auto")
    if model == "mono":
        return "monoexponential fit"
    words = "biexponential fit" if model == "biexp" else "biexponential fit (monoexponential by BIC)"
    if kinetics_settings.get("fit_method", "trace") == "trace":
        return "biexponential fit of the whole trace (state carried over, shape pooled hierarchically)"
    if kinetics_settings.get("shape_pooling", True):
        words += ", shape pooled over particles"
    return words


def _check_field_dependence(summary: Mapping) -> tuple[bool | None, str]:
    dep = summary.get("tau_pol_field_dependence")
    if not dep or dep.get("ci_high") is None:
        return None, ""
    ok = float(dep["ci_high"]) < 0
    why = (
        f"tau_pol does not decrease with the field (exponent {dep['exponent']:.2f}, "
        f"interval [{dep['ci_low']:.2f}, {dep['ci_high']:.2f}], p = {dep.get('p_value', float('nan')):.2g})"
    )
    return ok, why


def _check_slope(summary: Mapping) -> tuple[bool | None, str]:
    slope = summary.get("ion_mobility_fit_cm2_per_Vs")
    if slope is None:
        return None, ""
    return slope > 0, f"the drift velocity does not increase with the field (slope mobility {slope:.3g})"


def _check_mean_median(summary: Mapping) -> tuple[bool | None, str]:
    mean = summary.get("ion_mobility_cm2_per_Vs")
    med = summary.get("ion_mobility_median_cm2_per_Vs")
    sem = summary.get("ion_mobility_sem_cm2_per_Vs")
    if mean is None or med is None or not sem:
        return None, ""
    z = abs(mean - med) / (_MEAN_MEDIAN_SE * sem)
    why = (
        f"mean and median mobility disagree ({mean:.3g} vs {med:.3g}, {z:.1f} standard errors): "
        "a few rows dominate the mean"
    )
    return bool(z <= _MEAN_MEDIAN_K), why


def _check_fields_agree(summary: Mapping) -> tuple[bool | None, str]:
    cons = (summary.get("bootstrap") or {}).get("field_consistency") or {}
    p = cons.get("p_value")
    if p is None:
        return None, ""
    why = (
        f"the mean mobility differs between the fields beyond its errors (chi2 = {cons['chi2']:.1f}, "
        f"{cons['dof']} dof, p = {p:.2g}): an error shared by the particles at a field; mobility errors "
        f"widened x {cons['scale']:.2f}, the slope mobility is unreliable"
    )
    return bool(p >= _FIELDS_AGREE_P), why


def _used(table: pd.DataFrame) -> np.ndarray:
    if len(table) == 0:
        return np.zeros(0, bool)
    ok = table["fit_ok"].fillna(False).astype(bool).to_numpy().copy()
    if "exclusion_reason" in table.columns:
        ok &= table["exclusion_reason"].fillna("").astype(str).to_numpy() == ""
    return ok


def _per_field_counts(table: pd.DataFrame, used: np.ndarray) -> dict:
    if len(table) == 0:
        return {}
    E = table["field_kV_per_cm"].abs().round(3)
    return {
        float(f): int(table.loc[used & (E == f).to_numpy(), "particle_id"].nunique())
        for f in sorted(E.unique())
    }


def _cycles_per_field(table: pd.DataFrame) -> int | None:
    if len(table) == 0 or "n_cycles" not in table.columns:
        return None
    n = pd.to_numeric(table["n_cycles"], errors="coerce").dropna()
    return int(n.min()) if len(n) else None


def _changed_settings(kinetics_settings: Mapping, defaults: Mapping) -> list[str]:
    out = []
    for key in MODEL_SETTINGS:
        if key in kinetics_settings and key in defaults and kinetics_settings[key] != defaults[key]:
            out.append(f"{key} = {kinetics_settings[key]!r} (default {defaults[key]!r})")
    return out


def kinetics_qc(
    summary: Mapping,
    table: pd.DataFrame,
    *,
    kinetics_settings: Mapping,
    defaults: Mapping,
    exclusion: Mapping | None = None,
) -> dict:
    """Run-level QC block of the kinetics (pure: no printing, no files).

    Parameters
    ----------
    summary : mapping
        From :func:`~plscope.kinetics.mobility.summarize_population`.
    table : DataFrame
        The kinetics rows of the particles that enter the statistics
        (``particle_id, field_kV_per_cm, fit_ok, exclusion_reason, n_cycles``,
        optional ``not_settled``).
    kinetics_settings, defaults : mapping
        The settings used and the defaults (``KineticsSettings().to_dict()``).
    exclusion : mapping, optional
        Exclusion rules of the run (recorded in ``settings``).

    Returns
    -------
    dict
        ``status`` ('ok' or 'warn'), ``reasons`` (one sentence per failed
        check), ``checks`` (name -> True/False/None when not applicable, plus
        the measured values) and ``settings`` (:func:`settings_record`).
    """
    k = dict(kinetics_settings)
    reasons: list[str] = []
    checks: dict = {}
    for name, fn in (
        ("tau_pol_decreases_with_field", _check_field_dependence),
        ("velocity_slope_positive", _check_slope),
        ("mean_median_agree", _check_mean_median),
        ("mobility_fields_agree", _check_fields_agree),
    ):
        ok, why = fn(summary)
        checks[name] = ok
        if ok is False:
            reasons.append(why)
    _row_checks(table, k, checks, reasons)
    changed = _changed_settings(k, defaults)
    checks["default_model"] = not changed
    if changed:
        reasons.append("settings changed the model: " + "; ".join(changed))
    status = "warn" if reasons else "ok"
    return {
        "status": status,
        "reasons": reasons,
        "checks": _plain(checks),
        "settings": settings_record(k, exclusion),
    }


def _row_checks(table: pd.DataFrame, k: Mapping, checks: dict, reasons: list[str]) -> None:
    """Checks on the kinetics rows: excluded share, particles and cycles per field, settling."""
    used = _used(table)
    n_rows = len(table)
    share = 1.0 - float(np.mean(used)) if n_rows else float("nan")
    max_share = float(k.get("qc_max_excluded_fraction", 0.25))
    checks["excluded_share"] = None if not n_rows else bool(share <= max_share)
    checks["excluded_share_value"] = None if not n_rows else round(share, 4)
    if checks["excluded_share"] is False:
        reasons.append(f"{share:.0%} of the particle-field rows were excluded (more than {max_share:.0%})")
    counts = _per_field_counts(table, used)
    min_n = int(k.get("qc_min_particles_per_field", 5))
    checks["particles_per_field"] = None if not counts else bool(min(counts.values()) >= min_n)
    checks["particles_per_field_value"] = {f"{f:g}": n for f, n in counts.items()}
    if checks["particles_per_field"] is False:
        few = ", ".join(f"{n} at {f:g} kV/cm" for f, n in counts.items() if n < min_n)
        reasons.append(f"fewer than {min_n} used particles per field ({few})")
    n_cyc = _cycles_per_field(table)
    checks["cycles_per_field"] = None if n_cyc is None else bool(n_cyc >= 3)
    if checks["cycles_per_field"] is False:
        reasons.append(
            f"only {n_cyc} cycle(s) at a field: blinks cannot be told from the response by a third cycle, "
            "time constants and mobility are unreliable"
        )
    if "not_settled" in table.columns and np.any(used):
        ns = float(np.mean(table["not_settled"].fillna(False).astype(bool).to_numpy()[used]))
        checks["not_settled_share"] = bool(ns <= max_share)
        checks["not_settled_share_value"] = round(ns, 4)
        if ns > max_share:
            reasons.append(
                f"{ns:.0%} of the used rows had not settled (< 95 %) by the end of the ON window: "
                "settled values are extrapolated"
            )


def _plain(d: dict) -> dict:
    out = {}
    for key, v in d.items():
        if isinstance(v, (np.bool_,)):
            v = bool(v)
        elif isinstance(v, float) and not math.isfinite(v):
            v = None
        out[key] = v
    return out
