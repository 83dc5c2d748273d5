"""Find particles on a reference image.

The reference image is the mean of the first frames of a movie
(:func:`reference_image`). :func:`detect_particles` subtracts a smooth
background (camera offset + illumination profile), thresholds a lightly
smoothed copy relative to a robust noise estimate, labels the connected
regions and splits touching particles with a marker watershed whose
spurious (noise) basins are merged again unless the dip between two peaks is
significant.

Coordinates: ``x`` is the column, ``y`` the row; pixel ``i`` has its centre
at ``i`` (scikit-image / trackpy convention).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from ..columns import PARTICLE_COLUMNS
from ..errors import PlscopeError

logger = logging.getLogger(__name__)


#: Minimum noise, relative to the brightest (smoothed) peak, for noiseless input.
_NOISE_FLOOR = 1e-3

#: Scale factor from the median absolute deviation to a Gaussian std.
_MAD_TO_STD = 1.482602218505602


# --------------------------------------------------------------------------
# input checks shared by the tracking modules
# --------------------------------------------------------------------------
def _check_image(image: Any, name: str = "image") -> np.ndarray:
    """Return ``image`` as a 2-D float64 array or raise PlscopeError."""
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise PlscopeError(f"{name}: expected a 2-D image (rows, cols), got shape {arr.shape}")
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise PlscopeError(f"{name}: image of shape {arr.shape} is too small (need at least 8 x 8)")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise PlscopeError(f"{name}: expected a real numeric image, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _check_positive(value: float, name: str, *, allow_zero: bool = False) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        rel = ">= 0" if allow_zero else "> 0"
        raise PlscopeError(f"{name}: expected a finite number {rel}, got {value!r}")
    return v


def robust_std(values: np.ndarray) -> float:
    """Gaussian-equivalent standard deviation from the median absolute deviation.

    Parameters
    ----------
    values : ndarray
        Samples (any shape); NaNs are ignored.

    Returns
    -------
    float
        ``1.4826 * median(|v - median(v)|)``; NaN when there are no finite values.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    med = np.median(v)
    return float(_MAD_TO_STD * np.median(np.abs(v - med)))


# --------------------------------------------------------------------------
# reference image
# --------------------------------------------------------------------------
def reference_image(stack: Any, *, n_frames: int = 64) -> np.ndarray:
    """Mean of the first frames of a movie.

    Parameters
    ----------
    stack : ndarray or dask.array.Array, shape (t, rows, cols)
        Raw frames (ADU), any real dtype. Only the first ``n_frames`` frames
        are read.
    n_frames : int
        Number of frames to average (>= 1). Fewer are used, with a log
        message, when the movie is shorter.

    Returns
    -------
    ndarray of float64, shape (rows, cols)
        Mean image in ADU.
    """
    if getattr(stack, "ndim", None) != 3:
        raise PlscopeError(
            f"stack: expected a 3-D array (t, rows, cols), got shape {getattr(stack, 'shape', None)}"
        )
    n = int(n_frames)
    if n < 1:
        raise PlscopeError(f"n_frames: expected an integer >= 1, got {n_frames!r}")
    t = int(stack.shape[0])
    if t == 0:
        raise PlscopeError("stack: the movie has no frames")
    if n > t:
        logger.info("reference_image: movie has %d frames, averaging all of them (asked for %d)", t, n)
        n = t
    head = stack[:n]
    if hasattr(head, "compute"):  # dask
        out = head.mean(axis=0, dtype=np.float64).compute()
    else:
        out = np.mean(np.asarray(head), axis=0, dtype=np.float64)
    return np.asarray(out, dtype=np.float64)


# --------------------------------------------------------------------------
# background
# --------------------------------------------------------------------------
def _fill_nan_grid(grid: np.ndarray) -> np.ndarray:
    """Fill NaN cells of a small grid with the mean of their valid neighbours."""
    grid = grid.copy()
    if np.all(np.isnan(grid)):
        return grid
    while np.isnan(grid).any():
        valid = ~np.isnan(grid)
        filled = np.where(valid, grid, 0.0)
        s = ndimage.uniform_filter(filled, size=3, mode="nearest")
        c = ndimage.uniform_filter(valid.astype(float), size=3, mode="nearest")
        grow = (~valid) & (c > 0)
        grid[grow] = s[grow] / c[grow]
    return grid


