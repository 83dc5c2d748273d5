"""Run-level QC of the kinetics (issue 12): each check, computed once as a pure function."""

from __future__ import annotations

import pandas as pd

from plscope.kinetics import KineticsSettings
from plscope.kinetics.qc import kinetics_qc

DEFAULTS = KineticsSettings().to_dict()


def _table(n_particles=8, fields=(90.0, 110.0, 130.0), n_cycles=3, bad=0):
    rows = []
    for p in range(n_particles):
        for f in fields:
            rows.append(
                {
                    "particle_id": p,
                    "field_kV_per_cm": f,
                    "fit_ok": p >= bad,
                    "exclusion_reason": "" if p >= bad else "polarization: the fit did not converge",
                    "n_cycles": n_cycles,
                    "not_settled": False,
                }
            )
    return pd.DataFrame(rows)


def _summary(**kw):
    s = {
        "tau_pol_field_dependence": {"exponent": -1.0, "ci_low": -1.1, "ci_high": -0.9, "p_value": 1e-6},
        "ion_mobility_fit_cm2_per_Vs": 2.5e-10,
        "ion_mobility_cm2_per_Vs": 2.56e-10,
        "ion_mobility_median_cm2_per_Vs": 2.55e-10,
        "ion_mobility_sem_cm2_per_Vs": 0.05e-10,
    }
    s.update(kw)
    return s


def test_clean_run_is_ok_and_names_its_settings():
    qc = kinetics_qc(
        _summary(), _table(), kinetics_settings=DEFAULTS, defaults=DEFAULTS, exclusion={"a": True}
    )
    assert qc["status"] == "ok" and qc["reasons"] == []
    assert qc["settings"]["model"] == "auto" and qc["settings"]["exclusion"] == {"a": True}


def test_each_check_warns_with_a_reason():
    cases = {
        "does not decrease": _summary(
            tau_pol_field_dependence={"exponent": 0.05, "ci_low": -0.3, "ci_high": 0.4, "p_value": 0.86}
        ),
        "does not increase": _summary(ion_mobility_fit_cm2_per_Vs=-1e-10),
        "mean and median": _summary(ion_mobility_cm2_per_Vs=4.3e-10),
    }
    for words, summary in cases.items():
        qc = kinetics_qc(summary, _table(), kinetics_settings=DEFAULTS, defaults=DEFAULTS)
        assert qc["status"] == "warn" and any(words in r for r in qc["reasons"]), (words, qc["reasons"])
    qc = kinetics_qc(_summary(), _table(bad=3), kinetics_settings=DEFAULTS, defaults=DEFAULTS)
    assert any("excluded" in r for r in qc["reasons"]) and qc["checks"]["excluded_share_value"] == 0.375
    qc = kinetics_qc(_summary(), _table(n_particles=3), kinetics_settings=DEFAULTS, defaults=DEFAULTS)
    assert any("fewer than 5" in r for r in qc["reasons"])
    qc = kinetics_qc(_summary(), _table(n_cycles=2), kinetics_settings=DEFAULTS, defaults=DEFAULTS)
    assert any("only 2 cycle" in r for r in qc["reasons"])
    mono = {**DEFAULTS, "model": "mono"}
    qc = kinetics_qc(_summary(), _table(), kinetics_settings=mono, defaults=DEFAULTS)
    assert any("model = 'mono'" in r for r in qc["reasons"])
    assert qc["settings"]["model_description"] == "monoexponential fit"


def test_batch_index_shows_the_runs_own_qc():
    from plscope.pipeline.batch import summary_numbers

    numbers = summary_numbers({"qc": {"status": "warn", "reasons": ["x"]}, "warnings": []})
    assert numbers["qc_status"] == "warn" and numbers["qc_reasons"] == ["x"]
    assert summary_numbers({"qc": {"status": "ok"}})["qc_status"] == "ok"


def test_field_means_that_disagree_make_the_slope_unreliable():
    cons = {"chi2": 14.2, "dof": 2, "p_value": 0.004, "scale": 2.5}
    qc = kinetics_qc(
        _summary(bootstrap={"field_consistency": cons}),
        _table(),
        kinetics_settings=DEFAULTS,
        defaults=DEFAULTS,
    )
    assert qc["status"] == "warn" and qc["checks"]["mobility_fields_agree"] is False
    assert any("slope mobility is unreliable" in r and "x 2.50" in r for r in qc["reasons"])
    fine = dict(cons, p_value=0.2, chi2=3.3, scale=1.1)
    qc = kinetics_qc(
        _summary(bootstrap={"field_consistency": fine}),
        _table(),
        kinetics_settings=DEFAULTS,
        defaults=DEFAULTS,
    )
    assert qc["status"] == "ok" and qc["checks"]["mobility_fields_agree"] is True
