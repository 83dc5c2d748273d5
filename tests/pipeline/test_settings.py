"""Analysis settings: documented defaults, validation, digests."""

import tomllib

import pytest

from plscope.config.settings import DEFAULTS_TOML, AnalysisSettings, load_settings
from plscope.errors import ConfigError


def test_documented_defaults_equal_the_code_defaults():
    documented = AnalysisSettings.from_dict(tomllib.loads(DEFAULTS_TOML))
    assert documented == AnalysisSettings()
    # every setting of the code is documented (commented-out optional ones included)
    for section, values in AnalysisSettings().to_dict().items():
        for key in values:
            assert f"{key} =" in DEFAULTS_TOML, f"{section}.{key} is not documented"


def test_partial_file_keeps_defaults(tmp_path):
    p = tmp_path / "fit.toml"
    p.write_text('[kinetics]\nmodel = "mono"\ntau_bounds_s = [0.1, 50]\n')
    s = load_settings(p)
    assert s.kinetics.model == "mono" and s.kinetics.tau_bounds_s == (0.1, 50.0)
    assert s.detection == AnalysisSettings().detection
    assert s.digest() != AnalysisSettings().digest()
    assert load_settings(None).digest() == AnalysisSettings().digest()


@pytest.mark.parametrize(
    "text, message",
    [
        ('[kinetics]\nmodle = "mono"\n', "did you mean 'kinetics.model'"),
        ('[kinetics]\nmodel = "triexp"\n', "'kinetics.model' must be one of"),
        ('[traces]\npsf_margin_sigma = "wide"\n', "'traces.psf_margin_sigma' must be a number"),
        ("[detecton]\n", "unknown key 'detecton'"),
        ("[kinetics\n", "not valid TOML"),
    ],
)
def test_bad_settings_are_refused_naming_file_and_key(tmp_path, text, message):
    p = tmp_path / "fit.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match="fit.toml") as exc:
        load_settings(p)
    assert message in str(exc.value)
