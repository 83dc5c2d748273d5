"""Traces read back from the stored Parquet file instead of held in memory (issue 16, memory).

``plscope run`` stores the extraction before the kinetics and then keeps only a
:class:`~plscope.results.StoredTable` in ``RunResult.traces``: every reader must get the frame
the table in memory was.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from _traces_tables import traces_like
from plscope.results import (
    Extraction,
    RunResult,
    StoredTable,
    stored_traces,
    table_columns,
    write_parquet,
)


def _traces(n_frames: int = 300, n_particles: int = 7, seed: int = 0) -> pd.DataFrame:
    """A traces-like table: frame-major rows, int64 keys, floats with NaN, -0.0, inf and repeats."""
    table, rng = traces_like(n_frames, n_particles, seed=seed)
    table.insert(3, "background", rng.normal(100.0, 2.0, len(table)))
    table["drift_x_px"] = np.repeat(rng.normal(0.0, 0.1, n_frames), n_particles)
    return table


@pytest.fixture
def stored(tmp_path) -> tuple[pd.DataFrame, StoredTable]:
    table = _traces()
    write_parquet(table, tmp_path / "traces.parquet")
    return table, StoredTable(tmp_path / "traces.parquet")


def test_stored_table_reads_the_frame_it_was(stored):
    table, file = stored
    pd.testing.assert_frame_equal(file.read(), table)
    pd.testing.assert_frame_equal(file.read(), pd.read_parquet(file.path))
    assert file.columns == list(table.columns)
    some = file.read(["x_px", "frame"])  # in the order asked
    pd.testing.assert_frame_equal(some, table[["x_px", "frame"]])


def test_table_columns_of_memory_and_of_file_agree(stored):
    table, file = stored
    table.attrs["radius_px"] = {3: 2.0}
    names = ("particle_id", "frame", "intensity", "not_there")
    in_memory, from_file = table_columns(table, names), table_columns(file, names)
    pd.testing.assert_frame_equal(in_memory, from_file)
    assert list(in_memory.columns) == ["particle_id", "frame", "intensity"]
    assert in_memory.attrs == {} and table.attrs == {"radius_px": {3: 2.0}}
    assert np.shares_memory(in_memory["intensity"].to_numpy(), table["intensity"].to_numpy())  # views


def _result(traces) -> RunResult:
    return RunResult(
        summary={},
        particles=pd.DataFrame({"particle_id": [3]}),
        kinetics=pd.DataFrame(),
        traces=traces,
        reference_image=np.zeros((2, 2)),
        frame_time_s=np.arange(300.0),
        cycles=pd.DataFrame(),
    )


def test_a_lazily_loaded_traces_table_gives_the_same_frame(stored):
    table, file = stored
    result = _result(file)
    assert stored_traces(result) is file  # nothing read yet
    pd.testing.assert_frame_equal(result.trace_columns(["frame", "intensity"]), table[["frame", "intensity"]])
    assert stored_traces(result) is file  # reading some columns keeps the file
    pd.testing.assert_frame_equal(result.traces, table)  # read when first used ...
    assert isinstance(stored_traces(result), pd.DataFrame)  # ... and kept
    assert result.traces is result.traces


def test_a_table_in_memory_is_returned_as_it_is():
    table = _traces()
    result = _result(table)
    assert result.traces is table and stored_traces(result) is table


def test_saving_an_extraction_with_stored_traces_copies_the_file(stored, tmp_path):
    table, file = stored
    ex = Extraction(
        meta={"temperature_K": 300.0, "n_frames": 300},
        frames=pd.DataFrame({"frame": np.arange(300), "time_s": np.arange(300.0)}),
        particles=pd.DataFrame({"particle_id": np.arange(3, 10)}),
        traces=file,
        cycles=pd.DataFrame({"on_start_s": [1.0]}),
        reference_image=np.ones((4, 4)),
    )
    (tmp_path / "out").mkdir()
    ex.save(tmp_path / "out")
    assert (tmp_path / "out" / "traces.parquet").read_bytes() == file.path.read_bytes()
    ex.traces = table  # the table in memory writes the same bytes
    (tmp_path / "again").mkdir()
    ex.save(tmp_path / "again")
    assert (tmp_path / "again" / "traces.parquet").read_bytes() == file.path.read_bytes()
    pd.testing.assert_frame_equal(Extraction.load(tmp_path / "out").traces, table)


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_stored_table_gone_or_damaged_is_one_line_naming_the_file(stored, damage):
    """A results folder moved, deleted or damaged after the run: RunFolderError naming the file."""
    from plscope.errors import RunFolderError

    _, file = stored
    if damage == "deleted":
        file.path.unlink()
    else:  # damaged before plscope took its identity: read, and refused as unreadable
        file.path.write_bytes(file.path.read_bytes()[:1000])
        file = StoredTable(file.path)
    holder = RunResult.__new__(RunResult)
    holder.traces = file
    for read in (lambda: file.columns, lambda: table_columns(file, ["frame"]), lambda: holder.traces):
        with pytest.raises(RunFolderError) as err:
            read()
        message = str(err.value)
        assert message.startswith(f"{file.path}: stored traces cannot be read") and "\n" not in message


def test_stored_table_replaced_since_is_refused_not_read(stored, tmp_path):
    """Another run or re-analysis into the same folder replaced the file: not read as this result's."""
    from plscope.errors import RunFolderError

    table, file = stored
    other = tmp_path / "other.parquet"
    write_parquet(table.iloc[::2], other)
    other.replace(file.path)  # what a later run's commit does (os.replace)
    for read in (lambda: file.columns, lambda: file.read(["frame"])):
        with pytest.raises(RunFolderError, match="changed since this result was made"):
            read()
    ex = Extraction.__new__(Extraction)
    ex.traces = file
    with pytest.raises(RunFolderError, match="changed since"):  # never copied as this extraction's
        ex.save(tmp_path / "copy")
    assert not (tmp_path / "copy" / "traces.parquet").exists()


