"""The independent forward model (validation/forward) and the analysis's particle model.

``validation.forward`` renders particles by brute force (supersampled shape x
sampled PSF, binned); the analysis fits the closed form of
``plscope.tracking.models``. For an axis-aligned square under a Gaussian PSF
both describe the same image, so they must agree to the brute force's
discretization error: (fine cell / sigma)^2 / 24 ~ 3e-4 of the peak for
10 nm cells and sigma = 120 nm; the tolerance is 2e-3 of the peak.
"""

from __future__ import annotations

import numpy as np
import pytest
from validation.forward.imaging import MovieSpec, ParticleSpec, expected_image
from validation.forward.pl_response import exposure_pl, quenched_fraction
from validation.forward.shapes import area_nm2


@pytest.mark.parametrize("side_nm, x, y", [(600.0, 20.3, 19.7), (250.0, 18.0, 21.45), (1100.0, 20.5, 20.0)])
def test_box_profile_matches_brute_force_square(side_nm, x, y):
    from plscope.tracking.models import blurred_square

    spec = MovieSpec(
        shape_px=(40, 40), pixel_size_nm=100.0, psf={"kind": "gaussian", "sigma_nm": 120.0}, supersample=10
    )
    p = ParticleSpec(x, y, {"kind": "square", "side_nm": side_nm, "angle_deg": 0.0}, photons=1.0e4)
    brute = expected_image(spec, p)
    model = blurred_square((40, 40), x, y, side_nm / 100.0, 1.2, total=1.0e4)
    assert brute.sum() == pytest.approx(1.0e4, rel=1e-6)
    assert np.max(np.abs(brute - model)) <= 2e-3 * model.max()


def test_rotated_square_differs_from_the_axis_aligned_model():
    """The model is axis-aligned: a square at 45 degrees is a different image (shape matters)."""
    from plscope.tracking.models import blurred_square

    spec = MovieSpec(shape_px=(40, 40), psf={"kind": "gaussian", "sigma_nm": 120.0}, supersample=10)
    p = ParticleSpec(20.0, 20.0, {"kind": "square", "side_nm": 900.0, "angle_deg": 45.0}, photons=1.0e4)
    brute = expected_image(spec, p)
    model = blurred_square((40, 40), 20.0, 20.0, 9.0, 1.2, total=1.0e4)
    assert np.max(np.abs(brute - model)) > 0.05 * model.max()


def test_shape_areas():
    assert area_nm2({"kind": "square", "side_nm": 500.0, "angle_deg": 30.0}) == pytest.approx(2.5e5, rel=5e-3)
    assert area_nm2({"kind": "rectangle", "a_nm": 600.0, "b_nm": 400.0}) == pytest.approx(2.4e5, rel=5e-3)
    assert area_nm2({"kind": "disc", "diameter_nm": 500.0}) == pytest.approx(np.pi * 250.0**2, rel=5e-3)
    r = 100.0
    rounded = 500.0**2 - (4 - np.pi) * r * r
    assert area_nm2({"kind": "rounded_square", "side_nm": 500.0, "radius_nm": r}) == pytest.approx(
        rounded, rel=5e-3
    )


def test_pl_response_drop_and_recovery():
    on = [(10.0, 30.0, 100.0), (50.0, 70.0, 100.0)]
    t = np.array([5.0, 10.0 + 2.0, 29.999, 30.0 + 3.0, 49.999])
    q = quenched_fraction(t, on, se=0.4, tau_pol_s={100.0: 2.0}, tau_rec_s=3.0)
    q_end = 0.4 * (1 - np.exp(-20.0 / 2.0))
    expected = [0.0, 0.4 * (1 - np.exp(-1.0)), q_end, q_end * np.exp(-1.0), q_end * np.exp(-20.0 / 3.0)]
    np.testing.assert_allclose(q, expected, rtol=1e-3, atol=1e-6)
    pl = exposure_pl(np.array([0.0, 29.0]), 0.5, on, se=0.4, tau_pol_s={100.0: 2.0}, tau_rec_s=3.0)
    assert pl[0] == 1.0 and pl[1] == pytest.approx(0.6, abs=1e-3)
