"""Synthetic ground truth for the tracking tests.

Particles are rendered with the exact model of :mod:`plscope.tracking.models`
(the same one the simulator uses): axis-aligned squares, Gaussian PSF,
pixel-integrated. Frames carry a camera offset, a background with a 20 %
illumination gradient, Poisson shot noise (with a camera gain) and Gaussian
read noise. Every random draw comes from a seeded ``numpy.random.default_rng``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from plscope.tracking.models import box_profile

SHAPE = (160, 160)
SIGMA_PX = 1.3  # PSF sigma: 130 nm at 100 nm pixels
PIXEL_NM = 100.0
OFFSET_ADU = 100.0
BACKGROUND_PHOTONS = 30.0
GRADIENT = 0.2  # +-10 % across the field
GAIN_ADU_PER_PHOTON = 1.5
READ_NOISE_ADU = 2.0


@dataclass
class Scene:
    """Ground truth of a field of view (positions at frame 0, in pixels)."""

    x_px: np.ndarray
    y_px: np.ndarray
    side_px: np.ndarray
    total_photons: np.ndarray
    shape: tuple[int, int] = SHAPE
    sigma_px: float = SIGMA_PX
    extra: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.x_px.size


def make_scene(
    rng: np.random.Generator,
    *,
    n_side: int = 4,
    shape=SHAPE,
    sides_px=None,
    jitter_px: float = 5.0,
    sigma_px: float = SIGMA_PX,
) -> Scene:
    """``n_side**2`` particles on a jittered grid (>= 12 px apart edge to edge).

    Sides spread evenly over 4-13 px (400-1300 nm) in random order; totals
    about 200 photons/px**2 x area x a random factor 0.6-1.6, clipped to
    3 000-34 000 photons.
    """
    n = n_side * n_side
    cell_y = shape[0] / n_side
    cell_x = shape[1] / n_side
    gy, gx = np.meshgrid(np.arange(n_side), np.arange(n_side), indexing="ij")
    x = (gx.ravel() + 0.5) * cell_x + rng.uniform(-jitter_px, jitter_px, n)
    y = (gy.ravel() + 0.5) * cell_y + rng.uniform(-jitter_px, jitter_px, n)
    side = np.linspace(4.0, 13.0, n) if sides_px is None else np.asarray(sides_px, float)
    side = rng.permutation(side)
    # surface brightness varies from particle to particle (x0.6-1.6), totals 3 000-34 000 photons
    total = np.clip(200.0 * side**2 * rng.uniform(0.6, 1.6, n), 3000.0, 34000.0)
    return Scene(x, y, side, total, tuple(shape), sigma_px)


def background_photons(shape=SHAPE) -> np.ndarray:
    """Background (photons/px) with a 20 % diagonal illumination gradient."""
    yy, xx = np.indices(shape, dtype=float)
    ramp = (xx / (shape[1] - 1) + 0.5 * yy / (shape[0] - 1)) / 1.5 - 0.5
    return BACKGROUND_PHOTONS * (1.0 + GRADIENT * ramp)


def render_particles(
    scene: Scene, *, totals=None, dx: float = 0.0, dy: float = 0.0, out: np.ndarray | None = None
) -> np.ndarray:
    """Expected photons of the particles alone (local patches for speed)."""
    img = np.zeros(scene.shape) if out is None else out
    totals = scene.total_photons if totals is None else totals
    rows, cols = scene.shape
    for x, y, s, t in zip(scene.x_px + dx, scene.y_px + dy, scene.side_px, totals):
        h = 0.5 * s + 6 * scene.sigma_px
        r0, r1 = max(int(y - h), 0), min(int(y + h) + 2, rows)
        c0, c1 = max(int(x - h), 0), min(int(x + h) + 2, cols)
        py = box_profile(np.arange(r0, r1), y, s, scene.sigma_px)
        px = box_profile(np.arange(c0, c1), x, s, scene.sigma_px)
        img[r0:r1, c0:c1] += np.outer(py, px) * (t / (s * s))
    return img


def expose(
    expected_photons: np.ndarray, rng: np.random.Generator | None, *, n_avg: int = 1, as_uint16: bool = False
) -> np.ndarray:
    """Camera: photons -> ADU, with shot/read noise (``rng``) or noiseless (None).

    ``n_avg > 1`` returns the (float) mean of ``n_avg`` frames directly.
    """
    if rng is None:
        adu = OFFSET_ADU + GAIN_ADU_PER_PHOTON * expected_photons
    else:
        photons = rng.poisson(expected_photons * n_avg) / n_avg
        adu = (
            OFFSET_ADU
            + GAIN_ADU_PER_PHOTON * photons
            + rng.normal(0.0, READ_NOISE_ADU / np.sqrt(n_avg), expected_photons.shape)
        )
    if as_uint16:
        return np.clip(np.round(adu), 0, 65535).astype(np.uint16)
    return adu


def render_image(
    scene: Scene, rng: np.random.Generator | None, *, n_avg: int = 1, as_uint16: bool = False
) -> np.ndarray:
    """One frame (or the mean of ``n_avg`` frames) of the scene in ADU."""
    lam = background_photons(scene.shape) + render_particles(scene)
    return expose(lam, rng, n_avg=n_avg, as_uint16=as_uint16)


def render_stack(
    scene: Scene,
    factors: np.ndarray,
    rng: np.random.Generator | None,
    *,
    drift_px=(0.0, 0.0),
    as_uint16: bool = True,
) -> np.ndarray:
    """Movie (t, rows, cols): particle ``i`` in frame ``t`` emits
    ``total_photons[i] * factors[t, i]``; stage drift grows linearly from 0 to
    ``drift_px = (dx, dy)`` over the movie."""
    n_t = factors.shape[0]
    bg = background_photons(scene.shape)
    dtype = np.uint16 if as_uint16 else np.float64
    out = np.empty((n_t,) + tuple(scene.shape), dtype)
    lam = np.empty(scene.shape)
    for t in range(n_t):
        f = t / max(n_t - 1, 1)
        lam[:] = bg
        render_particles(
            scene, totals=scene.total_photons * factors[t], dx=drift_px[0] * f, dy=drift_px[1] * f, out=lam
        )
        out[t] = expose(lam, rng, as_uint16=as_uint16)
    return out


def match(x_true, y_true, x, y, *, max_dist: float = 3.0):
    """Index of the nearest detection for each true particle (-1 if none within max_dist)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    out = np.full(len(x_true), -1)
    dist = np.full(len(x_true), np.inf)
    for i, (xt, yt) in enumerate(zip(x_true, y_true)):
        if x.size == 0:
            break
        d = np.hypot(x - xt, y - yt)
        j = int(np.argmin(d))
        dist[i] = d[j]
        if d[j] <= max_dist:
            out[i] = j
    return out, dist


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.fixture
def scene(rng) -> Scene:
    return make_scene(rng)


@pytest.fixture(scope="module")
def module_scene() -> Scene:
    return make_scene(np.random.default_rng(7))


@pytest.fixture(scope="session")
def synth():
    """The helpers above, as a namespace (test modules do not import conftest)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        Scene=Scene,
        make_scene=make_scene,
        background_photons=background_photons,
        render_particles=render_particles,
        expose=expose,
        render_image=render_image,
        render_stack=render_stack,
        match=match,
        SHAPE=SHAPE,
        SIGMA_PX=SIGMA_PX,
        PIXEL_NM=PIXEL_NM,
        OFFSET_ADU=OFFSET_ADU,
        GAIN=GAIN_ADU_PER_PHOTON,
        READ_NOISE_ADU=READ_NOISE_ADU,
        BACKGROUND_PHOTONS=BACKGROUND_PHOTONS,
    )
