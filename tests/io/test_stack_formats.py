"""Every stack format a lab has: BigTIFF, ImageJ, OME (single and multi-file),
Micro-Manager MMStack datasets, Princeton Instruments SPE v2/v3, real files.

The Micro-Manager, multi-file OME and SPE files are written here byte by
byte following the published formats (Micro-Manager file formats page; OME
TiffData/UUID; SPE 3.0 file format specification), and tifffile's own
independent readers are used as a cross-check where they exist.
"""

from __future__ import annotations

import json
import pickle
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile

from plscope.errors import RunFolderError
from plscope.io import open_stack

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"


@pytest.fixture
def movie() -> np.ndarray:
    rng = np.random.default_rng(30)
    return rng.integers(0, 60000, size=(25, 20, 30), dtype=np.uint16)


# --------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------


def _entry(tag: int, typ: int, count: int, value: int) -> bytes:
    if typ == 3 and count == 1:  # SHORT, left-justified in the value field
        return struct.pack("<HHIHH", tag, typ, count, value, 0)
    return struct.pack("<HHII", tag, typ, count, value)


def write_mmstack(
    folder: Path,
    prefix: str,
    movie: np.ndarray,
    *,
    frames_per_file: int,
    pixel_size_um: float = 0.108,
    interval_ms: float = 50.0,
    missing: tuple[int, ...] = (),
) -> list[str]:
    """A Micro-Manager 1.4 multipage-TIFF dataset (one position, channel, slice).

    Layout of each file: TIFF header; index-map, display-settings and
    comments offsets with their magic numbers; summary JSON; then per frame
    an IFD of 13 entries (14 in the first, with ImageDescription) directly
    followed by the pixels, the resolution rationals and the per-frame JSON;
    at the end the index map (channel, slice, frame, position, IFD offset).
    Frames listed in ``missing`` are not written (and not in the index map).
    """
    h, w = movie.shape[1:]
    nbytes = h * w * 2
    present = [t for t in range(movie.shape[0]) if t not in set(missing)]
    summary = json.dumps(
        {
            "MicroManagerVersion": "1.4.23",
            "Prefix": prefix,
            "Frames": movie.shape[0],
            "Slices": 1,
            "Channels": 1,
            "Positions": 1,
            "Width": w,
            "Height": h,
            "PixelType": "GRAY16",
            "PixelSize_um": pixel_size_um,
            "Interval_ms": interval_ms,
            "TimeFirst": False,
            "SlicesFirst": True,
        }
    ).encode()
    names = []
    for f, a in enumerate(range(0, len(present), frames_per_file)):
        frames = present[a : a + frames_per_file]
        name = f"{prefix}_MMStack_Pos0.ome.tif" if f == 0 else f"{prefix}_MMStack_Pos0_{f}.ome.tif"
        buf = bytearray(b"II" + struct.pack("<HI", 42, 0))
        buf += struct.pack("<II", 54773648, 0) + struct.pack("<II", 483765892, 0)
        buf += struct.pack("<II", 99384722, 0) + struct.pack("<II", 2355492, len(summary)) + summary
        buf += b"\0" * (len(buf) % 2)
        struct.pack_into("<I", buf, 4, len(buf))
        index = []
        for k, t in enumerate(frames):
            ifd = len(buf)
            index.append((0, 0, t, 0, ifd))
            meta = json.dumps({"ElapsedTime-ms": t * interval_ms, "FrameIndex": t}).encode() + b"\0"
            desc = b"Micro-Manager test dataset\0" if k == 0 else b""
            n = 14 if desc else 13
            data = ifd + 2 + 12 * n + 4
            xres = data + nbytes
            meta_at = xres + 16
            desc_at = meta_at + len(meta)
            end = desc_at + len(desc)
            end += end % 2
            entries = [
                _entry(256, 4, 1, w),
                _entry(257, 4, 1, h),
                _entry(258, 3, 1, 16),
                _entry(259, 3, 1, 1),
                _entry(262, 3, 1, 1),
            ]
            if desc:
                entries.append(_entry(270, 2, len(desc), desc_at))
            entries += [
                _entry(273, 4, 1, data),
                _entry(277, 3, 1, 1),
                _entry(278, 4, 1, h),
                _entry(279, 4, 1, nbytes),
                _entry(282, 5, 1, xres),
                _entry(283, 5, 1, xres + 8),
                _entry(296, 3, 1, 3),
                _entry(51123, 2, len(meta), meta_at),
            ]
            nxt = 0 if k == len(frames) - 1 else end
            buf += struct.pack("<H", n) + b"".join(entries) + struct.pack("<I", nxt)
            buf += movie[t].astype("<u2").tobytes()
            buf += struct.pack("<IIII", 1, 1, 1, 1) + meta + desc
            buf += b"\0" * (end - len(buf))
        struct.pack_into("<I", buf, 12, len(buf))
        buf += struct.pack("<II", 3453623, len(index)) + np.array(index, "<u4").tobytes()
        struct.pack_into("<I", buf, 20, len(buf))
        buf += struct.pack("<II", 347834724, 2) + b"[]"
        struct.pack_into("<I", buf, 28, len(buf))
        buf += struct.pack("<II", 84720485, 2) + b"{}"
        (folder / name).write_bytes(bytes(buf))
        names.append(name)
    return names


