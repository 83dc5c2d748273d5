"""The batch index (issue 15): status with the earlier verdict, QC reasons, rounding, no wrapped numbers.

No analysis runs here: the run folders' saved summaries and kinetics tables
are written by the test (hand-made values, not plscope's output), as a
batch would find them.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import json
import re
from pathlib import Path

import pytest

from plscope.pipeline.batch import RunOutcome, summary_numbers, write_index
from plscope.pipeline.output import claim_folder
from plscope.report.batch_index import NBSP, fields_text, power_of_ten, value_with_interval

STARTED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

#: a saved imaging summary as a run writes it (only the keys the index reads)
IMAGING = {
    "sample": "MAPbBr3 batch 7",
    "n_particles": 12,
    "fields_kV_per_cm": [90.0013, 110.005, 129.998],
    "ion_mobility_cm2_per_Vs": 2.7136e-10,
    "ion_mobility_std_cm2_per_Vs": 8.9e-12,
    "ion_mobility_ci95_cm2_per_Vs": [2.6599e-10, 2.8158e-10],
    "diffusion_coefficient_cm2_per_s": 6.9249e-12,
    "diffusion_coefficient_ci95_cm2_per_s": [6.788e-12, 7.186e-12],
    "tau_size_slope_s_per_nm": 0.0028928,
    "tau_size_slope_err_s_per_nm": 0.00048,
    "qc": {"status": "warn", "reasons": ["fewer than 5 used particles per field (3 at 130 kV/cm)"]},
    "warnings": ["3 surplus TTL edge(s) after the last of 270 frames ignored"],
    "provenance": {"config": {"movie": {"path": "movie.tif"}, "spectra": None}},
}
KINETICS = (
    "particle_id,field_kV_per_cm,tau_pol_s,tau_pol_err_s,size_nm,used\n"
    "0,90.0013,2.5,0.1,600,True\n1,129.998,1.8,0.1,610,True\n2,129.998,3.1,0.2,950,True\n"
    "3,129.998,99.0,0.2,700,False\n"
)


def _outcomes(out: Path) -> list[RunOutcome]:
    ok = out / "fresh"
    ok.mkdir(parents=True)
    (ok / "kinetics.csv").write_text(KINETICS)
    earlier = dict(IMAGING, sample="", ion_mobility_cm2_per_Vs=2.5e-10, ion_mobility_ci95_cm2_per_Vs=None)
    return [
        RunOutcome("fresh", "/r/fresh", str(ok), "ok", seconds=12.34, numbers=summary_numbers(IMAGING)),
        RunOutcome(
            "old%2Frun",
            "/r/old/run",
            str(out / "old%2Frun"),
            "skipped",
            reason="inputs and settings unchanged",
            numbers=summary_numbers(earlier, folder_name="run"),
        ),
        RunOutcome("broken", "/r/broken", "", "failed", reason="/r/broken/daq.csv: no camera TTL edges"),
    ]


@pytest.fixture
def index(tmp_path):
    out = tmp_path / "out"
    claim_folder(out, "batch")
    outcomes = _outcomes(out)
    write_index(outcomes, out, started=STARTED, root=tmp_path / "root")
    with open(out / "batch.csv", newline="") as fh:
        rows = {r["run"]: r for r in csv.DictReader(fh)}
    return (out / "index.html").read_text(encoding="utf-8"), rows


def _row(page: str, name: str) -> str:
    """The HTML of the table row whose first cell names ``name``."""
    rows = re.findall(r"<tr class=[^>]*>.*?</tr>", page, flags=re.S)
    return next(r for r in rows if f">{name}<" in r)


def test_status_shows_warn_failed_and_the_earlier_verdict_of_a_skipped_run(index):
    page, rows = index
    assert ">warn<" in _row(page, "fresh")  # analysed, its own QC warns
    assert "skipped (earlier: warn)" in _row(page, "old/run")
    assert ">failed<" in _row(page, "broken") and "no camera TTL edges" in _row(page, "broken")
    assert rows["fresh"]["status"] == "ok" and rows["fresh"]["qc_status"] == "warn"
    assert rows["old%2Frun"]["status"] == "skipped" and rows["old%2Frun"]["qc_status"] == "warn"
    assert rows["broken"]["status"] == "failed" and rows["broken"]["qc_status"] == ""


def test_qc_reasons_sample_name_and_kind_in_the_index_and_the_csv(index):
    page, rows = index
    reason = "fewer than 5 used particles per field (3 at 130 kV/cm)"
    assert html.escape(reason) in _row(page, "fresh")
    assert rows["fresh"]["qc_reasons"] == reason
    assert "MAPbBr3 batch 7" in _row(page, "fresh") and rows["fresh"]["sample"] == "MAPbBr3 batch 7"
    assert rows["old%2Frun"]["sample"] == "run"  # no [sample] name: the folder name
    assert rows["fresh"]["kind"] == "imaging" and "PL imaging" in _row(page, "fresh")
    assert "1 warning(s)" in _row(page, "fresh")


def test_fields_rounded_and_numbers_with_their_interval_never_wrap(index):
    page, rows = index
    row = _row(page, "fresh")
    assert ">90, 110, 130<" in row
    assert "90.0013" not in page and "110.005" not in page
    assert rows["fresh"]["fields_kV_per_cm"] == "90 110 130"
    # µ on the column's power of ten (10⁻¹⁰ in the header), rounded to two digits of its interval
    assert "10⁻¹⁰" in page and "2.714\u00a0(2.660–\u20602.816)" in row
    assert "6.92\u00a0(6.79–\u20607.19)" in row and "2.89\u00a0±\u00a00.48" in row
    # the number cells (no class; the field list may break between levels, never inside a number)
    cells = re.findall(r'<td(?: data-v="[^"]*")?>([^<]*)</td>', row)
    numbers = [c for c in cells if re.search(r"\d", c) and ", " not in c]
    assert len(numbers) >= 5 and all(" " not in c and "-" not in c and "e" not in c for c in numbers), numbers
    assert float(rows["fresh"]["ion_mobility_ci95_low"]) == 2.6599e-10  # the CSV keeps every digit


def test_plots_across_runs_come_from_the_saved_tables(index):
    page, _ = index
    figures = re.findall(r'<figure id="([^"]+)"><img src="data:image/svg\+xml;base64,', page)
    assert figures == ["fig-mobility", "fig-tau-size"]
    assert "pooled over 1 run(s)" in page


def test_a_run_without_qc_verdict_warns_with_its_warnings():
    detector = {"kind": "detector", "sample": "", "warnings": ["rise_time_s: null (too few samples)"]}
    numbers = summary_numbers(detector, folder_name="cy_i")
    assert numbers["kind"] == "detector" and numbers["sample"] == "cy_i"
    assert numbers["qc_status"] == "warn" and numbers["qc_reasons"] == ["rise_time_s: null (too few samples)"]
    spectra = {"provenance": {"config": {"movie": None, "spectra": {"path": "s.spe"}}}, "qc": None}
    assert summary_numbers(spectra)["kind"] == "spectra" and summary_numbers(spectra)["qc_status"] == "ok"


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"value": 2.7136e-10, "low": 2.6599e-10, "high": 2.8158e-10, "exp": -10}, "2.714 (2.660–2.816)"),
        ({"value": 6.9249e-12, "err": 1.3e-13, "exp": -12}, "6.92 ± 0.13"),
        ({"value": 88.0076, "err": 0.008}, "88.0076 ± 0.0080"),
        ({"value": -0.0070204, "err": 0.000071, "exp": -3}, "−7.020 ± 0.071"),
        ({"value": 135.82}, "136"),
        ({"value": float("nan")}, "—"),
    ],
)
def test_value_with_interval(kwargs, text):
    shown = value_with_interval(kwargs.pop("value"), **kwargs)
    assert shown.replace(NBSP, " ").replace("\u2060", "") == text


def test_fields_and_column_scale():
    assert fields_text([90.0013, 110.005, 129.998]) == "90, 110, 130"
    assert fields_text([12.34]) == "12.3" and fields_text([]) == "—"
    assert power_of_ten([2.7e-10, 2.5e-10, None]) == -10 and power_of_ten([88.0, 130.0]) == 0


def test_index_rows_are_json_safe_in_the_summary_numbers():
    json.dumps(summary_numbers(IMAGING))  # batch outcomes travel between Dask processes
