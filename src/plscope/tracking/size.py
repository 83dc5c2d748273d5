"""Particle sizes from a PSF-aware fit of a blurred square.

Each particle (or each small group of particles whose halos overlap) is
fitted in a region of interest with the exact pixel-integrated model of
:mod:`plscope.tracking.models`::

    image = plane background + sum_k total_k * square(x0_k, y0_k, side_k; sigma)

by MINPACK's Levenberg-Marquardt (the ``lmder`` call of
``scipy.optimize.least_squares(method="lm")``, analytic Jacobian; model and
Jacobian assembled by the compiled kernel of
:mod:`plscope.tracking._size_kernels`), pixels weighted by
``1 / sqrt(variance)`` where the variance model ``s0 + a * signal``
(read/background noise plus shot noise) is fitted to the residuals of a
first pass. Neighbouring particles outside
the group are masked out. The PSF sigma is fixed: given by the caller, or
estimated beforehand by fitting it free on the particles where it is well
determined (side >~ 3 sigma) and taking the median.

The side is *not* the square root of a threshold area: blurring by the PSF
inflates any threshold mask (by ~2-4 sigma in width, depending on
brightness), which would overestimate a 400 nm particle by tens of percent.
A sanity relation of the model: the intensity second moment per axis is
``side**2 / 12 + sigma**2 + 1/12`` (px**2).

For particles that are not squares, ``equivalent_diameter_nm`` is the
diameter of the disk of the same area, from the PSF-corrected second
moments of the particle's own light (exact for disks and ellipses, +2.3 %
for squares and rectangles), with ``aspect_ratio`` and ``orientation_deg``.
In a crowded field, particles are fitted jointly only with their closest
neighbours (groups of at most four); the others are masked.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.optimize import leastsq
from scipy.special import erf

from ..columns import SIZE_COLUMNS
from ..errors import PlscopeError
from ._size_kernels import assemble, edge_terms, pixel_edges, scale_jacobian
from .detect import _check_image, _check_positive, robust_std
from .models import _G

logger = logging.getLogger(__name__)


_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)
_PARAMS_PER_PARTICLE = 4  # x0, y0, side, total
#: A fitted side below this (px) is a point source: size unresolved, only an upper bound is reported.
_POINT_SIDE_PX = 0.05
#: Aspect ratio (PSF-corrected moments) above which a particle is flagged as possibly two merged ones:
#: two equal squares touching edge to edge read 2.0, unequal ones (1 : 1.4) 1.8 (and less when the
#: PSF-corrected moments are noisy); single rectangles of aspect <= 1.5 (the shapes the size model is
#: validated for) read up to ~1.6 and are told apart by their long side (below).
MERGED_ASPECT = 1.6
#: ... with the short side (PSF-corrected moments) above this fraction of the square model's side
#: (two touching squares: ~0.65; a rectangle of aspect 1.5: ~0.8; a small noisy square whose short
#: moment collapsed: < 0.3).
MERGED_SHORT_OVER_SIZE = 0.4
#: ... and the long side below this multiple of the square model's side.
MERGED_LONG_OVER_SIZE = 1.6


# --------------------------------------------------------------------------
# model with analytic derivatives
# --------------------------------------------------------------------------
def _profile_and_derivs(pix: np.ndarray, center: float, side: float, sigma: float):
    """1-D pixel-integrated blurred box (as ``models.box_profile``) and derivatives.

    Returns ``(P, dP/dcenter, dP/dside, dP/dsigma)``, each shaped like ``pix``.
    Uses ``d/du G(u) = Phi(u/sigma)`` and ``d/dsigma G(u) = phi(u/sigma)``
    for the antiderivative ``G(u) = u Phi(u/sigma) + sigma phi(u/sigma)``.
    """
    a = center - 0.5 * side
    b = center + 0.5 * side
    u = np.concatenate([pix + 0.5 - a, pix - 0.5 - a, pix + 0.5 - b, pix - 0.5 - b])
    z = u / sigma
    phi = np.exp(-0.5 * z * z) * _INV_SQRT2PI
    cdf = 0.5 * (1.0 + erf(z / _SQRT2))
    g = u * cdf + sigma * phi
    n = pix.size
    g = g.reshape(4, n)
    cdf = cdf.reshape(4, n)
    phi = phi.reshape(4, n)
    P = (g[0] - g[1]) - (g[2] - g[3])
    fa = cdf[0] - cdf[1]  # dP/da = -fa
    fb = cdf[2] - cdf[3]  # dP/db = +fb
    d_center = fb - fa
    d_side = 0.5 * (fa + fb)
    d_sigma = (phi[0] - phi[1]) - (phi[2] - phi[3])
    return P, d_center, d_side, d_sigma


@dataclass
class _Group:
    """A set of particles fitted together in one region of interest."""

    members: list[int]  # row indices into the particles table
    labels: list[int]  # their label values in the footprint image
    rows: slice
    cols: slice
    fit_mask: np.ndarray  # bool, ROI shape


class _GroupModel:
    """Plane background + k blurred squares on one ROI, sigma fixed or free."""

    def __init__(
        self, rows: slice, cols: slice, mask: np.ndarray, k: int, sigma: float | None, background: str
    ):
        self.y = np.arange(rows.start, rows.stop, dtype=np.float64)
        self.x = np.arange(cols.start, cols.stop, dtype=np.float64)
        self.yc = 0.5 * (self.y[0] + self.y[-1])
        self.xc = 0.5 * (self.x[0] + self.x[-1])
        self.mask = mask
        self.k = k
        self.fixed_sigma = sigma
        self.plane = background == "plane"
        self.n_bg = 3 if self.plane else 1
        yy, xx = np.meshgrid(self.y - self.yc, self.x - self.xc, indexing="ij")
        self.dxx = xx[mask]
        self.dyy = yy[mask]
        # row and column of each fitted pixel (in the order of ``roi[mask]``) and the pixel edges
        self.iy, self.ix = np.nonzero(mask)
        self.edges_x = pixel_edges(self.x)
        self.edges_y = pixel_edges(self.y)

    @property
    def n_params(self) -> int:
        return self.n_bg + _PARAMS_PER_PARTICLE * self.k + (0 if self.fixed_sigma is not None else 1)

    def sigma(self, p: np.ndarray) -> float:
        return float(self.fixed_sigma) if self.fixed_sigma is not None else float(p[-1])

    def evaluate(self, p: np.ndarray, *, jac: bool = True):
        """Model (masked pixels, 1-D), particle-only signal, and Jacobian (None when ``jac`` is False).

        The sum over squares of ``total / side**2`` times the outer product of
        the two 1-D profiles (:func:`_profile_and_derivs`), plus the
        background; the edge terms of all squares in one vectorized call, the
        rest in the compiled :func:`~plscope.tracking._size_kernels.assemble`
        (the same arithmetic in the same order as the numpy expressions).
        """
        sigma = self.sigma(p)
        sq = p[self.n_bg : self.n_bg + _PARAMS_PER_PARTICLE * self.k].reshape(self.k, _PARAMS_PER_PARTICLE)
        terms = edge_terms(self.edges_x, self.edges_y, sq, sigma)
        n = self.dxx.size
        mdl, signal = np.empty(n), np.empty(n)
        J = np.empty((n, self.n_params)) if jac else np.empty((0, 0))
        free = self.fixed_sigma is None
        assemble(
            terms,
            float(sigma),
            self.x.size,
            self.iy,
            self.ix,
            p,
            self.n_bg,
            self.dxx,
            self.dyy,
            free,
            jac,
            mdl,
            signal,
            J,
        )
        return mdl, signal, (J if jac else None)

    def sigma_column(self, p: np.ndarray, sigma: float) -> np.ndarray:
        """d model / d sigma at fixed other parameters (for error propagation)."""
        m = self.mask
        col = np.zeros(self.dxx.size)
        for i in range(self.k):
            j0 = self.n_bg + _PARAMS_PER_PARTICLE * i
            x0, y0, side, total = p[j0 : j0 + 4]
            px, _, _, dpx_g = _profile_and_derivs(self.x, x0, side, sigma)
            py, _, _, dpy_g = _profile_and_derivs(self.y, y0, side, sigma)
            col += total / (side * side) * (np.outer(dpy_g, px)[m] + np.outer(py, dpx_g)[m])
        return col


# --------------------------------------------------------------------------
# groups and regions of interest
# --------------------------------------------------------------------------
def _footprints(
    shape: tuple[int, int], particles: pd.DataFrame, labels: np.ndarray | None, default_radius_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Label image of particle footprints and the label of each table row.

    With ``labels`` (from :func:`detect_particles`) each row's label is the
    one under ``particle_id + 1``; otherwise rectangles from the ``bbox_*``
    columns, or disks of ``default_radius_px`` around ``(x_px, y_px)``.
    Returned labels of rows are >= 1; labels not in the table stay in the
    image and are masked as foreign particles.
    """
    rows, cols = shape
    n = len(particles)
    x = particles["x_px"].to_numpy(float)
    y = particles["y_px"].to_numpy(float)
    if labels is not None:
        lab = np.asarray(labels)
        if lab.shape != shape:
            raise PlscopeError(f"labels: shape {lab.shape} does not match the image shape {shape}")
        lab = lab.astype(np.int64)
        if lab.min() < 0:
            raise PlscopeError("labels: expected non-negative integer labels")
        row_labels = particles["particle_id"].to_numpy(np.int64) + 1
        present = np.zeros(int(lab.max()) + 2, bool)
        present[np.unique(lab)] = True
        missing = (row_labels > lab.max()) | ~present[np.clip(row_labels, 0, present.size - 1)]
        if missing.any():
            # particles without a region in `labels`: give them a small disk
            fresh = int(lab.max()) + 1 + np.arange(int(missing.sum()))
            row_labels = row_labels.copy()
            row_labels[missing] = fresh
            yy, xx = np.indices(shape)
            for lbl, xi, yi in zip(fresh, x[missing], y[missing]):
                disk = ((xx - xi) ** 2 + (yy - yi) ** 2 <= default_radius_px**2) & (lab == 0)
                lab[disk] = lbl
        return lab, row_labels
    lab = np.zeros(shape, np.int64)
    bbox_cols = ["bbox_x_min_px", "bbox_y_min_px", "bbox_x_max_px", "bbox_y_max_px"]
    if all(c in particles.columns for c in bbox_cols):
        b = particles[bbox_cols].to_numpy(float)
        for i in range(n):
            x0, y0, x1, y1 = (int(v) for v in np.round(b[i]))
            sl = (slice(max(y0, 0), min(y1, rows)), slice(max(x0, 0), min(x1, cols)))
            region = lab[sl]
            region[region == 0] = i + 1
    else:
        yy, xx = np.indices(shape)
        for i in range(n):
            disk = ((xx - x[i]) ** 2 + (yy - y[i]) ** 2 <= default_radius_px**2) & (lab == 0)
            lab[disk] = i + 1
    return lab, np.arange(1, n + 1, dtype=np.int64)


