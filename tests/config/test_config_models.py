"""The configuration models: ranges, types, unknown keys, messages naming file and key."""

from __future__ import annotations

import dataclasses
import math
import textwrap
from pathlib import Path

import pytest

from plscope.config import AnalysisSettings, KineticsSettings, load_settings
from plscope.config._base import MAX_FILE_BYTES, excerpt
from plscope.config.experiment import (
    ExperimentConfig,
    field_warning,
    input_files,
    load_experiment,
    parse_experiment,
)
from plscope.errors import ConfigError, RunFolderError

# --------------------------------------------------------------------------
# settings: values issue 13 found accepted, and others that bound memory/time
# --------------------------------------------------------------------------

#: (section, key, value) accepted before the declarative schema, absurd or harmful
ABSURD_SETTINGS = [
    ("traces", "chunk_frames", -5),  # issue 13
    ("traces", "chunk_frames", 0),
    ("traces", "chunk_frames", 10**9),  # one chunk of a billion frames
    ("kinetics", "n_bootstrap", -1),  # issue 13
    ("kinetics", "n_bootstrap", 10**8),  # issue 13: runs for ever
    ("kinetics", "n_bootstrap_cycles", -3),
    ("kinetics", "n_bootstrap_cycles", 10**9),
    ("kinetics", "dt_s", 1e-9),  # issue 13: 24 GB, killed
    ("kinetics", "dt_s", -0.2),
    ("kinetics", "dt_s", 0.0),
    ("kinetics", "plateau_s", -1.0),
    ("kinetics", "plateau_s", 0.0),
    ("kinetics", "plateau_s", math.nan),
    ("kinetics", "plateau_s", math.inf),
    ("kinetics", "transient_s", -1.0),
    ("kinetics", "bleach_plateau_fraction", 1.5),
    ("kinetics", "spoil_fraction", -0.1),
    ("kinetics", "outlier_k", 0.0),
    ("kinetics", "min_cycles", 0),
    ("kinetics", "min_points", -8),
    ("kinetics", "min_pooled_curves", 0),
    ("kinetics", "bootstrap_seed", -1),
    ("kinetics", "tau_bounds_s", [5.0, 1.0]),
    ("kinetics", "tau_bounds_s", [-1.0, 1.0]),
    ("kinetics", "tau_bounds_s", [0.1]),
    ("detection", "reference_frames", 0),
    ("detection", "reference_frames", 10**8),
    ("detection", "threshold_sigma", -5.0),
    ("detection", "min_area_px", 0),
    ("detection", "exclude_border_px", -1),
    ("traces", "psf_margin_sigma", -1.5),
    ("traces", "psf_margin_sigma", 1e9),
    ("traces", "drift_margin_px", -0.5),
]


@pytest.mark.parametrize("section, key, value", ABSURD_SETTINGS)
def test_absurd_settings_are_refused_naming_file_and_key(tmp_path, section, key, value):
    p = tmp_path / "fit.toml"
    text = f"[{section}]\n{key} = {_toml(value)}\n"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}: ") and f"'{section}.{key}" in msg
    assert "\n" not in msg


