"""Detector runs: ``detector.toml`` + electrometer logs -> figures of merit, tables, report.

:func:`analyze_detector` reads and analyses a run folder in memory (nothing
written); :func:`run_detector` writes the outputs of the spec atomically
(``detector_summary.json``, ``pyro_pulses.csv``, ``xray_dose_rates.csv``,
``provenance.json``, ``report.html``): they appear complete or not at all.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from .. import detector as det
from .._json import jsonable, write_json
from ..config.detector import DETECTOR_FILE, DetectorConfig, DriftConfig, load_detector_config
from ..errors import RunFolderError
from ..report.detector import render_detector_report
from ..report.html import save_figure_files
from .output import AtomicOutputDir
from .provenance import provenance, sha256_file

logger = logging.getLogger(__name__)

__all__ = [
    "PAPER_CY_I",
    "SUMMARY_FILE",
    "DetectorResult",
    "analyze_detector",
    "is_detector_run",
    "run_detector",
]

SUMMARY_FILE = "detector_summary.json"
#: CY-I, J. Mater. Chem. C 2025, 13, 12685 (shown beside the run's numbers)
PAPER_CY_I = {
    "pyroelectric_coefficient_uC_per_cm2_K": 35e-4, "sensitivity_uC_per_Gy_cm2": 88.0,
    "detection_limit_nGy_per_s": 137.0, "rise_time_s": 0.531, "decay_time_s": 0.516, "contrast_percent": 158.5,
    "resistivity_ohm_cm": 5.2e12, "open_circuit_voltage_V": 0.25, "mu_tau_cm2_per_V": 1.3e-3,
    "dark_current_drift_nA_per_cm_s_V": 8.2e-7,
}  # fmt: skip
#: the spec's summary keys (a number or null with a reason)
SPEC_KEYS = (
    "pyroelectric_coefficient_uC_per_cm2_K", "pyroelectric_coefficient_std_uC_per_cm2_K", "sensitivity_uC_per_Gy_cm2",
    "sensitivity_se_uC_per_Gy_cm2", "detection_limit_nGy_per_s", "snr_by_dose_rate", "rise_time_s", "decay_time_s",
    "contrast_percent", "resistivity_ohm_cm", "open_circuit_voltage_V", "mu_tau_cm2_per_V",
    "dark_current_drift_nA_per_cm_s_V",
)  # fmt: skip
PULSE_FILE_COLUMNS = ["file", "pulse", "start_s", "charge_C", "pyroelectric_coefficient_uC_per_cm2_K", "end_s",
                      "peak_current_A", "baseline_A"]  # fmt: skip


@dataclass
class DetectorResult:
    """Everything a detector run produced (in memory): summary, tables, traces for the report."""

    run_dir: str
    config: DetectorConfig
    summary: dict[str, Any]
    pulses: pd.DataFrame
    dose_rates: pd.DataFrame
    traces: list[dict] = field(default_factory=list)
    sweeps: dict[str, Any] = field(default_factory=dict)
    fits: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def is_detector_run(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a detector run folder (holds detector.toml)."""
    return (Path(folder) / DETECTOR_FILE).is_file()


def _note(warnings: list[str], text: str) -> None:
    warnings.append(text)
    logger.warning("%s", text)


def _read_trace(
    run_dir: Path, cfg: DetectorConfig, entry
) -> tuple[Path, np.ndarray, np.ndarray, pd.DataFrame, str]:
    """Read one current record and find its on/off segments (shutter, times or step detector)."""
    path = cfg.resolve(run_dir, entry.path)
    log = det.read_log(path, axis=entry.time)
    t = log.axis
    i = log.column(entry.current)
    how = entry.stimulus or ("shutter" if entry.shutter else "times" if entry.on_off_s else "current")
    if how == "shutter":
        if not entry.shutter:
            raise RunFolderError(
                run_dir / DETECTOR_FILE, f"stimulus = 'shutter' but no shutter channel for {entry.path}"
            )
        seg = det.segments_from_shutter(t, log.column(entry.shutter), source=str(path))
    elif how == "times":
        if not entry.on_off_s:
            raise RunFolderError(
                run_dir / DETECTOR_FILE, f"stimulus = 'times' but no on_off_s for {entry.path}"
            )
        seg = det.segments_from_times(entry.on_off_s, time_s=t, source=str(path))
    else:
        seg = det.segments_from_current(t, i, integrate=hasattr(entry, "delta_T_K"), source=str(path))
    return path, t, i, seg, how


