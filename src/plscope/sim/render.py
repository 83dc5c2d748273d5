"""Particle layout, image rendering, camera noise and rig nuisances.

Pure functions: arrays in, arrays out; random draws come from a
``numpy.random.Generator`` passed in. Coordinates follow
:mod:`plscope.tracking.models`: ``x`` is the column, ``y`` the row, the centre
of pixel ``i`` is at ``i`` and it covers ``[i - 0.5, i + 0.5]``.
"""

from __future__ import annotations

import numpy as np

from ..tracking.models import render_squares

#: half-width of the rendering window beyond the particle edge, in PSF sigmas
ROI_SIGMAS = 6.0
#: peak-to-peak fraction of the linear illumination gradient of the background
BACKGROUND_GRADIENT = 0.20
#: largest value of a uint16 camera pixel
ADU_MAX = 65535


def place_particles(
    side_px,
    shape: tuple[int, int],
    *,
    rng: np.random.Generator,
    clearance_px: float = 12.0,
    border_px: float = 14.0,
    max_tries: int = 2000,
    max_restarts: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
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
        raise ValueError(
            f"a {sides.max():.1f} px particle does not fit in a {rows}x{cols} image "
            f"with {border_px:g} px from the border"
        )
    order = np.argsort(-sides, kind="stable")  # largest first packs best
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
    raise ValueError(
        f"cannot place {n} particles of up to {sides.max():.1f} px in a {rows}x{cols} image "
        f"with {clearance_px:g} px clearance and {border_px:g} px border; "
        "use fewer or smaller particles or a larger image"
    )


def render_particles(
    shape: tuple[int, int], x_px, y_px, side_px, photons, *, sigma_px: float, out: np.ndarray | None = None
) -> np.ndarray:
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
    return render_squares(shape, x_px, y_px, side_px, photons, sigma_px, window_sigmas=ROI_SIGMAS, out=out)


def background_image(
    shape: tuple[int, int], mean_photons: float, *, angle_rad: float, gradient: float = BACKGROUND_GRADIENT
) -> np.ndarray:
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


def camera_counts(
    photons: np.ndarray,
    *,
    gain_adu_per_photon: float,
    offset_adu: float,
    read_noise_adu: float,
    rng: np.random.Generator | None,
) -> np.ndarray:
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


def blink_events(
    n_particles: int,
    t_start_s: float,
    t_end_s: float,
    *,
    rate_per_s: float,
    rng: np.random.Generator,
    mean_duration_s: float = 1.0,
    min_duration_s: float = 0.2,
    factor_range: tuple[float, float] = (0.3, 0.7),
) -> dict[str, np.ndarray]:
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
    return {
        "particle_index": arr[:, 0].astype(int),
        "start_s": arr[:, 1],
        "end_s": arr[:, 2],
        "factor": arr[:, 3],
    }


def _edge_gaps(
    x: float, y: float, side: float, xs: np.ndarray, ys: np.ndarray, sides: np.ndarray
) -> np.ndarray:
    """Edge-to-edge gaps (Chebyshev, pixels) between one square and others."""
    half = (side + sides) / 2
    return np.maximum(np.abs(x - xs) - half, np.abs(y - ys) - half)


def place_touching_partners(
    x_px,
    y_px,
    side_px,
    partner_side_px,
    shape: tuple[int, int],
    *,
    rng: np.random.Generator,
    gap_range_px: tuple[float, float] = (1.0, 3.0),
    clearance_px: float = 12.0,
    border_px: float = 2.0,
    max_tries: int = 200,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of particles that each touch one existing particle.

    Partner ``k`` is put beside a base particle (left, right, above or below,
    at random), with an edge-to-edge gap drawn uniformly from
    ``gap_range_px`` and a random offset along the shared edge of up to a
    quarter of the smaller side. It keeps ``clearance_px`` from every other
    particle (partners included) and ``border_px`` from the image border.
    Bases are tried in random order; each base gets at most one partner.

    Parameters
    ----------
    x_px, y_px, side_px : array_like, shape (n,)
        Existing particles (centres and sides, pixels).
    partner_side_px : array_like, shape (k,)
        Sides of the partners to place.
    shape : (rows, cols)
    rng : numpy.random.Generator
    gap_range_px, clearance_px, border_px, max_tries
        Geometry of the pairs and the number of positions tried per base.

    Returns
    -------
    base_index, x_px, y_px : ndarray, shape (k,)
        The base particle of each partner and the partner centres.

    Raises
    ------
    ValueError
        If not every partner can be placed.
    """
    xs = np.asarray(x_px, float).ravel().copy()
    ys = np.asarray(y_px, float).ravel().copy()
    ss = np.asarray(side_px, float).ravel().copy()
    partners = np.asarray(partner_side_px, float).ravel()
    rows, cols = shape
    n0 = xs.size
    bases = list(rng.permutation(n0))
    out_base, out_x, out_y = [], [], []
    for s in partners:
        placed = False
        while bases and not placed:
            b = int(bases.pop(0))
            for _ in range(max_tries):
                direction = int(rng.integers(4))
                gap = rng.uniform(*gap_range_px)
                along = rng.uniform(-0.25, 0.25) * min(s, ss[b])
                reach = (ss[b] + s) / 2 + gap
                dx, dy = ((reach, along), (-reach, along), (along, reach), (along, -reach))[direction]
                x, y = xs[b] + dx, ys[b] + dy
                if not (
                    -0.5 + border_px + s / 2 <= x <= cols - 0.5 - border_px - s / 2
                    and -0.5 + border_px + s / 2 <= y <= rows - 0.5 - border_px - s / 2
                ):
                    continue
                gaps = _edge_gaps(x, y, s, xs, ys, ss)
                gaps[b] = np.inf
                if np.all(gaps >= clearance_px):
                    out_base.append(b)
                    out_x.append(x)
                    out_y.append(y)
                    xs, ys, ss = np.append(xs, x), np.append(ys, y), np.append(ss, s)
                    placed = True
                    break
        if not placed:
            raise ValueError(
                f"cannot place {partners.size} touching partner(s) in a {rows}x{cols} image "
                f"with {clearance_px:g} px clearance; use fewer pairs or a larger image"
            )
    return np.asarray(out_base, int), np.asarray(out_x, float), np.asarray(out_y, float)


def place_border_particles(
    x_px,
    y_px,
    side_px,
    border_side_px,
    shape: tuple[int, int],
    *,
    rng: np.random.Generator,
    clearance_px: float = 12.0,
    max_tries: int = 2000,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of particles cut by the image border.

    Each particle's centre lies on a random edge of the image such that
    between half of it and all of it is inside (its outer edge between the
    centre line and the image border), at a random position along the edge,
    keeping ``clearance_px`` from every other particle.

    Parameters
    ----------
    x_px, y_px, side_px : array_like, shape (n,)
        Existing particles.
    border_side_px : array_like, shape (k,)
        Sides of the border particles.
    shape : (rows, cols)
    rng : numpy.random.Generator
    clearance_px : float
    max_tries : int

    Returns
    -------
    x_px, y_px : ndarray, shape (k,)

    Raises
    ------
    ValueError
        If not every particle can be placed.
    """
    xs = np.asarray(x_px, float).ravel().copy()
    ys = np.asarray(y_px, float).ravel().copy()
    ss = np.asarray(side_px, float).ravel().copy()
    rows, cols = shape
    out_x, out_y = [], []
    for s in np.asarray(border_side_px, float).ravel():
        for _ in range(max_tries):
            edge = int(rng.integers(4))
            depth = rng.uniform(0.0, s / 2)  # centre inside the image by this much
            if edge in (0, 1):  # left / right edge, along y
                x = -0.5 + depth if edge == 0 else cols - 0.5 - depth
                y = rng.uniform(-0.5 + s / 2, rows - 0.5 - s / 2)
            else:  # top / bottom edge, along x
                y = -0.5 + depth if edge == 2 else rows - 0.5 - depth
                x = rng.uniform(-0.5 + s / 2, cols - 0.5 - s / 2)
            if xs.size == 0 or np.all(_edge_gaps(x, y, s, xs, ys, ss) >= clearance_px):
                out_x.append(x)
                out_y.append(y)
                xs, ys, ss = np.append(xs, x), np.append(ys, y), np.append(ss, s)
                break
        else:
            raise ValueError(
                f"cannot place a {s:.1f} px particle at the border of a {rows}x{cols} image "
                f"with {clearance_px:g} px clearance"
            )
    return np.asarray(out_x, float), np.asarray(out_y, float)
