"""Particle layout, image rendering, camera noise and rig nuisances.

Pure functions: arrays in, arrays out; random draws come from a
``numpy.random.Generator`` passed in. Coordinates follow
:mod:`plscope.tracking.models`: ``x`` is the column, ``y`` the row, the centre
of pixel ``i`` is at ``i`` and it covers ``[i - 0.5, i + 0.5]``.
"""

from __future__ import annotations

import numpy as np

from ..tracking.models import box_profile

#: half-width of the rendering window beyond the particle edge, in PSF sigmas
ROI_SIGMAS = 6.0
#: peak-to-peak fraction of the linear illumination gradient of the background
BACKGROUND_GRADIENT = 0.20
#: largest value of a uint16 camera pixel
ADU_MAX = 65535


def place_particles(side_px, shape: tuple[int, int], *, rng: np.random.Generator,
                    clearance_px: float = 12.0, border_px: float = 14.0,
                    max_tries: int = 2000, max_restarts: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Random positions of square particles that neither touch nor crowd.

    Rejection sampling: every particle keeps at least ``clearance_px`` between
    its edges and those of any other particle (the squares, grown by
    ``clearance_px / 2`` on every side, do not overlap) and at least
    ``border_px`` between its edges and the image border.

    Parameters
    ----------
    side_px : array_like, shape (n,)
        Side lengths in pixels.
    shape : (rows, cols)
    rng : numpy.random.Generator
    clearance_px, border_px : float
    max_tries : int
        Positions tried per particle (in batches of 64) before starting the
        layout again.
    max_restarts : int
        Layouts tried before giving up.

    Returns
    -------
    x_px, y_px : ndarray, shape (n,)
        Centres (column, row), in the order of ``side_px``.

    Raises
    ------
    ValueError
        If the particles do not fit.
    """
    sides = np.asarray(side_px, dtype=float).ravel()
    rows, cols = shape
    n = sides.size
    lo_x = -0.5 + border_px + sides / 2
    hi_x = cols - 0.5 - border_px - sides / 2
    lo_y = -0.5 + border_px + sides / 2
    hi_y = rows - 0.5 - border_px - sides / 2
    if n and (np.any(hi_x < lo_x) or np.any(hi_y < lo_y)):
        raise ValueError(f"a {sides.max():.1f} px particle does not fit in a {rows}x{cols} image "
                         f"with {border_px:g} px from the border")
    order = np.argsort(-sides, kind="stable")       # largest first packs best
    batch = 64
    for _ in range(max_restarts):
        x = np.full(n, np.nan)
        y = np.full(n, np.nan)
        placed: list[int] = []
        for i in order:
            for _ in range(0, max_tries, batch):
                xi = rng.uniform(lo_x[i], hi_x[i], size=batch)
                yi = rng.uniform(lo_y[i], hi_y[i], size=batch)
                ok = np.ones(batch, dtype=bool)
                if placed:
                    j = np.asarray(placed)
                    half = (sides[i] + sides[j]) / 2
                    gap = np.maximum(np.abs(xi[:, None] - x[j]) - half, np.abs(yi[:, None] - y[j]) - half)
                    ok = np.all(gap >= clearance_px, axis=1)
                if ok.any():
                    first = int(np.argmax(ok))
                    x[i], y[i] = xi[first], yi[first]
                    placed.append(int(i))
                    break
            else:
                break
        if len(placed) == n:
            return x, y
    raise ValueError(f"cannot place {n} particles of up to {sides.max():.1f} px in a {rows}x{cols} image "
                     f"with {clearance_px:g} px clearance and {border_px:g} px border; "
                     "use fewer or smaller particles or a larger image")


def render_particles(shape: tuple[int, int], x_px, y_px, side_px, photons, *, sigma_px: float,
                     out: np.ndarray | None = None) -> np.ndarray:
    """Expected photon image of blurred, pixel-integrated square particles.

    Same model as :func:`plscope.tracking.models.blurred_square`, evaluated
    only in a window of ``ROI_SIGMAS`` PSF sigmas around each particle.

    Parameters
    ----------
    shape : (rows, cols)
    x_px, y_px, side_px, photons : array_like, shape (n,)
        Centre (column, row), side length and integrated photons.
    sigma_px : float
        Gaussian PSF standard deviation in pixels.
    out : ndarray of float, shape ``shape``, optional
        Image to add to (in place); a new zero image if omitted.

    Returns
    -------
    ndarray of float, shape ``shape``
    """
    rows, cols = shape
    img = np.zeros(shape) if out is None else out
    for x, y, s, n in zip(np.atleast_1d(x_px), np.atleast_1d(y_px), np.atleast_1d(side_px),
                          np.atleast_1d(photons)):
        if n == 0:
            continue
        half = s / 2 + ROI_SIGMAS * sigma_px
        c0, c1 = max(int(np.floor(x - half)), 0), min(int(np.ceil(x + half)) + 1, cols)
        r0, r1 = max(int(np.floor(y - half)), 0), min(int(np.ceil(y + half)) + 1, rows)
        if c0 >= c1 or r0 >= r1:
            continue
        px = box_profile(np.arange(c0, c1), x, s, sigma_px)
        py = box_profile(np.arange(r0, r1), y, s, sigma_px)
        side = max(float(s), 1e-9)
        img[r0:r1, c0:c1] += np.outer(py, px) * (n / (side * side))
    return img


def background_image(shape: tuple[int, int], mean_photons: float, *, angle_rad: float,
                     gradient: float = BACKGROUND_GRADIENT) -> np.ndarray:
    """Background photons per pixel with a linear illumination gradient.

    Parameters
    ----------
    shape : (rows, cols)
    mean_photons : float
        Mean over the image (photons per pixel per frame).
    angle_rad : float
        Direction of the gradient (0 = increasing along +x, the columns).
    gradient : float
        Peak-to-peak variation over the image as a fraction of the mean.

    Returns
    -------
    ndarray of float, shape ``shape``
    """
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(float)
    g = xx * np.cos(angle_rad) + yy * np.sin(angle_rad)
    span = g.max() - g.min()
    g = (g - (g.max() + g.min()) / 2) / span if span > 0 else np.zeros_like(g)
    return mean_photons * (1.0 + gradient * g)


def camera_counts(photons: np.ndarray, *, gain_adu_per_photon: float, offset_adu: float,
                  read_noise_adu: float, rng: np.random.Generator | None) -> np.ndarray:
    """Camera image in ADU from expected photons per pixel.

    ``Poisson(photons) * gain + offset + Normal(0, read_noise)``, rounded and
    clipped to uint16. With ``rng=None`` there is no noise: the expected
    photons are scaled, offset and rounded.

    Returns
    -------
    ndarray of uint16, shape of ``photons``
    """
    if rng is None:
        adu = photons * gain_adu_per_photon + offset_adu
    else:
        adu = rng.poisson(photons).astype(float) * gain_adu_per_photon + offset_adu
        if read_noise_adu > 0:
            adu += rng.normal(0.0, read_noise_adu, size=adu.shape)
    return np.clip(np.rint(adu), 0, ADU_MAX).astype(np.uint16)


def drift_path(n_frames: int, *, max_px: float, rng: np.random.Generator, n_modes: int = 3) -> np.ndarray:
    """Smooth stage drift, common to all particles.

    A random low-frequency Fourier series in x and y, shifted so that the
    first frame is not displaced and scaled so that the largest displacement
    is ``max_px``.

    Returns
    -------
    ndarray, shape (n_frames, 2)
        ``(dx, dy)`` in pixels per frame; row 0 is ``(0, 0)``.
    """
    if n_frames < 2 or max_px <= 0:
        return np.zeros((max(n_frames, 0), 2))
    u = np.linspace(0.0, 1.0, n_frames)
    m = np.arange(1, n_modes + 1)
    amp = rng.normal(size=(2, n_modes)) / m
    phase = rng.uniform(0.0, 2 * np.pi, size=(2, n_modes))
    path = np.einsum("dm,tdm->td", amp, np.sin(np.pi * m * u[:, None, None] + phase[None]))
    path -= path[0]
    peak = np.hypot(path[:, 0], path[:, 1]).max()
    return path * (max_px / peak) if peak > 0 else path


def blink_events(n_particles: int, t_start_s: float, t_end_s: float, *, rate_per_s: float,
                 rng: np.random.Generator, mean_duration_s: float = 1.0, min_duration_s: float = 0.2,
                 factor_range: tuple[float, float] = (0.3, 0.7)) -> dict[str, np.ndarray]:
    """Random, non-overlapping blinks of each particle.

    Blink starts follow a Poisson process of rate ``rate_per_s`` (counted
    from the end of the previous blink); durations are
    ``max(Exp(mean_duration_s), min_duration_s)``; during a blink the PL is
    multiplied by a factor drawn uniformly from ``factor_range``.

    Returns
    -------
    dict of ndarray, each shape (n_blinks,)
        ``particle_index``, ``start_s``, ``end_s``, ``factor``, sorted by
        particle then time.
    """
    rows: list[tuple[int, float, float, float]] = []
    if rate_per_s > 0:
        for p in range(int(n_particles)):
            t = t_start_s + rng.exponential(1.0 / rate_per_s)
            while t < t_end_s:
                dur = max(rng.exponential(mean_duration_s), min_duration_s)
                rows.append((p, t, t + dur, rng.uniform(*factor_range)))
                t += dur + rng.exponential(1.0 / rate_per_s)
    arr = np.array(rows, dtype=float).reshape(-1, 4)
    return {"particle_index": arr[:, 0].astype(int), "start_s": arr[:, 1], "end_s": arr[:, 2],
            "factor": arr[:, 3]}
