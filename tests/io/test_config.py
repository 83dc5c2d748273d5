"""experiment.toml: validation at the door."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from plscope.errors import ConfigError, RunFolderError
from plscope.io import ExperimentConfig, load_experiment

VALID = """
schema = 1

[sample]
name = "MAPbBr3 particles, chip 3"
temperature_K = 296.15

[movie]
path = "movie.tif"
pixel_size_nm = 100.0
frame_rate_hz = 5

[daq]
path = "daq.csv"
camera_ttl = "camera_ttl"
voltage = "fg_voltage"

[field]
amplifier_gain = 20.0
electrode_gap_um = 10.0
"""


def make_run(tmp_path: Path, toml: str = VALID, files=("movie.tif", "daq.csv")) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "experiment.toml").write_text(textwrap.dedent(toml))
    for name in files:
        (run / name).write_bytes(b"")
    return run


def test_valid_file(tmp_path):
    run = make_run(tmp_path)
    cfg = load_experiment(run)
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.sample.temperature_K == 296.15
    assert cfg.movie.pixel_size_nm == 100.0
    assert cfg.movie.frame_rate_hz == 5.0 and isinstance(cfg.movie.frame_rate_hz, float)
    assert cfg.daq.camera_ttl == "camera_ttl"
    assert cfg.field.amplifier_gain == 20.0 and cfg.field.electrode_gap_um == 10.0
    assert cfg.spectra is None
    assert cfg.resolve(cfg.movie.path) == run.resolve() / "movie.tif"
    assert cfg.warnings == ()
    assert cfg.to_dict()["field"] == {
        "amplifier_gain": 20.0,
        "electrode_gap_um": 10.0,
        "level_tolerance": 0.02,
    }
    assert cfg.daq.dropped_frames == "map"


def test_invalid_toml(tmp_path):
    run = make_run(tmp_path, VALID + "\n[movie\npath = 1\n")
    with pytest.raises(ConfigError, match=r"experiment\.toml: not valid TOML"):
        load_experiment(run)


def test_missing_required_key(tmp_path):
    run = make_run(tmp_path, VALID.replace("electrode_gap_um = 10.0", ""))
    with pytest.raises(ConfigError, match=r"required key 'field\.electrode_gap_um' is missing") as info:
        load_experiment(run)
    assert info.value.path.endswith("experiment.toml")


@pytest.mark.parametrize(
    "old,new,key",
    [
        ("pixel_size_nm = 100.0", "pixel_size_nm = 0", "movie.pixel_size_nm"),
        ("pixel_size_nm = 100.0", "pixel_size_nm = -100.0", "movie.pixel_size_nm"),
        ("amplifier_gain = 20.0", "amplifier_gain = 0.0", "field.amplifier_gain"),
        ("amplifier_gain = 20.0", "amplifier_gain = -20", "field.amplifier_gain"),
        ("electrode_gap_um = 10.0", "electrode_gap_um = 0", "field.electrode_gap_um"),
        ("electrode_gap_um = 10.0", "electrode_gap_um = -10.0", "field.electrode_gap_um"),
    ],
)
def test_zero_or_negative_numbers_are_refused(tmp_path, old, new, key):
    run = make_run(tmp_path, VALID.replace(old, new))
    with pytest.raises(ConfigError, match=rf"'{key}' must be a positive number"):
        load_experiment(run)


def test_wrong_types_are_refused_and_all_problems_listed(tmp_path):
    toml = VALID.replace("pixel_size_nm = 100.0", 'pixel_size_nm = "100"').replace(
        "amplifier_gain = 20.0", "amplifier_gain = true"
    )
    with pytest.raises(ConfigError) as info:
        load_experiment(make_run(tmp_path, toml))
    assert "'movie.pixel_size_nm' must be a number" in str(info.value)
    assert "'field.amplifier_gain' must be a number" in str(info.value)


def test_unknown_key_warns_with_a_suggestion(tmp_path, caplog):
    run = make_run(tmp_path, VALID.replace("pixel_size_nm = 100.0", "pixel_size = 100.0"))
    with caplog.at_level(logging.WARNING, logger="plscope.io.config"):
        cfg = load_experiment(run)
    assert cfg.warnings == ("unknown key 'movie.pixel_size' ignored (did you mean 'pixel_size_nm'?)",)
    assert "did you mean 'pixel_size_nm'" in caplog.text
    assert cfg.movie.pixel_size_nm is None


def test_missing_movie_file_names_it(tmp_path):
    run = make_run(tmp_path, files=("daq.csv",))
    with pytest.raises(RunFolderError, match=r"movie\.tif: file named in .*\[movie\] does not exist"):
        load_experiment(run)


def test_movie_glob_must_match(tmp_path):
    toml = VALID.replace('path = "movie.tif"', 'path = "movie_*.tif"')
    with pytest.raises(RunFolderError, match="no file matches the pattern"):
        load_experiment(make_run(tmp_path, toml, files=("daq.csv",)))


def test_missing_experiment_file_and_folder(tmp_path):
    with pytest.raises(RunFolderError, match="run folder does not exist"):
        load_experiment(tmp_path / "nope")
    with pytest.raises(ConfigError, match="experiment.toml: missing"):
        load_experiment(tmp_path)


def test_field_without_daq_is_refused(tmp_path):
    toml = VALID.split("[daq]")[0] + "[field]\namplifier_gain = 20.0\nelectrode_gap_um = 10.0\n"
    with pytest.raises(ConfigError, match=r"\[field\] is given but \[daq\] is missing"):
        load_experiment(make_run(tmp_path, toml))


def test_dropped_frames_and_level_tolerance_options(tmp_path):
    toml = VALID.replace('voltage = "fg_voltage"', 'voltage = "fg_voltage"\ndropped_frames = "error"')
    toml = toml.replace("electrode_gap_um = 10.0", "electrode_gap_um = 10.0\nlevel_tolerance = 0.01")
    cfg = load_experiment(make_run(tmp_path, toml))
    assert cfg.daq.dropped_frames == "error" and cfg.field.level_tolerance == 0.01


@pytest.mark.parametrize(
    "old,new,message",
    [
        (
            'voltage = "fg_voltage"',
            'voltage = "fg_voltage"\ndropped_frames = "guess"',
            r"'daq\.dropped_frames' must be 'map' or 'error', got 'guess'",
        ),
        (
            "electrode_gap_um = 10.0",
            "electrode_gap_um = 10.0\nlevel_tolerance = 0.7",
            r"'field\.level_tolerance' must be a fraction between 0 and 0\.5",
        ),
        ("temperature_K = 296.15", "temperature_K = -3", r"'sample\.temperature_K' must be an absolute"),
        ('path = "daq.csv"', 'path = ""', r"'daq\.path' must not be empty"),
        ("schema = 1", "schema = 2", r"'schema' is 2; this plscope reads schema 1"),
    ],
)
def test_values_out_of_range_are_refused(tmp_path, old, new, message):
    run = make_run(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(ConfigError, match=message):
        load_experiment(run)


def test_unknown_sections_and_top_level_keys_are_reported(tmp_path):
    toml = "units = 'SI'\n" + VALID + "\n[camera]\nmodel = 'Prime 95B'\n"
    cfg = load_experiment(make_run(tmp_path, toml))
    assert "unknown key 'units' ignored" in cfg.warnings
    assert any(w.startswith("unknown key 'camera' ignored") for w in cfg.warnings)
