"""Fit throughput: batched fits against an lmfit loop and a ``scipy.optimize.least_squares`` loop.

Data come from this module's own formulas (seeded): Lorentzian lines
(centre 520-545 nm, FWHM 15-25 nm, height 300-1000 counts) on a sloped
baseline over 485-585 nm, 512 points, Poisson noise; biexponential decays
``i0 + a (f exp(-t/tau1) + (1 - f) exp(-t/tau2))`` (tau1 0.5-1.5 s,
tau2 3-8 s, f 0.3-0.7) over 200 frames at 10 Hz with Gaussian noise of 1 %.

Methods (each in its own process, see :mod:`benchmarks.stages`):

- Lorentzian: ``plscope.spectra.fit_lorentzians`` (batched
  Levenberg-Marquardt, numpy), an lmfit loop (``plscope.spectra.lmfit_lorentzian``,
  ``LorentzianModel + LinearModel``), a ``least_squares`` loop (same model,
  same start values, 2-point Jacobian);
- biexponential: plscope's batched fit ``plscope.kinetics.fit_biexponentials``
  (one compiled Levenberg-Marquardt over all curves), plscope's per-curve fit
  ``plscope.kinetics.fit_biexponential`` (with its checks, three starts and the
  monoexponential alternative) on its compiled MINPACK path
  (``plscope.kinetics._lsq``) and on lmfit, its reference
  (``plscope.kinetics.fits.lmfit_leastsq``, method ``plscope_lmfit``), a plain
  lmfit ``Model`` loop and a ``least_squares`` loop of the same 5-parameter model.
"""

from __future__ import annotations

import time

import numpy as np

N_POINTS = 512
N_DECAY = 200


def lorentz_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.linspace(485.0, 585.0, N_POINTS)
    c = rng.uniform(520.0, 545.0, n)[:, None]
    hw = rng.uniform(7.5, 12.5, n)[:, None]
    a = rng.uniform(300.0, 1000.0, n)[:, None]
    lam = a / (1.0 + ((x[None, :] - c) / hw) ** 2) + 40.0 + 0.3 * (x[None, :] - x.mean())
    return x, rng.poisson(lam).astype(float), c[:, 0]


def biexp(t, i0, a, f, tau1, tau2):
    return i0 + a * (f * np.exp(-t / tau1) + (1.0 - f) * np.exp(-t / tau2))


def biexp_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(N_DECAY) / 10.0
    p = np.column_stack(
        [
            rng.uniform(0.6, 0.8, n),
            rng.uniform(0.2, 0.4, n),
            rng.uniform(0.3, 0.7, n),
            rng.uniform(0.5, 1.5, n),
            rng.uniform(3.0, 8.0, n),
        ]
    )
    y = biexp(t[None, :], *(p[:, k : k + 1] for k in range(5)))
    return t, y + rng.normal(0.0, 0.01, y.shape), p


def _biexp_start(t, y):
    return np.array([y[-1], y[0] - y[-1], 0.5, 0.1 * t[-1], 0.4 * t[-1]])


def _lorentz_fits(method: str, n: int, seed: int):
    import lmfit.models  # noqa: F401  imports outside the timing
    import scipy.optimize  # noqa: F401

    from plscope.spectra import fit_lorentzians, guess_lorentzians, lmfit_lorentzian

    x, y, truth = lorentz_data(n, seed)
    fit_lorentzians(x, y[:2])  # first-call set-up outside the timing
    t0 = time.perf_counter()
    if method == "plscope":
        centres = fit_lorentzians(x, y)["center"].to_numpy()
    elif method == "lmfit":
        centres = np.array([lmfit_lorentzian(x, row).params["center"].value for row in y])
    elif method == "least_squares":
        from scipy.optimize import least_squares

        g = guess_lorentzians(x, y)
        xm = x.mean()

        def res(p, row):
            a, c, w, off, slope = p
            return a / (1.0 + ((x - c) / (w / 2.0)) ** 2) + off + slope * (x - xm) - row

        centres = np.array([least_squares(res, g[i, :5], args=(y[i],)).x[1] for i in range(n)])
    else:
        raise ValueError(method)
    seconds = time.perf_counter() - t0
    return seconds, float(np.nanmedian(np.abs(centres - truth))), "median abs(centre - truth), nm"


def _biexp_fits(method: str, n: int, seed: int):
    import lmfit
    import scipy.optimize  # noqa: F401

    from plscope.kinetics import fit_biexponential

    t, y, truth = biexp_data(n, seed)
    if method == "batched":
        from plscope.kinetics import fit_biexponentials

        fit_biexponentials(t, y[:2])  # compiled (or loaded from numba's cache) outside the timing
    if method == "plscope":
        fit_biexponential(t, y[0])  # the same for the compiled residuals
    t0 = time.perf_counter()
    if method == "batched":
        taus = fit_biexponentials(t, y)["tau_s"].to_numpy()
    elif method == "plscope":
        taus = np.array([fit_biexponential(t, row).tau_s for row in y])
    elif method == "plscope_lmfit":
        from plscope.kinetics import fits

        fits._SOLVER = fits.lmfit_leastsq  # the reference solver (this process only)
        taus = np.array([fit_biexponential(t, row).tau_s for row in y])
    elif method == "lmfit":
        import lmfit

        model = lmfit.Model(biexp)
        taus = []
        for row in y:
            s = _biexp_start(t, row)
            params = model.make_params(i0=s[0], a=s[1], f=dict(value=0.5, min=0, max=1))
            params.add("tau1", value=s[3], min=1e-3)
            params.add("tau2", value=s[4], min=1e-3)
            r = model.fit(row, params, t=t).params
            f = r["f"].value
            taus.append(f * r["tau1"].value + (1 - f) * r["tau2"].value)
        taus = np.array(taus)
    elif method == "least_squares":
        from scipy.optimize import least_squares

        lo, hi = [-np.inf, -np.inf, 0.0, 1e-3, 1e-3], [np.inf, np.inf, 1.0, np.inf, np.inf]
        taus = []
        for row in y:
            p = least_squares(lambda p, r=row: biexp(t, *p) - r, _biexp_start(t, row), bounds=(lo, hi)).x
            taus.append(p[2] * p[3] + (1 - p[2]) * p[4])
        taus = np.array(taus)
    else:
        raise ValueError(method)
    seconds = time.perf_counter() - t0
    true_tau = truth[:, 2] * truth[:, 3] + (1 - truth[:, 2]) * truth[:, 4]
    return seconds, float(np.nanmedian(np.abs(taus / true_tau - 1.0))), "median abs(tau / truth - 1)"


def run_fits(model: str, method: str, n: int, *, seed: int = 0) -> dict:
    """Fit ``n`` seeded curves of ``model`` ('lorentz' or 'biexp') with ``method``; timing and accuracy."""
    import warnings

    fn = _lorentz_fits if model == "lorentz" else _biexp_fits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds, err, what = fn(method, n, seed)
    return {"seconds": seconds, "n_fits": n, "fits_per_s": n / seconds, "accuracy": err, "accuracy_of": what}
