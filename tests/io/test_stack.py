"""TIFF stacks as lazy dask arrays: round trips, metadata, bad files."""

from __future__ import annotations

import os
import pickle
import tracemalloc

import numpy as np
import pytest
import tifffile

from plscope.errors import RunFolderError
from plscope.io import Stack, open_stack
from plscope.io.stack import TiffFrames


@pytest.fixture
def movie() -> np.ndarray:
    rng = np.random.default_rng(20)
    return rng.integers(0, 60000, size=(100, 24, 36), dtype=np.uint16)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # contiguous: memory-mapped
        {"compression": "zlib"},  # compressed: read page ranges
        {"byteorder": ">"},  # big-endian: converted to native
        {"imagej": True, "metadata": {"axes": "TYX"}},
        {"ome": True, "metadata": {"axes": "TYX"}},
    ],
    ids=["plain", "zlib", "bigendian", "imagej", "ome"],
)
def test_round_trip_with_chunks_that_do_not_divide(tmp_path, movie, kwargs):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie, **kwargs)
    stack = open_stack(path, chunk_frames=30)
    assert isinstance(stack, Stack)
    assert stack.shape == movie.shape == stack.data.shape
    assert stack.data.chunks == ((30, 30, 30, 10), (24,), (36,))
    assert stack.dtype == np.dtype(np.uint16) and stack.dtype.isnative
    assert stack.paths == (str(path),)
    assert stack.warnings == ()
    np.testing.assert_array_equal(stack.data.compute(), movie)
    np.testing.assert_array_equal(stack.data[25:65, 3:9, ::5].compute(), movie[25:65, 3:9, ::5])


def test_frame_axis_labelled_channels_is_read_as_time_with_a_warning(tmp_path, movie, caplog):
    tifffile.imwrite(tmp_path / "c.tif", movie[:6], imagej=True, metadata={"axes": "CYX"})
    stack = open_stack(tmp_path / "c.tif")
    assert stack.shape == (6, 24, 36)
    assert len(stack.warnings) == 1 and "'C'" in stack.warnings[0]
    assert "c.tif" in caplog.text


def test_float_frames_round_trip(tmp_path):
    data = np.random.default_rng(21).normal(size=(7, 5, 6)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", data)
    np.testing.assert_array_equal(open_stack(tmp_path / "f.tif").data.compute(), data)


def test_glob_of_three_files_in_natural_name_order(tmp_path, movie):
    parts = {"movie_1.tif": movie[:7], "movie_2.tif": movie[7:12], "movie_10.tif": movie[12:21]}
    for name, part in parts.items():
        tifffile.imwrite(tmp_path / name, part)
    stack = open_stack(tmp_path / "movie_*.tif", chunk_frames=4)
    assert [os.path.basename(p) for p in stack.paths] == list(parts)
    assert stack.frame_offsets == (0, 7, 12)
    assert stack.shape == (21, 24, 36)
    assert stack.data.chunks[0] == (4, 4, 4, 4, 4, 1)  # chunks span file boundaries
    np.testing.assert_array_equal(stack.data.compute(), movie[:21])


def test_single_page_tiff_is_one_frame(tmp_path, movie):
    tifffile.imwrite(tmp_path / "one.tif", movie[0])
    stack = open_stack(tmp_path / "one.tif")
    assert stack.shape == (1, 24, 36)
    np.testing.assert_array_equal(stack.data.compute(), movie[:1])


def test_imagej_pixel_size_is_read_back(tmp_path, movie):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path,
        movie[:5],
        imagej=True,
        resolution=(1 / 0.108, 1 / 0.108),
        metadata={"unit": "um", "axes": "TYX"},
    )
    assert open_stack(path).pixel_size_nm == pytest.approx(108.0)


def test_ome_pixel_size_is_read_back(tmp_path, movie):
    path = tmp_path / "ome.tif"
    tifffile.imwrite(
        path,
        movie[:5],
        ome=True,
        metadata={
            "axes": "TYX",
            "PhysicalSizeX": 65.0,
            "PhysicalSizeXUnit": "nm",
            "PhysicalSizeY": 65.0,
            "PhysicalSizeYUnit": "nm",
        },
    )
    assert open_stack(path).pixel_size_nm == pytest.approx(65.0)


def test_no_pixel_size_metadata_gives_none(tmp_path, movie):
    tifffile.imwrite(tmp_path / "m.tif", movie[:5])
    assert open_stack(tmp_path / "m.tif").pixel_size_nm is None


def test_graph_pickles_small_and_recomputes(tmp_path, movie):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie)
    stack = open_stack(path, chunk_frames=16)
    blob = pickle.dumps(stack.data)
    assert len(blob) < 100_000
    np.testing.assert_array_equal(pickle.loads(blob).compute(), movie)
    assert "memmap" not in repr(stack.data.dask.to_dict())


def test_peak_memory_does_not_grow_with_frames(tmp_path):
    frames = np.ones((480, 64, 64), np.uint16)  # 3.9 MB on disk
    tifffile.imwrite(tmp_path / "long.tif", frames)
    tifffile.imwrite(tmp_path / "long_z.tif", frames, compression="zlib")
    for name in ("long.tif", "long_z.tif"):
        data = open_stack(tmp_path / name, chunk_frames=16).data  # chunks of 128 kB
        data[:32].sum(axis=(1, 2)).compute(scheduler="synchronous")  # warm up (lazy imports)
        tracemalloc.start()
        total = data.sum(axis=(1, 2)).compute(scheduler="synchronous")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert total.tolist() == [64 * 64] * 480
        assert peak < 1_500_000, f"{name}: peak {peak} bytes"


