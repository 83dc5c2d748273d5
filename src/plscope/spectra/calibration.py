"""Pixel -> wavelength calibration from a lamp spectrum and a list of known lines.

Steps (each a pure function of arrays):

1. :func:`find_lamp_peaks` -- peaks above the noise, each located to a
   fraction of a pixel by a Gaussian fit; saturated peaks (flat tops at the
   ADC limit) are flagged and kept only to help identify lines.
2. :func:`identify_lines` -- which peak is which line. Hypotheses are exact
   quadratics through three (peak, line) pairs of the strongest peaks, the
   candidate lines of a peak being those within a window of a rough guess
   (``--guess C0,C1``) or, for short line lists, all lines. Each hypothesis
   is scored by how many peaks land on a line; the best few are refined by
   iterative matching and polynomial fits, and the one matching most lines
   most closely wins.
3. :func:`fit_dispersion` -- the polynomial ``lambda(px) = c0 + c1 px + ...``
   through the matched, unsaturated, unblended lines: the order is raised
   while an F-test says the extra term is significant (up to
   ``max_order``), and outliers beyond 5 robust standard deviations are
   rejected one by one.

:func:`calibrate` chains them and returns a :class:`Calibration`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ..errors import PlscopeError

logger = logging.getLogger(__name__)

__all__ = [
    "LINE_COLUMNS",
    "PEAK_COLUMNS",
    "Calibration",
    "CalibrationError",
    "calibrate",
    "extrapolation_spread_nm",
    "find_lamp_peaks",
    "fit_dispersion",
    "identify_lines",
    "shift_pixel_origin",
    "wavelength_at",
]

#: columns of :func:`find_lamp_peaks`
PEAK_COLUMNS = ("pixel", "pixel_err", "height", "prominence", "fwhm_px", "saturated", "snr")
#: columns of :attr:`Calibration.lines`
LINE_COLUMNS = (
    "wavelength_nm",
    "pixel",
    "pixel_err",
    "fit_nm",
    "residual_nm",
    "used",
    "saturated",
    "blended",
    "rejected",
    "height",
)

#: largest ADC values taken as saturation when the lamp maximum equals one of them
_ADC_LIMITS = tuple(float(2**b - 1) for b in (8, 10, 12, 14, 16, 18, 20, 24, 32))
#: most peaks used as anchors of the line-identification hypotheses
_MAX_ANCHORS = 10
#: most hypotheses scored before giving up (blind identification with a long line list)
_MAX_HYPOTHESES = 3_000_000
_OUTLIER_SIGMAS = 5.0
_F_TEST_P = 1e-3


class CalibrationError(PlscopeError):
    """The lamp spectrum cannot be calibrated against the lines given."""


# --------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------


def wavelength_at(pixel: ArrayLike, dispersion_nm: ArrayLike) -> np.ndarray:
    """``c0 + c1 px + c2 px**2 + ...`` for ``dispersion_nm = [c0, c1, ...]``."""
    return np.polynomial.polynomial.polyval(np.asarray(pixel, dtype=float), np.asarray(dispersion_nm, float))


@dataclass(frozen=True, eq=False)
class Calibration:
    """A pixel -> wavelength calibration.

    Attributes
    ----------
    dispersion_nm : tuple of float
        ``(c0, c1, ...)``: ``lambda(px) = c0 + c1 px + c2 px^2 + ...`` in nm,
        ``px`` the 0-based detector column.
    rms_nm : float or None
        Root-mean-square residual of the lines used (None when given as
        coefficients or fitted exactly).
    order : int
    lines : pandas.DataFrame
        One row per identified line, columns :data:`LINE_COLUMNS`
        (``used`` false for saturated, blended or rejected lines).
    pixel_range : (float, float) or None
        Pixels where the calibration is valid: for a lamp, the outermost
        lines used (outside, it is an extrapolation, warned about and
        quantified in ``extrapolation_nm``); for a file's own axis, its columns.
    source : str
        ``"lamp"``, ``"coefficients"``, ``"calibration.json"`` or ``"file"``
        (the wavelength axis stored in the spectra file).
    unmatched_px : tuple of float
        Peaks of the lamp that match no line.
    warnings : tuple of str
    table_nm : numpy.ndarray or None
        The wavelength of every pixel when the calibration is a table (SPE 3
        files store one); pixels beyond it follow ``dispersion_nm``.
    extrapolation_nm : float or None
        Lamp: largest difference, over the detector pixels outside
        ``pixel_range``, between the chosen polynomial and those one order
        lower and higher through the same lines -- how far the extrapolated
        wavelengths can be trusted.
    detail : str
        Where the calibration came from, in words.
    """

    dispersion_nm: tuple[float, ...]
    rms_nm: float | None = None
    order: int = 1
    lines: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(LINE_COLUMNS)))
    pixel_range: tuple[float, float] | None = None
    source: str = "coefficients"
    unmatched_px: tuple[float, ...] = ()
    warnings: tuple[str, ...] = ()
    table_nm: np.ndarray | None = None
    extrapolation_nm: float | None = None
    detail: str = ""

    @classmethod
    def from_coefficients(cls, dispersion_nm: Sequence[float], *, first_pixel: int = 0) -> Calibration:
        """A calibration given as polynomial coefficients ``[c0, c1, ...]``.

        ``first_pixel = 1``: the coefficients number pixels from 1 (Andor
        Solis, WinSpec); they are converted to the 0-based columns used here.
        """
        coefs = tuple(float(c) for c in dispersion_nm)
        if len(coefs) < 2 or not all(math.isfinite(c) for c in coefs) or coefs[1] == 0 and len(coefs) == 2:
            raise CalibrationError(
                f"dispersion_nm must be at least [c0, c1] with finite values, got {list(coefs)}"
            )
        detail = "dispersion_nm"
        if first_pixel:
            coefs = shift_pixel_origin(coefs, first_pixel)
            detail = f"dispersion_nm for pixels numbered from {first_pixel}, converted to 0-based columns"
        return cls(dispersion_nm=coefs, order=len(coefs) - 1, source="coefficients", detail=detail)

    @classmethod
    def from_axis(cls, wavelength_nm, *, detail: str = "the file's wavelength axis") -> Calibration:
        """The wavelength of every column as stored in a spectra file.

        Exactly the file's values at its columns. ``dispersion_nm`` is the
        polynomial (order <= 3) through them; when it reproduces every
        column to 1e-6 nm (SIF and SPE 2 store a polynomial) it is the
        calibration, else the table is (SPE 3) and the polynomial only
        extends it beyond the last column.
        """
        wl = np.asarray(wavelength_nm, dtype=np.float64)
        if wl.ndim != 1 or wl.size < 2 or not np.all(np.isfinite(wl)):
            raise CalibrationError(f"a wavelength axis needs >= 2 finite values, got shape {wl.shape}")
        d = np.diff(wl)
        if not (np.all(d > 0) or np.all(d < 0)):
            raise CalibrationError("the file's wavelength axis is not monotonic")
        px = np.arange(wl.size, dtype=np.float64)
        for order in range(1, int(min(3, wl.size - 1)) + 1):  # the lowest order that reproduces it
            coefs = np.polynomial.polynomial.Polynomial.fit(px, wl, order).convert().coef
            exact = float(np.max(np.abs(wavelength_at(px, coefs) - wl))) < 1e-6
            if exact:
                break
        return cls(
            dispersion_nm=tuple(float(c) for c in coefs),
            order=order,
            pixel_range=(0.0, float(wl.size - 1)),
            source="file",
            table_nm=None if exact else wl.copy(),
            detail=detail,
        )

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Calibration:
        """A calibration as :meth:`to_dict` (and ``plscope calibrate``) wrote it.

        Raises
        ------
        CalibrationError
            The record lacks ``dispersion_nm`` or it is unusable.
        """
        if not isinstance(record, dict) or not isinstance(record.get("dispersion_nm"), list):
            raise CalibrationError("has no 'dispersion_nm' list (not a calibration written by plscope?)")
        base = cls.from_coefficients(record["dispersion_nm"])
        rng = record.get("pixel_range")
        table = record.get("table_nm")
        lines = pd.DataFrame(record.get("lines") or [], columns=list(LINE_COLUMNS))
        for col in ("used", "saturated", "blended", "rejected"):
            lines[col] = np.array([bool(v) for v in lines[col]], dtype=bool)
        return dataclasses.replace(
            base,
            rms_nm=record.get("rms_nm"),
            order=int(record.get("order", base.order)),
            lines=lines,
            pixel_range=None if not rng else (float(rng[0]), float(rng[1])),
            source=str(record.get("source", "coefficients")),
            table_nm=None if not table else np.asarray(table, np.float64),
            extrapolation_nm=record.get("extrapolation_nm"),
            warnings=tuple(record.get("warnings") or ()),
            detail=str(record.get("detail", "")),
        )

    def wavelength_nm(self, pixel) -> np.ndarray:
        """Wavelength (nm) at ``pixel`` (array_like, 0-based, fractional allowed)."""
        poly = wavelength_at(pixel, self.dispersion_nm)
        if self.table_nm is None:
            return poly
        px = np.asarray(pixel, dtype=float)
        inside = (px >= 0) & (px <= self.table_nm.size - 1)
        table = np.interp(px, np.arange(self.table_nm.size), self.table_nm)
        return np.where(inside, table, poly)

    def dispersion_nm_per_px(self, pixel) -> np.ndarray:
        """Local dispersion ``d lambda / d px`` (nm per pixel)."""
        d = np.polynomial.polynomial.polyder(np.asarray(self.dispersion_nm, float))
        return np.polynomial.polynomial.polyval(np.asarray(pixel, dtype=float), d)

    @property
    def n_lines(self) -> int:
        """Number of lines the polynomial was fitted to."""
        return int(self.lines["used"].sum()) if len(self.lines) else 0

    def check_monotonic(self, n_pixels: int) -> bool:
        """Whether the wavelength changes monotonically over pixels ``0 .. n_pixels - 1``."""
        if self.table_nm is not None:
            d = np.diff(self.wavelength_nm(np.arange(n_pixels)))
        else:
            d = self.dispersion_nm_per_px(np.arange(n_pixels))
        return bool(np.all(d > 0) or np.all(d < 0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record: ``dispersion_nm``, ``rms_nm``, ``lines`` (with residuals), ..."""
        lines = []
        for row in self.lines.itertuples(index=False):
            d = row._asdict()
            lines.append(
                {
                    k: (
                        bool(v)
                        if isinstance(v, (bool, np.bool_))
                        else (
                            None
                            if isinstance(v, float) and not math.isfinite(v)
                            else (float(v) if isinstance(v, (float, np.floating)) else v)
                        )
                    )
                    for k, v in d.items()
                }
            )
        return {
            "dispersion_nm": [float(c) for c in self.dispersion_nm],
            "rms_nm": None if self.rms_nm is None or not math.isfinite(self.rms_nm) else float(self.rms_nm),
            "order": int(self.order),
            "n_lines": self.n_lines,
            "source": self.source,
            "pixel_range": None if self.pixel_range is None else [float(v) for v in self.pixel_range],
            "extrapolation_nm": (
                None
                if self.extrapolation_nm is None or not math.isfinite(self.extrapolation_nm)
                else float(self.extrapolation_nm)
            ),
            "detail": self.detail,
            "table_nm": None if self.table_nm is None else [float(v) for v in self.table_nm],
            "lines": lines,
            "unmatched_px": [float(p) for p in self.unmatched_px],
            "warnings": list(self.warnings),
        }


