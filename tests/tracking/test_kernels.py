"""The compiled kernels of the streaming pass equal the numpy expressions they replace, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from plscope.tracking._kernels import block_mean, csr_apply, numba_frames
from plscope.tracking.traces import trace_weights


def _frames(dtype, shape=(21, 40, 48), seed=0):
    rng = np.random.default_rng(seed)
    raw = rng.gamma(2.0, 900.0, shape)
    if np.dtype(dtype).kind == "u":
        return np.clip(raw, 0, np.iinfo(dtype).max).astype(dtype)
    return raw.astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64, ">u2", np.float16])
def test_block_mean_equals_numpy_mean(dtype):
    block = _frames(np.dtype(dtype).newbyteorder("=") if dtype == ">u2" else dtype).astype(dtype)
    assert np.array_equal(block_mean(block), block.mean(axis=0, dtype=np.float64))


def test_block_mean_of_the_largest_uint16_values_is_exact():
    block = np.full((300, 8, 8), 65535, np.uint16)
    assert np.all(block_mean(block) == 65535.0)


def test_csr_apply_equals_the_scipy_product_in_float32():
    rng = np.random.default_rng(1)
    frames = _frames(np.uint16)
    flat = numba_frames(frames)
    pixels = np.unique(rng.integers(0, flat.shape[1], 300))
    matrix = sparse.random_array((pixels.size, 37), density=0.2, rng=rng, dtype=np.float32, format="csr")
    matrix.data -= 0.5  # signed weights, as for background-subtracted sums
    rows = np.array([0, 3, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20])  # > one SIMD group
    expected = np.take(flat[rows], pixels, axis=1).astype(np.float32) @ matrix
    got, _ = csr_apply(flat, rows, matrix, pixels)
    assert got.dtype == np.float32
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.uint16, np.float64, ">u2", np.float16])
def test_trace_weights_apply_and_peaks_equal_the_numpy_expressions(dtype):
    frames = _frames(np.uint16, shape=(9, 40, 48)).astype(dtype)
    frames[2, 20, 20] = 60000 if np.dtype(dtype).kind == "u" else np.nan
    particles = pd.DataFrame(
        {"particle_id": [1, 2, 3], "x_px": [12.0, 30.2, 60.0], "y_px": [20.0, 21.5, 2.0], "side_px": 3.0}
    ).assign(psf_sigma_px=1.3)
    w = trace_weights((40, 48), particles, moments=True, drift_margin_px=1.0)
    assert list(w.valid) == [True, True, False]  # the third lies outside the frame: NaN columns
    rows = np.array([1, 2, 5])
    sel = frames[rows].reshape(3, -1)
    vals = np.asarray(np.take(sel, w.pixels, axis=1).astype(np.float32) @ w.matrix, dtype=np.float64)
    n = w.n_particles
    for k in range(4):
        vals[:, k * n + np.flatnonzero(~w.valid)] = np.nan
    assert np.array_equal(w.apply(frames, rows), vals, equal_nan=True)
    assert np.array_equal(w.apply(frames)[rows], vals, equal_nan=True)
    peaks = np.full((3, n), np.nan)
    ap = np.take(sel, w.pixels[w.aperture_order], axis=1)
    peaks[:, w.valid] = np.maximum.reduceat(ap, w.aperture_starts, axis=1)
    assert np.array_equal(w.peaks(frames, rows), peaks, equal_nan=True)
    assert np.array_equal(w.peaks(frames)[rows], peaks, equal_nan=True)
    both = w.apply_and_peaks(frames, rows)  # one loop over the frames for both
    assert np.array_equal(both[0], vals, equal_nan=True) and np.array_equal(both[1], peaks, equal_nan=True)


def test_row_nanmedian_equals_numpy_nanmedian():
    from plscope.tracking.traces import _nanmedian_rows

    rng = np.random.default_rng(3)
    for _ in range(100):  # small (numpy: masked arrays) and large (numpy: row by row) inputs
        a = rng.normal(size=(int(rng.integers(1, 40)), int(rng.integers(1, 300))))
        a[rng.random(a.shape) < rng.random()] = np.nan
        a[0] = np.nan
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):  # the all-NaN row
            expected = np.nanmedian(a, axis=1)
        assert np.array_equal(_nanmedian_rows(a), expected, equal_nan=True)


def test_indices_outside_the_frames_raise_as_numpy_does():
    """The compiled loops do no bounds checks: the wrappers check, as numpy's indexing would raise."""
    particles = pd.DataFrame(
        {
            "particle_id": [1, 2],
            "x_px": [30.0, 10.0],
            "y_px": [30.0, 10.0],
            "side_px": 3.0,
            "psf_sigma_px": 1.3,
        }
    )
    w = trace_weights((40, 48), particles, moments=False)
    frames = np.ones((5, 40, 48), np.uint16)
    for call in (lambda f, r: f[r][:, :, 0], w.apply, w.peaks):  # numpy first: the expected behaviour
        with pytest.raises(IndexError):
            call(frames, np.array([0, 7]))
    with pytest.raises(IndexError):
        np.take(np.ones((5, 400)), w.pixels, axis=1)
    with pytest.raises(IndexError):  # frames smaller than the weights' frame
        w.apply(np.ones((5, 20, 20), np.uint16))
    with pytest.raises(IndexError):
        w.peaks(np.ones((5, 20, 20), np.uint16))
    assert np.array_equal(w.apply(frames, np.array([-1])), w.apply(frames, np.array([4])))  # as numpy


def test_blocks_and_rows_without_frames():
    """A dask chunk without frames (or no rows selected) gives empty results, as numpy's expressions do."""
    from plscope.tracking._kernels import block_sum_u32

    empty = np.zeros((0, 4, 5), np.uint16)
    assert np.array_equal(block_sum_u32(empty), empty.sum(axis=0, dtype=np.uint32))
    assert numba_frames(empty).shape == (0, 20)
    particles = pd.DataFrame(
        {"particle_id": [1], "x_px": [20.0], "y_px": [20.0], "side_px": 3.0, "psf_sigma_px": 1.3}
    )
    w = trace_weights((40, 48), particles, moments=False)
    for dtype in (np.uint16, ">u2"):  # compiled and numpy paths
        frames = np.ones((3, 40, 48), dtype)
        none = np.zeros(0, np.int64)
        assert w.apply(frames, none).shape == (0, w.matrix.shape[1])
        assert w.peaks(frames, none).shape == (0, 1)


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.uint32])
def test_block_sum_refuses_what_uint32_cannot_hold(dtype):
    """Signed, float or 32-bit frames would wrap or truncate in a uint32 sum: refused, not summed."""
    from plscope.tracking._kernels import block_sum_u32

    with pytest.raises(ValueError, match="uint8/uint16"):
        block_sum_u32(np.full((2, 3, 3), -1 if dtype is np.int16 else 1.5, dtype))


def test_block_sum_exact_for_big_endian_and_full_range():
    """uint16 frames at their maximum, native and big-endian, sum exactly (65 535 x frames)."""
    from plscope.tracking._kernels import block_sum_u32

    for dtype in (np.uint16, ">u2"):
        frames = np.full((300, 4, 5), 65535, dtype)
        assert np.all(block_sum_u32(frames) == 300 * 65535)
