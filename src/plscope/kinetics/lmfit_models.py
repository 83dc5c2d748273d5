"""lmfit models of the decay functions of :mod:`plscope.kinetics.fits`, with data-driven guesses.

For interactive fitting with lmfit (``model.guess``, ``model.fit``, lmfit's reports and
confidence intervals). plscope's own fits call MINPACK directly
(:func:`plscope.kinetics.fits.fit_models`) and do not import lmfit; these models use the
same functions, start values and bounds.

Examples
--------
>>> import numpy as np
>>> from plscope.kinetics.lmfit_models import MonoExponentialModel
>>> t = np.linspace(0.0, 20.0, 101)
>>> y = 1.0 + 2.0 * np.exp(-t / 3.0)
>>> model = MonoExponentialModel()
>>> result = model.fit(y, model.guess(y, t), t=t, exposure_s=0.0)
>>> round(result.params["tau"].value, 3)
3.0
"""

from __future__ import annotations

import lmfit
import numpy as np

from . import _lsq
from .fits import (
    _biexp_start,
    _initial_estimates,
    _mono_start,
    biexponential,
    default_tau_bounds_s,
    monoexponential,
)

__all__ = ["BiExponentialModel", "MonoExponentialModel"]


class MonoExponentialModel(lmfit.Model):
    """lmfit model of :func:`monoexponential` (independent variables ``t``, ``exposure_s``)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("independent_vars", ["t", "exposure_s"])
        kwargs.setdefault("nan_policy", "raise")
        super().__init__(monoexponential, **kwargs)
        self.set_param_hint("tau", min=1e-6)

    def guess(self, data, t, *, tau_bounds_s=None, **kws):
        """Data-driven start values; ``tau`` bounded by ``tau_bounds_s`` (default 0.3 dt .. 5 window)."""
        t = np.asarray(t, dtype=float)
        bounds = tau_bounds_s or default_tau_bounds_s(t)
        p0, lo, hi = _mono_start(_initial_estimates(t, np.asarray(data, dtype=float), bounds), bounds)
        pars = self.make_params(**dict(zip(_lsq.PARAM_NAMES[_lsq.MONO], p0, strict=True)))
        pars["tau"].set(min=lo[2], max=hi[2])
        return lmfit.models.update_param_vals(pars, self.prefix, **kws)


class BiExponentialModel(lmfit.Model):
    """lmfit model of :func:`biexponential` (independent variables ``t``, ``exposure_s``).

    Bounds: ``0 <= frac <= 1``, ``tau1`` in ``tau_bounds_s``, ``0 <= dtau <= hi - lo``.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("independent_vars", ["t", "exposure_s"])
        kwargs.setdefault("nan_policy", "raise")
        super().__init__(biexponential, **kwargs)
        self.set_param_hint("frac", min=0.0, max=1.0)
        self.set_param_hint("tau1", min=1e-6)
        self.set_param_hint("dtau", min=0.0)

    def guess(self, data, t, *, tau_bounds_s=None, tau1_rel=0.3, frac=0.5, **kws):
        """Start values from the area-based mean time: ``tau1 = tau1_rel * tau_mean``.

        ``dtau`` is chosen so that the start has the data's mean time constant.
        """
        t = np.asarray(t, dtype=float)
        bounds = tau_bounds_s or default_tau_bounds_s(t)
        estimates = _initial_estimates(t, np.asarray(data, dtype=float), bounds)
        p0, lo, hi = _biexp_start(estimates, bounds, tau1_rel, frac)
        pars = self.make_params(**dict(zip(_lsq.PARAM_NAMES[_lsq.BIEXP], p0, strict=True)))
        pars["tau1"].set(min=lo[3], max=hi[3])
        pars["dtau"].set(min=lo[4], max=hi[4])
        return lmfit.models.update_param_vals(pars, self.prefix, **kws)
