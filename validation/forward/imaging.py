"""Brute-force rendering of a PL movie: shapes x PSF on a fine grid, binned, sCMOS camera.

Each particle's image is rendered once on a grid ``supersample`` times finer
than the camera pixels (the covered fraction of each fine cell, convolved
with the sampled PSF), then placed frame by frame at its position (moved in
whole fine cells) scaled by its PL factor, and the fine canvas is summed
into pixels. The camera adds Poisson shot noise on signal + background
(uneven illumination), hot pixels, and per-pixel offset, gain and read
noise (an sCMOS model). Nothing here comes from plscope.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import fftconvolve

from .psf import psf_kernel
from .shapes import extent_nm, shape_mask


@dataclass
class ParticleSpec:
    """One particle: centre at frame 0 (px), shape (see :mod:`.shapes`), brightness, motion."""

    x_px: float
    y_px: float
    shape: dict
    photons: float  # total detected photons per exposure at full PL
    velocity_px_per_frame: tuple[float, float] = (0.0, 0.0)


@dataclass
class MovieSpec:
    """Camera, optics and illumination."""

    shape_px: tuple[int, int] = (96, 96)
    pixel_size_nm: float = 100.0
    psf: dict = field(default_factory=lambda: {"kind": "gaussian", "sigma_nm": 120.0})
    supersample: int = 5
    background_photons: float = 30.0
    illumination_gradient: float = 0.2  # relative change across the field (x)
    offset_adu: float = 100.0
    offset_sd_adu: float = 3.0
    gain_adu_per_e: float = 2.0
    gain_sd: float = 0.03
    read_noise_e: float = 1.5  # median of a lognormal (sd of log 0.3)
    hot_pixel_fraction: float = 5e-4
    hot_pixel_e: float = 300.0


def illumination(spec: MovieSpec) -> np.ndarray:
    """Relative illumination per pixel: a linear gradient in x and a broad Gaussian bump (mean 1)."""
    rows, cols = spec.shape_px
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    g = 1.0 + spec.illumination_gradient * (xx / max(cols - 1, 1) - 0.5)
    bump = 0.1 * np.exp(-((xx - 0.6 * cols) ** 2 + (yy - 0.4 * rows) ** 2) / (2 * (0.4 * rows) ** 2))
    ill = g + bump
    return ill / ill.mean()


def particle_template(p: ParticleSpec, spec: MovieSpec) -> tuple[np.ndarray, int, int]:
    """Fine-grid image of one particle (sums to 1) and the fine-grid index of its centre cell.

    The template is computed at the particle's exact sub-cell offset, so the
    rendered centre is exactly ``(x_px, y_px)`` at frame 0.
    """
    ss = spec.supersample
    step = spec.pixel_size_nm / ss
    kernel = psf_kernel(spec.psf, step)
    reach = int(np.ceil(extent_nm(p.shape) / step)) + 2
    # fine cell m has its centre at px coordinate (m + 0.5) / ss - 0.5
    fx = (p.x_px + 0.5) * ss - 0.5
    fy = (p.y_px + 0.5) * ss - 0.5
    cx, cy = int(np.floor(fx)), int(np.floor(fy))
    ox, oy = (fx - cx) * step, (fy - cy) * step  # centre offset within the cell, nm
    g = np.arange(-reach, reach + 1) * step
    mask = shape_mask(p.shape, g - ox, g - oy)
    img = fftconvolve(mask, kernel, mode="full")
    img = np.clip(img, 0.0, None)
    half = (img.shape[0] - 1) // 2
    return img / img.sum(), cx - half, cy - half


def render_movie(
    spec: MovieSpec, particles: list[ParticleSpec], pl: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Render the movie.

    Parameters
    ----------
    spec : MovieSpec
    particles : list of ParticleSpec
    pl : ndarray, shape (n_particles, n_frames)
        PL factor of each particle in each frame (exposure-averaged).
    rng : numpy.random.Generator

    Returns
    -------
    movie : ndarray of uint16, shape (n_frames, rows, cols)
    positions : ndarray, shape (n_frames, n_particles, 2)
        Rendered centre ``(x_px, y_px)`` of each particle in each frame.
    """
    rows, cols = spec.shape_px
    ss = spec.supersample
    n_frames = pl.shape[1]
    ill = illumination(spec)
    templates = [particle_template(p, spec) for p in particles]
    offset = spec.offset_adu + rng.normal(0.0, spec.offset_sd_adu, (rows, cols))
    gain = spec.gain_adu_per_e * (1.0 + rng.normal(0.0, spec.gain_sd, (rows, cols)))
    read = spec.read_noise_e * np.exp(rng.normal(0.0, 0.3, (rows, cols)))
    hot = rng.random((rows, cols)) < spec.hot_pixel_fraction
    movie = np.empty((n_frames, rows, cols), np.uint16)
    positions = np.empty((n_frames, len(particles), 2))
    pad = max((t.shape[0] for t, _, _ in templates), default=0) + 2 * ss
    for t in range(n_frames):
        canvas = np.zeros((rows * ss + 2 * pad, cols * ss + 2 * pad))
        for i, (p, (tmpl, r0x, r0y)) in enumerate(zip(particles, templates)):
            sx = int(round(p.velocity_px_per_frame[0] * t * ss))
            sy = int(round(p.velocity_px_per_frame[1] * t * ss))
            positions[t, i] = (p.x_px + sx / ss, p.y_px + sy / ss)
            x0, y0 = r0x + sx + pad, r0y + sy + pad
            h, w = tmpl.shape
            if x0 < 0 or y0 < 0 or x0 + w > canvas.shape[1] or y0 + h > canvas.shape[0]:
                continue  # left the field
            canvas[y0 : y0 + h, x0 : x0 + w] += tmpl * (p.photons * pl[i, t])
        fine = canvas[pad : pad + rows * ss, pad : pad + cols * ss]
        signal = fine.reshape(rows, ss, cols, ss).sum(axis=(1, 3))
        expected = (signal + spec.background_photons) * ill
        electrons = rng.poisson(expected).astype(np.float64)
        electrons[hot] += spec.hot_pixel_e
        adu = offset + gain * (electrons + rng.normal(0.0, 1.0, (rows, cols)) * read)
        movie[t] = np.clip(np.rint(adu), 0, 65535).astype(np.uint16)
    return movie, positions


def expected_image(spec: MovieSpec, p: ParticleSpec) -> np.ndarray:
    """Noiseless photons per pixel of one particle at frame 0 (no background, no illumination)."""
    rows, cols = spec.shape_px
    ss = spec.supersample
    tmpl, x0, y0 = particle_template(p, spec)
    pad = tmpl.shape[0] + ss
    canvas = np.zeros((rows * ss + 2 * pad, cols * ss + 2 * pad))
    h, w = tmpl.shape
    canvas[y0 + pad : y0 + pad + h, x0 + pad : x0 + pad + w] += tmpl * p.photons
    fine = canvas[pad : pad + rows * ss, pad : pad + cols * ss]
    return fine.reshape(rows, ss, cols, ss).sum(axis=(1, 3))
