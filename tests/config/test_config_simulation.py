"""Simulator parameters: declared once in plscope.config.simulation, validated on construction."""

from __future__ import annotations

import dataclasses
import math

import pytest

from plscope.config._base import fields_of
from plscope.config.simulation import ImagingSimFields, SpectralSimFields
from plscope.sim import ImagingSimParams, SimulationError, SpectralSimError, SpectralSimParams

#: values the hand-written validators accepted (or that crashed later), now refused at construction
ABSURD_IMAGING = [
    ("pixel_size_nm", 1e-300),  # issue 13: a traceback in the analysis
    ("psf_sigma_nm", 1e9),  # issue 13
    ("image_shape", (10**6, 10**6)),  # a terabyte movie
    ("n_particles", 10**7),
    ("frame_rate_hz", 1e9),
    ("period_s", 1e12),
    ("cycles_per_level", 10**6),
    ("daq_rate_hz", 1e12),
    ("fields_kV_per_cm", tuple(range(1, 1000))),
    ("fields_kV_per_cm", (1e9,)),
    ("mobility_cm2_per_Vs", 1.0),
    ("temperature_K", math.nan),
    ("exposure_s", math.inf),
    ("gain_adu_per_photon", 1e300),
    ("camera_offset_adu", 1e12),
]


@pytest.mark.parametrize("name, value", ABSURD_IMAGING)
def test_absurd_imaging_parameters_are_refused_naming_the_field(name, value):
    with pytest.raises(SimulationError, match=f"'{name}"):
        dataclasses.replace(ImagingSimParams(), **{name: value})


def test_movie_size_is_bounded():
    with pytest.raises(SimulationError, match="GiB"):
        ImagingSimParams(image_shape=(8192, 8192), cycles_per_level=100, period_s=600.0)


def test_lists_become_tuples_and_numpy_values_are_accepted():
    import numpy as np

    p = ImagingSimParams(fields_kV_per_cm=[50, 60], image_shape=[64, np.int64(64)], noise=np.bool_(False))
    assert p.fields_kV_per_cm == (50.0, 60.0) and p.image_shape == (64, 64) and p.noise is False


def test_spectral_parameters_are_declared_and_checked():
    with pytest.raises(SpectralSimError, match="'n_pixels'"):
        SpectralSimParams(n_pixels=10**9)
    with pytest.raises(SpectralSimError, match="'peak_range_nm"):
        SpectralSimParams(peak_range_nm=(math.nan, 530.0))


def test_every_field_is_documented_with_a_range_or_a_type():
    for cls in (ImagingSimFields, SpectralSimFields):
        for name, info in fields_of(cls).items():
            assert info.description, f"{cls.__name__}.{name} has no doc"
    assert {f.name for f in dataclasses.fields(ImagingSimParams)} == set(fields_of(ImagingSimFields))
    assert {f.name for f in dataclasses.fields(SpectralSimParams)} == set(fields_of(SpectralSimFields))
