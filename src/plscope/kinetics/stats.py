"""Population statistics with honest uncertainties.

- :func:`bootstrap_mean`: mean with a *cluster* bootstrap confidence interval
  (whole particles are resampled, so the rows of one particle at several
  fields, which share its size and mobility, are not counted as independent);
- :func:`cluster_bootstrap`: the same for any statistic of the rows (e.g. the
  slope of drift velocity against field);
- :func:`linear_fit`: ordinary least squares with the confidence band of the
  fitted line (for time constant against size);
- :func:`field_dependence`: within-particle power law ``tau ~ E^p`` with a
  cluster-robust standard error, to test whether a time constant depends on
  the field (recovery should not, polarization should with ``p = -1``);
- :func:`level_consistency`: do the means of a quantity at every field agree
  within their (cluster-bootstrap) errors? The scale factor
  ``sqrt(chi^2 / dof)`` (when above 1) widens errors for what a bootstrap
  over particles cannot see: errors shared by every particle at one field.

Small-sample correction: the non-parametric bootstrap of a mean over ``G``
clusters has variance ``(G-1)/G`` times the true one and a percentile
interval too narrow for small ``G``. Standard errors are multiplied by
``sqrt(G/(G-1))`` and intervals are *expanded percentile* intervals
(Hesterberg, Am. Stat. 69, 371 (2015)): the quantiles of the bootstrap
distribution are taken at ``alpha'/2`` and ``1 - alpha'/2`` with
``z(alpha'/2) = sqrt(G/(G-1)) t(alpha/2, G-1)``, which for a mean of
normal data reproduces the Student-t interval.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._checks import KineticsInputError

__all__ = [
    "BootstrapCI",
    "FieldDependence",
    "LevelConsistency",
    "LinearFit",
    "bootstrap_mean",
    "cluster_bootstrap",
    "field_dependence",
    "level_consistency",
    "linear_fit",
]


def _plain(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, (np.floating, float)):
            v = float(v)
            out[k] = v if math.isfinite(v) else None
        elif isinstance(v, (np.integer,)):
            out[k] = int(v)
        elif isinstance(v, (np.bool_,)):
            out[k] = bool(v)
        else:
            out[k] = v
    return out


@dataclass(frozen=True)
class BootstrapCI:
    """A statistic with its bootstrap standard error and confidence interval.

    Attributes
    ----------
    estimate : float
        The statistic on the data.
    std_error : float
        Bootstrap standard error (small-sample corrected).
    low, high : float
        Expanded percentile confidence interval (see the module docstring).
    confidence : float
        Confidence level of ``[low, high]``.
    n_boot : int
        Resamples used (those giving a finite statistic).
    n_groups : int
        Clusters (particles) resampled.
    method : str
    """

    estimate: float
    std_error: float
    low: float
    high: float
    confidence: float
    n_boot: int
    n_groups: int
    method: str = "cluster bootstrap (particles), expanded percentile interval"

    def contains(self, value: float) -> bool:
        """Whether ``low <= value <= high``."""
        return bool(self.low <= value <= self.high)

    def to_dict(self) -> dict:
        """JSON-ready dict (None for NaN)."""
        return _plain(dataclasses.asdict(self))


def _nan_ci(estimate, confidence, n_groups, method) -> BootstrapCI:
    nan = float("nan")
    return BootstrapCI(float(estimate), nan, nan, nan, float(confidence), 0, int(n_groups), method)


def _finish(estimate: float, boot: np.ndarray, confidence: float, n_groups: int, method: str) -> BootstrapCI:
    boot = boot[np.isfinite(boot)]
    if boot.size < 10 or not np.isfinite(estimate):
        return _nan_ci(estimate, confidence, n_groups, method)
    from scipy import stats

    corr = math.sqrt(n_groups / (n_groups - 1))
    alpha = 1.0 - confidence
    z = corr * float(stats.t.ppf(1 - alpha / 2, n_groups - 1))
    alpha_x = 2.0 * float(stats.norm.sf(z))  # expanded percentile (Hesterberg 2015)
    q_lo, q_hi = np.quantile(boot, [alpha_x / 2, 1 - alpha_x / 2])
    return BootstrapCI(
        estimate=float(estimate),
        std_error=float(np.std(boot, ddof=1) * corr),
        low=float(q_lo),
        high=float(q_hi),
        confidence=float(confidence),
        n_boot=int(boot.size),
        n_groups=int(n_groups),
        method=method,
    )


def _check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not 0 < c < 1:
        raise KineticsInputError(f"confidence: expected a level in (0, 1), got {confidence!r}")
    return c


def bootstrap_mean(
    values, *, groups=None, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> BootstrapCI:
    """Mean of ``values`` with a (cluster) bootstrap confidence interval.

    Parameters
    ----------
    values : array_like, shape (n,)
        Samples (non-finite ones are dropped).
    groups : array_like, shape (n,), optional
        Cluster label of every value (e.g. ``particle_id``); whole clusters
        are resampled. Default: every value is its own cluster.
    n_boot : int
        Resamples.
    confidence : float
        Level of the interval.
    seed : int
        Seed of the resampling.

    Returns
    -------
    BootstrapCI
        NaN interval with fewer than 2 clusters.
    """
    confidence = _check_confidence(confidence)
    v = np.asarray(values, dtype=float).ravel()
    g = np.arange(v.size) if groups is None else np.asarray(groups).ravel()
    if g.shape != v.shape:
        raise KineticsInputError(f"groups: expected {v.size} labels, got {g.size}")
    ok = np.isfinite(v)
    v, g = v[ok], g[ok]
    method = (
        "bootstrap over values" if groups is None else "cluster bootstrap"
    ) + ", expanded percentile interval"
    if v.size == 0:
        return _nan_ci(float("nan"), confidence, 0, method)
    labels, inv = np.unique(g, return_inverse=True)
    n_groups = labels.size
    estimate = float(np.mean(v))
    if n_groups < 2:
        return _nan_ci(estimate, confidence, n_groups, method)
    sums = np.bincount(inv, weights=v, minlength=n_groups)
    counts = np.bincount(inv, minlength=n_groups).astype(float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_groups, size=(int(n_boot), n_groups))
    boot = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    return _finish(estimate, boot, confidence, n_groups, method)


def cluster_bootstrap(
    columns: Sequence,
    groups,
    statistic: Callable[..., float],
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapCI:
    """Any statistic of rows with a cluster bootstrap interval.

    Parameters
    ----------
    columns : sequence of array_like, each shape (n,)
        Row data passed to ``statistic`` (e.g. ``(field, velocity)``).
    groups : array_like, shape (n,)
        Cluster label of every row.
    statistic : callable
        ``statistic(*columns) -> float`` (NaN when undefined for a resample).
    n_boot, confidence, seed
        As in :func:`bootstrap_mean`.

    Returns
    -------
    BootstrapCI
    """
    confidence = _check_confidence(confidence)
    cols = [np.asarray(c, dtype=float).ravel() for c in columns]
    g = np.asarray(groups).ravel()
    if any(c.shape != g.shape for c in cols):
        raise KineticsInputError("cluster_bootstrap: columns and groups differ in length")
    method = "cluster bootstrap, expanded percentile interval"
    estimate = float(statistic(*cols)) if g.size else float("nan")
    labels, inv = np.unique(g, return_inverse=True)
    n_groups = labels.size
    if n_groups < 2:
        return _nan_ci(estimate, confidence, n_groups, method)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(n_groups + 1))
    members = [order[bounds[i] : bounds[i + 1]] for i in range(n_groups)]
    rng = np.random.default_rng(seed)
    boot = np.empty(int(n_boot))
    with np.errstate(all="ignore"):
        for b in range(int(n_boot)):
            rows = np.concatenate([members[i] for i in rng.integers(0, n_groups, size=n_groups)])
            boot[b] = statistic(*(c[rows] for c in cols))
    return _finish(estimate, boot, confidence, n_groups, method)


@dataclass(frozen=True)
class LevelConsistency:
    """Agreement of the means of a quantity at several levels (fields).

    Attributes
    ----------
    level_means : list of float
        Mean of the rows at every level, in the order of ``levels``.
    levels : list of float
    chi2 : float
        ``r' C^-1 r`` of the level means about their generalized least-squares
        common mean, ``C`` their cluster-bootstrap covariance.
    dof : int
        Levels minus one.
    p_value : float
        ``chi2`` is Hotelling's ``T^2`` (the covariance is estimated from
        ``G`` clusters): ``F = T^2 (G - d) / ((G - 1) d)`` with ``d = dof``
        follows ``F(d, G - d)``; its upper tail.
    scale : float
        ``max(1, sqrt(F))`` (the Particle Data Group's scale factor with the
        small-sample reference): errors of anything that averages or
        compares the levels are multiplied by it; 1 when it is not defined.
    n_groups : int
        Clusters (particles) resampled.
    """

    level_means: list
    levels: list
    chi2: float
    dof: int
    p_value: float
    scale: float
    n_groups: int

    def to_dict(self) -> dict:
        """JSON-ready dict (None for NaN)."""
        d = _plain(dataclasses.asdict(self))
        d["level_means"] = [None if not math.isfinite(v) else float(v) for v in self.level_means]
        d["levels"] = [float(v) for v in self.levels]
        return d


def level_consistency(values, levels, groups, *, n_boot: int = 2000, seed: int = 0) -> LevelConsistency:
    """Whether the means of ``values`` at every level agree within their errors.

    The covariance of the level means comes from a cluster bootstrap (whole
    groups resampled, standard errors ``x sqrt(G/(G-1))`` as elsewhere here),
    so rows of one particle at several levels stay together. A quantity that
    should not depend on the level (the mobility against the field) but whose
    level means scatter beyond these errors carries an error shared by the
    rows of a level, which no bootstrap over particles sees: ``scale`` widens
    the errors by it.

    Parameters
    ----------
    values, levels, groups : array_like, shape (n,)
        Value, level (e.g. rounded field) and cluster label of every row.
    n_boot, seed
        Resamples and their seed.

    Returns
    -------
    LevelConsistency
        ``scale`` 1 and NaN statistics with fewer than 2 levels or ``levels + 1`` groups.
    """
    x = np.asarray(values, float).ravel()
    lv_all = np.asarray(levels, float).ravel()
    g_lab, g = np.unique(np.asarray(groups).ravel(), return_inverse=True)
    lv_lab, lv = np.unique(lv_all, return_inverse=True)
    means = [float(np.mean(x[lv == j])) for j in range(lv_lab.size)]
    n_g, n_l = g_lab.size, lv_lab.size
    nan = float("nan")
    if n_l < 2 or n_g < 3:
        return LevelConsistency(means, lv_lab.tolist(), nan, max(n_l - 1, 0), nan, 1.0, int(n_g))
    sums = np.zeros((n_g, n_l))
    counts = np.zeros((n_g, n_l))
    np.add.at(sums, (g, lv), x)
    np.add.at(counts, (g, lv), 1.0)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_g, size=(int(n_boot), n_g))
    w = np.stack([np.bincount(d, minlength=n_g) for d in draws]).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (w @ sums) / (w @ counts)
    boot = boot[np.all(np.isfinite(boot), axis=1)]
    if boot.shape[0] < 10:
        return LevelConsistency(means, lv_lab.tolist(), nan, n_l - 1, nan, 1.0, int(n_g))
    cov = np.cov(boot.T) * n_g / (n_g - 1)
    return _consistency(np.asarray(means), cov, lv_lab, int(n_g))


def _consistency(means: np.ndarray, cov: np.ndarray, levels: np.ndarray, n_g: int) -> LevelConsistency:
    from scipy import stats

    w = np.linalg.pinv(cov)
    one = np.ones(means.size)
    denom = float(one @ w @ one)
    common = float(one @ w @ means) / denom if denom > 0 else float(np.mean(means))
    r = means - common
    chi2 = float(r @ w @ r)
    dof = means.size - 1
    if not math.isfinite(chi2) or n_g <= dof + 1:
        return LevelConsistency(means.tolist(), levels.tolist(), chi2, dof, float("nan"), 1.0, n_g)
    # Hotelling: the covariance is estimated from n_g clusters, so chi2 is T^2 and
    # T^2 (G - d) / ((G - 1) d) follows F(d, G - d)
    f = chi2 * (n_g - dof) / ((n_g - 1) * dof)
    p = float(stats.f.sf(f, dof, n_g - dof))
    return LevelConsistency(means.tolist(), levels.tolist(), chi2, dof, p, max(1.0, math.sqrt(f)), n_g)


@dataclass(frozen=True)
class LinearFit:
    """Ordinary least-squares line ``y = intercept + slope * x``.

    Attributes
    ----------
    slope, slope_err, intercept, intercept_err : float
        Estimates and standard errors.
    r2 : float
        Coefficient of determination.
    n : int
        Points used.
    resid_sd : float
        Residual standard deviation (``n - 2`` degrees of freedom).
    x_mean, sxx : float
        Mean of ``x`` and ``sum((x - x_mean)^2)`` (for the band).
    t_crit : float
        Student-t quantile of the confidence level with ``n - 2`` dof.
    confidence : float
    success : bool
        False with fewer than 3 points or no spread in ``x``.
    """

    slope: float
    slope_err: float
    intercept: float
    intercept_err: float
    r2: float
    n: int
    resid_sd: float
    x_mean: float
    sxx: float
    t_crit: float
    confidence: float = 0.95
    success: bool = True

    @property
    def slope_ci(self) -> tuple[float, float]:
        """Confidence interval of the slope."""
        h = self.t_crit * self.slope_err
        return self.slope - h, self.slope + h

    def predict(self, x) -> np.ndarray:
        """The line at ``x``."""
        return self.intercept + self.slope * np.asarray(x, dtype=float)

    def band(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Confidence band of the fitted line (not of single points) at ``x``: ``(low, high)``."""
        x = np.asarray(x, dtype=float)
        half = (
            self.t_crit * self.resid_sd * np.sqrt(1.0 / max(self.n, 1) + (x - self.x_mean) ** 2 / self.sxx)
            if self.sxx > 0
            else np.full(x.shape, np.nan)
        )
        y = self.predict(x)
        return y - half, y + half

    def to_dict(self) -> dict:
        """JSON-ready dict (None for NaN), with ``slope_ci``."""
        d = _plain(dataclasses.asdict(self))
        d["slope_ci"] = [None if not math.isfinite(v) else float(v) for v in self.slope_ci]
        return d


