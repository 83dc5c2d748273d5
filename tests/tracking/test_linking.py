"""Linking with memory, and the field-on / field-off centroid displacement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plscope.errors import PlscopeError
from plscope.tracking import (
    CENTROID_SHIFT_COLUMNS,
    centroid_shift,
    detect_particles,
    extract_traces,
    filter_tracks,
    link_features,
    link_particle_centroids,
    measure_sizes,
    reference_image,
)


def brownian_features(rng, *, n=25, n_frames=60, step_px=0.6, dark_prob=0.05):
    """Random walkers >= 15 px apart, missing in some frames (blinks of 1-3 frames)."""
    start = np.stack(np.meshgrid(np.arange(5) * 20.0 + 10, np.arange(5) * 20.0 + 10), -1).reshape(-1, 2)[:n]
    pos = start[None] + np.cumsum(rng.normal(0, step_px, (n_frames, n, 2)), axis=0)
    rows = []
    for i in range(n):
        dark = np.zeros(n_frames, bool)
        k = 0
        while k < n_frames:
            if rng.random() < dark_prob:
                dark[k : k + int(rng.integers(1, 4))] = True  # 1-3 dark frames
                k += 4
            k += 1
        for t in np.flatnonzero(~dark):
            rows.append((t, pos[t, i, 0], pos[t, i, 1], i))
    f = pd.DataFrame(rows, columns=["frame", "x_px", "y_px", "true_id"]).sample(frac=1.0, random_state=1)
    return f.reset_index(drop=True)


def test_link_with_memory_bridges_blinks(rng):
    f = brownian_features(rng)
    tracks = link_features(f, search_range_px=4.0, memory=3)
    assert tracks["frame"].is_monotonic_increasing and tracks["track_id"].dtype == np.int64
    # one trajectory per walker, each walker's features in one trajectory
    assert tracks["track_id"].nunique() == 25
    assert (tracks.groupby("true_id")["track_id"].nunique() == 1).all()
    assert (tracks.groupby("track_id")["true_id"].nunique() == 1).all()
    # without memory, every blink breaks the trajectory
    no_memory = link_features(f, search_range_px=4.0, memory=0)
    assert no_memory["track_id"].nunique() > 40
    assert filter_tracks(no_memory, min_length=60)["track_id"].nunique() < 25
    assert filter_tracks(tracks, min_length=30)["track_id"].nunique() == 25


def test_link_rejects_bad_input():
    with pytest.raises(PlscopeError, match="missing"):
        link_features(pd.DataFrame({"frame": [0]}), search_range_px=2.0)
    with pytest.raises(PlscopeError, match="search_range"):
        link_features(pd.DataFrame({"frame": [0], "x_px": [1.0], "y_px": [1.0]}), search_range_px=0)
    assert len(link_features(pd.DataFrame({"frame": [], "x_px": [], "y_px": []}), search_range_px=2.0)) == 0


def cycles_table(on_start, period_s, n_cycles, field=130.0):
    on = on_start + period_s * np.arange(n_cycles)
    return pd.DataFrame(
        {
            "cycle": np.arange(n_cycles),
            "field_kV_per_cm": field,
            "on_start_s": on,
            "on_end_s": on + period_s / 2,
            "off_end_s": on + period_s,
        }
    )


def test_centroid_shift_with_drift_and_noise(rng):
    # 3 particles; particle 1 moves by (+0.3, -0.1) px while the field is on; a linear drift of 2 px
    dt = 0.2
    n_frames = 250
    t = np.arange(n_frames) * dt
    cycles = cycles_table(5.0, 8.0, 5)
    on = np.zeros(n_frames, bool)
    for _, c in cycles.iterrows():
        on |= (t >= c["on_start_s"]) & (t < c["on_end_s"])
    drift = np.column_stack([2.0 * t / t[-1], -1.0 * t / t[-1]])
    rows = []
    for pid, (sx, sy) in enumerate([(0.0, 0.0), (0.3, -0.1), (0.0, 0.0)]):
        x = 50.0 * pid + drift[:, 0] + sx * on + rng.normal(0, 0.05, n_frames)
        y = 20.0 + drift[:, 1] + sy * on + rng.normal(0, 0.05, n_frames)
        rows.append(pd.DataFrame({"frame": np.arange(n_frames), "particle_id": pid, "x_px": x, "y_px": y}))
    traces = pd.concat(rows).sort_values(["frame", "particle_id"]).reset_index(drop=True)
    out = centroid_shift(traces, cycles, t, exposure_s=0.1, pixel_size_nm=100.0)
    assert tuple(out.columns) == CENTROID_SHIFT_COLUMNS and len(out) == 3
    moved = out.set_index("particle_id").loc[1]
    assert moved["shift_x_px"] == pytest.approx(0.3, abs=0.02)
    assert moved["shift_y_px"] == pytest.approx(-0.1, abs=0.02)
    assert moved["shift_nm"] == pytest.approx(100.0 * np.hypot(0.3, 0.1), abs=2.0)
    assert moved["n_cycles"] == 5 and moved["shift_err_px"] < 0.01
    still = out[out["particle_id"] != 1]
    # the linear drift cancels in the symmetric ON - (OFF before + OFF after) / 2 difference
    assert (still["shift_px"] < 4 * still["shift_err_px"] + 0.01).all()
    with pytest.raises(PlscopeError, match="frame_time_s"):
        centroid_shift(traces, cycles, t[:100])


def test_centroid_shift_measured_on_a_movie(synth):
    # particles 0 and 2 shift by 0.25 px in x while the field is on (optical-centroid shift),
    # on top of a common 1.5 px stage drift; the pipeline's tools measure it from the frames
    rng = np.random.default_rng(5)
    scene = synth.make_scene(rng, n_side=3)
    dt, n_frames = 0.2, 120
    t = np.arange(n_frames) * dt
    cycles = cycles_table(2.0, 4.0, 5)
    on = np.zeros(n_frames, bool)
    for _, c in cycles.iterrows():
        on |= (t >= c["on_start_s"]) & (t < c["on_end_s"])
    moving = np.zeros(scene.n)
    moving[[0, 2]] = 0.25
    bg = synth.background_photons(scene.shape)
    frames = np.empty((n_frames,) + scene.shape, np.uint16)
    for k in range(n_frames):
        shifted = synth.Scene(
            scene.x_px + 1.5 * k / n_frames + moving * on[k],
            scene.y_px,
            scene.side_px,
            scene.total_photons,
            scene.shape,
        )
        frames[k] = synth.expose(bg + synth.render_particles(shifted), rng, as_uint16=True)
    ref = reference_image(frames, n_frames=16)
    table, labels = detect_particles(ref)
    sizes, _ = measure_sizes(ref, table, pixel_size_nm=synth.PIXEL_NM, psf_sigma_nm=130.0, labels=labels)
    traces = extract_traces(frames, sizes, labels=labels, drift="estimate", centroids=True)
    out = centroid_shift(traces, cycles, t, exposure_s=0.1).set_index("particle_id")
    idx, _ = synth.match(scene.x_px, scene.y_px, sizes["x_px"], sizes["y_px"], max_dist=3.0)
    got = out.loc[sizes["particle_id"].to_numpy()[idx], "shift_x_px"].to_numpy()
    np.testing.assert_allclose(got, moving, atol=0.03)
    err = out.loc[sizes["particle_id"].to_numpy()[idx], "shift_err_px"].to_numpy()
    assert np.all(np.abs(got - moving) < 5 * err + 0.01)
    # identity: every particle's centroids link into one trajectory
    tracks = link_particle_centroids(traces)
    assert (tracks["n_tracks"] == 1).all() and (tracks["located_fraction"] == 1.0).all()