def _pyro(run_dir: Path, cfg: DetectorConfig, res: DetectorResult) -> None:
    s, area = res.summary, cfg.device.electrode_area_cm2
    tables = []
    for entry in cfg.pyro:
        path, t, i, seg, how = _read_trace(run_dir, cfg, entry)
        tab = det.pyro_pulses(t, i, seg, area_cm2=area, delta_T_K=entry.delta_T_K)
        if tab.empty:
            raise RunFolderError(path, "no heating pulse with a dark baseline beside it")
        tab.insert(0, "file", entry.path)
        tables.append(tab)
        res.traces.append({"kind": "pyro", "file": entry.path, "time_s": t, "current_A": i, "segments": seg,
                           "stimulus": how, "wavelength_nm": entry.wavelength_nm,
                           "power_density_mW_per_cm2": entry.power_density_mW_per_cm2})  # fmt: skip
        if entry.power_density_mW_per_cm2:
            dark = det.segments.off_levels(t, i, seg)
            noise = float(np.nanmedian(dark.std_A))
            r, d_star = det.responsivity(float(tab.peak_current_A.mean()), noise, area_cm2=area,
                                         power_density_mW_per_cm2=entry.power_density_mW_per_cm2,
                                         sample_rate_hz=1.0 / float(np.median(np.diff(t))))  # fmt: skip
            s.setdefault("responsivity_A_per_W", r)
            s.setdefault("specific_detectivity_Jones", d_star)
    res.pulses = pd.concat(tables, ignore_index=True)[PULSE_FILE_COLUMNS]
    pe = res.pulses.pyroelectric_coefficient_uC_per_cm2_K.to_numpy()
    s["pyroelectric_coefficient_uC_per_cm2_K"] = float(pe.mean())
    s["pyroelectric_coefficient_std_uC_per_cm2_K"] = float(pe.std(ddof=1)) if pe.size > 1 else None
    s["n_pyro_pulses"] = int(pe.size)


def _xray(run_dir: Path, cfg: DetectorConfig, res: DetectorResult) -> None:
    s, area = res.summary, cfg.device.electrode_area_cm2
    rows, results = [], []
    for entry in cfg.xray:
        path, t, i, seg, how = _read_trace(run_dir, cfg, entry)
        try:
            r = det.analyze_dose_rate(t, i, seg, dose_rate_nGy_per_s=entry.dose_rate_nGy_per_s, area_cm2=area)
        except ValueError as exc:
            raise RunFolderError(path, str(exc)) from None
        rows.append(r.row)
        results.append(r)
        if r.row["unsteady_cycles"]:
            _note(res.warnings, f"{entry.path}: in {r.row['unsteady_cycles']} of {r.row['n_cycles']} cycles the "
                  "current still drifts across the last half of the on-segment: its SNR noise holds the transient "
                  "(longer on-segments needed)")  # fmt: skip
        if not math.isfinite(r.row["snr"]):
            _note(res.warnings, f"{entry.path}: SNR not computable: the current is constant over the steady "
                  "part of the on-segments (not recorded while the source is on?)")  # fmt: skip
        res.traces.append({"kind": "xray", "file": entry.path, "time_s": t, "current_A": i, "segments": seg,
                           "stimulus": how, "dose_rate_nGy_per_s": entry.dose_rate_nGy_per_s, "result": r})  # fmt: skip
    table = pd.DataFrame(rows).sort_values("dose_rate_nGy_per_s", ignore_index=True)
    res.dose_rates = table[det.DOSE_COLUMNS]
    s["snr_by_dose_rate"] = [{"dose_rate_nGy_per_s": float(r.dose_rate_nGy_per_s), "snr": float(r.snr),
                              "snr_se": None if math.isnan(r.snr_se) else float(r.snr_se)}
                             for r in table.itertuples()]  # fmt: skip
    top = max(results, key=lambda r: r.row["dose_rate_nGy_per_s"])
    s["rise_time_s"], s["decay_time_s"] = top.row["rise_time_s"], top.row["decay_time_s"]
    s["contrast_percent"] = top.row["contrast_percent"]
    s["contrast_dose_rate_nGy_per_s"] = top.row["dose_rate_nGy_per_s"]
    dt = float(np.median(np.diff(res.traces[-1]["time_s"])))
    for key in ("rise_time_s", "decay_time_s"):
        if s[key] is not None and s[key] < 3 * dt:
            _note(
                res.warnings,
                f"{key} {s[key]:.3g} s is under 3 sample intervals ({dt:.3g} s): limited by sampling",
            )
    if top.t_rel_s is not None and top.average_A is not None:
        tc = det.time_constants(top.t_rel_s, top.average_A, on_duration_s=top.on_duration_s,
                                rise_guess_s=top.row["rise_time_s"] or 0.5)  # fmt: skip
        s.update({k: v for k, v in tc.items()})
    fits = det.dose_rate_fits(table)
    for w in fits.pop("warnings"):
        _note(res.warnings, w)
    res.fits.update({k: fits.pop(k) for k in list(fits) if k.startswith("fit_")})
    s.update(fits)


