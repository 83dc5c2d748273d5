"""The field schedule and the PL response model used by the simulator.

Everything here is pure: arrays in, arrays out, no I/O and no global state.

Model (Chem. Sci. 2025, 16, 22417, with an explicit two-population state so
that each half-cycle starts from whatever state the previous one left):

- quench state ``q = a1*q1 + a2*q2`` with ``a1 = fast_fraction``,
  ``a2 = 1 - a1``;
- ``dq_i/dt = (target - q_i) / tau_i``, ``target = SE_p(E)`` while the field
  is ON and ``0`` while it is OFF;
- ON: ``tau_i = c_i * tau_pol`` with ``tau_pol = L / (mu_p E)``;
  OFF: ``tau_i = c_i * tau_rec_p``;
- ``c1 = fast_ratio`` and ``c2 = (1 - a1*c1) / a2``, so that the
  amplitude-weighted time constant ``a1*tau1 + a2*tau2`` equals ``tau`` (the
  paper's average dynamic time);
- ``PL(t) = (1 - q(t)) * bleach(t) * blink(t) * brightness``.

Each state relaxes exactly (closed-form exponential) between switch edges, so
``q`` can be evaluated at any time without integration error. Before the
first ON edge the particle is fully recovered (``q = 0``).

Time is on the DAQ clock, in seconds. An ON interval is half-open:
``[on_start, on_end)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: field at which ``se_at_130`` is defined; ``SE(E) = se_at_130 * E / 130``
SE_REFERENCE_FIELD_KV_PER_CM = 130.0

_NM_TO_CM = 1e-7
_KV_TO_V = 1e3


def switch_schedule(
    fields_kV_per_cm, *, cycles_per_level: int, period_s: float, duty: float, first_on_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """ON intervals of a stepped square-wave field.

    Parameters
    ----------
    fields_kV_per_cm : sequence of float
        Field levels in the order applied.
    cycles_per_level : int
        Number of ON/OFF cycles at each level.
    period_s : float
        Square-wave period; the field is ON for ``period_s * duty`` then OFF
        for ``period_s * (1 - duty)``.
    duty : float
        ON fraction of a period, in (0, 1).
    first_on_s : float
        Time of the first ON edge (DAQ clock).

    Returns
    -------
    switch_times_s : ndarray, shape (n_cycles, 2)
        ``[on_start, on_end]`` of every cycle.
    cycle_fields_kV_per_cm : ndarray, shape (n_cycles,)
        Field during each ON interval.
    """
    levels = np.asarray(fields_kV_per_cm, dtype=float).ravel()
    cycle_fields = np.repeat(levels, int(cycles_per_level))
    starts = first_on_s + period_s * np.arange(cycle_fields.size)
    switch_times = np.column_stack([starts, starts + period_s * duty])
    return switch_times, cycle_fields


def field_at(t_s, switch_times_s: np.ndarray, cycle_fields_kV_per_cm: np.ndarray) -> np.ndarray:
    """Applied field at given times.

    Parameters
    ----------
    t_s : array_like
        Times (DAQ clock), any shape.
    switch_times_s : ndarray, shape (n_cycles, 2)
    cycle_fields_kV_per_cm : ndarray, shape (n_cycles,)

    Returns
    -------
    ndarray
        Field in kV/cm, shape of ``t_s``; 0 outside the ON intervals.
    """
    t = np.asarray(t_s, dtype=float)
    edges = np.asarray(switch_times_s, dtype=float).ravel()
    seg = np.searchsorted(edges, t, side="right") - 1
    on = (seg >= 0) & (seg % 2 == 0)
    fields = np.asarray(cycle_fields_kV_per_cm, dtype=float)
    return np.where(on, fields[np.clip(seg // 2, 0, fields.size - 1)], 0.0)


def biexponential_weights(fast_fraction: float, fast_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Amplitudes and time-constant ratios of the two sub-populations.

    Parameters
    ----------
    fast_fraction : float
        Amplitude ``a1`` of the fast component, in (0, 1).
    fast_ratio : float
        ``c1 = tau1 / tau``, with ``0 < a1 * c1 < 1``.

    Returns
    -------
    amplitudes : ndarray, shape (2,)
        ``(a1, a2)``, summing to 1.
    ratios : ndarray, shape (2,)
        ``(c1, c2)`` with ``a1*c1 + a2*c2 = 1``.
    """
    a1 = float(fast_fraction)
    c1 = float(fast_ratio)
    if not 0.0 < a1 < 1.0:
        raise ValueError(f"fast_fraction must be in (0, 1), got {a1!r}")
    if not 0.0 < a1 * c1 < 1.0:
        raise ValueError(f"fast_fraction * fast_ratio must be in (0, 1), got {a1 * c1!r}")
    a2 = 1.0 - a1
    return np.array([a1, a2]), np.array([c1, (1.0 - a1 * c1) / a2])


