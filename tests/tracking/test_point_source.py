"""A diffraction-limited particle (point source) is a normal case, not a failed fit (issue 11).

The image is a pixel-integrated Gaussian spot written here from its definition
(erf differences), with Poisson noise on a flat background; a cluster of
such spots is the real bead frame's case (tests/realdata).
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from plscope.tracking import find_particles


def _spot(shape, x0, y0, sigma_px, total):
    def axis(n, c):
        e = (np.arange(n + 1) - 0.5 - c) / (np.sqrt(2.0) * sigma_px)
        return 0.5 * np.diff(erf(e))

    return total * np.outer(axis(shape[0], y0), axis(shape[1], x0))


def test_point_sources_fitted_jointly_give_positions_and_an_upper_bound():
    rng = np.random.default_rng(3)
    spots = [(9.3, 10.6), (16.1, 13.2), (22.7, 21.4)]  # ~7 px apart: fitted jointly
    expected = sum(_spot((32, 32), x, y, 1.2, 20000.0) for x, y in spots) + 50.0
    image = rng.poisson(expected).astype(float) + 100.0
    sizes, _, _ = find_particles(image, pixel_size_nm=100.0, psf_sigma_nm=120.0)
    assert len(sizes) == 3
    assert sizes["size_fit_ok"].all(), sizes["fit_message"].tolist()
    assert not sizes["size_fallback"].any()
    assert sizes["near_diffraction_limit"].all()
    # the size is not resolved: NaN (side collapsed) or a small value, always with an upper bound
    assert np.all(np.isfinite(sizes["size_upper_bound_nm"]))
    assert np.all(sizes["size_upper_bound_nm"] >= 2 * 120.0 - 1e-6)
    found = sizes[["x_px", "y_px"]].to_numpy(float)
    d = np.hypot(
        found[:, None, 0] - np.array(spots)[None, :, 0], found[:, None, 1] - np.array(spots)[None, :, 1]
    )
    assert np.all(d.min(axis=0) < 0.2)
