"""A crowded, drifting, blinking simulated field of view, end to end through the tracking stage.

40 particles placed with only 6 px clearance, 8 touching pairs (edge gaps of
1-3 px, i.e. 100-300 nm, less than 2.5 PSF sigma), 6 particles cut by the
image border, a brightness spread of 30 % (so a small dim particle can sit on
the shoulder of a big bright one), 2 px of stage drift, 30 % of the particles
blinking (0.2 blinks/s), field switching, bleaching, shot and read noise.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from plscope.tracking import (
    estimate_drift,
    extract_traces,
    find_particles,
    link_particle_centroids,
    quality_flags,
    reference_image,
)

sim = pytest.importorskip("plscope.sim")
io_stack = pytest.importorskip("plscope.io.stack")

pytestmark = pytest.mark.slow

SEED = 3
PARAMS = dict(
    n_particles=40,
    image_shape=(192, 192),
    fields_kV_per_cm=(130.0,),
    cycles_per_level=2,
    period_s=10.0,
    clearance_px=6.0,
    border_margin_px=8.0,
    touching_pairs=8,
    border_particles=6,
    drift_px=2.0,
    blinking_fraction=0.3,
    blink_rate_per_s=0.2,
    brightness_spread=0.3,
)


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    params = sim.ImagingSimParams(**PARAMS)
    out = tmp_path_factory.mktemp("crowded") / "run"
    truth = sim.simulate_imaging_run(out, params, seed=SEED)
    data = io_stack.open_stack(out / "movie.tif").data
    ref = reference_image(data)
    particles, labels, psf_sigma_nm = find_particles(ref, pixel_size_nm=params.pixel_size_nm)
    drift = estimate_drift(data, reference=ref)
    traces = extract_traces(
        data,
        particles,
        labels=labels,
        drift=drift,
        centroids=True,
        peaks=True,
        psf_margin_sigma=1.5,
        drift_margin_px=0.5,
    )
    tp = pd.DataFrame(truth["particles"])
    true_drift = np.asarray(truth["drift_px"])
    ref_offset = true_drift[:64].mean(axis=0)  # the reference image averages frames 0-63
    # nearest detection for each true particle (positions on the reference image)
    d = np.hypot(
        (tp["x_px"].to_numpy() + ref_offset[0])[:, None] - particles["x_px"].to_numpy()[None],
        (tp["y_px"].to_numpy() + ref_offset[1])[:, None] - particles["y_px"].to_numpy()[None],
    )
    border = np.zeros(len(tp), bool)
    border[truth["crowding"]["border_particle_ids"]] = True
    return dict(
        params=params,
        truth=truth,
        tp=tp,
        particles=particles,
        labels=labels,
        traces=traces,
        drift=drift,
        true_drift=true_drift,
        ref_offset=ref_offset,
        dist=d,
        border=border,
        psf_sigma_nm=psf_sigma_nm,
        out=out,
    )


def test_the_simulated_field_is_crowded(crowded):
    c = crowded["truth"]["crowding"]
    assert crowded["truth"]["n_particles"] == 54
    assert len(c["touching_pairs"]) == 8 and max(c["touching_gap_px"]) <= 3.0
    inside = np.asarray(c["inside_fraction"])[c["border_particle_ids"]]
    assert np.all((inside >= 0.5) & (inside < 1.0))  # really cut by the border
    assert len(c["blinking_particle_ids"]) == 16  # 30 % of 54


def test_all_particles_found_pairs_split_no_double_count(crowded):
    d, particles = crowded["dist"], crowded["particles"]
    nearest = d.argmin(axis=1)
    found = d.min(axis=1) < 1.0
    assert found.mean() >= 0.98, f"found {found.sum()} of {found.size}"
    assert found.all()  # what it does: every one
    # no particle double-counted: one detection per true particle, no spare detections
    assert np.unique(nearest[found]).size == found.sum()
    assert len(particles) == found.sum()
    for a, b in crowded["truth"]["crowding"]["touching_pairs"]:
        assert found[a] and found[b] and nearest[a] != nearest[b]
    # border particles are flagged, the others not
    flagged = particles["touches_border"].to_numpy()[nearest]
    np.testing.assert_array_equal(flagged, crowded["border"])


def test_sizes_within_8_percent(crowded):
    d, particles, tp = crowded["dist"], crowded["particles"], crowded["tp"]
    nearest = d.argmin(axis=1)
    rel = particles["size_nm"].to_numpy()[nearest] / tp["size_nm"].to_numpy() - 1
    inner = ~crowded["border"]
    assert particles["size_fit_ok"].all()
    assert np.abs(rel[inner]).max() < 0.08
    assert np.abs(rel[inner]).max() < 0.03  # what it does
    # the model is evaluated on the pixels inside the image: cut particles are measured too
    assert np.abs(rel[~inner]).max() < 0.08
    # the PSF sigma of the reference image (drift-blurred: wider than 130 nm, never narrower)
    assert 128.0 < crowded["psf_sigma_nm"] < 145.0


def test_centroids_after_drift_correction_within_a_tenth_of_a_pixel(crowded):
    tp, traces, particles = crowded["tp"], crowded["traces"], crowded["particles"]
    true_drift, offset = crowded["true_drift"], crowded["ref_offset"]
    n = len(particles)
    nearest = crowded["dist"].argmin(axis=1)
    # the whole-movie drift (relative to the reference image), refined by the centroids
    est = traces[["drift_x_px", "drift_y_px"]].to_numpy().reshape(-1, n, 2)[:, 0]
    assert np.abs(est - (true_drift - offset)).max() < 0.1
    # per-frame intensity-weighted centroids, drift-corrected, averaged over the movie
    x = traces["x_px"].to_numpy().reshape(-1, n)[:, nearest] - est[:, :1]
    y = traces["y_px"].to_numpy().reshape(-1, n)[:, nearest] - est[:, 1:]
    err = np.hypot(
        np.nanmean(x, axis=0) - (tp["x_px"].to_numpy() + offset[0]),
        np.nanmean(y, axis=0) - (tp["y_px"].to_numpy() + offset[1]),
    )
    inner = ~crowded["border"]
    assert err[inner].max() <= 0.1
    # single frames, against the true drifted positions
    ex = traces["x_px"].to_numpy().reshape(-1, n)[:, nearest] - (tp["x_px"].to_numpy() + true_drift[:, :1])
    ey = traces["y_px"].to_numpy().reshape(-1, n)[:, nearest] - (tp["y_px"].to_numpy() + true_drift[:, 1:])
    assert np.nanmedian(np.hypot(ex, ey)[:, inner]) < 0.1


def test_blinking_particles_flagged_and_identity_kept(crowded):
    truth, traces, particles = crowded["truth"], crowded["traces"], crowded["particles"]
    tracks = link_particle_centroids(traces)
    q = quality_flags(traces, particles, tracks=tracks)
    nearest = crowded["dist"].argmin(axis=1)
    qq = q.set_index("particle_id").loc[particles["particle_id"].to_numpy()[nearest]]
    # true fraction of frames more than half blinked, per particle
    p = truth["params"]
    start = truth["first_frame_time_s"] + np.arange(truth["n_frames"]) / p["frame_rate_hz"]
    true_fraction = np.zeros(truth["n_particles"])
    for b in truth["blinks"]:
        overlap = np.clip(
            np.minimum(start + p["exposure_s"], b["end_s"]) - np.maximum(start, b["start_s"]), 0, None
        )
        true_fraction[b["particle_id"]] += np.mean(overlap > 0.5 * p["exposure_s"])
    blinker = true_fraction > 0.04
    est = qq["blink_fraction"].to_numpy()
    assert blinker.sum() >= 10
    assert np.all(est[blinker] > 0.03)  # every blinking particle seen blinking
    assert np.abs(est[blinker] - true_fraction[blinker]).max() < 0.1
    assert np.all(est[~blinker] < 0.2)  # no steady particle flagged as blinking
    assert np.median(est[~blinker]) == 0.0
    # the drift-following apertures keep each particle: one trajectory each (memory bridges blinks)
    assert (qq["n_tracks"] == 1).all()
    # reasons for the report
    assert (qq["reason"][crowded["border"]].str.contains("touches the border")).all()
    assert q.loc[q["ok"], "reason"].eq("").all() and q.loc[~q["ok"], "reason"].ne("").all()
    assert not qq["saturated"].any()


def test_ground_truth_file_lists_the_crowding(crowded):
    truth = json.loads((crowded["out"] / "ground_truth.json").read_text())
    assert truth["crowding"]["touching_pairs"] == crowded["truth"]["crowding"]["touching_pairs"]
