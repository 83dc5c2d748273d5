"""Per-particle spectra from spectrograph frames ``(t, slit_row, wavelength_pixel)``.

A particle on the spectrograph slit is a horizontal stripe: a few slit rows
wide, spread along the wavelength axis. :func:`find_stripes` finds the
stripes in a reference image (the mean of frames sampled across the run);
:func:`stripe_weights` turns them into one weight vector per particle over
the slit rows (+1 on the stripe rows, minus the stripe's width of
background interpolated from the rows on either side), so that :func:`extract_spectra` is one matrix
product per block of frames: the summed stripe minus the background per
row, for every wavelength pixel. :func:`extract_spectra_dask` maps it over
the chunks of a lazy stack.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import PlscopeError

if TYPE_CHECKING:  # pragma: no cover
    import dask.array as da

logger = logging.getLogger(__name__)

__all__ = [
    "STRIPE_COLUMNS",
    "MAX_TRACK_ROWS",
    "ExtractionError",
    "extract_spectra",
    "extract_spectra_dask",
    "find_stripes",
    "reference_frame",
    "stripe_weights",
    "track_stripes",
]

#: columns of :func:`find_stripes` (rows are slit rows, 0-based; stop is exclusive)
STRIPE_COLUMNS = (
    "particle_id",
    "row",
    "fwhm_rows",
    "row_start",
    "row_stop",
    "signal",
    "snr",
    "n_background_rows",
)


class ExtractionError(PlscopeError):
    """The frames or stripes handed to the extraction have the wrong structure."""


def reference_frame(data, *, max_frames: int = 256) -> np.ndarray:
    """Mean of up to ``max_frames`` frames spread evenly over the stack.

    Parameters
    ----------
    data : array_like or dask.array.Array, shape (t, rows, cols)

    Returns
    -------
    numpy.ndarray, shape (rows, cols), float64
    """
    n = int(data.shape[0])
    idx = np.unique(np.linspace(0, n - 1, min(n, int(max_frames))).round().astype(int))
    sel = data[idx]
    if hasattr(sel, "compute"):
        sel = sel.compute()
    return np.asarray(sel, dtype=np.float64).mean(axis=0)


def _robust_sigma(v: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


def _stripe_rows(
    profile: np.ndarray, floor: float, idx: np.ndarray, widths: np.ndarray, half_width_fwhm: float
) -> list[tuple[float, float, int, int, float]]:
    """``(centre, fwhm, row_start, row_stop, signal)`` of each stripe peak of the row profile.

    The summed rows never reach past half-way to a neighbouring stripe.
    """
    n_rows = profile.size
    rows = []
    for j, (k, w) in enumerate(zip(idx, widths)):
        fwhm = float(max(w, 1.0))
        half = max(1, int(math.ceil(half_width_fwhm * fwhm)))
        near = min([abs(int(k) - int(o)) for o in np.delete(idx, j)] or [10**9])
        half = max(1, min(half, (near - 1) // 2))
        a, b = max(0, k - half), min(n_rows, k + half + 1)
        seg = profile[a:b] - floor
        wts = np.clip(seg, 0, None)
        centre = float(np.sum(wts * np.arange(a, b)) / np.sum(wts)) if wts.sum() > 0 else float(k)
        rows.append((centre, fwhm, a, b, float(profile[k] - floor)))
    return rows


def _background_rows(
    rows: list[tuple[float, float, int, int, float]], n_rows: int, gap_fwhm: float, n_background: int
) -> dict[int, np.ndarray]:
    """Background rows of each stripe: near it, clear of every stripe's summed rows by a gap."""
    blocked = np.zeros(n_rows, dtype=bool)
    for _, fwhm, a, b, _ in rows:
        gap = max(2, int(math.ceil(gap_fwhm * fwhm)))
        blocked[max(0, a - gap) : min(n_rows, b + gap)] = True
    free = np.flatnonzero(~blocked)
    bg: dict[int, np.ndarray] = {}
    for pid, (_, _, sa, sb, _) in enumerate(rows):
        below = free[free < sa][-int(n_background) :] if n_background > 0 else free[:0]
        above = free[free >= sb][: int(n_background)] if n_background > 0 else free[:0]
        bg[pid] = np.concatenate((below, above))
    return bg


