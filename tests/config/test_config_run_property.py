"""Property test (issue 13): random experiment.toml values thrown at ``plscope run``.

Whatever a key holds, ``plscope run`` ends with exit 0 or 2, never a
traceback, and changes no file of the run folder.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from plscope.cli import main

KEYS = [
    ("sample", "temperature_K"),
    ("sample", "name"),
    ("movie", "path"),
    ("movie", "pixel_size_nm"),
    ("movie", "frame_rate_hz"),
    ("movie", "psf_sigma_nm"),
    ("daq", "path"),
    ("daq", "camera_ttl"),
    ("daq", "dropped_frames"),
    ("field", "amplifier_gain"),
    ("field", "electrode_gap_um"),
    ("field", "level_tolerance"),
    ("inputs", "allow_outside_run_folder"),
]

_values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -1.0, 1e-300, 1e300, 1e-9, 5.0, 1e5]),
    st.booleans(),
    st.sampled_from(["", "movie.tif", "../movie.tif", "/etc/passwd", "daq.csv", "\x1b[2J", "map", "x" * 300]),
    st.lists(st.integers(), max_size=3),
)


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
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
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from plscope.sim import ImagingSimParams, simulate_imaging_run

    run = tmp_path_factory.mktemp("tiny") / "run"
    params = ImagingSimParams(
        n_particles=3,
        image_shape=(64, 64),
        fields_kV_per_cm=(130.0,),
        cycles_per_level=1,
        period_s=8.0,
        lead_in_s=2.0,
        size_range_nm=(500.0, 900.0),
    )
    simulate_imaging_run(run, params, seed=1)
    (run / "ground_truth.json").unlink()
    return run


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(KEYS), value=_values)
@example(
    key=("movie", "path"), value="x" * 300
)  # longer than a file name may be (found by this test, ENAMETOOLONG)
@example(key=("movie", "psf_sigma_nm"), value=2400.0)  # apertures without pixels (found by this test)
def test_random_experiment_values_through_run(tiny_run, tmp_path_factory, key, value, capsys):
    work = tmp_path_factory.mktemp("case")
    run = work / "run"
    shutil.copytree(tiny_run, run)
    data = tomllib.loads((run / "experiment.toml").read_text())
    section, name = key
    lines = []
    data.setdefault(section, {})[name] = value
    for sec, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{sec}]")
            lines.extend(f"{k} = {_toml(v)}" for k, v in table.items())
        else:
            lines.insert(0, f"{sec} = {_toml(table)}")
    (run / "experiment.toml").write_text("\n".join(lines) + "\n")
    before = _digest(run)
    code = main(["run", str(run), "--out", str(work / "out"), "--no-progress", "-q"])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert err.strip().splitlines()[-1].startswith("plscope: error: ")
    assert _digest(run) == before