def _contacts(img: np.ndarray) -> dict[tuple[int, int], int]:
    """Number of pixel edges each pair of labels ``(low, high)`` shares in a label image."""
    counts: dict[tuple[int, int], int] = {}
    for a, b in ((img[:, :-1], img[:, 1:]), (img[:-1, :], img[1:, :])):
        sel = (a != b) & (a > 0) & (b > 0)
        if not sel.any():
            continue
        lo = np.minimum(a[sel], b[sel])
        hi = np.maximum(a[sel], b[sel])
        # one integer per pair: sorted as the pairs (lo, hi) are (labels are below `base`)
        base = int(hi.max()) + 1
        keys, cnt = np.unique(lo * base + hi, return_counts=True)
        for key, c in zip(keys.tolist(), cnt.tolist()):
            pair = divmod(key, base)
            counts[pair] = counts.get(pair, 0) + c
    return counts


def _merge_closest(
    foot: np.ndarray, grown: np.ndarray, row_labels: np.ndarray, max_group: int
) -> list[list[int]]:
    """Row indices of each group: halo contacts merged pairwise, closest first, up to ``max_group``."""
    from skimage.segmentation import expand_labels

    near = expand_labels(foot, 1)
    n = len(row_labels)
    label_to_row = {int(lab): i for i, lab in enumerate(row_labels)}
    parent = list(range(n))
    size = [1] * n

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    direct = _contacts(foot)  # regions split by the watershed share a boundary
    touching = _contacts(near)
    halo = _contacts(grown)
    edges = sorted(halo, key=lambda k: (direct.get(k, 0), touching.get(k, 0), halo[k]), reverse=True)
    for la, lb in edges:
        if la in label_to_row and lb in label_to_row:
            ra, rb = find(label_to_row[la]), find(label_to_row[lb])
            if ra != rb and size[ra] + size[rb] <= max_group:
                parent[rb] = ra
                size[ra] += size[rb]
    by_root: dict[int, list[int]] = {}
    for i in range(n):
        by_root.setdefault(find(i), []).append(i)
    return list(by_root.values())


def _any_label(img: np.ndarray, labels: list[int]) -> np.ndarray:
    """``np.isin(img, labels)`` for the few labels of a group (one comparison per label)."""
    out = img == labels[0]
    for lbl in labels[1:]:
        out |= img == lbl
    return out


def _group_box(
    objects: list, lbls: list[int], shape: tuple[int, int], centre: tuple[float, float], halo_px: int
) -> tuple[int, int, int, int]:
    """Bounding box ``(r0, r1, c0, c1)`` of the grown footprints ``lbls`` (a box around ``centre`` if none)."""
    rows_n, cols_n = shape
    r0, r1, c0, c1 = rows_n, 0, cols_n, 0
    for lbl in lbls:
        sl = objects[lbl - 1] if lbl - 1 < len(objects) else None
        if sl is None:
            continue
        r0, r1 = min(r0, sl[0].start), max(r1, sl[0].stop)
        c0, c1 = min(c0, sl[1].start), max(c1, sl[1].stop)
    if r1 <= r0:  # no footprint at all: centre box
        yi, xi = centre
        r0, r1 = int(yi) - halo_px, int(yi) + halo_px + 1
        c0, c1 = int(xi) - halo_px, int(xi) + halo_px + 1
    return r0, r1, c0, c1


def _groups(
    image: np.ndarray,
    particles: pd.DataFrame,
    foot: np.ndarray,
    grown: np.ndarray,
    row_labels: np.ndarray,
    *,
    halo_px: int,
    pad_px: int,
    max_group: int = 4,
) -> list[_Group]:
    """Group particles whose halos (footprints grown by ``halo_px``) touch.

    In a crowded field halos chain many particles together, and one joint
    fit of dozens of particles is slow and fragile. Groups are therefore
    merged pairwise, closest neighbours first (footprints that share a
    boundary, then footprints one pixel apart, then by the length of the
    halo contact), and never beyond ``max_group``
    particles; a neighbour left out of a group is masked out of its fit.
    ``grown``: the footprints ``foot`` grown by ``halo_px``.
    """
    rows_n, cols_n = image.shape
    objects = ndimage.find_objects(grown)
    finite = np.isfinite(image)
    out = []
    x_px, y_px = particles["x_px"].to_numpy(float), particles["y_px"].to_numpy(float)
    for members in _merge_closest(foot, grown, row_labels, max_group):
        lbls = [int(row_labels[i]) for i in members]
        i = members[0]
        centre = (float(y_px[i]), float(x_px[i]))
        r0, r1, c0, c1 = _group_box(objects, lbls, image.shape, centre, halo_px)
        rows = slice(max(r0 - pad_px, 0), min(r1 + pad_px, rows_n))
        cols = slice(max(c0 - pad_px, 0), min(c1 + pad_px, cols_n))
        g = grown[rows, cols]
        fit_mask = ((g == 0) | _any_label(g, lbls)) & finite[rows, cols]
        out.append(_Group(members=members, labels=lbls, rows=rows, cols=cols, fit_mask=fit_mask))
    return out


def _initial_guess(
    image: np.ndarray,
    group: _Group,
    centres: np.ndarray,
    grown: np.ndarray,
    sigma0: float,
    background: str,
) -> np.ndarray:
    """Starting parameters of a group: median background, detected centres, sides from second moments.

    ``centres``: ``(x_px, y_px)`` of every particles row, shape (n, 2).
    """
    roi = image[group.rows, group.cols]
    g = grown[group.rows, group.cols]
    bg_pix = roi[(g == 0) & group.fit_mask]
    bg0 = float(np.median(bg_pix)) if bg_pix.size >= 10 else float(np.percentile(roi[group.fit_mask], 20))
    p = [bg0] + ([0.0, 0.0] if background == "plane" else [])
    yy, xx = np.meshgrid(
        np.arange(group.rows.start, group.rows.stop),
        np.arange(group.cols.start, group.cols.stop),
        indexing="ij",
    )
    for i, lbl in zip(group.members, group.labels):
        own = g == lbl
        d = np.clip(roi - bg0, 0.0, None) * own
        total = float(d.sum())
        x0 = float(centres[i, 0])
        y0 = float(centres[i, 1])
        if total > 0:
            m2 = 0.5 * (float((d * (xx - x0) ** 2).sum()) + float((d * (yy - y0) ** 2).sum())) / total
            side = math.sqrt(max(12.0 * (m2 - sigma0**2 - 1.0 / 12.0), 1.0))
        else:
            side = 2.0
            total = 1.0
        p += [x0, y0, side, total]
    return np.asarray(p, dtype=np.float64)


# --------------------------------------------------------------------------
# one fit
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class _FitResult:
    params: np.ndarray
    cov: np.ndarray
    sigma: float
    sigma_err: float
    chi2_red: float
    n_px: int
    success: bool
    message: str
    resid: np.ndarray  # data - model on fitted pixels
    signal: np.ndarray  # particle-only model on fitted pixels
    jac_w: np.ndarray  # weighted Jacobian at the solution
    weights: np.ndarray
    model: _GroupModel


