"""Trace columns stored particle-major in a scratch file (issue 16, memory flat in the frames).

``plscope run`` reads each particle's trace from :class:`~plscope._particle_traces.ParticleTraces`
in the kinetics, the centroid shift and the report instead of holding whole columns: every reader
must get the values the table gave, bit for bit, and the file must not reach the results folder.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _traces_tables import traces_like
from plscope._particle_traces import ParticleTraces
from plscope.kinetics import analyze_population
from plscope.pipeline.imaging import SCRATCH_TRACES
from plscope.results import StoredTable, write_parquet
from plscope.tracking import centroid_shift


def _traces(n_frames: int = 200, n_particles: int = 7, seed: int = 0) -> pd.DataFrame:
    """Frame-major rows from frame 5, particle ids 3, 5, 7, ..., floats with NaN, -0.0 and inf."""
    table, rng = traces_like(n_frames, n_particles, seed=seed, first_frame=5, id_step=2)
    table["y_px"] = rng.uniform(0, 512, len(table)).astype(np.float32)
    return table


@pytest.mark.parametrize("source", ["frame", "parquet"])
def test_each_particle_reads_the_tables_rows_in_frame_order(tmp_path, source):
    table = _traces()
    src = table
    if source == "parquet":
        write_parquet(table, tmp_path / "traces.parquet")
        src = StoredTable(tmp_path / "traces.parquet")
    store = ParticleTraces.build(src, ("intensity", "x_px", "y_px"), tmp_path / "scratch")
    assert store is not None and store.n_particles == 7
    groups = dict(iter(table.groupby("particle_id", sort=True)))
    seen = []
    for pid, frames, y in store.per_particle("intensity"):
        tr = groups[pid].sort_values("frame")
        np.testing.assert_array_equal(frames, tr["frame"].to_numpy())
        assert y.tobytes() == tr["intensity"].to_numpy().tobytes()  # -0.0 and NaN bits too
        assert store.get(pid, "y_px").tobytes() == tr["y_px"].to_numpy().tobytes()  # dtype kept
        seen.append(pid)
    assert seen == sorted(groups)
    assert store.get(4, "x_px") is None  # no such particle
    frames, x = store.arrays("x_px").get(seen[2])
    np.testing.assert_array_equal(x, groups[seen[2]]["x_px"].to_numpy())
    # blocks of whole particles: the table's rows, particle-major
    blocks = list(store.blocks(("x_px", "y_px"), n_particles=3))
    assert [b["particle_id"].nunique() for b in blocks] == [3, 3, 1]
    joined = pd.concat(blocks, ignore_index=True)
    expect = table.sort_values("particle_id", kind="stable")[["frame", "particle_id", "x_px", "y_px"]]
    pd.testing.assert_frame_equal(joined, expect.reset_index(drop=True), check_exact=True)
    store.close()
    assert not (tmp_path / "scratch").exists()


@pytest.mark.parametrize(
    "damage",
    ["drop a row", "particles unsorted", "frames unsorted", "float ids", "missing column", "empty"],
)
def test_an_irregular_table_is_not_stored(tmp_path, damage):
    table = _traces(n_frames=20, n_particles=4)
    if damage == "drop a row":
        table = table.drop(index=41).reset_index(drop=True)
    elif damage == "particles unsorted":
        table = table.sort_values(["frame", "particle_id"], ascending=[True, False]).reset_index(drop=True)
    elif damage == "frames unsorted":
        table = table.sort_values(["frame", "particle_id"], ascending=[False, True]).reset_index(drop=True)
    elif damage == "float ids":
        table["particle_id"] = table["particle_id"].astype(float)
    elif damage == "missing column":
        table = table.drop(columns="y_px")
    else:
        table = table.iloc[:0]
    assert ParticleTraces.build(table, ("intensity", "x_px", "y_px"), tmp_path / "scratch") is None
    assert not (tmp_path / "scratch").exists()


def test_the_kinetics_and_the_centroid_shift_from_the_store_equal_the_tables(small_analysis, tmp_path):
    ex = small_analysis.extraction
    traces = ex.traces
    store = ParticleTraces.build(traces, ("intensity", "x_px", "y_px"), tmp_path / "scratch")
    assert store is not None  # the extraction makes a regular table
    t_mid = ex.frames["mid_time_s"].to_numpy(float)
    kw = dict(exposure_s=float(ex.meta["exposure_s"]), particles=ex.particles)
    from_store = analyze_population(store, t_mid, ex.cycles, **kw)
    pd.testing.assert_frame_equal(from_store.table, small_analysis.run.population.table, check_exact=True)
    args = (ex.cycles, t_mid)
    shift_kw = dict(exposure_s=float(ex.meta["exposure_s"]), pixel_size_nm=ex.meta.get("pixel_size_nm"))
    whole = centroid_shift(traces[["frame", "particle_id", "x_px", "y_px"]], *args, **shift_kw)
    blocks = centroid_shift(store.blocks(("x_px", "y_px"), n_particles=2), *args, **shift_kw)
    pd.testing.assert_frame_equal(blocks, whole, check_exact=True)


def test_the_scratch_file_is_not_left_in_the_results(small_output):
    assert not (small_output / SCRATCH_TRACES).exists()
    assert (small_output / "traces.parquet").is_file()


@pytest.mark.parametrize("group_rows", [500, 10**7])  # several row groups, or one
def test_the_stored_table_is_written_as_the_table_is(tmp_path, monkeypatch, group_rows):
    """traces.parquet and traces.csv.gz written from the scratch file: the bytes of the table's."""
    import plscope._csv as csv_mod
    import plscope.results as results
    from plscope._csv import write_csv, write_csv_blocks

    table = _traces(n_frames=300, n_particles=7)
    store = ParticleTraces.build(table, ("intensity", "x_px", "y_px"), tmp_path / "scratch")
    assert store is not None and store.n_rows == len(table)
    pd.testing.assert_frame_equal(store.table(), table, check_exact=True)
    monkeypatch.setattr(results, "PARQUET_ROW_GROUP_ROWS", group_rows)
    write_parquet(table, tmp_path / "a.parquet")
    results.write_parquet_rows(store, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    monkeypatch.setattr(csv_mod, "CHUNK_ROWS", 400)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for level in (None, 1):  # the same name: gzip's header holds it
        write_csv(table, tmp_path / "a" / "t.csv", gzip_level=level)
        write_csv_blocks(store.row_blocks(400), tmp_path / "b" / "t.csv", gzip_level=level)
        assert (tmp_path / "a" / "t.csv").read_bytes() == (tmp_path / "b" / "t.csv").read_bytes()
    rows = store.rows(1234, 1500, ("particle_id", "y_px"))  # any range of rows, across frames
    pd.testing.assert_frame_equal(rows, table.iloc[1234:1500][["particle_id", "y_px"]].reset_index(drop=True))


def test_a_store_is_filled_by_frames_with_or_without_pwrite(tmp_path, monkeypatch):
    """The pass writes each chunk of frames into the store (``os.pwrite``; seek and write where there
    is none, as on Windows): read back, the values written."""
    import os

    rng = np.random.default_rng(1)
    values = rng.normal(size=(50, 4))
    for without in (False, True):
        if without:
            monkeypatch.delattr(os, "pwrite")
        store = ParticleTraces.create(
            tmp_path / f"s{without}",
            np.arange(50),
            np.array([2, 5, 7, 9]),
            {"intensity": np.dtype(np.float64)},
            names=["frame", "particle_id", "intensity", "drift_x_px"],
            per_frame=["drift_x_px"],
        )
        for start in (30, 0, 13):  # chunks in any order
            stop = {30: 50, 0: 13, 13: 30}[start]
            store.write_frames("intensity", start, values[start:stop])
            store.per_frame["drift_x_px"][start:stop] = start
        table = store.table()
        np.testing.assert_array_equal(table["intensity"].to_numpy().reshape(50, 4), values)
        assert list(table.columns) == ["frame", "particle_id", "intensity", "drift_x_px"]
        np.testing.assert_array_equal(store.get(7, "intensity"), values[:, 2])
        store.close()


def test_quality_flags_of_a_store_are_logged_once_for_the_run(small_analysis, tmp_path, monkeypatch, caplog):
    """The stored traces are flagged a block of particles at a time; -v shows one line for the run
    (each block had logged its own 'quality_flags: k of 16 particle(s) pass'), with the same flags."""
    import logging

    from plscope.pipeline import imaging

    ex = small_analysis.extraction
    store = ParticleTraces.build(ex.traces, ("intensity", "peak_adu", "x_px", "y_px"), tmp_path / "scratch")
    assert store is not None
    store.attrs = dict(ex.traces.attrs)
    blocks = ParticleTraces.blocks
    monkeypatch.setattr(ParticleTraces, "blocks", lambda self, cols, n_particles=2: blocks(self, cols, 2))
    from plscope.tracking.quality import QUALITY_COLUMNS

    added = {*QUALITY_COLUMNS, "x_ref_px", "y_ref_px", "snr_quality"} - {"particle_id"}
    particles = ex.particles.drop(columns=[c for c in ex.particles if c in added])
    with caplog.at_level(logging.INFO, logger="plscope"):
        flagged = imaging._with_quality(particles, store, ex.frames, ex.cycles, ex.drift)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("quality_flags:")]
    n = ex.particles["particle_id"].nunique()
    assert lines == [f"quality_flags: {int(flagged['ok'].sum())} of {n} particle(s) pass"]
