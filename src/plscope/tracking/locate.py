"""Per-frame localization of spots (Crocker-Grier), streaming over chunks.

For movies in which particles move on their own (colloids in water,
diffusing emitters) or switch on and off (single molecules), positions must
be found in every frame. :func:`locate_features` implements the
Crocker-Grier algorithm (J. Colloid Interface Sci. 179, 298 (1996)) in two
conventions. ``style="trackpy"`` (default) follows ``trackpy.locate`` so
that the same ``diameter`` and ``minmass`` mean the same thing:

1. optional inversion (dark particles on a bright background);
2. band pass: Gaussian of ``noise_size_px`` minus a boxcar of
   ``smoothing_size_px`` (default ``diameter_px``), values below
   ``threshold`` set to 0;
3. local maxima: equal to the grey dilation over a square that fits in a
   circle of ``separation_px`` (default ``diameter_px + 1``), brighter than
   the ``percentile`` of the non-zero band-passed pixels, and away from the
   margins;
4. refinement: centroid of the band-passed image in a disk of radius
   ``diameter_px // 2``; the disk moves by one pixel per axis while the
   centroid is more than 0.6 px off its centre;
5. features closer than ``separation_px`` keep the one of larger mass; the
   rest need ``mass > min_mass`` (mass: sum of the band-passed image in the
   disk).

``style="crocker-grier"`` follows the original IDL code (as ported in
sdt-python's ``loc.cg``), whose ``radius``, signal and mass thresholds mean
the same thing there: band pass with the normalized kernel
``[exp(-(i**2 + j**2) / (4 lambda**2)) / B - 1 / (2w + 1)**2] / K0``
(``lambda = noise_size_px``, ``w = max(radius, 2 lambda)``), local maxima
over a disk of radius ``separation_px`` (default: the radius) that reach
``min_signal``, mass in a disk of radius ``radius + 0.5`` at the maximum,
one centroid step.

All features of a chunk of frames are refined together (vectorized
gathers, no Python loop over features), and a dask stack is processed chunk
by chunk, so memory is bounded by a few chunks.

Coordinates: ``x`` is the column, ``y`` the row; pixel ``i`` has its centre at ``i``.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import ndimage

from ..errors import PlscopeError

logger = logging.getLogger(__name__)

#: Columns of the table returned by :func:`locate_features`, in order.
FEATURE_COLUMNS: tuple[str, ...] = ("frame", "x_px", "y_px", "mass", "signal", "size_px", "raw_mass")

#: Frames per block for numpy input.
_NUMPY_CHUNK_FRAMES = 32
#: Centroid offset (px) beyond which the refinement disk moves.
_SHIFT_THRESH_PX = 0.6


def _odd(value: float, name: str) -> int:
    v = int(round(float(value)))
    if v < 3 or v % 2 == 0 or abs(v - float(value)) > 1e-9:
        raise PlscopeError(f"{name}: expected an odd integer >= 3 (pixels), got {value!r}")
    return v


class _Locator:
    """Callable: a block of frames (t, rows, cols) and its first frame index -> feature array."""

    def __init__(
        self,
        *,
        diameter_px: int,
        min_mass: float,
        separation_px: float,
        noise_size_px: float,
        smoothing_size_px: int,
        threshold: float | None,
        invert: bool,
        percentile: float,
        max_iterations: int,
        quantize: bool,
        style: str = "trackpy",
        min_signal: float | None = None,
    ):
        self.radius = diameter_px // 2
        self.min_mass = float(min_mass)
        self.separation = float(separation_px)
        self.noise_size = float(noise_size_px)
        self.smoothing = int(smoothing_size_px)
        self.threshold = threshold
        self.invert = bool(invert)
        self.percentile = float(percentile)
        self.max_iterations = max(1, int(max_iterations))
        self.quantize = bool(quantize)
        self.style = style
        self.min_signal = min_signal
        r = self.radius
        dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
        disk = dy**2 + dx**2 <= (r**2 if style == "trackpy" else (r + 0.5) ** 2)
        self.off_y = dy[disk].astype(np.int64)
        self.off_x = dx[disk].astype(np.int64)
        if style == "trackpy":
            self.box = max(1, int(2 * self.separation / math.sqrt(2)))
            self.margin = max(r, int(self.separation) // 2 - 1, self.smoothing // 2)
            self.footprint = None
        else:
            sr = int(round(self.separation))
            fy, fx = np.mgrid[-sr : sr + 1, -sr : sr + 1]
            self.footprint = (fy**2 + fx**2 <= sr**2)[None]
            self.margin = max(r, sr)
            self.max_iterations = 1

    # -- band pass ------------------------------------------------------------
    def _bandpass_cg(self, img: np.ndarray) -> np.ndarray:
        """The Crocker-Grier kernel (normalized Gaussian minus boxcar, / K0); edges of width w are 0."""
        lam = self.noise_size
        w = int(max(self.radius, math.ceil(2 * lam)))
        i = np.arange(-w, w + 1, dtype=np.float64)
        g = np.exp(-((i / (2.0 * lam)) ** 2))
        b = g.sum() ** 2
        k0 = (g**2).sum() ** 2 / b - b / (2 * w + 1) ** 2
        low = ndimage.correlate1d(img, g / g.sum(), axis=1, mode="constant")
        low = ndimage.correlate1d(low, g / g.sum(), axis=2, mode="constant")
        low -= ndimage.uniform_filter(img, (1, 2 * w + 1, 2 * w + 1), mode="constant")
        low /= k0
        out = np.zeros_like(low)
        out[:, w:-w, w:-w] = np.clip(low[:, w:-w, w:-w], 0.0, None)
        return out

    def bandpass(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Band-passed (and inverted) frames, float64, and the per-frame mass scale."""
        raw = np.asarray(frames)
        integer = np.issubdtype(raw.dtype, np.integer)
        if self.style == "crocker-grier":
            img = raw.astype(np.float64)
            if self.invert:
                img = (float(np.iinfo(raw.dtype).max) if integer else 1.0) - img
            return self._bandpass_cg(img), np.ones(raw.shape[0])
        img = raw.astype(np.float64)
        if self.invert:
            top = float(np.iinfo(raw.dtype).max) if integer else 1.0
            img = top - img
        thr = self.threshold if self.threshold is not None else (1.0 if integer else 1.0 / 255.0)
        low = ndimage.gaussian_filter(
            img, (0, self.noise_size, self.noise_size), mode="constant", cval=0.0, truncate=4.0
        )
        if self.quantize and integer:
            # trackpy averages in the raw integer dtype (each pass rounded to it)
            src = (np.iinfo(raw.dtype).max - raw) if self.invert else raw
            box = np.array(src, copy=True)
            for axis in (1, 2):
                ndimage.uniform_filter1d(box, self.smoothing, axis=axis, output=box, mode="nearest")
            low -= box.astype(np.float32)
        else:
            low -= ndimage.uniform_filter(img, (1, self.smoothing, self.smoothing), mode="nearest")
        low[low < thr] = 0.0
        scale = np.ones(low.shape[0], np.float64)
        if self.quantize:
            # trackpy works on the band pass scaled to the integer range of the
            # raw data (8 bits for float input) and truncated
            levels = float(np.iinfo(raw.dtype).max) if integer else 255.0
            peak = low.reshape(low.shape[0], -1).max(axis=1).astype(np.float64)
            scale = np.where(peak > 0, levels / np.where(peak > 0, peak, 1.0), 1.0)
            low = np.floor(low * scale[:, None, None].astype(np.float32))
        return low, scale

    # -- candidates -----------------------------------------------------------
    def candidates(self, bp: np.ndarray) -> np.ndarray:
        """Local maxima (t, y, x) of each band-passed frame."""
        t, rows, cols = bp.shape
        if self.footprint is None:
            # grey_dilation, not maximum_filter: for an even box they centre the window differently
            dil = ndimage.grey_dilation(bp, size=(1, self.box, self.box), mode="constant", cval=0.0)
        else:
            dil = ndimage.grey_dilation(bp, footprint=self.footprint, mode="constant", cval=0.0)
        found = []
        m = self.margin
        for k in range(t):
            f = bp[k]
            nz = f[f > 0]
            if nz.size == 0:
                continue
            if self.style == "crocker-grier":
                level = (
                    self.min_signal
                    if self.min_signal is not None
                    else float(np.percentile(f - f.min(), 70)) + 1.0
                )
                yy, xx = np.nonzero(np.isclose(dil[k], f) & (f >= level) & (f > 0))
            else:
                level = np.percentile(nz, self.percentile)
                if self.min_signal is not None:
                    level = max(level, self.min_signal)
                yy, xx = np.nonzero((f == dil[k]) & (f > level))
            keep = (yy >= m) & (yy <= rows - m - 1) & (xx >= m) & (xx <= cols - m - 1)
            if keep.any():
                found.append(np.column_stack([np.full(int(keep.sum()), k), yy[keep], xx[keep]]))
        return np.concatenate(found) if found else np.zeros((0, 3), np.int64)

    # -- refinement -----------------------------------------------------------
    def refine(self, bp: np.ndarray, raw: np.ndarray, coords: np.ndarray) -> dict[str, np.ndarray]:
        t, rows, cols = bp.shape
        r = self.radius
        flat = bp.reshape(-1)
        c = coords.astype(np.int64).copy()
        k = c.shape[0]
        oy, ox = self.off_y.astype(np.float64), self.off_x.astype(np.float64)
        com_y = np.zeros(k)
        com_x = np.zeros(k)
        active = np.arange(k)
        peak_mass = None
        for _ in range(self.max_iterations):
            if active.size == 0:
                break
            idx = (
                (c[active, 0, None] * rows + c[active, 1, None] + self.off_y) * cols
                + c[active, 2, None]
                + self.off_x
            )
            v = flat[idx].astype(np.float64)
            mass = v.sum(axis=1)
            if peak_mass is None:
                peak_mass = mass.copy()
            safe = np.where(mass > 0, mass, 1.0)
            cy = np.where(mass > 0, (v @ oy) / safe, 0.0)
            cx = np.where(mass > 0, (v @ ox) / safe, 0.0)
            com_y[active], com_x[active] = cy, cx
            if self.style == "crocker-grier":
                break
            move_y = np.where(cy > _SHIFT_THRESH_PX, 1, np.where(cy < -_SHIFT_THRESH_PX, -1, 0))
            move_x = np.where(cx > _SHIFT_THRESH_PX, 1, np.where(cx < -_SHIFT_THRESH_PX, -1, 0))
            moving = (move_y != 0) | (move_x != 0)
            if not moving.any():
                break
            a = active[moving]
            c[a, 1] = np.clip(c[a, 1] + move_y[moving], r, rows - 1 - r)
            c[a, 2] = np.clip(c[a, 2] + move_x[moving], r, cols - 1 - r)
            active = a
        idx = (c[:, 0, None] * rows + c[:, 1, None] + self.off_y) * cols + c[:, 2, None] + self.off_x
        v = flat[idx].astype(np.float64)
        mass = v.sum(axis=1)
        r2 = self.off_y.astype(np.float64) ** 2 + self.off_x.astype(np.float64) ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            rg = np.sqrt((v @ r2) / mass)
        raw_v = np.asarray(raw).reshape(-1)[idx].astype(np.float64)
        return {
            "frame": c[:, 0],
            "y": c[:, 1] + com_y,
            "x": c[:, 2] + com_x,
            "mass": mass,
            "signal": v.max(axis=1) if v.size else np.zeros(0),
            "size": rg,
            "raw_mass": raw_v.sum(axis=1),
            "peak_mass": peak_mass if peak_mass is not None else mass,
        }

    def _drop_close(self, f: dict[str, np.ndarray]) -> np.ndarray:
        """Keep mask: features closer than the separation to a brighter one of the same frame go."""
        from scipy.spatial import cKDTree

        n = f["x"].size
        keep = np.ones(n, bool)
        if n < 2 or self.separation <= 0:
            return keep
        # frames far apart in a third coordinate: one tree for the whole block
        pts = np.column_stack(
            [f["x"] / self.separation, f["y"] / self.separation, f["frame"].astype(np.float64) * 1e4]
        )
        pairs = cKDTree(pts).query_pairs(1 - 1e-7, output_type="ndarray")
        if pairs.size == 0:
            return keep
        m0, m1 = f["mass"][pairs[:, 0]], f["mass"][pairs[:, 1]]
        drop = np.where(
            m0 > m1, pairs[:, 1], np.where(m1 > m0, pairs[:, 0], np.maximum(pairs[:, 0], pairs[:, 1]))
        )
        keep[drop] = False
        return keep

    def __call__(self, frames: np.ndarray, start: int = 0) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.shape[0] == 0:
            return np.zeros((0, len(FEATURE_COLUMNS)))
        bp, scale = self.bandpass(frames)
        coords = self.candidates(bp)
        if coords.shape[0] == 0:
            return np.zeros((0, len(FEATURE_COLUMNS)))
        f = self.refine(bp, frames, coords)
        f["mass"] = f["mass"] / scale[f["frame"]]
        f["signal"] = f["signal"] / scale[f["frame"]]
        keep = self._drop_close(f) & (f["mass"] > self.min_mass)
        if self.style == "crocker-grier":
            # mass threshold at the local maximum, before the centroid step (as the original)
            keep = self._drop_close(f) & (f["peak_mass"] > self.min_mass)
        out = np.column_stack(
            [f["frame"] + start, f["x"], f["y"], f["mass"], f["signal"], f["size"], f["raw_mass"]]
        )
        return out[keep]

    def dask_block(self, block: np.ndarray, block_info=None) -> np.ndarray:
        start = 0 if block_info is None else int(block_info[0]["array-location"][0][0])
        return self(block, start)


