"""Parameters of plscope's simulators, declared once with types, ranges, units and docs.

:class:`ImagingSimFields` and :class:`SpectralSimFields` are plain frozen
dataclasses (so ``dataclasses.replace``/``asdict`` work as before); each field
is ``Annotated[type, spec(range, unit, doc)] = default``. The simulator's
parameter classes (:class:`plscope.sim.ImagingSimParams`,
:class:`plscope.sim.SpectralSimParams`) inherit these fields and validate
them in ``__post_init__`` with :func:`~plscope.config._base.check_fields`
(pydantic); only the relations between fields (a minimum below a maximum, an
exposure shorter than the frame interval, ...) are checked by the simulator.

The ranges bound memory and time: a simulated movie is at most
:data:`MAX_IMAGE_PX` pixels a side, and the simulator refuses parameter sets
whose movie or DAQ log would not fit in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from ._base import Bool, Float, spec
from ._base import Int as _Int

#: Largest simulated image side, pixels.
MAX_IMAGE_PX = 8192
#: Most simulated particles.
MAX_PARTICLES = 10_000
#: Largest simulated movie (frames x rows x cols x 2 bytes) and DAQ log (samples).
MAX_MOVIE_BYTES = 4 * 2**30
MAX_DAQ_SAMPLES = 100_000_000

Count = Annotated[_Int, spec(ge=0, le=MAX_PARTICLES, doc="a count")]
Side = Annotated[_Int, spec(ge=8, le=MAX_IMAGE_PX, doc="image side, px")]
Field_kV = Annotated[Float, spec(gt=0, le=10_000, unit="kV/cm", doc="field")]
Fraction = Annotated[Float, spec(ge=0, le=1, doc="fraction")]
Positive = Annotated[Float, spec(gt=0, doc="positive")]
Wavelength = Annotated[Float, spec(gt=0, le=100_000, unit="nm", doc="wavelength")]
# fields that both simulators declare, with their own defaults
FieldLevels = Annotated[
    tuple[Field_kV, ...], spec(min_length=1, max_length=100, unit="kV/cm", doc="field levels, in order")
]
Period = Annotated[Float, spec(gt=0, le=3600, unit="s", doc="square-wave period (ON then OFF)")]
BleachPerMin = Annotated[Float, spec(ge=0, lt=1, unit="1/min", doc="fraction of the PL bleached per minute")]
ExtraTtlPulses = Annotated[_Int, spec(ge=0, le=1_000_000, doc="TTL pulses after the last saved frame")]
Noise = Annotated[Bool, spec(doc="nuisance: shot and read noise")]
CameraOffset = Annotated[Bool, spec(doc="nuisance: camera offset")]
Bleaching = Annotated[Bool, spec(doc="nuisance: bleaching")]
VoltageNoise = Annotated[Bool, spec(doc="nuisance: noisy voltage record")]
DaqLead = Annotated[Bool, spec(doc="nuisance: DAQ starts before the camera")]
ExtraTtl = Annotated[Bool, spec(doc="nuisance: surplus TTL pulses")]


@dataclass(frozen=True)
class _RunFields:
    """Fields of both simulators: the field schedule, the camera and the DAQ."""

    mobility_cm2_per_Vs: Annotated[
        Float, spec(gt=0, le=1e-3, unit="cm^2/(V s)", doc="population mean ion mobility")
    ] = 2.56e-10
    tau_rec_s_per_um: Annotated[
        Float, spec(gt=0, le=1e4, unit="s/um", doc="recovery time constant per um of particle size")
    ] = 3.0
    fast_fraction: Annotated[
        Float, spec(gt=0, lt=1, doc="amplitude a1 of the fast biexponential component")
    ] = 0.6
    fast_ratio: Annotated[Float, spec(gt=0, le=100, doc="tau1 / tau of the fast component")] = 0.6
    cycles_per_level: Annotated[_Int, spec(ge=1, le=1000, doc="field cycles at each level")] = 3
    duty: Annotated[Float, spec(gt=0, lt=1, doc="fraction of each period with the field on")] = 0.5
    lead_in_s: Annotated[Float, spec(ge=0, le=3600, unit="s", doc="field off before the first ON edge")] = (
        10.0
    )
    frame_rate_hz: Annotated[Float, spec(gt=0, le=10_000, unit="Hz", doc="camera frame rate")] = 5.0
    exposure_s: Annotated[Float, spec(gt=0, le=3600, unit="s", doc="exposure time per frame")] = 0.15
    bleach_per_min: BleachPerMin = 0.03
    camera_offset_adu: Annotated[Float, spec(ge=0, le=60_000, unit="ADU", doc="camera offset")] = 100.0
    gain_adu_per_photon: Annotated[Float, spec(gt=0, le=1000, unit="ADU/photon", doc="camera gain")] = 1.0
    read_noise_adu: Annotated[Float, spec(ge=0, le=10_000, unit="ADU", doc="read noise (sd)")] = 2.0
    daq_rate_hz: Annotated[Float, spec(gt=0, le=1e7, unit="Hz", doc="DAQ sample rate")] = 1000.0
    daq_lead_s: Annotated[
        Float, spec(ge=0, le=3600, unit="s", doc="DAQ time of the first frame (DAQ starts first)")
    ] = 1.5
    extra_ttl_pulses: ExtraTtlPulses = 3
    voltage_noise_V: Annotated[
        Float, spec(ge=0, le=1000, unit="V", doc="noise of the recorded voltage (sd)")
    ] = 0.02
    amplifier_gain: Annotated[Float, spec(gt=0, le=1e6, doc="electrode volts per recorded volt")] = 20.0
    electrode_gap_um: Annotated[Float, spec(ge=1e-3, le=1e5, unit="um", doc="gap between the electrodes")] = (
        10.0
    )
    temperature_K: Annotated[Float, spec(gt=0, lt=2000, unit="K", doc="sample temperature")] = 296.15


@dataclass(frozen=True)
class ImagingSimFields(_RunFields):
    """Parameters of a simulated imaging run (``plscope simulate``)."""

    n_particles: Annotated[_Int, spec(ge=0, le=MAX_PARTICLES, doc="particles (uncrowded layout)")] = 16
    image_shape: Annotated[tuple[Side, Side], spec(doc="rows, cols", unit="px")] = (160, 160)
    pixel_size_nm: Annotated[
        Float, spec(ge=1, le=100_000, unit="nm", doc="pixel size in the sample plane")
    ] = 100.0
    psf_sigma_nm: Annotated[Float, spec(ge=1, le=100_000, unit="nm", doc="PSF standard deviation")] = 130.0
    size_range_nm: Annotated[
        tuple[Positive, Positive], spec(unit="nm", doc="side length L of the square particles, uniform")
    ] = (400.0, 1300.0)
    mobility_spread: Annotated[
        Float, spec(ge=0, le=10, doc="relative sd of the mobility per particle (lognormal, mean kept)")
    ] = 0.10
    fields_kV_per_cm: FieldLevels = (90.0, 110.0, 130.0)
    period_s: Period = 40.0
    se_at_130: Annotated[
        tuple[Fraction, Fraction], spec(doc="switching efficiency at 130 kV/cm, uniform per particle")
    ] = (0.35, 0.55)
    photons_per_um2: Annotated[
        Float, spec(ge=0, le=1e12, unit="photons/um^2", doc="per exposure at full PL")
    ] = 20000.0
    background_photons: Annotated[
        Float, spec(ge=0, le=1e9, unit="photons", doc="per pixel per frame (20 % gradient)")
    ] = 30.0
    drift_px: Annotated[Float, spec(ge=0, le=1000, unit="px", doc="largest stage displacement")] = 1.5
    blink_rate_per_s: Annotated[Float, spec(ge=0, le=1000, unit="1/s", doc="blinks per second")] = 1 / 60
    camera_offset: CameraOffset = True
    noise: Noise = True
    drift: Annotated[Bool, spec(doc="nuisance: stage drift")] = True
    blinking: Annotated[Bool, spec(doc="nuisance: blinking")] = True
    bleaching: Bleaching = True
    daq_lead: DaqLead = True
    extra_ttl: ExtraTtl = True
    voltage_noise: VoltageNoise = True
    aux_channel: Annotated[Bool, spec(doc="nuisance: an unrelated DAQ channel")] = True
    clearance_px: Annotated[
        Float, spec(ge=0, le=MAX_IMAGE_PX, unit="px", doc="min edge-to-edge gap (touching pairs excepted)")
    ] = 12.0
    border_margin_px: Annotated[
        Float, spec(ge=0, le=MAX_IMAGE_PX, unit="px", doc="min gap to the image border")
    ] = 14.0
    touching_pairs: Annotated[Count, spec(doc="extra particles, each beside another one")] = 0
    touching_gap_px: Annotated[
        tuple[
            Annotated[Float, spec(ge=0, le=1000, doc="gap")], Annotated[Float, spec(ge=0, le=1000, doc="gap")]
        ],
        spec(unit="px", doc="edge-to-edge gap of a touching pair, uniform"),
    ] = (1.0, 3.0)
    border_particles: Annotated[Count, spec(doc="extra particles cut by the image border")] = 0
    brightness_spread: Annotated[
        Float, spec(ge=0, le=10, doc="relative sd of the brightness per particle (lognormal, mean 1)")
    ] = 0.0
    blinking_fraction: Annotated[Fraction, spec(doc="fraction of the particles that blink")] = 1.0
    blink_depth_range: Annotated[tuple[Fraction, Fraction], spec(doc="PL factor during a blink, uniform")] = (
        0.3,
        0.7,
    )


@dataclass(frozen=True)
class SpectralSimFields(_RunFields):
    """Parameters of a simulated spectral run (``plscope simulate --spectral``)."""

    n_particles: Annotated[_Int, spec(ge=1, le=1000, doc="particles (stripes along the slit)")] = 2
    n_rows: Annotated[_Int, spec(ge=1, le=MAX_IMAGE_PX, doc="slit rows")] = 48
    n_pixels: Annotated[_Int, spec(ge=32, le=MAX_IMAGE_PX, doc="wavelength pixels")] = 512
    dispersion_nm: Annotated[
        tuple[Float, ...],
        spec(min_length=2, max_length=10, unit="nm", doc="lambda(px) = c0 + c1 px + ..."),
    ] = (485.0, 0.215, -4.0e-5, 2.0e-9)
    peak_range_nm: Annotated[
        tuple[Wavelength, Wavelength], spec(unit="nm", doc="unshifted PL peak, uniform per particle")
    ] = (528.0, 536.0)
    fwhm_range_nm: Annotated[
        tuple[Wavelength, Wavelength], spec(unit="nm", doc="Lorentzian FWHM, uniform per particle")
    ] = (18.0, 24.0)
    shift_slope_nm_per_kV_per_cm: Annotated[
        Float, spec(ge=-10, le=10, unit="nm/(kV/cm)", doc="population mean peak shift per field")
    ] = -0.86 / 130.0
    shift_slope_spread: Annotated[Float, spec(ge=0, le=10, doc="relative sd per particle")] = 0.10
    peak_photons: Annotated[
        Float, spec(gt=0, le=1e9, unit="photons", doc="per pixel at the peak, whole stripe, per frame")
    ] = 400.0
    brightness_spread: Annotated[Float, spec(ge=0, lt=1, doc="relative, uniform +-")] = 0.2
    stripe_sigma_rows: Annotated[
        Float, spec(gt=0, le=1000, unit="rows", doc="particle image along the slit (Gaussian sd)")
    ] = 1.2
    background_photons: Annotated[Float, spec(ge=0, le=1e9, unit="photons", doc="per pixel per frame")] = 5.0
    size_range_nm: Annotated[
        tuple[Positive, Positive], spec(unit="nm", doc="particle size (sets tau_pol = L / (mu E))")
    ] = (300.0, 600.0)
    se_at_130: Annotated[
        tuple[Fraction, Fraction], spec(doc="PL quenching at 130 kV/cm, uniform per particle")
    ] = (0.3, 0.5)
    fields_kV_per_cm: FieldLevels = (70.0, 100.0, 130.0)
    period_s: Period = 30.0
    drift_nm: Annotated[
        Float, spec(ge=-1000, le=1000, unit="nm", doc="slow linear peak drift over the run")
    ] = 0.3
    bleach_per_min: BleachPerMin = 0.02
    lamp_counts_per_unit: Annotated[
        Float, spec(gt=0, le=1e9, doc="lamp peak counts per unit of NIST relative intensity")
    ] = 400.0
    lamp_fwhm_px: Annotated[Float, spec(gt=0, le=1000, unit="px", doc="lamp line width")] = 2.5
    lamp_dark_counts: Annotated[Float, spec(ge=0, le=1e9, doc="lamp spectrum dark level")] = 500.0
    calibration: Annotated[
        Literal["lamp", "coefficients"], spec(doc="wavelength calibration written to experiment.toml")
    ] = "lamp"
    extra_ttl_pulses: ExtraTtlPulses = 2
    noise: Noise = True
    camera_offset: CameraOffset = True
    drift: Annotated[Bool, spec(doc="nuisance: peak drift")] = True
    bleaching: Bleaching = True
    voltage_noise: VoltageNoise = True
    daq_lead: DaqLead = True
    extra_ttl: ExtraTtl = True