def test_lazy_array_indexing(tmp_path, movie):
    for i, name in enumerate(("a_1.tif", "a_2.tif")):
        tifffile.imwrite(tmp_path / name, movie[50 * i : 50 * (i + 1)])
    from plscope.io.stack import _probe

    lazy = TiffFrames(_probe(str(tmp_path / "a_1.tif")).sources + _probe(str(tmp_path / "a_2.tif")).sources)
    assert lazy.shape == movie.shape and not hasattr(lazy, "copy")
    np.testing.assert_array_equal(lazy[-1], movie[-1])
    np.testing.assert_array_equal(lazy[45:55, 2], movie[45:55, 2])
    np.testing.assert_array_equal(lazy[::17], movie[::17])
    np.testing.assert_array_equal(lazy[[3, 60, 3]], movie[[3, 60, 3]])
    assert lazy[10:10].shape == (0, 24, 36)
    with pytest.raises(IndexError):
        lazy[100]


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs", [{}, {"compression": "zlib"}, {"imagej": True}], ids=["plain", "zlib", "imagej"]
)
@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_tiff_raises_naming_the_file(tmp_path, movie, kwargs, fraction):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, movie, **kwargs)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * fraction)])
    with pytest.raises(RunFolderError, match=r"cut\.tif.*(truncated|corrupt)") as info:
        open_stack(path)
    assert info.value.path == str(path)


def test_missing_file_and_empty_glob(tmp_path):
    with pytest.raises(RunFolderError, match="nope.tif: file does not exist"):
        open_stack(tmp_path / "nope.tif")
    with pytest.raises(RunFolderError, match=r"movie_\*\.tif: no file matches"):
        open_stack(tmp_path / "movie_*.tif")
    with pytest.raises(RunFolderError, match="is a folder"):
        open_stack(tmp_path)


def test_not_a_tiff(tmp_path):
    (tmp_path / "notes.tif").write_text("time_s,camera_ttl\n0,0\n")
    with pytest.raises(RunFolderError, match="notes.tif: not a TIFF"):
        open_stack(tmp_path / "notes.tif")
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(RunFolderError, match="empty.tif: is empty"):
        open_stack(tmp_path / "empty.tif")


def test_frames_of_different_shapes_in_a_glob(tmp_path, movie):
    tifffile.imwrite(tmp_path / "m_1.tif", movie[:5])
    tifffile.imwrite(tmp_path / "m_2.tif", movie[:5, :20])
    with pytest.raises(RunFolderError, match=r"m_2\.tif: frames are 20x36 .* 24x36"):
        open_stack(tmp_path / "m_*.tif")


def test_colour_and_hyperstacks_are_refused(tmp_path):
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((4, 8, 8, 3), np.uint8), photometric="rgb")
    with pytest.raises(RunFolderError, match="rgb.tif: frames have 3 samples per pixel"):
        open_stack(tmp_path / "rgb.tif")
    tifffile.imwrite(
        tmp_path / "hyper.tif", np.zeros((3, 2, 8, 8), np.uint16), imagej=True, metadata={"axes": "TCYX"}
    )
    with pytest.raises(RunFolderError, match="hyper.tif: .*single time axis"):
        open_stack(tmp_path / "hyper.tif")


def test_file_changed_after_open_is_detected(tmp_path, movie):
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, movie[:10])
    stack = open_stack(path)
    tifffile.imwrite(path, movie[:20])
    with pytest.raises(RunFolderError, match="changed since"):
        stack.data.compute()


def test_bad_chunk_frames(tmp_path, movie):
    tifffile.imwrite(tmp_path / "m.tif", movie[:5])
    with pytest.raises(ValueError, match="chunk_frames"):
        open_stack(tmp_path / "m.tif", chunk_frames=0)


def test_auto_chunks_hold_about_16_mib(tmp_path, movie):
    from plscope.io.stack import _auto_chunk_frames

    assert _auto_chunk_frames((512, 512), np.dtype(np.uint16)) == 32
    assert _auto_chunk_frames((2048, 2048), np.dtype(np.uint16)) == 2
    assert _auto_chunk_frames((4096, 4096), np.dtype(np.float32)) == 1
    assert _auto_chunk_frames((96, 96), np.dtype(np.uint16)) == 256
    tifffile.imwrite(tmp_path / "m.tif", movie)
    stack = open_stack(tmp_path / "m.tif", chunk_frames="auto")
    assert stack.data.chunks[0] == (100,)
    np.testing.assert_array_equal(stack.data.compute(), movie)


def test_max_chunk_bytes_caps_the_frames_per_chunk(tmp_path, movie):
    tifffile.imwrite(tmp_path / "m.tif", movie)
    frame_bytes = movie[0].nbytes
    stack = open_stack(tmp_path / "m.tif", chunk_frames=64, max_chunk_bytes=10 * frame_bytes + 1)
    assert max(stack.data.chunks[0]) == 10
    np.testing.assert_array_equal(stack.data.compute(), movie)
    # a cap below one frame still gives whole frames; a cap above the chunk changes nothing
    assert max(open_stack(tmp_path / "m.tif", max_chunk_bytes=1).data.chunks[0]) == 1
    assert open_stack(tmp_path / "m.tif", chunk_frames=30, max_chunk_bytes=2**30).data.chunks[0][0] == 30
