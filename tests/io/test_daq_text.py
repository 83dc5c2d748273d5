"""DAQ text exports: a log without a time column (``sample_rate_hz``) and a
LabVIEW measurement file with its header lines give the same log, and the same
run results, as the plain CSV they were made from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plscope.errors import RunFolderError
from plscope.io import read_daq

RATE_HZ = 1000.0


def _plain(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """A small log in the simulator's layout: time_s at 1 kHz, TTL, voltage, photodiode."""
    rng = np.random.default_rng(5)
    n = 4000
    t = np.arange(n) / RATE_HZ
    ttl = ((t % 0.2) < 0.05).astype(float) * 5.0  # 5 Hz camera, 50 ms exposure
    volt = np.where((t % 2.0) < 1.0, 0.0, 5.5) + rng.normal(0, 0.01, n)
    pd_ = 1.1 + rng.normal(0, 0.005, n)
    df = pd.DataFrame({"time_s": t, "camera_ttl": ttl, "fg_voltage": volt, "aux_photodiode": pd_})
    path = tmp_path / "daq.csv"
    df.to_csv(path, index=False, float_format="%.6f")
    return path, pd.read_csv(path)


def _no_time_column(df: pd.DataFrame, path: Path) -> Path:
    df.drop(columns="time_s").to_csv(path, index=False, float_format="%.6f")
    return path


def _labview(df: pd.DataFrame, path: Path) -> Path:
    """LabVIEW 'Write to Measurement File' text (.lvm): two header blocks, tab separated,
    an 'X_Value' time column and an empty 'Comment' column."""
    names = [c for c in df.columns if c != "time_s"]
    head = [
        "LabVIEW Measurement\t",
        "Writer_Version\t2",
        "Reader_Version\t2",
        "Separator\tTab",
        "Decimal_Separator\t.",
        "Multi_Headings\tNo",
        "X_Columns\tOne",
        "Time_Pref\tRelative",
        "Operator\tlab",
        "Date\t2024/01/10",
        "Time\t12:00:00.000",
        "***End_of_Header***\t",
        "\t",
        f"Channels\t{len(names)}\t",
        "Samples\t" + "\t".join(str(len(df)) for _ in names) + "\t",
        "X_Dimension\t" + "\t".join("Time" for _ in names) + "\t",
        "X0\t" + "\t".join("0.0000000000000000E+0" for _ in names) + "\t",
        "Delta_X\t" + "\t".join(f"{1 / RATE_HZ:.6E}" for _ in names) + "\t",
        "***End_of_Header***\t",
        "X_Value\t" + "\t".join(names) + "\tComment",
    ]
    body = df.to_csv(sep="\t", index=False, header=False, float_format="%.6f", lineterminator="\r\n")
    path.write_text("\r\n".join(head) + "\r\n" + body)
    return path


def _same_log(a, b):
    np.testing.assert_allclose(b.time_s, a.time_s, rtol=0, atol=1e-9)
    for name in ("camera_ttl", "fg_voltage", "aux_photodiode"):
        np.testing.assert_array_equal(b.channel(name), a.channel(name))


def test_log_without_time_column_with_sample_rate_equals_the_plain_csv(tmp_path):
    path, df = _plain(tmp_path)
    plain = read_daq(path)
    bare = read_daq(_no_time_column(df, tmp_path / "bare.csv"), sample_rate_hz=RATE_HZ)
    _same_log(plain, bare)
    assert bare.sample_rate_hz == pytest.approx(RATE_HZ)


def test_labview_text_with_header_lines_equals_the_plain_csv(tmp_path):
    path, df = _plain(tmp_path)
    lvm = read_daq(_labview(df, tmp_path / "log.lvm"), channels=["camera_ttl", "fg_voltage"])
    plain = read_daq(path)
    _same_log(plain, lvm)
    assert "Comment" not in lvm.channels
    assert not any("dropped" in w for w in lvm.warnings)


def test_log_without_time_column_and_no_rate_names_the_key(tmp_path):
    _, df = _plain(tmp_path)
    bare = _no_time_column(df, tmp_path / "bare.csv")
    with pytest.raises(RunFolderError, match=r"bare\.csv: .*not strictly increasing.*sample_rate_hz"):
        read_daq(bare)


