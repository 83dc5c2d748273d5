"""CPU of the kinetics per particle, serial, against a baseline checkout side by side.

    python -m benchmarks.bench_kinetics OUT [OUT ...] [--baseline OLD_SRC] [--rounds 2]

Each ``OUT`` is a ``plscope run`` output folder with its stored extraction
(e.g. of ``benchmarks.generate`` runs with 200 and 1000 particles). Each
measurement is a fresh process (``python -m benchmarks.stages kinetics``):
``analyze_extraction`` with ``kinetics.workers = 1``, so that the first pass,
the whole-trace fits and the main process's bookkeeping are all CPU of that
one process (user + system: the machine is shared, so CPU is steadier than
wall time). With ``--baseline`` the same stage runs from another checkout's
``src`` too, alternating with this one round by round. Printed: the median CPU
of each, the CPU per particle and the ratio baseline / this. This is the
benchmark behind the compiled solvers of the kinetics (MINPACK's ``lmder`` in
``kinetics/_minpack.py``, SciPy's trust-region reflective steps in
``kinetics/_trf.py``): the baseline 8086e19 calls SciPy's with Python callbacks.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _kinetics_cpu(out: Path, src: Path, work: Path) -> dict:
    (work / "args.json").write_text(json.dumps({"out": str(out), "kinetics_workers": 1}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(ROOT)]))
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.stages",
        "kinetics",
        str(work / "args.json"),
        str(work / "r.json"),
    ]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads((work / "r.json").read_text())


def _n_particles(out: Path) -> int:
    import pandas as pd

    return int(pd.read_parquet(out / "particles.parquet", columns=["particle_id"])["particle_id"].nunique())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("outs", type=Path, nargs="+")
    p.add_argument("--baseline", type=Path, help="src folder of the checkout to compare with")
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args(argv)
    versions = {"this": ROOT / "src"}
    if a.baseline:
        versions = {"baseline": a.baseline, **versions}
    cpu: dict[tuple[str, Path], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.rounds):
            for out in a.outs:
                for name, src in versions.items():
                    r = _kinetics_cpu(out, src, Path(tmp))
                    cpu.setdefault((name, out), []).append(r["cpu_s"])
                    print(f"round {i + 1}: {name:8s} {out}: {r['cpu_s']:.2f} s CPU", flush=True)
    heads = [f"{n}: CPU s (ms per particle)" for n in versions] + (["baseline / this"] if a.baseline else [])
    print("\n| output | particles | " + " | ".join(heads) + " |")
    print("|---|---|" + "---|" * len(heads))
    for out in a.outs:
        n = _n_particles(out)
        med = {name: statistics.median(cpu[(name, out)]) for name in versions}
        cells = " | ".join(f"{med[v]:.2f} ({med[v] / n * 1e3:.1f})" for v in versions)
        ratio = f" {med['baseline'] / med['this']:.2f}x |" if a.baseline else ""
        print(f"| {out} | {n} | {cells} |{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
