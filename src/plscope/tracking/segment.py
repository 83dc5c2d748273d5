"""Segmentation refined by the particle model: detect, fit, split what the fit cannot explain.

An intensity watershed separates two touching particles only when the
intensity dips between them. A small, dim particle on the shoulder of a
big, bright one (a 450 nm crystal 150 nm from a 1 um one, say) makes no dip
and no local maximum: it is swallowed. The fit of the blurred-square model
(:func:`~plscope.tracking.measure_sizes`) then leaves it in the residual
image as a clear, compact excess. :func:`find_particles` iterates

1. :func:`~plscope.tracking.detect_particles` (first round: local maxima and
   merged basins; later rounds: one seed per known particle plus the new
   residual seeds),
2. :func:`~plscope.tracking.measure_sizes` (touching particles are fitted
   jointly),
3. residual = image - smooth background - fitted model; a new seed is a
   residual peak that exceeds both ``residual_sigma`` x noise and
   ``residual_fraction`` x the local model, outside every fitted square;
   an elongated particle flagged ``possibly_merged`` (two touching particles
   without an intensity dip) is re-seeded as two (:func:`split_seeds`),

until no new seed appears. It returns the table the rest of the pipeline
uses: detection columns merged with the size columns.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from .detect import _check_image, detect_particles, estimate_background, robust_std
from .models import render_squares
from .size import measure_sizes

logger = logging.getLogger(__name__)


def _merge_tables(detected: pd.DataFrame, sizes: pd.DataFrame) -> pd.DataFrame:
    """Detection columns (without their positions) + the size columns, by particle_id."""
    det = detected.drop(columns=[c for c in ("x_px", "y_px") if c in sizes.columns], errors="ignore")
    out = det.merge(sizes, on="particle_id")
    first = ["particle_id", "x_px", "y_px", "size_nm"]
    out = out[first + [c for c in out.columns if c not in first]]
    out.attrs.update(detected.attrs)
    out.attrs.update(sizes.attrs)
    return out


def residual_seeds(
    image: np.ndarray,
    particles: pd.DataFrame,
    *,
    sigma_px: float,
    residual_sigma: float = 5.0,
    residual_fraction: float = 0.25,
    min_area_px: int = 4,
    background_tile_px: int = 32,
) -> np.ndarray:
    """Positions of unexplained compact excesses in the residual of a model fit.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        The image the sizes were fitted on (ADU).
    particles : pandas.DataFrame
        ``x_px, y_px, side_px, total_adu`` per particle (the
        :func:`~plscope.tracking.measure_sizes` table).
    sigma_px : float
        PSF sigma used by the fit.
    residual_sigma : float
        Minimum residual peak in units of the (smoothed) noise.
    residual_fraction : float
        Minimum residual peak relative to the smoothed model at the same
        pixel (model mismatch of a bright particle stays below it).
    min_area_px : int
        Minimum number of pixels of a residual region.
    background_tile_px : int
        Tile of the smooth background estimate.

    Returns
    -------
    ndarray, shape (k, 2)
        ``(x, y)`` of each new seed (the residual maximum of its region).
    """
    from skimage.measure import label as cc_label

    img = _check_image(image)
    bg, _, signal = estimate_background(img, tile_px=background_tile_px)
    ok = np.ones(len(particles), bool)
    cols = ("x_px", "y_px", "side_px", "total_adu")
    vals = {c: particles[c].to_numpy(float) for c in cols}
    for c in cols:
        ok &= np.isfinite(vals[c])
    x, y, side, total = (vals[c][ok] for c in cols)
    model = render_squares(img.shape, x, y, side, total, sigma_px)
    resid = img - bg - model
    resid = np.where(np.isfinite(resid), resid, 0.0)
    rs = ndimage.gaussian_filter(resid, 1.0)
    ms = ndimage.gaussian_filter(model, 1.0)
    noise = robust_std(rs[~signal])
    if not np.isfinite(noise) or noise <= 0:
        noise = robust_std(rs)
    cand = (rs > residual_sigma * noise) & (rs > residual_fraction * ms)
    lab = cc_label(cand, connectivity=2)
    n = int(lab.max())
    if n == 0:
        return np.zeros((0, 2))
    ids = np.arange(1, n + 1)
    area = np.asarray(ndimage.sum_labels(np.ones_like(rs), lab, ids))
    where = ndimage.maximum_position(rs, lab, ids)
    x, y = vals["x_px"][ok], vals["y_px"][ok]
    half = vals["side_px"][ok] / 2 + sigma_px
    seeds = []
    for a, (iy, ix) in zip(area, where):
        if a < min_area_px:
            continue
        inside = (np.abs(ix - x) <= half) & (np.abs(iy - y) <= half)
        if inside.any():
            continue
        seeds.append((float(ix), float(iy)))
    return np.asarray(seeds, float).reshape(-1, 2)


def split_seeds(particles: pd.DataFrame, pixel_size_nm: float) -> np.ndarray:
    """Two seeds per elongated particle, a quarter of its long side either side of its centre.

    Two equal squares touching edge to edge make a rectangle of long side
    ``2 L`` whose halves are centred at ``+-L / 2`` = ``+-long / 4`` along the
    long axis (``orientation_deg``).

    Returns
    -------
    ndarray, shape (2 k, 2)
        ``(x, y)`` seeds.
    """
    if len(particles) == 0:
        return np.zeros((0, 2))
    x = particles["x_px"].to_numpy(float)
    y = particles["y_px"].to_numpy(float)
    q = particles["side_long_nm"].to_numpy(float) / pixel_size_nm / 4.0
    a = np.deg2rad(particles["orientation_deg"].to_numpy(float))
    dx, dy = q * np.cos(a), q * np.sin(a)
    out = np.concatenate([np.column_stack([x - dx, y - dy]), np.column_stack([x + dx, y + dy])])
    return out[np.all(np.isfinite(out), axis=1)]


def _refined_markers(
    img: np.ndarray,
    detected: pd.DataFrame,
    sizes: pd.DataFrame,
    sigma_px: float,
    pixel_size_nm: float,
    det_kw: dict[str, Any],
    residual_sigma: float,
    residual_fraction: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Seeds of the next detection round: ``(fitted centres kept, new seeds)``; None when nothing changes.

    New seeds are the residual peaks the fitted model leaves and, for each
    elongated particle (possibly two touching ones), two seeds along its long
    axis (its fitted centre is dropped). Failed fits keep the detected centre.
    """
    seeds = residual_seeds(
        img,
        sizes,
        sigma_px=sigma_px,
        residual_sigma=residual_sigma,
        residual_fraction=residual_fraction,
        min_area_px=int(det_kw.get("min_area_px", 4)),
        background_tile_px=int(det_kw.get("background_tile_px", 32)),
    )
    merged = (
        sizes["possibly_merged"].to_numpy(bool) if "possibly_merged" in sizes else np.zeros(len(sizes), bool)
    )
    if seeds.shape[0] == 0 and not merged.any():
        return None
    fitted = sizes[["x_px", "y_px"]].to_numpy(float, copy=True)
    bad = ~sizes["size_fit_ok"].to_numpy(bool) | ~np.all(np.isfinite(fitted), axis=1)
    fitted[bad] = (
        detected.set_index("particle_id")
        .loc[sizes["particle_id"].to_numpy()[bad], ["x_px", "y_px"]]
        .to_numpy(float)
    )
    # an elongated particle (possibly two touching ones) is re-seeded as two along its long axis;
    # residual seeds on it (its far end, outside the square fit) are left to the split
    for r in sizes[merged].itertuples():
        reach = 0.5 * r.side_long_nm / pixel_size_nm + sigma_px
        seeds = seeds[np.hypot(seeds[:, 0] - r.x_px, seeds[:, 1] - r.y_px) > reach]
    seeds = np.concatenate([seeds, split_seeds(sizes[merged], pixel_size_nm)])
    return fitted[~merged], seeds