def shift_pixel_origin(dispersion_nm: Sequence[float], first_pixel: int) -> tuple[float, ...]:
    """Coefficients for 0-based columns from coefficients for pixels numbered from ``first_pixel``.

    ``lambda = sum c_k q**k`` with ``q = px + first_pixel``; the result
    ``b`` gives the same wavelengths as ``sum b_k px**k``.
    """
    from numpy.polynomial import Polynomial

    p = Polynomial(np.asarray(dispersion_nm, float))(Polynomial([float(first_pixel), 1.0]))
    coef = np.zeros(len(dispersion_nm))
    coef[: p.coef.size] = p.coef
    return tuple(float(c) for c in coef)


def extrapolation_spread_nm(
    pixel, wavelength_nm, order: int, pixels_outside: np.ndarray, coefs: np.ndarray
) -> float | None:
    """How far polynomials one order lower and higher through the same lines disagree outside them.

    Returns the largest ``|lambda_o'(px) - lambda_o(px)|`` over
    ``pixels_outside`` for ``o' = order - 1`` (if >= 1) and ``order + 1``
    (if the lines leave a degree of freedom), or None when there is no
    pixel outside or no alternative order.
    """
    px = np.asarray(pixel, float)
    wl = np.asarray(wavelength_nm, float)
    out = np.asarray(pixels_outside, float)
    if out.size == 0:
        return None
    spreads = []
    for o in (order - 1, order + 1):
        if o < 1 or px.size < o + 2:
            continue
        alt = _poly_fit(px, wl, o)
        spreads.append(float(np.max(np.abs(wavelength_at(out, alt) - wavelength_at(out, coefs)))))
    return max(spreads) if spreads else None