def _log_indices(model: _GroupModel) -> np.ndarray:
    """Parameters fitted on a log scale (side, total, free sigma): positive by construction."""
    idx = []
    for i in range(model.k):
        j0 = model.n_bg + _PARAMS_PER_PARTICLE * i
        idx += [j0 + 2, j0 + 3]
    if model.fixed_sigma is None:
        idx.append(model.n_params - 1)
    return np.asarray(idx, dtype=int)


def _covariance(J: np.ndarray, chi2_red: float) -> np.ndarray:
    """``chi2_red * inv(J^T J)`` with column scaling; NaN when singular."""
    n_par = J.shape[1]
    norms = np.sqrt(np.sum(J * J, axis=0))
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        return np.full((n_par, n_par), np.nan)
    Js = J / norms
    evals, evecs = np.linalg.eigh(Js.T @ Js)
    if evals[0] <= 1e-12 * evals[-1]:
        return np.full((n_par, n_par), np.nan)
    cov_s = (evecs / evals) @ evecs.T
    return cov_s / np.outer(norms, norms) * chi2_red


def _failed_fit(p0: np.ndarray, model: _GroupModel, n_px: int, w: np.ndarray, message: str) -> _FitResult:
    """A failed fit: starting parameters, NaN covariance, ``success`` False and ``message``."""
    n_par = model.n_params
    return _FitResult(
        p0,
        np.full((n_par, n_par), np.nan),
        model.sigma(p0),
        np.nan,
        np.nan,
        n_px,
        False,
        message,
        np.zeros(0),
        np.zeros(0),
        np.zeros((0, n_par)),
        w,
        model,
    )


def _fit_problems(
    group: _Group, sides: np.ndarray, p: np.ndarray, s_fit: float, sigma_free: bool
) -> list[str]:
    """Why fitted parameters are absurd (side or free sigma out of range, non-finite values)."""
    ny = group.rows.stop - group.rows.start
    nx = group.cols.stop - group.cols.start
    problems = []
    if np.any(sides > 2.0 * max(nx, ny)):
        problems.append("side out of range")
    if sigma_free and not (0.2 <= s_fit <= 0.5 * max(nx, ny)):
        problems.append("PSF sigma out of range")
    if not np.all(np.isfinite(p)):
        problems.append("non-finite parameters")
    return problems


#: ``least_squares`` status (from MINPACK's ``info``) and its message: the messages of
#: ``scipy.optimize.least_squares(method="lm")``, whose MINPACK call :func:`_solve_log` makes
_MINPACK_STATUS = {0: -1, 1: 2, 2: 3, 3: 4, 4: 1, 5: 0}
_STATUS_MESSAGES = {
    -1: "Improper input parameters status returned from `leastsq`",
    0: "The maximum number of function evaluations is exceeded.",
    1: "`gtol` termination condition is satisfied.",
    2: "`ftol` termination condition is satisfied.",
    3: "`xtol` termination condition is satisfied.",
    4: "Both `ftol` and `xtol` termination conditions are satisfied.",
}
_LM_TOL = 1e-8  # least_squares' default ftol, xtol and gtol


@dataclass(frozen=True)
class _Solution:
    """What a fit uses of the solver's result (the names of ``least_squares``' result)."""

    x: np.ndarray
    status: int
    message: str


def _memoized(f):
    """``f`` remembering its last argument and value (MINPACK asks again at the point just checked)."""
    last: list = [None, None]

    def g(q):
        if last[0] is None or not np.array_equal(q, last[0]):
            last[0], last[1] = q.copy(), f(q)
        return last[1].copy()

    return g


def _solve_log(
    model: _GroupModel, data: np.ndarray, w: np.ndarray, p0: np.ndarray, logi: np.ndarray
) -> tuple[np.ndarray, _Solution]:
    """MINPACK Levenberg-Marquardt on the parameters, ``logi`` of them on a log scale; ``(p, result)``.

    The MINPACK ``lmder`` call of ``least_squares(method="lm", x_scale="jac")``
    with its tolerances (1e-8), step bound factor (100) and evaluation cap
    (``100 n``), through ``scipy.optimize.leastsq`` without ``least_squares``'
    extra model evaluations (the starting point twice, the solution once):
    the same iterates, status and message. Raises ValueError as
    ``least_squares`` does when the residuals at the start are not finite.
    """

    def to_p(q):
        p = q.copy()
        p[logi] = np.exp(np.clip(q[logi], -50.0, 50.0))
        return p

    def fun(q):
        mdl, _, _ = model.evaluate(to_p(q), jac=False)
        return (mdl - data) * w

    col_scale = np.ones(p0.size)

    def jac(q):
        p = to_p(q)
        _, _, J = model.evaluate(p, jac=True)
        col_scale[logi] = p[logi]
        scale_jacobian(J, col_scale, w)  # J[:, logi] *= p[logi]; J * w[:, None]
        return J

    q0 = p0.copy()
    q0[logi] = np.log(p0[logi])
    fun_m, jac_m = _memoized(fun), _memoized(jac)
    with np.errstate(over="ignore", invalid="ignore"):
        if not np.all(np.isfinite(fun_m(q0))):
            raise ValueError("Residuals are not finite in the initial point.")
        q, _, _, mesg, info = leastsq(
            fun_m,
            q0,
            Dfun=jac_m,
            full_output=True,
            ftol=_LM_TOL,
            xtol=_LM_TOL,
            gtol=_LM_TOL,
            maxfev=100 * model.n_params,
            factor=100.0,
        )
    status = _MINPACK_STATUS.get(info, -1)
    # (info 6-8: no further reduction possible at machine precision; least_squares has no status for
    # them and raised KeyError: a failed fit with MINPACK's message)
    return to_p(q), _Solution(q, status, _STATUS_MESSAGES[status] if info in _MINPACK_STATUS else mesg)


def _fit_group(
    image: np.ndarray,
    group: _Group,
    p0: np.ndarray,
    *,
    sigma: float | None,
    sigma0: float,
    var_s0: float,
    var_a: float,
    background: str,
) -> _FitResult:
    """Weighted least-squares fit of one group.

    Levenberg-Marquardt (MINPACK, as ``least_squares(method="lm")``, see
    :func:`_solve_log`) on log-transformed side, total and sigma, which
    keeps them positive without bounds. (The bounded "trf" method takes an SVD of the Jacobian at every
    step, which multi-threaded OpenBLAS made 20x slower on a loaded 2-core
    machine; MINPACK does not call BLAS.)
    """
    k = len(group.members)
    model = _GroupModel(group.rows, group.cols, group.fit_mask, k, sigma, background)
    data = image[group.rows, group.cols][group.fit_mask]
    if sigma is None:
        p0 = np.append(p0, sigma0)
    p0 = np.asarray(p0, dtype=np.float64).copy()
    n_par = model.n_params
    logi = _log_indices(model)
    p0[logi] = np.maximum(p0[logi], 1e-3)
    # weights from the starting model (p0 comes from a previous pass when available)
    _, sig0, _ = model.evaluate(p0, jac=False)
    var = var_s0 + var_a * np.clip(sig0, 0.0, None)
    w = 1.0 / np.sqrt(var)
    if data.size <= n_par + 2:
        return _failed_fit(p0, model, int(data.size), w, "too few pixels in the region of interest")
    try:
        p, res = _solve_log(model, data, w, p0, logi)
    except (ValueError, np.linalg.LinAlgError) as exc:  # pragma: no cover - defensive
        return _failed_fit(p0, model, int(data.size), w, f"fit failed: {exc}")
    mdl, signal, Jp = model.evaluate(p, jac=True)
    Jw = Jp * w[:, None]
    resid_w = (mdl - data) * w
    dof = max(data.size - n_par, 1)
    chi2_red = float(np.sum(resid_w**2) / dof)
    side_idx = np.array([model.n_bg + _PARAMS_PER_PARTICLE * i + 2 for i in range(k)], dtype=int)
    sides = p[side_idx]
    # a side collapsed to ~0 is a point source (diffraction-limited particle), not a failure: its
    # side column vanishes, so the covariance of the other parameters is taken without it
    kept = np.ones(n_par, bool)
    kept[side_idx[sides < _POINT_SIDE_PX]] = False
    keep = np.flatnonzero(kept)
    cov = np.full((n_par, n_par), np.nan)
    if np.all(np.isfinite(Jw)):
        cov[np.ix_(keep, keep)] = _covariance(Jw[:, keep], chi2_red)
    s_fit = model.sigma(p)
    s_err = float(math.sqrt(cov[-1, -1])) if sigma is None and np.isfinite(cov[-1, -1]) else float("nan")
    problems = _fit_problems(group, sides, p, s_fit, sigma is None)
    ok = bool(res.status > 0) and not problems
    message = "; ".join(problems) if problems else str(res.message)
    return _FitResult(
        p, cov, s_fit, s_err, chi2_red, int(data.size), ok, message, data - mdl, signal, Jw, w, model
    )


