"""``plscope inspect FILE`` and ``plscope init RUN_DIR``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from plscope.cli import main
from plscope.io import load_experiment
from plscope.io.inspect import count_rising_edges

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"


def test_rising_edges_of_a_noisy_ttl_and_a_flat_channel():
    rng = np.random.default_rng(1)
    t = np.arange(20000) / 1000.0
    ttl = ((t % 0.2) < 0.05) * 5.0 + rng.normal(0, 0.05, t.size)  # 100 pulses
    assert count_rising_edges(ttl)[0] == 100 - 1  # the record starts high: 99 rising edges
    assert count_rising_edges(rng.normal(0, 0.01, t.size))[0] == 0


def test_inspect_daq_lists_channels_ranges_and_edges(small_run, capsys):
    run, truth = small_run
    assert main(["inspect", str(run / "daq.csv"), "--json"]) == 0
    desc = json.loads(capsys.readouterr().out)
    assert desc["kind"] == "daq"
    chans = desc["channels"]
    assert set(chans) >= {"camera_ttl", "fg_voltage"}
    assert chans["camera_ttl"]["rising_edges"] >= truth["n_frames"]  # the camera's frames (+ surplus)
    assert chans["camera_ttl"]["min"] == pytest.approx(0.0, abs=0.5)


def test_inspect_movie_text(small_run, capsys):
    run, truth = small_run
    assert main(["inspect", str(run / "movie.tif")]) == 0
    out = capsys.readouterr().out
    assert f"{truth['n_frames']} frame(s)" in out and "pixel size" in out


@pytest.mark.realdata
def test_inspect_nd2_names_its_axes_and_channels(capsys):
    nd2 = REAL / "vendor_formats" / "nikon_nd2" / "cluster.nd2"
    if not nd2.is_file():
        pytest.skip("real data not available")
    assert main(["inspect", str(nd2)]) == 0
    out = capsys.readouterr().out
    assert "TZCYX (T=3 Z=10 C=2 Y=31 X=38)" in out and "FM 4-64/2% CHAPS" in out


def test_inspect_missing_file_is_one_line(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope.tif")]) == 2
    assert capsys.readouterr().err.strip().startswith("plscope: error: ")


def test_init_writes_a_valid_experiment_toml_and_never_overwrites(small_run, tmp_path, capsys):
    src, _ = small_run
    run = tmp_path / "run"
    run.mkdir()
    for name in ("movie.tif", "daq.csv"):
        shutil.copy(src / name, run / name)
    assert main(["init", str(run)]) == 0
    text = (run / "experiment.toml").read_text()
    cfg = load_experiment(run)
    assert cfg.movie.path == "movie.tif"
    assert cfg.daq.path == "daq.csv"
    assert cfg.daq.camera_ttl == "camera_ttl" and cfg.daq.voltage == "fg_voltage"
    assert "REQUIRED" in text and "amplifier_gain" in text
    out = capsys.readouterr().out
    assert "to fill in" in out
    # a second init leaves the file alone
    (run / "experiment.toml").write_text(text + "# mine\n")
    assert main(["init", str(run)]) == 2
    assert capsys.readouterr().err.strip().endswith("never overwrites it")
    assert (run / "experiment.toml").read_text().endswith("# mine\n")


@pytest.mark.realdata
def test_init_on_a_sif_series_gives_a_runnable_spectra_folder(tmp_path):
    sif = REAL / "vendor_formats" / "andor_sif" / "raman1.sif"
    if not sif.is_file():
        pytest.skip("real data not available")
    for k in (1, 2):
        shutil.copy(sif, tmp_path / f"raman_{k}.sif")
    assert main(["-q", "init", str(tmp_path)]) == 0
    cfg = load_experiment(tmp_path)
    assert cfg.movie is None and cfg.spectra.path == "raman_*.sif"


@pytest.mark.realdata
def test_inspect_counts_the_edges_of_a_real_labview_digital_line(capsys):
    """SOURCES.md: one line toggling every sample at 2 kHz for 10 s -> 10000 rising edges."""
    tdms = REAL / "tdms" / "Digital_Input.tdms"
    if not tdms.is_file():
        pytest.skip("real data not available")
    assert main(["inspect", str(tdms), "--json"]) == 0
    desc = json.loads(capsys.readouterr().out)
    (line,) = [c for n, c in desc["channels"].items() if "All Data" in n]
    assert desc["sample_rate_hz"] == pytest.approx(2000.0)
    assert line["rising_edges"] == 10000 and (line["min"], line["max"]) == (0.0, 1.0)


@pytest.mark.realdata
@pytest.mark.slow
def test_nd2_run_folder_from_init_runs_with_a_chosen_channel_and_z(tmp_path):
    nd2 = REAL / "vendor_formats" / "nikon_nd2" / "cluster.nd2"
    if not nd2.is_file():
        pytest.skip("real data not available")
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(nd2, run / "cluster.nd2")
    assert main(["-q", "init", str(run)]) == 0
    toml = (run / "experiment.toml").read_text()
    assert "# channel = 0   # REQUIRED: 0..1" in toml and "# z = 0   # REQUIRED: 0..9" in toml
    assert main(["-q", "run", str(run), "--out", str(tmp_path / "refused"), "--no-progress"]) == 2
    toml = toml.replace("# channel = 0   # REQUIRED: 0..1", "channel = 1").replace(
        "# z = 0   # REQUIRED: 0..9", "z = 4"
    )
    (run / "experiment.toml").write_text(toml)
    assert main(["-q", "run", str(run), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_frames"] == 3
    assert summary["pixel_size_nm"] == pytest.approx(167.809, abs=1e-3)  # from the ND2 metadata
    assert any("time stamps" in w for w in summary["warnings"])
