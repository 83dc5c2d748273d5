"""Compiled per-frame kernels of the streaming pass (numba): block sums, sparse weights, peaks.

The traces pass turns each frame into per-particle values with a sparse
weight matrix over the few pixels the apertures and annuli touch
(:class:`~plscope.tracking.traces.TraceWeights`), and the drift pass
registers the mean of each block of frames. In numpy these cost a gather
(``np.take`` and a float32 copy), a sparse product and a float64 reduction
of the whole block; here each is one loop over the frame's pixels with no
temporary copy of the block.

The results are bit-for-bit those of the numpy expressions they replace:

- :func:`block_sum` of unsigned 8/16-bit frames sums in uint32 (exact up to
  65 537 frames of 16 bits), so ``block_sum(b) / t`` equals
  ``b.mean(axis=0, dtype=float64)`` (a float64 sum of integers below 2**53 is
  exact in any order);
- :func:`csr_apply` accumulates in float32 in the order of scipy's
  dense @ sparse product (``csc_matvecs`` on the transposed CSR matrix:
  output column by output column, pixels in ascending order), so it equals
  ``frames[:, pixels].astype(float32) @ matrix``;
- :func:`aperture_peaks` is the exact maximum of integers or floats.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

#: Frames whose values are summed together per vector pass of :func:`csr_apply` (SIMD over frames).
_FRAME_GROUP = 16


def numba_frames(frames: np.ndarray) -> np.ndarray | None:
    """``frames`` as a C-contiguous ``(t, pixels)`` array the kernels take, or None (dtype they cannot).

    Numba handles native-order integers and float32/float64; anything else
    (big-endian views, float16, bool) goes the numpy way.
    """
    arr = np.asarray(frames)
    dt = arr.dtype
    if not dt.isnative or dt.kind not in "uif" or dt == np.float16:
        return None
    # the pixel count spelled out: reshape(0, -1) of a chunk without frames raises
    return np.ascontiguousarray(arr.reshape(arr.shape[0], int(np.prod(arr.shape[1:]))))


def _checked(flat: np.ndarray, rows: Any, pixels: np.ndarray) -> np.ndarray:
    """``rows`` as int64, after checking that every frame and pixel index is inside ``flat``.

    The compiled loops do no bounds checks (numba's default): an index outside
    the frames, or weights built for a larger frame, would read other memory
    silently. Raises IndexError as numpy's indexing does (negative rows count
    from the end, as there).
    """
    idx = np.asarray(rows, np.int64)
    t, n_px = flat.shape
    if idx.size and (int(idx.min()) < -t or int(idx.max()) >= t):
        raise IndexError(f"frame index out of bounds for axis 0 with size {t}")
    if pixels.size and (int(pixels.min()) < 0 or int(pixels.max()) >= n_px):
        raise IndexError(f"pixel index out of bounds for axis 1 with size {n_px}")
    return idx


@numba.njit(cache=True, nogil=True)
def _block_sum_u32(flat: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    t, p = flat.shape
    acc = np.zeros(p, np.uint32)
    for k in range(t):
        for j in range(p):
            acc[j] += flat[k, j]
    return acc


def block_sum_u32(block: np.ndarray) -> np.ndarray:
    """Exact sum over frames of unsigned 8/16-bit frames (at most 65 537 of them), uint32 ``(rows, cols)``."""
    arr = np.asarray(block)
    if arr.dtype.kind != "u" or arr.dtype.itemsize > 2 or arr.shape[0] > 65537:
        # a uint32 sum of signed, float or more frames would wrap or truncate silently
        raise ValueError(
            f"block_sum_u32: needs at most 65 537 uint8/uint16 frames, got {arr.shape[0]} of {arr.dtype}"
        )
    flat = numba_frames(arr)
    if flat is None or arr.shape[0] == 0:
        return arr.sum(axis=0, dtype=np.uint32)
    return _block_sum_u32(flat).reshape(arr.shape[1:])


def block_mean(block: np.ndarray) -> np.ndarray:
    """Mean image of a block of frames, float64, equal to ``block.mean(axis=0, dtype=float64)``.

    Unsigned 8- and 16-bit frames (camera data) are summed exactly in uint32 by a
    compiled loop (a 32-frame block of 512 x 512 in ~2.5 ms instead of ~7 ms);
    other types use numpy.
    """
    arr = np.asarray(block)
    t = arr.shape[0]
    if t and arr.dtype in (np.uint8, np.uint16) and t <= 65537:
        flat = numba_frames(arr)
        if flat is not None:
            return (_block_sum_u32(flat) / t).reshape(arr.shape[1:])
    return arr.mean(axis=0, dtype=np.float64)


@numba.njit(cache=True, nogil=True)
def _csr_apply(
    flat: np.ndarray,
    rows: np.ndarray,
    pixels: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    n_cols: int,
    group: int,
    peak_col: np.ndarray,
    n_peaks: int,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    # ``group`` frames at a time, each weight applied to all of them (a vector loop: the group is a
    # run-time value and the indices unsigned, so LLVM vectorizes the loop rather than unrolling it)
    m = rows.size
    out = np.zeros((m, n_cols), np.float32)
    peaks = np.full((m, n_peaks), np.nan)
    for j in range(peak_col.size):
        if peak_col[j] >= 0:
            peaks[:, peak_col[j]] = -np.inf
    ug = np.uint64(group)
    acc = np.zeros(n_cols * group, np.float32)
    x = np.zeros(group, np.float32)
    for g0 in range(0, m, group):
        g = min(group, m - g0)
        acc[:] = 0.0
        x[:] = 0.0
        for j in range(pixels.size):
            p = pixels[j]
            c = peak_col[j] if peak_col.size else -1
            for k in range(g):
                v = flat[rows[g0 + k], p]
                x[k] = np.float32(v)
                if c >= 0:  # an aperture pixel: the brightest so far (NaN propagates, as in np.maximum)
                    fv = np.float64(v)
                    if fv > peaks[g0 + k, c] or fv != fv:
                        peaks[g0 + k, c] = fv
            for nz in range(indptr[j], indptr[j + 1]):
                o = np.uint64(indices[nz]) * ug
                a = data[nz]
                for k in range(ug):
                    acc[o + k] += a * x[k]
        for k in range(g):
            for i in range(n_cols):
                out[g0 + k, i] = acc[i * group + k]
    return out, peaks


def csr_apply(
    flat: np.ndarray,
    rows: np.ndarray,
    matrix,
    pixels: np.ndarray,
    peak_col: np.ndarray | None = None,
    n_peaks: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``flat[rows][:, pixels].astype(float32) @ matrix`` (float32, shape (len(rows), n_cols)), and peaks.

    Parameters
    ----------
    flat : ndarray, shape (t, n_frame_pixels)
        Frames from :func:`numba_frames`.
    rows : ndarray of int64
        The frames to use.
    matrix : scipy.sparse.csr_array of float32, shape (len(pixels), n_cols)
    pixels : ndarray of int64
        Flat index of each matrix row's pixel.
    peak_col : ndarray of int64, shape (len(pixels),), optional
        The peak column each pixel counts for (-1: none).
    n_peaks : int
        Number of peak columns.

    Returns
    -------
    values : ndarray of float32, shape (len(rows), n_cols)
    peaks : ndarray of float64, shape (len(rows), n_peaks)
        Largest value of each column's pixels per frame (NaN for a column without pixels).
    """
    idx = _checked(flat, rows, pixels)
    col = np.zeros(0, np.int64) if peak_col is None else np.asarray(peak_col, np.int64)
    if matrix.shape[0] != pixels.size or (col.size and (col.size != pixels.size or col.max() >= n_peaks)):
        raise ValueError("csr_apply: the matrix rows, pixels and peak columns do not match")
    return _csr_apply(
        flat,
        idx,
        pixels,
        matrix.indptr.astype(np.int64, copy=False),
        matrix.indices.astype(np.int64, copy=False),
        matrix.data.astype(np.float32, copy=False),
        int(matrix.shape[1]),
        _FRAME_GROUP,
        col,
        int(n_peaks),
    )