def find_stripes(
    image,
    *,
    min_snr: float = 10.0,
    max_stripes: int | None = None,
    half_width_fwhm: float = 1.0,
    background_gap_fwhm: float = 1.5,
    background_rows: int = 8,
) -> pd.DataFrame:
    """Particle stripes along the slit of a spectrograph image.

    Parameters
    ----------
    image : array_like, shape (rows, cols)
        Slit rows by wavelength pixels, e.g. :func:`reference_frame`.
    min_snr : float
        Least prominence of a stripe in the row profile (mean over
        wavelength), in units of the row-to-row noise of the profile
        (robust sigma of its second differences).
    max_stripes : int, optional
        Keep only the brightest stripes.
    half_width_fwhm : float
        Rows summed: centre +- this many FWHM of the stripe (at least +-1 row).
    background_gap_fwhm, background_rows : float, int
        Background rows: up to ``background_rows`` rows on each side, at
        least ``background_gap_fwhm`` FWHM (and 2 rows) beyond the summed
        rows of any stripe.

    Returns
    -------
    pandas.DataFrame
        One row per stripe, sorted by ``row``, columns :data:`STRIPE_COLUMNS`:
        ``particle_id`` (0, 1, ... along the slit), the centre ``row``
        (profile centroid), ``fwhm_rows``, the summed rows
        ``row_start:row_stop``, the ``signal`` (profile height over the
        background), ``snr`` and the number of background rows found.
        The table's ``attrs["background_rows"]`` holds, per particle, the
        background row indices.
    """
    from scipy.signal import find_peaks, peak_widths

    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ExtractionError(
            f"a spectrograph image must be 2-D (slit rows, wavelength pixels), got {img.shape}"
        )
    n_rows = img.shape[0]
    profile = img.mean(axis=1)
    floor = float(np.median(profile))
    noise = _robust_sigma(np.diff(profile, 2)) / math.sqrt(6.0) if n_rows > 4 else 0.0
    if not noise > 0:
        noise = max(float(np.std(profile)) * 1e-3, 1e-12)
    padded = np.concatenate(([floor], profile, [floor]))  # stripes touching the ends still count
    idx, props = find_peaks(padded, prominence=min_snr * noise)
    idx = idx - 1
    empty = pd.DataFrame({c: pd.Series(dtype=float) for c in STRIPE_COLUMNS})
    empty.attrs["background_rows"] = {}
    if idx.size == 0:
        return empty
    prom = props["prominences"]
    if max_stripes is not None and idx.size > max_stripes:
        keep = np.sort(np.argsort(-prom, kind="stable")[: int(max_stripes)])
        idx, prom = idx[keep], prom[keep]
    widths = peak_widths(padded, idx + 1, rel_height=0.5)[0]
    rows = _stripe_rows(profile, floor, idx, widths, half_width_fwhm)
    bg = _background_rows(rows, n_rows, background_gap_fwhm, background_rows)
    out = [
        (pid, centre, fwhm, a, b, signal, signal / noise, int(bg[pid].size))
        for pid, (centre, fwhm, a, b, signal) in enumerate(rows)
    ]
    table = pd.DataFrame(out, columns=list(STRIPE_COLUMNS))
    table["particle_id"] = table["particle_id"].astype(np.int64)
    table["row_start"] = table["row_start"].astype(np.int64)
    table["row_stop"] = table["row_stop"].astype(np.int64)
    table["n_background_rows"] = table["n_background_rows"].astype(np.int64)
    table.attrs["background_rows"] = bg
    return table


#: frames with at most this many rows are read-outs of whole tracks (full
#: vertical binning, one or a few user-defined tracks), not slit images
MAX_TRACK_ROWS = 4