def _variance_model(fits: list[_FitResult], s0: float) -> tuple[float, float]:
    """Fit ``E[resid**2] = s0 + a * signal`` over all fitted pixels (a >= 0)."""
    used = [f for f in fits if f.success and f.resid.size]
    if not used:
        return s0, 0.0
    r = np.concatenate([f.resid for f in used])
    m = np.concatenate([np.clip(f.signal, 0, None) for f in used])
    if r.size < 10:
        return s0, 0.0
    # 2 x 2 normal equations (cheap, no multi-threaded LAPACK call on a long array)
    r2 = r * r
    n_, sm, smm = float(m.size), float(m.sum()), float(m @ m)
    det = n_ * smm - sm * sm
    if det <= 1e-12 * max(n_ * smm, 1e-300):
        return s0, 0.0
    s0_fit = (smm * float(r2.sum()) - sm * float(m @ r2)) / det
    a = (n_ * float(m @ r2) - sm * float(r2.sum())) / det
    if not np.isfinite(a) or a < 0:
        a = 0.0
    if not np.isfinite(s0_fit) or s0_fit <= 0:
        s0_fit = s0
    return s0_fit, a


def _fit_all(
    image: np.ndarray,
    groups: list[_Group],
    p0s: list[np.ndarray],
    *,
    sigma: float | None,
    sigma0: float,
    s0: float,
    a: float,
    background: str,
) -> list[_FitResult]:
    return [
        _fit_group(image, g, p0, sigma=sigma, sigma0=sigma0, var_s0=s0, var_a=a, background=background)
        for g, p0 in zip(groups, p0s)
    ]


def _shape_from_moments(
    image: np.ndarray, group: _Group, fit: _FitResult, sigma_px: float, grown: np.ndarray
) -> list[tuple[float, float, float, float, float]]:
    """Equivalent diameter, aspect ratio, orientation, long and short side of each member, PSF-corrected.

    The particle's own image is the data minus a plane fitted to the
    background pixels of the region of interest (outside every particle's
    halo: second moments weigh far pixels by r**2, so the background must
    not depend on the square model) minus the fitted models of the other
    group members, over the particle's own halo; in the halos of its
    neighbours and in masked pixels the particle's own fitted model stands in
    for its tails; beyond the halos, nothing. Its
    intensity covariance ``M`` is the shape's covariance plus
    ``(sigma**2 + 1/12) I`` (Gaussian PSF, square pixels), so
    ``S = M - (sigma**2 + 1/12) I`` is the shape's. A uniform ellipse of
    semi-axes ``a, b`` has ``S = diag(a**2, b**2) / 4``: its area is
    ``4 pi sqrt(det S)`` and the diameter of the disk of equal area
    ``4 det(S)**(1/4)``. Exact for disks and ellipses; a square or rectangle
    comes out 2.3 % larger than its area-equivalent diameter.
    """
    model = fit.model
    p = fit.params
    ny = group.rows.stop - group.rows.start
    nx = group.cols.stop - group.cols.start
    yy, xx = np.meshgrid(model.y, model.x, indexing="ij")
    roi = image[group.rows, group.cols]
    g = grown[group.rows, group.cols]
    bg = _moment_background(roi, g, group, fit, xx, yy)
    halos = _any_label(g, group.labels)
    members = _member_images(model, p, sigma_px)
    out = []
    for j, m in enumerate(members):
        if m is None or not np.all(np.isfinite(roi[group.fit_mask])):
            out.append((float("nan"),) * 5)
            continue
        x0, y0, own_model = m
        others = sum((o[2] for k, o in enumerate(members) if k != j and o is not None), np.zeros((ny, nx)))
        mine = (g == group.labels[j]) & group.fit_mask
        own = np.where(
            mine,
            np.where(np.isfinite(roi), roi, 0.0) - bg - others,
            np.where(halos | ~group.fit_mask, own_model, 0.0),
        )
        out.append(_corrected_shape(own, xx - x0, yy - y0, sigma_px))
    return out


def _moment_background(
    roi: np.ndarray, g: np.ndarray, group: _Group, fit: _FitResult, xx: np.ndarray, yy: np.ndarray
) -> np.ndarray:
    """Background plane of a region of interest: fitted to the pixels outside every halo (or the fit's)."""
    model = fit.model
    p = fit.params
    outside = (g == 0) & group.fit_mask & np.isfinite(roi)
    if outside.sum() >= 20:
        A = np.column_stack([np.ones(int(outside.sum())), xx[outside] - model.xc, yy[outside] - model.yc])
        coef, *_ = np.linalg.lstsq(A, roi[outside], rcond=None)
        return coef[0] + coef[1] * (xx - model.xc) + coef[2] * (yy - model.yc)
    return p[0] + ((p[1] * (xx - model.xc) + p[2] * (yy - model.yc)) if model.plane else 0.0)


def _member_images(
    model: _GroupModel, p: np.ndarray, sigma_px: float
) -> list[tuple[float, float, np.ndarray] | None]:
    """``(x0, y0, model image)`` of each fitted square of a group (None when its parameters are absurd).

    The image of a square is ``total / side**2`` times the outer product of
    its ``models.box_profile`` along y and x (:func:`_box_profiles`).
    """
    sq = p[model.n_bg : model.n_bg + _PARAMS_PER_PARTICLE * model.k].reshape(model.k, _PARAMS_PER_PARTICLE)
    good = np.all(np.isfinite(sq), axis=1) & (sq[:, 2] > 0)
    members: list[tuple[float, float, np.ndarray] | None] = [None] * model.k
    if not good.any():
        return members
    px, py = _box_profiles(model.x, model.y, sq[good], sigma_px)
    for n, j in enumerate(np.flatnonzero(good)):
        x0, y0, side, total = sq[j]
        members[j] = (x0, y0, np.outer(py[n], px[n]) * (total / (side * side)))
    return members