def test_sample_rate_refuses_a_log_with_holes(tmp_path):
    _, df = _plain(tmp_path)
    bare = _no_time_column(df, tmp_path / "bare.csv")
    lines = bare.read_text().splitlines()
    lines[100] = "nan,oops,1.0"
    bare.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunFolderError, match=r"bare\.csv: .*every row is one sample"):
        read_daq(bare, sample_rate_hz=RATE_HZ)


def test_headerless_numeric_table_after_metadata_gets_column_names(tmp_path):
    path = tmp_path / "k.txt"
    path.write_text("Keithley 2636B export\nbias 2 V\n\n0.0 1.0 2.0\n0.5 1.5 2.5\n1.0 2.0 3.0\n1.5 2.5 3.5\n")
    log = read_daq(path)
    assert list(log.channels) == ["column_2", "column_3"]
    np.testing.assert_array_equal(log.time_s, [0.0, 0.5, 1.0, 1.5])


@pytest.mark.slow
def test_three_daq_layouts_give_the_same_run_results(small_run, small_output, tmp_path):
    from plscope.cli import main

    src, _ = small_run
    df = pd.read_csv(src / "daq.csv")
    dt = np.diff(df["time_s"].to_numpy())
    rate = 1.0 / float(np.median(dt))
    assert np.ptp(dt) < 1e-9  # the simulator logs at a fixed rate
    # the plain layout is small_run itself: its `plscope run` is the shared small_output
    results = {"plain": (json.loads((small_output / "summary.json").read_text()),
                         pd.read_csv(small_output / "kinetics.csv"))}  # fmt: skip
    for kind in ("bare", "labview"):
        run = tmp_path / kind
        shutil.copytree(src, run, ignore=shutil.ignore_patterns("ground_truth.json"))
        toml = (run / "experiment.toml").read_text()
        if kind == "bare":
            _no_time_column(df, run / "daq.csv")
            toml = toml.replace('path = "daq.csv"', f'path = "daq.csv"\nsample_rate_hz = {rate!r}')
        elif kind == "labview":
            (run / "daq.csv").unlink()
            _labview(df, run / "daq.lvm")
            toml = toml.replace('path = "daq.csv"', 'path = "daq.lvm"')
        (run / "experiment.toml").write_text(toml)
        out = tmp_path / f"out_{kind}"
        assert main(["-q", "run", str(run), "--out", str(out), "--no-progress"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        results[kind] = (summary, pd.read_csv(out / "kinetics.csv"))
    # The time bases agree to float rounding (1e-16 s): the timing (frames, cycles, field levels) must
    # agree to that. The whole-trace kinetics fit is iterative (scipy least_squares, xtol 1e-7, a
    # hierarchical refit on top), so a 1e-16 s change of the time base moves its optimum by far less
    # than the fit's own uncertainty but not to MINPACK's 1e-8: "the same result" for a fitted time
    # constant is a difference that is negligible (< 1 %) against its reported standard error.
    base, base_kin = results["plain"]
    for kind in ("bare", "labview"):
        summary, kin = results[kind]
        assert summary["n_frames"] == base["n_frames"] and summary["n_particles"] == base["n_particles"]
        assert summary["fields_kV_per_cm"] == pytest.approx(base["fields_kV_per_cm"], rel=1e-9)
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / f"out_{kind}" / "cycles.csv"),
            pd.read_csv(small_output / "cycles.csv"),
            rtol=1e-9,
        )
        assert list(kin.columns) == list(base_kin.columns) and len(kin) == len(base_kin)
        assert (kin["fit_ok"] == base_kin["fit_ok"]).all(), kind
        for col in ("tau_pol", "tau_rec"):
            diff = (kin[f"{col}_s"] - base_kin[f"{col}_s"]).abs().dropna()
            err = base_kin.loc[diff.index, f"{col}_err_s"]
            assert (diff <= 0.01 * err).all(), (kind, col, float((diff / err).max()))
        assert summary["ion_mobility_cm2_per_Vs"] == pytest.approx(
            base["ion_mobility_cm2_per_Vs"], abs=0.01 * base["ion_mobility_sem_cm2_per_Vs"]
        )
