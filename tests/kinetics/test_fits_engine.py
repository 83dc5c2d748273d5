"""The compiled least-squares path of the decay fits against lmfit, its documented reference (issue 16).

The fits solve each curve with :func:`plscope.kinetics._lsq.leastsq` (lmfit's MINPACK
algorithm, bounds transformation, options and bookkeeping without lmfit's per-evaluation
Python); :func:`plscope.kinetics.fits.lmfit_leastsq` runs the same problem through
``lmfit.minimize`` and is swapped in here as the reference. The curves come from this
file's own forward model (brute-force exposure averaging, seeded noise), not from
plscope's model functions.

Tolerance: both solvers stop when the relative decrease of chi-square falls below
``ftol = 1.5e-8``. Near the minimum ``chi2 = chi2_min (1 + z^2 / (n - k))`` with ``z``
the distance in (reduced-chi-square-scaled) standard errors, so a stopped solver sits
within ``z <= sqrt(ftol (n - k))`` ~ 1.2e-3 (n = 100 points) to 2.5e-3 (n = 400) of the
minimum: two of them agree within ``0.01 sigma``, which is the tolerance on every
parameter held against its own standard error; BIC (``n ln(chi2 / n) + ...``) within
``n ftol`` ~ 1e-5, held to 1e-3.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from plscope.kinetics import ShapePrior, _lsq, fit_biexponential_pooled, fit_models, fits

EXPOSURE_S = 0.08
T_S = np.arange(0.05, 20.0, 0.2)  # 100 points, 5 frames/s
Z_TOL = 0.01  # |difference| / standard error, see the module docstring
BIC_TOL = 1e-3


def _response(t, tau1, tau2, frac, step, i0, exposure_s):
    """Box average over the exposure of ``i0 + step (f e^{-t/tau1} + (1-f) e^{-t/tau2})`` (401 sub-samples)."""
    sub = np.linspace(-0.5, 0.5, 401) * exposure_s
    tt = t[:, None] + sub[None, :]
    inst = i0 + step * (frac * np.exp(-tt / tau1) + (1 - frac) * np.exp(-tt / tau2))
    return np.trapezoid(inst, sub, axis=1) / exposure_s


def _curves(n: int, seed: int):
    """Decays and rises, one and two components, four noise levels, weighted and unweighted."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        tau = rng.uniform(0.6, 6.0)
        ratio = (1.0, 3.0, 6.0)[k % 3]
        frac = rng.uniform(0.3, 0.7)
        tau1 = tau / (frac + (1 - frac) * ratio)
        step = rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 0.4)
        noise = (1e-3, 3e-3, 1e-2, 3e-2)[k % 4]
        y = _response(T_S, tau1, ratio * tau1, frac, step, 0.7, EXPOSURE_S) + rng.normal(0.0, noise, T_S.size)
        out.append((y, noise if k % 2 else None))
    return out


def _with_reference(monkeypatch, fn):
    monkeypatch.setattr(fits, "_SOLVER", fits.lmfit_leastsq)
    try:
        return fn()
    finally:
        monkeypatch.setattr(fits, "_SOLVER", _lsq.leastsq)


def _numbers_masked(message: str) -> str:
    return re.sub(r"[-+]?\d[\d.e+-]*", "#", message)


def _assert_same_fit(fast, ref, *, reported=True):
    """Same model, verdict, flags and message; every value within Z_TOL of its standard error.

    ``reported=False``: a free biexponential that the BIC did not select. Its ``tau_err_s`` is
    not used (the table reports the selected fit; the population prior takes ``frac``,
    ``log_ratio`` and their errors), and when its shape is undetermined the error of the mean
    time is a near-cancellation of large covariance terms that lmfit's own forward-difference
    covariance fixes only to tens of per cent; it is not compared.
    """
    assert (fast is None) == (ref is None)
    if ref is None:
        return
    assert (fast.model, fast.ok, fast.success, fast.n_points) == (
        ref.model,
        ref.ok,
        ref.success,
        ref.n_points,
    )
    if "biexp_degenerate" in ref.flags:
        # a degenerate biexponential ends anywhere along its flat valley (lmfit too, from one CPU to
        # the next); what it reports is the same verdict for the same kind of reason
        assert "biexp_degenerate" in fast.flags
        assert set(fast.flags) - {"amplitude_too_small", "tau_poorly_determined"} == set(ref.flags) - {
            "amplitude_too_small",
            "tau_poorly_determined",
        }
        if fast.model == "mono":
            assert fast.message.split(" Biexponential")[0] == ref.message.split(" Biexponential")[0]
        return
    assert fast.flags == ref.flags
    assert fast.message == ref.message
    if not np.isfinite(ref.tau_err_s):
        return
    assert abs(fast.tau_s - ref.tau_s) <= Z_TOL * ref.tau_err_s
    if reported:
        assert abs(fast.tau_err_s - ref.tau_err_s) <= Z_TOL * ref.tau_err_s
    assert abs(fast.bic - ref.bic) <= BIC_TOL
    if fast.model == "biexp" and np.isfinite(ref.frac_err):
        for name in ("frac", "log_ratio"):
            err = getattr(ref, f"{name}_err")
            assert abs(getattr(fast, name) - getattr(ref, name)) <= Z_TOL * err
            assert abs(getattr(fast, f"{name}_err") - err) <= Z_TOL * err