def linear_fit(x, y, *, confidence: float = 0.95) -> LinearFit:
    """OLS line through the finite ``(x, y)`` pairs (:func:`scipy.stats.linregress`), with a confidence band.

    Parameters
    ----------
    x, y : array_like, shape (n,)
    confidence : float
        Level of :meth:`LinearFit.band` and :attr:`LinearFit.slope_ci`.

    Returns
    -------
    LinearFit
        ``success=False`` (NaN values) with fewer than 3 points or no spread in ``x``.
    """
    from scipy import stats

    confidence = _check_confidence(confidence)
    xx = np.asarray(x, dtype=float).ravel()
    yy = np.asarray(y, dtype=float).ravel()
    if xx.shape != yy.shape:
        raise KineticsInputError(f"linear_fit: x and y differ in length: {xx.size} vs {yy.size}")
    ok = np.isfinite(xx) & np.isfinite(yy)
    xx, yy = xx[ok], yy[ok]
    n = int(xx.size)
    nan = float("nan")
    if n < 3 or np.ptp(xx) == 0:
        return LinearFit(nan, nan, nan, nan, nan, n, nan, nan, nan, nan, confidence, False)
    fit = stats.linregress(xx, yy)
    xm = float(xx.mean())
    sxx = float(np.sum((xx - xm) ** 2))
    resid = yy - fit.intercept - fit.slope * xx
    flat = np.ptp(yy) == 0  # a flat y: exact line (errors 0), R^2 undefined; linregress gives NaN
    return LinearFit(
        slope=float(fit.slope),
        slope_err=0.0 if flat else float(fit.stderr),
        intercept=float(fit.intercept),
        intercept_err=0.0 if flat else float(fit.intercept_stderr),
        r2=nan if flat else float(fit.rvalue) ** 2,
        n=n,
        resid_sd=math.sqrt(float(np.sum(resid**2)) / (n - 2)),
        x_mean=xm,
        sxx=sxx,
        t_crit=float(stats.t.ppf(0.5 + confidence / 2, n - 2)),
        confidence=confidence,
    )


