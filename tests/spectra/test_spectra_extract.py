"""Stripes along the slit and background-subtracted spectra."""

from __future__ import annotations

import numpy as np
import pytest

from plscope.sim import stripe_profile
from plscope.spectra.extract import (
    extract_spectra,
    extract_spectra_dask,
    find_stripes,
    reference_frame,
    stripe_weights,
)

ROWS, COLS = 48, 200


def _frames(n, rng, rows=(14.3, 31.8), sigma=1.2, photons=(400.0, 250.0), background=20.0):
    """Frames with Gaussian-profile stripes; returns frames and the true per-stripe spectra."""
    px = np.arange(COLS)
    spectra = np.stack(
        [p / (1 + ((px - 80 - 30 * i) / 12.0) ** 2) for i, p in enumerate(photons)]
    )  # (s, cols)
    prof = np.stack([stripe_profile(ROWS, r, sigma) for r in rows])  # (s, rows)
    # background varies along the wavelength axis and a little along the slit
    bg = background * (1 + 0.3 * np.sin(px / 30.0))[None, :] * (1 + 0.002 * np.arange(ROWS))[:, None]
    expected = bg + np.einsum("sr,sc->rc", prof, spectra)
    frames = rng.poisson(np.broadcast_to(expected, (n, ROWS, COLS))).astype(np.uint16)
    return frames, spectra, prof


def test_stripes_are_found_where_the_particles_are():
    rng = np.random.default_rng(0)
    frames, _, _ = _frames(40, rng)
    stripes = find_stripes(reference_frame(frames))
    assert stripes["particle_id"].tolist() == [0, 1]
    np.testing.assert_allclose(stripes["row"], [14.3, 31.8], atol=0.15)
    np.testing.assert_allclose(stripes["fwhm_rows"], 2.355 * 1.2, rtol=0.35)
    assert (stripes["n_background_rows"] > 0).all()
    bg = stripes.attrs["background_rows"]
    for pid, row in zip(stripes["particle_id"], stripes["row"]):
        assert np.min(np.abs(bg[pid] - row)) > 3 * 1.2  # background rows are clear of the light


def test_extracted_spectra_are_background_free():
    rng = np.random.default_rng(1)
    frames, spectra, prof = _frames(200, rng)
    stripes = find_stripes(reference_frame(frames))
    w = stripe_weights(ROWS, stripes)
    got = extract_spectra(frames, w).mean(axis=0)  # (s, cols)
    frac = np.array(
        [prof[i, a:b].sum() for i, (a, b) in enumerate(zip(stripes["row_start"], stripes["row_stop"]))]
    )
    want = spectra * frac[:, None]
    # mean of 200 frames: standard error ~1.25 counts per pixel, so the largest of 400 deviations is
    # ~3.3 SE = 4 counts; 6 is 4.8 SE. The background (up to 26/row x 7 rows, with a gradient along the
    # slit) is gone: no bias over the 400 pixels beyond 5 SE (0.06 each).
    assert np.max(np.abs(got - want)) < 6.0
    assert abs(np.mean(got - want)) < 0.3
    assert frac.min() > 0.95


def test_dask_extraction_equals_numpy_on_uneven_chunks():
    import dask.array as da

    rng = np.random.default_rng(2)
    frames, _, _ = _frames(45, rng)
    stripes = find_stripes(reference_frame(frames))
    w = stripe_weights(ROWS, stripes)
    lazy = extract_spectra_dask(da.from_array(frames, chunks=(16, ROWS, COLS)), w)  # 16, 16, 13
    assert lazy.shape == (45, 2, COLS)
    np.testing.assert_allclose(lazy.compute(), extract_spectra(frames, w), rtol=0, atol=1e-9)


def test_no_stripes_in_pure_background():
    rng = np.random.default_rng(3)
    img = rng.poisson(50.0, (ROWS, COLS)).astype(float)
    stripes = find_stripes(img)
    assert len(stripes) == 0
    with pytest.raises(ValueError):
        find_stripes(img[0])