def polarization_time_s(size_nm, mobility_cm2_per_Vs, field_kV_per_cm) -> np.ndarray:
    """Polarization time ``tau_pol = L / (mu E)``.

    Parameters
    ----------
    size_nm : array_like
        Particle side length ``L`` in nm.
    mobility_cm2_per_Vs : array_like
        Ion mobility in cm^2/(V s).
    field_kV_per_cm : array_like
        Applied field in kV/cm (> 0).

    Returns
    -------
    ndarray
        Seconds, broadcast shape of the inputs. 1 um, 2.56e-10 cm^2/(V s) and
        130 kV/cm give 3.0 s.
    """
    size_cm = np.asarray(size_nm, dtype=float) * _NM_TO_CM
    velocity_cm_per_s = (
        np.asarray(mobility_cm2_per_Vs, dtype=float) * np.asarray(field_kV_per_cm, dtype=float) * _KV_TO_V
    )
    return size_cm / velocity_cm_per_s


def switching_efficiency(se_at_130, field_kV_per_cm) -> np.ndarray:
    """Stable-level switching efficiency ``SE(E) = se_at_130 * E / 130``.

    ``SE = 1 - PL_quenched / PL_bright`` once the response has settled.
    """
    return (
        np.asarray(se_at_130, dtype=float)
        * np.asarray(field_kV_per_cm, dtype=float)
        / SE_REFERENCE_FIELD_KV_PER_CM
    )


def step_response(t_s, tau_s, *, fast_fraction: float, fast_ratio: float) -> np.ndarray:
    """Normalized response ``a1 exp(-t/tau1) + a2 exp(-t/tau2)`` to a step.

    Its integral over ``t >= 0`` is the amplitude-weighted time ``tau_s``.

    Parameters
    ----------
    t_s : array_like
        Time since the step (>= 0).
    tau_s : float or array_like
        Amplitude-weighted time constant.

    Returns
    -------
    ndarray
        1 at ``t = 0``, decaying to 0.
    """
    a, c = biexponential_weights(fast_fraction, fast_ratio)
    t = np.asarray(t_s, dtype=float)[..., None]
    tau = np.asarray(tau_s, dtype=float)[..., None]
    return np.sum(a * np.exp(-t / (c * tau)), axis=-1)


