"""Per-particle kinetics in worker processes (setting ``kinetics.workers``): the same numbers as serial."""

from __future__ import annotations

import dask
import pandas as pd
import pytest

import plscope.kinetics.refine as refine
import plscope.pipeline.parallel as parallel
from plscope.config.settings import AnalysisSettings
from plscope.errors import ConfigError
from plscope.kinetics import analyze_population
from plscope.pipeline.imaging import analyze_extraction


def test_two_worker_processes_give_the_serial_kinetics_exactly(small_analysis, monkeypatch):
    # small_analysis: default settings, 6 particles -> "auto" ran it serially
    assert parallel.kinetics_workers("auto", len(small_analysis.particles)) == 1
    calls = []
    dask_map = parallel._dask_map
    monkeypatch.setattr(parallel, "_dask_map", lambda f, xs, **kw: calls.append(kw) or dask_map(f, xs, **kw))
    joint = []
    fit_population_traces = refine.fit_population_traces
    monkeypatch.setattr(
        refine, "fit_population_traces", lambda *a, **kw: joint.append(kw) or fit_population_traces(*a, **kw)
    )
    settings = AnalysisSettings.from_dict({"kinetics": {"workers": 2}})
    parallel_result = analyze_extraction(small_analysis.extraction, settings)
    assert calls and all(kw["num_workers"] == 2 for kw in calls)  # it did run in 2 processes
    assert joint and joint[0]["mapper"] is not map  # the joint fit's inner fits too
    pd.testing.assert_frame_equal(parallel_result.kinetics, small_analysis.kinetics, check_exact=True)
    pd.testing.assert_frame_equal(
        parallel_result.population.se_cycles, small_analysis.run.population.se_cycles, check_exact=True
    )
    key = "ion_mobility_cm2_per_Vs"
    assert parallel_result.summary[key] == small_analysis.summary[key]


def test_any_mapper_gives_the_same_table_in_particle_order(small_analysis):
    """The science layer chunks the particles and puts the results back in order, whatever the mapper."""
    ex = small_analysis.extraction
    args = (ex.traces, ex.frames["mid_time_s"].to_numpy(float), ex.cycles)
    kw = dict(exposure_s=float(ex.meta["exposure_s"]), particles=ex.particles)
    seen = []

    def backwards(func, chunks):  # evaluates the last chunk first, returns in order
        chunks = list(chunks)
        seen.append(len(chunks))
        return reversed([func(c) for c in reversed(chunks)])

    mapped = analyze_population(*args, **kw, mapper=backwards)
    assert seen and max(seen) > 1
    serial = small_analysis.run.population  # the builtin map
    pd.testing.assert_frame_equal(mapped.table, serial.table, check_exact=True)


def test_auto_is_serial_for_few_particles_and_uses_the_cores_for_many():
    from dask.system import CPU_COUNT

    assert parallel.kinetics_workers("auto", parallel.MIN_PARALLEL_PARTICLES - 1) == 1
    assert parallel.kinetics_workers("auto", 10_000) == CPU_COUNT
    assert parallel.kinetics_workers(1, 10_000) == 1
    assert parallel.kinetics_workers(4, 3) == 3  # never more processes than particles
    with parallel.particle_mapper(1, 10_000) as mapper:
        assert mapper is map


def test_batch_tasks_and_the_synchronous_scheduler_stay_serial():
    from distributed import Client, LocalCluster

    with dask.config.set(scheduler="synchronous"):  # what plscope batch sets around each run
        assert parallel.kinetics_workers(2, 10_000) == 1
        assert parallel.kinetics_workers("auto", 10_000) == 1
    # inside a task of a Dask cluster (each run of plscope batch): no nested pool
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        assert client.submit(parallel.kinetics_workers, 2, 10_000).result() == 1
        assert client.submit(parallel.kinetics_workers, "auto", 10_000).result() == 1


@pytest.mark.parametrize("value", ["auto", 1, 2, 1024])
def test_workers_setting_accepts_auto_or_a_count(value):
    s = AnalysisSettings.from_dict({"kinetics": {"workers": value}})
    assert s.kinetics.workers == value
    assert s.digest() == AnalysisSettings().digest()  # speed only: the results stay up to date


@pytest.mark.parametrize("value", [0, -1, 1025, 2.5, "two", True, None])
def test_workers_setting_refuses_anything_else(value):
    with pytest.raises(
        ConfigError, match=r"'kinetics.workers' must be \"auto\" or an integer in \[1, 1024\]"
    ):
        AnalysisSettings.from_dict({"kinetics": {"workers": value}})


def test_a_default_distributed_client_runs_the_fits_on_its_cluster(small_analysis, monkeypatch):
    from distributed import Client, LocalCluster

    calls = []
    dask_map = parallel._dask_map
    monkeypatch.setattr(parallel, "_dask_map", lambda f, xs, **kw: calls.append(kw) or dask_map(f, xs, **kw))
    settings = AnalysisSettings.from_dict({"kinetics": {"workers": 2}})
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        result = analyze_extraction(small_analysis.extraction, settings)
    assert calls and all(kw["scheduler"] is client for kw in calls)
    pd.testing.assert_frame_equal(result.kinetics, small_analysis.kinetics, check_exact=True)
