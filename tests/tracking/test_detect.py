"""Detection of particles on noisy frames with an illumination gradient."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from plscope.errors import PlscopeError
from plscope.tracking import PARTICLE_COLUMNS, detect_particles, estimate_background, reference_image


def assert_all_found(synth, scene, table, *, max_err_px):
    """Every true particle matched by exactly one detection, within max_err_px."""
    assert len(table) == scene.n, f"{len(table)} detections for {scene.n} particles"
    idx, dist = synth.match(scene.x_px, scene.y_px, table["x_px"], table["y_px"])
    assert (idx >= 0).all(), f"missed particles at {np.flatnonzero(idx < 0)}"
    assert np.unique(idx).size == scene.n, "a detection matched two particles"
    assert dist.max() < max_err_px, f"centroid error {dist.max():.3f} px"
    return idx, dist


# ---------------------------------------------------------------- reference
def test_reference_image_is_mean_of_first_frames_numpy_and_dask(rng):
    stack = rng.integers(90, 200, size=(50, 12, 10), dtype=np.uint16)
    expected = stack[:20].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(reference_image(stack, n_frames=20), expected, rtol=1e-12)
    lazy = da.from_array(stack, chunks=(16, 12, 10))  # chunks do not divide 20 or 50
    out = reference_image(lazy, n_frames=20)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    # shorter movie than asked: all frames
    np.testing.assert_allclose(reference_image(lazy, n_frames=64), stack.mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("bad", [np.zeros((10, 10)), np.zeros((0, 10, 10))])
def test_reference_image_rejects_bad_stacks(bad):
    with pytest.raises(PlscopeError):
        reference_image(bad)


# ---------------------------------------------------------------- background
def test_background_follows_gradient_to_the_corners(synth, rng):
    # regression: a 3x3 median filter over the tile grid and clamped
    # interpolation beyond the outer tile centres bent the gradient near the
    # corners, which produced false detections there on averaged images.
    lam = synth.background_photons()
    img = synth.expose(lam, rng, n_avg=64)
    truth = synth.OFFSET_ADU + synth.GAIN * lam
    bg, noise, _ = estimate_background(img)
    expected_noise = np.sqrt(synth.GAIN**2 * lam.mean() + synth.READ_NOISE_ADU**2) / 8
    assert noise == pytest.approx(expected_noise, rel=0.1)
    assert np.abs(bg - truth).max() < 3 * noise


# ---------------------------------------------------------------- detection
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finds_all_16_particles_on_a_single_noisy_frame(synth, seed):
    rng = np.random.default_rng(seed)
    scene = synth.make_scene(rng)
    img = synth.render_image(scene, rng, as_uint16=True)
    table, labels = detect_particles(img)
    assert tuple(table.columns) == PARTICLE_COLUMNS
    assert_all_found(synth, scene, table, max_err_px=0.3)
    # labels: particle_id + 1 on each region
    assert labels.dtype == np.int32 and labels.max() == len(table)
    ids = labels[np.round(table["y_px"]).astype(int), np.round(table["x_px"]).astype(int)] - 1
    np.testing.assert_array_equal(ids, table["particle_id"])
    assert not table["touches_border"].any()


@pytest.mark.parametrize("seed", [3, 4])
def test_finds_all_16_particles_on_the_reference_image(synth, seed):
    rng = np.random.default_rng(seed)
    scene = synth.make_scene(rng)
    img = synth.render_image(scene, rng, n_avg=64)
    table, _ = detect_particles(img)
    _, dist = assert_all_found(synth, scene, table, max_err_px=0.1)
    assert np.median(dist) < 0.05


@pytest.mark.parametrize("gap_px, sides_px", [(2.0, (8.0, 8.0)), (2.0, (10.0, 5.0)), (1.0, (8.0, 8.0))])
@pytest.mark.parametrize("n_avg", [1, 64])
def test_touching_particles_are_split(synth, gap_px, sides_px, n_avg):
    rng = np.random.default_rng(11)
    s = np.array(sides_px)
    x1 = 60.3
    scene = synth.Scene(np.array([x1, x1 + s.sum() / 2 + gap_px]), np.array([70.6, 71.4]), s, 200.0 * s**2)
    img = synth.render_image(scene, rng, n_avg=n_avg)
    table, labels = detect_particles(img)
    assert_all_found(synth, scene, table, max_err_px=0.35)
    # the two regions touch: it was a split, not two separate blobs
    a, b = labels[:, :-1], labels[:, 1:]
    assert np.any((a == 1) & (b == 2)) or np.any((a == 2) & (b == 1))


def test_bright_flat_topped_particle_is_not_split_by_noise(synth):
    # a 13 px square has a flat top with shot noise bumps: one detection only
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        scene = synth.Scene(np.array([80.3]), np.array([79.6]), np.array([13.0]), np.array([34000.0]))
        table, _ = detect_particles(synth.render_image(scene, rng))
        assert len(table) == 1


def test_border_particles_flagged_and_optionally_excluded(synth, rng):
    scene = synth.Scene(
        np.array([2.0, 80.0]), np.array([60.0, 80.0]), np.array([8.0, 8.0]), np.array([12800.0, 12800.0])
    )
    img = synth.render_image(scene, rng, n_avg=64)
    table, _ = detect_particles(img)
    assert len(table) == 2
    assert table.sort_values("x_px")["touches_border"].tolist() == [True, False]
    kept, labels = detect_particles(img, exclude_border_px=3)
    assert len(kept) == 1 and kept["x_px"].iloc[0] == pytest.approx(80.0, abs=0.1)
    assert labels.max() == 1 and kept["particle_id"].tolist() == [0]


def test_small_objects_are_dropped(synth, rng):
    img = synth.expose(synth.background_photons(), rng, n_avg=64)
    img[40, 40] += 50.0  # a hot pixel: one pixel above threshold
    table, labels = detect_particles(img, min_area_px=4)
    assert len(table) == 0 and labels.max() == 0
    assert list(table.columns) == list(PARTICLE_COLUMNS)


def test_detect_rejects_bad_input():
    with pytest.raises(PlscopeError, match="2-D"):
        detect_particles(np.zeros((3, 16, 16)))
    with pytest.raises(PlscopeError, match="threshold_sigma"):
        detect_particles(np.zeros((16, 16)), threshold_sigma=0)
