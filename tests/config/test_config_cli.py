"""``plscope config``: defaults generated from the models, --check of every kind of file,
and a property test: random TOML thrown at --check and the loaders never gives a traceback."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plscope.cli import main
from plscope.config import DEFAULTS_TOML, AnalysisSettings
from plscope.config.docs import configuration_markdown, experiment_example
from plscope.config.experiment import parse_experiment
from plscope.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_print_defaults_is_generated_from_the_model(capsys):
    assert main(["config", "--print-defaults"]) == 0
    out = capsys.readouterr().out
    assert out == DEFAULTS_TOML
    assert AnalysisSettings.from_dict(tomllib.loads(out)) == AnalysisSettings()


def test_print_experiment_defaults_parses(capsys, tmp_path):
    assert main(["config", "--print-defaults", "experiment"]) == 0
    out = capsys.readouterr().out
    assert out == experiment_example()
    data = tomllib.loads(out)
    data["spectra"]["dispersion_nm"] = [500.0, 0.1]
    cfg = parse_experiment(data, path="e.toml", run_dir=tmp_path)
    assert cfg.movie.path == "movie.tif" and cfg.field.amplifier_gain == 20.0


def test_check_experiment_file(tmp_path, capsys):
    p = tmp_path / "experiment.toml"
    p.write_text('[movie]\npath = "movie.tif"\npixel_size_nm = 5.0\n')
    assert main(["config", "--check", str(p)]) == 0
    captured = capsys.readouterr()
    assert "valid experiment file" in captured.out
    assert "pixel_size_nm = 5 nm is outside" in captured.err
    p.write_text('[movie]\npath = "/etc/passwd"\n')
    assert main(["config", "--check", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"plscope: error: {p}: 'movie.path'") and "root:" not in err[-1]
    other = tmp_path / "exp.toml"
    other.write_text("[movie]\npath = 3\n")
    assert main(["config", "--check", str(other), "--kind", "experiment"]) == 2
    assert "'movie.path' must be a string" in capsys.readouterr().err


def test_configuration_doc_is_current():
    committed = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == configuration_markdown(), (
        "docs/configuration.md is stale: run `python -m plscope.config.docs > docs/configuration.md`"
    )


def test_check_runs_without_traceback_in_a_subprocess(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("[kinetics]\nn_bootstrap = 1e8\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    r = subprocess.run(
        [sys.executable, "-m", "plscope", "config", "--check", str(p)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        r.stderr.strip()
        == f"plscope: error: {p}: 'kinetics.n_bootstrap' must be an integer in [0, 100000], got 100000000"
    )


# --------------------------------------------------------------------------
# property test
# --------------------------------------------------------------------------

_scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=20),
)
_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)

_SETTINGS_KEYS = {s: list(v) for s, v in AnalysisSettings().to_dict().items()}
_EXPERIMENT_KEYS = {
    "sample": ["name", "temperature_K"],
    "movie": ["path", "pixel_size_nm", "frame_rate_hz", "psf_sigma_nm", "channel", "z", "position"],
    "daq": ["path", "camera_ttl", "voltage", "dropped_frames", "sample_rate_hz"],
    "field": ["amplifier_gain", "electrode_gap_um", "level_tolerance"],
    "spectra": [
        "path",
        "camera_ttl",
        "lamp",
        "lamp_lines_nm",
        "dispersion_nm",
        "dispersion_first_pixel",
        "calibration",
        "frame_rate_hz",
        "channel",
    ],
    "inputs": ["allow_outside_run_folder"],
}


def _documents(keys: dict[str, list[str]]):
    section = st.sampled_from(sorted(keys) + ["bogus"])
    return st.dictionaries(
        section,
        st.one_of(
            st.dictionaries(st.sampled_from(sum(keys.values(), []) + ["x"]), _values, max_size=5),
            _values,
        ),
        max_size=4,
    )


def _toml_text(value) -> str:
    """TOML source of a value (strings escaped; NaN/inf as TOML spells them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, str):
        return '"' + "".join(c if c.isalnum() or c in " ._-/" else f"\\u{ord(c):04x}" for c in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_text(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_text(str(k))} = {_toml_text(v)}" for k, v in value.items()) + "}"


