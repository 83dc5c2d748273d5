"""`plscope detector` and `plscope simulate-detector` end to end, and every bad input of issue 14."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from plscope.cli import main

from .test_reading import KEITHLEY


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("detsim") / "run"
    assert main(["-q", "simulate-detector", str(run), "--seed", "7"]) == 0
    return run


@pytest.fixture(scope="module")
def sim_out(sim_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("detout") / "out"
    assert main(["-q", "detector", str(sim_run), "--out", str(out)]) == 0
    return out


def test_outputs_of_the_spec(sim_out, sim_run):
    names = {p.name for p in sim_out.iterdir()}
    assert {
        "detector_summary.json",
        "pyro_pulses.csv",
        "xray_dose_rates.csv",
        "report.html",
        "provenance.json",
    } <= names
    s = json.loads((sim_out / "detector_summary.json").read_text())
    for key in ("pyroelectric_coefficient_uC_per_cm2_K", "pyroelectric_coefficient_std_uC_per_cm2_K",
                "sensitivity_uC_per_Gy_cm2", "sensitivity_se_uC_per_Gy_cm2", "detection_limit_nGy_per_s",
                "snr_by_dose_rate", "rise_time_s", "decay_time_s", "contrast_percent", "resistivity_ohm_cm",
                "open_circuit_voltage_V", "mu_tau_cm2_per_V", "dark_current_drift_nA_per_cm_s_V",
                "warnings", "provenance"):  # fmt: skip
        assert key in s
    assert s["warnings"] == []
    assert str(sim_run / "detector.toml") in s["provenance"]["inputs"]
    pulses = pd.read_csv(sim_out / "pyro_pulses.csv")
    assert list(pulses.columns[:5]) == [
        "file",
        "pulse",
        "start_s",
        "charge_C",
        "pyroelectric_coefficient_uC_per_cm2_K",
    ]
    dose = pd.read_csv(sim_out / "xray_dose_rates.csv")
    assert list(dose.columns[:7]) == ["dose_rate_nGy_per_s", "photocurrent_A", "dark_current_A", "peak_current_A",
                                      "snr", "contrast_percent", "current_density_A_per_cm2"]  # fmt: skip
    html = (sim_out / "report.html").read_text()
    for fig in ("fig-traces", "fig-pyro", "fig-dose", "fig-cycle", "fig-iv", "fig-records"):
        assert f'id="{fig}"' in html
        for ext in ("png", "svg", "pdf"):  # every report figure also as a file for papers and slides
            assert (sim_out / "figures" / f"{fig}.{ext}").stat().st_size > 1000
        assert f"figures/{fig}.svg" in html


def _copy(sim_run, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(sim_run, run)
    return run


def _fails(run, tmp_path, capsys, *expected):
    out = tmp_path / "out"
    assert main(["detector", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("plscope: error: ") and "\n" not in err and "Traceback" not in err
    for text in expected:
        assert text in err, err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # nothing half-written beside it
    return err


def _edit(run, old, new):
    toml = run / "detector.toml"
    text = toml.read_text()
    assert old in text
    toml.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("key", ["electrode_area_cm2", "electrode_spacing_cm"])
def test_missing_device_key(sim_run, tmp_path, capsys, key):
    run = _copy(sim_run, tmp_path)
    toml = run / "detector.toml"
    toml.write_text("\n".join(ln for ln in toml.read_text().splitlines() if not ln.startswith(key)))
    _fails(run, tmp_path, capsys, "detector.toml", f"missing key 'device.{key}'")


def test_current_channel_that_does_not_exist(sim_run, tmp_path, capsys):
    run = _copy(sim_run, tmp_path)
    _edit(run, 'current = "current_A"', 'current = "I_A"')
    _fails(run, tmp_path, capsys, "pyro_404nm.csv", "no column 'I_A'", "'current_A'", "'shutter_V'")


def test_shutter_never_switches(sim_run, tmp_path, capsys):
    run = _copy(sim_run, tmp_path)
    f = run / "xray_500nGy.csv"
    df = pd.read_csv(f)
    df["shutter_V"] = 0.0
    df.to_csv(f, index=False)
    _fails(run, tmp_path, capsys, "xray_500nGy.csv", "shutter never switches")


def test_sweep_with_fewer_than_3_points(sim_run, tmp_path, capsys):
    run = _copy(sim_run, tmp_path)
    (run / "hecht.csv").write_text("voltage_V,current_A\n10,1e-12\n20,2e-12\n")
    _fails(run, tmp_path, capsys, "hecht.csv", "2 point(s); need at least 3")


def test_non_monotonic_time(sim_run, tmp_path, capsys):
    run = _copy(sim_run, tmp_path)
    (run / "dark_10V.csv").write_text("time_s,current_A\n0,1e-13\n1,1e-13\n0.5,1e-13\n2,1e-13\n")
    _fails(run, tmp_path, capsys, "dark_10V.csv", "not strictly increasing")


def test_file_that_is_not_csv(sim_run, tmp_path, capsys):
    run = _copy(sim_run, tmp_path)
    (run / "iv_dark.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)) * 4)
    _fails(run, tmp_path, capsys, "iv_dark.csv", "is not a CSV text file")


def test_named_file_missing(sim_run, tmp_path, capsys):
    run = _copy(sim_run, tmp_path)
    (run / "stability.csv").unlink()
    _fails(run, tmp_path, capsys, "stability.csv", "does not exist")


def test_simulate_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("user data")
    assert main(["simulate-detector", str(tmp_path)]) == 2
    assert (tmp_path / "mine.txt").read_text() == "user data"
    assert "not an empty folder" in capsys.readouterr().err


@pytest.mark.skipif(KEITHLEY is None, reason="real data not available")
def test_real_keithley_file_as_a_detector_run(tmp_path):
    """The real 2636B log read as it is (no shutter: on/off times from the TOML, 100-300 s)."""
    (path,) = sorted(KEITHLEY.glob("*.csv"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "detector.toml").write_text(
        f"schema = 1\n[device]\nelectrode_area_cm2 = 0.01\nelectrode_spacing_cm = 0.01\n"
        f'[[xray]]\npath = "{path}"\ncurrent = "1"\non_off_s = [[100.0, 300.0]]\ndose_rate_nGy_per_s = 1.0\n'
    )
    out = tmp_path / "out"
    assert main(["-q", "detector", str(run), "--out", str(out)]) == 0
    dose = pd.read_csv(out / "xray_dose_rates.csv")
    t = pd.read_csv(path, comment="#", header=None)
    on = (t[0] >= 200) & (t[0] < 300)
    assert dose.photocurrent_A[0] == pytest.approx(t.loc[on, 1].mean(), rel=1e-9)
    assert dose.dark_current_A[0] == pytest.approx(t.loc[(t[0] >= 50) & (t[0] < 100), 1].mean(), rel=1e-9)
    s = json.loads((out / "detector_summary.json").read_text())
    assert s["sensitivity_uC_per_Gy_cm2"] is None and any("sensitivity" in w for w in s["warnings"])
    # the logger writes zeros while the pump is on: flagged, not passed off as an SNR
    assert any("SNR not computable" in w for w in s["warnings"])


def test_output_inside_the_run_folder_is_refused(sim_run, capsys):
    out = sim_run / "results"
    assert main(["detector", str(sim_run), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("plscope: error: ") and "\n" not in err
    assert not out.exists()


def test_simulate_with_detector_flag(tmp_path):
    assert main(["-q", "simulate", "--detector", str(tmp_path / "d"), "--seed", "3"]) == 0
    truth = json.loads((tmp_path / "d" / "ground_truth.json").read_text())
    assert truth["seed"] == 3 and (tmp_path / "d" / "detector.toml").is_file()