def write_ome_parts(
    folder: Path,
    movie: np.ndarray,
    *,
    split: int,
    binary_only: bool = False,
    compression: str | None = None,
    pixel_size_um: float = 0.065,
    interval_ms: float = 50.0,
) -> None:
    """Multi-file OME-TIFF: frames [0, split) in a.ome.tif, the rest in b.ome.tif.

    The OME-XML (in a.ome.tif, and in b.ome.tif unless ``binary_only``)
    maps each file by UUID; DeltaT of each plane is 1.01 x the increment.
    """
    t, h, w = movie.shape
    planes = "".join(
        f'<Plane TheT="{k}" TheZ="0" TheC="0" DeltaT="{k * interval_ms * 1.01e-3:.6f}" DeltaTUnit="s"/>'
        for k in range(t)
    )
    image = (
        f'<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" '
        f'SizeX="{w}" SizeY="{h}" SizeC="1" SizeZ="1" SizeT="{t}" '
        f'PhysicalSizeX="{pixel_size_um}" PhysicalSizeXUnit="\u00b5m" '
        f'PhysicalSizeY="{pixel_size_um}" PhysicalSizeYUnit="\u00b5m" '
        f'TimeIncrement="{interval_ms}" TimeIncrementUnit="ms">'
        '<Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
        f'<TiffData FirstT="0" IFD="0" PlaneCount="{split}">'
        '<UUID FileName="a.ome.tif">urn:uuid:aaaa</UUID></TiffData>'
        f'<TiffData FirstT="{split}" IFD="0" PlaneCount="{t - split}">'
        '<UUID FileName="b.ome.tif">urn:uuid:bbbb</UUID></TiffData>'
        f"{planes}</Pixels></Image>"
    )
    for name, uuid, part in (("a.ome.tif", "aaaa", movie[:split]), ("b.ome.tif", "bbbb", movie[split:])):
        body = image
        if binary_only and name == "b.ome.tif":
            body = '<BinaryOnly MetadataFile="a.ome.tif" UUID="urn:uuid:aaaa"/>'
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/'
            f'Schemas/OME/2016-06" UUID="urn:uuid:{uuid}">{body}</OME>'
        )
        tifffile.imwrite(
            folder / name,
            part,
            description=xml.encode("utf-8"),
            metadata=None,
            photometric="minisblack",
            compression=compression,
        )


_SPE_CODES = {
    np.dtype("<f4"): 0,
    np.dtype("<i4"): 1,
    np.dtype("<i2"): 2,
    np.dtype("<u2"): 3,
    np.dtype("<u4"): 8,
}
_SPE_V3_FORMATS = {
    np.dtype("<u2"): "MonochromeUnsigned16",
    np.dtype("<u4"): "MonochromeUnsigned32",
    np.dtype("<f4"): "MonochromeFloating32",
}


