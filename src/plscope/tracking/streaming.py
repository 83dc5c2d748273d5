"""The drift and the traces of ``plscope run`` in one pass over the stack (issue 16).

:func:`~plscope.tracking.extract_run_traces` needs the whole-movie drift
(:func:`~plscope.tracking.estimate_drift`) before the apertures can follow
it (:func:`~plscope.tracking.extract_traces`), which read the stack twice.
Here one dask graph reads each chunk once: the chunk's frames are summed
into the means of the drift blocks it overlaps (exact integer sums), each
block is registered when its sums are in, and the chunk's traces are
computed as soon as the registrations its frames depend on are known (the
two blocks around each frame and their neighbours, for the outlier test),
so dask keeps only a few chunks in memory. The results equal those of the
two passes bit for bit: the same block means, the same registration, the
same per-frame drift (each frame's value depends only on those blocks), the
same kernel on the same chunks.

It applies to dask stacks of unsigned 8/16-bit frames (camera data, whose
sums are exact); :func:`stream_drift_and_traces` returns None otherwise and
the caller makes the two passes.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import numpy as np
import pandas as pd

from .._progress import dask_progress
from ._kernels import block_sum_u32
from .detect import _check_image, reference_image
from .drift import (
    _BlockRegistration,
    block_centres,
    block_layout,
    drift_table,
    needed_blocks,
    settled_drift,
)
from .traces import (
    TRACE_KEY_PREFIX,
    _check_trace_inputs,
    _Kernel,
    _TraceTableFiller,
    trace_kernel,
    trace_table,
    trace_table_filler,
)


def _partial_sum(chunk: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return block_sum_u32(chunk[lo:hi])


def _register_sum(reg: _BlockRegistration, count: int, *pieces: np.ndarray) -> np.ndarray:
    """Drift ``[[dx, dy]]`` of the block whose frame sums are ``pieces`` (the block mean, as
    :func:`~plscope.tracking._kernels.block_mean` computes it, registered)."""
    total = pieces[0].astype(np.uint32, copy=True)
    for p in pieces[1:]:
        total += p
    return np.asarray([reg.register(total / count)], dtype=np.float64)


def _chunk_traces(
    kernel: _Kernel, chunk: np.ndarray, start: int, t_block: np.ndarray, need: np.ndarray, *regs: np.ndarray
) -> np.ndarray:
    """The kernel's values of one chunk, its apertures at the per-frame drift settled from ``regs``."""
    d_raw = np.full((t_block.size, 2), np.nan)
    d_raw[need] = np.concatenate(regs, axis=0)
    frames = np.arange(start, start + chunk.shape[0])
    return kernel(chunk, start, settled_drift(t_block, d_raw, frames))


def _usable(stack: Any) -> bool:
    """A dask stack of unsigned 8/16-bit frames (exact block sums)."""
    is_dask = hasattr(stack, "map_blocks") and hasattr(stack, "chunks")
    return is_dask and np.dtype(stack.dtype) in (np.uint8, np.uint16) and int(stack.shape[0]) > 0


