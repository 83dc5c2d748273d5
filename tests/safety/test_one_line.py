"""One line, never a traceback (issue 13): NaN movie, deep TOML, full disk, tampered output folders."""

from __future__ import annotations

import errno
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from .helpers import last_line, run_cli, snapshot

# --------------------------------------------------------------------------
# reanalyze on tampered output folders
# --------------------------------------------------------------------------


def _empty_reference(d):
    (d / "reference.npy").write_bytes(b"")


def _text_reference(d):
    np.save(d / "reference.npy", np.array(["a", "b"]))


def _provenance_list(d):
    (d / "provenance.json").write_text("[1, 2]")


def _summary_string(d):
    (d / "summary.json").write_text('"summary"')


def _extraction_list(d):
    (d / "extraction.json").write_text("[]")


def _duplicated_particles(d):
    p = pd.read_parquet(d / "particles.parquet")
    pd.concat([p, p]).to_parquet(d / "particles.parquet", index=False)


def _duplicated_traces(d):
    t = pd.read_parquet(d / "traces.parquet")
    pd.concat([t, t]).to_parquet(d / "traces.parquet", index=False)


def _missing_temperature(d):
    meta = json.loads((d / "extraction.json").read_text())
    meta.pop("temperature_K")
    (d / "extraction.json").write_text(json.dumps(meta))


TAMPERED = {
    "empty reference.npy": (_empty_reference, "stored extraction cannot be read"),
    "text reference.npy": (_text_reference, "reference.npy: expected a 2-D numeric image"),
    "provenance.json a list": (_provenance_list, "provenance.json: expected a JSON object, found list"),
    "summary.json a string": (_summary_string, "summary.json: expected a JSON object, found str"),
    "extraction.json a list": (_extraction_list, "extraction.json: expected a JSON object, found list"),
    "duplicated particle rows": (
        _duplicated_particles,
        "particles.parquet: 3 duplicated row(s) of particle_id",
    ),
    "duplicated trace rows": (_duplicated_traces, "traces.parquet:"),
    "missing temperature_K": (_missing_temperature, "'temperature_K' is missing"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_reanalyze_of_a_tampered_output_folder_is_one_line(case, tiny_output, tmp_path, capsys):
    tamper, message = TAMPERED[case]
    src = tmp_path / "out"
    shutil.copytree(tiny_output, src)
    tamper(src)
    before = snapshot(src)
    code, _, err = run_cli(["reanalyze", src, "--out", tmp_path / "new"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in last_line(err)
    assert snapshot(src) == before and not (tmp_path / "new").exists()


# --------------------------------------------------------------------------
# deep TOML, full disk, NaN block
# --------------------------------------------------------------------------


def test_deeply_nested_experiment_toml_is_one_line(tiny_run, tmp_path, capsys):
    toml = tiny_run / "experiment.toml"
    toml.write_text(toml.read_text() + "\n[extra]\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    code, _, err = run_cli(["run", tiny_run, "--out", tmp_path / "out", "--no-progress"], capsys)
    assert code == 2 and last_line(err).startswith("plscope: error: ")
    assert not (tmp_path / "out").exists()


def test_deeply_nested_settings_toml_is_one_line(tiny_run, tmp_path, capsys):
    cfg = tmp_path / "settings.toml"
    cfg.write_text("a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n")
    code, _, err = run_cli(["run", tiny_run, "--out", tmp_path / "out", "--config", cfg], capsys)
    assert code == 2 and last_line(err).startswith("plscope: error: ")


@pytest.mark.slow
def test_full_disk_during_run_is_one_line_and_keeps_nothing(tiny_run, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)  # the stored extraction: written mid-way through the outputs
    code, _, err = run_cli(["run", tiny_run, "--out", out, "--no-progress"], capsys)
    assert code == 2
    assert last_line(err) == (
        f"plscope: error: {out}: results cannot be written: No space left on device; nothing was kept"
    )
    assert not out.exists()


@pytest.mark.slow
def test_nan_block_in_the_movie_is_no_traceback_and_is_flagged(tiny_run, tmp_path, capsys):
    import tifffile

    movie = tifffile.imread(tiny_run / "movie.tif").astype(np.float32)
    movie[100:120] = np.nan  # 20 whole frames
    tifffile.imwrite(tiny_run / "movie.tif", movie)
    out = tmp_path / "out"
    code, _, err = run_cli(["-q", "run", tiny_run, "--out", out, "--no-progress"], capsys)
    assert code in (0, 2)
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and last_line(err).startswith("plscope: error: ")
    else:
        warnings = json.loads((out / "summary.json").read_text())["warnings"]
        assert any("not finite" in w and "frames 100-119" in w for w in warnings), warnings
