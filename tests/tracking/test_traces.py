"""Intensity traces: known per-frame totals, noise, drift, dask == numpy."""

from __future__ import annotations

import logging
import tracemalloc

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from plscope.errors import PlscopeError
from plscope.tracking import (
    DRIFT_COLUMNS,
    TRACE_COLUMNS,
    detect_particles,
    extract_traces,
    measure_sizes,
    reference_image,
    trace_weights,
)

N_FRAMES = 128


def prepare(synth, scene, stack):
    """Reference image -> detection -> sizes, as the pipeline does."""
    ref = reference_image(stack, n_frames=64)
    table, labels = detect_particles(ref)
    sizes, _ = measure_sizes(ref, table, pixel_size_nm=synth.PIXEL_NM, psf_sigma_nm=130.0, labels=labels)
    idx, _ = synth.match(scene.x_px, scene.y_px, sizes["x_px"], sizes["y_px"], max_dist=4.0)
    assert (idx >= 0).all() and len(sizes) == scene.n
    return ref, sizes, labels, idx


def as_matrix(traces, column, n):
    """(frames, particles) array of one column of the long table."""
    return traces[column].to_numpy().reshape(-1, n)


@pytest.fixture(scope="module")
def factors():
    rng = np.random.default_rng(99)
    return rng.uniform(0.45, 1.0, size=(N_FRAMES, 16))  # PL drops by up to 55 %


@pytest.fixture(scope="module")
def scene16(synth):
    return synth.make_scene(np.random.default_rng(31))


# ---------------------------------------------------------------- accuracy
@pytest.mark.parametrize("drift_px", [(0.0, 0.0), (2.0, -1.5)])
def test_noiseless_totals_recovered_within_1_percent(synth, scene16, factors, drift_px):
    # float frames: quantizing a noiseless image is unphysical (without noise to
    # dither it, rounding a smooth background biases aperture sums by ~30 ADU)
    stack = synth.render_stack(scene16, factors, None, drift_px=drift_px, as_uint16=False)
    _, sizes, labels, idx = prepare(synth, scene16, stack)
    traces = extract_traces(stack, sizes, labels=labels)
    assert tuple(traces.columns) == TRACE_COLUMNS
    assert len(traces) == N_FRAMES * scene16.n
    assert traces["frame"].is_monotonic_increasing
    intensity = as_matrix(traces, "intensity", scene16.n)[:, idx]
    truth = synth.GAIN * scene16.total_photons * factors
    rel = intensity / truth - 1.0
    assert np.abs(rel).max() < 0.01
    assert np.abs(rel).max() < 1e-4  # what it really does
    bg = as_matrix(traces, "background", scene16.n)[:, idx]
    bg_truth = (
        synth.OFFSET_ADU
        + synth.GAIN
        * synth.background_photons()[np.round(scene16.y_px).astype(int), np.round(scene16.x_px).astype(int)]
    )
    np.testing.assert_allclose(bg, np.broadcast_to(bg_truth, bg.shape), atol=0.6)


def test_noisy_errors_match_the_poisson_expectation(synth, scene16, factors):
    rng = np.random.default_rng(5)
    stack = synth.render_stack(scene16, factors, rng, as_uint16=True)
    _, sizes, labels, idx = prepare(synth, scene16, stack)
    traces = extract_traces(stack, sizes, labels=labels)
    n = scene16.n
    intensity = as_matrix(traces, "intensity", n)[:, idx]
    truth = synth.GAIN * scene16.total_photons * factors
    # predicted variance: sum over pixels of weight**2 x pixel variance (shot + read + rounding)
    w = trace_weights(stack.shape[1:], sizes, labels=labels)
    w2 = (w.matrix[:, :n].toarray().astype(np.float64) ** 2)[:, idx]  # (pixels, particle)
    bg = synth.background_photons().ravel()[w.pixels]
    var_bg = w2.T @ (synth.GAIN**2 * bg + synth.READ_NOISE_ADU**2 + 1.0 / 12.0)
    per_particle = np.stack(
        [
            w2.T
            @ (
                synth.GAIN**2
                * synth.render_particles(
                    synth.Scene(
                        scene16.x_px[[k]], scene16.y_px[[k]], scene16.side_px[[k]], scene16.total_photons[[k]]
                    )
                ).ravel()[w.pixels]
            )
            for k in range(n)
        ],
        axis=1,
    )  # (particle, source)
    var = var_bg[None, :] + factors @ per_particle.T
    z = (intensity - truth) / np.sqrt(var)
    assert abs(z.mean()) < 4.0 / np.sqrt(z.size)  # unbiased
    assert 0.92 < z.std() < 1.08  # noise = Poisson + read expectation
    assert np.abs(z.mean(axis=0)).max() < 4.0 / np.sqrt(N_FRAMES)