@dataclass(frozen=True)
class FieldDependence:
    """Within-particle power law ``tau ~ E^exponent`` and whether it differs from 0.

    Attributes
    ----------
    column : str
        The time constant tested.
    exponent, exponent_err : float
        Pooled within-particle slope of ``ln tau`` against ``ln E`` and its
        cluster-robust (sandwich over particles) standard error.
    ci_low, ci_high : float
        Confidence interval (Student t with ``n_particles - 1`` dof).
    p_value : float
        Two-sided p-value of ``exponent = 0`` (no field dependence).
    change_percent, change_low_percent, change_high_percent : float
        Implied change of ``tau`` from the lowest to the highest field, %.
    n_particles, n_rows : int
        Particles with at least two fields, and their rows.
    field_min_kV_per_cm, field_max_kV_per_cm : float
    confidence : float
    independent : bool
        The interval contains 0 (no significant field dependence at this level).
    success : bool
    """

    column: str
    exponent: float
    exponent_err: float
    ci_low: float
    ci_high: float
    p_value: float
    change_percent: float
    change_low_percent: float
    change_high_percent: float
    n_particles: int
    n_rows: int
    field_min_kV_per_cm: float
    field_max_kV_per_cm: float
    confidence: float = 0.95
    independent: bool = False
    success: bool = True

    def to_dict(self) -> dict:
        """JSON-ready dict (None for NaN)."""
        return _plain(dataclasses.asdict(self))