def test_fit_models_equals_lmfit_on_simulated_curves(monkeypatch):
    curves = _curves(48, seed=21)
    kw = {"exposure_s": EXPOSURE_S}
    fast = [fit_models(T_S, y, sigma=s, **kw) for y, s in curves]
    ref = _with_reference(monkeypatch, lambda: [fit_models(T_S, y, sigma=s, **kw) for y, s in curves])
    clean = 0
    for f, r in zip(fast, ref, strict=True):
        for key in ("auto", "biexp", "mono"):
            _assert_same_fit(f[key], r[key], reported=key != "biexp" or r["auto"].model == "biexp")
        assert np.isnan(r["auto"].delta_bic) or abs(f["auto"].delta_bic - r["auto"].delta_bic) <= 2 * BIC_TOL
        clean += r["biexp"] is not None and "biexp_degenerate" not in r["biexp"].flags
    assert clean >= 12  # the comparison covers resolved biexponentials, not only degenerate ones
    assert sum(r["auto"].ok for r in ref) >= 40


def test_pooled_fit_equals_lmfit(monkeypatch):
    prior = ShapePrior(frac_mean=0.5, frac_sd=0.1, log_ratio_mean=float(np.log(3.0)), log_ratio_sd=0.2)
    curves = [(y, s if s is not None else 0.01) for y, s in _curves(12, seed=4)]
    kw = {"prior": prior, "exposure_s": EXPOSURE_S}
    fast = [fit_biexponential_pooled(T_S, y, sigma=s, **kw) for y, s in curves]
    ref = _with_reference(
        monkeypatch, lambda: [fit_biexponential_pooled(T_S, y, sigma=s, **kw) for y, s in curves]
    )
    for f, r in zip(fast, ref, strict=True):
        _assert_same_fit(f, r)


def test_aborted_and_failing_fits_are_reported_as_lmfit_reports_them():
    y, _ = _curves(1, seed=3)[0]
    p0, lo, hi = fits._biexp_start(fits._initial_estimates(T_S, y, (0.06, 100.0)), (0.06, 100.0), 0.3, 0.5)
    args = (_lsq.BIEXP, T_S, y, None, EXPOSURE_S, p0, lo, hi)
    for max_nfev in (7, 20):  # aborted inside a Jacobian / between iterations
        fast, ref = _lsq.leastsq(*args, max_nfev=max_nfev), fits.lmfit_leastsq(*args, max_nfev=max_nfev)
        assert (fast.success, fast.errorbars, fast.message) == (ref.success, ref.errorbars, ref.message)
        assert (
            not fast.success
            and fast.message == "Tolerance seems to be too small. Could not estimate error-bars."
        )
        # the same evaluation aborted: another one would differ by a forward-difference step
        # (1e-5 relative) in one parameter; the iterates themselves agree to rounding amplified
        # by a few Levenberg-Marquardt steps
        np.testing.assert_allclose(list(fast.values.values()), list(ref.values.values()), rtol=1e-6)
        assert fast.chisqr == pytest.approx(ref.chisqr, rel=1e-6)
    # an overflowing model (a time far before the edge) raises like lmfit's nan_policy='raise'
    t_bad = T_S - 1e4
    for solver in (_lsq.leastsq, fits.lmfit_leastsq):
        with pytest.raises(ValueError):
            solver(
                _lsq.MONO,
                t_bad,
                y,
                None,
                0.0,
                (0.7, 0.3, 1.0),
                (-np.inf, -np.inf, 0.06),
                (np.inf, np.inf, 100.0),
                max_nfev=400,
            )


@pytest.mark.parametrize("kind", [_lsq.MONO, _lsq.BIEXP, _lsq.POOLED])
def test_compiled_residuals_are_the_model_functions(kind):
    rng = np.random.default_rng(kind)
    y, _ = _curves(1, seed=kind)[0]
    w = rng.uniform(50, 150, T_S.size)
    names = _lsq.PARAM_NAMES[kind]
    lo = {
        "i0": -np.inf,
        "amplitude": -np.inf,
        "tau": 0.06,
        "tau1": 0.06,
        "dtau": 0.0,
        "frac": 0.0,
        "log_ratio": 0.0,
    }
    hi = {
        "i0": np.inf,
        "amplitude": np.inf,
        "tau": 100.0,
        "tau1": 100.0,
        "dtau": 99.9,
        "frac": 1.0,
        "log_ratio": 7.0,
    }
    prior = (0.5, 0.1, 1.0, 0.2)
    func = {
        _lsq.MONO: fits.monoexponential,
        _lsq.BIEXP: fits.biexponential,
        _lsq.POOLED: fits.biexponential_mean_tau,
    }
    data = np.vstack([T_S, y, w])
    par = np.array([kind, EXPOSURE_S, *(lo[n] for n in names), *(hi[n] for n in names), *prior])
    for _ in range(20):
        q = rng.normal(0.0, 1.5, len(names))
        r = np.empty(T_S.size + (2 if kind == _lsq.POOLED else 0))
        assert _lsq._residuals(q, data, par, r)
        v = np.empty(len(names))
        _lsq._external(q, par[2 : 2 + len(names)], par[2 + len(names) : 2 + 2 * len(names)], v)
        expect = (func[kind](T_S, *v, exposure_s=EXPOSURE_S) - y) * w
        np.testing.assert_allclose(r[: T_S.size], expect, rtol=1e-12, atol=1e-12 * np.abs(expect).max())
        if kind == _lsq.POOLED:
            np.testing.assert_allclose(r[T_S.size :], [(v[3] - 0.5) / 0.1, (v[4] - 1.0) / 0.2], rtol=1e-12)
