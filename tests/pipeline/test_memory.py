"""Freed heap memory handed back to the system between the stages of a run (issue 16, memory)."""

from __future__ import annotations

import os
import sys

import pytest

from plscope.pipeline import memory
from plscope.pipeline.memory import release_free_memory


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or memory._malloc_trim() is None, reason="needs glibc (Linux)"
)
def test_free_pages_inside_the_heap_go_back_to_the_system():
    # 100 kB blocks stay below glibc's mmap threshold: they come from the heap; keeping one in
    # four leaves 300 kB holes that free() keeps (they are not at the top of the heap)
    blocks = [bytes(100_000) for _ in range(800)]
    blocks = blocks[::4]
    before = _rss_bytes()
    assert release_free_memory() is True
    freed = before - _rss_bytes()
    # without the trim nothing comes back; with it most of the holes (36-49 MB measured)
    assert freed > 0.3 * 600 * 100_000, f"only {freed / 1e6:.1f} MB of 60 MB of holes returned"
    assert len(blocks) == 200 and all(len(b) == 100_000 for b in blocks)  # the live blocks untouched


def test_without_glibc_nothing_is_trimmed(monkeypatch):
    memory._malloc_trim.cache_clear()
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    try:
        assert release_free_memory() is False
    finally:
        memory._malloc_trim.cache_clear()


def test_arrow_pool_released_when_pyarrow_is_loaded(monkeypatch):
    released = []
    pool = type("Pool", (), {"release_unused": lambda self: released.append(True)})()
    fake = type(sys)("pyarrow")
    fake.default_memory_pool = lambda: pool
    monkeypatch.setitem(sys.modules, "pyarrow", fake)
    release_free_memory(collect=False)
    assert released == [True]
    monkeypatch.delitem(sys.modules, "pyarrow")  # never imported by the release itself
    release_free_memory(collect=False)
    assert released == [True] and "pyarrow" not in sys.modules