def _toml(value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def test_range_message_says_the_range():
    with pytest.raises(ConfigError) as info:
        AnalysisSettings.from_dict({"kinetics": {"n_bootstrap": -1}}, source="s.toml")
    assert str(info.value) == "s.toml: 'kinetics.n_bootstrap' must be an integer in [0, 100000], got -1"


@pytest.mark.parametrize(
    "table, message",
    [
        ({"kinetics": {"min_cycles": 2.5}}, "'kinetics.min_cycles' must be an integer, got 2.5"),
        ({"kinetics": {"min_cycles": True}}, "'kinetics.min_cycles' must be an integer, got True"),
        ({"kinetics": {"plateau_s": "3"}}, "'kinetics.plateau_s' must be a number, got '3'"),
        ({"kinetics": {"correct_bleaching": 1}}, "'kinetics.correct_bleaching' must be true or false, got 1"),
        ({"traces": {"drift": "sideways"}}, "'traces.drift' must be one of"),
        ({"kinetics": 3}, "[kinetics] must be a table"),
        ({"kinetics": {"modle": "mono"}}, "unknown key 'kinetics.modle' (did you mean 'kinetics.model'?)"),
        ({"kinetcs": {}}, "unknown key 'kinetcs' (did you mean 'kinetics'?)"),
    ],
)
def test_wrong_types_and_unknown_keys(table, message):
    with pytest.raises(ConfigError, match="s.toml") as info:
        AnalysisSettings.from_dict(table, source="s.toml")
    assert message in str(info.value)


def test_every_problem_is_listed_in_one_line():
    with pytest.raises(ConfigError) as info:
        AnalysisSettings.from_dict(
            {"kinetics": {"n_bootstrap": -1, "dt_s": 1e-9}, "traces": {"chunk_frames": -5}}, source="s"
        )
    msg = str(info.value)
    assert msg.count("'kinetics.n_bootstrap'") == msg.count("'kinetics.dt_s'") == 1
    assert "'traces.chunk_frames'" in msg and "\n" not in msg


def test_values_at_the_limits_are_accepted():
    s = AnalysisSettings.from_dict(
        {
            "kinetics": {
                "n_bootstrap": 100_000,
                "n_bootstrap_cycles": 0,
                "dt_s": 1e-3,
                "tau_bounds_s": [0.01, 10],
            },
            "traces": {"chunk_frames": 1},
        }
    )
    assert s.kinetics.n_bootstrap == 100_000 and s.kinetics.tau_bounds_s == (0.01, 10.0)
    assert isinstance(s.kinetics.tau_bounds_s[1], float)


def test_models_are_frozen_dataclasses_that_validate_on_replace():
    s = KineticsSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.n_bootstrap = 5  # type: ignore[misc]
    assert dataclasses.replace(s, n_bootstrap=10).n_bootstrap == 10
    with pytest.raises(ValueError):
        dataclasses.replace(s, n_bootstrap=-1)
    with pytest.raises(ValueError):
        KineticsSettings(dt_s=1e-9)


def test_settings_files_that_cannot_be_read(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is a folder"):
        load_settings(tmp_path)
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * MAX_FILE_BYTES)
    with pytest.raises(ConfigError, match="too large"):
        load_settings(big)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(binary)
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_settings(deep)
    nested = tmp_path / "nested.toml"
    nested.write_text("[kinetics]\nn_bootstrap = " + "[" * 200 + "1" + "]" * 200 + "\n")
    with pytest.raises(ConfigError, match=r"'kinetics.n_bootstrap' must be an integer") as info:
        load_settings(nested)
    assert len(str(info.value)) < len(str(nested)) + 200


def test_excerpt_is_short_and_escaped():
    text = excerpt("\x1b[31mred\x1b[0m" + "y" * 500)
    assert "\x1b" not in text and len(text) < 60


# --------------------------------------------------------------------------
# experiment.toml
# --------------------------------------------------------------------------

VALID = """
schema = 1
[sample]
temperature_K = 296.15
[movie]
path = "movie.tif"
pixel_size_nm = 100.0
[daq]
path = "daq.csv"
[field]
amplifier_gain = 20.0
electrode_gap_um = 10.0
"""


def _run(tmp_path: Path, toml: str = VALID, files=("movie.tif", "daq.csv")) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "experiment.toml").write_text(textwrap.dedent(toml))
    for name in files:
        (run / name).write_bytes(b"")
    return run


@pytest.mark.parametrize(
    "old, new, key",
    [
        ("pixel_size_nm = 100.0", "pixel_size_nm = 1e-300", "movie.pixel_size_nm"),  # issue 13 traceback
        ("pixel_size_nm = 100.0", "pixel_size_nm = 1e300", "movie.pixel_size_nm"),
        ("pixel_size_nm = 100.0", "pixel_size_nm = nan", "movie.pixel_size_nm"),
        ("pixel_size_nm = 100.0", "pixel_size_nm = 100.0\npsf_sigma_nm = 1e9", "movie.psf_sigma_nm"),
        ("pixel_size_nm = 100.0", "pixel_size_nm = 100.0\npsf_sigma_nm = -inf", "movie.psf_sigma_nm"),
        ("pixel_size_nm = 100.0", "pixel_size_nm = 100.0\nframe_rate_hz = 1e12", "movie.frame_rate_hz"),
        ("amplifier_gain = 20.0", "amplifier_gain = inf", "field.amplifier_gain"),
        ("amplifier_gain = 20.0", "amplifier_gain = 1e12", "field.amplifier_gain"),
        ("electrode_gap_um = 10.0", "electrode_gap_um = 1e-320", "field.electrode_gap_um"),
        ("temperature_K = 296.15", "temperature_K = nan", "sample.temperature_K"),
    ],
)
def test_physical_inputs_out_of_limits_are_refused(tmp_path, old, new, key):
    run = _run(tmp_path, VALID.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_experiment(run)
    assert f"'{key}'" in str(info.value) and str(info.value).startswith(str(run / "experiment.toml"))


@pytest.mark.parametrize(
    "old, new, words",
    [
        ("pixel_size_nm = 100.0", "pixel_size_nm = 5.0", "movie.pixel_size_nm = 5 nm is outside"),
        ("pixel_size_nm = 100.0", "pixel_size_nm = 200000.0", "movie.pixel_size_nm = 200000 nm"),
        ("pixel_size_nm = 100.0", "pixel_size_nm = 100.0\npsf_sigma_nm = 10000.0", "movie.psf_sigma_nm"),
        ("temperature_K = 296.15", "temperature_K = 1000.0", "sample.temperature_K = 1000 K"),
        ("electrode_gap_um = 10.0", "electrode_gap_um = 0.01", "field.electrode_gap_um = 0.01 um"),
    ],
)
def test_implausible_physical_inputs_warn(tmp_path, old, new, words):
    cfg = load_experiment(_run(tmp_path, VALID.replace(old, new)))
    assert any(words in w for w in cfg.warnings), cfg.warnings


def test_plausible_inputs_do_not_warn(tmp_path):
    assert load_experiment(_run(tmp_path)).warnings == ()


def test_field_warning_above_1000_kV_per_cm():
    assert field_warning(130.0) is None
    text = field_warning(130_005.0)
    assert text is not None and "130005 kV/cm" in text and "amplifier_gain" in text


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "../secrets.csv", "sub/../../secrets.csv", "~/daq.csv", "../*.csv"],
)
def test_paths_outside_the_run_folder_are_refused(tmp_path, path):
    (tmp_path / "secrets.csv").write_text("time_s,secret\n0,hunter2\n")
    run = _run(tmp_path, VALID.replace('path = "daq.csv"', f'path = "{path}"'))
    with pytest.raises(ConfigError) as info:
        load_experiment(run)
    msg = str(info.value)
    assert "'daq.path'" in msg and "outside the run folder" in msg
    assert "allow_outside_run_folder" in msg and "hunter2" not in msg


