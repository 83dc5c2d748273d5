"""The spectral settled shift (issue 12) against the independent spectral forward model.

Truth from ``validation.forward.spectra`` (imports nothing from plscope): a spectra-only run whose
peaks shift with the kinetics of ``validation.forward.kinetics``. Target (issue 12): with slow
components not settled within the half period (slow biexponential, half the mobility), the
run's spectral shift within 3 % of the truth at every field.
"""

from __future__ import annotations

import pytest
from validation.scenarios_kinetics import run_spectral_scenario


@pytest.mark.slow
@pytest.mark.parametrize(("name", "seed"), [("spec_slow_biexp", 2), ("spec_half_mobility", 3)])
def test_settled_shift_within_three_percent(name, seed):
    # the seeds that missed with the peak-only fit (3.53 % and 3.36 %); seeds 1-5 of both are in
    # docs/validation-kinetics.md
    r = run_spectral_scenario(name, seed=seed)
    print(r)
    assert r["method"] == "settled_fit"
    assert r["shift_err"] <= 0.03
    # the end-of-window value (kept as shift_window_nm) is what fell short before
    assert r["shift_window_err"] > r["shift_err"]