def _box_profiles(
    x: np.ndarray, y: np.ndarray, squares: np.ndarray, sigma_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """``models.box_profile`` along ``x`` and ``y`` of each square ``(x0, y0, side, total)``, batched.

    The same expressions on the same values (``models._G`` of pixel edge minus
    square edge; the upper edge of a pixel is the lower edge of the next one,
    exactly, so each is computed once): bit for bit ``box_profile``.
    Returns arrays of shape (squares, x.size) and (squares, y.size).
    """
    side = np.maximum(squares[:, 2], 1e-9)
    sigma = max(float(sigma_px), 1e-6)
    ex = np.stack([squares[:, 0] - side / 2.0, squares[:, 0] + side / 2.0], axis=1)
    ey = np.stack([squares[:, 1] - side / 2.0, squares[:, 1] + side / 2.0], axis=1)
    bx = np.append(x - 0.5, x[-1] + 0.5)
    by = np.append(y - 0.5, y[-1] + 0.5)
    g = _G(np.concatenate([bx - ex[:, :, None], by - ey[:, :, None]], axis=2), sigma)
    gx, gy = g[:, :, : bx.size], g[:, :, bx.size :]
    px = (gx[:, 0, 1:] - gx[:, 0, :-1]) - (gx[:, 1, 1:] - gx[:, 1, :-1])
    py = (gy[:, 0, 1:] - gy[:, 0, :-1]) - (gy[:, 1, 1:] - gy[:, 1, :-1])
    return px, py


def _corrected_shape(
    own: np.ndarray, dx: np.ndarray, dy: np.ndarray, sigma_px: float
) -> tuple[float, float, float, float, float]:
    """Equivalent diameter, aspect, orientation, long and short side (px) from PSF-corrected moments."""
    nan = float("nan")
    w = own.sum()
    if not w > 0:
        return (nan, nan, nan, nan, nan)
    mxx = float((own * dx * dx).sum() / w)
    myy = float((own * dy * dy).sum() / w)
    mxy = float((own * dx * dy).sum() / w)
    psf = sigma_px**2 + 1.0 / 12.0
    S = np.array([[mxx - psf, mxy], [mxy, myy - psf]])
    ev, evec = np.linalg.eigh(S)
    if ev[0] <= 0:
        return (nan, nan, nan, nan, nan)
    d_px = 4.0 * float(np.prod(ev)) ** 0.25
    aspect = float(np.sqrt(ev[1] / ev[0]))
    angle = float(np.degrees(np.arctan2(evec[1, 1], evec[0, 1])) % 180.0)
    # a rectangle a x b has PSF-corrected principal moments a^2/12 and b^2/12
    return (d_px, aspect, angle, math.sqrt(12.0 * ev[1]), math.sqrt(12.0 * ev[0]))


# --------------------------------------------------------------------------
# sanity of the fitted values (nothing downstream may be sized by an absurd fit)
# --------------------------------------------------------------------------
def _rectangle_sigmas(
    image: np.ndarray,
    members: list[tuple[_Group, _FitResult, int]],
    grown: np.ndarray,
    var_s0: float,
    var_a: float,
    max_n: int = 8,
) -> list[tuple[float, float]]:
    """PSF sigma (px) and its error from free-angle rectangle fits of single particles.

    Each particle (member ``j`` of a fitted group) is fitted on its own grown
    footprint and the background around it, its neighbours' regions masked.
    At most ``max_n`` particles (the most significant) are fitted; fits whose
    sigma error exceeds 20 % (unresolved particles) are left out.
    """
    from .rectfit import fit_rectangle

    def snr(item):
        _, f, j = item
        k = f.model.n_bg + _PARAMS_PER_PARTICLE * j + 3
        err = math.sqrt(f.cov[k, k]) if np.isfinite(f.cov[k, k]) else np.inf
        return f.params[k] / err if err > 0 else 0.0

    objects = ndimage.find_objects(grown)
    rows_n, cols_n = image.shape
    out = []
    for g, f, j in sorted(members, key=snr, reverse=True)[:max_n]:
        lbl = g.labels[j]
        sl = objects[lbl - 1] if 0 < lbl <= len(objects) else None
        if sl is None:
            continue
        pad = 3
        rows = slice(max(sl[0].start - pad, 0), min(sl[0].stop + pad, rows_n))
        cols = slice(max(sl[1].start - pad, 0), min(sl[1].stop + pad, cols_n))
        roi = image[rows, cols]
        lab = grown[rows, cols]
        mask = ((lab == lbl) | (lab == 0)) & np.isfinite(roi)
        j0 = f.model.n_bg + _PARAMS_PER_PARTICLE * j
        x0, y0, side, total = f.params[j0 : j0 + 4]
        bg = f.params[0] + (
            f.params[1] * (x0 - f.model.xc) + f.params[2] * (y0 - f.model.yc) if f.model.n_bg == 3 else 0.0
        )
        weights = 1.0 / np.sqrt(var_s0 + var_a * np.clip(np.nan_to_num(roi - bg), 0.0, None))
        try:
            r = fit_rectangle(
                roi,
                mask,
                weights,
                x0=x0 - cols.start,
                y0=y0 - rows.start,
                side=side,
                sigma0=f.sigma,
                total0=total,
                bg0=bg,
            )
        except (ValueError, OverflowError, FloatingPointError, np.linalg.LinAlgError):
            continue
        if r.success and np.isfinite(r.sigma_err) and r.sigma_err < 0.2 * r.sigma:
            out.append((r.sigma, r.sigma_err))
    return out


def _point_source_sigmas(
    image: np.ndarray, groups: list[_Group], foot: np.ndarray, grown: np.ndarray
) -> list[float]:
    """PSF sigma (px) of each isolated particle taken as a point source: ``sqrt(m2 - 1/12)``.

    ``m2`` is the mean per-axis second moment of the background-subtracted
    light in the particle's segmented footprint (the grown halo would add
    clipped noise). Any real size adds to it and the footprint truncates the
    PSF tails, so this is a rough value, flagged as such by the caller.
    """
    out = []
    for g in groups:
        if len(g.members) != 1:
            continue
        roi = image[g.rows, g.cols]
        lab = grown[g.rows, g.cols]
        own = foot[g.rows, g.cols] == g.labels[0]
        bg_pix = roi[(lab == 0) & g.fit_mask]
        if bg_pix.size < 10 or own.sum() < 4:
            continue
        d = np.clip(np.where(own, roi - np.median(bg_pix), 0.0), 0.0, None)
        total = float(d.sum())
        if not total > 0:
            continue
        yy, xx = np.indices(roi.shape, dtype=np.float64)
        xc, yc = float((d * xx).sum()) / total, float((d * yy).sum()) / total
        m2 = 0.5 * float((d * ((xx - xc) ** 2 + (yy - yc) ** 2)).sum()) / total
        if m2 > 1.0 / 12.0:
            out.append(math.sqrt(m2 - 1.0 / 12.0))
    return out


def _footprint_boxes(foot: np.ndarray, row_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area (px) and largest bounding-box extent (px) of each row's footprint (0 when absent)."""
    n = len(row_labels)
    area = np.zeros(n)
    extent = np.zeros(n)
    if foot.size == 0 or int(foot.max()) == 0:
        return area, extent
    counts = np.bincount(foot.ravel(), minlength=int(foot.max()) + 1)
    objects = ndimage.find_objects(foot)
    for i, lbl in enumerate(np.asarray(row_labels, np.int64)):
        if 0 < lbl < counts.size:
            area[i] = counts[lbl]
        sl = objects[lbl - 1] if 0 < lbl <= len(objects) else None
        if sl is not None:
            extent[i] = max(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start)
    return area, extent


def _apply_fallbacks(
    cols: dict[str, Any],
    particles: pd.DataFrame,
    foot: np.ndarray,
    row_labels: np.ndarray,
    shape: tuple[int, int],
    pixel_size_nm: float,
) -> None:
    """Replace failed or absurd fits by the particle's segmented footprint (in place).

    A fit is absurd when its side is not finite, not positive, or larger than
    twice the extent of the particle's own footprint (+ 2 px), or when its
    centre left the footprint's neighbourhood. Such a particle keeps its
    detected position, gets ``side_px = sqrt(footprint area)`` (a sensible
    aperture), ``size_nm = NaN`` and ``size_fit_ok = False`` with
    ``size_fallback = True`` and a message: no later allocation can be sized
    by a fitted value.
    """
    area, extent = _footprint_boxes(foot, row_labels)
    rows, cols_n = shape
    limit = np.minimum(2.0 * np.maximum(extent, 1.0) + 2.0, float(max(rows, cols_n)))
    side = cols["side_px"]
    x_det = particles["x_px"].to_numpy(float)
    y_det = particles["y_px"].to_numpy(float)
    shift = np.hypot(cols["x_px"] - x_det, cols["y_px"] - y_det)
    bad = ~np.isfinite(side) | (side <= 0) | (side > limit)
    bad |= ~np.isfinite(shift) | (shift > 0.5 * limit + 2.0)
    for i in np.flatnonzero(bad):
        fallback = math.sqrt(area[i]) if area[i] > 0 else 1.0
        cols["fit_message"][i] = (
            f"size fit failed or absurd (side {side[i]:.3g} px); aperture from the segmented "
            f"footprint ({fallback:.1f} px), size not reported"
        )
        cols["side_px"][i] = fallback
        cols["side_err_px"][i] = np.nan
        cols["size_nm"][i] = np.nan
        cols["size_err_nm"][i] = np.nan
        cols["x_px"][i], cols["y_px"][i] = x_det[i], y_det[i]
        cols["size_fit_ok"][i] = False
        cols["size_fallback"][i] = True
        cols["near_diffraction_limit"][i] = False


def _add_model_error(cols: dict[str, Any]) -> None:
    """Add a model-mismatch term to ``size_err_nm`` (in place), kept as ``size_model_err_nm``.

    Two estimators of the same side disagree when the particle is not a
    square blurred by a Gaussian (a disc, rounded corners, an Airy PSF): the
    square model's fitted side and ``sqrt(long x short)`` of the
    PSF-corrected second moments (equal for any square or rectangle). Their
    difference is added in quadrature to the statistical and PSF errors, so
    the interval widens where the model does not describe the particle
    rather than claiming a precision the model cannot give.
    """
    moments = np.sqrt(np.asarray(cols["side_long_nm"], float) * np.asarray(cols["side_short_nm"], float))
    mm = np.abs(np.asarray(cols["size_nm"], float) - moments)
    # only for a particle fitted alone: in a group the moments take in the neighbours' light
    mm = np.where(np.isfinite(mm) & (np.asarray(cols["group_size"]) == 1), mm, 0.0)
    cols["size_model_err_nm"] = np.where(np.isfinite(cols["size_nm"]), mm, np.nan)
    cols["size_err_nm"] = np.hypot(cols["size_err_nm"], mm)


def _flag_merged(cols: dict[str, Any]) -> None:
    """Flag elongated particles as possibly merged (in place); see :data:`MERGED_ASPECT`.

    Two particles touching without an intensity dip are segmented as one; the
    square model then fits neither. Their size is not trustworthy: the fit is
    marked not ok (left out of the statistics) with a message, the size kept
    for inspection.
    """
    merged = np.nan_to_num(np.asarray(cols["aspect_ratio"], float), nan=0.0) > MERGED_ASPECT
    # ... with a resolved short side (the moments of a small particle are noisy: a 400 nm square can
    # read aspect 4 from a short side near 0)
    size = np.asarray(cols["size_nm"], float)
    merged &= np.nan_to_num(np.asarray(cols["side_short_nm"], float), nan=0.0) > MERGED_SHORT_OVER_SIZE * size
    # ... and a long side that two touching particles explain (two equal squares: 1.28 x the square
    # model's side, 1 : 1.4 ones ~1.36); in a group the moments can take in a neighbour's light and
    # read a long side of ~2 x the size: that is not a merged pair
    long_nm = np.nan_to_num(np.asarray(cols["side_long_nm"], float), nan=np.inf)
    merged &= long_nm < MERGED_LONG_OVER_SIZE * size
    # (a particle near the diffraction limit has no resolved shape: its moments are noise)
    merged &= ~cols["size_fallback"] & ~cols["near_diffraction_limit"]
    cols["possibly_merged"] = merged
    for i in np.flatnonzero(merged):
        cols["size_fit_ok"][i] = False
        cols["fit_message"][i] = (
            f"elongated (aspect ratio {cols['aspect_ratio'][i]:.2f} > {MERGED_ASPECT}): possibly two "
            "touching particles segmented as one; size unreliable"
        )


# --------------------------------------------------------------------------
# the steps of measure_sizes
# --------------------------------------------------------------------------
def _check_size_inputs(
    image: np.ndarray,
    particles: pd.DataFrame,
    pixel_size_nm: float,
    psf_sigma_nm: float | None,
    background: str,
) -> tuple[np.ndarray, pd.DataFrame, float, float | None]:
    """Checked ``(image, particles with a fresh index, pixel_size_nm, psf_sigma_nm)``."""
    img = _check_image(image)
    pixel_size_nm = _check_positive(pixel_size_nm, "pixel_size_nm")
    if not isinstance(particles, pd.DataFrame):
        raise PlscopeError("particles: expected a pandas DataFrame")
    for col in ("particle_id", "x_px", "y_px"):
        if col not in particles.columns:
            raise PlscopeError(f"particles: missing column {col!r}")
    if psf_sigma_nm is not None:
        psf_sigma_nm = _check_positive(psf_sigma_nm, "psf_sigma_nm")
    if background not in ("plane", "constant"):
        raise PlscopeError(f"background: expected 'plane' or 'constant', got {background!r}")
    return img, particles.reset_index(drop=True), pixel_size_nm, psf_sigma_nm


def _noise_floor(img: np.ndarray, grown: np.ndarray) -> float:
    """Pixel noise variance from pixel differences outside the particles (robust to smooth background)."""
    outside = grown == 0
    dif = (img[:, 1:] - img[:, :-1])[outside[:, 1:] & outside[:, :-1]] / math.sqrt(2.0)
    s0 = robust_std(dif) ** 2 if dif.size > 20 else robust_std(img) ** 2
    if not np.isfinite(s0) or s0 <= 0:
        s0 = max(1e-12, (1e-9 * float(np.nanmax(np.abs(img)))) ** 2)
    return s0


@dataclass
class _PsfSigma:
    """The PSF sigma the sizes are computed with, and how it was obtained."""

    sigma_px: float
    method: str
    err_px: float = float("nan")
    n_particles: int = 0
    degenerate: bool = False  # no isolated particle resolved: sigma and sides degenerate


def _sigma_candidates(
    groups: list[_Group],
    free: list[_FitResult],
    touches: np.ndarray,
    min_side_sigma: float,
    sigma_fit_px: np.ndarray,
) -> tuple[list[float], list[float], list[tuple[_Group, _FitResult, int]]]:
    """Free-sigma values (and errors) of the resolved isolated particles; members for rectangle fits.

    Fills ``sigma_fit_px`` (per particle row) in place.
    """
    cand: list[float] = []
    cand_err: list[float] = []
    rect_groups: list[tuple[_Group, _FitResult, int]] = []
    for g, f in zip(groups, free):
        for j, i in enumerate(g.members):
            sigma_fit_px[i] = f.sigma if f.success else np.nan
            if f.success and not touches[i]:
                rect_groups.append((g, f, j))
            if not f.success or len(g.members) != 1 or touches[i]:
                continue
            side = f.params[f.model.n_bg + _PARAMS_PER_PARTICLE * j + 2]
            if side >= min_side_sigma * f.sigma and np.isfinite(f.sigma_err) and f.sigma_err < 0.2 * f.sigma:
                cand.append(f.sigma)
                cand_err.append(f.sigma_err)
    return cand, cand_err, rect_groups


def _fallback_sigmas(
    img: np.ndarray,
    groups: list[_Group],
    free: list[_FitResult],
    foot: np.ndarray,
    grown: np.ndarray,
    min_side_sigma: float,
) -> tuple[list[float], str]:
    """Less reliable sigma values when no resolved isolated particle gave one, and their method."""
    fallback = [f.sigma for f in free if f.success and np.isfinite(f.sigma_err)]
    if fallback:
        logger.warning(
            "measure_sizes: no isolated particle with side >= %.1f sigma; estimating the "
            "PSF sigma from all %d fits (less reliable)",
            min_side_sigma,
            len(fallback),
        )
        return fallback, "all free-sigma fits (no isolated particle large enough; less reliable)"
    fallback = _point_source_sigmas(img, groups, foot, grown)
    if not fallback:
        raise PlscopeError(
            "psf_sigma_nm: cannot be estimated from the data (no particle gave a usable "
            "free-sigma fit); pass psf_sigma_nm explicitly"
        )
    logger.warning(
        "measure_sizes: no usable free-sigma fit; PSF sigma from the second moments of "
        "%d particle(s) taken as point sources (rough); pass psf_sigma_nm",
        len(fallback),
    )
    return fallback, "second moments of point-like particles (rough)"


def _combine_sigmas(cand: list[float], cand_err: list[float]) -> tuple[float, float, int]:
    """Median sigma, its error (robust scatter, or the fits' errors for < 3 values) and the count."""
    cand_a = np.asarray(cand)
    sigma_px = float(np.median(cand_a))
    n_sigma = cand_a.size
    if n_sigma >= 3:
        sigma_err_px = 1.2533 * max(robust_std(cand_a), 1e-12) / math.sqrt(n_sigma)
    else:
        errs = np.asarray(cand_err, float)
        sigma_err_px = (
            float(np.sqrt(np.nanmean(errs**2)) / math.sqrt(n_sigma))
            if np.isfinite(errs).any()
            else float("nan")
        )
    return sigma_px, sigma_err_px, n_sigma


def _estimate_psf_sigma(
    img: np.ndarray,
    particles: pd.DataFrame,
    lay: _Layout,
    p_start: list[np.ndarray],
    sig_start: list[float],
    var: tuple[float, float],
    min_side_sigma: float,
    background: str,
) -> tuple[_PsfSigma, np.ndarray]:
    """PSF sigma from free-sigma fits (rectangle fits, resolved squares, or fallbacks); sigma per row."""
    groups, foot, grown = lay.groups, lay.foot, lay.grown
    free = [
        _fit_group(img, g, p, sigma=None, sigma0=s, var_s0=var[0], var_a=var[1], background=background)
        for g, p, s in zip(groups, p_start, sig_start)
    ]
    n = len(particles)
    sigma_fit_px = np.full(n, np.nan)
    touches = (
        particles["touches_border"].to_numpy(bool) if "touches_border" in particles else np.zeros(n, bool)
    )
    cand, cand_err, rect_groups = _sigma_candidates(groups, free, touches, min_side_sigma, sigma_fit_px)
    method = "free-sigma fits of isolated particles"
    # every isolated particle may take part: the side gate above uses the square model's
    # sigma, inflated for rotated particles; unresolved ones drop out by their sigma error
    rect = _rectangle_sigmas(img, rect_groups, grown, var[0], var[1])
    # no isolated particle resolved (side >= sigma_fit_min_side_sigma x sigma): the PSF width and
    # the sides are degenerate (diffraction-limited particles), whatever the estimate
    degenerate = not cand
    if len(rect) >= max(1, min(3, len(cand))):
        # the shape-free estimate: free sides and angle (axis-aligned squares inflate sigma
        # for rotated or elongated particles)
        cand = [r[0] for r in rect]
        cand_err = [r[1] for r in rect]
        method = "free-angle rectangle fits of the particles"
    if not cand:
        cand, method = _fallback_sigmas(img, groups, free, foot, grown, min_side_sigma)
        cand_err = [np.nan] * len(cand)
    sigma_px, sigma_err_px, n_sigma = _combine_sigmas(cand, cand_err)
    return _PsfSigma(sigma_px, method, sigma_err_px, n_sigma, degenerate), sigma_fit_px


def _sigma_response(f: _FitResult, sigma_px: float, sigma_err_px: float) -> np.ndarray:
    """Least-squares response of a fit's parameters to a change of sigma (zeros when not needed)."""
    if np.isfinite(sigma_err_px) and f.jac_w.size and np.any(np.isfinite(f.cov)):
        jsig = f.model.sigma_column(f.params, sigma_px) * f.weights
        # (a point source's side, left out of the covariance, does not respond)
        if f.chi2_red > 0:
            return -(np.nan_to_num(f.cov) / f.chi2_red) @ (f.jac_w.T @ jsig)
    return np.zeros(f.params.size)


def _inside_roi(g: _Group, x0: float, y0: float, side: float, shape: tuple[int, int]) -> bool:
    """Whether a fitted centre lies in its region of interest (beyond it at a cut image border)."""
    rows_n, cols_n = shape
    sl = 0.5 * side if np.isfinite(side) else 0.0
    x_lo = g.cols.start - 0.5 - (sl if g.cols.start == 0 else 0.0)
    x_hi = g.cols.stop - 0.5 + (sl if g.cols.stop == cols_n else 0.0)
    y_lo = g.rows.start - 0.5 - (sl if g.rows.start == 0 else 0.0)
    y_hi = g.rows.stop - 0.5 + (sl if g.rows.stop == rows_n else 0.0)
    return bool((x_lo <= x0 <= x_hi) and (y_lo <= y0 <= y_hi))


def _member_message(ok: bool, point: bool, f: _FitResult, inside: bool, finite_err: bool) -> str:
    """The ``fit_message`` of one particle of a fitted group."""
    if ok and point:
        return "point source: side fitted to ~0, size not resolved (upper bound)"
    if ok or not f.success:
        return str(f.message)
    if not inside:
        return "centre outside the region of interest"
    if not finite_err:
        return "parameter errors not finite (degenerate fit)"
    return "particle signal not significant (total < 5 x its error)"


def _new_size_columns(particles: pd.DataFrame) -> dict[str, Any]:
    """The :data:`SIZE_COLUMNS` of ``particles``, NaN (or False, 0) until filled."""
    n = len(particles)
    cols: dict[str, Any] = {c: np.full(n, np.nan) for c in SIZE_COLUMNS}
    cols["particle_id"] = particles["particle_id"].to_numpy(np.int64)
    cols["size_fit_ok"] = np.zeros(n, bool)
    cols["near_diffraction_limit"] = np.zeros(n, bool)
    cols["n_fit_px"] = np.zeros(n, np.int64)
    cols["group_size"] = np.zeros(n, np.int64)
    cols["fit_message"] = np.empty(n, object)
    return cols


def _fill_fit_columns(
    cols: dict[str, Any],
    g: _Group,
    f: _FitResult,
    psf: _PsfSigma,
    shape: tuple[int, int],
    pixel_size_nm: float,
    min_reliable_side_sigma: float,
) -> None:
    """Write the fitted values of the members of group ``g`` into ``cols`` (in place)."""
    nb = f.model.n_bg
    sigma_px, sigma_err_px = psf.sigma_px, psf.err_px
    dp_dsigma = _sigma_response(f, sigma_px, sigma_err_px)
    for j, i in enumerate(g.members):
        j0 = nb + _PARAMS_PER_PARTICLE * j
        x0, y0, side, total = f.params[j0 : j0 + 4]
        err = np.sqrt(np.clip(np.diag(f.cov)[j0 : j0 + 4], 0, None)) if f.cov.size else np.full(4, np.nan)
        side_err_sys = abs(dp_dsigma[j0 + 2]) * sigma_err_px if np.isfinite(sigma_err_px) else 0.0
        # a particle cut by the image border may have its centre outside the image
        inside = _inside_roi(g, x0, y0, side, shape)
        significant = total > 5.0 * err[3]
        point = bool(side < _POINT_SIDE_PX)
        finite_err = np.all(np.isfinite(err[[0, 1, 3]])) and (point or np.isfinite(err[2]))
        ok = bool(f.success and finite_err and inside and significant)
        cols["x_px"][i], cols["y_px"][i] = x0, y0
        cols["side_px"][i] = side
        cols["side_err_px"][i] = err[2]
        cols["x_err_px"][i], cols["y_err_px"][i] = err[0], err[1]
        cols["total_adu"][i], cols["total_err_adu"][i] = total, err[3]
        # a point source: size not resolved (NaN), only the upper bound is reported
        cols["size_nm"][i] = np.nan if point else side * pixel_size_nm
        cols["size_err_nm"][i] = np.nan if point else math.hypot(err[2], side_err_sys) * pixel_size_nm
        bg = f.params[0]
        if nb == 3:
            bg += f.params[1] * (x0 - f.model.xc) + f.params[2] * (y0 - f.model.yc)
        cols["background_adu"][i] = bg
        cols["psf_sigma_px"][i] = sigma_px
        cols["chi2_red"][i] = f.chi2_red
        cols["n_fit_px"][i] = f.n_px
        cols["group_size"][i] = len(g.members)
        cols["size_fit_ok"][i] = ok
        cols["near_diffraction_limit"][i] = bool(side < min_reliable_side_sigma * sigma_px)
        cols["fit_message"][i] = _member_message(ok, point, f, inside, bool(finite_err))


def _fill_shape_columns(
    cols: dict[str, Any],
    g: _Group,
    shape_moments: list[tuple[float, float, float, float, float]],
    pixel_size_nm: float,
) -> None:
    """Write the PSF-corrected shape of the members of group ``g`` into ``cols`` (in place)."""
    for j, i in enumerate(g.members):
        d_px, aspect, angle, long_px, short_px = shape_moments[j]
        cols["side_long_nm"][i] = long_px * pixel_size_nm
        cols["side_short_nm"][i] = short_px * pixel_size_nm
        cols["equivalent_diameter_nm"][i] = d_px * pixel_size_nm
        cols["aspect_ratio"][i] = aspect
        cols["orientation_deg"][i] = angle


def _upper_bounds(
    cols: dict[str, Any], psf: _PsfSigma, floor_sigma: float, pixel_size_nm: float
) -> np.ndarray:
    """``size_upper_bound_nm``: near the diffraction limit the side is degenerate with the PSF."""
    ndl = cols["near_diffraction_limit"] & ~cols["size_fallback"]
    upper = cols["size_nm"] + 1.96 * np.nan_to_num(cols["size_err_nm"], nan=0.0)
    floor_nm = floor_sigma * psf.sigma_px * pixel_size_nm
    return np.where(ndl, np.fmax(upper, floor_nm), np.nan)


def _size_table(
    cols: dict[str, Any], psf: _PsfSigma, pixel_size_nm: float, sigma_known: bool
) -> pd.DataFrame:
    """The sizes table with the PSF sigma in ``attrs``; logs failures."""
    out = pd.DataFrame(cols, columns=list(SIZE_COLUMNS))
    psf_used_nm = float(psf.sigma_px * pixel_size_nm)
    out.attrs["psf_sigma_nm"] = psf_used_nm
    out.attrs["psf_sigma_err_nm"] = float(psf.err_px * pixel_size_nm)
    out.attrs["psf_sigma_n_particles"] = int(psf.n_particles)
    out.attrs["psf_sigma_method"] = psf.method
    n = len(out)
    n_bad = int((~out["size_fit_ok"]).sum())
    if n_bad:
        logger.warning("measure_sizes: %d of %d size fit(s) failed", n_bad, n)
    logger.info(
        "measure_sizes: %d particle(s), PSF sigma %.1f nm (%s), %d near the diffraction limit",
        n,
        psf_used_nm,
        "given" if sigma_known else "estimated",
        int(out["near_diffraction_limit"].sum()),
    )
    return out


@dataclass
class _Layout:
    """Footprints, their halos and the fit groups of an image."""

    foot: np.ndarray  # label image of the particles' footprints
    row_labels: np.ndarray  # label of each particles row
    grown: np.ndarray  # footprints grown by the halo
    groups: list[_Group]


def _layout(img: np.ndarray, particles: pd.DataFrame, labels: np.ndarray | None, sigma_px0: float) -> _Layout:
    """Footprints, halos (~3 sigma) and fit groups of the particles."""
    from skimage.segmentation import expand_labels

    halo_px = int(math.ceil(3.0 * sigma_px0)) + 1
    pad_px = int(math.ceil(2.0 * sigma_px0)) + 2
    foot, row_labels = _footprints(img.shape, particles, labels, default_radius_px=2.0 * halo_px)
    grown = expand_labels(foot, halo_px)
    groups = _groups(img, particles, foot, grown, row_labels, halo_px=halo_px, pad_px=pad_px)
    return _Layout(foot, row_labels, grown, groups)


def _first_pass(
    img: np.ndarray,
    lay: _Layout,
    p0s: list[np.ndarray],
    s0: float,
    sigma_px: float | None,
    sigma_px0: float,
    background: str,
) -> tuple[list[np.ndarray], list[float], float, float]:
    """First fits (``sigma_px`` given, or None: free): the variance model and the next fits' start.

    Returns ``(starting parameters (without sigma), starting sigma per group, s0, a)``.
    """
    first = _fit_all(
        img, lay.groups, p0s, sigma=sigma_px, sigma0=sigma_px0, s0=s0, a=0.0, background=background
    )
    s0, a = _variance_model(first, s0)
    if sigma_px is not None:
        p_start = [f.params if f.success else p for f, p in zip(first, p0s)]
        return p_start, [sigma_px] * len(first), s0, a
    p_start = [f.params[:-1] if f.success else p for f, p in zip(first, p0s)]
    sig_start = [f.sigma if f.success else sigma_px0 for f in first]
    return p_start, sig_start, s0, a


def _finish_columns(
    cols: dict[str, Any],
    particles: pd.DataFrame,
    lay: _Layout,
    shape: tuple[int, int],
    psf: _PsfSigma,
    pixel_size_nm: float,
    min_reliable_side_sigma: float,
    floor_sigma: float | None,
) -> None:
    """Model error, fallbacks, merged flags and upper bounds of the filled columns (in place).

    ``floor_sigma`` (a degenerate sigma estimate, else None): every particle below this many
    sigma is near the diffraction limit too, with an upper bound of at least that side.
    """
    cols["size_fallback"] = np.zeros(len(particles), bool)
    _add_model_error(cols)
    _apply_fallbacks(cols, particles, lay.foot, lay.row_labels, shape, pixel_size_nm)
    _flag_merged(cols)
    if floor_sigma is not None:
        psf.method += "; no isolated particle resolved: PSF sigma and sizes degenerate (less reliable)"
        cols["near_diffraction_limit"] |= np.nan_to_num(cols["side_px"], nan=0.0) < floor_sigma * psf.sigma_px
    else:
        floor_sigma = min_reliable_side_sigma
    cols["size_upper_bound_nm"] = _upper_bounds(cols, psf, floor_sigma, pixel_size_nm)


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------
def measure_sizes(
    image: np.ndarray,
    particles: pd.DataFrame,
    *,
    pixel_size_nm: float,
    psf_sigma_nm: float | None = None,
    labels: np.ndarray | None = None,
    background: Literal["plane", "constant"] = "plane",
    min_reliable_side_sigma: float = 2.0,
    sigma_fit_min_side_sigma: float = 3.0,
    psf_sigma_guess_nm: float = 150.0,
) -> tuple[pd.DataFrame, float]:
    """Side length of each particle from a fit of a blurred-square model.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        Reference image in ADU (e.g. :func:`reference_image`), offset included.
        NaN pixels are left out of the fits.
    particles : pandas.DataFrame
        At least ``particle_id, x_px, y_px`` (e.g. from
        :func:`detect_particles`); ``bbox_*`` and ``touches_border`` are used
        when present.
    pixel_size_nm : float
        Pixel size in the sample plane (nm).
    psf_sigma_nm : float or None
        Gaussian PSF standard deviation (nm). None: estimated from the data
        (median of free-sigma fits of the particles with side >=
        ``sigma_fit_min_side_sigma`` x sigma, isolated and off the border).
    labels : ndarray of int, shape (rows, cols), optional
        Label image of :func:`detect_particles` (``particle_id + 1``).
        Used to mask neighbouring particles (grown by ~3 sigma) out of each
        fit; without it, the ``bbox_*`` rectangles (or small disks) are used.
    background : {"plane", "constant"}
        Local background model in each region of interest.
    min_reliable_side_sigma : float
        ``near_diffraction_limit`` is set when side < this x sigma: the side is
        then degenerate with the PSF width and unreliable.
    sigma_fit_min_side_sigma : float
        Minimum side (in sigma) of the particles used to estimate sigma.
    psf_sigma_guess_nm : float
        Starting value of sigma when it is estimated.

    Returns
    -------
    sizes : pandas.DataFrame
        One row per particle (same order as ``particles``), columns
        :data:`SIZE_COLUMNS`: ``particle_id``; ``size_nm`` and ``size_err_nm``
        (side and its 1-sigma error, the latter including the uncertainty of
        an estimated PSF sigma and the model mismatch ``size_model_err_nm``); ``x_px, y_px`` (fitted centre);
        ``total_adu`` (integrated particle signal above background);
        ``size_fit_ok``; ``near_diffraction_limit``; ``side_px``,
        ``side_err_px`` (statistical only), ``x_err_px``, ``y_err_px``,
        ``total_err_adu``; ``background_adu`` (per pixel, at the centre);
        ``psf_sigma_px`` (used); ``psf_sigma_fit_nm`` (free-sigma value of
        this particle when sigma was estimated, else NaN); ``chi2_red``;
        ``n_fit_px``; ``group_size`` (particles fitted jointly);
        ``fit_message``; ``equivalent_diameter_nm`` (diameter of the disk of
        the same area, from the PSF-corrected second moments: for particles
        that are not squares), ``aspect_ratio`` (>= 1) and
        ``orientation_deg`` (long axis from +x towards +y, 0-180), NaN when
        the shape is not resolved (PSF-corrected moments not positive);
        ``size_fallback`` (the fit failed or was absurd: ``size_nm`` is NaN and
        ``side_px`` is the square root of the segmented footprint area, a safe
        aperture); ``size_upper_bound_nm`` (for particles near the
        diffraction limit: ``max(size + 1.96 error, min_reliable_side_sigma x
        sigma)``, NaN otherwise); ``side_long_nm``, ``side_short_nm`` (the two
        side lengths of a rectangle at any angle, ``sqrt(12 x`` the
        PSF-corrected principal second moments; equal for a square);
        ``size_model_err_nm`` (model-mismatch part of ``size_err_nm``: the
        difference between the square model's side and the PSF-corrected
        moments' ``sqrt(long x short)``, added in quadrature; 0 for
        particles fitted in a group, whose moments take in their neighbours);
        ``possibly_merged`` (aspect ratio > :data:`MERGED_ASPECT`, short side >
        :data:`MERGED_SHORT_OVER_SIZE` x size and long side <
        :data:`MERGED_LONG_OVER_SIZE` x size: possibly
        two touching particles segmented as one; ``size_fit_ok`` is then
        False). A point source (side fitted to ~0) has ``size_nm`` NaN,
        ``near_diffraction_limit`` and its ``size_upper_bound_nm``.
        ``size_nm`` (the square model's side, close to ``sqrt(long x short)``
        for a rectangle) is the length used for ``v = L / tau_pol``.
        ``DataFrame.attrs`` holds ``psf_sigma_nm``,
        ``psf_sigma_err_nm`` and ``psf_sigma_n_particles``.
    psf_sigma_nm_used : float
        The PSF sigma (nm) the sizes were computed with.

    Notes
    -----
    Failed fits are returned with ``size_fit_ok = False`` and a message,
    never raised. Errors are scaled by the reduced chi-square (like
    ``curve_fit(absolute_sigma=False)``).
    """
    img, particles, pixel_size_nm, psf_sigma_nm = _check_size_inputs(
        image, particles, pixel_size_nm, psf_sigma_nm, background
    )
    n = len(particles)
    sigma_known = psf_sigma_nm is not None
    sigma_px0 = (
        psf_sigma_nm
        if psf_sigma_nm is not None
        else _check_positive(psf_sigma_guess_nm, "psf_sigma_guess_nm")
    ) / pixel_size_nm
    if n == 0:
        out = pd.DataFrame({c: [] for c in SIZE_COLUMNS})
        return out, float(psf_sigma_nm) if psf_sigma_nm is not None else float("nan")

    lay = _layout(img, particles, labels, sigma_px0)
    groups, grown = lay.groups, lay.grown
    s0 = _noise_floor(img, grown)
    centres = particles[["x_px", "y_px"]].to_numpy(float)
    p0s = [_initial_guess(img, g, centres, grown, sigma_px0, background) for g in groups]

    p_start, sig_start, s0, a = _first_pass(
        img, lay, p0s, s0, sigma_px0 if sigma_known else None, sigma_px0, background
    )
    if sigma_known:
        psf, sigma_fit_px = _PsfSigma(sigma_px0, "given"), np.full(n, np.nan)
    else:
        psf, sigma_fit_px = _estimate_psf_sigma(
            img, particles, lay, p_start, sig_start, (s0, a), sigma_fit_min_side_sigma, background
        )
        logger.info(
            "measure_sizes: PSF sigma estimated from %d particle(s): %.1f +/- %.1f nm",
            psf.n_particles,
            psf.sigma_px * pixel_size_nm,
            psf.err_px * pixel_size_nm,
        )
    sigma_px = psf.sigma_px
    fits = _fit_all(img, groups, p_start, sigma=sigma_px, sigma0=sigma_px, s0=s0, a=a, background=background)
    cols = _new_size_columns(particles)
    cols["psf_sigma_fit_nm"] = sigma_fit_px * pixel_size_nm
    for g, f in zip(groups, fits):
        _fill_fit_columns(cols, g, f, psf, img.shape, pixel_size_nm, min_reliable_side_sigma)
        _fill_shape_columns(cols, g, _shape_from_moments(img, g, f, sigma_px, grown), pixel_size_nm)
    # sigma estimated from unresolved particles: a too small sigma makes every particle look
    # resolved and too large; all particles below the resolved size are upper bounds
    floor_sigma = max(min_reliable_side_sigma, sigma_fit_min_side_sigma) if psf.degenerate else None
    _finish_columns(cols, particles, lay, img.shape, psf, pixel_size_nm, min_reliable_side_sigma, floor_sigma)
    return _size_table(cols, psf, pixel_size_nm, sigma_known), float(sigma_px * pixel_size_nm)