def test_symlink_out_of_the_run_folder_is_refused(tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("time_s\n0\n")
    run = _run(tmp_path, files=("movie.tif",))
    (run / "daq.csv").symlink_to(secret)
    with pytest.raises(ConfigError, match="through a symbolic link"):
        load_experiment(run)


def test_opt_in_allows_paths_outside(tmp_path):
    outside = tmp_path / "shared"
    outside.mkdir()
    (outside / "daq.csv").write_text("")
    toml = VALID.replace('path = "daq.csv"', f'path = "{outside / "daq.csv"}"')
    toml += "[inputs]\nallow_outside_run_folder = true\n"
    cfg = load_experiment(_run(tmp_path, toml, files=("movie.tif",)))
    assert cfg.resolve(cfg.daq.path) == outside / "daq.csv"
    assert outside / "daq.csv" in input_files(cfg)
    toml = VALID.replace('path = "daq.csv"', 'path = "../shared/daq.csv"')
    toml += "[inputs]\nallow_outside_run_folder = true\n"
    cfg = load_experiment(_run(tmp_path, toml, files=("movie.tif",)))
    assert cfg.resolve(cfg.daq.path).resolve() == (outside / "daq.csv").resolve()


def test_glob_stays_inside_and_lists_inputs(tmp_path):
    toml = VALID.replace('path = "movie.tif"', 'path = "movie_*.tif"')
    run = _run(tmp_path, toml, files=("movie_1.tif", "movie_2.tif", "daq.csv"))
    cfg = load_experiment(run)
    names = [p.name for p in input_files(cfg)]
    assert names == ["experiment.toml", "movie_1.tif", "movie_2.tif", "daq.csv"]


def test_run_dir_and_warnings_are_not_keys_of_the_file(tmp_path):
    cfg = parse_experiment(
        {"run_dir": "/", "warnings": ["x"], "movie": {"path": "m.tif"}}, path="e.toml", run_dir=tmp_path
    )
    assert cfg.run_dir == str(tmp_path)
    assert any("unknown key 'run_dir' ignored" in w for w in cfg.warnings)
    assert "x" not in cfg.warnings


def test_hostile_keys_and_values_are_quoted_short_and_escaped(tmp_path):
    key = "\x1b]0;pwned\x07" + "k" * 300
    cfg = parse_experiment({"movie": {"path": "m.tif", key: 1}}, path="e.toml", run_dir=tmp_path)
    (w,) = cfg.warnings
    assert "\x1b" not in w and "\x07" not in w and len(w) < 120
    with pytest.raises(ConfigError) as info:
        parse_experiment(
            {"movie": {"path": "m.tif", "pixel_size_nm": "\x1b[2J" + "A" * 10_000}}, path="e.toml"
        )
    assert "\x1b" not in str(info.value) and len(str(info.value)) < 200


def test_section_of_the_wrong_type(tmp_path):
    with pytest.raises(ConfigError, match=r"\[movie\] must be a table"):
        parse_experiment({"movie": "movie.tif"}, path="e.toml", run_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"\[movie\] must be a table"):
        parse_experiment({"movie": [{"path": "a"}]}, path="e.toml", run_dir=tmp_path)


def test_experiment_config_round_trips_through_to_dict(tmp_path):
    cfg = load_experiment(_run(tmp_path))
    d = cfg.to_dict()
    assert d["inputs"] == {"allow_outside_run_folder": False}
    assert "warnings" not in d
    again = ExperimentConfig(**{k: v for k, v in d.items()})
    assert again.field == cfg.field and again.movie == cfg.movie


def test_missing_file_is_a_run_folder_error(tmp_path):
    with pytest.raises(RunFolderError, match="does not exist"):
        load_experiment(_run(tmp_path, files=("movie.tif",)))


def test_resolve_names_the_key_without_being_told(tmp_path):
    toml = VALID.replace('path = "daq.csv"', 'path = "daq.csv"') + (
        '[spectra]\npath = "s.tif"\ncalibration = "../calibration.json"\n'
        "[inputs]\nallow_outside_run_folder = false\n"
    )
    cfg = parse_experiment(__import__("tomllib").loads(toml), path="e.toml", run_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"'spectra.calibration' = '../calibration.json' leads outside"):
        cfg.resolve(cfg.spectra.calibration)