def _iv(run_dir: Path, cfg: DetectorConfig, res: DetectorResult) -> None:
    s, iv = res.summary, cfg.iv
    if iv is None:
        return
    area, gap = cfg.device.electrode_area_cm2, cfg.device.electrode_spacing_cm
    jobs = {"dark": iv.dark, "irradiated": iv.irradiated, "hecht": iv.hecht}
    for name, rel in jobs.items():
        if not rel:
            continue
        path = cfg.resolve(run_dir, rel)
        log = det.read_log(path, axis=iv.voltage, kind="voltage")
        v, i = log.axis, log.column(iv.current)
        res.sweeps[name] = (v, i)
        try:
            if name == "dark":
                out = det.resistivity(v, i, area_cm2=area, spacing_cm=gap)
                res.fits["iv_dark"] = out.pop("fit")
            elif name == "irradiated":
                out = det.open_circuit_voltage(v, i)
                if out["open_circuit_voltage_V"] is None:
                    _note(res.warnings, f"open_circuit_voltage_V: the current of {rel} never changes sign")
            else:
                out = det.mu_tau_hecht(v, i, spacing_cm=gap)
                res.fits["hecht"] = dict(out)
                rel_se = out["mu_tau_se_cm2_per_V"] / out["mu_tau_cm2_per_V"]
                if not out.pop("success") or not rel_se < 0.5:
                    _note(
                        res.warnings,
                        f"mu_tau_cm2_per_V is poorly determined by {rel} (relative SE {rel_se:.2g})",
                    )
        except ValueError as exc:
            raise RunFolderError(path, str(exc)) from None
        s.update(out)


def _records(run_dir: Path, cfg: DetectorConfig, res: DetectorResult) -> None:
    s = res.summary
    area, gap = cfg.device.electrode_area_cm2, cfg.device.electrode_spacing_cm
    for name, entry in (("drift", cfg.drift), ("stability", cfg.stability)):
        if entry is None:
            continue
        path = cfg.resolve(run_dir, entry.path)
        log = det.read_log(path, axis=entry.time)
        t, i = log.axis, log.column(entry.current)
        res.sweeps[name] = (t, i)
        try:
            if isinstance(entry, DriftConfig):
                out = det.dark_drift(t, i, bias_V=entry.bias_V, area_cm2=area, spacing_cm=gap)
            else:
                out = det.stability(t, i)
        except ValueError as exc:
            raise RunFolderError(path, str(exc)) from None
        res.fits[name] = out.pop("fit")
        s.update(out)


_REASONS = {
    "pyroelectric_coefficient": "no [[pyro]] record in detector.toml",
    "sensitivity": "fewer than 3 [[xray]] dose rates", "detection_limit": "fewer than 3 [[xray]] dose rates",
    "snr_by_dose_rate": "no [[xray]] record", "rise_time_s": "no [[xray]] record", "decay_time_s": "no [[xray]] record",
    "contrast_percent": "no [[xray]] record", "resistivity_ohm_cm": "no [iv] dark sweep",
    "open_circuit_voltage_V": "no [iv] irradiated sweep", "mu_tau_cm2_per_V": "no [iv] hecht sweep",
    "dark_current_drift_nA_per_cm_s_V": "no [drift] record",
}  # fmt: skip


def _given(cfg: DetectorConfig, key: str) -> bool:
    """Whether the TOML names the records ``key`` is computed from (so a null has another cause)."""
    if key.startswith(("sensitivity", "detection_limit")):
        return len(cfg.xray) >= 3
    if key.startswith(("snr", "rise", "decay", "contrast")):
        return bool(cfg.xray)
    if key.startswith("pyro"):
        return bool(cfg.pyro)
    if key.startswith("dark_current_drift"):
        return cfg.drift is not None
    names = {
        "resistivity_ohm_cm": "dark",
        "open_circuit_voltage_V": "irradiated",
        "mu_tau_cm2_per_V": "hecht",
    }
    return key in names and cfg.iv is not None and bool(getattr(cfg.iv, names[key]))


