"""End to end: `plscope run` on simulated runs like the paper's, against ground truth.

Tolerances (from the issue, justified by the physics):
- sizes within 8 % (median): the side length is fitted with the exact PSF model;
  the noise floor is ~1-3 % for the smallest (4 px) particles;
- tau_pol within 10 %, tau_rec within 12 % (median over particles and fields):
  3 cycles per level of a biexponential with blinking, bleaching and Poisson noise;
  the simulator's slow component (1.6 tau) does not fully settle in a 20 s half
  cycle for the largest particles at 90 kV/cm, a physical bias of a few %;
- switching efficiency within 0.03 (median absolute error);
- mean mobility within 10 %; D exactly mu k_B T / q.
The kinetics issue tightens these to tau_pol 5 %, tau_rec 6 %, mean mu 5 % over 3 seeds
(partial pooling of the biexponential shape across particles makes that reachable).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.constants import e as q_e
from scipy.constants import k as k_B

from plscope.cli import main
from plscope.sim import ImagingSimParams, simulate_imaging_run


def _paper_like_run(tmp_path, seed):
    run = tmp_path / f"run{seed}"
    params = ImagingSimParams()  # 16 particles, 90/110/130 kV/cm, 3 cycles each, every nuisance on
    truth = simulate_imaging_run(run, params, seed=seed)
    out = tmp_path / f"out{seed}"
    assert main(["-q", "run", str(run), "--out", str(out)]) == 0
    return truth, out


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_paper_like_run_recovers_truth(tmp_path, seed, match):
    truth, out = _paper_like_run(tmp_path, seed)
    summary = json.loads((out / "summary.json").read_text())
    particles = pd.read_csv(out / "particles.csv")
    kinetics = pd.read_csv(out / "kinetics.csv")

    # every particle found, none invented
    mapping = match(particles, truth["particles"])
    assert len(mapping) == len(truth["particles"]) == summary["n_particles"]

    true_p = {p["particle_id"]: p for p in truth["particles"]}
    size_err = [
        abs(particles.set_index("particle_id").loc[f, "size_nm"] / true_p[t]["size_nm"] - 1)
        for t, f in mapping.items()
    ]
    assert np.median(size_err) <= 0.08

    true_k = pd.DataFrame(truth["kinetics"])
    true_k["found_id"] = true_k["particle_id"].map(mapping)
    # field levels are measured from the noisy voltage log: match each to the nearest true level
    levels = np.array(truth["fields_kV_per_cm"])
    nearest = levels[np.abs(kinetics["field_kV_per_cm"].to_numpy()[:, None] - levels).argmin(axis=1)]
    np.testing.assert_allclose(kinetics["field_kV_per_cm"], nearest, rtol=0.01)
    kinetics["level_true"] = nearest
    true_k["level_true"] = true_k["field_kV_per_cm"]
    m = true_k.merge(
        kinetics,
        left_on=["found_id", "level_true"],
        right_on=["particle_id", "level_true"],
        suffixes=("_true", ""),
    )
    assert len(m) == len(true_k)
    np.testing.assert_allclose(sorted(summary["fields_kV_per_cm"]), truth["fields_kV_per_cm"], rtol=0.01)
    ok = m["fit_ok"].astype(bool)
    assert ok.mean() >= 0.9
    tau_pol_err = np.median(np.abs(m.loc[ok, "tau_pol_s"] / m.loc[ok, "tau_pol_s_true"] - 1))
    tau_rec_err = np.median(np.abs(m.loc[ok, "tau_rec_s"] / m.loc[ok, "tau_rec_s_true"] - 1))
    se_err = np.median(np.abs(m["switching_efficiency"] - m["switching_efficiency_true"]))
    mu_err = abs(summary["ion_mobility_cm2_per_Vs"] / truth["mobility_mean_cm2_per_Vs"] - 1)
    print(
        f"seed {seed}: size {np.median(size_err):.3f}, tau_pol {tau_pol_err:.3f}, "
        f"tau_rec {tau_rec_err:.3f}, SE {se_err:.4f}, mu {mu_err:.3f}"
    )
    # issue 2 asks 10 % / 12 % / 0.03 / 10 %; the kinetics issue (5) tightens to 5 % / 6 % / - / 5 %
    assert tau_pol_err <= 0.05
    assert tau_rec_err <= 0.06
    assert se_err <= 0.03
    assert mu_err <= 0.05

    T = summary["temperature_K"]
    assert summary["diffusion_coefficient_cm2_per_s"] == pytest.approx(
        summary["ion_mobility_cm2_per_Vs"] * k_B * T / q_e, rel=1e-9
    )
    # the paper's mobility at room temperature gives the paper's D (6.58e-12 at its T)
    assert truth["mobility_mean_cm2_per_Vs"] == pytest.approx(2.56e-10, rel=0.1)
    assert summary["diffusion_coefficient_cm2_per_s"] == pytest.approx(6.5e-12, rel=0.12)

    html = (out / "report.html").read_text()
    for fig_id in ("fig-reference", "fig-trace", "fig-tau-size", "fig-mobility"):
        assert f'id="{fig_id}"' in html
    assert "data:image/png;base64," in html and html.count("<script") == 1  # the inline table script only
    for fig_id in ("fig-reference", "fig-trace", "fig-tau-size", "fig-mobility"):
        for ext in ("png", "svg", "pdf"):  # every figure also as a file
            assert (out / "figures" / f"{fig_id}.{ext}").stat().st_size > 1000
    assert (out / "curves.parquet").is_file()
