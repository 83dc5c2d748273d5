"""Vendor camera files: Andor SIF, Nikon ND2, the SPE wavelength axis, and TIFFs
with leading axes of unknown meaning.

Real files from ``../shared/data/real/vendor_formats/`` (SOURCES.md) with the
vendors' own exports as references; the tests skip when they are absent.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile

from plscope.errors import RunFolderError
from plscope.io import open_stack

VENDOR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "vendor_formats"


def _real(name: str) -> Path:
    path = VENDOR / name
    if not path.is_file():
        pytest.skip("real data not available")
    return path


def _solis_export(path: Path) -> np.ndarray:
    """(wavelength nm, counts) rows of an Andor Solis .asc export (header above or below the data)."""
    rows = []
    for line in path.read_text(encoding="latin-1").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                rows.append((float(parts[0]), float(parts[1])))
            except ValueError:
                continue
    return np.array(rows)


# --------------------------------------------------------------------------
# Andor SIF
# --------------------------------------------------------------------------


@pytest.mark.realdata
def test_sif_image_pixels_equal_the_reference():
    stack = open_stack(_real("andor_sif/image.sif"))
    reference = np.load(_real("andor_sif/image_reference.npz"))["arr_0"]
    assert stack.format == "sif" and stack.shape == (1, 512, 512) and stack.dtype == np.float32
    np.testing.assert_array_equal(stack.data.compute(), reference)
    assert stack.wavelength_nm is None  # an image: no spectral calibration
    assert stack.exposure_s == pytest.approx(1.0)
    assert len(pickle.dumps(stack.data)) < 20_000  # file names and offsets, no pixels


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["raman1", "step_and_glue"])
def test_sif_spectrum_and_wavelength_axis_equal_the_solis_export(name):
    stack = open_stack(_real(f"andor_sif/{name}.sif"))
    export = _solis_export(_real(f"andor_sif/{name}_solis_export.asc"))
    n_px = stack.shape[2]
    assert stack.shape == (1, 1, n_px)  # one track: a frame of one row
    assert export.shape == (n_px, 2)
    # the export prints 5 decimals: its rounding is 5e-6 nm; target 1e-4 nm
    np.testing.assert_allclose(stack.wavelength_nm, export[:, 0], rtol=0, atol=1e-4)
    # counts printed with 6 significant digits
    np.testing.assert_allclose(stack.data.compute()[0, 0], export[:, 1], rtol=5e-6, atol=0.5)


@pytest.mark.realdata
def test_andor_pixels_are_numbered_from_one():
    stack = open_stack(_real("andor_sif/raman1.sif"))
    export = _solis_export(_real("andor_sif/raman1_solis_export.asc"))
    step = float(np.median(np.diff(export[:, 0])))  # about 0.049 nm per pixel
    # counted from 0 the axis would sit one pixel lower: 0.049 nm off
    assert abs(stack.wavelength_nm[0] - export[0, 0]) < 1e-4 < 0.5 * step


def test_not_a_sif_file_is_refused_in_one_line(tmp_path):
    from plscope.io.sif import SIF_MAGIC

    bad = tmp_path / "broken.sif"
    bad.write_bytes(SIF_MAGIC + b"\n65538 garbage")
    with pytest.raises(RunFolderError, match=r"broken\.sif: "):
        open_stack(bad)


# --------------------------------------------------------------------------
# Princeton Instruments SPE wavelength axis
# --------------------------------------------------------------------------


def _spe_export(path: Path) -> np.ndarray:
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Wavelength")) + 1
    return np.array([[float(v) for v in line.split()] for line in lines[start:] if line.strip()])


@pytest.mark.realdata
def test_spe3_wavelength_axis_and_counts_equal_the_export():
    stack = open_stack(_real("princeton_spe/Testfile_Single_SPE3.spe"))
    export = _spe_export(_real("princeton_spe/Result_Single_SPE3.txt"))
    assert stack.shape == (1, 1, 512)
    np.testing.assert_allclose(stack.wavelength_nm, export[:, 0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(stack.data.compute()[0, 0], export[:, 1], rtol=0, atol=1e-3)


@pytest.mark.realdata
def test_spe2_wavelength_axis_is_the_header_polynomial_at_one_based_pixels():
    path = _real("princeton_spe/Testfile_Single_SPE2.SPE")
    stack = open_stack(path)
    export = _spe_export(_real("princeton_spe/Result_Single_SPE2.txt"))
    assert stack.shape == (35, 1, 1340)
    np.testing.assert_array_equal(stack.data.compute()[:, 0, :].T, export[:, 1:])
    # WinSpec's own calibration points (pixel -> nm) stored beside the polynomial
    head = path.read_bytes()[:4100]
    count = head[3102]
    pixels = np.array(struct.unpack_from("<10d", head, 3103)[:count])
    values = np.array(struct.unpack_from("<10d", head, 3183)[:count])
    assert count == 3
    np.testing.assert_allclose(np.interp(pixels, np.arange(1, 1341), stack.wavelength_nm), values, atol=1e-4)
    # the export's first and last wavelengths (it interpolates linearly in between)
    assert stack.wavelength_nm[[0, -1]] == pytest.approx(export[[0, -1], 0], abs=1e-4)


# --------------------------------------------------------------------------
# Nikon ND2
# --------------------------------------------------------------------------


@pytest.mark.realdata
def test_nd2_without_a_choice_is_refused_naming_its_axes():
    path = _real("nikon_nd2/cluster.nd2")
    with pytest.raises(RunFolderError, match=r"cluster\.nd2: .*TZCYX \(T=3 Z=10 C=2 Y=31 X=38\).*channel"):
        open_stack(path)
    with pytest.raises(RunFolderError, match=r"cluster\.nd2: .*z = 0\.\.9"):
        open_stack(path, channel=0)
    with pytest.raises(RunFolderError, match=r"cluster\.nd2: channel = 'GFP' is not one of its channels"):
        open_stack(path, channel="GFP", z=0)
    with pytest.raises(RunFolderError, match=r"z = 10 is outside 0\.\.9"):
        open_stack(path, channel=0, z=10)


@pytest.mark.realdata
@pytest.mark.parametrize(("channel", "index"), [(0, 0), ("FM 4-64/2% CHAPS", 1)])
def test_nd2_reads_the_chosen_channel_and_z(channel, index):
    import nd2

    path = _real("nikon_nd2/cluster.nd2")
    stack = open_stack(path, channel=channel, z=4, chunk_frames=2)
    reference = nd2.imread(path)  # (T, Z, C, Y, X) as the nd2 package reads it
    assert stack.format == "nd2" and stack.shape == (3, 31, 38) and stack.dtype == np.uint16
    np.testing.assert_array_equal(stack.data.compute(), reference[:, 4, index])
    assert stack.pixel_size_nm == pytest.approx(167.809, abs=1e-3)
    assert stack.frame_time_s is not None and stack.frame_time_s.shape == (3,)
    assert len(pickle.dumps(stack.data)) < 20_000


def test_selection_keys_on_a_tiff_are_refused(tmp_path):
    tifffile.imwrite(tmp_path / "m.tif", np.zeros((5, 8, 8), np.uint16))
    with pytest.raises(RunFolderError, match=r"m\.tif: channel = 1 given but the image series has axes"):
        open_stack(tmp_path / "m.tif", channel=1)


# --------------------------------------------------------------------------
# TIFF with leading axes of unknown meaning
# --------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_tiff_with_unknown_leading_axes_is_read_as_time_with_a_warning(tmp_path, compression):
    frames = np.arange(4 * 5 * 8 * 6, dtype=np.uint16).reshape(4, 5, 8, 6)
    tifffile.imwrite(tmp_path / "blocks.tif", frames, compression=compression)
    with tifffile.TiffFile(tmp_path / "blocks.tif") as tif:
        assert tif.series[0].axes == "QQYX"  # tifffile's shaped metadata
    stack = open_stack(tmp_path / "blocks.tif", chunk_frames=7)
    assert stack.shape == (20, 8, 6)
    np.testing.assert_array_equal(stack.data.compute(), frames.reshape(20, 8, 6))
    assert any("QQYX" in w and "20 frames" in w for w in stack.warnings)


@pytest.mark.parametrize("kind", ["imagej", "ome", "imagej-zlib"])
def test_tiff_hyperstack_reads_the_chosen_channel_and_z(tmp_path, kind):
    rng = np.random.default_rng(2)
    data = rng.integers(0, 4000, (4, 3, 2, 8, 6), dtype=np.uint16)  # T Z C Y X
    path = tmp_path / ("h.ome.tif" if kind == "ome" else "h.tif")
    if kind == "ome":
        tifffile.imwrite(path, data, ome=True, metadata={"axes": "TZCYX"})
    else:
        tifffile.imwrite(
            path,
            data,
            imagej=True,
            metadata={"axes": "TZCYX"},
            compression="zlib" if "zlib" in kind else None,
        )
    with pytest.raises(RunFolderError, match=r"h\..*TZCYX.*single time axis.*z = 0\.\.2, channel = 0\.\.1"):
        open_stack(path)
    stack = open_stack(path, channel=1, z=2, chunk_frames=3)
    assert stack.shape == (4, 8, 6)
    np.testing.assert_array_equal(stack.data.compute(), data[:, 2, 1])
    with pytest.raises(RunFolderError, match=r"z = 3 is not an index 0\.\.2"):
        open_stack(path, channel=0, z=3)


def test_spe3_wavelength_mapping_of_the_sensor_is_cut_to_the_region_and_binned():
    import xml.etree.ElementTree as ET

    from plscope.io.spe import _v3_wavelength

    sensor = 500 + 0.1 * np.arange(64)
    xml = (
        '<SpeFormat xmlns="http://www.princetoninstruments.com/spe/2009"><Calibrations>'
        '<WavelengthMapping id="1"><Wavelength>' + ",".join(f"{v:.6f}" for v in sensor) + "</Wavelength>"
        '</WavelengthMapping><SensorMapping id="3" x="8" y="0" width="32" height="1" xBinning="2" yBinning="1"/>'
        "</Calibrations></SpeFormat>"
    )
    notes: list[str] = []
    wl = _v3_wavelength(ET.fromstring(xml), 16, notes)
    np.testing.assert_allclose(wl, sensor[8:40].reshape(16, 2).mean(axis=1), atol=1e-9)
    assert notes == []


def test_frames_without_daq_are_timed_by_rate_then_stamps_then_cycle_time(tmp_path):
    from plscope.io.stack import stack_frame_times

    tifffile.imwrite(
        tmp_path / "m.tif",
        np.zeros((5, 8, 8), np.uint16),
        imagej=True,
        metadata={"axes": "TYX", "finterval": 0.25},
    )
    stack = open_stack(tmp_path / "m.tif")
    t, how = stack_frame_times(stack)
    np.testing.assert_allclose(t, [0, 0.25, 0.5, 0.75, 1.0])
    assert "cycle time" in how
    t, how = stack_frame_times(stack, 10.0)
    np.testing.assert_allclose(t, np.arange(5) / 10.0)
    import dataclasses

    stamped = dataclasses.replace(stack, frame_time_s=np.array([0.0, 0.2, 0.5, 0.7, 1.1]))
    t, how = stack_frame_times(stamped)
    np.testing.assert_array_equal(t, [0.0, 0.2, 0.5, 0.7, 1.1])
    assert "time stamps" in how
    bare = dataclasses.replace(stack, frame_interval_s=None)
    assert stack_frame_times(bare)[1].startswith("frame index")


@pytest.mark.realdata
def test_truncated_sif_is_refused_naming_the_bytes(tmp_path):
    raw = _real("andor_sif/image.sif").read_bytes()
    (tmp_path / "cut.sif").write_bytes(raw[:1_000_000])  # the 512 x 512 float32 frame ends at 1 051 232
    with pytest.raises(RunFolderError, match=r"cut\.sif: truncated: 1 frames need \d+ bytes"):
        open_stack(tmp_path / "cut.sif")
    (tmp_path / "head.sif").write_bytes(raw[:1500])  # the header itself is cut
    with pytest.raises(RunFolderError, match=r"head\.sif: "):
        open_stack(tmp_path / "head.sif")
