"""Kinetics under other physics (issue 12), against the independent forward model.

Truth from ``validation.forward.kinetics`` (imports nothing from plscope); targets are the
issue's: per-particle shapes median tau error <= 5 % and 1.96 sigma coverage 90-98 % over 5
seeds; slow biexponential tau_pol <= 5 %, SE within 0.01 of the settled depth and the slope- and
mean-mu intervals covering at the stated rate; two cycles
with blinks: no fit_ok row faster than two frames, mean mu within 6 % and slope mu within 10 %
(or the QC says unreliable); signal / 6: tau <= 8 %, mean mu <= 6 %, excluded share reported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from validation.scenarios_kinetics import run_kinetics_scenario

SEEDS = range(1, 6)


def _rows(name):
    return pd.DataFrame([run_kinetics_scenario(name, seed) for seed in SEEDS])


@pytest.mark.slow
def test_per_particle_shapes():
    r = _rows("kin_per_particle_shapes")
    print(r[["seed", "tau_pol_median_err", "tau_rec_median_err", "coverage", "mu_mean_err"]])
    assert r["tau_pol_median_err"].max() <= 0.05 and r["tau_rec_median_err"].max() <= 0.05
    assert 0.90 <= r["coverage"].mean() <= 0.98


@pytest.mark.slow
def test_slow_biexponential_is_fitted_not_truncated():
    r = _rows("kin_slow_biexp")
    print(r[["seed", "tau_pol_median_err", "se_err", "mu_slope_err", "mu_slope_z", "qc_status"]])
    assert r["tau_pol_median_err"].max() <= 0.05
    assert r["se_err"].max() <= 0.01
    # slope- and mean-mu intervals honest under the unsettled slow component (an error shared by the
    # particles at a field): at 95 % nominal coverage, 2 or more of 5 seeds outside 1.96 sigma has
    # probability 2.3 %
    assert (r["mu_slope_z"].abs() > 1.96).sum() <= 1
    assert (r["mu_slope_ci_covers"] == 0).sum() <= 1 and (r["mu_ci_covers"] == 0).sum() <= 1


@pytest.mark.slow
def test_two_cycles_with_blinks():
    r = _rows("kin_two_cycles_blinks")
    print(r[["seed", "min_tau_frames", "mu_mean_err", "mu_slope_err", "qc_status"]])
    assert r["min_tau_frames"].min() >= 2.0
    accurate = (r["mu_mean_err"].abs() <= 0.06) & (r["mu_slope_err"].abs() <= 0.10)
    assert np.all(accurate | (r["qc_status"] == "warn"))


@pytest.mark.slow
def test_signal_divided_by_six():
    r = _rows("kin_signal_div6")
    print(r[["seed", "tau_pol_median_err", "tau_rec_median_err", "mu_mean_err", "excluded_share"]])
    assert r["tau_pol_median_err"].max() <= 0.08 and r["tau_rec_median_err"].max() <= 0.08
    assert r["mu_mean_err"].abs().max() <= 0.06
    assert r["excluded_share"].notna().all()