def _document_text(doc: dict) -> str:
    lines = []
    for section, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{section}]")
            lines.extend(f"{_toml_text(str(k))} = {_toml_text(v)}" for k, v in table.items())
        else:
            lines.insert(0, f"{_toml_text(str(section))} = {_toml_text(table)}")
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_documents(_SETTINGS_KEYS))
def test_random_settings_never_give_a_traceback(tmp_path, doc, capsys):
    try:
        AnalysisSettings.from_dict(doc, source="s.toml")
    except ConfigError as exc:
        assert "\n" not in str(exc)
    p = tmp_path / "s.toml"
    p.write_text(_document_text(doc), encoding="utf-8")
    assert main(["config", "--check", str(p), "-q"]) in (0, 2)
    err = capsys.readouterr().err
    assert "Traceback" not in err


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_documents(_EXPERIMENT_KEYS))
def test_random_experiment_files_never_give_a_traceback(tmp_path, doc, capsys):
    try:
        parse_experiment(doc, path="e.toml", run_dir=tmp_path)
    except ConfigError as exc:
        assert "\n" not in str(exc)
    p = tmp_path / "experiment.toml"
    p.write_text(_document_text(doc), encoding="utf-8")
    assert main(["config", "--check", str(p), "-q"]) in (0, 2)
    err = capsys.readouterr().err
    assert "Traceback" not in err


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_random_bytes_never_give_a_traceback(tmp_path, raw, capsys):
    p = tmp_path / "experiment.toml"
    p.write_bytes(raw)
    assert main(["config", "--check", str(p), "-q"]) in (0, 2)
    assert "Traceback" not in capsys.readouterr().err


def test_check_detector_file(tmp_path, capsys):
    p = tmp_path / "detector.toml"
    p.write_text("schema = 1\n[device]\nelectrode_area_cm2 = 0.1\nelectrode_spacing_cm = 0.05\n")
    assert main(["config", "--check", str(p)]) == 0
    assert "valid detector file" in capsys.readouterr().out
    p.write_text("[device]\nelectrode_area_cm2 = -1\n")
    assert main(["config", "--check", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{p}: " in err and "device.electrode_area_cm2" in err and "Traceback" not in err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_documents({"device": ["electrode_area_cm2", "electrode_spacing_cm"], "sample": ["name"]}))
def test_random_detector_files_never_give_a_traceback(tmp_path, doc, capsys):
    p = tmp_path / "detector.toml"
    p.write_text(_document_text(doc), encoding="utf-8")
    assert main(["config", "--check", str(p), "-q"]) in (0, 2)
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("workers", ["-1", "0", "100000"])
def test_batch_refuses_absurd_worker_counts_before_any_work(tmp_path, capsys, workers):
    root = tmp_path / "root"
    (root / "r1").mkdir(parents=True)
    (root / "r1" / "experiment.toml").write_text('[movie]\npath = "m.tif"\n')
    out = tmp_path / "out"
    assert main(["batch", str(root), "--out", str(out), "--workers", workers]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"plscope: error: --workers: 'workers' must be a positive integer in [1, 1024], got {int(workers)}"
    )
    assert not out.exists()


def test_check_a_run_folder_checks_its_experiment_toml(tmp_path, capsys):
    (tmp_path / "experiment.toml").write_text('[movie]\npath = "../m.tif"\n')
    assert main(["config", "--check", str(tmp_path)]) == 2
    assert "'movie.path' = '../m.tif' leads outside the run folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["config", "--check", str(empty)]) == 2
    assert "experiment.toml: experiment file does not exist" in capsys.readouterr().err