def locate_features(
    stack: Any,
    *,
    diameter_px: int,
    min_mass: float = 0.0,
    separation_px: float | None = None,
    noise_size_px: float = 1.0,
    smoothing_size_px: int | None = None,
    threshold: float | None = None,
    invert: bool = False,
    percentile: float = 64.0,
    max_iterations: int = 10,
    quantize: bool = True,
    style: Literal["trackpy", "crocker-grier"] = "trackpy",
    min_signal: float | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Crocker-Grier localization of spots in every frame of a movie.

    Parameters
    ----------
    stack : ndarray or dask.array.Array, shape (t, rows, cols) or (rows, cols)
        Raw frames (any real dtype). A dask array is processed chunk by chunk.
    diameter_px : int
        Odd feature diameter (pixels), as ``trackpy.locate(diameter=...)``;
        the refinement disk has radius ``diameter_px // 2``.
    min_mass : float
        Minimum integrated band-passed brightness (``trackpy``'s ``minmass``).
    separation_px : float, optional
        Minimum distance between features; default ``diameter_px + 1``
        (trackpy) or the radius (Crocker-Grier).
    noise_size_px : float
        Sigma of the Gaussian noise filter.
    smoothing_size_px : int, optional
        Odd side of the boxcar background; default ``diameter_px``.
    threshold : float, optional
        Band-passed values below it become 0; default 1 for integer data,
        1/255 for float data.
    invert : bool
        Dark features on a bright background (``max - image``, with the
        largest value of an integer dtype, else 1).
    percentile : float
        Local maxima must be brighter than this percentile of the frame's
        non-zero band-passed pixels.
    max_iterations : int
        Moves of the refinement disk.
    quantize : bool
        Integer arithmetic as in ``trackpy.locate``, so that its ``minmass``
        thresholds carry over: the boxcar background is averaged in the raw
        integer dtype, and each band-passed frame is scaled to the integer
        range of the raw data (8 bits for float data) and truncated. Masses
        are reported on the band-pass scale either way. (trackpy style only.)
    style : {"trackpy", "crocker-grier"}
        Conventions of ``trackpy.locate`` or of the original Crocker-Grier
        code (see the module docstring).
    min_signal : float, optional
        Minimum band-passed value of a local maximum (the original code's
        signal threshold). Default: the ``percentile`` rule (trackpy) or
        the 70th percentile + 1 (Crocker-Grier).
    progress : bool
        Show a progress bar (per chunk).

    Returns
    -------
    pandas.DataFrame
        One row per feature, sorted by frame: ``frame`` (int64), ``x_px,
        y_px`` (refined centroid), ``mass`` (band-passed sum in the disk),
        ``signal`` (band-passed peak), ``size_px`` (radius of gyration of the
        band-passed disk), ``raw_mass`` (raw sum in the disk).
    """
    ndim = getattr(stack, "ndim", None)
    if ndim == 2:
        stack = stack[None]
    elif ndim != 3:
        raise PlscopeError(
            f"stack: expected a 3-D array (t, rows, cols) or one frame, got shape "
            f"{getattr(stack, 'shape', None)}"
        )
    diameter = _odd(diameter_px, "diameter_px")
    smoothing = diameter if smoothing_size_px is None else _odd(smoothing_size_px, "smoothing_size_px")
    if not float(noise_size_px) > 0 or float(noise_size_px) >= smoothing:
        raise PlscopeError(
            f"noise_size_px: expected 0 < noise_size_px < smoothing_size_px ({smoothing}), "
            f"got {noise_size_px!r}"
        )
    if style not in ("trackpy", "crocker-grier"):
        raise PlscopeError(f"style: expected 'trackpy' or 'crocker-grier', got {style!r}")
    if separation_px is None:
        separation = float(diameter + 1 if style == "trackpy" else diameter // 2)
    else:
        separation = float(separation_px)
    if not 0 <= percentile <= 100:
        raise PlscopeError(f"percentile: expected a value in [0, 100], got {percentile!r}")
    loc = _Locator(
        diameter_px=diameter,
        min_mass=min_mass,
        separation_px=separation,
        noise_size_px=noise_size_px,
        smoothing_size_px=smoothing,
        threshold=threshold,
        invert=invert,
        percentile=percentile,
        max_iterations=max_iterations,
        quantize=quantize,
        style=style,
        min_signal=min_signal,
    )
    t_total = int(stack.shape[0])
    if hasattr(stack, "to_delayed") and hasattr(stack, "chunks"):  # dask
        import dask

        arr = (
            stack.rechunk({1: -1, 2: -1}) if (len(stack.chunks[1]) > 1 or len(stack.chunks[2]) > 1) else stack
        )
        starts = np.concatenate([[0], np.cumsum(arr.chunks[0])[:-1]]).astype(int)
        blocks = arr.to_delayed().ravel()
        tasks = [dask.delayed(loc)(b, int(s)) for b, s in zip(blocks, starts)]
        if progress:
            from tqdm import tqdm

            parts = []
            for k in tqdm(range(0, len(tasks), 8), desc="locate", unit="batch"):
                parts.extend(dask.compute(*tasks[k : k + 8]))
        else:
            parts = list(dask.compute(*tasks))
    else:
        arr = np.asarray(stack)
        starts = range(0, t_total, _NUMPY_CHUNK_FRAMES)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="locate", unit="chunk")
        parts = [loc(arr[s : s + _NUMPY_CHUNK_FRAMES], s) for s in starts]
    data = np.concatenate(parts, axis=0) if parts else np.zeros((0, len(FEATURE_COLUMNS)))
    out = pd.DataFrame(data, columns=list(FEATURE_COLUMNS))
    out["frame"] = out["frame"].astype(np.int64)
    out = out.sort_values(["frame", "y_px", "x_px"], kind="stable").reset_index(drop=True)
    logger.info(
        "locate_features: %d feature(s) in %d frame(s) (%.1f per frame)",
        len(out),
        t_total,
        len(out) / max(t_total, 1),
    )
    return out
