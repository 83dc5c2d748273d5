"""Float64 text of ``plscope._csv`` against Python's ``repr``, value by value, on many millions of values.

    PYTHONPATH=src python -m benchmarks.csv_float_check [--seed 0] [--n 2000000]

``_format_floats`` keeps Arrow's text where its layout is ``repr``'s and mends
the rest; this checks that the digits agree too (both are shortest round-trip
generators, the closest of the shortest texts), beyond what the fast tests
cover: random bit patterns, random mantissas at magnitudes 2**-24 - 2**57
(where Arrow's text is mostly kept), values with short binary tails (where two
shortest texts can tie, e.g. 2**33 + 2**-7), float32-derived values (like the
traces), values rounded to 0-7 decimals, integers up to 2**53 and 1e16, and
powers of ten and two with their neighbours and subnormals. Prints the
mismatches of each set (and exits 1 if any). About a minute for the default
sizes.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def _mismatches(x: np.ndarray) -> list[tuple[float, str, str]]:
    from plscope._csv import _format_floats

    ours = _format_floats(x).to_pylist()
    theirs = [repr(v) if v == v else "" for v in x.tolist()]
    return [(v, a, b) for v, a, b in zip(x.tolist(), ours, theirs, strict=True) if a != b]


def _sets(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    bits = rng.integers(-(2**63), 2**63 - 1, 5 * n, dtype=np.int64).view(np.float64)
    exponent = rng.integers(1023 - 24, 1023 + 58, n, dtype=np.int64)
    mantissa = rng.integers(0, 2**52, n, dtype=np.int64)
    sign = rng.integers(0, 2, n, dtype=np.int64)
    moderate = ((sign << 63) | (exponent << 52) | mantissa).view(np.float64)
    shift = rng.integers(0, 53, n, dtype=np.int64)
    tails = (
        (rng.integers(1023 - 20, 1023 + 40, n, dtype=np.int64) << 52) | (mantissa >> shift << shift)
    ).view(np.float64)
    powers = np.array([10.0**k for k in range(-324, 309)] + [2.0**k for k in range(-1074, 1024)])
    powers = np.concatenate([powers, -powers])
    near = [np.nextafter(powers, np.inf), np.nextafter(powers, -np.inf), np.nextafter(powers, 0)]
    sub = np.arange(1, 100_000, dtype=np.int64).view(np.float64)
    return {
        "random bit patterns": bits,
        "random mantissas, 2**-24 - 2**57": moderate,
        "short binary tails (ties)": np.concatenate([tails, -tails]),
        "float32-derived": rng.standard_normal(n).astype(np.float32).astype(np.float64) * 30_000,
        **{f"rounded to {d} decimals": np.round(rng.uniform(-1e6, 1e6, n // 4), d) for d in range(8)},
        "integers to 2**53": rng.integers(-(2**53), 2**53, n, dtype=np.int64).astype(np.float64),
        "integers to 1e16": rng.integers(-(10**16), 10**16, n, dtype=np.int64).astype(np.float64),
        "powers, neighbours, subnormals": np.concatenate([powers, *near, sub, -sub]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=2_000_000, help="values per set (random bit patterns: 5 x)")
    args = ap.parse_args(argv)
    total = 0
    for label, x in _sets(np.random.default_rng(args.seed), args.n).items():
        bad = _mismatches(x)
        total += len(bad)
        print(f"{label}: {x.size} values, {len(bad)} mismatches {bad[:5]}", flush=True)
    print(f"total mismatches: {total}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
