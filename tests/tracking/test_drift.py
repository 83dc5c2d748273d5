"""Whole-movie drift, and apertures that follow it frame by frame."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from plscope.errors import PlscopeError
from plscope.tracking import (
    DRIFT_TABLE_COLUMNS,
    detect_particles,
    estimate_drift,
    extract_traces,
    measure_sizes,
    reference_image,
)

N_FRAMES = 96


def render_path(synth, scene, factors, path, rng):
    """Movie whose stage follows ``path`` (t, 2), uint16 with noise."""
    bg = synth.background_photons(scene.shape)
    out = np.empty((factors.shape[0],) + tuple(scene.shape), np.uint16)
    for t in range(factors.shape[0]):
        lam = bg + synth.render_particles(
            scene, totals=scene.total_photons * factors[t], dx=path[t, 0], dy=path[t, 1]
        )
        out[t] = synth.expose(lam, rng, as_uint16=True)
    return out


@pytest.fixture(scope="module")
def drifting(synth):
    rng = np.random.default_rng(17)
    scene = synth.make_scene(rng)
    u = np.linspace(0, 1, N_FRAMES)
    # curved drift of 3-4 px, and blinking-like brightness changes
    path = np.column_stack([3.0 * np.sin(1.3 * np.pi * u), -2.5 * u**2 + 1.2 * u])
    factors = rng.uniform(0.5, 1.0, size=(N_FRAMES, scene.n))
    stack = render_path(synth, scene, factors, path, rng)
    ref = reference_image(stack, n_frames=16)
    table, labels = detect_particles(ref)
    sizes, _ = measure_sizes(ref, table, pixel_size_nm=synth.PIXEL_NM, psf_sigma_nm=130.0, labels=labels)
    idx, _ = synth.match(scene.x_px, scene.y_px, sizes["x_px"], sizes["y_px"], max_dist=4.0)
    assert (idx >= 0).all()
    return dict(
        scene=scene,
        path=path,
        factors=factors,
        stack=stack,
        ref=ref,
        sizes=sizes,
        labels=labels,
        idx=idx,
        rel_path=path - path[:16].mean(axis=0),
    )


def test_drift_over_the_whole_movie(drifting):
    drift = estimate_drift(drifting["stack"], reference=drifting["ref"], block_frames=8)
    assert tuple(drift.columns) == DRIFT_TABLE_COLUMNS and len(drift) == N_FRAMES
    err = np.abs(drift[["drift_x_px", "drift_y_px"]].to_numpy() - drifting["rel_path"])
    # registration of noisy 8-frame means (16 particles) to 1/20 px; the ends are extrapolated
    assert err.max() < 0.15
    assert err.mean() < 0.05
    # the same from a dask array with chunks that do not match the blocks
    lazy = da.from_array(drifting["stack"], chunks=(13, 80, 160))
    lazy_drift = estimate_drift(lazy, reference=drifting["ref"], block_frames=8)
    np.testing.assert_allclose(
        lazy_drift[["drift_x_px", "drift_y_px"]], drift[["drift_x_px", "drift_y_px"]], atol=1e-9
    )
    # sparse blocks (a third of the movie read): coarser on this fast, curved drift
    sparse_drift = estimate_drift(lazy, reference=drifting["ref"], block_frames=8, step_frames=24)
    sparse_err = np.abs(sparse_drift[["drift_x_px", "drift_y_px"]].to_numpy() - drifting["rel_path"])
    assert 0.15 < sparse_err.max() < 0.5


def test_outlier_block_is_replaced(drifting):
    stack = drifting["stack"].copy()
    stack[40:48] = np.roll(stack[40:48], 7, axis=2)  # a glitch: 8 frames shifted by 7 px
    drift = estimate_drift(stack, reference=drifting["ref"], block_frames=8)
    assert drift.attrs["n_outlier_blocks"] == 1
    assert np.abs(drift["drift_x_px"].to_numpy() - drifting["rel_path"][:, 0]).max() < 0.6


def test_apertures_follow_the_drift_table(synth, drifting):
    d = drifting
    # a coarse drift (sparse blocks, errors up to ~0.4 px) is enough to place the apertures:
    # the centroids refine it
    drift = estimate_drift(d["stack"], reference=d["ref"], block_frames=8, step_frames=24)
    fixed = extract_traces(d["stack"], d["sizes"], labels=d["labels"])
    follow = extract_traces(d["stack"], d["sizes"], labels=d["labels"], drift=drift, centroids=True)
    n = d["scene"].n
    truth = synth.GAIN * d["scene"].total_photons * d["factors"]
    rel_fixed = fixed["intensity"].to_numpy().reshape(-1, n)[:, d["idx"]] / truth - 1
    rel = follow["intensity"].to_numpy().reshape(-1, n)[:, d["idx"]] / truth - 1
    assert np.abs(rel_fixed).max() > 0.05  # fixed apertures lose the particles
    assert abs(np.mean(rel)) < 0.005  # unbiased
    assert np.abs(rel.mean(axis=0)).max() < 0.02  # each particle (single frames: ~1-9 % noise)
    # the reported drift: the table refined by the centroids
    est = follow[["drift_x_px", "drift_y_px"]].to_numpy().reshape(-1, n, 2)[:, 0]
    assert np.abs(est - d["rel_path"]).max() < 0.1  # per frame: median of 16 single-frame centroids
    assert np.sqrt(np.mean((est - d["rel_path"]) ** 2)) < 0.04
    # per-frame centroids follow each particle
    x = follow["x_px"].to_numpy().reshape(-1, n)[:, d["idx"]]
    err = x - (d["scene"].x_px[None, :] + d["path"][:, :1])
    assert np.abs(err.mean(axis=0)).max() < 0.05  # no bias, though the stage moved 3 px
    assert np.median(np.abs(err)) < 0.1  # single-frame noise (dim particles ~0.1 px)


@pytest.mark.parametrize("chunks", [(13, 80, 160)])  # 96 = 7 x 13 + 5, and split rows
def test_following_drift_does_not_depend_on_the_chunks(drifting, chunks):
    d = drifting
    drift = estimate_drift(d["stack"], reference=d["ref"], block_frames=8)
    a = extract_traces(d["stack"], d["sizes"], labels=d["labels"], drift=drift, centroids=True, peaks=True)
    b = extract_traces(
        da.from_array(d["stack"], chunks=chunks),
        d["sizes"],
        labels=d["labels"],
        drift=drift[["frame", "drift_x_px", "drift_y_px"]].to_numpy()[:, 1:],
        centroids=True,
        peaks=True,
    )
    pd.testing.assert_frame_equal(a[["frame", "particle_id"]], b[["frame", "particle_id"]])
    for col in a.columns[2:]:
        np.testing.assert_allclose(a[col], b[col], rtol=1e-6, atol=1e-9, err_msg=col)


def test_bad_drift_tables_are_rejected(drifting):
    d = drifting
    with pytest.raises(PlscopeError, match="shape"):
        extract_traces(d["stack"], d["sizes"], drift=np.zeros((5, 2)))
    with pytest.raises(PlscopeError, match="column"):
        extract_traces(d["stack"], d["sizes"], drift=pd.DataFrame({"frame": np.arange(N_FRAMES)}))
    with pytest.raises(PlscopeError, match="non-finite"):
        extract_traces(d["stack"], d["sizes"], drift=np.full((N_FRAMES, 2), np.nan))
    with pytest.raises(PlscopeError, match="block_frames"):
        estimate_drift(d["stack"], block_frames=0)


# blocks of 4 frames across chunks of 13, split rows; chunks without frames (one inside a block)
@pytest.mark.parametrize("chunks", [(13, 80, 160), ((0, 13, 0, 83), 160, 160)])
def test_one_pass_equals_the_two_passes_bit_for_bit(drifting, chunks, monkeypatch):
    """``extract_run_traces`` on a dask stack of uint16 frames reads it once (drift and traces in one
    graph); its tables equal ``estimate_drift`` then ``extract_traces`` exactly, outlier block included."""
    from plscope.config.settings import TraceSettings
    from plscope.tracking import extract_run_traces, run_traces
    from plscope.tracking.streaming import stream_drift_and_traces

    streamed = []

    def spy(*args, **kwargs):
        streamed.append(stream_drift_and_traces(*args, **kwargs))
        return streamed[-1]

    monkeypatch.setattr(run_traces, "stream_drift_and_traces", spy)

    d = drifting
    stack = d["stack"].copy()
    stack[40:44] = np.roll(stack[40:44], 7, axis=2)  # one 4-frame block off by 7 px: replaced
    lazy = da.from_array(stack, chunks=chunks)
    tr = TraceSettings()
    drift = estimate_drift(lazy, reference=d["ref"])
    assert drift.attrs["n_outlier_blocks"] >= 1
    traces = extract_traces(
        lazy,
        d["sizes"],
        labels=d["labels"],
        drift=drift,
        reference=d["ref"],
        psf_margin_sigma=tr.psf_margin_sigma,
        drift_margin_px=tr.drift_margin_px,
        centroids=True,
        peaks=True,
    )
    one_traces, one_drift = extract_run_traces(lazy, d["sizes"], labels=d["labels"], reference=d["ref"])
    assert len(streamed) == 1 and streamed[0] is not None  # the one pass ran
    pd.testing.assert_frame_equal(one_drift, drift, check_exact=True)
    assert one_drift.attrs == drift.attrs
    pd.testing.assert_frame_equal(one_traces, traces, check_exact=True)
    assert one_traces.attrs == traces.attrs
    # numpy stacks (or other dtypes) are not streamed: the caller makes the two passes
    assert stream_drift_and_traces(stack, d["sizes"], {}, reference=d["ref"]) is None
    assert stream_drift_and_traces(lazy.astype(np.float32), d["sizes"], {}, reference=d["ref"]) is None


def test_one_pass_fills_the_table_as_chunks_come_in_or_collects_them_the_same(drifting, monkeypatch):
    """In this process (threads, synchronous) each chunk's values are filled into the table when computed
    (not all held until the end); elsewhere (a process pool, a cluster) they are collected: the same table."""
    import dask

    from plscope.tracking import extract_run_traces, streaming

    d = drifting
    lazy = da.from_array(d["stack"], chunks=(13, 160, 160))
    assert streaming._scheduler_in_process()
    with dask.config.set(scheduler="synchronous"):
        assert streaming._scheduler_in_process()
    with dask.config.set(scheduler="processes"):
        assert not streaming._scheduler_in_process()
    filled = []
    fill = streaming._fill
    monkeypatch.setattr(streaming, "_fill", lambda *a: filled.append(a[2]) or fill(*a))
    in_place, drift = extract_run_traces(lazy, d["sizes"], labels=d["labels"], reference=d["ref"])
    assert sorted(filled) == list(range(0, N_FRAMES, 13))  # every chunk filled once
    monkeypatch.setattr(streaming, "_scheduler_in_process", lambda: False)
    collected, drift2 = extract_run_traces(lazy, d["sizes"], labels=d["labels"], reference=d["ref"])
    assert len(filled) == len(range(0, N_FRAMES, 13))
    pd.testing.assert_frame_equal(in_place, collected, check_exact=True)
    assert in_place.attrs == collected.attrs
    pd.testing.assert_frame_equal(drift, drift2, check_exact=True)


def test_one_pass_into_a_scratch_file_gives_the_table(drifting, tmp_path):
    """With ``scratch`` the one pass fills the traces particle-major into a file (never holding the
    table): read back, the same table and attrs."""
    from plscope._particle_traces import ParticleTraces
    from plscope.tracking import extract_run_traces

    d = drifting
    lazy = da.from_array(d["stack"], chunks=(13, 160, 160))
    table, drift = extract_run_traces(lazy, d["sizes"], labels=d["labels"], reference=d["ref"])
    store, drift2 = extract_run_traces(
        lazy, d["sizes"], labels=d["labels"], reference=d["ref"], scratch=tmp_path / "scratch"
    )
    assert isinstance(store, ParticleTraces)
    back = store.table()
    pd.testing.assert_frame_equal(back, table, check_exact=True)
    assert back.attrs == table.attrs
    pd.testing.assert_frame_equal(drift2, drift, check_exact=True)
    store.close()


def _plain_drift(t_block, d_raw, t_total):
    """Per-frame drift written out: each block off its 3-block median by > 1 px replaced by it, then
    linear between block centres and extrapolated from the two outer blocks."""
    d = d_raw.copy()
    if d.shape[0] >= 3:
        padded = np.vstack([d[:1], d, d[-1:]])
        med = np.median([padded[:-2], padded[1:-1], padded[2:]], axis=0)
        bad = (np.abs(d - med) > 1.0).any(axis=1)
        d[bad] = med[bad]
    if d.shape[0] == 1:
        return np.repeat(d, t_total, axis=0)
    f = np.arange(t_total, dtype=float)
    out = np.empty((t_total, 2))
    for k in range(2):
        lo_slope = (d[1, k] - d[0, k]) / (t_block[1] - t_block[0])
        hi_slope = (d[-1, k] - d[-2, k]) / (t_block[-1] - t_block[-2])
        out[:, k] = np.where(
            f < t_block[0],
            d[0, k] + lo_slope * (f - t_block[0]),
            np.where(
                f > t_block[-1], d[-1, k] + hi_slope * (f - t_block[-1]), np.interp(f, t_block, d[:, k])
            ),
        )
    return out


def test_each_chunk_settles_its_frames_from_the_blocks_it_needs_only():
    """Any movie length and chunking (a frame, fewer frames than a block, chunks across blocks): the
    drift of a chunk's frames from its needed blocks alone (every other block unknown) equals the
    same rows of the whole-movie table, outlier blocks included."""
    from plscope.tracking.drift import block_centres, block_layout, drift_table, needed_blocks, settled_drift

    rng = np.random.default_rng(4)
    for t_total in (1, 2, 3, 4, 5, 7, 9, 31, 64, 97, 700):
        block, _, starts, stops = block_layout(t_total)
        t_block = block_centres(starts, stops)
        d_raw = np.cumsum(rng.normal(0.0, 0.3, (starts.size, 2)), axis=0)
        d_raw[rng.random(starts.size) < 0.2] += 5.0  # outlier blocks
        whole = drift_table(starts, stops, d_raw, t_total, block)[["drift_x_px", "drift_y_px"]].to_numpy()
        assert np.array_equal(whole, _plain_drift(t_block, d_raw, t_total))
        for chunk in (1, 3, block, 2 * block + 1, t_total):
            for a in range(0, t_total, chunk):
                z = min(a + chunk, t_total)
                need = needed_blocks(t_block, a, z - 1)
                known = np.full_like(d_raw, np.nan)
                known[need] = d_raw[need]
                got = settled_drift(t_block, known, np.arange(a, z))
                assert np.array_equal(got, whole[a:z]), (t_total, chunk, a)
