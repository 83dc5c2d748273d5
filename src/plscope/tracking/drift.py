"""Stage drift over the whole movie.

:func:`estimate_drift` registers the mean image of each block of frames on
the reference image (phase correlation of high-passed, tapered images with
sub-pixel upsampling), rejects isolated outliers and interpolates the block
values to every frame. The result feeds
:func:`~plscope.tracking.extract_traces` (``drift=table``): apertures then
follow the drift frame by frame, independently of the chunking, and the
reported drift is refined there by the particles' own centroids.

Sign convention: ``drift_x_px, drift_y_px`` is the displacement of the
sample in frame ``t`` relative to the reference image (a particle at
``x_ref`` is found at ``x_ref + drift_x_px``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import scipy.fft as sfft

from ..columns import DRIFT_TABLE_COLUMNS
from ..errors import PlscopeError
from ._kernels import block_mean
from .detect import _check_image, reference_image

logger = logging.getLogger(__name__)


def _taper(shape: tuple[int, int]) -> np.ndarray:
    wy = np.hanning(shape[0] + 2)[1:-1]
    wx = np.hanning(shape[1] + 2)[1:-1]
    return np.outer(wy, wx)


class _BlockRegistration:
    """Dask/numpy kernel: a block of frames -> its drift, shape (1, 2).

    Cross-correlation in Fourier space with the reference's transform
    computed once: the block mean is tapered (Hann window, so the periodic
    FFT sees no edge), transformed, multiplied by the conjugate reference
    and a high-pass filter (``1 - exp(-k**2 sigma**2 / 2)``, sigma 8 px: the
    illumination profile and background are not registered), and
    transformed back; the peak is located to a fraction of a pixel by a
    parabola through the logarithm of its 3 x 3 neighbourhood (exact for a
    Gaussian peak). One forward and one inverse FFT per block.
    """

    def __init__(self, reference: np.ndarray, highpass_sigma_px: float = 8.0):
        ref = np.asarray(reference, dtype=np.float64)
        self.shape = ref.shape
        self.window = _taper(self.shape)
        ky = np.fft.fftfreq(self.shape[0])[:, None]
        kx = np.fft.rfftfreq(self.shape[1])[None, :]
        k2 = (2 * np.pi) ** 2 * (ky**2 + kx**2)
        hp = 1.0 - np.exp(-0.5 * k2 * highpass_sigma_px**2)
        self.filt = np.conj(sfft.rfft2((ref - ref.mean()) * self.window)) * hp**2

    def register(self, mean_image: np.ndarray) -> tuple[float, float]:
        img = np.asarray(mean_image, dtype=np.float64)
        # scipy.fft: the same pocketfft transforms as numpy.fft, about twice as fast on 2-D input
        tapered = (img - img.mean()) * self.window
        spec = sfft.rfft2(tapered, overwrite_x=True)
        spec *= self.filt
        cc = sfft.irfft2(spec, s=self.shape, overwrite_x=True)
        iy, ix = np.unravel_index(int(np.argmax(cc)), cc.shape)
        rows, cols = self.shape

        def sub(c_m: float, c_0: float, c_p: float) -> float:
            lm, l0, lp = (np.log(max(v, 1e-300)) for v in (c_m, c_0, c_p))
            den = lm - 2 * l0 + lp
            return 0.5 * (lm - lp) / den if den < 0 else 0.0

        peak = cc[iy, ix]
        if peak <= 0:
            return 0.0, 0.0
        dy = sub(cc[(iy - 1) % rows, ix], peak, cc[(iy + 1) % rows, ix])
        dx = sub(cc[iy, (ix - 1) % cols], peak, cc[iy, (ix + 1) % cols])
        # the correlation peaks at the displacement of the image relative to the reference
        sy = (iy + 0.5 * rows) % rows - 0.5 * rows + dy
        sx = (ix + 0.5 * cols) % cols - 0.5 * cols + dx
        return float(sx), float(sy)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        mean = block_mean(block)  # = block.mean(axis=0, dtype=float64), exactly, in a third of the time
        return np.asarray([self.register(mean)], dtype=np.float64)


def _interpolate(t_block: np.ndarray, d_block: np.ndarray, t_total: int) -> np.ndarray:
    """Piecewise-linear interpolation, extrapolated linearly beyond the outer blocks."""
    return _interpolate_at(t_block, d_block, np.arange(t_total, dtype=np.float64))


def _interpolate_at(t_block: np.ndarray, d_block: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """:func:`_interpolate` at the given frames only (each value depends only on its bracketing blocks
    or, beyond the ends, the two outer blocks, so a part equals the same rows of the whole)."""
    if t_block.size == 1:
        return np.repeat(d_block[:1], frames.size, axis=0)
    out = np.empty((frames.size, 2))
    for k in range(2):
        out[:, k] = np.interp(frames, t_block, d_block[:, k])
        lo = frames < t_block[0]
        hi = frames > t_block[-1]
        s0 = (d_block[1, k] - d_block[0, k]) / (t_block[1] - t_block[0])
        s1 = (d_block[-1, k] - d_block[-2, k]) / (t_block[-1] - t_block[-2])
        out[lo, k] = d_block[0, k] + s0 * (frames[lo] - t_block[0])
        out[hi, k] = d_block[-1, k] + s1 * (frames[hi] - t_block[-1])
    return out


def block_layout(t_total: int, block_frames: int | None = None, step_frames: int | None = None):
    """``(block, step, starts, stops)``: the frames ``[start, stop)`` of each registered block (checked).

    Default block: 1/20 of the movie, between 4 and 32 frames; default step: the block.
    """
    block = int(np.clip(t_total // 20, 4, 32)) if block_frames is None else int(block_frames)
    if block < 1:
        raise PlscopeError(f"block_frames: expected an integer >= 1, got {block_frames!r}")
    step = block if step_frames is None else int(step_frames)
    if step < 1:
        raise PlscopeError(f"step_frames: expected an integer >= 1, got {step_frames!r}")
    starts = np.arange(0, t_total, step)
    return block, step, starts, np.minimum(starts + block, t_total)


def block_centres(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """The frame (float) each block's registration is placed at: the centre of ``[start, stop)``."""
    return 0.5 * (starts + stops - 1).astype(np.float64)


