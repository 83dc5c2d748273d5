"""Rectangles report both side lengths (issue 11), on images of the independent forward model.

Tolerance: 5 % per side. The moments of the particle's own light are exact
for a rectangle once the PSF is removed; what is left is photon noise
(~1 % at these brightnesses) and the neighbours' masked tails.
"""

from __future__ import annotations

import numpy as np
from validation.forward.imaging import MovieSpec, ParticleSpec, render_movie


def test_rectangle_sides_at_any_angle():
    from plscope.tracking import find_particles

    rng = np.random.default_rng(7)
    spec = MovieSpec(shape_px=(80, 80), psf={"kind": "gaussian", "sigma_nm": 120.0})
    truth = []
    particles = []
    for k, (x, y) in enumerate([(20, 20), (58, 22), (22, 58), (58, 58)]):
        b = 500.0 + 80.0 * k
        a = 1.4 * b
        ang = 25.0 + 37.0 * k
        particles.append(
            ParticleSpec(x + 0.3, y - 0.2, {"kind": "rectangle", "a_nm": a, "b_nm": b, "angle_deg": ang}, 2e5)
        )
        truth.append((a, b))
    movie, _ = render_movie(spec, particles, np.ones((len(particles), 1)), rng)
    found, _, _ = find_particles(movie[0].astype(float), pixel_size_nm=100.0, psf_sigma_nm=120.0)
    assert len(found) == 4
    for (x, y), (a, b) in zip([(20, 20), (58, 22), (22, 58), (58, 58)], truth):
        row = found.iloc[int(np.argmin(np.hypot(found["x_px"] - x, found["y_px"] - y)))]
        assert abs(row["side_long_nm"] / a - 1) < 0.05, (row["side_long_nm"], a)
        assert abs(row["side_short_nm"] / b - 1) < 0.05, (row["side_short_nm"], b)