def write_spe(
    path: Path,
    movie: np.ndarray,
    *,
    version: float = 2.5,
    frame_numbers: np.ndarray | None = None,
    exposure_start_s: np.ndarray | None = None,
    tick_hz: float = 1e6,
) -> None:
    """An SPE file: 4100-byte header, frames (v3: each followed by 3 int64
    metadata: exposure start and end in ticks, frame tracking number), and
    for v3 the XML footer whose offset is at byte 678."""
    t, h, w = movie.shape
    dt = movie.dtype.newbyteorder("<")
    head = bytearray(4100)
    struct.pack_into("<f", head, 10, 0.05)
    struct.pack_into("<H", head, 42, w)
    struct.pack_into("<h", head, 108, _SPE_CODES[dt])
    struct.pack_into("<H", head, 656, h)
    struct.pack_into("<i", head, 1446, t)
    struct.pack_into("<f", head, 1992, version)
    if version < 3:
        path.write_bytes(bytes(head) + movie.astype(dt).tobytes())
        return
    numbers = np.arange(1, t + 1) if frame_numbers is None else np.asarray(frame_numbers)
    start = 0.1 * np.arange(t) if exposure_start_s is None else np.asarray(exposure_start_s)
    ticks = np.round((start + 1000.0) * tick_hz).astype("<i8")
    meta = np.stack([ticks, ticks + int(0.05 * tick_hz), numbers.astype("<i8")], axis=1)
    size = h * w * dt.itemsize
    body = b"".join(movie[k].astype(dt).tobytes() + meta[k].tobytes() for k in range(t))
    fmt = _SPE_V3_FORMATS[dt]
    footer = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<SpeFormat version="3.0" xmlns="http://www.princetoninstruments.com/spe/2009">'
        f'<DataFormat><DataBlock type="Frame" count="{t}" pixelFormat="{fmt}" size="{size}" '
        f'stride="{size + 24}"><DataBlock type="Region" count="1" pixelFormat="{fmt}" '
        f'size="{size}" stride="{size}" calibrations="1" width="{w}" height="{h}"/>'
        '</DataBlock></DataFormat><MetaFormat><MetaBlock type="Frame">'
        f'<TimeStamp event="ExposureStarted" type="Int64" bitDepth="64" resolution="{tick_hz:g}"/>'
        f'<TimeStamp event="ExposureEnded" type="Int64" bitDepth="64" resolution="{tick_hz:g}"/>'
        '<FrameTrackingNumber type="Int64" bitDepth="64"/></MetaBlock></MetaFormat>'
        "</SpeFormat>"
    ).encode()
    struct.pack_into("<Q", head, 678, 4100 + len(body))
    path.write_bytes(bytes(head) + body + footer)


# --------------------------------------------------------------------------
# BigTIFF, ImageJ, OME
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs", [{}, {"compression": "zlib"}, {"byteorder": ">"}], ids=["plain", "zlib", "bigendian"]
)
def test_bigtiff_round_trip(tmp_path, movie, kwargs):
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, movie, bigtiff=True, **kwargs)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
    stack = open_stack(path, chunk_frames=7)
    assert stack.shape == movie.shape and stack.format == "tiff"
    np.testing.assert_array_equal(stack.data.compute(), movie)


def test_imagej_hyperstack_with_one_time_axis_and_frame_interval(tmp_path, movie):
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(
        path,
        movie[:, None, None],
        imagej=True,
        resolution=(1 / 0.2, 1 / 0.2),
        metadata={"axes": "TZCYX", "unit": "um", "finterval": 0.125},
    )
    stack = open_stack(path)
    assert stack.format == "imagej" and stack.axes == "TYX"
    assert stack.pixel_size_nm == pytest.approx(200.0)
    assert stack.frame_interval_s == pytest.approx(0.125)
    np.testing.assert_array_equal(stack.data.compute(), movie)