def test_plane_background_unbiased_when_a_neighbour_masks_the_annulus(synth):
    # a dim 500 nm particle with a big bright neighbour 12 px to its right:
    # the neighbour's aperture covers one side of the annulus, whose mean is
    # then biased by the illumination gradient; the fitted plane is not.
    s = np.array([5.0, 13.0])
    scene = synth.Scene(
        np.array([50.3, 50.3 + 2.5 + 12.0 + 6.5]), np.array([80.2, 80.2]), s, np.array([3000.0, 34000.0])
    )
    factors = np.ones((8, 2))
    stack = synth.render_stack(scene, factors, None, as_uint16=False)
    _, sizes, labels, idx = prepare(synth, scene, stack)
    truth = synth.GAIN * scene.total_photons[0]
    errors = {}
    for background in ("plane", "mean"):
        traces = extract_traces(stack, sizes, labels=labels, background=background)
        errors[background] = as_matrix(traces, "intensity", 2)[0, idx[0]] / truth - 1.0
    assert abs(errors["plane"]) < 1e-3
    assert abs(errors["mean"]) > 3 * abs(errors["plane"])


# ---------------------------------------------------------------- drift
def test_drift_estimate_and_correction(synth, scene16):
    t = 96
    f = np.random.default_rng(3).uniform(0.45, 1.0, size=(t, scene16.n))
    drift = (6.0, -4.0)  # beyond the 2 px aperture margin
    stack = synth.render_stack(scene16, f, None, drift_px=drift, as_uint16=False)
    ref = reference_image(stack, n_frames=16)
    table, labels = detect_particles(ref)
    sizes, _ = measure_sizes(ref, table, pixel_size_nm=synth.PIXEL_NM, psf_sigma_nm=130.0, labels=labels)
    idx, _ = synth.match(scene16.x_px, scene16.y_px, sizes["x_px"], sizes["y_px"], max_dist=4.0)
    truth = synth.GAIN * scene16.total_photons * f
    lazy = da.from_array(stack, chunks=(16, -1, -1))
    fixed = extract_traces(lazy, sizes, labels=labels, drift="estimate")
    moved = extract_traces(lazy, sizes, labels=labels, drift="correct", reference=ref)
    assert tuple(moved.columns) == TRACE_COLUMNS + DRIFT_COLUMNS
    err_fixed = np.abs(as_matrix(fixed, "intensity", scene16.n)[:, idx] / truth - 1).max()
    err_moved = np.abs(as_matrix(moved, "intensity", scene16.n)[:, idx] / truth - 1).max()
    assert err_fixed > 0.02  # apertures left behind
    assert err_moved < 0.01
    # drift relative to the reference (mean position over its 16 frames)
    frac = np.arange(t) / (t - 1)
    for col, d in zip(DRIFT_COLUMNS, drift):
        true = d * frac - d * frac[:16].mean()
        est = as_matrix(moved, col, scene16.n)[:, 0]
        assert np.abs(est - true).max() < 0.05


def test_drift_estimate_within_margin_noiseless(synth, scene16, factors):
    stack = synth.render_stack(scene16, factors, None, drift_px=(2.0, -1.5), as_uint16=False)
    _, sizes, labels, _ = prepare(synth, scene16, stack)
    traces = extract_traces(stack, sizes, labels=labels, drift="estimate")
    frac = np.arange(N_FRAMES) / (N_FRAMES - 1)
    for col, d in zip(DRIFT_COLUMNS, (2.0, -1.5)):
        true = d * frac - d * frac[:64].mean()
        assert np.abs(as_matrix(traces, col, scene16.n)[:, 0] - true).max() < 0.02


# ---------------------------------------------------------------- dask
@pytest.mark.parametrize("drift", ["none", "estimate"])
def test_dask_equals_numpy_on_uneven_chunks(synth, scene16, drift):
    rng = np.random.default_rng(12)
    f = rng.uniform(0.45, 1.0, size=(50, scene16.n))
    stack = synth.render_stack(scene16, f, rng, drift_px=(1.0, 0.5))
    _, sizes, labels, _ = prepare(synth, scene16, stack)
    lazy = da.from_array(stack, chunks=(16, 80, 160))  # 50 = 3 x 16 + 2, and split rows
    a = extract_traces(stack, sizes, labels=labels, drift=drift)
    b = extract_traces(lazy, sizes, labels=labels, drift=drift)
    pd.testing.assert_frame_equal(a[["frame", "particle_id"]], b[["frame", "particle_id"]])
    for col in a.columns[2:]:
        np.testing.assert_allclose(a[col], b[col], rtol=1e-6)


