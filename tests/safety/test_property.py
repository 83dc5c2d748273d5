"""Property test: random TOML values, random settings and random DAQ tables thrown at `plscope run`.

Whatever the input: no traceback, exit 0 or 2, and no file outside --out
changes (the run folder and its neighbours are snapshotted). Few examples
and a tiny run keep it affordable; ``config --check`` is the config
engineer's (tests/config).
"""

from __future__ import annotations

import json
import math
import shutil
import tomllib
import uuid

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plscope.cli import main

from .helpers import snapshot

pytestmark = pytest.mark.slow

SETTINGS = settings(
    max_examples=3,
    deadline=None,
    derandomize=True,  # the same examples every time: a failure is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4))


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string
    return "[" + ", ".join(_toml_value(x) for x in v) + "]"


def _toml(doc: dict) -> str:
    lines = []
    for section, table in doc.items():
        if not isinstance(table, dict):
            lines.append(f"{section} = {_toml_value(table)}")
    for section, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _workspace(tiny_src, tmp_path):
    base = tmp_path / f"ws-{uuid.uuid4().hex[:8]}"
    run = base / "run"
    shutil.copytree(tiny_src, run)
    (base / "neighbour.txt").write_text("do not touch")
    return base, run


def _check(base, run, out, extra=()) -> None:
    before = snapshot(base)
    import io
    from contextlib import redirect_stderr, redirect_stdout

    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = main(["-q", "run", str(run), "--out", str(out), "--no-progress", *extra])
    assert code in (0, 2), err.getvalue()
    assert "Traceback" not in err.getvalue()
    if code == 2:
        assert err.getvalue().strip().splitlines()[-1].startswith("plscope: error: ")
    after = {k: v for k, v in snapshot(base).items() if not k.startswith(out.name)}
    assert after == before, "a file outside --out changed"


@SETTINGS
@given(data=st.data())
def test_random_toml_values_in_experiment_toml(tiny_src, tmp_path, data):
    base, run = _workspace(tiny_src, tmp_path)
    doc = tomllib.loads((run / "experiment.toml").read_text())
    section = data.draw(st.sampled_from(sorted(k for k, v in doc.items() if isinstance(v, dict))))
    key = data.draw(st.sampled_from([*sorted(doc[section]), "unknown_key"]))
    doc[section][key] = data.draw(values)
    (run / "experiment.toml").write_text(_toml(doc))
    _check(base, run, base / "out")


@SETTINGS
@given(data=st.data())
def test_random_settings(tiny_src, tmp_path, data):
    from plscope.config import AnalysisSettings

    base, run = _workspace(tiny_src, tmp_path)
    defaults = AnalysisSettings().to_dict()
    section = data.draw(st.sampled_from(sorted(k for k, v in defaults.items() if isinstance(v, dict))))
    key = data.draw(st.sampled_from(sorted(defaults[section])))
    cfg = base / "settings.toml"
    cfg.write_text(_toml({section: {key: data.draw(values)}}))
    _check(base, run, base / "out", extra=("--config", str(cfg)))


daq_edits = st.sampled_from(
    ["drop_rows", "nan_block", "text_cell", "shuffle_columns", "rename_time", "duplicate_time", "empty"]
)


@SETTINGS
@given(edit=daq_edits, frac=st.floats(min_value=0.0, max_value=1.0), seed=st.integers(0, 2**16))
def test_random_daq_tables(tiny_src, tmp_path, edit, frac, seed):
    base, run = _workspace(tiny_src, tmp_path)
    df = pd.read_csv(run / "daq.csv")
    rng = np.random.default_rng(seed)
    n = len(df)
    i = int(frac * (n - 1))
    if edit == "drop_rows":
        df = df.drop(index=rng.choice(n, size=max(1, n // 20), replace=False))
    elif edit == "nan_block":
        df.iloc[i : i + 50, 1:] = np.nan
    elif edit == "text_cell":
        df = df.astype(object)
        df.iloc[i, int(rng.integers(0, df.shape[1]))] = "\x1b[31mPWNED"
    elif edit == "shuffle_columns":
        df = df[list(rng.permutation(df.columns))]
    elif edit == "rename_time":
        df = df.rename(columns={"time_s": "t"})
    elif edit == "duplicate_time":
        df.loc[i, "time_s"] = df["time_s"].iloc[max(i - 1, 0)]
    else:
        df = df.iloc[:0]
    df.to_csv(run / "daq.csv", index=False)
    _check(base, run, base / "out")
