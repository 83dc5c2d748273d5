"""The one progress adapter: tqdm bars over a loop or over dask computations.

A bottom-floor helper (imports nothing of plscope) so every stage shows
progress the same way, with tqdm's own bars (:class:`tqdm.dask.TqdmCallback`
for dask). Off by default: ``enabled=False`` gives a no-op, so library calls
stay silent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["dask_progress", "dask_task_counter", "progress_iter"]


def _key_name(key: Any) -> str:
    """The name of a dask task key (``("name-token", i)`` or ``"name-token"``)."""
    return str(key[0] if isinstance(key, tuple) else key)


def dask_task_counter(key_prefix: str, report: Callable[[int, int], None]) -> Any:
    """A dask callback that calls ``report(done, total)`` as the tasks named ``key_prefix...`` finish.

    For progress shown elsewhere than on this terminal: a batch run on a
    cluster worker reports its chunks to the client, which draws the bars.
    ``total`` counts the matching tasks of each computation (0: none, no
    report).

    >>> import dask, dask.array as da
    >>> seen = []
    >>> x = da.ones(4, chunks=2).map_blocks(lambda b: b, name="demo-chunks")
    >>> with dask.config.set(scheduler="synchronous"), dask_task_counter("demo", lambda d, t: seen.append((d, t))):
    ...     _ = x.compute()
    >>> seen
    [(1, 2), (2, 2)]
    """
    from dask.callbacks import Callback

    class _Counter(Callback):
        def __init__(self) -> None:
            super().__init__()
            self.total = 0
            self.done = 0

        def _start_state(self, dsk: Any, state: Any) -> None:
            self.total = sum(1 for k in dsk if _key_name(k).startswith(key_prefix))
            self.done = 0

        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            if self.total and _key_name(key).startswith(key_prefix):
                self.done += 1
                report(self.done, self.total)

    return _Counter()


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

    class _Named(TqdmCallback):
        def _start_state(self, dsk: Any, state: Any) -> None:
            self.pbar = self.tqdm_class(total=sum(1 for k in dsk if _key_name(k).startswith(prefix)))

        def _posttask(self, key: Any, *_: Any, **__: Any) -> None:
            if _key_name(key).startswith(prefix):
                self.pbar.update()

    return _Named(desc=desc, unit=unit)


def progress_iter(iterable: Iterable[T], desc: str, *, unit: str, enabled: bool = True) -> Iterator[T]:
    """``iterable`` with a tqdm bar (the items unchanged).

    >>> list(progress_iter(range(3), "frames", unit="frame", enabled=False))
    [0, 1, 2]
    """
    from tqdm import tqdm

    return iter(tqdm(iterable, desc=desc, unit=unit, disable=not enabled))