def test_ome_axes_pixel_size_and_time_increment(tmp_path, movie):
    path = tmp_path / "m.ome.tif"
    tifffile.imwrite(
        path,
        movie,
        ome=True,
        metadata={
            "axes": "TYX",
            "PhysicalSizeX": 0.0866,
            "PhysicalSizeXUnit": "\u00b5m",
            "PhysicalSizeY": 0.0866,
            "PhysicalSizeYUnit": "\u00b5m",
            "TimeIncrement": 40.0,
            "TimeIncrementUnit": "ms",
        },
    )
    stack = open_stack(path)
    assert stack.format == "ome" and stack.axes == "TYX" and stack.warnings == ()
    assert stack.pixel_size_nm == pytest.approx(86.6)
    assert stack.frame_interval_s == pytest.approx(0.040)
    np.testing.assert_array_equal(stack.data.compute(), movie)


def test_ome_z_stack_is_read_as_time_with_a_warning(tmp_path, movie):
    path = tmp_path / "z.ome.tif"
    tifffile.imwrite(path, movie[:6], ome=True, metadata={"axes": "ZYX"})
    stack = open_stack(path)
    assert stack.axes == "ZYX" and stack.shape == (6, 20, 30)
    assert "'Z' (depth)" in stack.warnings[0] and "reading it as time" in stack.warnings[0]


def test_ome_hyperstack_is_refused(tmp_path, movie):
    tifffile.imwrite(
        tmp_path / "tc.ome.tif", movie[:24].reshape(12, 2, 20, 30), ome=True, metadata={"axes": "TCYX"}
    )
    with pytest.raises(RunFolderError, match=r"tc\.ome\.tif: .*TCYX.*single time axis"):
        open_stack(tmp_path / "tc.ome.tif")


# --------------------------------------------------------------------------
# multi-file OME-TIFF
# --------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize("name", ["a.ome.tif", "b.ome.tif", "*.ome.tif"])
def test_multifile_ome_reads_the_whole_dataset_from_any_part(tmp_path, movie, name, compression):
    write_ome_parts(tmp_path, movie, split=10, binary_only=True, compression=compression)
    stack = open_stack(str(tmp_path / name), chunk_frames=8)  # chunks straddle the files
    assert stack.shape == movie.shape and stack.format == "ome"
    assert [Path(p).name for p in stack.paths] == ["a.ome.tif", "b.ome.tif"]
    assert stack.frame_offsets == (0, 10)
    assert stack.pixel_size_nm == pytest.approx(65.0)
    assert stack.frame_interval_s == pytest.approx(0.05)
    np.testing.assert_allclose(stack.frame_time_s, 0.0505 * np.arange(25), atol=1e-6)
    np.testing.assert_array_equal(stack.data.compute(), movie)


def test_multifile_ome_with_a_missing_part_is_refused_naming_it(tmp_path, movie):
    write_ome_parts(tmp_path, movie, split=10)
    (tmp_path / "b.ome.tif").unlink()
    with pytest.raises(
        RunFolderError,
        match=r"a\.ome\.tif: 15 of 25 frames are missing: part "
        r"file 'b\.ome\.tif'",
    ):
        open_stack(tmp_path / "a.ome.tif")


# --------------------------------------------------------------------------
# Micro-Manager MMStack
# --------------------------------------------------------------------------


def test_mmstack_writer_agrees_with_tifffile(tmp_path, movie):
    write_mmstack(tmp_path, "run", movie, frames_per_file=10)
    with tifffile.TiffFile(tmp_path / "run_MMStack_Pos0.ome.tif") as tif:
        series = tif.series[0]
        assert series.kind == "mmstack" and series.is_multifile
        np.testing.assert_array_equal(series.asarray(), movie)


@pytest.mark.parametrize(
    "name", ["run_MMStack_Pos0.ome.tif", "run_MMStack_Pos0_2.ome.tif", "run_MMStack_Pos0*.ome.tif"]
)
def test_mmstack_dataset_cut_into_files(tmp_path, movie, name):
    names = write_mmstack(tmp_path, "run", movie, frames_per_file=10)
    assert len(names) == 3
    stack = open_stack(str(tmp_path / name), chunk_frames=6)
    assert stack.format == "mmstack" and stack.shape == movie.shape
    assert [Path(p).name for p in stack.paths] == names
    assert stack.frame_offsets == (0, 10, 20)
    assert stack.pixel_size_nm == pytest.approx(108.0)
    assert stack.frame_interval_s == pytest.approx(0.05)
    assert stack.frame_numbers is None and stack.warnings == ()
    np.testing.assert_array_equal(stack.data.compute(), movie)
    np.testing.assert_array_equal(stack.data[8:13].compute(), movie[8:13])