def find_particles(
    image: np.ndarray,
    *,
    pixel_size_nm: float,
    psf_sigma_nm: float | None = None,
    max_rounds: int = 3,
    residual_sigma: float = 5.0,
    residual_fraction: float = 0.25,
    detect_options: dict[str, Any] | None = None,
    size_options: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, np.ndarray, float]:
    """Particles, their regions and sizes on a reference image, split by the model.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        Reference image in ADU (e.g. :func:`~plscope.tracking.reference_image`).
    pixel_size_nm : float
        Pixel size in the sample plane.
    psf_sigma_nm : float, optional
        Gaussian PSF sigma; estimated from the data when None (see
        :func:`~plscope.tracking.measure_sizes`).
    max_rounds : int
        Refinement rounds after the first detection (0: plain detection + sizes).
    residual_sigma, residual_fraction : float
        Significance of a new seed, see :func:`residual_seeds`.
    detect_options, size_options : dict, optional
        Extra keyword arguments of :func:`~plscope.tracking.detect_particles`
        and :func:`~plscope.tracking.measure_sizes`.

    Returns
    -------
    particles : pandas.DataFrame
        One row per particle: ``particle_id, x_px, y_px, size_nm`` then the
        other detection and size columns (positions are the fitted centres).
        ``attrs`` holds ``noise_adu``, the PSF sigma attributes and
        ``n_split_rounds`` (rounds that added particles).
    labels : ndarray of int32, shape (rows, cols)
        ``particle_id + 1`` on each particle's region, 0 elsewhere.
    psf_sigma_nm : float
        PSF sigma used for the sizes.
    """
    img = _check_image(image)
    det_kw = dict(detect_options or {})
    size_kw = dict(size_options or {})
    detected, labels = detect_particles(img, **det_kw)
    sizes, sigma_nm = measure_sizes(
        img, detected, pixel_size_nm=pixel_size_nm, psf_sigma_nm=psf_sigma_nm, labels=labels, **size_kw
    )
    rounds = 0
    for _ in range(max(0, int(max_rounds))):
        if len(sizes) == 0:
            break
        markers = _refined_markers(
            img,
            detected,
            sizes,
            sigma_nm / pixel_size_nm,
            pixel_size_nm,
            det_kw,
            residual_sigma,
            residual_fraction,
        )
        if markers is None:
            break
        rounds += 1
        fitted, seeds = markers
        logger.info(
            "find_particles: round %d, %d residual seed(s) at %s",
            rounds,
            seeds.shape[0],
            np.round(seeds, 1).tolist(),
        )
        n_before = len(detected)
        detected, labels = detect_particles(img, markers=np.concatenate([fitted, seeds]), **det_kw)
        sizes, sigma_nm = measure_sizes(
            img, detected, pixel_size_nm=pixel_size_nm, psf_sigma_nm=psf_sigma_nm, labels=labels, **size_kw
        )
        if len(detected) <= n_before:
            break
    out = _merge_tables(detected, sizes)
    out.attrs["n_split_rounds"] = rounds
    return out, labels, float(sigma_nm)
