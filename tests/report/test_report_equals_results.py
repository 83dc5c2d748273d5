"""The report draws, it does not compute (issue 11).

On a run with particles left out of the statistics (border particles), every
number a figure shows must equal the one saved in ``summary.json`` or the
tables: the rows drawn are the kinetics table's ``used`` rows, the lines are
the summary's fits.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape

from plscope.cli import main
from plscope.report import figures

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from plscope.sim import ImagingSimParams, simulate_imaging_run

    tmp = tmp_path_factory.mktemp("excluded")
    params = ImagingSimParams(
        n_particles=6,
        image_shape=(96, 96),
        fields_kV_per_cm=(110.0, 130.0),
        cycles_per_level=2,
        period_s=30.0,
        size_range_nm=(500.0, 1000.0),
        border_particles=2,
    )
    simulate_imaging_run(tmp / "run", params, seed=5)
    assert main(["run", str(tmp / "run"), "--out", str(tmp / "out"), "--no-progress"]) == 0
    out = tmp / "out"
    return (
        json.loads((out / "summary.json").read_text()),
        pd.read_csv(out / "particles.csv", keep_default_na=False, na_values=[""]),
        pd.read_csv(out / "kinetics.csv"),
        out,
    )


def test_the_run_has_excluded_particles_and_one_used_column(saved):
    summary, particles, kinetics, _ = saved
    excluded = particles["excluded"].fillna("").astype(str) != ""
    assert excluded.any() and summary["n_particles_excluded"] == int(excluded.sum())
    used = kinetics["used"].astype(bool)
    assert int(used.sum()) == summary["n_rows_used"]
    bad = set(particles.loc[excluded, "particle_id"])
    assert not set(kinetics.loc[used, "particle_id"]) & bad


def test_figures_show_the_saved_numbers(saved):
    summary, particles, kinetics, _ = saved
    fits = {"tau_pol_s": summary["tau_pol_size_fit"], "tau_rec_s": summary["tau_rec_size_fit"]}
    fig = figures.tau_vs_size(
        kinetics, particles, field_kV_per_cm=summary["tau_size_field_kV_per_cm"], fits=fits
    )
    shown = fig.plscope_shown
    for col in ("tau_pol_s", "tau_rec_s"):
        fit = fits[col]
        assert shown[f"{col}_slope"] == fit["slope"] and shown[f"{col}_slope_err"] == fit["slope_err"]
        assert shown[f"{col}_n"] == fit["n"] == shown[f"{col}_n_points"]
    assert summary["tau_size_slope_s_per_nm"] == fits["tau_pol_s"]["slope"]
    assert shown["tau_pol_s_n"] == summary["tau_size_n"]

    fig = figures.mobility_histogram(
        kinetics,
        mean=summary["ion_mobility_cm2_per_Vs"],
        std=summary["ion_mobility_std_cm2_per_Vs"],
        ci=summary["ion_mobility_ci95_cm2_per_Vs"],
    )
    assert fig.plscope_shown["n_rows"] == summary["n_rows_used"]
    used = kinetics[kinetics["used"].astype(bool)]
    assert np.mean(used["mobility_cm2_per_Vs"]) == pytest.approx(
        summary["ion_mobility_cm2_per_Vs"], rel=1e-12
    )

    fig = figures.velocity_vs_field(
        kinetics,
        slope_cm2_per_Vs=summary["ion_mobility_fit_cm2_per_Vs"],
        slope_err_cm2_per_Vs=summary["ion_mobility_fit_err_cm2_per_Vs"],
        intercept_nm_per_s=summary["ion_mobility_fit_intercept_nm_per_s"],
    )
    assert fig.plscope_shown["n_rows"] == summary["n_rows_used"]
    assert fig.plscope_shown["slope"] == summary["ion_mobility_fit_cm2_per_Vs"]
    assert fig.plscope_shown["intercept"] == summary["ion_mobility_fit_intercept_nm_per_s"]


def test_report_provenance_is_the_recorded_one(saved):
    summary, _, _, out = saved
    text = (out / "report.html").read_text(encoding="utf-8")
    prov = json.loads((out / "provenance.json").read_text())
    inputs = re.search(r'<table id="inputs".*?</table>', text, re.S).group(0)
    assert prov["inputs"] and summary["provenance"]["inputs"] == prov["inputs"]
    for path, rec in prov["inputs"].items():
        # the checksum shown is that of the file itself (hashed here independently)
        assert rec["sha256"] == hashlib.sha256(Path(path).read_bytes()).hexdigest()
        assert html.escape(path) in inputs and rec["sha256"] in inputs
    block = re.search(r'<div id="provenance-run">(.*?)</div>', text, re.S).group(1)
    assert prov["started_utc"] in block and str(escape(shlex.join(prov["command_line"]))) in block
    assert 'class="changed"' not in text  # default settings: nothing highlighted


def test_summary_table_gallery_and_tables_show_the_saved_numbers(saved):
    summary, particles, kinetics, out = saved
    text = (out / "report.html").read_text(encoding="utf-8")
    # summary table: every row carries the saved value, shown in the unit its row names
    rows = re.findall(r"<tr data-key='([^']+)'><td class='k'>[^<]*</td><td data-value=\"([^\"]*)\">", text)
    assert len(rows) >= 10
    for key, raw in rows:
        assert json.loads(html.unescape(raw)) == summary[key], key
    # Fig. 3b-d: the exponents in its legend are the saved ones
    dep = {"tau_pol_s": summary["tau_pol_field_dependence"], "tau_rec_s": summary["tau_rec_field_dependence"]}
    fig = figures.tau_vs_field(kinetics, particle_id=None, dependence=dep)
    for col in dep:
        assert fig.plscope_shown[f"{col}_exponent"] == dep[col]["exponent"]
    # gallery: one card per particle; its per-field time constants are kinetics.csv's, rounded for display
    cards = re.findall(r'<div class="card [a-z-]+" id="particle-(\d+)".*?</table>', text, re.S)
    assert sorted(int(c) for c in cards) == sorted(particles["particle_id"])
    for block in re.findall(r'(<div class="card [a-z-]+" id="particle-\d+".*?</table>)', text, re.S):
        pid = int(re.search(r'id="particle-(\d+)"', block).group(1))
        shown = re.findall(r"<tr(?: class=\"unused\")?><td>(\d+)</td><td>([^<]*)</td>", block)
        k = kinetics[kinetics["particle_id"] == pid].sort_values("field_kV_per_cm")
        assert len(shown) == len(k)
        for (field, tau_text), r in zip(shown, k.itertuples(), strict=True):
            assert field == f"{r.field_kV_per_cm:.0f}"
            if np.isfinite(r.tau_pol_s):
                assert tau_text == f"{r.tau_pol_s:.2f} ± {r.tau_pol_err_s:.2f}"
    # tables: the sort keys are the saved values exactly
    table = re.search(r'<table class="sortable" id="kinetics-table">(.*?)</table>', text, re.S).group(1)
    heads = re.findall(r'<th data-type="[a-z]+" title="([^"]+)"', table)
    col = heads.index("tau_pol_s")
    values = [
        re.findall(r'data-sort="([^"]*)"', row)[col]
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1])
    ]
    assert [float(v) if v else np.nan for v in values] == pytest.approx(
        kinetics["tau_pol_s"].tolist(), nan_ok=True, rel=0, abs=0
    )
