"""Frames lost by the acquisition while their TTL pulses were logged (issue 11).

The population response is written here from its definition (drop towards
1 - SE with tau_pol while the field is on, recovery with tau_rec), sampled at
the TTL pulses; frames are then removed from it as an acquisition would.
"""

from __future__ import annotations

import numpy as np
import pytest

from plscope.sync import find_lost_frames

RATE_HZ = 5.0


def _response(n_pulses: int, on: list[tuple[float, float]], rng, noise=0.004, tau_pol=2.0, tau_rec=3.0):
    t = np.arange(n_pulses) / RATE_HZ + 0.075
    q = np.zeros_like(t)
    qn, segs = 0.0, []
    for k, (a, b) in enumerate(on):
        nxt = on[k + 1][0] if k + 1 < len(on) else np.inf
        segs += [(a, b, 0.4, tau_pol), (b, nxt, 0.0, tau_rec)]
    for a, b, target, tau in segs:
        sel = (t >= a) & (t < b)
        q[sel] = target + (qn - target) * np.exp(-(t[sel] - a) / tau)
        if np.isfinite(b):
            qn = target + (qn - target) * np.exp(-(b - a) / tau)
    return t, 1.0 - q + rng.normal(0.0, noise, t.size)


ON = [(10.0 + 30.0 * k, 25.0 + 30.0 * k) for k in range(6)]
EDGES = np.array([e for ab in ON for e in ab])


@pytest.mark.parametrize("lost", [[], [400], [150, 520, 700]])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lost_frames_found_between_the_right_edges(lost, seed):
    rng = np.random.default_rng(seed)
    n_pulses = 950
    mid, pl = _response(n_pulses, ON, rng)
    keep = np.setdiff1d(np.arange(n_pulses), lost)[: n_pulses - 3]  # 3 pulses beyond the movie too
    movie_pl = pl[keep]
    res = find_lost_frames(movie_pl, mid, EDGES, max_lost=n_pulses - keep.size)
    assert res.checked
    assert len(res.lost_between) == len(lost)
    for k, (a, b) in zip(sorted(lost), res.lost_between):
        assert a <= k <= b
        assert f"between TTL pulses {a} and {b}" in res.message
    if not lost:
        assert res.message == "" and np.array_equal(res.pulse_index, np.arange(keep.size))
    else:
        # frames outside the uncertain intervals are mapped to their own pulses
        intervals = np.zeros(n_pulses, bool)
        for a, b in res.lost_between:
            intervals[a : b + 1] = True
        ok = ~intervals[keep]
        assert np.array_equal(res.pulse_index[ok], keep[ok])


def test_no_field_edges_cannot_check():
    rng = np.random.default_rng(0)
    res = find_lost_frames(rng.normal(1, 0.01, 100), np.arange(103) / RATE_HZ, np.array([]), max_lost=3)
    assert not res.checked and res.message == ""


@pytest.mark.parametrize("seed", range(1, 9))
def test_clean_noisy_response_stays_silent(seed):
    """No frame lost, a noisy response (weak evidence at every edge): nothing claimed, no inconclusive note."""
    rng = np.random.default_rng(seed)
    n_pulses = 950
    mid, pl = _response(n_pulses, ON, rng, noise=0.03)
    res = find_lost_frames(pl[: n_pulses - 3], mid, EDGES, max_lost=3)
    assert res.message == ""
    assert np.array_equal(res.pulse_index, np.arange(n_pulses - 3))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lost_frames_found_in_a_noisy_response(seed):
    """Three lost frames, a noisy response: still found (the evidence of all edges adds up)."""
    rng = np.random.default_rng(seed)
    n_pulses = 950
    mid, pl = _response(n_pulses, ON, rng, noise=0.006)
    lost = [150, 520, 700]
    keep = np.setdiff1d(np.arange(n_pulses), lost)[: n_pulses - 3]
    res = find_lost_frames(pl[keep], mid, EDGES, max_lost=n_pulses - keep.size)
    assert len(res.lost_between) == 3
    for k, (a, b) in zip(lost, res.lost_between):
        assert a <= k <= b
