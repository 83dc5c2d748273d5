"""The Python API: plscope.analyze / load / reanalyze / simulate, and its agreement with `plscope run`."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pandas as pd
import pytest

import plscope


def _as_written(df: pd.DataFrame) -> pd.DataFrame:
    """A table as the CSV writer writes it and a reader reads it back."""
    return pd.read_csv(io.StringIO(df.to_csv(index=False)))


@pytest.mark.slow
def test_analyze_with_defaults_gives_the_tables_of_plscope_run(small_output, small_analysis, tmp_path):
    out = small_output  # `plscope run` of small_run, default settings (read only here)
    res = small_analysis  # plscope.analyze(small_run): in memory, default settings
    assert res.out_dir is None and res.extraction is not None
    for name, table in (("particles", res.particles), ("kinetics", res.kinetics), ("cycles", res.cycles)):
        pd.testing.assert_frame_equal(_as_written(table), pd.read_csv(out / f"{name}.csv"), check_exact=True)
    written = plscope.load(out)
    pd.testing.assert_frame_equal(written.kinetics, res.kinetics, check_exact=True)
    pd.testing.assert_frame_equal(written.traces, res.traces, check_exact=True)
    for key in ("ion_mobility_cm2_per_Vs", "diffusion_coefficient_cm2_per_s", "n_particles"):
        assert written.summary[key] == res.summary[key]

    same = plscope.reanalyze(written)  # same settings: the same numbers, bit for bit
    pd.testing.assert_frame_equal(same.kinetics, written.kinetics, check_exact=True)
    assert same.changes == {"settings": {}}
    other = plscope.reanalyze(written, kinetics={"n_bootstrap": 50})
    assert other.changes == {
        "settings": {"kinetics.n_bootstrap": [written.settings.kinetics.n_bootstrap, 50]}
    }
    assert other.settings.kinetics.n_bootstrap == 50
    # written from the API: provenance.json records the call, not the interpreter's argv
    plscope.reanalyze(written, out=tmp_path / "again", kinetics={"n_bootstrap": 50})
    prov = json.loads((tmp_path / "again" / "provenance.json").read_text())
    assert prov["reanalyses"][-1]["command_line"] == [
        f"plscope.reanalyze(<Results of {str(out)!r}>, out={str(tmp_path / 'again')!r}, "
        "kinetics={'n_bootstrap': 50})"
    ]
    for name in plscope.api.FIGURES:
        assert res.figure(name).axes


def test_import_plscope_is_light_and_the_api_is_lazy():
    code = "import sys, plscope; print('plscope.api' in sys.modules, 'pandas' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["False", "False"]
    assert callable(plscope.analyze) and plscope.Results.__name__ == "Results"
    with pytest.raises(AttributeError):
        plscope.no_such_name  # noqa: B018


def test_simulate_writes_a_run_folder_with_ground_truth(tmp_path):
    truth = plscope.simulate(
        tmp_path / "run", n_particles=3, fields_kV_per_cm=(20.0,), cycles_per_level=2, image_shape=(96, 96)
    )
    assert len(truth["particles"]) == 3
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"experiment.toml", "movie.tif", "daq.csv"}


def test_bad_settings_are_refused_naming_the_key(small_run):
    run, _ = small_run
    with pytest.raises(plscope.PlscopeError, match="n_bootstrapp"):
        plscope.analyze(run, settings={"kinetics": {"n_bootstrapp": 10}})


def test_load_refuses_a_folder_without_results(tmp_path):
    with pytest.raises(plscope.RunFolderError, match="no summary.json"):
        plscope.load(tmp_path)
