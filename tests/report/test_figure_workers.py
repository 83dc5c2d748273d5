"""The report's figures drawn in worker processes give the serial report's files, byte for byte (issue 16)."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import dask
import pytest

from plscope.pipeline import figure_workers, imaging
from plscope.pipeline.figure_workers import figure_mapper
from plscope.report import figures, write_report


@pytest.fixture
def run(small_analysis):
    """The RunResult of the small run (its summary copied: _write_results adds the provenance)."""
    return dataclasses.replace(small_analysis.run, summary=dict(small_analysis.run.summary))


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _report(result, folder: Path, **kwargs) -> list[str]:
    folder.mkdir()
    return write_report(result, folder / "report.html", figures_dir=folder / "figures", **kwargs)


def _no_cycles(run):
    """The run without field cycles: one figure (the reference image) and the page around it (fast)."""
    return dataclasses.replace(run, kinetics=run.kinetics.iloc[:0], cycles=run.cycles.iloc[:0])


def test_figures_drawn_through_a_mapper_equal_the_serial_report(run, tmp_path):
    run = _no_cycles(run)
    serial = _report(run, tmp_path / "serial")
    mapped = _report(run, tmp_path / "mapped", mapper=map)  # the workers' code, in this process
    assert mapped == serial == ["fig-reference.png", "fig-reference.svg", "fig-reference.pdf"]
    assert _files(tmp_path / "mapped") == _files(tmp_path / "serial")


def test_a_figure_that_fails_is_the_same_note_either_way(run, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("synthetic failure")

    monkeypatch.setattr(figures, "reference_image", broken)
    run = _no_cycles(run)
    serial = _report(run, tmp_path / "serial")
    mapped = _report(run, tmp_path / "mapped", mapper=map)
    assert mapped == serial == []
    text = (tmp_path / "mapped" / "report.html").read_text(encoding="utf-8")
    assert "id='fig-reference-missing'" in text and "synthetic failure" in text
    assert _files(tmp_path / "mapped") == _files(tmp_path / "serial")


def test_figures_stay_in_this_process_for_small_runs_batches_and_one_worker():
    with figure_mapper(figure_workers.MIN_PARALLEL_PARTICLES - 1) as small:
        assert small is None
    with figure_mapper(500, kinetics_workers=1) as one:
        assert one is None
    with dask.config.set(scheduler="synchronous"), figure_mapper(500) as synchronous:
        assert synchronous is None


@pytest.mark.slow
def test_results_written_with_worker_processes_equal_the_serial_ones(run, tmp_path, monkeypatch):
    """The whole _write_results: every figure in two worker processes, tables in a thread meanwhile."""
    prov = {"inputs": [], "plscope_version": "test"}
    (tmp_path / "serial").mkdir()
    (tmp_path / "workers").mkdir()

    @contextlib.contextmanager
    def serial_mapper(*args, **kwargs):
        yield None

    monkeypatch.setattr(imaging, "figure_mapper", serial_mapper)
    imaging._write_results(run, tmp_path / "serial", dict(prov))
    monkeypatch.setattr(imaging, "figure_mapper", figure_mapper)
    monkeypatch.setattr(figure_workers, "MIN_PARALLEL_PARTICLES", 1)
    monkeypatch.setattr(figure_workers, "must_stay_serial", lambda: False)  # also inside an xdist worker
    with figure_mapper(len(run.particles)) as mapper:
        assert mapper is not None
    imaging._write_results(run, tmp_path / "workers", dict(prov))
    assert _files(tmp_path / "workers") == _files(tmp_path / "serial")
