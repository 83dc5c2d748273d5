"""DAQ logs beyond CSV: NI TDMS (real DAQmx and LabVIEW files, group/channel
names, waveform and time-channel timing, lazy streaming reads) and HDF5."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from plscope.errors import RunFolderError
from plscope.io import read_daq
from plscope.io.daq import LazyChannels
from plscope.sync import frame_timing, ttl_pulses

REAL_TDMS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "tdms"


def _real(name: str) -> Path:
    path = REAL_TDMS / name
    if not path.is_file():
        pytest.skip("real data not available")
    return path


# --------------------------------------------------------------------------
# real files (SOURCES.md)
# --------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_daqmx_raw_log_gives_the_scaled_values_of_sources_md():
    log = read_daq(_real("raw1.tdms"))
    assert log.n_samples == 2000
    assert log.sample_rate_hz == pytest.approx(50_000.0)
    assert len(log.channels) == 7 and log.warnings == ()
    first = log.channel("First  Channel")  # bare name, two spaces
    np.testing.assert_allclose(
        first[:10],
        [
            -0.18402661,
            0.14801477,
            -0.24506363,
            -0.29725028,
            -0.20020142,
            0.18158513,
            0.02380444,
            0.20661031,
            0.20447401,
            0.2517777,
        ],
        rtol=0,
        atol=5e-9,
    )
    assert log.channel("Layer Data/First  Channel") is first
    # the DAQmx linear scale of SOURCES.md (10/32767 V per count) on the raw int16 counts
    from nptdms import TdmsFile

    raw = TdmsFile.read(_real("raw1.tdms"))["Layer Data"]["First  Channel"].raw_scaler_data[0]
    assert raw.dtype == np.int16
    np.testing.assert_allclose(first, raw * (10 / 32767), rtol=0, atol=1e-12)
    # the other channels are offset by about 0.7 V each (a DAQmx test pattern)
    means = [float(np.mean(log.channel(name))) for name in log.channels]
    assert np.all(np.diff(means) > 0.5)


@pytest.mark.realdata
def test_real_labview_digital_line_gives_10000_rising_edges():
    log = read_daq(_real("Digital_Input.tdms"))
    assert log.n_samples == 20000 and log.sample_rate_hz == pytest.approx(2000.0)
    assert log.time_s[-1] == pytest.approx(9.9995)
    # the two decimated groups have other time bases: left out, said so
    assert len(log.channels) == 1
    assert sum("Decimated" in w and "different time base" in w for w in log.warnings) == 2
    line = log.channel("Dev1_port3_line7 - line 0")
    assert set(np.unique(line)) == {0.0, 1.0}
    pulses = ttl_pulses(log.time_s, line, source="Digital_Input.tdms")
    assert len(pulses) == 10000
    np.testing.assert_allclose(np.diff(pulses["start_s"]), 0.001, rtol=1e-9)
    assert frame_timing(pulses, 10000).frame_interval_s == pytest.approx(0.001)


# --------------------------------------------------------------------------
# written TDMS files
# --------------------------------------------------------------------------


def _write_tdms(path, segments):
    from nptdms import TdmsWriter

    with TdmsWriter(path) as writer:
        for objects in segments:
            writer.write_segment(objects)


def test_group_channel_names_with_slashes_and_wanted_channels(tmp_path):
    from nptdms import ChannelObject

    timing = {"wf_increment": 1e-3, "wf_start_offset": 0.0}
    ttl = (np.arange(500) % 10 < 3) * 5.0
    path = tmp_path / "daqmx.tdms"
    _write_tdms(
        path,
        [
            [
                ChannelObject("Task", "Dev1/ai0", ttl, properties=timing),
                ChannelObject("Task", "Dev1/ai1", -ttl, properties=timing),
                ChannelObject("Slow", "temperature", np.full(5, 296.0), properties={"wf_increment": 0.1}),
            ]
        ],
    )
    log = read_daq(path, channels=["Task/Dev1/ai1"])
    np.testing.assert_array_equal(log.channel("Task/Dev1/ai0"), ttl)
    np.testing.assert_array_equal(log.channel("Dev1/ai1"), -ttl)  # unique bare name
    with pytest.raises(
        RunFolderError,
        match=r"channel 'Slow/temperature' has a different time "
        r"base \(5 samples every 0\.1 s\)",
    ):
        log.channel("temperature")
    with pytest.raises(
        RunFolderError,
        match=r"daqmx\.tdms: no channel 'Dev1/ai2' .*channels are: "
        r"Task/Dev1/ai0, Task/Dev1/ai1",
    ):
        read_daq(path, channels=["Task/Dev1/ai0", "Dev1/ai2"])
    # the time base follows the first wanted channel
    slow = read_daq(path, channels=["temperature"])
    np.testing.assert_allclose(slow.time_s, 0.1 * np.arange(5))
    assert list(slow.channels) == ["Slow/temperature"]


def test_time_channel_times_a_group_without_waveform_properties(tmp_path):
    from nptdms import ChannelObject

    t_ms = 0.5 * np.arange(400) + 20.0
    path = tmp_path / "timed.tdms"
    _write_tdms(
        path,
        [
            [
                ChannelObject("Log", "Time (ms)", t_ms),
                ChannelObject("Log", "camera_ttl", (np.arange(400) // 20 % 2) * 5.0),
                ChannelObject("Log", "note", np.array(["x"] * 400)),
            ]
        ],
    )
    log = read_daq(path)
    np.testing.assert_allclose(log.time_s, t_ms * 1e-3)
    assert list(log.channels) == ["Log/camera_ttl"]
    assert "channel 'Log/note' is not numeric" in log.warnings[0]
    assert len(ttl_pulses(log.time_s, log.channel("camera_ttl"))) == 10


def test_channels_are_streamed_from_disk_only_when_used(tmp_path):
    from nptdms import ChannelObject

    n_seg, per_seg = 25, 80_000  # 2 M samples, 4 channels: 64 MB of float64
    timing = {"wf_increment": 1e-5, "wf_start_offset": 0.0}
    k = np.arange(per_seg)
    path = tmp_path / "long.tdms"
    _write_tdms(
        path,
        (
            [
                ChannelObject(
                    "DAQ", f"ch{c}", ((k + s * per_seg) * (c + 1) % 997).astype(np.float64), properties=timing
                )
                for c in range(4)
            ]
            for s in range(n_seg)
        ),
    )
    tracemalloc.start()
    log = read_daq(path)
    assert isinstance(log.channels, LazyChannels)
    after_open = tracemalloc.get_traced_memory()[0]
    ch2 = log.channel("ch2")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n = n_seg * per_seg
    assert log.n_samples == n
    expected = (np.arange(n) * 3 % 997).astype(np.float64)
    np.testing.assert_array_equal(ch2, expected)
    assert after_open < 20e6  # the time axis (16 MB), no channel data
    assert peak < 40e6, f"peak {peak / 1e6:.1f} MB"  # + one channel (16 MB) + a chunk
    assert "loaded=['DAQ/ch2']" in repr(log.channels)


def test_truncated_tdms_is_read_with_a_warning_or_refused_cleanly(tmp_path):
    from nptdms import ChannelObject

    timing = {"wf_increment": 1e-3, "wf_start_offset": 0.0}
    path = tmp_path / "cut.tdms"
    _write_tdms(
        path, ([ChannelObject("DAQ", "ttl", np.full(1000, float(s)), properties=timing)] for s in range(4))
    )
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 3000])  # logging killed mid-segment
    try:
        log = read_daq(path)
    except RunFolderError as exc:
        assert "cut.tdms" in str(exc)
    else:
        assert any("incomplete" in w for w in log.warnings)
        x = log.channel("ttl")
        assert x.size == log.n_samples and 3000 <= x.size < 4000
        np.testing.assert_array_equal(x[:3000], np.repeat([0.0, 1.0, 2.0], 1000))


def test_file_changed_after_opening_is_detected(tmp_path):
    from nptdms import ChannelObject

    path = tmp_path / "log.tdms"
    objs = [ChannelObject("DAQ", "ttl", np.zeros(10), properties={"wf_increment": 1.0})]
    _write_tdms(path, [objs])
    log = read_daq(path)
    _write_tdms(path, [objs, objs])
    with pytest.raises(RunFolderError, match="log.tdms: file changed since it was opened"):
        log.channel("ttl")


# --------------------------------------------------------------------------
# HDF5 (optional h5py)
# --------------------------------------------------------------------------


def test_hdf5_log_with_time_dataset_and_attributes(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "log.h5"
    t = 1.5 + 1e-4 * np.arange(3000)
    ttl = ((np.arange(3000) // 50) % 2) * 5.0
    with h5py.File(path, "w") as f:
        g = f.create_group("daq")
        g["time_s"] = t
        g["camera_ttl"] = ttl
        g["fg_voltage"] = np.linspace(0, 1, 3000, dtype=np.float32)
        slow = f.create_group("env")
        slow.attrs["sample_rate_hz"] = 10.0
        slow["temperature_K"] = np.full(30, 296.0)
        f["notes"] = np.array([b"a", b"b"])
    log = read_daq(path, channels=["camera_ttl", "fg_voltage"])
    np.testing.assert_allclose(log.time_s, t)
    assert list(log.channels) == ["daq/camera_ttl", "daq/fg_voltage"]
    np.testing.assert_array_equal(log.channel("camera_ttl"), ttl)
    assert log.channel("daq/fg_voltage")[-1] == pytest.approx(1.0)
    assert any("env/temperature_K" in w and "different time base" in w for w in log.warnings)
    assert len(ttl_pulses(log.time_s, log.channel("camera_ttl"))) == 30
    env = read_daq(path, channels=["temperature_K"])
    np.testing.assert_allclose(env.time_s, 0.1 * np.arange(30))


def test_hdf5_problems(tmp_path):
    h5py = pytest.importorskip("h5py")
    (tmp_path / "fake.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(RunFolderError, match="fake.h5: not a readable HDF5 file"):
        read_daq(tmp_path / "fake.h5")
    with h5py.File(tmp_path / "untimed.h5", "w") as f:
        f["ttl"] = np.zeros(10)
    with pytest.raises(RunFolderError, match="untimed.h5: has no 1-D numeric dataset with a time"):
        read_daq(tmp_path / "untimed.h5")


def test_hdf5_without_h5py_is_refused_with_the_fix(tmp_path, monkeypatch):
    import plscope.io.hdf5 as hdf5

    monkeypatch.setattr(hdf5, "_h5py", lambda: None)
    (tmp_path / "log.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(
        RunFolderError,
        match=r"log\.h5: reading HDF5 logs needs the optional "
        r"'h5py' package",
    ):
        read_daq(tmp_path / "log.h5")
