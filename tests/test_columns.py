"""The column names in plscope.columns are the ones the tables really have."""

from __future__ import annotations

import pytest

from plscope import columns


def test_particles_and_traces_columns_are_unique_and_carry_units_in_names():
    for names in (columns.PARTICLES_CSV_COLUMNS, columns.TRACES_CSV_COLUMNS):
        assert len(set(names)) == len(names)
    assert columns.unit_of("size_nm") == "nm"
    assert columns.DRIFT_TABLE_COLUMNS == ("frame", *columns.TRACE_DRIFT_COLUMNS)


def test_tracking_takes_its_column_names_from_plscope_columns():
    import plscope.tracking as tracking

    assert tracking.PARTICLE_COLUMNS is columns.PARTICLE_COLUMNS
    assert tracking.SIZE_COLUMNS is columns.SIZE_COLUMNS
    assert tracking.QUALITY_COLUMNS is columns.QUALITY_COLUMNS
    assert tracking.TRACE_COLUMNS is columns.TRACE_COLUMNS
    assert tracking.DRIFT_TABLE_COLUMNS is columns.DRIFT_TABLE_COLUMNS
    assert tracking.CENTROID_SHIFT_COLUMNS is columns.CENTROID_SHIFT_COLUMNS


@pytest.mark.slow
def test_an_imaging_run_has_exactly_the_declared_particle_and_trace_columns(small_analysis):
    result = small_analysis  # plscope.analyze of small_run
    assert tuple(result.particles.columns) == columns.PARTICLES_CSV_COLUMNS
    assert tuple(result.traces.columns) == columns.TRACES_CSV_COLUMNS
