"""The scenario registry shared by every validation topic.

A scenario is a function ``build(run_dir: Path, seed: int) -> dict`` that
writes a run folder (with ``validation.forward``) and returns its truth
(schema: :mod:`validation.forward.runfolder`). Register it with::

    from validation.registry import scenario

    @scenario("name", topic="kinetics", quick=True, description="...")
    def build(run_dir, seed): ...

Modules holding scenarios are listed in :data:`SCENARIO_MODULES`; a topic
adds its own module there (e.g. ``validation.scenarios_kinetics``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: modules whose import registers scenarios (missing ones are skipped)
SCENARIO_MODULES = ("validation.scenarios", "validation.scenarios_kinetics")


@dataclass(frozen=True)
class Scenario:
    name: str
    topic: str
    description: str
    quick: bool
    build: Callable[[Path, int], dict]


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, *, topic: str, description: str, quick: bool = False):
    """Decorator registering ``build(run_dir, seed) -> truth`` under ``name``."""

    def deco(fn: Callable[[Path, int], dict]) -> Callable[[Path, int], dict]:
        if name in SCENARIOS:
            raise ValueError(f"scenario {name!r} registered twice")
        SCENARIOS[name] = Scenario(name, topic, description, quick, fn)
        return fn

    return deco


def load_all() -> dict[str, Scenario]:
    """Import every scenario module (skipping absent ones) and return the registry."""
    for mod in SCENARIO_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
    return SCENARIOS
