"""The per-particle gallery: a card for every particle, drawn from the saved tables only (issue 15)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from plscope.report.gallery import gallery_html, particle_status


def _saved(n_particles: int, *, n_frames: int = 600, fields=(110.0, 130.0), seed: int = 0):
    """Tables shaped like the saved ones (particles.csv, kinetics.csv, traces, cycles, curves)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) * 0.2 + 0.1
    cycles = pd.DataFrame({"on_start_s": [10.0, 40.0, 70.0, 100.0], "on_end_s": [25.0, 55.0, 85.0, 115.0]})
    ids = np.arange(n_particles)
    particles = pd.DataFrame(
        {
            "particle_id": ids,
            "x_px": rng.uniform(5, 90, n_particles),
            "y_px": rng.uniform(5, 90, n_particles),
            "size_nm": rng.uniform(400, 1000, n_particles),
            "size_err_nm": 5.0,
            "excluded": ["touches_border<b>" if i == 1 else "" for i in ids],
        }
    )
    traces = pd.DataFrame(
        {
            "frame": np.tile(np.arange(n_frames), n_particles),
            "particle_id": np.repeat(ids, n_frames),
            "intensity": 100 + rng.normal(0, 3, n_frames * n_particles),
        }
    )
    rows, curves = [], []
    for pid in ids:
        for f in fields:
            used = not (pid in (1, 2) and f == fields[-1])
            rows.append(
                {
                    "particle_id": pid,
                    "field_kV_per_cm": f,
                    "tau_pol_s": 2.0,
                    "tau_pol_err_s": 0.1,
                    "tau_rec_s": np.nan if pid == 2 else 1.5,
                    "tau_rec_err_s": 0.1,
                    "switching_efficiency": 0.4,
                    "used": used,
                    "exclusion_reason": "" if used or pid == 1 else "polarization: only 1 usable cycle(s)",
                    "flags": "pol:shape_prior;trace_fit",
                }
            )
            for phase in ("pol", "rec"):
                tt = np.arange(0.1, 15, 0.2)
                y = 0.6 + 0.4 * np.exp(-tt / 2) if phase == "pol" else 1 - 0.4 * np.exp(-tt / 1.5)
                curves.append(
                    pd.DataFrame(
                        {
                            "particle_id": pid,
                            "field_kV_per_cm": f,
                            "phase": phase,
                            "t_s": tt,
                            "mean": y,
                            "fit": y,
                        }
                    )
                )
    image = rng.normal(100, 5, (96, 96))
    return dict(
        particles=particles,
        kinetics=pd.DataFrame(rows),
        traces=traces,
        frame_time_s=t,
        cycles=cycles,
        curves=pd.concat(curves, ignore_index=True),
        reference_image=image,
        pixel_size_nm=100.0,
    )


def test_a_card_for_every_particle_with_its_status():
    text = gallery_html(**_saved(4))
    cards = re.findall(r'<div class="card ([a-z-]+)" id="particle-(\d+)"', text)
    assert [int(p) for _, p in cards] == [0, 1, 2, 3]
    assert dict((int(p), s) for s, p in cards) == {0: "used", 1: "excluded", 2: "partly-used", 3: "used"}
    assert "touches_border&lt;b&gt;" in text and "<b>touches_border" not in text  # names are data
    assert "130 kV/cm: polarization: only 1 usable cycle(s)" in text
    assert text.count('<img class="thumb"') == 4 and text.count('<use href="#field-on"/>') == 4
    # one small panel per field and particle, each with the mean and the fit of both phases
    assert text.count('<svg class="curve"') == 8
    assert text.count('stroke-dasharray="30,20"') == 16


def test_particle_status():
    rows = pd.DataFrame(
        {"field_kV_per_cm": [1.0, 2.0], "used": [False, False], "exclusion_reason": ["a", ""]}
    )
    assert particle_status("", rows) == ("not used", "1 kV/cm: a")
    assert particle_status("border;quality", rows) == ("excluded", "border; quality")
    assert particle_status("", rows.iloc[:0])[0] == "not used"


@pytest.mark.parametrize("n", [200])
def test_two_hundred_particles_stay_small(n):
    text = gallery_html(**_saved(n, n_frames=1500, fields=(90.0, 100.0, 110.0, 120.0, 130.0)))
    assert len(re.findall(r'<div class="card [a-z-]+" id="particle-', text)) == n
    size = len(text.encode())
    assert size < 40_000 * n, size  # < 8 MB for 200 particles at 5 fields (measured: see docs/outputs.md)


def test_thumbnail_crop_equals_the_padded_image_and_is_nan_outside():
    from plscope.report.gallery import _crop

    img = np.random.default_rng(0).normal(size=(37, 53))
    for half in (0, 3, 20):
        pad = np.pad(img, half, mode="constant", constant_values=np.nan)
        for r, c in [(0, 0), (10, 40), (36, 52), (18, 0)]:
            expected = pad[r : r + 2 * half + 1, c : c + 2 * half + 1]
            np.testing.assert_array_equal(_crop(img, r, c, half), expected)
    far = _crop(img, 200, -100, 2)  # wholly outside: all NaN, the full size
    assert far.shape == (5, 5) and np.isnan(far).all()
