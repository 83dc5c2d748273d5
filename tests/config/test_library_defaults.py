"""The library functions' defaults are the pipeline's defaults (issue 10).

A notebook that calls the tracking and kinetics functions with their defaults
must compute what ``plscope run`` computes on the same movie.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from plscope.config import DetectionSettings, KineticsSettings, TraceSettings, load_experiment
from plscope.config.settings import AnalysisSettings
from plscope.io import open_stack
from plscope.kinetics import analyze_particle, analyze_population
from plscope.tracking import detect_particles, extract_run_traces, find_particles, reference_image


def test_detection_defaults_are_the_settings_defaults():
    det = DetectionSettings()
    params = inspect.signature(detect_particles).parameters
    for name in ("threshold_sigma", "min_area_px", "exclude_border_px", "split_touching"):
        assert params[name].default == getattr(det, name), name
    assert inspect.signature(reference_image).parameters["n_frames"].default == det.reference_frames


def test_kinetics_functions_default_to_the_settings_model():
    # the kinetics functions take KineticsSettings itself: None means KineticsSettings()
    for fn in (analyze_particle, analyze_population):
        assert inspect.signature(fn).parameters["settings"].default is None
    assert KineticsSettings.from_any(None) == AnalysisSettings().kinetics


def test_settings_drift_names_one_algorithm():
    assert TraceSettings().drift == "follow"
    assert AnalysisSettings.from_dict({"traces": {"drift": "correct"}}).traces.drift == "follow"


@pytest.mark.slow
def test_notebook_with_defaults_gets_the_traces_of_plscope_run(small_run, small_analysis):
    run, _ = small_run
    cfg = load_experiment(run)
    ex = small_analysis.extraction  # what `plscope run` extracts (plscope.analyze, default settings)
    stack = open_stack(cfg.resolve(cfg.movie.path))
    ref = reference_image(stack.data)
    particles, labels, _ = find_particles(ref, pixel_size_nm=cfg.movie.pixel_size_nm)
    traces, _ = extract_run_traces(stack.data, particles, labels=labels, reference=ref)
    got = traces.sort_values(["frame", "particle_id"])["intensity"].to_numpy()
    want = ex.traces.sort_values(["frame", "particle_id"])["intensity"].to_numpy()
    np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_implausible_inputs_are_recorded_in_summary_warnings(small_run, tmp_path):
    """voltage x 1000 (here: the gain) gave 130 005 kV/cm without a word (issue 13)."""
    import json
    import shutil

    from plscope.cli import main

    src, _ = small_run
    run = tmp_path / "run"
    shutil.copytree(src, run, ignore=shutil.ignore_patterns("ground_truth.json"))
    toml = run / "experiment.toml"
    text = toml.read_text()
    assert "amplifier_gain = 20.0" in text
    toml.write_text(text.replace("amplifier_gain = 20.0", "amplifier_gain = 20000.0"))
    assert main(["run", str(run), "--out", str(tmp_path / "out"), "--no-progress", "-q"]) == 0
    warnings = json.loads((tmp_path / "out" / "summary.json").read_text())["warnings"]
    assert any("exceeds 1000 kV/cm" in w and "amplifier_gain" in w for w in warnings), warnings
