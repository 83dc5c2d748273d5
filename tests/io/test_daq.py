"""DAQ logs (CSV): separators, decimal commas, bad rows, channel look-up."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from plscope.errors import RunFolderError
from plscope.io import DaqLog, read_daq


def write(tmp_path, text: str, name: str = "daq.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_plain_csv(tmp_path):
    path = write(tmp_path, "time_s,camera_ttl,fg_voltage\n0.000,0,1.5\n0.001,5,1.5\n0.002,5,-2.0\n")
    log = read_daq(path)
    assert isinstance(log, DaqLog)
    assert log.path == str(path)
    np.testing.assert_allclose(log.time_s, [0, 0.001, 0.002])
    assert list(log.channels) == ["camera_ttl", "fg_voltage"]
    np.testing.assert_allclose(log.channel("fg_voltage"), [1.5, 1.5, -2.0])
    assert log.channel("camera_ttl").dtype == np.float64
    assert log.sample_rate_hz == pytest.approx(1000.0)
    assert log.warnings == ()


def test_semicolons_decimal_commas_and_reordered_columns(tmp_path):
    text = "fg_voltage;camera_ttl;time_s\n1,5;0;0,000\n-2,25;5;0,001\n3;5;0,002\n"
    log = read_daq(write(tmp_path, text))
    np.testing.assert_allclose(log.time_s, [0, 0.001, 0.002])
    np.testing.assert_allclose(log.channel("fg_voltage"), [1.5, -2.25, 3.0])
    np.testing.assert_allclose(log.channel("camera_ttl"), [0, 5, 5])


def test_bad_rows_are_dropped_with_a_warning(tmp_path, caplog):
    text = (
        "time_s;camera_ttl;fg_voltage\n"
        "0,000;0;1,5\n"
        "0,001;n/a;1,5\n"  # non-numeric
        "0,002;5;\n"  # empty field
        "0,003;5;1,5;9\n"  # too many fields
        "0,004;0;1,5\n"
    )
    with caplog.at_level(logging.WARNING, logger="plscope.io.daq"):
        log = read_daq(write(tmp_path, text))
    np.testing.assert_allclose(log.time_s, [0.0, 0.004])
    np.testing.assert_allclose(log.channel("fg_voltage"), [1.5, 1.5])
    joined = " ".join(log.warnings)
    assert "dropped 2 row(s) with non-numeric or empty fields" in joined
    assert "dropped 1 row(s) with more fields" in joined
    assert "daq.csv: dropped 2 row(s)" in caplog.text


def test_missing_channel_lists_the_channels(tmp_path):
    log = read_daq(write(tmp_path, "time_s,camera_ttl,fg_voltage\n0,0,1\n1,1,1\n"))
    with pytest.raises(
        RunFolderError, match=r"daq\.csv: no channel 'camera' .*channels are: camera_ttl, fg_voltage"
    ):
        log.channel("camera")


def test_time_column_found_by_name_or_position(tmp_path):
    log = read_daq(write(tmp_path, "ttl,Time (ms),v\n0,0,1\n5,2,1\n0,4,1\n"))
    np.testing.assert_allclose(log.time_s, [0, 0.002, 0.004])
    assert list(log.channels) == ["ttl", "v"]
    log = read_daq(write(tmp_path, "t,ttl\n0,0\n0.5,5\n", name="b.csv"))
    np.testing.assert_allclose(log.time_s, [0, 0.5])
    assert "first column 't'" in log.warnings[0]


def test_non_numeric_column_is_ignored(tmp_path):
    log = read_daq(write(tmp_path, "time_s,ttl,note\n0,0,start\n1,5,x\n"))
    assert list(log.channels) == ["ttl"]
    assert "column 'note' is not numeric" in log.warnings[0]


@pytest.mark.parametrize(
    "text,problem",
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("time_s,ttl\n", "no data rows"),
        ("time_s\n0\n1\n", "single column"),
        ("time_s,ttl\n0,0\n0.2,1\n0.1,0\n", r"not strictly increasing: 0\.1 s follows 0\.2 s"),
        ("time_s,ttl\n0,0\n0,1\n", "not strictly increasing"),
        ("time_s,ttl\nx,y\n", "no numeric channel|no complete numeric"),
    ],
)
def test_unusable_files_raise(tmp_path, text, problem):
    with pytest.raises(RunFolderError, match=rf"daq\.csv: .*({problem})"):
        read_daq(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(RunFolderError, match="nope.csv: file does not exist"):
        read_daq(tmp_path / "nope.csv")


def test_tdms_channels_and_waveform_time(tmp_path):
    from nptdms import ChannelObject, TdmsWriter

    path = tmp_path / "log.tdms"
    timing = {"wf_increment": 1e-4, "wf_start_offset": 0.5}
    ttl = ((np.arange(1000) // 50) % 2 * 5).astype(np.float64)
    volts = np.linspace(-1, 1, 1000)
    with TdmsWriter(path) as writer:
        writer.write_segment(
            [
                ChannelObject("DAQ", "camera_ttl", ttl, properties=timing),
                ChannelObject("DAQ", "fg_voltage", volts, properties=timing),
                ChannelObject(
                    "Meta", "slow", np.arange(10.0), properties={"wf_increment": 0.1, "wf_start_offset": 0.0}
                ),
            ]
        )
    log = read_daq(path)
    np.testing.assert_allclose(log.time_s, 0.5 + 1e-4 * np.arange(1000))
    assert list(log.channels) == ["DAQ/camera_ttl", "DAQ/fg_voltage"]
    np.testing.assert_array_equal(log.channel("DAQ/camera_ttl"), ttl)
    np.testing.assert_array_equal(log.channel("fg_voltage"), volts)  # unique bare name
    assert "'Meta/slow' has a different time base" in log.warnings[0]
    with pytest.raises(RunFolderError, match="no channel 'DAQ/ttl'"):
        log.channel("DAQ/ttl")


def test_broken_tdms(tmp_path):
    (tmp_path / "log.tdms").write_bytes(b"hello, not a TDMS file at all")
    with pytest.raises(RunFolderError, match="log.tdms: not a readable TDMS file"):
        read_daq(tmp_path / "log.tdms")
    (tmp_path / "empty.tdms").write_bytes(b"TDSm")
    with pytest.raises(RunFolderError, match="empty.tdms: has no channel with waveform timing"):
        read_daq(tmp_path / "empty.tdms")


def _fixed_point_csv(k: np.ndarray, ttl: np.ndarray) -> bytes:
    """Rows 'SSS.ssss,D' for time k/1e4 s, built as one byte array (fast to write)."""
    digits = (k[:, None] // 10 ** np.arange(6, -1, -1)) % 10 + ord("0")
    rows = np.empty((k.size, 11), np.uint8)
    rows[:, :3], rows[:, 3], rows[:, 4:8] = digits[:, :3], ord("."), digits[:, 3:]
    rows[:, 8], rows[:, 9], rows[:, 10] = ord(","), ttl + ord("0"), ord("\n")
    return b"time_s,camera_ttl\n" + rows.tobytes()


def test_a_million_rows(tmp_path):
    n = 1_000_000
    k = np.arange(n)
    ttl = ((k // 100) % 2) * 5
    path = tmp_path / "big.csv"
    path.write_bytes(_fixed_point_csv(k, ttl))
    log = read_daq(path)
    assert log.n_samples == n
    np.testing.assert_allclose(log.time_s, k / 1e4, rtol=0, atol=1e-9)
    assert log.sample_rate_hz == pytest.approx(1e4)
    np.testing.assert_array_equal(log.channel("camera_ttl"), ttl)
