"""The simulator's crowded-field options (used by the tracking tests)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from plscope.sim import ImagingSimParams, SimulationError, draw_population, frame_photons, ground_truth
from plscope.sim.render import place_border_particles, place_touching_partners

SMALL = ImagingSimParams(
    n_particles=12,
    image_shape=(128, 128),
    fields_kV_per_cm=(130.0,),
    cycles_per_level=1,
    period_s=10.0,
    lead_in_s=2.0,
)


def test_defaults_leave_the_draws_unchanged():
    # explicitly passing the defaults changes nothing, and no "crowding" record appears
    same = dataclasses.replace(
        SMALL,
        clearance_px=12.0,
        border_margin_px=14.0,
        touching_pairs=0,
        border_particles=0,
        brightness_spread=0.0,
        blinking_fraction=1.0,
        blink_depth_range=(0.3, 0.7),
    )
    a, b = draw_population(SMALL, seed=5), draw_population(same, seed=5)
    for name in ("x_px", "y_px", "size_nm", "mobility_cm2_per_Vs", "tau_rec_s", "se_at_130", "drift_px"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.brightness_factor is None and a.role is None
    assert "crowding" not in ground_truth(SMALL, a, seed=5)


def test_crowded_population():
    p = dataclasses.replace(
        SMALL,
        clearance_px=6.0,
        border_margin_px=8.0,
        touching_pairs=4,
        border_particles=3,
        brightness_spread=0.3,
        blinking_fraction=0.5,
        blink_rate_per_s=0.5,
        blink_depth_range=(0.0, 0.1),
    )
    pop = draw_population(p, seed=2)
    truth = ground_truth(p, pop, seed=2)
    assert pop.n_particles == p.n_particles_total == 19
    c = truth["crowding"]
    assert len(c["touching_pairs"]) == 4
    assert all(1.0 <= g <= 3.0 for g in c["touching_gap_px"])
    inside = np.asarray(c["inside_fraction"])
    assert np.all((inside[c["border_particle_ids"]] >= 0.5) & (inside[c["border_particle_ids"]] < 1.0))
    others = np.setdiff1d(np.arange(19), c["border_particle_ids"])
    np.testing.assert_allclose(inside[others], 1.0, atol=1e-12)
    assert len(c["blinking_particle_ids"]) == 10  # round(0.5 * 19)
    assert {b["particle_id"] for b in truth["blinks"]} <= set(c["blinking_particle_ids"])
    assert all(0.0 <= b["factor"] <= 0.1 for b in truth["blinks"])
    # ids in raster order, partners pointing at each other
    np.testing.assert_array_equal(np.lexsort((pop.x_px, pop.y_px)), np.arange(19))
    for a, b in c["touching_pairs"]:
        assert pop.partner[a] == b and pop.partner[b] == a
    # brightness factors scale the photons
    photons = frame_photons(pop, p)
    bright = np.array([q["brightness_photons"] for q in truth["particles"]])
    np.testing.assert_allclose(bright, p.photons_per_um2 * (pop.size_nm * 1e-3) ** 2 * pop.brightness_factor)
    assert photons.max(axis=1) == pytest.approx(bright, rel=0.05)


def test_placement_helpers_and_errors():
    rng = np.random.default_rng(0)
    base, x, y = place_touching_partners(
        [30.0], [30.0], [6.0], [5.0], (64, 64), rng=rng, gap_range_px=(2.0, 2.0)
    )
    half = (6.0 + 5.0) / 2
    assert base.tolist() == [0]
    assert max(abs(x[0] - 30.0), abs(y[0] - 30.0)) - half == pytest.approx(2.0)
    xb, yb = place_border_particles([], [], [], [6.0, 6.0], (64, 64), rng=rng)
    assert np.all(np.minimum.reduce([xb + 0.5, yb + 0.5, 63.5 - xb, 63.5 - yb]) <= 3.0)
    with pytest.raises(ValueError, match="touching"):
        place_touching_partners([32.0], [32.0], [60.0], [60.0], (64, 64), rng=rng)
    with pytest.raises(SimulationError, match="touching_pairs"):
        dataclasses.replace(SMALL, touching_pairs=20)
    with pytest.raises(SimulationError, match="blinking_fraction"):
        dataclasses.replace(SMALL, blinking_fraction=1.5)
