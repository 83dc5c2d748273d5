"""Per-frame localization and tracking: synthetic spots, trackpy parity, real movies."""

from __future__ import annotations

import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from plscope.errors import PlscopeError
from plscope.tracking import FEATURE_COLUMNS, filter_tracks, locate_features, track_movie

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"
PMHC = REAL / "pMHC_AF647"
BULK = REAL / "bulk_water" / "bulk_water_green_300f_DERIVED.tif"


def spots_movie(rng, n_frames=12, n_spots=30, shape=(96, 128), sigma=1.5, amplitude=400.0):
    """Gaussian spots (random positions per frame) on a 100 ADU offset, Poisson noise, uint16."""
    yy, xx = np.indices(shape)
    frames, truth = [], []
    for t in range(n_frames):
        x = rng.uniform(8, shape[1] - 8, n_spots)
        y = rng.uniform(8, shape[0] - 8, n_spots)
        keep = np.ones(n_spots, bool)
        for i in range(n_spots):  # at least 12 px apart (separation: diameter + 1)
            keep[i] = np.all(np.hypot(x[:i][keep[:i]] - x[i], y[:i][keep[:i]] - y[i]) > 12)
        x, y = x[keep], y[keep]
        lam = 100.0 + sum(
            amplitude * np.exp(-((xx - a) ** 2 + (yy - b) ** 2) / (2 * sigma**2)) for a, b in zip(x, y)
        )
        frames.append(rng.poisson(lam).astype(np.uint16))
        truth.append(pd.DataFrame({"frame": t, "x_px": x, "y_px": y}))
    return np.stack(frames), pd.concat(truth, ignore_index=True)


def recall_precision(found: pd.DataFrame, truth: pd.DataFrame, *, max_dist: float = 1.0):
    """Per-frame nearest-neighbour matching within max_dist; returns recall, precision, errors."""
    tp = fn = fp = 0
    errors = []
    for frame, ref in truth.groupby("frame"):
        ours = found[found["frame"] == frame]
        if len(ours) == 0:
            fn += len(ref)
            continue
        d, i = cKDTree(ours[["x_px", "y_px"]].to_numpy()).query(ref[["x_px", "y_px"]].to_numpy())
        hit = d <= max_dist
        tp += int(hit.sum())
        fn += int((~hit).sum())
        fp += len(ours) - len(set(i[hit]))
        errors += list(d[hit])
    for frame, ours in found.groupby("frame"):
        if frame not in set(truth["frame"]):
            fp += len(ours)
    return tp / max(tp + fn, 1), tp / max(tp + fp, 1), np.asarray(errors)


def test_locates_synthetic_spots(rng):
    movie, truth = spots_movie(rng)
    found = locate_features(movie, diameter_px=9, min_mass=500)
    assert tuple(found.columns) == FEATURE_COLUMNS and found["frame"].dtype == np.int64
    recall, precision, err = recall_precision(found, truth)
    assert recall == 1.0 and precision == 1.0
    assert np.median(err) < 0.05 and err.max() < 0.2
    # the same with the original Crocker-Grier conventions
    cg = locate_features(movie, diameter_px=9, min_mass=500, min_signal=50, style="crocker-grier")
    recall, precision, err = recall_precision(cg, truth)
    assert recall == 1.0 and precision == 1.0 and np.median(err) < 0.05


def test_same_features_as_trackpy_locate(rng):
    import trackpy

    movie, _ = spots_movie(rng, n_frames=2)
    ours = locate_features(movie, diameter_px=9, min_mass=300)
    for t in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # trackpy's own deprecation noise
            ref = trackpy.locate(movie[t], 9, minmass=300)
        mine = ours[ours["frame"] == t]
        assert len(mine) == len(ref)
        d, i = cKDTree(mine[["x_px", "y_px"]].to_numpy()).query(ref[["x", "y"]].to_numpy())
        assert d.max() < 1e-4
        np.testing.assert_allclose(mine["mass"].to_numpy()[i], ref["mass"].to_numpy(), rtol=1e-4)


def test_dask_equals_numpy_on_uneven_chunks(rng):
    movie, _ = spots_movie(rng, n_frames=11)
    a = locate_features(movie, diameter_px=9, min_mass=300)
    b = locate_features(da.from_array(movie, chunks=(4, 50, 128)), diameter_px=9, min_mass=300)
    pd.testing.assert_frame_equal(a, b)


def test_bad_parameters(rng):
    movie, _ = spots_movie(rng, n_frames=1)
    with pytest.raises(PlscopeError, match="odd"):
        locate_features(movie, diameter_px=8)
    with pytest.raises(PlscopeError, match="style"):
        locate_features(movie, diameter_px=9, style="other")
    with pytest.raises(PlscopeError, match="3-D"):
        locate_features(np.zeros((2, 2, 2, 2)), diameter_px=9)


# ---------------------------------------------------------------- real data
def _cg_reference() -> pd.DataFrame:
    z = np.load(PMHC / "cg_loc_orig.npz")
    return pd.concat(
        [
            pd.DataFrame({"frame": int(k), "x_px": z[k][:, 0], "y_px": z[k][:, 1], "mass": z[k][:, 2]})
            for k in z.files
        ],
        ignore_index=True,
    )


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["pMHC_AF647_200k_000_DERIVED.tif", "pMHC_AF647_200k_000_.SPE"])
def test_single_molecule_movie_recovers_the_crocker_grier_localizations(name):
    if not (PMHC / name).exists():
        pytest.skip(f"{PMHC / name} not available")
    from plscope.io.stack import open_stack

    try:
        stack = open_stack(PMHC / name)
    except PlscopeError as exc:  # SPE support is optional in plscope.io
        pytest.skip(f"plscope.io cannot read {name}: {exc}")
    reference = _cg_reference()
    assert len(reference) == 76
    # the reference was made with radius 3, signal threshold 300, mass threshold 5000
    found = locate_features(stack.data, diameter_px=7, min_signal=300, min_mass=5000, style="crocker-grier")
    recall, precision, err = recall_precision(found, reference, max_dist=1.0)
    assert recall >= 0.98 and precision >= 0.95
    assert recall == 1.0 and precision > 0.98  # what it does: 76/76, one extra
    assert np.median(err) < 0.01
    found_ = found.set_index("frame")
    counts = found_.groupby(level=0).size().reindex(range(10), fill_value=0).to_numpy()
    np.testing.assert_allclose(counts, [14, 20, 12, 7, 6, 5, 6, 2, 2, 2], atol=1)


@pytest.mark.realdata
@pytest.mark.slow
def test_bulk_water_trajectories_match_the_trackpy_walkthrough():
    if not BULK.exists():
        pytest.skip(f"{BULK} not available")
    from plscope.io.stack import open_stack

    stack = open_stack(BULK).data
    tracks = track_movie(stack, diameter_px=11, min_mass=20, invert=True, search_range_px=5, memory=3)
    per_frame = tracks.groupby("frame").size()
    # trackpy's walkthrough: 576, 599 and 624 features in frames 19, 29 and 299
    np.testing.assert_allclose(per_frame.loc[[19, 29, 299]].to_numpy(), [576, 599, 624], rtol=0.01)
    # ... 13715 trajectories, 1505 after filter_stubs(25)
    n_tracks = tracks["track_id"].nunique()
    n_long = filter_tracks(tracks, min_length=25)["track_id"].nunique()
    assert n_tracks == pytest.approx(13715, rel=0.01)
    assert n_long == pytest.approx(1505, rel=0.02)