def test_stored_table_moved_into_place_is_still_read(stored, tmp_path):
    """The staging folder's files moved into the results folder (os.replace) keep the table readable."""
    table, file = stored
    (tmp_path / "out").mkdir()
    file.path.replace(tmp_path / "out" / "traces.parquet")
    pd.testing.assert_frame_equal(file.moved_to(tmp_path / "out").read(), table)


def test_stored_table_of_a_relative_path_is_read_from_another_directory(stored, tmp_path, monkeypatch):
    """plscope.analyze(run, out="res") then os.chdir: res.traces is still the folder's file."""
    table, file = stored
    monkeypatch.chdir(file.path.parent)
    relative = StoredTable("traces.parquet")
    monkeypatch.chdir(tmp_path.parent)
    pd.testing.assert_frame_equal(relative.read(), table)


@pytest.mark.parametrize("where", ["this folder", "another folder"])
def test_traces_csv_is_skipped_only_for_traces_stored_in_the_folder_written(stored, tmp_path, where):
    """traces.csv.gz is left out only where plscope run wrote it with traces.parquet (the same folder)."""
    import gzip

    from plscope.pipeline.imaging import _write_tables

    table, file = stored
    folder = file.path.parent if where == "this folder" else tmp_path / "elsewhere"
    folder.mkdir(exist_ok=True)
    result = RunResult.__new__(RunResult)
    result.traces = file
    for name in ("particles", "kinetics", "cycles"):
        setattr(result, name, pd.DataFrame({"particle_id": [0, 1]}))
    result.centroid_shift = result.population = None
    _write_tables(result, folder)
    csv = folder / "traces.csv.gz"
    if where == "this folder":
        assert not csv.exists()
    else:
        pd.testing.assert_frame_equal(
            pd.read_csv(gzip.open(csv)), pd.read_csv(io.StringIO(table.to_csv(index=False)))
        )