def analyze_detector(run_dir: str | os.PathLike) -> DetectorResult:
    """Read and analyse a detector run folder (nothing written).

    Raises
    ------
    RunFolderError
        Bad input, naming the file and the problem (see docs/detector-folder.md).
    """
    run_dir = Path(run_dir)
    cfg = load_detector_config(run_dir)
    res = DetectorResult(run_dir=str(run_dir), config=cfg, summary={}, pulses=pd.DataFrame(columns=PULSE_FILE_COLUMNS),
                         dose_rates=pd.DataFrame(columns=det.DOSE_COLUMNS))  # fmt: skip
    for path in cfg.input_files(run_dir):
        if not path.is_file():
            raise RunFolderError(path, "file does not exist (named in detector.toml)")
    if cfg.pyro:
        _pyro(run_dir, cfg, res)
    if cfg.xray:
        _xray(run_dir, cfg, res)
    if cfg.iv is not None:
        _iv(run_dir, cfg, res)
    _records(run_dir, cfg, res)
    s = res.summary
    for key in SPEC_KEYS:
        if s.get(key) is None or (isinstance(s[key], float) and not math.isfinite(s[key])):
            s[key] = None
            reason = next((r for k, r in _REASONS.items() if key.startswith(k)), "not computable")
            if _given(cfg, key):
                reason = "not computable from the records: see the warnings above"
            if not key.endswith(("_std_uC_per_cm2_K", "_se_uC_per_Gy_cm2")):
                _note(res.warnings, f"{key}: null ({reason})")
    return res


def _summary_json(res: DetectorResult, provenance: dict) -> dict:
    out = {"schema": 1, "kind": "detector", "sample": res.config.sample.name}
    out.update({k: res.summary.get(k) for k in SPEC_KEYS})
    out.update({k: v for k, v in res.summary.items() if k not in out})
    out["paper_cy_i"] = PAPER_CY_I
    out["warnings"] = list(res.warnings)
    out["provenance"] = provenance
    return out


def detector_up_to_date(run_dir: str | os.PathLike, out_dir: str | os.PathLike) -> bool:
    """Whether ``out_dir`` holds complete detector results of exactly these inputs (same plscope).

    Inputs (detector.toml and every file it names) are compared by size and
    SHA-256 (rehashed only when the modification time changed).
    """
    out_dir, run_dir = Path(out_dir), Path(run_dir)
    try:
        prov = json.loads((out_dir / "provenance.json").read_text())
        if not (out_dir / SUMMARY_FILE).is_file() or prov.get("versions", {}).get("plscope") != __version__:
            return False
        files = [
            str(p) for p in [run_dir / DETECTOR_FILE, *load_detector_config(run_dir).input_files(run_dir)]
        ]
        stored = prov.get("inputs", {})
        if sorted(files) != sorted(stored):
            return False
        for f in files:
            st, rec = os.stat(f), stored[f]
            if st.st_size != rec.get("bytes"):
                return False
            if st.st_mtime_ns != rec.get("mtime_ns") and sha256_file(f) != rec.get("sha256"):
                return False
        return True
    except (OSError, ValueError, KeyError, RunFolderError):
        return False


def run_detector(
    run_dir: str | os.PathLike, out_dir: str | os.PathLike, *, command_line: list[str] | None = None
) -> DetectorResult:
    """Analyse a detector run folder and write its outputs atomically into ``out_dir``."""
    started = _dt.datetime.now(_dt.UTC)
    run_dir = Path(run_dir)
    res = analyze_detector(run_dir)
    inputs = [run_dir / DETECTOR_FILE, *res.config.input_files(run_dir)]
    prov = provenance(inputs=inputs, config=res.config.model_dump(by_alias=True), started=started,
                      command_line=command_line)  # fmt: skip
    summary = _summary_json(res, prov)
    figures: dict = {}
    html = render_detector_report(res, jsonable(summary), figures_sink=figures)
    with AtomicOutputDir(out_dir, inputs=[run_dir, *inputs], kind="detector") as tmp:
        write_json(tmp / SUMMARY_FILE, summary)
        write_json(tmp / "provenance.json", prov)
        res.pulses.to_csv(tmp / "pyro_pulses.csv", index=False)
        res.dose_rates.to_csv(tmp / "xray_dose_rates.csv", index=False)
        save_figure_files(figures, tmp / "figures")
        (tmp / "report.html").write_text(html, encoding="utf-8")
    return res