def _log_tau_log_field(kinetics: pd.DataFrame, column: str, used, group: str, field: str) -> pd.DataFrame:
    """Columns ``g`` (particle), ``x = ln E``, ``y = ln tau`` of the usable rows of particles seen at two
    or more fields."""
    for c in (group, field, column):
        if c not in kinetics.columns:
            raise KineticsInputError(f"field_dependence: missing column {c!r}")
    k = kinetics
    tau = k[column].to_numpy(dtype=float)
    E = np.abs(k[field].to_numpy(dtype=float))
    m = np.isfinite(tau) & (tau > 0) & np.isfinite(E) & (E > 0)
    if used is not None:
        m &= np.asarray(used, dtype=bool)
    df = pd.DataFrame({"g": k[group].to_numpy()[m], "x": np.log(E[m]), "y": np.log(tau[m])})
    nfields = df.groupby("g")["x"].transform(lambda s: s.round(6).nunique())
    return df[nfields >= 2]


def _undetermined_dependence(column, n_g, n_rows, e_min, e_max, confidence) -> FieldDependence:
    """``success=False``: too few particles seen at two fields; every estimate NaN."""
    nan = float("nan")
    return FieldDependence(
        column, nan, nan, nan, nan, nan, nan, nan, nan, n_g, n_rows, e_min, e_max, confidence, False, False
    )