def _tile_coordinate(n_pix: int, centres: np.ndarray) -> np.ndarray:
    """Fractional tile index of every pixel, extrapolated linearly beyond the outer centres."""
    pix = np.arange(n_pix, dtype=np.float64)
    if centres.size == 1:
        return np.zeros(n_pix)
    f = np.interp(pix, centres, np.arange(centres.size, dtype=np.float64))
    lo = pix < centres[0]
    hi = pix > centres[-1]
    f[lo] = (pix[lo] - centres[0]) / (centres[1] - centres[0])
    f[hi] = centres.size - 1 + (pix[hi] - centres[-1]) / (centres[-1] - centres[-2])
    return f


def _upsample_grid(
    grid: np.ndarray, edges_y: np.ndarray, edges_x: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Bilinear interpolation of tile values (given at tile centres) to every pixel.

    Beyond the outermost tile centres the values are extrapolated linearly, so
    an illumination gradient is followed up to the image edges.
    """
    cy = 0.5 * (edges_y[:-1] + edges_y[1:] - 1)
    cx = 0.5 * (edges_x[:-1] + edges_x[1:] - 1)
    fy = _tile_coordinate(shape[0], cy)
    fx = _tile_coordinate(shape[1], cx)
    if cy.size == 1:
        rows = np.repeat(grid[:1, :], shape[0], axis=0)
    else:
        iy0 = np.clip(np.floor(fy).astype(int), 0, cy.size - 2)
        wy = (fy - iy0)[:, None]
        rows = grid[iy0, :] * (1 - wy) + grid[iy0 + 1, :] * wy
    if cx.size == 1:
        return np.repeat(rows[:, :1], shape[1], axis=1)
    ix0 = np.clip(np.floor(fx).astype(int), 0, cx.size - 2)
    wx = (fx - ix0)[None, :]
    return rows[:, ix0] * (1 - wx) + rows[:, ix0 + 1] * wx


def estimate_background(
    image: np.ndarray, *, tile_px: int = 32, clip_sigma: float = 3.0, n_iter: int = 3
) -> tuple[np.ndarray, float, np.ndarray]:
    """Smooth background (offset + illumination profile) and noise of an image.

    Median of each ``tile_px`` x ``tile_px`` tile over pixels not masked as
    signal, bilinearly interpolated between tile centres and linearly
    extrapolated beyond the outer ones (so a linear illumination gradient is
    reproduced exactly, up to the edges). Signal pixels (> ``clip_sigma`` x noise above the background,
    dilated by 3 px) are masked and the estimate iterated.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        Image in ADU.
    tile_px : int
        Tile side in pixels; larger than the particles' blurred footprint.
    clip_sigma : float
        Pixels above ``background + clip_sigma * noise`` count as signal.
    n_iter : int
        Number of mask / estimate iterations.

    Returns
    -------
    background : ndarray of float64, shape (rows, cols)
        Background in ADU.
    noise : float
        Robust standard deviation (ADU) of the background pixels.
    signal_mask : ndarray of bool, shape (rows, cols)
        Pixels excluded as signal in the last iteration.
    """
    img = _check_image(image)
    rows, cols = img.shape
    tile_px = int(max(4, tile_px))
    ny = max(1, int(round(rows / tile_px)))
    nx = max(1, int(round(cols / tile_px)))
    edges_y = np.linspace(0, rows, ny + 1).round().astype(int)
    edges_x = np.linspace(0, cols, nx + 1).round().astype(int)
    finite = np.isfinite(img)
    mask = ~finite
    noise = float("nan")
    bg = np.full(img.shape, np.nan)
    for _ in range(max(1, n_iter)):
        grid = np.full((ny, nx), np.nan)
        for i in range(ny):
            for j in range(nx):
                sl = (slice(edges_y[i], edges_y[i + 1]), slice(edges_x[j], edges_x[j + 1]))
                vals = img[sl][~mask[sl]]
                if vals.size >= 0.15 * img[sl].size and vals.size >= 8:
                    grid[i, j] = np.median(vals)
        if np.all(np.isnan(grid)):
            grid[:] = np.nanmedian(img)
        # (no median filter over the grid: at the grid corners it bends a linear gradient)
        grid = _fill_nan_grid(grid)
        bg = _upsample_grid(grid, edges_y, edges_x, img.shape)
        resid = img - bg
        noise = robust_std(resid[~mask])
        if not np.isfinite(noise) or noise <= 0:
            noise = robust_std(resid[finite])
        if not np.isfinite(noise) or noise <= 0:  # e.g. a noiseless test image
            noise = max(1e-12, 1e-9 * float(np.nanmax(np.abs(resid))))
        signal = np.zeros_like(mask)
        signal[finite] = resid[finite] > clip_sigma * noise
        mask = ndimage.binary_dilation(signal, iterations=3) | ~finite
    return bg, float(noise), mask


# --------------------------------------------------------------------------
# segmentation
# --------------------------------------------------------------------------
def _merge_basins(
    labels: np.ndarray, height: np.ndarray, *, noise: float, min_dip_sigma: float, min_dip_fraction: float
) -> np.ndarray:
    """Merge watershed basins separated by an insignificant dip.

    Two adjacent basins stay apart only when the lower of their two peaks
    rises above the saddle between them by more than
    ``max(min_dip_sigma * noise, min_dip_fraction * lower_peak)``. Saddles are
    processed from the highest down (a merge tree), so chains of noise basins
    on one particle collapse into one.
    """
    n = int(labels.max())
    if n <= 1:
        return labels
    pairs = []
    for a, b, ha, hb in (
        (labels[:, :-1], labels[:, 1:], height[:, :-1], height[:, 1:]),
        (labels[:-1, :], labels[1:, :], height[:-1, :], height[1:, :]),
    ):
        sel = (a != b) & (a > 0) & (b > 0)
        if sel.any():
            lo = np.minimum(a[sel], b[sel])
            hi = np.maximum(a[sel], b[sel])
            pairs.append(pd.DataFrame({"lo": lo, "hi": hi, "saddle": np.minimum(ha[sel], hb[sel])}))
    if not pairs:
        return labels
    saddles = pd.concat(pairs).groupby(["lo", "hi"], sort=False)["saddle"].max().sort_values(ascending=False)
    peak = np.zeros(n + 1)
    peak[1:] = ndimage.maximum(height, labels, index=np.arange(1, n + 1))
    parent = np.arange(n + 1)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for (lo, hi), s in saddles.items():
        ra, rb = find(int(lo)), find(int(hi))
        if ra == rb:
            continue
        low = min(peak[ra], peak[rb])
        if low - s < max(min_dip_sigma * noise, min_dip_fraction * max(low, 0.0)):
            if peak[ra] >= peak[rb]:
                parent[rb] = ra
            else:
                parent[ra] = rb
    roots = np.array([find(i) for i in range(n + 1)])
    return roots[labels]


def _relabel_raster(labels: np.ndarray) -> np.ndarray:
    """Relabel to 1..n in raster order of each region's first pixel (0 stays 0)."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if ids.size == 0:
        return np.zeros(labels.shape, np.int32)
    flat_index = np.arange(labels.size).reshape(labels.shape)
    first = ndimage.minimum(flat_index, labels, index=ids)
    order = ids[np.argsort(first)]
    lut = np.zeros(int(labels.max()) + 1, np.int32)
    lut[order] = np.arange(1, order.size + 1, dtype=np.int32)
    return lut[labels]


def detect_particles(
    image: np.ndarray,
    *,
    threshold_sigma: float = 5.0,
    min_area_px: int = 4,
    exclude_border_px: int = 0,
    smooth_sigma_px: float = 1.0,
    background_tile_px: int = 32,
    split_touching: bool = True,
    min_dip_sigma: float = 3.0,
    min_dip_fraction: float = 0.1,
    markers: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Detect bright particles on a (reference) image.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        Raw or averaged image in ADU, camera offset included (e.g. the
        output of :func:`reference_image`).
    threshold_sigma : float
        Detection threshold, in units of the robust noise of the smoothed,
        background-subtracted image.
    min_area_px : int
        Objects with fewer pixels above ``threshold_sigma`` x noise in the
        unsmoothed image are dropped (hot pixels, noise).
    exclude_border_px : int
        Particles whose above-threshold region comes closer than this to the
        image edge are dropped (0: keep all; ``touches_border`` flags the
        ones that reach the outermost pixels).
    smooth_sigma_px : float
        Gaussian smoothing (pixels) applied before thresholding; 0 disables.
    background_tile_px : int
        Tile size of the smooth background estimate
        (:func:`estimate_background`); must exceed the particle footprint.
    split_touching : bool
        Split merged particles by a watershed on the smoothed image.
    min_dip_sigma, min_dip_fraction : float
        A watershed split is kept only when the dip between the two peaks
        exceeds ``max(min_dip_sigma * noise, min_dip_fraction * lower_peak)``.
        Blurred squares are unimodal, so this suppresses splits on noise
        (the sigma criterion) and on the texture of a real particle's
        emission (the fraction). Two equal squares 100 nm apart dip by
        ~15 % on a drift-blurred reference image; 0.1 splits them.
    markers : array_like of shape (k, 2), optional
        Seeds ``(x, y)`` of the particles, e.g. the fitted centres plus the
        residual peaks found by :func:`~plscope.tracking.find_particles`.
        When given, the watershed grows one region from each seed that lies
        on the foreground (no local maxima, no merging); foreground pieces
        without a seed get their own region.

    Returns
    -------
    particles : pandas.DataFrame
        One row per particle, columns :data:`PARTICLE_COLUMNS`:
        ``particle_id`` (0..n-1, raster order), ``x_px, y_px`` (centroid
        weighted by the background-subtracted intensity), ``area_px``
        (pixels above threshold), ``bbox_x_min_px, bbox_y_min_px,
        bbox_x_max_px, bbox_y_max_px`` (max exclusive, scikit-image style),
        ``peak_adu`` and ``mass_adu`` (max and sum of the
        background-subtracted image over the region), ``smooth_background_adu``
        (smooth background at the centroid), ``snr`` (smoothed peak / noise)
        and ``touches_border``. ``DataFrame.attrs`` holds ``noise_adu``.
    labels : ndarray of int32, shape (rows, cols)
        0 for background, ``particle_id + 1`` on each particle's region.

    Notes
    -----
    Two particles whose blurred images touch are split when the intensity
    dips between them (a gap of about one pixel or more for equal particles at
    sigma = 1.3 px). Squares that touch edge to edge without any dip cannot
    be separated on intensity and are reported as one particle.
    """
    img = _check_image(image)
    threshold_sigma = _check_positive(threshold_sigma, "threshold_sigma")
    smooth_sigma_px = _check_positive(smooth_sigma_px, "smooth_sigma_px", allow_zero=True)
    min_area_px = int(min_area_px)
    exclude_border_px = int(_check_positive(exclude_border_px, "exclude_border_px", allow_zero=True))

    bg, resid, smoothed, noise, noise_s = _smoothed_residual(img, smooth_sigma_px, background_tile_px)
    fg = smoothed > threshold_sigma * noise_s
    if markers is not None and fg.any():
        labels = _grow_markers(fg, smoothed, markers)
    elif split_touching and fg.any():
        labels = _split_touching(
            fg, smoothed, noise=noise_s, min_dip_sigma=min_dip_sigma, min_dip_fraction=min_dip_fraction
        )
    else:
        from skimage.measure import label as cc_label

        labels = cc_label(fg, connectivity=2)
    labels = _relabel_raster(labels)
    # size criterion on the unsmoothed image: smoothing spreads a hot pixel over ~10 pixels
    labels, bbox = _keep_regions(labels, resid > threshold_sigma * noise, min_area_px, exclude_border_px)
    table = _region_table(labels, bbox, resid, smoothed, bg, noise_s)
    table.attrs["noise_adu"] = float(noise)
    logger.info(
        "detect_particles: %d particle(s); noise %.3g ADU, threshold %.3g ADU (smoothed)",
        len(table),
        noise,
        threshold_sigma * noise_s,
    )
    return table, labels.astype(np.int32)


def _smoothed_residual(
    img: np.ndarray, smooth_sigma_px: float, background_tile_px: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """``(background, residual, smoothed residual, noise, noise of the smoothed residual)``."""
    bg, noise, bg_mask = estimate_background(img, tile_px=background_tile_px)
    resid = img - bg
    resid = np.where(np.isfinite(resid), resid, 0.0)
    smoothed = ndimage.gaussian_filter(resid, smooth_sigma_px) if smooth_sigma_px > 0 else resid
    noise_s = robust_std(smoothed[~bg_mask])
    if not np.isfinite(noise_s) or noise_s <= 0:
        noise_s = noise if noise > 0 else 1e-12
    # floor for (nearly) noiseless input, e.g. rendered test images: without it
    # the threshold falls into the far PSF wings and rounding ripples
    floor = _NOISE_FLOOR * float(np.max(smoothed)) if smoothed.size else 0.0
    if noise_s < floor:
        logger.info(
            "detect_particles: noise %.3g ADU below the floor %.3g ADU (1e-3 x peak); using the floor",
            noise_s,
            floor,
        )
        noise = max(noise, floor)
        noise_s = floor
    return bg, resid, smoothed, noise, noise_s


def _grow_markers(fg: np.ndarray, smoothed: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """Watershed regions grown from the seeds ``(x, y)`` on the foreground; seedless pieces labelled too."""
    from skimage.measure import label as cc_label
    from skimage.segmentation import watershed

    seeds = np.asarray(markers, dtype=np.float64).reshape(-1, 2)
    seeds = seeds[np.all(np.isfinite(seeds), axis=1)]
    ix = np.clip(np.rint(seeds[:, 0]).astype(int), 0, fg.shape[1] - 1)
    iy = np.clip(np.rint(seeds[:, 1]).astype(int), 0, fg.shape[0] - 1)
    seed_img = np.zeros(fg.shape, np.int32)
    on_fg = fg[iy, ix]
    if (~on_fg).any():
        logger.debug("detect_particles: %d marker(s) off the foreground ignored", int((~on_fg).sum()))
    seed_img[iy[on_fg], ix[on_fg]] = np.arange(1, int(on_fg.sum()) + 1, dtype=np.int32)
    labels = watershed(-smoothed, seed_img, mask=fg)
    rest = cc_label(fg & (labels == 0), connectivity=2)
    return np.where(rest > 0, rest + labels.max(), labels)


def _split_touching(
    fg: np.ndarray, smoothed: np.ndarray, *, noise: float, min_dip_sigma: float, min_dip_fraction: float
) -> np.ndarray:
    """Watershed from the local maxima; basins without a deep enough dip between them merged."""
    from skimage.measure import label as cc_label
    from skimage.morphology import local_maxima
    from skimage.segmentation import watershed

    peaks = local_maxima(smoothed) & fg
    seed_img = cc_label(peaks, connectivity=2)
    labels = watershed(-smoothed, seed_img, mask=fg)
    labels = _merge_basins(
        labels, smoothed, noise=noise, min_dip_sigma=min_dip_sigma, min_dip_fraction=min_dip_fraction
    )
    # every connected foreground piece without a marker gets its own label
    rest = cc_label(fg & (labels == 0), connectivity=2)
    return np.where(rest > 0, rest + labels.max(), labels)


def _keep_regions(
    labels: np.ndarray, raw_above: np.ndarray, min_area_px: int, exclude_border_px: int
) -> tuple[np.ndarray, np.ndarray]:
    """Drop regions with fewer than ``min_area_px`` pixels of ``raw_above`` or near the border.

    Returns the relabelled image (1..n, order kept) and each region's
    bounding box ``(x_min, y_min, x_max, y_max)`` (max exclusive).
    """
    n = int(labels.max())
    ids = np.arange(1, n + 1)
    n_raw = np.asarray(ndimage.sum_labels(raw_above.astype(np.float64), labels, ids)) if n else np.zeros(0)
    keep = n_raw >= min_area_px
    rows, cols = labels.shape
    if n:
        slices = ndimage.find_objects(labels)
        bbox = np.array([[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in slices], float)
    else:
        bbox = np.zeros((0, 4))
    if exclude_border_px > 0 and n:
        e = exclude_border_px
        near = (bbox[:, 0] < e) | (bbox[:, 1] < e) | (bbox[:, 2] > cols - e) | (bbox[:, 3] > rows - e)
        if near.any():
            logger.info(
                "detect_particles: dropping %d particle(s) within %d px of the border",
                int((near & keep).sum()),
                e,
            )
        keep &= ~near
    n_small = int((~(n_raw >= min_area_px)).sum())
    if n_small:
        logger.debug("detect_particles: dropped %d object(s) smaller than %d px", n_small, min_area_px)
    lut = np.zeros(n + 1, np.int32)
    lut[ids[keep]] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels], bbox[keep]


def _region_table(
    labels: np.ndarray,
    bbox: np.ndarray,
    resid: np.ndarray,
    smoothed: np.ndarray,
    bg: np.ndarray,
    noise_s: float,
) -> pd.DataFrame:
    """:data:`PARTICLE_COLUMNS` of the labelled regions (``noise_s``: noise of the smoothed image)."""
    n = int(labels.max())
    ids = np.arange(1, n + 1)
    rows, cols = labels.shape
    if n:
        w = np.clip(resid, 0.0, None)
        yy, xx = np.indices(labels.shape, dtype=np.float64)
        wsum = np.asarray(ndimage.sum_labels(w, labels, ids))
        wsum_safe = np.where(wsum > 0, wsum, np.nan)
        x = np.asarray(ndimage.sum_labels(w * xx, labels, ids)) / wsum_safe
        y = np.asarray(ndimage.sum_labels(w * yy, labels, ids)) / wsum_safe
        # unweighted centroid where the weights vanish (cannot happen above threshold, but be safe)
        bad = ~np.isfinite(x)
        if bad.any():
            cyx = np.array(ndimage.center_of_mass(np.ones_like(w), labels, ids[bad]))
            y[bad], x[bad] = cyx[:, 0], cyx[:, 1]
        area = np.asarray(ndimage.sum_labels(np.ones_like(w), labels, ids))
        peak = np.asarray(ndimage.maximum(resid, labels, ids))
        mass = np.asarray(ndimage.sum_labels(resid, labels, ids))
        speak = np.asarray(ndimage.maximum(smoothed, labels, ids))
        bg_at = bg[
            np.clip(np.round(y).astype(int), 0, rows - 1), np.clip(np.round(x).astype(int), 0, cols - 1)
        ]
    else:
        x = y = area = peak = mass = speak = bg_at = np.zeros(0)
    touches = (
        ((bbox[:, 0] <= 0) | (bbox[:, 1] <= 0) | (bbox[:, 2] >= cols) | (bbox[:, 3] >= rows))
        if n
        else np.zeros(0, bool)
    )
    return pd.DataFrame(
        {
            "particle_id": np.arange(n, dtype=np.int64),
            "x_px": x,
            "y_px": y,
            "area_px": area.astype(np.int64),
            "bbox_x_min_px": bbox[:, 0].astype(np.int64),
            "bbox_y_min_px": bbox[:, 1].astype(np.int64),
            "bbox_x_max_px": bbox[:, 2].astype(np.int64),
            "bbox_y_max_px": bbox[:, 3].astype(np.int64),
            "peak_adu": peak,
            "mass_adu": mass,
            "smooth_background_adu": bg_at,
            "snr": speak / noise_s,
            "touches_border": touches.astype(bool),
        },
        columns=list(PARTICLE_COLUMNS),
    )