def estimate_drift(
    stack: Any,
    *,
    reference: np.ndarray | None = None,
    block_frames: int | None = None,
    step_frames: int | None = None,
    upsample: int = 20,
    outlier_px: float = 1.0,
) -> pd.DataFrame:
    """Per-frame stage drift of a movie from block-wise phase correlation.

    Parameters
    ----------
    stack : ndarray or dask.array.Array, shape (t, rows, cols)
        Raw frames. A dask array is read block by block (memory: one block
        per running task).
    reference : ndarray, shape (rows, cols), optional
        Image the drift is measured against; default
        :func:`~plscope.tracking.reference_image` (mean of the first 64
        frames), so the drift is relative to the particle positions found on it.
    block_frames : int, optional
        Frames averaged per registration (noise averages down, drift within
        a block is averaged). Default: 1/20 of the movie, between 4 and 32
        frames.
    step_frames : int, optional
        Distance between block starts; default ``block_frames`` (blocks
        cover the movie). A larger step reads only a fraction of the movie
        (e.g. 256 with 32-frame blocks reads 1/8 of it), for slow drifts.
    upsample : int
        Ignored (kept for compatibility): the sub-pixel peak is interpolated.
    outlier_px : float
        A block whose drift differs by more than this from the median of
        itself and its two neighbours is replaced by that median (a block
        in which most particles went dark, say).

    Returns
    -------
    pandas.DataFrame
        One row per frame: ``frame, drift_x_px, drift_y_px`` (pixels,
        relative to the reference). ``attrs`` holds the block centres
        (``block_frame``), the raw block drifts (``block_drift_x_px``,
        ``block_drift_y_px``) and the number of replaced outliers.

    Notes
    -----
    Block values are the drift averaged over the block, assigned to the
    block's central frame: exact for a drift linear in time, with an error
    of ``~ block**2 * curvature / 24`` otherwise.
    """
    if getattr(stack, "ndim", None) != 3:
        raise PlscopeError(
            f"stack: expected a 3-D array (t, rows, cols), got shape {getattr(stack, 'shape', None)}"
        )
    t_total, rows, cols = (int(s) for s in stack.shape)
    if t_total == 0:
        raise PlscopeError("stack: the movie has no frames")
    block, step, starts, stops = block_layout(t_total, block_frames, step_frames)
    ref = reference_image(stack) if reference is None else _check_image(reference, "reference")
    if ref.shape != (rows, cols):
        raise PlscopeError(f"reference: shape {ref.shape} does not match the frames {(rows, cols)}")
    d_block = _register_blocks(stack, _BlockRegistration(ref), starts, stops, block, step)
    return drift_table(starts, stops, d_block, t_total, block, outlier_px)