def test_mmstack_missing_frames_are_skipped_and_numbered(tmp_path, movie):
    write_mmstack(tmp_path, "run", movie, frames_per_file=10, missing=(7, 16))
    stack = open_stack(tmp_path / "run_MMStack_Pos0.ome.tif")
    keep = [t for t in range(25) if t not in (7, 16)]
    assert stack.shape == (23, 20, 30)
    np.testing.assert_array_equal(stack.frame_numbers, keep)
    assert "2 of 25 frames are missing" in stack.warnings[0] and len(stack.warnings) == 1
    np.testing.assert_array_equal(stack.data.compute(), movie[keep])


def test_mmstack_graph_pickles_small_without_handles(tmp_path, movie):
    write_mmstack(tmp_path, "run", movie, frames_per_file=10)
    stack = open_stack(tmp_path / "run_MMStack_Pos0.ome.tif", chunk_frames=4)
    blob = pickle.dumps(stack.data)
    assert len(blob) < 50_000
    assert b"BufferedReader" not in blob and b"FileHandle" not in blob
    np.testing.assert_array_equal(pickle.loads(blob).compute(), movie)


# --------------------------------------------------------------------------
# Princeton Instruments SPE
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["<u2", "<i2", "<i4", "<u4", "<f4"])
def test_spe_v2_round_trip(tmp_path, movie, dtype):
    data = (movie.astype(np.int64) - 30000).astype(dtype) if dtype[1] in "if" else movie.astype(dtype)
    write_spe(tmp_path / "m.spe", data)
    stack = open_stack(tmp_path / "m.spe", chunk_frames=10)
    assert stack.format == "spe" and stack.shape == data.shape
    assert stack.dtype == np.dtype(dtype).newbyteorder("=")
    assert stack.frame_numbers is None
    np.testing.assert_array_equal(stack.data.compute(), data)


def test_spe_v3_with_frame_metadata(tmp_path, movie):
    numbers = np.array(
        [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26]
    )  # frame 4 lost between camera and disk
    start = 0.1 * (numbers - 1)
    write_spe(tmp_path / "v3.spe", movie, version=3.0, frame_numbers=numbers, exposure_start_s=start)
    stack = open_stack(tmp_path / "v3.spe", chunk_frames=6)
    assert stack.format == "spe" and stack.shape == movie.shape
    np.testing.assert_array_equal(stack.frame_numbers, numbers)
    np.testing.assert_allclose(stack.frame_time_s, start, atol=1e-6)
    assert stack.frame_interval_s == pytest.approx(0.1)
    np.testing.assert_array_equal(stack.data.compute(), movie)


def test_spe_v3_float_frames(tmp_path, movie):
    data = movie.astype(np.float32) / 7
    write_spe(tmp_path / "f.spe", data, version=3.0)
    np.testing.assert_array_equal(open_stack(tmp_path / "f.spe").data.compute(), data)


def test_spe_glob_concatenates(tmp_path, movie):
    write_spe(tmp_path / "m_1.spe", movie[:10])
    write_spe(tmp_path / "m_2.spe", movie[10:])
    stack = open_stack(str(tmp_path / "m_*.spe"), chunk_frames=4)
    np.testing.assert_array_equal(stack.data.compute(), movie)