def track_stripes(image) -> pd.DataFrame:
    """Each row of a track read-out as one "particle" (no rows to take a background from).

    A spectrum read out with full vertical binning, or as a few
    user-defined tracks, has a row per track: there is no slit image to
    find particles in, so every track is one spectrum, not background-subtracted.

    Parameters
    ----------
    image : array_like, shape (tracks, cols)

    Returns
    -------
    pandas.DataFrame
        As :func:`find_stripes`, one row per track, ``n_background_rows`` 0.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ExtractionError(f"a track read-out must be 2-D (tracks, wavelength pixels), got {img.shape}")
    signal = img.mean(axis=1) - float(np.median(img))
    rows = [(k, float(k), 1.0, k, k + 1, float(signal[k]), math.nan, 0) for k in range(img.shape[0])]
    table = pd.DataFrame(rows, columns=list(STRIPE_COLUMNS))
    for c in ("particle_id", "row_start", "row_stop", "n_background_rows"):
        table[c] = table[c].astype(np.int64)
    table.attrs["background_rows"] = {k: np.array([], dtype=int) for k in range(img.shape[0])}
    return table


def stripe_weights(n_rows: int, stripes: pd.DataFrame, *, background_rows: dict | None = None) -> np.ndarray:
    """Row weights that turn a frame into background-subtracted stripe spectra.

    Parameters
    ----------
    n_rows : int
        Slit rows of a frame.
    stripes : pandas.DataFrame
        From :func:`find_stripes` (columns ``row_start``, ``row_stop``).
    background_rows : dict of int to array, optional
        Background rows per particle (default ``stripes.attrs["background_rows"]``).
        A stripe without background rows is not background-subtracted.

    Returns
    -------
    numpy.ndarray, shape (n_stripes, n_rows)
        ``+1`` on the stripe's rows and negative weights on its background
        rows: ``weights @ frame`` is the stripe summed over its rows minus
        that many rows of background, the background being the mean of the
        rows on each side interpolated linearly (in row) to the stripe
        centre (a gradient along the slit cancels), or the mean of the rows
        of the one side that has any.
    """
    bg = stripes.attrs.get("background_rows", {}) if background_rows is None else background_rows
    w = np.zeros((len(stripes), int(n_rows)))
    for i, row in enumerate(stripes.itertuples(index=False)):
        a, b = int(row.row_start), int(row.row_stop)
        if not 0 <= a < b <= n_rows:
            raise ExtractionError(f"stripe {i} rows {a}:{b} outside a frame of {n_rows} rows")
        w[i, a:b] = 1.0
        rows = np.asarray(bg.get(int(row.particle_id), bg.get(i, [])), dtype=int)
        below, above = rows[rows < a], rows[rows >= b]
        centre = 0.5 * (a + b - 1)
        if below.size and above.size:
            # background at the stripe interpolated between the two sides: a linear gradient cancels
            rb, ra = below.mean(), above.mean()
            wb, wa = (ra - centre) / (ra - rb), (centre - rb) / (ra - rb)
            w[i, below] -= (b - a) * wb / below.size
            w[i, above] -= (b - a) * wa / above.size
        elif rows.size:
            w[i, rows] -= (b - a) / rows.size
    return w


def extract_spectra(frames, weights: np.ndarray) -> np.ndarray:
    """Stripe spectra of a block of frames.

    Parameters
    ----------
    frames : array_like, shape (t, rows, cols) or (rows, cols)
    weights : numpy.ndarray, shape (n_stripes, rows)
        From :func:`stripe_weights`.

    Returns
    -------
    numpy.ndarray, shape (t, n_stripes, cols) (or (n_stripes, cols)), float64
    """
    f = np.asarray(frames)
    w = np.asarray(weights, dtype=np.float64)
    single = f.ndim == 2
    if single:
        f = f[None]
    if f.ndim != 3 or w.ndim != 2 or w.shape[1] != f.shape[1]:
        raise ExtractionError(
            f"frames {f.shape} and weights {w.shape} do not match: expected (t, rows, cols) "
            "and (n_stripes, rows)"
        )
    out = np.matmul(w[None], f.astype(np.float64, copy=False))
    return out[0] if single else out


def _extract_block(block: np.ndarray, *, weights: np.ndarray) -> np.ndarray:
    return extract_spectra(block, weights)


def extract_spectra_dask(data: da.Array, weights: np.ndarray) -> da.Array:
    """:func:`extract_spectra` mapped over the time chunks of a lazy stack.

    Parameters
    ----------
    data : dask.array.Array, shape (t, rows, cols)
        Chunked along time only (as :func:`plscope.io.open_stack` gives).
    weights : numpy.ndarray, shape (n_stripes, rows)

    Returns
    -------
    dask.array.Array, shape (t, n_stripes, cols), float64 (lazy)
    """
    w = np.asarray(weights, dtype=np.float64)
    if data.ndim != 3 or w.ndim != 2 or w.shape[1] != data.shape[1]:
        raise ExtractionError(f"stack {data.shape} and weights {w.shape} do not match")
    arr = data.rechunk({1: -1, 2: -1})
    chunks = (arr.chunks[0], (w.shape[0],), arr.chunks[2])
    return arr.map_blocks(
        _extract_block, weights=w, dtype=np.float64, chunks=chunks, meta=np.empty((0, 0, 0), np.float64)
    )