def _segment_constants(
    switch_times_s,
    cycle_fields_kV_per_cm,
    *,
    size_nm,
    mobility_cm2_per_Vs,
    tau_rec_s,
    se_at_130,
    fast_fraction,
    fast_ratio,
):
    """Per-segment start times, targets, time constants and start states.

    Segment ``j`` runs from edge ``j`` to edge ``j + 1`` (the last one to
    infinity); even ``j`` are ON, odd ``j`` OFF.

    Returns
    -------
    edges : (n_seg,), target : (n_p, n_seg), tau : (n_p, n_seg, 2),
    q_start : (n_p, n_seg, 2), amplitudes : (2,)
    """
    a, c = biexponential_weights(fast_fraction, fast_ratio)
    edges = np.asarray(switch_times_s, dtype=float).reshape(-1)
    if edges.size and np.any(np.diff(edges) <= 0):
        raise ValueError("switch times must be strictly increasing [on_start, on_end] pairs")
    fields = np.asarray(cycle_fields_kV_per_cm, dtype=float)
    size = np.atleast_1d(np.asarray(size_nm, dtype=float))
    mu = np.broadcast_to(np.asarray(mobility_cm2_per_Vs, dtype=float), size.shape)
    trec = np.broadcast_to(np.asarray(tau_rec_s, dtype=float), size.shape)
    se = np.broadcast_to(np.asarray(se_at_130, dtype=float), size.shape)
    n_p, n_seg = size.size, edges.size

    seg_field = np.zeros(n_seg)
    seg_field[0::2] = fields
    is_on = np.zeros(n_seg, dtype=bool)
    is_on[0::2] = True
    tau_on = polarization_time_s(size[:, None], mu[:, None], np.where(is_on, seg_field, 1.0)[None, :])
    seg_tau = np.where(is_on[None, :], tau_on, trec[:, None])  # (n_p, n_seg)
    target = np.where(is_on[None, :], switching_efficiency(se[:, None], seg_field[None, :]), 0.0)
    tau = seg_tau[:, :, None] * c  # (n_p, n_seg, 2)

    q_start = np.zeros((n_p, n_seg, 2))
    q = np.zeros((n_p, 2))
    for j in range(n_seg):
        q_start[:, j] = q
        if j + 1 < n_seg:
            decay = np.exp(-(edges[j + 1] - edges[j]) / tau[:, j])
            q = target[:, j, None] + (q - target[:, j, None]) * decay
    return edges, target, tau, q_start, a


def quench_components(
    t_s,
    switch_times_s,
    cycle_fields_kV_per_cm,
    *,
    size_nm,
    mobility_cm2_per_Vs,
    tau_rec_s,
    se_at_130,
    fast_fraction: float,
    fast_ratio: float,
) -> np.ndarray:
    """States ``q1, q2`` of the two sub-populations (not yet amplitude-weighted).

    Parameters are those of :func:`quench_state`.

    Returns
    -------
    ndarray, shape (n_particles, n_times, 2)
    """
    t = np.asarray(t_s, dtype=float).ravel()
    edges, target, tau, q_start, _ = _segment_constants(
        switch_times_s,
        cycle_fields_kV_per_cm,
        size_nm=size_nm,
        mobility_cm2_per_Vs=mobility_cm2_per_Vs,
        tau_rec_s=tau_rec_s,
        se_at_130=se_at_130,
        fast_fraction=fast_fraction,
        fast_ratio=fast_ratio,
    )
    n_p = target.shape[0]
    if edges.size == 0:
        return np.zeros((n_p, t.size, 2))
    seg = np.searchsorted(edges, t, side="right") - 1
    before = seg < 0
    segc = np.clip(seg, 0, None)
    dt = np.where(before, 0.0, t - edges[segc])  # (n_t,)
    tgt = target[:, segc, None]  # (n_p, n_t, 1)
    q = tgt + (q_start[:, segc] - tgt) * np.exp(-dt[None, :, None] / tau[:, segc])
    q[:, before] = 0.0
    return q


