"""Segmentation refined by the fit: shoulders, extended particles, non-square shapes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from plscope.tracking import SIZE_COLUMNS, detect_particles, find_particles, measure_sizes


def test_dim_particle_on_the_shoulder_of_a_bright_one_is_split_by_the_residual(synth):
    # a 450 nm particle 160 nm from a 1 um one, 11x dimmer: no dip, no local maximum
    rng = np.random.default_rng(8)
    s = np.array([10.0, 4.5])
    x0 = 70.3
    scene = synth.Scene(
        np.array([x0, x0 + (s[0] + s[1]) / 2 + 1.6]), np.array([80.4, 80.9]), s, np.array([24000.0, 2200.0])
    )
    img = synth.render_image(scene, rng, n_avg=64)
    plain, _ = detect_particles(img)
    assert len(plain) == 1  # the intensity watershed cannot see it
    parts, labels, sigma_nm = find_particles(img, pixel_size_nm=synth.PIXEL_NM, psf_sigma_nm=130.0)
    assert len(parts) == 2 and parts.attrs["n_split_rounds"] == 1
    idx, dist = synth.match(scene.x_px, scene.y_px, parts["x_px"], parts["y_px"], max_dist=1.0)
    assert (idx >= 0).all() and dist.max() < 0.15
    rel = parts["size_nm"].to_numpy()[idx] / (scene.side_px * synth.PIXEL_NM) - 1
    assert np.abs(rel).max() < 0.08
    assert (parts["group_size"] == 2).all()  # fitted jointly
    assert labels.max() == 2 and set(np.unique(labels)) == {0, 1, 2}


def test_isolated_particles_need_no_refinement(synth):
    rng = np.random.default_rng(4)
    scene = synth.make_scene(rng)
    img = synth.render_image(scene, rng, n_avg=64)
    parts, _, _ = find_particles(img, pixel_size_nm=synth.PIXEL_NM, psf_sigma_nm=130.0)
    assert len(parts) == scene.n and parts.attrs["n_split_rounds"] == 0
    assert list(parts.columns[:4]) == ["particle_id", "x_px", "y_px", "size_nm"]
    assert set(SIZE_COLUMNS) <= set(parts.columns)


@pytest.mark.parametrize("seed", [0, 1])
def test_extended_particles_of_several_micrometres(synth, seed):
    # 2-5 um squares (20-50 px at 100 nm/px) on a 256 x 256 field, with small neighbours
    rng = np.random.default_rng(seed)
    shape = (256, 256)
    sides = np.array([20.0, 32.0, 50.0, 5.0, 8.0])
    x = np.array([50.0, 190.0, 80.0, 200.0, 150.0]) + rng.uniform(-2, 2, 5)
    y = np.array([50.0, 60.0, 180.0, 190.0, 140.0]) + rng.uniform(-2, 2, 5)
    total = 30.0 * sides**2 * rng.uniform(0.8, 1.2, 5)  # dimmer per area: 20-40 photons/px on top
    scene = synth.Scene(x, y, sides, total, shape)
    lam = synth.background_photons(shape) + synth.render_particles(scene)
    img = synth.expose(lam, rng, n_avg=64)
    parts, _, _ = find_particles(img, pixel_size_nm=synth.PIXEL_NM)  # sigma estimated from the data
    assert len(parts) == scene.n  # big flat tops are not split
    idx, dist = synth.match(scene.x_px, scene.y_px, parts["x_px"], parts["y_px"], max_dist=1.0)
    assert (idx >= 0).all() and dist.max() < 0.1
    rel = parts["size_nm"].to_numpy()[idx] / (sides * synth.PIXEL_NM) - 1
    assert np.abs(rel).max() < 0.08
    assert np.abs(rel[:3]).max() < 0.01  # the big ones: to 1 %
    assert parts.attrs["psf_sigma_nm"] == pytest.approx(130.0, rel=0.05)
    assert not parts["near_diffraction_limit"].to_numpy()[idx][:3].any()
    # equivalent diameter of a square: 2.3 % above the disk of equal area (see measure_sizes)
    d_eq = parts["equivalent_diameter_nm"].to_numpy()[idx][:3]
    expected = 2 * sides[:3] * synth.PIXEL_NM / np.sqrt(np.pi)
    np.testing.assert_allclose(d_eq / expected, 1.023, atol=0.015)


def _shape_image(shape, kind, x0, y0, a, b, angle, total, sigma_px, supersample=8):
    """Blurred, pixel-integrated uniform ellipse or rectangle (half-axes a, b, rotated by angle)."""
    ss = supersample
    yy, xx = np.mgrid[0 : shape[0] * ss, 0 : shape[1] * ss] / ss - 0.5 + 0.5 / ss
    c, s = np.cos(angle), np.sin(angle)
    u = (xx - x0) * c + (yy - y0) * s
    v = -(xx - x0) * s + (yy - y0) * c
    if kind == "ellipse":
        inside, area = (u / a) ** 2 + (v / b) ** 2 <= 1, np.pi * a * b
    else:
        inside, area = (np.abs(u) <= a) & (np.abs(v) <= b), 4 * a * b
    img = inside.reshape(shape[0], ss, shape[1], ss).mean(axis=(1, 3))
    img = ndimage.gaussian_filter(img, sigma_px, mode="constant", truncate=6.0)
    return img * total / img.sum(), 2 * np.sqrt(area / np.pi)


def test_equivalent_diameter_of_non_square_particles(synth):
    shape = (160, 160)
    rng = np.random.default_rng(1)
    specs = [
        ("ellipse", 40.3, 40.2, 5, 5, 0.0, 20000, 0.0),  # disk: exact
        ("ellipse", 100.6, 45, 9, 4, 0.5, 30000, 0.0),  # ellipse: exact
        ("rect", 45, 110, 8, 3, 0.3, 25000, 0.023),  # rectangle: +2.3 %
        ("ellipse", 115, 115, 14, 10, 1.2, 60000, 0.0),
    ]
    lam = synth.background_photons(shape).copy()
    expected = []
    for kind, x0, y0, a, b, angle, total, bias in specs:
        img, d = _shape_image(shape, kind, x0, y0, a, b, angle, total, synth.SIGMA_PX)
        lam += img
        expected.append(d * (1 + bias))
    img = synth.expose(lam, rng, n_avg=64)
    table, labels = detect_particles(img)
    sizes, _ = measure_sizes(img, table, pixel_size_nm=synth.PIXEL_NM, psf_sigma_nm=130.0, labels=labels)
    assert len(sizes) == len(specs)
    for (kind, x0, y0, a, b, angle, *_), d in zip(specs, expected):
        row = sizes.iloc[int(np.argmin(np.hypot(sizes["x_px"] - x0, sizes["y_px"] - y0)))]
        assert row["equivalent_diameter_nm"] == pytest.approx(d * synth.PIXEL_NM, rel=0.015), kind
        assert row["aspect_ratio"] == pytest.approx(max(a, b) / min(a, b), rel=0.05), kind
        if a != b:
            diff = (row["orientation_deg"] - np.degrees(angle) + 90) % 180 - 90
            assert abs(diff) < 3.0, kind
