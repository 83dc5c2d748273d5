"""The HTML report: self-contained, every figure of the paper present, a real PNG each."""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import re

import pandas as pd
import pytest

from plscope.kinetics import analyze_population, summarize_population
from plscope.pipeline import analyze_imaging
from plscope.report import figures, render_report, write_report

#: (figure id, panel of Chem. Sci. 2025, 16, 22417 it regenerates)
PAPER_FIGURES = [
    ("fig-trace", "1b"),
    ("fig-superposition", "1c"),
    ("fig-se", "1d–e"),
    ("fig-size-examples", "2a–f"),
    ("fig-tau-size", "2g–h"),
    ("fig-field-curves", "3a"),
    ("fig-tau-field", "3b–d"),
    ("fig-mobility", "3e"),
    ("fig-velocity", "S10"),
]


def with_population(result):
    """The run result as the pipeline gives it once it calls analyze_population (no-op after that)."""
    if getattr(result, "population", None) is not None:
        return result
    pop = analyze_population(
        result.traces,
        result.frame_time_s,
        result.cycles,
        exposure_s=result.summary["exposure_s"],
        particles=result.particles,
    )
    summary = summarize_population(
        pop.table, result.particles, temperature_K=result.summary["temperature_K"], population=pop
    )
    warnings = [*result.summary.get("warnings", []), *summary.pop("warnings")]
    result.summary.update(summary, warnings=warnings)
    result.kinetics, result.curves = pop.table, pop.curves
    result.population = pop
    return result


@pytest.fixture(scope="module")
def result(small_run):
    run, _ = small_run
    return with_population(analyze_imaging(run))


@pytest.fixture(scope="module")
def report_file(result, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(result, path)
    return path


def _figures(text: str) -> dict[str, tuple[str | None, bytes]]:
    found = re.findall(
        r'<figure id="([^"]+)"(?: data-paper-figure="([^"]+)")?><img alt="[^"]*" '
        r'src="data:image/png;base64,([^"]+)"',
        text,
    )
    return {fid: (paper or None, base64.b64decode(data)) for fid, paper, data in found}


def test_report_file_has_every_figure_of_the_paper(report_file):
    text = report_file.read_text(encoding="utf-8")
    figs = _figures(text)
    assert "fig-reference" in figs
    for fig_id, paper in PAPER_FIGURES:
        assert fig_id in figs, f"{fig_id} (Fig. {paper}) missing"
        assert figs[fig_id][0] == paper
        assert f"Fig. {paper} — " in text
    for fig_id, (_, png) in figs.items():
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, fig_id
    assert "could not be drawn" not in text


def test_self_contained(report_file):
    text = report_file.read_text(encoding="utf-8")
    # no external resources: opens from a USB stick with no server
    assert not re.search(r'(src|href)="(http|//|file:)', text)
    # one small inline script (sortable tables), nothing loaded from anywhere
    assert text.count("<script") == 1 and "<script>" in text and "src=" not in text.split("<script>")[1][:20]
    assert not re.search(r"(fetch|XMLHttpRequest|import\(|https?:)", text.split("<script>")[1])


def test_summary_shows_numbers_with_uncertainties(report_file, result):
    text = report_file.read_text(encoding="utf-8")
    table = re.search(r"<table id='summary'>(.*?)</table>", text, re.S).group(1)
    for label in (
        "ion mobility",
        "95 % confidence interval of the mean",
        "standard error",
        "diffusion coefficient",
        "τ_pol ∝ E^p",
        "τ_rec ∝ E^p",
    ):
        assert label in table, label
    row = table.split("95 % confidence interval of the mean")[1].split("</tr>")[0]
    lo, hi = result.summary["ion_mobility_ci95_cm2_per_Vs"]
    # shown in the unit of Fig. 3e (10^-10 cm2/Vs), with the saved value in data-value
    assert f"[{lo * 1e10:.4g}, {hi * 1e10:.4g}]" in row and "10⁻¹⁰ cm² V⁻¹ s⁻¹" in row
    assert json.loads(html.unescape(re.search(r'data-value="([^"]*)"', row).group(1))) == [lo, hi]
    assert "—" not in table.split("ion mobility")[1].split("</tr>")[0]


def test_every_summary_row_has_a_unit_and_temperature_is_not_rounded(report_file, result):
    text = report_file.read_text(encoding="utf-8")
    table = re.search(r"<table id='summary'>(.*?)</table>", text, re.S).group(1)
    rows = dict(re.findall(r"<tr data-key='([^']+)'>(.*?)</tr>", table))
    for key in (
        "ion_mobility_std_cm2_per_Vs",
        "ion_mobility_sem_cm2_per_Vs",
        "ion_mobility_fit_err_cm2_per_Vs",
        "tau_size_slope_s_per_nm",
        "tau_size_slope_err_s_per_nm",
        "temperature_K",
    ):
        if key in rows:
            unit = re.findall(r"<td class='l'>([^<]*)</td>", rows[key])
            assert unit and unit[-1].strip(), key
    T = result.summary["temperature_K"]
    assert f">{T:.2f}<" in rows["temperature_K"]  # 296.15 K, not 296.1


def test_fit_quality_section(report_file, result):
    text = report_file.read_text(encoding="utf-8")
    assert "<table id='model-choice'>" in text
    if result.population.shape_priors:
        assert "<table id='shape-priors'>" in text
    assert "id='excluded-particles'" in text


def test_extra_sections_are_appended_after_the_figures(report_file, result):
    # the pipeline appends fragments of other analyses (e.g. the spectra) to result.extra_sections
    fragment = "<h2 id='spectra'>Spectra</h2><p>shift 1.2 nm</p>"
    text = report_file.read_text(encoding="utf-8")
    assert fragment not in text
    no_figures = dataclasses.replace(
        result, kinetics=result.kinetics.iloc[:0], cycles=result.cycles.iloc[:0], extra_sections=[fragment]
    )
    text = render_report(no_figures)
    assert text.index(fragment) > text.index('id="fig-reference"')
    assert text.index(fragment) < text.index("<h2>Tables</h2>")


def test_a_figure_that_fails_is_reported_and_the_rest_is_kept(result, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("synthetic failure")

    monkeypatch.setattr(figures, "reference_image", broken)
    no_cycles = dataclasses.replace(result, kinetics=result.kinetics.iloc[:0], cycles=result.cycles.iloc[:0])
    text = render_report(no_cycles)
    assert "id='fig-reference-missing'" in text and "synthetic failure" in text
    assert "<table id='summary'>" in text and "<h2>Tables</h2>" in text


def test_report_of_a_run_without_field_cycles(result):
    empty = dataclasses.replace(
        result,
        kinetics=pd.DataFrame(columns=result.kinetics.columns),
        cycles=result.cycles.iloc[:0],
        curves={},
    )
    text = render_report(empty)
    figs = _figures(text)
    assert set(figs) == {"fig-reference"}
    assert "<h2>Tables</h2>" in text