def quench_state(
    t_s,
    switch_times_s,
    cycle_fields_kV_per_cm,
    *,
    size_nm,
    mobility_cm2_per_Vs,
    tau_rec_s,
    se_at_130,
    fast_fraction: float,
    fast_ratio: float,
) -> np.ndarray:
    """Quench state ``q(t)`` of each particle, evaluated exactly.

    Parameters
    ----------
    t_s : array_like, shape (n_times,)
        Times on the DAQ clock, any order.
    switch_times_s : ndarray, shape (n_cycles, 2)
        ``[on_start, on_end]`` of every cycle, increasing.
    cycle_fields_kV_per_cm : ndarray, shape (n_cycles,)
        Field during each ON interval.
    size_nm, mobility_cm2_per_Vs, tau_rec_s, se_at_130 : array_like, shape (n_particles,)
        Per-particle side length, ion mobility, amplitude-weighted recovery
        time and switching efficiency at 130 kV/cm.
    fast_fraction, fast_ratio : float
        See :func:`biexponential_weights`.

    Returns
    -------
    ndarray, shape (n_particles, n_times)
        ``q = 1 - PL / PL_bright`` (without bleaching and blinking); 0 before
        the first ON edge.
    """
    q = quench_components(
        t_s,
        switch_times_s,
        cycle_fields_kV_per_cm,
        size_nm=size_nm,
        mobility_cm2_per_Vs=mobility_cm2_per_Vs,
        tau_rec_s=tau_rec_s,
        se_at_130=se_at_130,
        fast_fraction=fast_fraction,
        fast_ratio=fast_ratio,
    )
    a, _ = biexponential_weights(fast_fraction, fast_ratio)
    return q @ a


def bleach_factor(t_s, *, bleach_per_min: float, t0_s: float = 0.0) -> np.ndarray:
    """Exponential photobleaching: ``(1 - bleach_per_min) ** ((t - t0) / 60)``.

    The illumination starts at ``t0_s`` (first frame); earlier times give 1.
    """
    t = np.asarray(t_s, dtype=float)
    if bleach_per_min <= 0:
        return np.ones_like(t)
    rate_per_s = -np.log1p(-bleach_per_min) / 60.0
    return np.exp(-rate_per_s * np.clip(t - t0_s, 0.0, None))


def blink_factor(t_s, n_particles: int, *, particle_index, start_s, end_s, factor) -> np.ndarray:
    """Multiplicative PL factor of blinking.

    Parameters
    ----------
    t_s : array_like, shape (n_times,)
    n_particles : int
    particle_index, start_s, end_s, factor : array_like, shape (n_blinks,)
        One row per blink: the particle (0-based row of the particle arrays),
        the half-open interval ``[start_s, end_s)`` and the PL factor.

    Returns
    -------
    ndarray, shape (n_particles, n_times)
    """
    t = np.asarray(t_s, dtype=float).ravel()
    out = np.ones((int(n_particles), t.size))
    for p, s, e, f in zip(
        np.asarray(particle_index, dtype=int),
        np.asarray(start_s, dtype=float),
        np.asarray(end_s, dtype=float),
        np.asarray(factor, dtype=float),
    ):
        out[p, (t >= s) & (t < e)] *= f
    return out


def exposure_average(
    func: Callable[[np.ndarray], np.ndarray],
    frame_start_s,
    *,
    exposure_s: float,
    n_sub: int,
    chunk_samples: int = 1 << 18,
) -> np.ndarray:
    """Average of a time function over each camera exposure.

    Midpoint rule with ``n_sub`` samples per exposure window
    ``[start, start + exposure_s]``.

    Parameters
    ----------
    func : callable
        Maps times of shape (m,) to values of shape (n, m).
    frame_start_s : array_like, shape (n_frames,)
        Exposure start of each frame (DAQ clock).
    exposure_s : float
    n_sub : int
        Samples per exposure (>= 1).
    chunk_samples : int
        Evaluate ``func`` on at most this many times at once (memory bound).

    Returns
    -------
    ndarray, shape (n, n_frames)
    """
    starts = np.asarray(frame_start_s, dtype=float).ravel()
    n_sub = max(int(n_sub), 1)
    offsets = (np.arange(n_sub) + 0.5) / n_sub * exposure_s
    per_chunk = max(chunk_samples // n_sub, 1)
    parts = []
    for i in range(0, starts.size, per_chunk):
        block = starts[i : i + per_chunk]
        v = np.asarray(func((block[:, None] + offsets[None, :]).ravel()), dtype=float)
        parts.append(v.reshape(v.shape[0], block.size, n_sub).mean(axis=-1))
    if not parts:
        return np.zeros((np.asarray(func(np.zeros(0))).shape[0], 0))
    return np.concatenate(parts, axis=1)