def drift_table(
    starts: np.ndarray,
    stops: np.ndarray,
    d_block: np.ndarray,
    t_total: int,
    block: int,
    outlier_px: float = 1.0,
) -> pd.DataFrame:
    """The table of :func:`estimate_drift` from the raw drift ``(dx, dy)`` of each block."""
    t_block = block_centres(starts, stops)
    raw = d_block.copy()
    d_block = d_block.copy()
    n_out = _replace_outlier_blocks(d_block, outlier_px)
    per_frame = _interpolate(t_block, d_block, t_total)
    out = pd.DataFrame(
        {
            "frame": np.arange(t_total, dtype=np.int64),
            "drift_x_px": per_frame[:, 0],
            "drift_y_px": per_frame[:, 1],
        },
        columns=list(DRIFT_TABLE_COLUMNS),
    )
    out.attrs["block_frame"] = t_block.tolist()
    out.attrs["block_drift_x_px"] = raw[:, 0].tolist()
    out.attrs["block_drift_y_px"] = raw[:, 1].tolist()
    out.attrs["n_outlier_blocks"] = n_out
    logger.info(
        "estimate_drift: %d block(s) of %d frame(s); largest drift %.2f px",
        d_block.shape[0],
        block,
        float(np.hypot(per_frame[:, 0], per_frame[:, 1]).max()),
    )
    return out


def settled_drift(
    t_block: np.ndarray, d_raw: np.ndarray, frames: np.ndarray, outlier_px: float = 1.0
) -> np.ndarray:
    """Per-frame drift at ``frames`` as :func:`drift_table` computes it, from the raw blocks it needs.

    ``d_raw`` holds every block's raw drift, NaN for the blocks not known (yet);
    a frame's value needs its two bracketing blocks and their neighbours (or,
    beyond the ends, the two outer blocks and theirs): :func:`needed_blocks`.
    The values equal the same rows of :func:`drift_table`'s, bit for bit.
    """
    d_block = d_raw.copy()
    bad, med = _outlier_medians(d_raw, outlier_px)
    d_block[bad] = med[bad]
    return _interpolate_at(t_block, d_block, np.asarray(frames, np.float64))


def needed_blocks(t_block: np.ndarray, first: int, last: int) -> np.ndarray:
    """The blocks :func:`settled_drift` needs for the frames ``first..last`` (inclusive)."""
    n = t_block.size
    lo = int(np.searchsorted(t_block, first, side="right")) - 1  # last block centre <= first
    hi = int(np.searchsorted(t_block, last, side="left"))  # first block centre >= last
    lo, hi = min(max(lo, 0), n - 1), min(max(hi, 0), n - 1)
    need = set(range(max(lo - 1, 0), min(hi + 2, n)))
    if first < t_block[0]:
        need |= set(range(min(3, n)))
    if last > t_block[-1]:
        need |= set(range(max(n - 3, 0), n))
    return np.asarray(sorted(need), np.int64)


def _register_blocks(
    stack: Any, kernel: _BlockRegistration, starts: np.ndarray, stops: np.ndarray, block: int, step: int
) -> np.ndarray:
    """Drift ``(dx, dy)`` of each block ``stack[start:stop]`` (dask: one task per block)."""
    if hasattr(stack, "map_blocks") and hasattr(stack, "chunks"):  # dask
        import dask
        import dask.array as da

        if step == block:
            arr = stack.rechunk({0: block, 1: -1, 2: -1})
            res = da.map_blocks(
                kernel,
                arr,
                drop_axis=2,
                chunks=((1,) * len(arr.chunks[0]), (2,)),
                dtype=np.float64,
                meta=np.empty((0, 0), np.float64),
            )
            return np.asarray(res.compute())
        parts = [dask.delayed(kernel)(stack[a:b]) for a, b in zip(starts, stops)]
        return np.concatenate(dask.compute(*parts), axis=0)
    arr = np.asarray(stack)
    return np.concatenate([kernel(arr[a:b]) for a, b in zip(starts, stops)], axis=0)


def _outlier_medians(d_block: np.ndarray, outlier_px: float) -> tuple[np.ndarray, np.ndarray]:
    """``(bad, median)``: the blocks that differ by more than ``outlier_px`` from the median of
    themselves and their two neighbours (the ends repeat), and that median."""
    if d_block.shape[0] < 3 or outlier_px <= 0:
        return np.zeros(d_block.shape[0], bool), d_block.copy()
    padded = np.concatenate([d_block[:1], d_block, d_block[-1:]], axis=0)
    med = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
    with np.errstate(invalid="ignore"):
        bad = np.any(np.abs(d_block - med) > outlier_px, axis=1)
    return bad, med


def _replace_outlier_blocks(d_block: np.ndarray, outlier_px: float) -> int:
    """Replace blocks that differ from the median of themselves and their neighbours (in place); count."""
    bad, med = _outlier_medians(d_block, outlier_px)
    n_out = int(bad.sum())
    if n_out:
        logger.warning(
            "estimate_drift: %d of %d block(s) disagree with their neighbours by > %.2g px; "
            "replaced by the local median",
            n_out,
            d_block.shape[0],
            outlier_px,
        )
        d_block[bad] = med[bad]
    return n_out
