"""The tracking chain on a movie written by :mod:`plscope.sim` (all nuisances on)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plscope.tracking import detect_particles, extract_traces, measure_sizes, reference_image

sim = pytest.importorskip("plscope.sim")
io_stack = pytest.importorskip("plscope.io.stack")

SEED = 21


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    params = sim.ImagingSimParams(
        n_particles=8, image_shape=(128, 128), fields_kV_per_cm=(130.0,), cycles_per_level=2, period_s=10.0
    )
    out = tmp_path_factory.mktemp("sim") / "run"
    truth = sim.simulate_imaging_run(out, params, seed=SEED)
    stack = io_stack.open_stack(out / "movie.tif")
    photons = sim.frame_photons(sim.draw_population(params, seed=SEED), params)  # (particle, frame)
    return params, truth, stack.data, photons


def test_tracking_chain_recovers_the_simulated_truth(run):
    params, truth, data, photons = run
    particles = pd.DataFrame(truth["particles"])
    drift = np.asarray(truth["drift_px"])  # (frame, [dx, dy])
    ref = reference_image(data, n_frames=64)
    table, labels = detect_particles(ref)
    assert len(table) == len(particles)

    sizes, sigma_nm = measure_sizes(ref, table, pixel_size_nm=params.pixel_size_nm, labels=labels)
    # positions refer to the reference image: truth + mean drift of its frames
    x = particles["x_px"].to_numpy() + drift[:64, 0].mean()
    y = particles["y_px"].to_numpy() + drift[:64, 1].mean()
    d = np.hypot(x[:, None] - sizes["x_px"].to_numpy()[None], y[:, None] - sizes["y_px"].to_numpy()[None])
    idx = d.argmin(axis=1)
    assert np.unique(idx).size == len(particles) and d.min(axis=1).max() < 0.1
    # the estimated sigma is that of the reference image: the PSF broadened by
    # the stage drift during its 64 frames (~0.5 px here, a fast-drifting run)
    blur_var_px2 = drift[:64].var(axis=0).mean()
    sigma_eff_nm = params.pixel_size_nm * np.sqrt(
        (params.psf_sigma_nm / params.pixel_size_nm) ** 2 + blur_var_px2
    )
    assert sigma_nm == pytest.approx(sigma_eff_nm, rel=0.005)
    rel = sizes["size_nm"].to_numpy()[idx] / particles["size_nm"].to_numpy() - 1
    assert sizes["size_fit_ok"].all() and np.abs(rel).max() < 0.02

    traces = extract_traces(data, sizes, labels=labels, drift="estimate")
    n = len(sizes)
    intensity = traces["intensity"].to_numpy().reshape(-1, n)[:, idx]
    expected = params.gain_adu_per_photon * photons.T
    bias = intensity.sum(axis=0) / expected.sum(axis=0) - 1
    assert np.abs(bias).max() < 0.01
    for k, col in enumerate(("drift_x_px", "drift_y_px")):
        est = traces[col].to_numpy().reshape(-1, n)[:, 0]
        assert np.abs(est - (drift[:, k] - drift[:64, k].mean())).max() < 0.25