def _within_slope(df: pd.DataFrame, n_g: int) -> tuple[float, float]:
    """Pooled within-particle slope of ``y`` on ``x`` and its cluster-robust standard error
    (``G/(G-1)`` corrected, ``G = n_g`` particles)."""
    xc = (df["x"] - df.groupby("g")["x"].transform("mean")).to_numpy()
    yc = (df["y"] - df.groupby("g")["y"].transform("mean")).to_numpy()
    sxx = float(np.sum(xc * xc))
    p = float(np.sum(xc * yc) / sxx)
    resid = yc - p * xc
    score = pd.Series(xc * resid).groupby(df["g"].to_numpy()).sum().to_numpy()
    var = n_g / (n_g - 1) * float(np.sum(score**2)) / sxx**2
    return p, math.sqrt(var)


def field_dependence(
    kinetics: pd.DataFrame,
    column: str,
    *,
    used=None,
    confidence: float = 0.95,
    group: str = "particle_id",
    field: str = "field_kV_per_cm",
) -> FieldDependence:
    """Does a time constant depend on the field? Within-particle power-law test.

    For every particle with the time constant at two or more fields,
    ``ln tau`` and ``ln E`` are centred on the particle's means (removing
    its size); the pooled slope is the exponent ``p`` of ``tau ~ E^p``.
    Its standard error is cluster-robust (particles are the clusters,
    ``G/(G-1)`` corrected) and the interval uses Student t with ``G - 1``
    degrees of freedom. Drift-limited polarization gives ``p = -1``; a
    recovery unaffected by the (removed) field gives ``p = 0``.

    Parameters
    ----------
    kinetics : DataFrame
        ``particle_id, field_kV_per_cm`` and ``column``.
    column : str
        E.g. 'tau_pol_s' or 'tau_rec_s'.
    used : array_like of bool, optional
        Rows to use (default: finite, positive values).
    confidence : float
        Level of the interval.
    group, field : str
        Column names.

    Returns
    -------
    FieldDependence
        ``success=False`` with fewer than 3 particles at two fields.
    """
    from scipy import stats

    confidence = _check_confidence(confidence)
    df = _log_tau_log_field(kinetics, column, used, group, field)
    nan = float("nan")
    n_g = int(df["g"].nunique())
    e_min = float(np.exp(df["x"].min())) if len(df) else nan
    e_max = float(np.exp(df["x"].max())) if len(df) else nan
    if n_g < 3:
        return _undetermined_dependence(column, n_g, int(len(df)), e_min, e_max, confidence)
    p, se = _within_slope(df, n_g)
    t_crit = float(stats.t.ppf(0.5 + confidence / 2, n_g - 1))
    p_value = float(2 * stats.t.sf(abs(p) / se, n_g - 1)) if se > 0 else (0.0 if p != 0 else 1.0)
    lo, hi = p - t_crit * se, p + t_crit * se
    span = math.log(e_max / e_min)

    def pct(v):
        return 100.0 * (math.exp(v * span) - 1.0)

    return FieldDependence(
        column=column,
        exponent=p,
        exponent_err=se,
        ci_low=lo,
        ci_high=hi,
        p_value=p_value,
        change_percent=pct(p),
        change_low_percent=pct(lo),
        change_high_percent=pct(hi),
        n_particles=n_g,
        n_rows=int(len(df)),
        field_min_kV_per_cm=e_min,
        field_max_kV_per_cm=e_max,
        confidence=confidence,
        independent=bool(lo <= 0 <= hi),
    )
