"""The fork server of the parallel kinetics compiles every kernel the workers run, once (issue 16).

Its forks inherit the compiled kernels; a kernel it misses, or warms up with
other argument types than the analysis uses, is compiled again in every
worker on the first run after an install (~10 s CPU per process).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_CODE = """
import sys
from numba.core.registry import CPUDispatcher

import plscope._kinetics_worker  # runs warm_up()
from plscope.kinetics import analyze_population
from validation.forward.kinetics import KineticsScenario, simulate_kinetics


def signatures():
    out = {}
    for name, mod in list(sys.modules.items()):
        if name.startswith("plscope"):
            for attr, obj in vars(mod).items():
                if isinstance(obj, CPUDispatcher):
                    out[name + "." + attr] = set(obj.signatures)
    return out


before = signatures()
sim = simulate_kinetics(KineticsScenario(n_particles=5), seed=2)
pop = analyze_population(sim.traces, sim.time_s, sim.cycles, exposure_s=sim.exposure_s)
assert pop.trace_shape is not None and set(pop.shape_priors) == {"pol", "rec"}, "not every fit ran"
new = {k: v - before.get(k, set()) for k, v in signatures().items() if v - before.get(k, set())}
print(sorted(new))
"""


@pytest.mark.slow  # a fresh process: imports, and the compile itself where the numba cache is cold
def test_the_fork_server_warm_up_compiles_every_kernel_the_kinetics_run():
    # a fresh process: the worker module's warm-up, then a whole analysis (curve fits, pooled shapes,
    # shape refits, whole-trace and joint fits) must not compile any kernel, nor a new signature of one
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, "-c", _CODE], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_a_failing_warm_up_does_not_fail_the_import(monkeypatch):
    """The fork server survives only an ImportError of its preload: a warm-up error must not escape the
    import (it would end the server and every later worker start of the process)."""
    import importlib

    from plscope.kinetics import _lsq

    def broken(*args, **kwargs):
        raise RuntimeError("warm-up failed")

    monkeypatch.setattr(_lsq, "leastsq", broken)
    monkeypatch.delitem(sys.modules, "plscope._kinetics_worker", raising=False)
    module = importlib.import_module("plscope._kinetics_worker")
    with pytest.raises(RuntimeError, match="warm-up failed"):  # the warm-up did run, and failed
        module.warm_up()