# --------------------------------------------------------------------------
# peaks
# --------------------------------------------------------------------------


def _noise_sigma(y: np.ndarray) -> float:
    """White-noise level from successive differences (robust to peaks)."""
    d = np.diff(y)
    s = float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0))
    if s > 0:
        return s
    # (nearly) noiseless data: the typical small step, not the peaks' flanks
    small = d[np.abs(d) <= np.percentile(np.abs(d), 75)]
    s = float(np.sqrt(np.mean(small**2)) / math.sqrt(2.0)) if small.size else 0.0
    return s if s > 0 else max(1e-9 * float(np.ptp(y)), 1e-12)


def _saturation_level(y: np.ndarray, saturation_counts: float | str | None) -> float | None:
    if saturation_counts is None:
        return None
    if isinstance(saturation_counts, str):
        if saturation_counts != "auto":
            raise ValueError(f"saturation_counts must be a number, 'auto' or None, got {saturation_counts!r}")
        top = float(np.max(y))
        at_top = y >= top
        if top in _ADC_LIMITS or np.any(at_top[1:] & at_top[:-1]):
            return top
        return None
    return float(saturation_counts)


def _gauss_fit(
    xw: np.ndarray, yw: np.ndarray, x0: float, height: float, sigma0: float
) -> tuple[float, float, float]:
    """Centre, its standard error and sigma of a Gaussian + constant (NaN on failure)."""
    from scipy.optimize import curve_fit

    def g(x, a, m, s, b):
        return a * np.exp(-0.5 * ((x - m) / s) ** 2) + b

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # OptimizeWarning: no covariance -> NaN error, handled below
            popt, pcov = curve_fit(g, xw, yw, p0=[height, x0, sigma0, float(np.min(yw))], maxfev=2000)
    except (RuntimeError, ValueError, TypeError):
        return math.nan, math.nan, math.nan
    err = float(np.sqrt(pcov[1, 1])) if np.all(np.isfinite(pcov)) else math.nan
    return float(popt[1]), err, abs(float(popt[2]))


