"""Re-analysis from stored traces: same settings -> same numbers bit for bit."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from plscope.cli import main


@pytest.fixture(scope="module")
def analysed(small_run, small_output, tmp_path_factory):
    """A copy of the shared ``plscope run`` of small_run (these tests re-analyse into it)."""
    run, _ = small_run
    out = tmp_path_factory.mktemp("rea") / "out"
    shutil.copytree(small_output, out)
    return run, out


def _numbers(out):
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("provenance")
    return summary, pd.read_parquet(out / "kinetics.parquet")


def test_reanalyze_unchanged_is_bit_for_bit(analysed, tmp_path, capsys):
    run, out = analysed
    before_summary, before_kin = _numbers(out)
    # the stack is not read again: take it away
    moved = tmp_path / "movie.tif"
    (run / "movie.tif").rename(moved)
    try:
        assert main(["reanalyze", str(out)]) == 0
    finally:
        moved.rename(run / "movie.tif")
    assert "unchanged" in capsys.readouterr().out
    after_summary, after_kin = _numbers(out)
    assert after_summary == before_summary
    pd.testing.assert_frame_equal(after_kin, before_kin, check_exact=True)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["reanalyses"][-1]["changes"] == {"settings": {}, "summary": {}}


def test_reanalyze_with_changed_settings_records_the_difference(analysed, tmp_path, capsys):
    _, out = analysed
    cfg = tmp_path / "fit.toml"
    cfg.write_text('[kinetics]\nmodel = "mono"\ncorrect_bleaching = false\n')
    before_summary, _ = _numbers(out)
    assert main(["reanalyze", str(out), "--config", str(cfg)]) == 0
    printed = capsys.readouterr().out
    assert "kinetics.model" in printed
    prov = json.loads((out / "provenance.json").read_text())
    changes = prov["reanalyses"][-1]["changes"]
    assert changes["settings"]["kinetics.model"] == ["auto", "mono"]
    assert changes["settings"]["kinetics.correct_bleaching"] == [True, False]
    after_summary, kin = _numbers(out)
    assert set(kin["pol_model"].dropna()) <= {"mono", "none"}
    assert after_summary["ion_mobility_cm2_per_Vs"] != before_summary["ion_mobility_cm2_per_Vs"]
    assert "ion_mobility_cm2_per_Vs" in changes["summary"]
    assert prov["settings"]["kinetics"]["model"] == "mono"


def test_reanalyze_refuses_a_folder_without_results(tmp_path, capsys):
    assert main(["reanalyze", str(tmp_path)]) == 2
    assert "not a plscope output folder" in capsys.readouterr().err


def test_config_print_defaults_round_trips(tmp_path, capsys):
    assert main(["config", "--print-defaults"]) == 0
    text = capsys.readouterr().out
    p = tmp_path / "d.toml"
    p.write_text(text)
    assert main(["config", "--check", str(p)]) == 0
    p.write_text(text.replace("[kinetics]", "[kinetic]"))
    assert main(["config", "--check", str(p)]) == 2
    assert "unknown key 'kinetic'" in capsys.readouterr().err


def _snapshot(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.slow
def test_bare_reanalyze_keeps_the_settings_it_was_last_run_with(analysed, tmp_path, capsys):
    """Issue 15: `plscope reanalyze OUT` never resets earlier --config settings to the defaults."""
    run, out = analysed
    fewer = tmp_path / "fewer.toml"
    fewer.write_text("[kinetics]\nn_bootstrap = 20\n")
    before = _snapshot(out)
    first = tmp_path / "first"
    assert main(["-q", "reanalyze", str(out), "--config", str(fewer), "--out", str(first)]) == 0
    assert _snapshot(out) == before  # --out writes beside: OUT only read

    assert main(["reanalyze", str(first)]) == 0  # bare: keeps n_bootstrap = 20
    assert "settings and numbers unchanged" in capsys.readouterr().out
    prov = json.loads((first / "provenance.json").read_text())
    assert prov["settings"]["kinetics"]["n_bootstrap"] == 20
    assert prov["reanalyses"][-1]["changes"] == {"settings": {}, "summary": {}}

    # a partial --config changes only its keys
    mono = tmp_path / "mono.toml"
    mono.write_text('[kinetics]\nmodel = "mono"\n')
    assert main(["-q", "reanalyze", str(first), "--config", str(mono), "--out", str(tmp_path / "mono")]) == 0
    kinetics = json.loads((tmp_path / "mono" / "provenance.json").read_text())["settings"]["kinetics"]
    assert kinetics["model"] == "mono" and kinetics["n_bootstrap"] == 20

    # an unsafe --out (inside the raw run folder the results came from) is refused before any work
    before = _snapshot(first)
    assert main(["reanalyze", str(first), "--out", str(run / "again")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("plscope: error:") and "input" in err[0]
    assert not (run / "again").exists() and _snapshot(first) == before