@pytest.mark.parametrize(
    "breakage, problem",
    [
        (lambda raw: raw[: 4100 + 3 * 20 * 30 * 2 + 17], r"truncated: 25 frames need"),
        (lambda raw: raw[:2000], r"shorter than the 4100-byte SPE header"),
        (lambda raw: raw[:108] + struct.pack("<h", 42) + raw[110:], r"data type code 42"),
        (lambda raw: raw[:1446] + struct.pack("<i", 0) + raw[1450:], r"0 frame\(s\)"),
    ],
    ids=["truncated", "header-only", "bad-type", "no-frames"],
)
def test_broken_spe_is_refused_naming_the_file(tmp_path, movie, breakage, problem):
    path = tmp_path / "bad.spe"
    write_spe(path, movie)
    path.write_bytes(breakage(path.read_bytes()))
    with pytest.raises(RunFolderError, match=rf"bad\.spe: .*{problem}"):
        open_stack(path)


def test_truncated_spe_v3_is_refused(tmp_path, movie):
    path = tmp_path / "v3.spe"
    write_spe(path, movie, version=3.0)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RunFolderError, match=r"v3\.spe: truncated or corrupt SPE v3"):
        open_stack(path)


def test_peak_memory_of_spe_and_mmstack_reads_does_not_grow_with_frames(tmp_path):
    frames = np.ones((240, 64, 64), np.uint16)  # 1.9 MB
    write_spe(tmp_path / "long.spe", frames, version=3.0)
    write_mmstack(tmp_path, "long", frames, frames_per_file=100)
    for name in ("long.spe", "long_MMStack_Pos0.ome.tif"):
        data = open_stack(tmp_path / name, chunk_frames=16).data  # chunks of 128 kB
        data[:32].sum(axis=(1, 2)).compute(scheduler="synchronous")
        tracemalloc.start()
        total = data.sum(axis=(1, 2)).compute(scheduler="synchronous")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert total.tolist() == [64 * 64] * 240
        assert peak < 1_000_000, f"{name}: peak {peak} bytes"


# --------------------------------------------------------------------------
# real files
# --------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_spe_reads_identical_to_its_derived_tiff():
    folder = REAL / "pMHC_AF647"
    spe, tif = folder / "pMHC_AF647_200k_000_.SPE", folder / "pMHC_AF647_200k_000_DERIVED.tif"
    if not (spe.is_file() and tif.is_file()):
        pytest.skip("real data not available")
    stack = open_stack(spe, chunk_frames=3)
    assert stack.format == "spe" and stack.shape == (10, 128, 128)
    assert stack.dtype == np.uint16
    frames = stack.data.compute()
    reference = tifffile.imread(tif)
    np.testing.assert_array_equal(frames, reference)
    np.testing.assert_array_equal(open_stack(tif).data.compute(), reference)
    assert frames.min() > 0 and frames.max() > 10 * np.median(frames)  # bright molecules on a background


# --------------------------------------------------------------------------
# through the pipeline: an SPE movie and a Micro-Manager dataset as [movie] path
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_spe_and_mmstack_movies_run_through_the_pipeline_identically(small_run, tmp_path, capsys):
    import shutil

    import pandas as pd

    from plscope.cli import main

    src, truth = small_run
    frames = tifffile.imread(src / "movie.tif")
    results = {}
    for kind in ("spe", "mmstack"):
        run = tmp_path / kind
        shutil.copytree(src, run, ignore=shutil.ignore_patterns("movie.tif", "ground_truth.json"))
        if kind == "spe":
            write_spe(run / "movie.spe", frames, version=3.0, frame_numbers=np.arange(len(frames)) + 1)
            name = "movie.spe"
        else:
            write_mmstack(run, "movie", frames, frames_per_file=250)  # three files
            name = "movie_MMStack_Pos0.ome.tif"
        toml = run / "experiment.toml"
        toml.write_text(toml.read_text().replace('path = "movie.tif"', f'path = "{name}"'))
        assert main(["-q", "run", str(run), "--out", str(tmp_path / f"out_{kind}"), "--no-progress"]) == 0
        summary = json.loads((tmp_path / f"out_{kind}" / "summary.json").read_text())
        assert summary["n_frames"] == truth["n_frames"] == len(frames)
        assert summary["n_particles"] == len(truth["particles"])
        results[kind] = pd.read_csv(tmp_path / f"out_{kind}" / "particles.csv")
    capsys.readouterr()
    pd.testing.assert_frame_equal(results["spe"], results["mmstack"])