def _lamp_samples(counts, pixel) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(pixel, counts)`` of a lamp spectrum, sorted by pixel."""
    y = np.asarray(counts, dtype=float)
    px = np.arange(y.size, dtype=float) if pixel is None else np.asarray(pixel, dtype=float)
    if y.ndim != 1 or px.shape != y.shape:
        raise CalibrationError(
            f"lamp counts and pixels must be 1-D of the same length, got {y.shape}, {px.shape}"
        )
    if px.size > 1 and not np.all(np.diff(px) > 0):
        order = np.argsort(px, kind="stable")
        px, y = px[order], y[order]
        if not np.all(np.diff(px) > 0):
            raise CalibrationError("lamp pixels repeat")
    if y.size < 5 or not np.all(np.isfinite(y)):
        raise CalibrationError("lamp spectrum needs at least 5 finite values")
    return px, y


def _flat_top_centre(y: np.ndarray, px: np.ndarray, k: int, sat: float) -> tuple[float, float]:
    """Centre of the saturated run around sample ``k`` and half its width (at least 0.5) as the error."""
    run_lo, run_hi = k, k
    while run_lo > 0 and y[run_lo - 1] >= sat:
        run_lo -= 1
    while run_hi < y.size - 1 and y[run_hi + 1] >= sat:
        run_hi += 1
    return 0.5 * (px[run_lo] + px[run_hi]), max(0.5 * (px[run_hi] - px[run_lo]), 0.5)


def _three_point_centre(y: np.ndarray, px: np.ndarray, k: int) -> float:
    """Three-point Gaussian (log-parabola) interpolation of the peak at sample ``k``."""
    yl, yc, yh = (
        np.maximum(y[max(k - 1, 0)], 1e-9),
        np.maximum(y[k], 1e-9),
        np.maximum(y[min(k + 1, y.size - 1)], 1e-9),
    )
    den = math.log(yl) - 2 * math.log(yc) + math.log(yh)
    frac = 0.5 * (math.log(yl) - math.log(yh)) / den if den < 0 else 0.0
    return float(np.interp(k + np.clip(frac, -0.5, 0.5), np.arange(y.size), px))


def find_lamp_peaks(
    counts, *, pixel=None, min_snr: float = 8.0, saturation_counts: float | str | None = "auto"
) -> pd.DataFrame:
    """Lamp lines: peaks above the noise, located to a fraction of a pixel.

    Parameters
    ----------
    counts : array_like, shape (n,)
        The lamp spectrum.
    pixel : array_like, shape (n,), optional
        Pixel of each sample (default ``0 .. n-1``), increasing.
    min_snr : float
        Least prominence of a peak, in units of the white-noise sigma (from
        successive differences).
    saturation_counts : float, "auto" or None
        Counts at which the detector saturates. ``"auto"``: the maximum of
        the spectrum when it is an ADC limit (2^b - 1) or is reached by two
        adjacent pixels (a flat top). None: never saturated.

    Returns
    -------
    pandas.DataFrame
        One row per peak (by pixel), columns :data:`PEAK_COLUMNS`. The
        position of an unsaturated peak comes from a Gaussian + constant
        fit over +-1.5 FWHM (not reaching half-way to a neighbouring peak);
        a saturated peak (any pixel of its top at the saturation level) has
        the centre of its flat top and ``pixel_err`` of half its width.
    """
    from scipy.signal import find_peaks, peak_widths

    px, y = _lamp_samples(counts, pixel)
    sigma = _noise_sigma(y)
    sat = _saturation_level(y, saturation_counts)
    idx, props = find_peaks(y, prominence=min_snr * sigma)
    empty = pd.DataFrame({c: pd.Series(dtype=bool if c == "saturated" else float) for c in PEAK_COLUMNS})
    if idx.size == 0:
        return empty
    widths = peak_widths(
        y,
        idx,
        rel_height=0.5,
        prominence_data=(props["prominences"], props["left_bases"], props["right_bases"]),
    )[0]
    rows = []
    for j, k in enumerate(idx):
        prom = float(props["prominences"][j])
        fwhm = float(max(widths[j], 1.0))
        lo_n = idx[j - 1] if j > 0 else -(10**9)
        hi_n = idx[j + 1] if j + 1 < idx.size else 10**9
        half = int(max(2, min(math.ceil(1.5 * fwhm), (k - lo_n) // 2, (hi_n - k) // 2)))
        a, b = max(0, k - half), min(y.size, k + half + 1)
        saturated = sat is not None and bool(np.any(y[max(0, k - 1) : k + 2] >= sat))
        if sat is not None and saturated:
            centre, err = _flat_top_centre(y, px, int(k), sat)
        else:
            centre, err, _ = _gauss_fit(px[a:b], y[a:b], float(px[k]), prom, fwhm / 2.355)
            if not (math.isfinite(centre) and abs(centre - px[k]) <= 1.5 and math.isfinite(err)):
                centre, err = _three_point_centre(y, px, int(k)), 0.5
        rows.append((centre, err, float(y[k]), prom, fwhm, saturated, prom / sigma))
    out = pd.DataFrame(rows, columns=list(PEAK_COLUMNS))
    return out.sort_values("pixel", ignore_index=True)


# --------------------------------------------------------------------------
# line identification
# --------------------------------------------------------------------------


def _nearest(lines: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and signed distance to the nearest line, for every value (any shape)."""
    j = (
        np.clip(np.searchsorted(lines, values), 1, lines.size - 1)
        if lines.size > 1
        else np.zeros(values.shape, int)
    )
    if lines.size > 1:
        left, right = lines[j - 1], lines[j]
        use_left = np.abs(values - left) <= np.abs(values - right)
        j = np.where(use_left, j - 1, j)
    return j, values - lines[j]


def _poly_fit(px: np.ndarray, wl: np.ndarray, order: int) -> np.ndarray:
    """Least-squares polynomial coefficients (c0, c1, ...) in raw pixels, well conditioned."""
    order = int(min(order, px.size - 1))
    return np.polynomial.Polynomial.fit(px, wl, order).convert().coef


