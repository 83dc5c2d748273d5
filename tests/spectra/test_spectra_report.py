"""The spectral report: Fig. 4a-d as embedded PNGs, from a simulated run."""

from __future__ import annotations

import base64
import re

import pytest
from matplotlib.figure import Figure

from plscope.report.spectra import (
    peak_positions,
    shift_histograms,
    shift_vs_field,
    spectra_over_time,
    spectra_section_html,
)

pytestmark = pytest.mark.slow


def test_section_has_the_four_figures_as_pngs(spectral_output):
    _, result, _ = spectral_output
    html = spectra_section_html(result)
    assert html.startswith("<h2 id='spectra'>Spectra</h2>")
    found = dict(
        re.findall(r'<figure id="(fig-[^"]+)"><img alt="[^"]*" src="data:image/png;base64,([^"]+)"', html)
    )
    assert {"fig-calibration", "fig-4a", "fig-4b", "fig-4c", "fig-4d"} <= set(found)
    for data in found.values():
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table" in html and "Shifts per field" in html
    assert "<html" not in html  # a fragment for the run report


def test_figure_functions_build_figures_without_pyplot(spectral_output):
    import inspect

    from plscope.report import spectra as module

    _, result, _ = spectral_output
    s = result.summary
    figs = [
        spectra_over_time(
            result.spectra[:, 0, :],
            result.wavelength_nm,
            result.frame_time_s,
            cycles=result.cycles,
            field_trace=result.field_trace,
        ),
        shift_histograms(result.table, result.shifts),
        shift_histograms(result.table, result.shifts, particle_id=1),
        peak_positions(result.table, result.cycles),
        shift_vs_field(
            result.shifts,
            slope=s["spectral_shift_slope_nm_per_kV_per_cm"],
            slope_err=s["spectral_shift_slope_err_nm_per_kV_per_cm"],
            intercept=s["spectral_shift_intercept_nm"],
        ),
    ]
    assert all(isinstance(f, Figure) for f in figs)
    assert len(figs[0].axes) == 3  # image, colour bar, field strip
    assert len(figs[1].axes) == 2  # time trace, histograms
    source = inspect.getsource(module)  # no global figure state
    assert not re.search(r"import\s+matplotlib\.pyplot|from\s+matplotlib\s+import\s+pyplot", source)
