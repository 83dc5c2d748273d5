"""detector.toml validation: one line naming the file and the key."""

from __future__ import annotations

import pytest

from plscope.config.detector import load_detector_config
from plscope.errors import ConfigError

GOOD = """schema = 1
[device]
electrode_area_cm2 = 0.0075
electrode_spacing_cm = 0.3
[[xray]]
path = "x.csv"
dose_rate_nGy_per_s = 214.0
"""


def test_valid(tmp_path):
    (tmp_path / "detector.toml").write_text(GOOD)
    cfg = load_detector_config(tmp_path)
    assert cfg.device.electrode_area_cm2 == 0.0075
    assert cfg.xray[0].current == "current_A"
    assert cfg.input_files(tmp_path) == [tmp_path / "x.csv"]


@pytest.mark.parametrize(
    ("drop", "key"),
    [("electrode_area_cm2 = 0.0075\n", "device.electrode_area_cm2"),
     ("electrode_spacing_cm = 0.3\n", "device.electrode_spacing_cm"),
     ("dose_rate_nGy_per_s = 214.0\n", "xray[0].dose_rate_nGy_per_s")],
)  # fmt: skip
def test_missing_key_named(tmp_path, drop, key):
    (tmp_path / "detector.toml").write_text(GOOD.replace(drop, ""))
    with pytest.raises(ConfigError) as err:
        load_detector_config(tmp_path)
    msg = str(err.value)
    assert msg == f"{tmp_path / 'detector.toml'}: missing key '{key}'"
    assert "\n" not in msg


def test_bad_value_and_unknown_key(tmp_path):
    (tmp_path / "detector.toml").write_text(GOOD.replace("0.0075", "-1"))
    with pytest.raises(ConfigError, match="key 'device.electrode_area_cm2'"):
        load_detector_config(tmp_path)
    (tmp_path / "detector.toml").write_text(GOOD + "[drift]\npath='d.csv'\nbias_V=1\nbias=3\n")
    with pytest.raises(ConfigError, match="unknown key 'drift.bias'"):
        load_detector_config(tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="detector.toml: file does not exist"):
        load_detector_config(tmp_path)
