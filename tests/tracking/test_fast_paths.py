"""The fast paths of the tracking stage give the numbers of the plain implementations they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from plscope.tracking import blink_mask, link_particle_centroids, linking
from plscope.tracking.detect import robust_std
from plscope.tracking.quality import without_attrs


def _blink_mask_python(intensity, *, blink_sigma=4.0, blink_drop=0.25, dark_level=0.3, window_frames=15):
    """The pure-Python classifier blink_mask used before its loop went to numba (the reference)."""
    y = np.asarray(intensity, float)
    ok = np.isfinite(y)
    out = np.zeros(y.size, bool)
    if ok.sum() < 5:
        return out
    yf = np.where(ok, y, np.nanmedian(y))
    noise = robust_std(np.diff(y[ok])) / np.sqrt(2.0)
    if not np.isfinite(noise):
        noise = 0.0
    step = blink_sigma * noise * np.sqrt(2.0)
    last_on = [float(yf[0])]
    off = False
    level_left = 0.0
    off_values: list[float] = []
    for k in range(1, yf.size):
        v = float(yf[k])
        if not off:
            ref = max(last_on[-2:])
            if ref > 0 and v < ref - max(step, blink_drop * ref):
                off, level_left, off_values = True, ref, [v]
                out[k] = True
            else:
                last_on.append(v)
        else:
            prev = off_values[-1]
            off_level = float(np.median(off_values))
            rise = v - prev > max(step, blink_drop * level_left)
            if rise or v > 0.5 * (off_level + level_left):
                off = False
                last_on = [v]
            else:
                off_values.append(v)
                out[k] = True
    env = ndimage.percentile_filter(yf, 90, size=4 * max(3, int(window_frames)) + 1, mode="nearest")
    out |= yf < dark_level * env
    return out & ok


def _blinking_traces(n: int, n_frames: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        y = 1000.0 + rng.normal(0.0, 30.0, n_frames)
        y *= 1.0 - 0.3 * ((np.arange(n_frames) // 40) % 2)  # a field-like modulation
        for _b in range(rng.integers(0, 8)):
            a = rng.integers(0, n_frames)
            y[a : a + rng.integers(1, 30)] *= rng.uniform(0.0, 0.8)
        y[rng.random(n_frames) < 0.02] = np.nan
        out.append(y)
    return out


def test_blink_mask_equals_the_python_classifier():
    traces = _blinking_traces(60, 400, seed=3)
    traces += [np.full(50, 7.0), np.array([1.0, np.nan, 2.0, 3.0, 0.0, 5.0]), np.zeros(30)]
    n_blinked = 0
    for y in traces:
        expected = _blink_mask_python(y)
        np.testing.assert_array_equal(blink_mask(y), expected)
        n_blinked += int(expected.sum())
    assert n_blinked > 100  # the traces do blink


def _centroid_traces(seed: int) -> pd.DataFrame:
    """30 particles x 300 frames; some jump (identity lost), some vanish for long or briefly."""
    rng = np.random.default_rng(seed)
    n_p, n_f = 30, 300
    frame, pid = np.meshgrid(np.arange(n_f), np.arange(n_p), indexing="ij")
    x = 20.0 + 15.0 * pid + rng.normal(0, 0.2, pid.shape)
    y = 40.0 + rng.normal(0, 0.2, pid.shape)
    intensity = 1000.0 + rng.normal(0, 20, pid.shape)
    x[150:, 3] += 3.0  # a jump beyond the search range
    x[100:, 4] += 1.45  # a step just inside it
    intensity[50:60, 5] = 0.0  # dark for 10 frames (> memory): a new trajectory
    intensity[70:75, 6] = 0.0  # dark for 5 frames (= memory): bridged
    intensity[80:86, 7] = 0.0  # dark for 6 frames
    x[200:, 8] += 1.5  # exactly the search range
    t = pd.DataFrame(
        {
            "frame": frame.ravel(),
            "particle_id": pid.ravel() + 100,
            "intensity": intensity.ravel(),
            "x_px": x.ravel(),
            "y_px": y.ravel(),
            "drift_x_px": np.repeat(np.linspace(0, 0.5, n_f), n_p),
            "drift_y_px": 0.0,
        }
    )
    t.attrs["radius_px"] = {i: 3.0 for i in range(n_p)}
    return t


@pytest.mark.parametrize("seed", [0, 1])
def test_link_particle_centroids_equals_linking_every_particle(seed, monkeypatch):
    traces = _centroid_traces(seed)
    fast = link_particle_centroids(traces)
    monkeypatch.setattr(linking, "_needs_linking", lambda f, index, n_ids, **kw: np.ones(n_ids, bool))
    every = link_particle_centroids(traces)
    pd.testing.assert_frame_equal(fast, every)
    assert fast.loc[fast.particle_id == 103, "n_tracks"].item() == 2
    assert fast.loc[fast.particle_id == 105, "n_tracks"].item() == 2
    assert (fast["n_tracks"] >= 1).all()


def test_without_attrs_is_a_shallow_copy_without_attrs():
    t = _centroid_traces(0)
    bare = without_attrs(t)
    assert bare.attrs == {} and t.attrs  # the input keeps its attrs
    pd.testing.assert_frame_equal(bare, t, check_flags=False)
    plain = pd.DataFrame({"a": [1]})
    assert without_attrs(plain) is plain


def test_identity_is_lost_only_when_the_centroid_settles_elsewhere():
    """A persistent jump is a new place; a long blink or stray dim-frame centroids are not."""
    traces = _centroid_traces(0)
    rng = np.random.default_rng(5)
    dim = (traces["particle_id"] == 110) & (traces["frame"] % 40 == 7)  # every 40th frame dim and stray
    traces.loc[dim, "intensity"] = 300.0
    traces.loc[dim, "x_px"] += rng.choice([-2.2, 2.2], int(dim.sum()))
    tracks = link_particle_centroids(traces).set_index("particle_id")
    assert tracks.loc[103, "n_positions"] == 2  # 3 px beyond the search range for 150 frames
    assert tracks.loc[105, ["n_tracks", "n_positions"]].tolist() == [2, 1]  # dark 10 frames, same place
    assert tracks.loc[110, "n_tracks"] > 1 and tracks.loc[110, "n_positions"] == 1
    others = tracks.drop(index=[103])
    assert (others["n_positions"] == 1).all()
