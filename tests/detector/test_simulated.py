"""Accuracy on simulated CY-I devices (independent forward model in plscope.sim.detector).

Targets (issue 14): P_e 5 %, sensitivity 5 %, detection limit 15 %, rise/decay 5 %,
contrast 10 %, resistivity 5 %, V_oc 5 %, mu-tau 10 %, drift 5 %; the 95 % intervals
of the detection limit and the sensitivity contain the truth in >= 90 % of >= 40 seeds.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plscope.detector import analyze_dose_rate, dose_rate_fits
from plscope.pipeline.detector import analyze_detector
from plscope.sim import detector as simdet

TOLERANCES = {
    "pyroelectric_coefficient_uC_per_cm2_K": 0.05, "sensitivity_uC_per_Gy_cm2": 0.05,
    "detection_limit_nGy_per_s": 0.15, "rise_time_s": 0.05, "decay_time_s": 0.05, "contrast_percent": 0.10,
    "resistivity_ohm_cm": 0.05, "open_circuit_voltage_V": 0.05, "mu_tau_cm2_per_V": 0.10,
    "dark_current_drift_nA_per_cm_s_V": 0.05,
}  # fmt: skip
SEEDS = (0, 1, 2, 3, 4)


def test_simulator_imports_nothing_of_the_analysis():
    tree = ast.parse(Path(simdet.__file__).read_text())
    names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in names if "detector" in m and m != "__future__" or m.startswith(("plscope", ".."))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = []
    for seed in SEEDS:
        folder = tmp_path_factory.mktemp(f"det{seed}")
        truth = simdet.simulate_detector_run(folder, seed=seed)
        out.append((analyze_detector(folder), truth))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(TOLERANCES))
def test_figures_of_merit_within_targets(runs, key):
    errors = [res.summary[key] / truth[key] - 1 for res, truth in runs]
    assert np.max(np.abs(errors)) < TOLERANCES[key], errors


@pytest.mark.slow
def test_simulated_run_has_no_warnings_and_every_spec_key(runs):
    for res, truth in runs:
        assert res.warnings == []
        assert [d["dose_rate_nGy_per_s"] for d in res.summary["snr_by_dose_rate"]] == [
            d["dose_rate_nGy_per_s"] for d in truth["snr_by_dose_rate"]
        ]
        assert res.summary["stability_change_percent"] == pytest.approx(
            truth["stability_change_percent"], rel=0.1
        )


def _dose_fits(p, heat, seed):
    rng = np.random.default_rng(seed)
    rows = []
    period = p.xray_on_s + p.xray_off_s
    on, off = simdet._schedule(
        p.xray_off_s + 0.5 * p.sample_interval_s, p.xray_on_s, p.xray_off_s, p.xray_cycles
    )
    t = simdet._time(p, p.xray_off_s + p.xray_cycles * period)
    seg = pd.DataFrame({"on_s": on, "off_s": off})
    for d in p.dose_rates_nGy_per_s:
        i = simdet._electrometer(p, simdet.xray_current(p, d, t, on, off, heat), rng)
        rows.append(analyze_dose_rate(t, i, seg, dose_rate_nGy_per_s=d, area_cm2=p.area_cm2).row)
    return dose_rate_fits(pd.DataFrame(rows))


@pytest.mark.slow
def test_interval_coverage_and_weighted_vs_unweighted(tmp_path):
    """60 seeds, function level (the simulator's own current model, in memory)."""
    p = simdet.DetectorSimParams()
    truth = simdet.ground_truth(p)
    heat, limit = truth["xray_heating_K_per_nGy_per_s"], truth["detection_limit_nGy_per_s"]
    hits_s = hits_d = 0
    err_w, err_u = [], []
    n = 60
    for seed in range(100, 100 + n):
        f = _dose_fits(p, heat, seed)
        lo, hi = f["sensitivity_ci95_uC_per_Gy_cm2"]
        hits_s += lo <= truth["sensitivity_uC_per_Gy_cm2"] <= hi
        lo, hi = f["detection_limit_ci95_nGy_per_s"]
        hits_d += lo <= limit <= hi
        err_w.append(f["detection_limit_nGy_per_s"] / limit - 1)
        err_u.append(f["detection_limit_unweighted_nGy_per_s"] / limit - 1)
    record = {"seeds": n, "sensitivity_coverage": hits_s / n, "detection_limit_coverage": hits_d / n,
              "weighted_error_sd": float(np.std(err_w)), "unweighted_error_sd": float(np.std(err_u)),
              "weighted_error_max": float(np.max(np.abs(err_w))), "unweighted_error_max": float(np.max(np.abs(err_u)))}  # fmt: skip
    (tmp_path / "coverage.json").write_text(json.dumps(record))
    print(record)
    assert hits_s / n >= 0.9 and hits_d / n >= 0.9, record
    assert record["weighted_error_max"] < 0.15
    assert record["weighted_error_sd"] < record["unweighted_error_sd"]