def stream_drift_and_traces(
    stack: Any,
    particles: pd.DataFrame,
    options: dict[str, Any],
    *,
    reference: np.ndarray | None = None,
    progress: bool = False,
    scratch: str | os.PathLike | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """``(traces, drift)`` of ``estimate_drift`` then ``extract_traces(drift=...)``, in one pass.

    Parameters
    ----------
    stack : dask.array.Array of uint8 or uint16, shape (t, rows, cols)
    particles : pandas.DataFrame
        As for :func:`~plscope.tracking.extract_traces`.
    options : dict
        The aperture and background keywords of :func:`~plscope.tracking.extract_traces`
        (``radius_px, annulus_px, labels, aperture, background, drift_margin_px,
        psf_margin_sigma``); centroids, peaks and crosstalk unmixing are on.
    reference : ndarray, optional
        The image the drift and the positions refer to (default: the stack's reference image).
    progress : bool
        Show a progress bar (per chunk).
    scratch : path-like, optional
        Where the graph runs in this process: fill the traces into this file
        particle-major and return its :class:`~plscope._particle_traces.ParticleTraces`
        (with the table's ``attrs``) instead of the table: the table is never
        held (its 115 MB at 8000 frames x 200 particles).

    Returns
    -------
    (traces, drift) or None
        The two tables, equal to the two passes'; None when the stack is not
        a dask array of unsigned 8/16-bit frames.
    """
    if not _usable(stack):
        return None
    particles = _check_trace_inputs(stack, particles)
    t_total, rows, cols = (int(s) for s in stack.shape)
    block, _, starts, stops = block_layout(t_total)
    ref = reference_image(stack) if reference is None else _check_image(reference, "reference")
    kernel = trace_kernel(
        stack,
        particles,
        options,
        drift=np.zeros((t_total, 2)),
        reference=reference,
        centroids=True,
        peaks=True,
    )
    if ref.shape != (rows, cols):
        from ..errors import PlscopeError

        raise PlscopeError(f"reference: shape {ref.shape} does not match the frames {(rows, cols)}")
    from dask.delayed import Delayed

    # in this process (threads, or synchronous): each chunk's values go into the table when computed
    filler = trace_table_filler(kernel, t_total, scratch) if _scheduler_in_process() else None
    graph, out_key, name = _graph(stack, kernel, _BlockRegistration(ref), starts, stops, filler)
    with dask_progress("traces", enabled=progress, unit="chunk", key_prefix=name):
        (vals, d_block) = Delayed(out_key, graph).compute()
    drift = drift_table(starts, stops, d_block, t_total, block)
    return trace_table(vals if filler is None else filler, kernel, stack), drift


def _scheduler_in_process() -> bool:
    """Whether a graph computed here now runs in this process (Dask's threads or its synchronous
    scheduler: not a process pool, nor the cluster of a default ``distributed`` client)."""
    import dask.local
    import dask.threaded
    from dask.base import get_scheduler

    scheduler = get_scheduler() or dask.threaded.get  # a delayed's default: threads
    return scheduler in (dask.threaded.get, dask.local.get_sync)


def _fill(filler: _TraceTableFiller, values: np.ndarray, start: int) -> None:
    """One chunk's values into the table (the chunk's values are then freed by the scheduler)."""
    filler.fill(start, values)


def _collect(values: list[np.ndarray], regs: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    # the traces' chunks are not joined: trace_table fills the table from them (a join is 64 MB more
    # at 8000 frames x 200 particles, held with the chunks and then the table)
    return list(values), np.concatenate(regs, axis=0)


def _graph(
    stack: Any,
    kernel: _Kernel,
    reg: _BlockRegistration,
    starts: np.ndarray,
    stops: np.ndarray,
    filler: _TraceTableFiller | None = None,
):
    """``(graph, output key, name of the trace tasks)`` of the pass (a plain task graph on the
    stack's: built in milliseconds, where dask.delayed calls cost ~1 ms each). With ``filler``,
    each chunk's values are filled into it by a task of their own (and not collected)."""
    from dask.highlevelgraph import HighLevelGraph

    arr = stack.rechunk({1: -1, 2: -1}) if (len(stack.chunks[1]) > 1 or len(stack.chunks[2]) > 1) else stack
    parts = [k for k in _flat_keys(arr.__dask_keys__())]
    bounds = np.concatenate([[0], np.cumsum(arr.chunks[0])]).astype(np.int64)
    t_block = block_centres(starts, stops)  # as drift_table places them
    token = uuid.uuid4().hex
    name = f"{TRACE_KEY_PREFIX}stream-{token}"
    k_reg, k_tr = f"plscope-drift-kernel-{token}", f"plscope-trace-kernel-{token}"
    dsk: dict[Any, Any] = {k_reg: reg, k_tr: kernel}
    pieces: list[list[Any]] = [[] for _ in starts]
    for i, part in enumerate(parts):
        a, z = int(bounds[i]), int(bounds[i + 1])
        for blk in np.flatnonzero((starts < z) & (stops > a)).tolist():
            lo, hi = max(int(starts[blk]), a), min(int(stops[blk]), z)
            piece = (f"plscope-block-sum-{token}", blk, i)
            dsk[piece] = (_partial_sum, part, lo - a, hi - a)
            pieces[blk].append(piece)
    regs = [(f"plscope-drift-block-{token}", b) for b in range(starts.size)]
    for b, reg_key in enumerate(regs):
        dsk[reg_key] = (_register_sum, k_reg, int(stops[b] - starts[b]), *pieces[b])
    values = [(name, i) for i in range(len(parts))]
    needs = [needed_blocks(t_block, int(bounds[i]), int(bounds[i + 1]) - 1) for i in range(len(parts))]
    for i, part in enumerate(parts):
        dsk[values[i]] = (
            _chunk_traces,
            k_tr,
            part,
            int(bounds[i]),
            t_block,
            needs[i],
            *[regs[b] for b in needs[i]],
        )
    reads = _gated_reads(arr, parts, bounds, starts, stops, needs, values, token)
    if reads is not None:  # each chunk read only when the traces of an earlier one are done
        dsk.update(reads)
        renamed = {part: (f"plscope-chunk-{token}", i) for i, part in enumerate(parts)}
        dsk = {k: _renamed(v, renamed) for k, v in dsk.items()}
    if filler is not None:
        k_fill = f"plscope-trace-table-{token}"
        dsk[k_fill] = filler
        filled = [(f"plscope-trace-fill-{token}", i) for i in range(len(parts))]
        for i, key in enumerate(filled):
            dsk[key] = (_fill, k_fill, values[i], int(bounds[i]))
        values = filled
    out_key = f"plscope-extract-{token}"
    dsk[out_key] = (_collect, values, regs)
    deps = [arr] if reads is None else []  # gated: the stack's chunks are computed by the reads
    return HighLevelGraph.from_collections(out_key, dsk, dependencies=deps), out_key, name


#: chunks a read may run ahead of the traces it waits for (beyond the chunks those traces need)
READ_AHEAD_CHUNKS = 2


class _ChunkRead:
    """One chunk of the stack, computed (its own small graph, synchronously) when called."""

    def __init__(self, graph: dict, key: Any) -> None:
        self.graph, self.key = graph, key

    def __call__(self, *after: Any) -> np.ndarray:
        from dask.local import get_sync

        return get_sync(self.graph, self.key)


def _gated_reads(arr, parts, bounds, starts, stops, needs, values, token) -> dict | None:
    """Read tasks of the chunks, each after the traces of the last chunk whose traces need only
    chunks before it (less :data:`READ_AHEAD_CHUNKS`): the chunks held at once are bounded by the
    blocks' reach, not by how far reading (fast) runs ahead of the traces (slow), which grew with
    the movie (25 chunks of 8 MB held at 8000 frames). None where a chunk's graph is not its own."""
    from dask.optimization import cull

    graph = dict(arr.__dask_graph__())
    subs = [cull(graph, [part])[0] for part in parts]
    seen: set[Any] = set()
    for sub in subs:  # shared keys: only plain data (the array object), never a computation
        for key, value in sub.items():
            if key in seen and _is_computation(value):
                return None
            seen.add(key)
    # the last chunk whose traces (via the blocks they need) each chunk's traces wait for
    last_chunk = np.searchsorted(bounds, stops, side="left") - 1
    reach = np.array(
        [max([i, *(int(last_chunk[b]) for b in need)]) for i, need in enumerate(needs)], dtype=np.int64
    )
    reach = np.maximum.accumulate(reach) if reach.size else reach
    out: dict[Any, Any] = {}
    for i, part in enumerate(parts):
        j = int(np.searchsorted(reach, i - 1 - READ_AHEAD_CHUNKS, side="right")) - 1
        gate = [values[j]] if j >= 0 else []
        out[(f"plscope-chunk-{token}", i)] = (_ChunkRead(subs[i], part), *gate)
    return out


def _renamed(task: Any, names: dict) -> Any:
    """A tuple task with the stack's chunk keys among its arguments replaced by ``names``."""
    if isinstance(task, tuple) and task and callable(task[0]):
        return (task[0], *[names.get(a, a) if _is_key(a) else a for a in task[1:]])
    return task


def _is_computation(value: Any) -> bool:
    """A task of a dask graph (a tuple task, or one of dask's task objects), not plain data."""
    is_tuple_task = isinstance(value, tuple) and bool(value) and callable(value[0])
    return is_tuple_task or type(value).__module__.startswith("dask")


def _is_key(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) >= 2 and isinstance(value[0], str)


def _flat_keys(keys: Any) -> list[Any]:
    """The chunk keys of a dask array's nested key lists, in order (one spatial chunk per frame range)."""
    out: list[Any] = []
    stack = [keys]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out
