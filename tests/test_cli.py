"""The command line: exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plscope.cli import main


def _results(out):
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def test_run_small_simulated_run(small_run, tmp_path, capsys):
    run, truth = small_run
    out = tmp_path / "out"
    assert main(["run", str(run), "--out", str(out), "--no-progress"]) == 0
    assert {"summary.json", "particles.csv", "kinetics.csv", "report.html"} <= set(_results(out))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_particles"] == len(truth["particles"])
    assert summary["n_frames"] == truth["n_frames"]
    prov = summary["provenance"]
    assert prov["versions"]["plscope"]
    assert any(k.endswith("movie.tif") for k in prov["inputs"])
    assert all(len(v["sha256"]) == 64 for v in prov["inputs"].values())
    cap = capsys.readouterr()
    assert "particles" in cap.out
    for w in summary["warnings"]:  # each warning once: logged or listed, never both (issue 15)
        assert (cap.out + cap.err).count(w) == 1, w
    assert "%|" not in cap.err  # --no-progress (and stderr is no terminal here)


@pytest.fixture
def broken_copy(small_run, tmp_path):
    run, _ = small_run
    dst = tmp_path / "broken"
    shutil.copytree(run, dst)
    return dst


def _toml_replace(run, old, new):
    p = run / "experiment.toml"
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    "breakage, expected",
    [
        (lambda r: (r / "movie.tif").unlink(), "movie.tif"),
        (lambda r: (r / "experiment.toml").write_text("schema = 1\n[movie\npath = 'x'"), "not valid TOML"),
        (lambda r: _toml_replace(r, "electrode_gap_um", "electrode_gap"), "field.electrode_gap_um"),
        (lambda r: _toml_replace(r, "amplifier_gain = 20.0", "amplifier_gain = -20.0"), "positive"),
        (lambda r: _toml_replace(r, 'camera_ttl = "camera_ttl"', 'camera_ttl = "cam"'), "channels are"),
        (lambda r: (r / "movie.tif").write_bytes((r / "movie.tif").read_bytes()[:100_000]), "movie.tif"),
    ],
    ids=["missing-movie", "bad-toml", "missing-key", "negative-gain", "missing-channel", "truncated-tiff"],
)
def test_bad_input_one_line_no_results(broken_copy, tmp_path, capsys, breakage, expected):
    breakage(broken_copy)
    out = tmp_path / "out"
    code = main(["run", str(broken_copy), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err and err[-1].startswith("plscope: error:") and expected in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert _results(out) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_unwritable_output(small_run, tmp_path, capsys):
    run, _ = small_run
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", str(run), "--out", str(blocker / "out"), "--no-progress"]) == 2
    assert "cannot be created" in capsys.readouterr().err


def test_no_traceback_in_a_real_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "plscope", "run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_simulate_cli_writes_run_folder(tmp_path):
    out = tmp_path / "sim"
    assert (
        main(
            [
                "-q",
                "simulate",
                str(out),
                "--seed",
                "5",
                "--particles",
                "3",
                "--fields",
                "130",
                "--cycles",
                "1",
                "--shape",
                "64x64",
                "--size-range",
                "500,900",
                "--clean",
            ]
        )
        == 0
    )
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["seed"] == 5 and len(truth["particles"]) == 3 and truth["fields_kV_per_cm"] == [130.0]
    assert not truth["params"]["noise"]
    assert (out / "experiment.toml").exists() and (out / "movie.tif").exists()


@pytest.mark.slow
def test_spectral_run_through_the_cli(tmp_path, capsys):
    run = tmp_path / "spec"
    assert (
        main(["-q", "simulate", str(run), "--spectral", "--seed", "4", "--fields", "90,130", "--cycles", "2"])
        == 0
    )
    truth = json.loads((run / "ground_truth.json").read_text())
    out = tmp_path / "out"
    assert main(["run", str(run), "--out", str(out), "--no-progress"]) == 0
    assert "spectral shift" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    for name in (
        "summary.json",
        "particles.csv",
        "kinetics.csv",
        "spectra.csv",
        "report.html",
        "provenance.json",
    ):
        assert (out / name).exists()
    assert summary["ion_mobility_cm2_per_Vs"] is None
    slope_true = truth["spectral_shift_slope_nm_per_kV_per_cm"]
    assert summary["spectral_shift_slope_nm_per_kV_per_cm"] == pytest.approx(slope_true, rel=0.10)
    spectra = __import__("pandas").read_csv(out / "spectra.csv")
    assert list(spectra.columns[:5]) == ["frame", "time_s", "field_kV_per_cm", "peak_nm", "fwhm_nm"]
    # a batch re-run would skip it: inputs and settings recorded like an imaging run's
    from plscope.pipeline.batch import up_to_date
    from plscope.pipeline.settings import AnalysisSettings

    assert up_to_date(run, out, AnalysisSettings())
    (run / "lamp.csv").write_text((run / "lamp.csv").read_text() + "\n")
    assert not up_to_date(run, out, AnalysisSettings())


REAL_SPECTRA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "spectra"


@pytest.mark.realdata
@pytest.mark.skipif(not (REAL_SPECTRA / "Ne_532nm_x50_800ms.txt").exists(), reason="real data not available")
def test_calibrate_cli_on_the_real_neon_lamp(tmp_path, capsys):
    out = tmp_path / "cal.json"
    assert (
        main(
            [
                "calibrate",
                str(REAL_SPECTRA / "Ne_532nm_x50_800ms.txt"),
                "--lines",
                str(REAL_SPECTRA / "neon_nist_wl_nm.csv"),
                "--out",
                str(out),
                "--guess",
                "530,0.08",
            ]
        )
        == 0
    )
    cal = json.loads(out.read_text())
    assert cal["rms_nm"] < 0.05 and len(cal["dispersion_nm"]) >= 3
    assert "rms" in capsys.readouterr().out
    # bad input: one line, exit 2, nothing written
    bad = tmp_path / "bad.json"
    assert (
        main(
            [
                "calibrate",
                str(tmp_path / "missing.csv"),
                "--lines",
                str(REAL_SPECTRA / "neon_nist_wl_nm.csv"),
                "--out",
                str(bad),
            ]
        )
        == 2
    )
    assert "missing.csv" in capsys.readouterr().err and not bad.exists()


def test_movie_only_run_folder_gives_particles_and_traces(small_run, tmp_path, capsys):
    """No [daq]/[field]: particles and traces, field quantities null with a warning."""
    import re

    import pandas as pd

    run, truth = small_run
    movie_only = tmp_path / "movie_only"
    movie_only.mkdir()
    shutil.copy(run / "movie.tif", movie_only / "movie.tif")
    toml = (run / "experiment.toml").read_text()
    toml = re.sub(r"\[daq\][^\[]*", "", toml)
    toml = re.sub(r"\[field\][^\[]*", "", toml)
    (movie_only / "experiment.toml").write_text(toml)
    out = tmp_path / "out"
    assert main(["run", str(movie_only), "--out", str(out), "--no-progress"]) == 0
    particles = pd.read_csv(out / "particles.csv")
    assert len(particles) == len(truth["particles"])
    traces = pd.read_parquet(out / "traces.parquet")
    assert len(traces) == len(particles) * truth["n_frames"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ion_mobility_cm2_per_Vs"] is None and summary["fields_kV_per_cm"] == []
    assert any("no [daq]" in w for w in summary["warnings"])