@numba.njit(cache=True, nogil=True)
def _aperture_peaks(
    flat: np.ndarray, rows: np.ndarray, ap_pixels: np.ndarray, starts: np.ndarray, cols: np.ndarray, n: int
) -> np.ndarray:  # pragma: no cover - compiled
    m = rows.size
    out = np.full((m, n), np.nan)
    n_groups = starts.size
    for k in range(m):
        frame = flat[rows[k]]
        for g in range(n_groups):
            s = starts[g]
            e = starts[g + 1] if g + 1 < n_groups else ap_pixels.size
            best = frame[ap_pixels[s]]
            for q in range(s + 1, e):
                v = frame[ap_pixels[q]]
                if v > best or v != v:  # NaN propagates, as in np.maximum
                    best = v
            out[k, cols[g]] = best
    return out


def aperture_peaks(
    flat: np.ndarray, rows: np.ndarray, ap_pixels: np.ndarray, starts: np.ndarray, cols: np.ndarray, n: int
) -> np.ndarray:
    """Brightest pixel of each aperture group per frame, float64 ``(len(rows), n)``, NaN elsewhere.

    ``ap_pixels[starts[g]:starts[g + 1]]`` are the flat pixels of group ``g``
    (non-empty), written to column ``cols[g]``.
    """
    idx = _checked(flat, rows, ap_pixels)
    groups_ok = starts.size == cols.size and (
        starts.size == 0 or (starts[0] == 0 and np.all(np.diff(starts) > 0) and starts[-1] < ap_pixels.size)
    )
    if not groups_ok or (cols.size and (cols.min() < 0 or cols.max() >= n)):
        raise ValueError("aperture_peaks: the groups must be non-empty, one column each, inside n")
    return _aperture_peaks(flat, idx, ap_pixels, starts, cols, n)
