"""The one progress adapter: tqdm bars over a loop or over dask computations.

A bottom-floor helper (imports nothing of plscope) so every stage shows
progress the same way, with tqdm's own bars (:class:`tqdm.dask.TqdmCallback`
for dask). Off by default: ``enabled=False`` gives a no-op, so library calls
stay silent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["dask_progress", "progress_iter"]


def dask_progress(
    desc: str, *, enabled: bool = True, unit: str = "task", key_prefix: str | None = None
) -> contextlib.AbstractContextManager[Any]:
    """A tqdm bar over the tasks of the dask computations inside the ``with`` block.

    Parameters
    ----------
    desc, unit : str
        Label and unit of the bar.
    enabled : bool
        False: nothing is shown (a no-op context).
    key_prefix : str, optional
        Count only the tasks whose key name starts with this (e.g. the chunks
        of one ``map_blocks``), not the reads and merges around them.

    >>> with dask_progress("traces", enabled=False):
    ...     pass
    """
    if not enabled:
        return contextlib.nullcontext()
    from tqdm.dask import TqdmCallback

    if key_prefix is None:
        return TqdmCallback(desc=desc, unit=unit)
    prefix: str = key_prefix

    def name(key: Any) -> str:
        return str(key[0] if isinstance(key, tuple) else key)

    class _Named(TqdmCallback):
        def _start_state(self, dsk: Any, state: Any) -> None:
            self.pbar = self.tqdm_class(total=sum(1 for k in dsk if name(k).startswith(prefix)))

        def _posttask(self, key: Any, *_: Any, **__: Any) -> None:
            if name(key).startswith(prefix):
                self.pbar.update()

    return _Named(desc=desc, unit=unit)


def progress_iter(iterable: Iterable[T], desc: str, *, unit: str, enabled: bool = True) -> Iterator[T]:
    """``iterable`` with a tqdm bar (the items unchanged).

    >>> list(progress_iter(range(3), "frames", unit="frame", enabled=False))
    [0, 1, 2]
    """
    from tqdm import tqdm

    return iter(tqdm(iterable, desc=desc, unit=unit, disable=not enabled))