def test_dask_path_streams_without_materializing_the_stack(synth, scene16):
    ref = synth.render_image(scene16, np.random.default_rng(1), n_avg=64)
    table, labels = detect_particles(ref)
    sizes, _ = measure_sizes(ref, table, pixel_size_nm=synth.PIXEL_NM, psf_sigma_nm=130.0, labels=labels)
    frame = synth.render_image(scene16, None, as_uint16=True)

    def make_chunk(block_info=None):  # like a reader: each task makes its own chunk
        (start, stop), _, _ = block_info[None]["array-location"]
        return np.broadcast_to(frame, (stop - start,) + frame.shape).copy()

    peaks = {}
    for t in (1024, 2048):
        lazy = da.map_blocks(make_chunk, chunks=((64,) * (t // 64), (160,), (160,)), dtype=np.uint16)
        tracemalloc.start()
        try:
            traces = extract_traces(lazy, sizes, labels=labels)
            _, peaks[t] = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(traces) == t * len(sizes)
    stack_bytes = 2048 * frame.nbytes  # 105 MB
    assert peaks[2048] < 0.4 * stack_bytes, f"peak {peaks[2048] / 1e6:.1f} MB"
    assert peaks[2048] < 1.3 * peaks[1024] + 2e6  # does not grow with the movie
    first = traces[traces["frame"] == 0]["intensity"].to_numpy()
    last = traces[traces["frame"] == 2047]["intensity"].to_numpy()
    np.testing.assert_array_equal(first, last)


# ---------------------------------------------------------------- API
def test_progress_bar_for_numpy_and_dask(synth, scene16, capsys):
    stack = synth.render_stack(scene16, np.ones((20, scene16.n)), None)
    _, sizes, labels, _ = prepare(synth, scene16, stack)
    extract_traces(stack, sizes, labels=labels, progress=True)
    extract_traces(da.from_array(stack, chunks=(8, -1, -1)), sizes, labels=labels, progress=True)
    err = capsys.readouterr().err
    assert err.count("traces") >= 2 and "3/3" in err


def test_particle_outside_the_frame_gives_nan_and_a_log_message(synth, scene16, caplog):
    stack = synth.render_stack(scene16, np.ones((4, scene16.n)), None)
    parts = pd.DataFrame(
        {"particle_id": [0, 7], "x_px": [scene16.x_px[0], 500.0], "y_px": [scene16.y_px[0], 80.0]}
    )
    with caplog.at_level(logging.WARNING, logger="plscope.tracking.traces"):
        traces = extract_traces(stack, parts, radius_px=10.0)
    assert "particle_id [7]" in caplog.text
    assert traces.loc[traces["particle_id"] == 7, "intensity"].isna().all()
    assert traces.loc[traces["particle_id"] == 0, "intensity"].notna().all()


def test_explicit_radius_disk_aperture(synth, scene16):
    stack = synth.render_stack(scene16, np.ones((4, scene16.n)), None, as_uint16=False)
    parts = pd.DataFrame({"particle_id": np.arange(scene16.n), "x_px": scene16.x_px, "y_px": scene16.y_px})
    radius = scene16.side_px / np.sqrt(2) + 3 * synth.SIGMA_PX + 1
    traces = extract_traces(stack, parts, radius_px=radius, aperture="disk")
    rel = as_matrix(traces, "intensity", scene16.n) / (synth.GAIN * scene16.total_photons) - 1
    assert np.abs(rel).max() < 0.01


def test_bad_input_raises(synth, scene16):
    parts = pd.DataFrame({"particle_id": [0], "x_px": [10.0], "y_px": [10.0]})
    with pytest.raises(PlscopeError, match="3-D"):
        extract_traces(np.zeros((16, 16)), parts, radius_px=3.0)
    with pytest.raises(PlscopeError, match="radius_px"):
        extract_traces(np.zeros((2, 16, 16)), parts)  # no sizes, no boxes, no radius
    with pytest.raises(PlscopeError, match="drift"):
        extract_traces(np.zeros((2, 16, 16)), parts, radius_px=3.0, drift="sometimes")


def test_no_particles_give_empty_traces_in_one_pass():
    """Zero particles on a dask uint16 stack: the one pass gives the empty table and the whole drift
    table (it had failed with a bare IndexError inside a chunk's median)."""
    import dask.array as da

    from plscope.tracking.run_traces import extract_run_traces

    parts = pd.DataFrame(
        {"particle_id": [0], "x_px": [10.0], "y_px": [10.0], "side_px": 3.0, "psf_sigma_px": 1.3}
    )
    stack = da.from_array(np.ones((16, 32, 32), np.uint16), chunks=(8, 32, 32))
    traces, drift = extract_run_traces(stack, parts.iloc[:0])
    assert traces.empty and len(drift) == 16
    assert {"frame", "particle_id", "intensity"} <= set(traces.columns)


# ---------------------------------------------------------------- touching neighbours
def test_touching_neighbour_light_is_unmixed(synth):
    # two 700 nm particles 150 nm apart; the right one blinks off (x0.2) in half the frames.
    # The left one's aperture catches part of its light: with the crosstalk removed its
    # trace stays flat and its centroid does not move.
    s = np.array([7.0, 7.0])
    scene = synth.Scene(
        np.array([60.4, 60.4 + 7.0 + 1.5]), np.array([70.3, 70.6]), s, np.array([15000.0, 15000.0])
    )
    f = np.ones((16, 2))
    f[8:, 1] = 0.2
    stack = synth.render_stack(scene, f, None, as_uint16=False)
    ref = reference_image(stack, n_frames=8)  # both on in the reference
    from plscope.tracking import find_particles

    parts, labels, _ = find_particles(ref, pixel_size_nm=synth.PIXEL_NM, psf_sigma_nm=130.0)
    assert len(parts) == 2
    left = int(np.argmin(parts["x_px"]))
    kw = dict(labels=labels, psf_margin_sigma=1.5, drift_margin_px=0.5, centroids=True)
    mixed = extract_traces(stack, parts, crosstalk=False, **kw)
    clean = extract_traces(stack, parts, **kw)
    i_mixed = as_matrix(mixed, "intensity", 2)[:, left]
    i_clean = as_matrix(clean, "intensity", 2)[:, left]
    assert i_mixed[:8].mean() / i_mixed[8:].mean() - 1 > 0.02  # neighbour's blink leaks in
    assert abs(i_clean[:8].mean() / i_clean[8:].mean() - 1) < 1e-3  # unmixed
    # the light in the own aperture: a constant fraction (~95 %) of the particle's total
    assert 0.9 < i_clean.mean() / (synth.GAIN * 15000.0) < 1.0
    x_mixed = as_matrix(mixed, "x_px", 2)[:, left]
    x_clean = as_matrix(clean, "x_px", 2)[:, left]
    assert abs(x_mixed[:8].mean() - x_mixed[8:].mean()) > 0.05  # centroid pulled by the neighbour
    assert abs(x_clean - 60.4).max() < 0.01  # truncation bias calibrated out
    right = 1 - left
    i_right = as_matrix(clean, "intensity", 2)[:, right]
    assert i_right[8:].mean() / i_right[:8].mean() == pytest.approx(0.2, abs=0.002)


def test_centroid_and_peak_columns_and_annulus_flag(synth, scene16):
    from plscope.tracking import CENTROID_COLUMNS, PEAK_COLUMNS

    stack = synth.render_stack(scene16, np.ones((6, scene16.n)), None, as_uint16=True)
    _, sizes, labels, idx = prepare(synth, scene16, stack)
    traces = extract_traces(stack, sizes, labels=labels, centroids=True, peaks=True, drift="estimate")
    assert tuple(traces.columns) == TRACE_COLUMNS + CENTROID_COLUMNS + PEAK_COLUMNS + DRIFT_COLUMNS
    x = as_matrix(traces, "x_px", scene16.n)[:, idx]
    y = as_matrix(traces, "y_px", scene16.n)[:, idx]
    assert np.abs(x - scene16.x_px).max() < 0.02 and np.abs(y - scene16.y_px).max() < 0.02
    peak = as_matrix(traces, "peak_adu", scene16.n)[0, idx]
    flat = stack[0]
    for k in range(scene16.n):
        r, c = int(round(scene16.y_px[k])), int(round(scene16.x_px[k]))
        assert peak[k] == flat[r - 2 : r + 3, c - 2 : c + 3].max()  # brightest pixel is near the centre
    assert traces.attrs["saturation_adu"] == 65535.0
    # particles >= 12 px apart: most annuli complete, a few lose a corner to a neighbour's region
    masked = np.array(list(traces.attrs["annulus_masked_fraction"].values()))
    assert np.median(masked) == 0.0 and masked.max() < 0.15