def _match(
    px: np.ndarray, lines: np.ndarray, coefs: np.ndarray, tol_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches of peaks to lines within ``tol_px``: (peak indices, line indices)."""
    pred = wavelength_at(px, coefs)
    disp = np.abs(np.polynomial.polynomial.polyval(px, np.polynomial.polynomial.polyder(coefs)))
    disp = np.where(disp > 0, disp, np.inf)
    j, d = _nearest(lines, pred)
    dist_px = np.abs(d) / disp
    ok = dist_px <= tol_px
    best: dict[int, int] = {}
    for i in np.flatnonzero(ok):
        jj = int(j[i])
        if jj not in best or dist_px[i] < dist_px[best[jj]]:
            best[jj] = int(i)
    pi = np.array(sorted(best.values()), dtype=int)
    li = np.array([int(j[i]) for i in pi], dtype=int)
    return pi, li


def _refine(
    px: np.ndarray, lines: np.ndarray, coefs: np.ndarray, *, max_order: int, tols: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Alternate matching and fitting with shrinking tolerances."""
    pi = li = np.zeros(0, int)
    rms = math.inf
    for tol in tols:
        pi, li = _match(px, lines, coefs, tol)
        if pi.size < 2:
            return pi, li, coefs, math.inf
        order = max(1, min(max_order, pi.size - 2))
        coefs = _poly_fit(px[pi], lines[li], order)
        r = lines[li] - wavelength_at(px[pi], coefs)
        rms = float(np.sqrt(np.mean(r**2)))
    return pi, li, coefs, rms


def _candidate_lines(
    px_anchor: np.ndarray, lines: np.ndarray, guess: np.ndarray | None, window_nm: float
) -> list[np.ndarray]:
    if guess is None:
        return [np.arange(lines.size) for _ in px_anchor]
    pred = wavelength_at(px_anchor, guess)
    return [np.flatnonzero(np.abs(lines - p) <= window_nm) for p in pred]


def identify_lines(
    peak_px,
    lines_nm,
    *,
    n_pixels: float,
    guess: Sequence[float] | None = None,
    strength=None,
    window_nm: float | None = None,
    max_order: int = 3,
    tol_px: float = 2.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match lamp peaks to known lines.

    Parameters
    ----------
    peak_px : array_like, shape (n_peaks,)
        Peak positions (pixels), e.g. ``find_lamp_peaks(...)["pixel"]``.
    lines_nm : array_like
        Known wavelengths (nm), sorted.
    n_pixels : float
        Detector size (pixels ``0 .. n_pixels - 1``): the dispersion must be
        monotonic over it.
    guess : sequence of float, optional
        Rough coefficients ``[c0, c1, ...]``: each anchor peak's candidate
        lines are those within ``window_nm`` of the guess. Without a guess
        every line is a candidate (blind identification; practical for
        lists of up to a few dozen lines, e.g. the lines in view).
    strength : array_like, shape (n_peaks,), optional
        Peak prominences; the strongest peaks serve as anchors, and break
        ties between hypotheses.
    window_nm : float, optional
        Default: 6 % of the wavelength span of the guess over the detector
        (at least 3 nm), enough for a linear guess of a curved dispersion.
    max_order : int
        Highest polynomial order used while matching.
    tol_px : float
        Largest distance (pixels) between a peak and its line while scoring
        hypotheses.

    Returns
    -------
    peak_index, line_index : numpy.ndarray of int
        Matched pairs (one to one).
    coefs : numpy.ndarray
        The polynomial of the final matching step.

    Raises
    ------
    CalibrationError
        Fewer than two peaks or lines, too many hypotheses for blind
        identification (give a guess), or no consistent match.
    """
    px = np.asarray(peak_px, dtype=float)
    lines = np.unique(np.asarray(lines_nm, dtype=float))
    if px.size < 2:
        raise CalibrationError(f"the lamp spectrum has {px.size} peak(s); at least 2 are needed")
    if lines.size < 2:
        raise CalibrationError(f"{lines.size} known line(s) given; at least 2 are needed")
    strength = np.ones(px.size) if strength is None else np.asarray(strength, dtype=float)
    g = None if guess is None else np.asarray(guess, dtype=float)
    if g is not None and (g.size < 2 or not np.all(np.isfinite(g))):
        raise CalibrationError(
            f"the guess must be at least two finite coefficients C0,C1, got {list(np.atleast_1d(g))}"
        )
    edges_px = np.array([0.0, float(n_pixels) - 1.0])
    if g is not None and window_nm is None:
        span = float(np.ptp(wavelength_at(np.linspace(0, n_pixels - 1, 5), g)))
        window_nm = max(3.0, 0.06 * span)
    n_par = 3 if min(lines.size, px.size) >= 3 else 2
    order_anchor = np.argsort(-strength, kind="stable")[:_MAX_ANCHORS]
    anchors = np.sort(order_anchor)
    cands = _candidate_lines(px[anchors], lines, g, window_nm or 0.0)

    P, L = _hypotheses(px, lines, anchors, cands, n_par)
    P, L, d1, d2 = _monotonic_interpolants(P, L, n_par, edges_px, g, window_nm or 0.0)
    scores = _hypothesis_scores(px, lines, P, L, d1, d2, strength, tol_px)
    pi, li, coefs = _best_hypothesis(px, lines, P, L, d1, d2, scores, max_order=max_order, tol_px=tol_px)
    if pi.size < 2:
        raise CalibrationError("the lamp peaks do not match the known lines (fewer than 2 matches)")
    return pi, li, coefs


def _hypotheses(
    px: np.ndarray, lines: np.ndarray, anchors: np.ndarray, cands: list[np.ndarray], n_par: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every ``n_par`` anchors x one candidate line each, wavelength monotonic in pixel: ``(P, L)``, (H, n_par)."""
    blocks_p: list[np.ndarray] = []
    blocks_l: list[np.ndarray] = []
    total = kept = 0
    too_many = CalibrationError(
        f"too many ways to match {px.size} peaks to {lines.size} lines without a guess; give a rough "
        "dispersion guess (--guess C0,C1: wavelength at pixel 0 and nm per pixel) or only the lines in view"
    )
    for sub in itertools.combinations(range(anchors.size), n_par):
        sizes = [cands[s].size for s in sub]
        total += int(np.prod(sizes))
        if total > 4 * _MAX_HYPOTHESES:
            raise too_many
        if min(sizes) == 0:
            continue
        grid = np.stack(np.meshgrid(*(cands[s] for s in sub), indexing="ij"), axis=-1).reshape(-1, n_par)
        d = np.diff(lines[grid], axis=1)
        keep = np.all(d > 0, axis=1) | np.all(d < 0, axis=1)
        kept += int(keep.sum())
        if kept > _MAX_HYPOTHESES:
            raise too_many
        if keep.any():
            blocks_l.append(grid[keep])
            blocks_p.append(np.broadcast_to(anchors[list(sub)], (int(keep.sum()), n_par)))
    if not blocks_p:
        raise CalibrationError(
            "no candidate lines near the guessed wavelengths of the lamp peaks "
            "(check the guess and the line list)"
        )
    return px[np.concatenate(blocks_p)], lines[np.concatenate(blocks_l)]


def _monotonic_interpolants(
    P: np.ndarray, L: np.ndarray, n_par: int, edges_px: np.ndarray, g: np.ndarray | None, window_nm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Newton coefficients ``d1, d2`` of each hypothesis's interpolant; those monotonic over the detector.

    With a guess ``g``, the interpolant must also run the same way as the
    guess and stay within ``3 window_nm`` of it at the detector edges.
    """
    d1 = (L[:, 1] - L[:, 0]) / (P[:, 1] - P[:, 0])
    if n_par == 3:
        d2 = ((L[:, 2] - L[:, 1]) / (P[:, 2] - P[:, 1]) - d1) / (P[:, 2] - P[:, 0])
    else:
        d2 = np.zeros_like(d1)
    # monotonic over the detector: derivative d1 + d2 (2p - p0 - p1) keeps its sign at both ends
    der = d1[:, None] + d2[:, None] * (2 * edges_px[None, :] - P[:, 0:1] - P[:, 1:2])
    valid = (np.sign(der[:, 0]) == np.sign(der[:, 1])) & (der[:, 0] != 0)
    if g is not None:
        gd = np.polynomial.polynomial.polyval(edges_px, np.polynomial.polynomial.polyder(g))
        valid &= np.sign(der[:, 0]) == np.sign(gd[0])
        pred_edges = (
            L[:, 0:1]
            + d1[:, None] * (edges_px - P[:, 0:1])
            + d2[:, None] * (edges_px - P[:, 0:1]) * (edges_px - P[:, 1:2])
        )
        valid &= np.all(np.abs(pred_edges - wavelength_at(edges_px, g)) <= 3 * window_nm, axis=1)
    if not valid.any():
        raise CalibrationError("no monotonic dispersion matches the lamp peaks to the lines")
    return P[valid], L[valid], d1[valid], d2[valid]


def _hypothesis_scores(px, lines, P, L, d1, d2, strength, tol_px: float) -> np.ndarray:
    """Peaks each hypothesis puts within ``tol_px`` of a line, weighted by closeness and strength."""
    weight = np.log1p(strength / max(float(np.median(strength)), 1e-12))
    scores = np.empty(P.shape[0])
    for s in range(0, P.shape[0], 20000):
        sl = slice(s, s + 20000)
        dp = px[None, :] - P[sl, 0:1]
        pred = L[sl, 0:1] + d1[sl, None] * dp + d2[sl, None] * dp * (px[None, :] - P[sl, 1:2])
        slope = np.abs(d1[sl, None] + d2[sl, None] * (2 * px[None, :] - P[sl, 0:1] - P[sl, 1:2]))
        _, dist = _nearest(lines, pred)
        dpx = np.abs(dist) / np.maximum(slope, 1e-12)
        inl = dpx <= tol_px
        scores[sl] = np.sum(inl * (1.0 + 0.01 * weight[None, :]) * (1.0 - 0.25 * (dpx / tol_px) ** 2), axis=1)
    return scores


def _best_hypothesis(px, lines, P, L, d1, d2, scores, *, max_order: int, tol_px: float):
    """Refine the 20 best-scoring hypotheses; the one matching most peaks (then lowest rms) wins."""
    best = None
    for h in np.argsort(-scores, kind="stable")[:20]:
        coefs = np.array(
            [
                L[h, 0] - d1[h] * P[h, 0] + d2[h] * P[h, 0] * P[h, 1],
                d1[h] - d2[h] * (P[h, 0] + P[h, 1]),
                d2[h],
            ]
        )
        pi, li, coefs, rms = _refine(px, lines, coefs, max_order=max_order, tols=(tol_px, 1.5, 1.0, 1.0))
        key = (pi.size, -rms)
        if best is None or key > best[0]:
            best = (key, pi, li, coefs)
    assert best is not None
    return best[1], best[2], best[3]


# --------------------------------------------------------------------------
# dispersion polynomial
# --------------------------------------------------------------------------


def fit_dispersion(
    pixel,
    wavelength_nm,
    *,
    order: int | None = None,
    max_order: int = 3,
    outlier_sigmas: float = _OUTLIER_SIGMAS,
    min_outlier_nm: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Polynomial pixel -> wavelength with order selection and outlier rejection.

    Parameters
    ----------
    pixel, wavelength_nm : array_like, shape (n,)
        Matched line positions and wavelengths.
    order : int, optional
        Fixed order; by default the order starts at 1 and is raised while
        the extra coefficient is significant (F-test, p < 1e-3) and at least
        two degrees of freedom remain, up to ``max_order``.
    outlier_sigmas : float
        A line whose residual exceeds this many robust standard deviations
        (1.4826 MAD, but at least ``min_outlier_nm / outlier_sigmas``) is
        rejected, worst first, and the fit repeated.

    Returns
    -------
    coefs : numpy.ndarray
        ``(c0, c1, ...)``.
    used : numpy.ndarray of bool, shape (n,)
        Lines kept.
    order : int
    """
    from scipy.stats import f as f_dist

    px = np.asarray(pixel, dtype=float)
    wl = np.asarray(wavelength_nm, dtype=float)
    n = px.size
    if n < 2:
        raise CalibrationError(f"{n} usable line(s); at least 2 are needed for a dispersion")
    used = np.ones(n, dtype=bool)

    def choose(mask: np.ndarray) -> int:
        m = int(mask.sum())
        if order is not None:
            return int(min(order, m - 1))
        o = 1
        while o < max_order and m - (o + 2) >= 2:
            r0 = wl[mask] - wavelength_at(px[mask], _poly_fit(px[mask], wl[mask], o))
            r1 = wl[mask] - wavelength_at(px[mask], _poly_fit(px[mask], wl[mask], o + 1))
            rss0, rss1 = float(r0 @ r0), float(r1 @ r1)
            dof = m - (o + 2)
            if rss1 <= 0:
                o += 1
                break
            fstat = (rss0 - rss1) / (rss1 / dof)
            if f_dist.sf(fstat, 1, dof) < _F_TEST_P:
                o += 1
            else:
                break
        return o

    while True:
        o = choose(used)
        coefs = _poly_fit(px[used], wl[used], o)
        r = wl - wavelength_at(px, coefs)
        m = int(used.sum())
        if m - (o + 1) < 2:
            break
        ru = r[used]
        sig = 1.4826 * float(np.median(np.abs(ru - np.median(ru))))
        limit = max(outlier_sigmas * sig, min_outlier_nm)
        worst = int(np.argmax(np.where(used, np.abs(r), -1.0)))
        if abs(r[worst]) > limit and limit > 0:
            used[worst] = False
            continue
        break
    return coefs, used, int(o)


# --------------------------------------------------------------------------
# all together
# --------------------------------------------------------------------------


def calibrate(
    pixel,
    counts,
    lines_nm,
    *,
    guess: Sequence[float] | None = None,
    order: int | None = None,
    max_order: int = 3,
    min_snr: float = 8.0,
    saturation_counts: float | str | None = "auto",
    window_nm: float | None = None,
    blend_px: float = 1.0,
) -> Calibration:
    """Calibrate a lamp spectrum against known line wavelengths.

    Parameters
    ----------
    pixel : array_like, shape (n,) or None
        Pixel of each sample (None: ``0 .. n-1``).
    counts : array_like, shape (n,)
    lines_nm : array_like
        Known wavelengths (nm): the lines in view, or a longer list (then
        give ``guess``).
    guess : sequence of float, optional
        Rough ``[c0, c1, ...]`` (nm at pixel 0, nm per pixel, ...).
    order, max_order : int
        Polynomial order (default: chosen by F-test up to ``max_order``).
    min_snr, saturation_counts :
        See :func:`find_lamp_peaks`.
    window_nm :
        See :func:`identify_lines`.
    blend_px : float
        A matched line with another known line closer than this many pixels,
        or than the FWHM of its peak, is a blend and is not used for the fit.

    Returns
    -------
    Calibration
        With ``rms_nm`` of the lines used and every identified line's
        residual; saturated, blended and rejected lines are listed with
        ``used = False``.

    Raises
    ------
    CalibrationError
        No peaks, no consistent identification, or fewer than two usable lines.
    """
    y = np.asarray(counts, dtype=float)
    px_all = np.arange(y.size, dtype=float) if pixel is None else np.asarray(pixel, dtype=float)
    lines = np.unique(np.asarray(lines_nm, dtype=float))
    lines = lines[np.isfinite(lines)]
    peaks = find_lamp_peaks(y, pixel=px_all, min_snr=min_snr, saturation_counts=saturation_counts)
    if len(peaks) < 2:
        raise CalibrationError(
            f"{len(peaks)} peak(s) above {min_snr:g} noise sigmas in the lamp spectrum; "
            "at least 2 lines are needed"
        )
    n_pixels = float(px_all.max()) + 1.0
    pi, li, _ = identify_lines(
        peaks["pixel"].to_numpy(),
        lines,
        n_pixels=n_pixels,
        guess=guess,
        strength=peaks["prominence"].to_numpy(),
        window_nm=window_nm,
        max_order=max_order,
    )
    matched = peaks.iloc[pi].reset_index(drop=True)
    wl = lines[li]
    approx = _poly_fit(matched["pixel"].to_numpy(), wl, max(1, min(max_order, len(wl) - 2)))
    fit = _fit_lines(matched, wl, lines, approx, blend_px, order=order, max_order=max_order, check=True)
    # final re-match of all peaks with the accurate polynomial (picks up lines missed with the rough one)
    pi2, li2 = _match(peaks["pixel"].to_numpy(), lines, fit.coefs, max(4.0 * fit.sigma_px(wl), 0.25))
    if pi2.size > pi.size:
        matched = peaks.iloc[pi2].reset_index(drop=True)
        wl = lines[li2]
        fit = _fit_lines(matched, wl, lines, fit.coefs, blend_px, order=order, max_order=max_order)
        pi = pi2
    table = fit.line_table(matched, wl)
    cal = _lamp_calibration(table, fit.coefs, fit.order, peaks, pi, px_all, min_snr=min_snr)
    if not cal.check_monotonic(int(n_pixels)):
        raise CalibrationError(
            "the fitted dispersion is not monotonic over the detector; "
            "give a fixed lower order or check the line list"
        )
    logger.info(
        "calibration: order %d through %d lines (%d saturated, %d blended, %d rejected), rms %s nm",
        fit.order,
        int(fit.used().sum()),
        int(fit.sat.sum()),
        int(fit.blended.sum()),
        int(table["rejected"].sum()),
        "n/a" if cal.rms_nm is None else f"{cal.rms_nm:.4f}",
    )
    return cal


@dataclass
class _LineFit:
    """A dispersion fit through the usable matched lines."""

    coefs: np.ndarray
    order: int
    sat: np.ndarray  # per matched line
    blended: np.ndarray
    usable: np.ndarray
    used_u: np.ndarray  # per usable line: kept by the fit
    disp: np.ndarray  # local dispersion (nm/px) per matched line
    px_u: np.ndarray  # pixels of the usable lines

    def sigma_px(self, wl: np.ndarray) -> float:
        """Robust scatter (px) of the used lines about the fit (0.25 px with <= 2 lines)."""
        resid_u = wl[self.usable][self.used_u] - wavelength_at(self.px_u[self.used_u], self.coefs)
        if resid_u.size <= 2:
            return 0.25
        return 1.4826 * float(np.median(np.abs(resid_u - np.median(resid_u)))) / float(np.median(self.disp))

    def used(self) -> np.ndarray:
        """Per matched line: used by the fit."""
        used = np.zeros(self.usable.size, dtype=bool)
        used[np.flatnonzero(self.usable)[self.used_u]] = True
        return used

    def line_table(self, matched: pd.DataFrame, wl: np.ndarray) -> pd.DataFrame:
        """The identified lines with their residuals and flags (:func:`_line_table`)."""
        used = self.used()
        return _line_table(
            matched,
            wl,
            self.coefs,
            used=used,
            sat=self.sat,
            blended=self.blended,
            rejected=self.usable & ~used,
        )


def _fit_lines(
    matched: pd.DataFrame,
    wl: np.ndarray,
    lines: np.ndarray,
    coefs: np.ndarray,
    blend_px: float,
    *,
    order: int | None,
    max_order: int,
    check: bool = False,
) -> _LineFit:
    """Usable lines (blends judged at the dispersion of ``coefs``) and the dispersion fit through them.

    With ``check``, fewer than two usable lines raise :class:`CalibrationError`.
    """
    sat, blended, usable, disp = _usable_lines(matched, wl, lines, coefs, blend_px)
    if check and usable.sum() < 2:
        raise CalibrationError(
            f"only {int(usable.sum())} unsaturated, unblended line(s) identified "
            f"({int(sat.sum())} saturated, {int(blended.sum())} blended); at least 2 are needed"
        )
    px_u = matched["pixel"].to_numpy()[usable]
    fitted, used_u, o = fit_dispersion(
        px_u, wl[usable], order=order, max_order=max_order, min_outlier_nm=0.05 * float(np.median(disp))
    )
    return _LineFit(fitted, o, sat, blended, usable, used_u, disp, px_u)


def _usable_lines(
    matched: pd.DataFrame, wl: np.ndarray, lines: np.ndarray, coefs: np.ndarray, blend_px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Saturated and blended matched lines, the usable rest, and the local dispersion (nm/px).

    A line is blended when another known line lies closer than ``blend_px``
    pixels, or than its peak's FWHM, at the local dispersion of ``coefs``.
    """
    sat = matched["saturated"].to_numpy(bool)
    disp = np.abs(
        np.polynomial.polynomial.polyval(matched["pixel"].to_numpy(), np.polynomial.polynomial.polyder(coefs))
    )
    gaps = np.abs(lines[None, :] - wl[:, None])
    gaps[gaps == 0] = np.inf
    blended = gaps.min(axis=1) < np.maximum(blend_px, matched["fwhm_px"].to_numpy()) * disp
    return sat, blended, ~sat & ~blended, disp


def _line_table(
    matched: pd.DataFrame,
    wl: np.ndarray,
    coefs: np.ndarray,
    *,
    used: np.ndarray,
    sat: np.ndarray,
    blended: np.ndarray,
    rejected: np.ndarray,
) -> pd.DataFrame:
    """:attr:`Calibration.lines`: every identified line, its fit residual and why it is (not) used."""
    fit_nm = wavelength_at(matched["pixel"].to_numpy(), coefs)
    return pd.DataFrame(
        {
            "wavelength_nm": wl,
            "pixel": matched["pixel"].to_numpy(),
            "pixel_err": matched["pixel_err"].to_numpy(),
            "fit_nm": fit_nm,
            "residual_nm": wl - fit_nm,
            "used": used,
            "saturated": sat,
            "blended": blended,
            "rejected": rejected,
            "height": matched["height"].to_numpy(),
        },
        columns=list(LINE_COLUMNS),
    )


def _lamp_calibration(
    table: pd.DataFrame,
    coefs: np.ndarray,
    o: int,
    peaks: pd.DataFrame,
    pi: np.ndarray,
    px_all: np.ndarray,
    *,
    min_snr: float,
) -> Calibration:
    """The :class:`Calibration` of a lamp fit: rms, valid pixel range, extrapolation and notes."""
    notes: list[str] = []
    used, rejected = table["used"].to_numpy(bool), table["rejected"].to_numpy(bool)
    r = table.loc[table["used"], "residual_nm"].to_numpy()
    exact = int(used.sum()) <= o + 1
    rms = None if exact else float(np.sqrt(np.mean(r**2)))
    if exact:
        notes.append(f"{int(used.sum())} line(s) for an order-{o} dispersion: fitted exactly, no rms")
    if rejected.any():
        notes.append(
            f"{int(rejected.sum())} line(s) rejected as outliers: "
            + ", ".join(f"{w:.3f} nm" for w in table["wavelength_nm"].to_numpy()[rejected])
        )
    unmatched = np.setdiff1d(np.arange(len(peaks)), pi)
    strong = peaks["snr"].to_numpy() >= 3 * min_snr
    if strong.sum() >= 6 and np.isin(np.flatnonzero(strong), pi).mean() < 0.5:
        notes.append(
            f"only {int(np.isin(np.flatnonzero(strong), pi).sum())} of the {int(strong.sum())} strong "
            "lamp peaks match a known line: check the guess and the line list"
        )
    valid, spread = _extrapolation(table, o, coefs, px_all, notes)
    return Calibration(
        dispersion_nm=tuple(float(c) for c in coefs),
        rms_nm=rms,
        order=int(o),
        lines=table,
        pixel_range=valid,
        source="lamp",
        extrapolation_nm=spread,
        detail=f"lamp lines, order {o}",
        unmatched_px=tuple(float(p) for p in peaks["pixel"].to_numpy()[unmatched]),
        warnings=tuple(notes),
    )


def _extrapolation(
    table: pd.DataFrame, o: int, coefs: np.ndarray, px_all: np.ndarray, notes: list[str]
) -> tuple[tuple[float, float], float | None]:
    """Pixel range between the outermost lines used, and how far the dispersion is extrapolated beyond."""
    lo_px, hi_px = float(px_all.min()), float(px_all.max())
    span_used = table.loc[table["used"], "pixel"]
    valid = (float(span_used.min()), float(span_used.max())) if len(span_used) else (lo_px, hi_px)
    outside = px_all[(px_all < valid[0]) | (px_all > valid[1])]
    spread = extrapolation_spread_nm(
        table.loc[table["used"], "pixel"], table.loc[table["used"], "wavelength_nm"], o, outside, coefs
    )
    if outside.size:
        how_far = (
            ""
            if spread is None
            else f" (polynomials one order lower/higher differ there by up to {spread:.3f} nm)"
        )
        notes.append(
            f"extrapolated beyond the outermost lines used (pixels {valid[0]:.1f}-{valid[1]:.1f}) "
            f"over {outside.size} of the {px_all.size} pixels {lo_px:.0f}-{hi_px:.0f}{how_far}"
        )
    return valid, spread
