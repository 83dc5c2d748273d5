"""``plscope batch``: every run folder under a root, in parallel, through Dask.

Runs are independent tasks on a :mod:`dask.distributed` cluster: an embedded
:class:`~distributed.LocalCluster` by default, an existing scheduler
(``tcp://host:8786``), or SLURM through dask-jobqueue. Each task writes its
own output folder atomically and returns a small status record; a failing
run never stops the others. Runs whose inputs (SHA-256) and settings are
unchanged since their last successful analysis are skipped.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import json
import logging
import os
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import pandas as pd

from .._files import atomic_write_text
from .._progress import dask_task_counter
from ..config.settings import AnalysisSettings, BatchOptions
from ..errors import PlscopeError, RunFolderError
from ..report.batch_index import render_index
from ..tracking.traces import TRACE_KEY_PREFIX
from .output import _FolderLock, _write_marker, check_not_input, claim_folder, is_complete_output, read_marker

logger = logging.getLogger(__name__)

#: one row of batch.csv / index.html (numbers unrounded, in the units their names say)
BATCH_COLUMNS = (
    "run",
    "sample",
    "kind",
    "status",
    "qc_status",
    "qc_reasons",
    "reason",
    "seconds",
    "n_particles",
    "fields_kV_per_cm",
    "ion_mobility_cm2_per_Vs",
    "ion_mobility_std_cm2_per_Vs",
    "ion_mobility_ci95_low",
    "ion_mobility_ci95_high",
    "diffusion_coefficient_cm2_per_s",
    "diffusion_ci95_low",
    "diffusion_ci95_high",
    "tau_size_slope_s_per_nm",
    "tau_size_slope_err_s_per_nm",
    "spectral_shift_slope_nm_per_kV_per_cm",
    "spectral_shift_slope_err_nm_per_kV_per_cm",
    "pyroelectric_coefficient_uC_per_cm2_K",
    "pyroelectric_coefficient_std_uC_per_cm2_K",
    "sensitivity_uC_per_Gy_cm2",
    "sensitivity_se_uC_per_Gy_cm2",
    "detection_limit_nGy_per_s",
    "detection_limit_se_nGy_per_s",
    "n_warnings",
    "run_dir",
    "out_dir",
)
#: separator of the QC reasons in one batch.csv cell
QC_SEPARATOR = " | "


@dataclass
class RunOutcome:
    """Status of one run of a batch."""

    run: str
    run_dir: str
    out_dir: str
    status: Literal["ok", "failed", "skipped", "not reached"]
    reason: str = ""
    seconds: float = 0.0
    numbers: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        row = {
            "run": self.run,
            "status": self.status,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
            "run_dir": self.run_dir,
            "out_dir": self.out_dir,
        }
        for key in BATCH_COLUMNS:
            if key not in row:
                row[key] = self.numbers.get(key)
        return row


@dataclass
class BatchResult:
    outcomes: list[RunOutcome]
    out_dir: Path

    @property
    def n_failed(self) -> int:
        return sum(o.status in ("failed", "not reached") for o in self.outcomes)


# --------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------


def discover_runs(
    root: str | os.PathLike, *, exclude: str | os.PathLike | None = None
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every run folder under ``root`` (experiment.toml or detector.toml), and the folders that failed.

    Hidden folders and anything under ``exclude`` (the batch output) are
    skipped. Symbolic links to folders are **not followed**: one that leads to
    a run folder is reported as failed (analyse its target directly), as is
    every folder that cannot be read (it may hold run folders). Nothing is
    skipped silently.

    Returns
    -------
    runs : list of Path
        Sorted run folders.
    problems : list of (Path, str)
        Folders that could not be searched or are not followed, with the reason.
    """
    root = Path(root)
    if not root.is_dir():
        raise RunFolderError(root, "batch root does not exist or is not a folder")
    excl = Path(exclude).resolve() if exclude is not None else None
    runs: list[Path] = []
    problems: list[tuple[Path, str]] = []

    def unreadable(exc: OSError) -> None:
        problems.append((Path(exc.filename), f"folder cannot be read: {exc.strerror or exc}; not searched"))

    for dirpath, dirs, files in os.walk(root, onerror=unreadable, followlinks=False):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirs):
            sub = here / d
            if d.startswith(".") or (excl is not None and sub.resolve() == excl):
                continue
            if sub.is_symlink():
                if any((sub / name).exists() for name in RUN_FILES):
                    problems.append(
                        (
                            sub,
                            f"symbolic link to {os.readlink(sub)}; not followed (analyse the target directly)",
                        )
                    )
                continue
            keep.append(d)
        dirs[:] = keep
        if any(name in files for name in RUN_FILES):
            runs.append(here)
    return sorted(runs), sorted(problems)


def find_runs(root: str | os.PathLike, *, exclude: str | os.PathLike | None = None) -> list[Path]:
    """Every folder under ``root`` (itself included) holding experiment.toml or detector.toml (see :func:`discover_runs`)."""
    return discover_runs(root, exclude=exclude)[0]


#: a folder holding one of these files is a run folder
RUN_FILES = ("experiment.toml", "detector.toml")
#: names in a batch output folder that belong to the batch itself
_RESERVED = ("index.html", "batch.csv")


def _escape_part(part: str) -> str:
    out = part.replace("%", "%25")
    if out.startswith("."):
        out = "%2E" + out[1:]
    if out.lower() in _RESERVED:
        out = f"%{ord(out[0]):02X}" + out[1:]
    return out


def run_names(runs: list[Path], root: Path) -> list[str]:
    """Unique, reversible output names of run folders.

    The folder name where it is unique; the path below ``root`` where names
    clash (``a/x``, ``b/x`` -> ``a%2Fx``, ``b%2Fx``; ``a__x`` stays
    ``a__x``). ``%`` is written ``%25``, a leading ``.`` ``%2E`` and the
    batch's own file names (index.html, batch.csv) get their first letter
    escaped, so ``urllib.parse.unquote(name)`` gives the folder name or the
    path below ``root`` back and no two runs share an output folder.
    """
    root = Path(root)
    leaves = [r.name if r != root else root.resolve().name for r in runs]
    clash = {n for n in leaves if leaves.count(n) > 1}
    names = []
    for r, leaf in zip(runs, leaves):
        if r == root:
            names.append("%2E" if len(runs) > 1 else _escape_part(leaf))
        elif leaf in clash:
            names.append("%2F".join(_escape_part(p) for p in r.relative_to(root).parts))
        else:
            names.append(_escape_part(leaf))
    assert len(set(names)) == len(names), "run names must be unique"
    return names


# --------------------------------------------------------------------------
# one run (executed on a worker)
# --------------------------------------------------------------------------


#: batch-row columns of the run's outcome (the others come from its summary)
_OUTCOME_COLUMNS = frozenset(("run", "run_dir", "out_dir", "status", "reason", "seconds"))


def _kind(summary: dict[str, Any]) -> str:
    """imaging, spectra (a spectra-only run: no [movie]) or detector."""
    if summary.get("kind") == "detector":
        return "detector"
    config = (summary.get("provenance") or {}).get("config") or {}
    return "spectra" if config.get("spectra") and not config.get("movie") else "imaging"


def _qc(summary: dict[str, Any]) -> tuple[str, list[str]]:
    """The run's own QC verdict (summary.json ``qc``, computed once by the analysis) and its reasons.

    Runs without a verdict of their own (detector runs) warn when their
    summary carries warnings, which are then the reasons.
    """
    qc = summary.get("qc")
    if isinstance(qc, dict) and qc.get("status") in ("ok", "warn"):
        return str(qc["status"]), [str(r) for r in qc.get("reasons") or []]
    warnings = [str(w) for w in summary.get("warnings") or []]
    return ("warn" if warnings else "ok"), warnings


def _interval(summary: dict[str, Any], key: str) -> tuple[Any, Any]:
    ci = summary.get(key)
    return (ci[0], ci[1]) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)


def summary_numbers(summary: dict[str, Any], *, folder_name: str = "") -> dict[str, Any]:
    """The batch row's numbers, QC verdict and sample name from a run's saved summary.

    Used for fresh runs and, from the summary saved earlier, for skipped ones
    (so a skipped row shows the earlier result's verdict). The sample name is
    ``[sample] name`` of the run's experiment.toml (detector.toml), else the
    folder name.
    """
    qc_status, reasons = _qc(summary)
    mu_lo, mu_hi = _interval(summary, "ion_mobility_ci95_cm2_per_Vs")
    d_lo, d_hi = _interval(summary, "diffusion_coefficient_ci95_cm2_per_s")
    fields = summary.get("fields_kV_per_cm") or []
    numbers = {
        "kind": _kind(summary),
        "sample": str(summary.get("sample") or "") or folder_name,
        "qc_status": qc_status,
        "qc_reasons": reasons,
        "fields_kV_per_cm": " ".join(f"{round(float(e), 1):g}" for e in fields),
        "ion_mobility_ci95_low": mu_lo,
        "ion_mobility_ci95_high": mu_hi,
        "diffusion_ci95_low": d_lo,
        "diffusion_ci95_high": d_hi,
        "n_warnings": len(summary.get("warnings") or []),
    }
    # every other batch column is a summary key, copied as it is
    copied = [k for k in BATCH_COLUMNS if k not in numbers and k not in _OUTCOME_COLUMNS]
    return {**numbers, **{k: summary.get(k) for k in copied}}


def _saved_numbers(summary_file: Path, folder_name: str) -> dict[str, Any]:
    """:func:`summary_numbers` of a run's saved summary (the index shows what the run wrote)."""
    return summary_numbers(json.loads(summary_file.read_text(encoding="utf-8")), folder_name=folder_name)


def up_to_date(run_dir: str | os.PathLike, out_dir: str | os.PathLike, settings: AnalysisSettings) -> bool:
    """Whether ``out_dir`` holds complete results of exactly these inputs and settings.

    Inputs are compared by SHA-256 (recomputed only for files whose size or
    modification time changed since they were hashed).
    """
    from .. import __version__
    from ..io import load_experiment
    from .provenance import input_files, sha256_file

    out_dir = Path(out_dir)
    try:
        if not is_complete_output(out_dir):
            return False
        prov = json.loads((out_dir / "provenance.json").read_text())
        if prov.get("settings_digest") != settings.digest():
            return False
        if prov.get("versions", {}).get("plscope") != __version__:
            return False
        stored = prov.get("inputs", {})
        files = [str(p) for p in input_files(load_experiment(run_dir))]
        if sorted(files) != sorted(stored):
            return False
        for f in files:
            st = os.stat(f)
            rec = stored[f]
            if st.st_size != rec.get("bytes"):
                return False
            if st.st_mtime_ns != rec.get("mtime_ns") and sha256_file(f) != rec.get("sha256"):
                return False
        return True
    except (OSError, ValueError, KeyError, PlscopeError):
        return False


class _QueueReporter:
    """``report(done, total)`` of :func:`~plscope._progress.dask_task_counter` into a distributed Queue.

    Runs on the worker: at most every 0.5 s (and at the end), as
    ``(run, done, total)``; the client shows one progress bar per running run.
    """

    def __init__(self, run: str, queue_name: str) -> None:
        self.run = run
        self.queue_name = queue_name
        self.queue: Any = None  # a distributed.Queue, made on first use
        self.last = 0.0
        self.broken = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.broken or (done < total and now - self.last < 0.5):
            return
        self.last = now
        try:
            if self.queue is None:
                from distributed import Queue

                self.queue = Queue(self.queue_name)
            self.queue.put((self.run, done, total))
        except Exception:  # progress display must never fail a run
            self.broken = True


def _frame_progress_callback(run: str, queue_name: str) -> Any:
    """A dask callback that reports the streaming trace pass of a run to a distributed Queue.

    The one progress adapter counts the trace chunks (the run's own graph
    uses the synchronous scheduler on the worker); a worker's terminal is not
    the user's, so the counts travel to the client through the queue.
    """
    return dask_task_counter(TRACE_KEY_PREFIX, _QueueReporter(run, queue_name))


def process_run(
    run_dir: str,
    out_dir: str,
    settings: dict[str, Any] | None = None,
    *,
    force: bool = False,
    name: str = "",
    command_line: list[str] | None = None,
    progress_queue: str | None = None,
) -> RunOutcome:
    """Analyse one run folder; never raises (the batch goes on).

    Runs inside a Dask worker: the run's own dask arrays are computed with the
    synchronous scheduler there (parallelism is across runs).
    """
    import dask

    from .imaging import run_imaging

    t0 = time.perf_counter()
    plog = logging.getLogger("plscope")
    if not plog.handlers:  # on a worker: warnings are recorded in the results, not printed
        plog.addHandler(logging.NullHandler())
        plog.propagate = False
    settings_obj = AnalysisSettings.from_dict(settings or {})
    outcome = RunOutcome(
        run=name or Path(run_dir).name, run_dir=str(run_dir), out_dir=str(out_dir), status="ok"
    )
    try:
        if (Path(run_dir) / "detector.toml").is_file() and not (Path(run_dir) / "experiment.toml").is_file():
            from .detector import SUMMARY_FILE, detector_up_to_date, run_detector

            if not force and detector_up_to_date(run_dir, out_dir):
                outcome.status = "skipped"
                outcome.reason = "inputs unchanged"
            else:
                run_detector(run_dir, out_dir, command_line=command_line)
            outcome.numbers = _saved_numbers(Path(out_dir) / SUMMARY_FILE, Path(run_dir).name)
        elif not force and up_to_date(run_dir, out_dir, settings_obj):
            outcome.status = "skipped"
            outcome.reason = "inputs and settings unchanged"
            outcome.numbers = _saved_numbers(Path(out_dir) / "summary.json", Path(run_dir).name)
        else:
            callback = (
                _frame_progress_callback(outcome.run, progress_queue)
                if progress_queue
                else contextlib.nullcontext()
            )
            with dask.config.set(scheduler="synchronous"), callback:
                run_imaging(
                    run_dir, out_dir, settings=settings_obj, progress=False, command_line=command_line
                )
            outcome.numbers = _saved_numbers(Path(out_dir) / "summary.json", Path(run_dir).name)
    except PlscopeError as exc:
        outcome.status = "failed"
        outcome.reason = str(exc)
    except Exception as exc:  # an internal error must not stop the batch
        outcome.status = "failed"
        outcome.reason = f"internal error: {type(exc).__name__}: {exc}"
        logger.error("run %s: internal error\n%s", run_dir, traceback.format_exc())
    outcome.seconds = time.perf_counter() - t0
    return outcome


# --------------------------------------------------------------------------
# the cluster
# --------------------------------------------------------------------------


class _ClusterContext:
    """Client of the requested Dask cluster (closed on exit if we started it)."""

    def __init__(self, scheduler: str, workers: int | None, n_runs: int):
        self.scheduler = scheduler
        self.workers = workers
        self.n_runs = n_runs
        self.cluster = None
        self.client = None

    def __enter__(self):
        try:
            return self._start()
        except PlscopeError:
            self.__exit__(None, None, None)
            raise
        except Exception as exc:  # any failure to start a cluster is the user's setup, not a bug
            self.__exit__(None, None, None)
            raise PlscopeError(
                f"the Dask cluster ({self.scheduler}) could not start: {type(exc).__name__}: {exc}; "
                "the previous index was kept"
            ) from None

    def _start(self):
        import dask
        from distributed import Client, LocalCluster

        # perf-notes: distributed's default malloc trim threshold slows per-frame kernels 2.5x
        dask.config.set(
            {
                "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 268435456,
                "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 33554432,
            }
        )
        sched = self.scheduler
        if sched == "local":
            n = self.workers or max(1, min(os.cpu_count() or 1, self.n_runs))
            self.cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: never collides with another cluster on 8787
                silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster)
        elif sched == "slurm":
            self.cluster = _slurm_cluster()
            _check_slurm_job(self.cluster)
            self.cluster.scale(jobs=self.workers or 1)
            self.client = Client(self.cluster)
        else:
            try:
                self.client = Client(sched, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise PlscopeError(f"cannot reach the Dask scheduler at {sched}: {exc}") from None
        logger.info("dask cluster: %s", self.client)
        return self.client

    def __exit__(self, *exc):
        with contextlib.suppress(Exception):
            if self.client is not None:
                self.client.close()
        with contextlib.suppress(Exception):
            if self.cluster is not None:
                self.cluster.close()
        return False


#: plscope's values for a SLURM job where the site's dask-jobqueue configuration leaves them unset
SLURM_DEFAULTS = {"cores": 1, "memory": "4GiB"}


def _slurm_cluster():
    """A dask-jobqueue ``SLURMCluster`` from the site's configuration (``jobqueue.slurm``).

    What the configuration leaves unset gets plscope's values: ``cores`` and
    ``memory`` per job from :data:`SLURM_DEFAULTS`, one single-threaded worker
    process per core (runs are the parallel unit; a run's own graph is
    synchronous, as on the local cluster) and the dashboard on any free port.
    Queue, account, walltime, interface, log directory, ... come from the
    configuration (``~/.config/dask/jobqueue.yaml`` or ``DASK_JOBQUEUE__SLURM__*``
    variables); the workers run this Python (``sys.executable``) unless it sets ``python``.
    """
    import dask

    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise PlscopeError(
            '--scheduler slurm needs dask-jobqueue (pip install "plscope[slurm]") '
            "and the site's jobqueue configuration"
        ) from None
    conf = dask.config.get("jobqueue.slurm", default={}) or {}
    kwargs: dict[str, Any] = {k: v for k, v in SLURM_DEFAULTS.items() if conf.get(k) is None}
    if conf.get("processes") is None:
        kwargs["processes"] = conf.get("cores") or SLURM_DEFAULTS["cores"]
    kwargs["scheduler_options"] = {"dashboard_address": ":0", **(conf.get("scheduler-options") or {})}
    return SLURMCluster(**kwargs)


def _check_slurm_job(cluster) -> None:
    """``sbatch --test-only`` the worker job: one Slurm would reject is an error now.

    dask-jobqueue submits jobs in the background and only logs a refused
    submission (say, more memory than any node has), which would leave the
    batch waiting for workers forever. Nothing is submitted here.
    """
    import shlex
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", prefix="plscope-slurm-", suffix=".sh") as fh:
        fh.write(cluster.job_script())
        fh.flush()
        cmd = [*shlex.split(cluster.job_cls.submit_command), "--test-only", fh.name]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise PlscopeError(
                f"--scheduler slurm: {cmd[0]} not found (not a Slurm login node?); the previous index was kept"
            ) from None
    if res.returncode != 0:
        why = "; ".join(line.strip() for line in (res.stderr or res.stdout).splitlines() if line.strip())
        raise PlscopeError(
            f"--scheduler slurm: Slurm refuses the worker job ({why or f'exit code {res.returncode}'}); "
            "check the jobqueue.slurm configuration (queue, memory, walltime, account); "
            "the previous index was kept"
        )


# --------------------------------------------------------------------------
# the batch
# --------------------------------------------------------------------------


_ADDRESS = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s/]+")


def check_scheduler(scheduler: str) -> None:
    """Refuse a --scheduler that is neither local, slurm nor an address (before anything is written)."""
    if scheduler in ("local", "slurm") or _ADDRESS.match(scheduler):
        return
    raise PlscopeError(
        f"--scheduler: expected local, slurm or a scheduler address such as tcp://host:8786, got {scheduler!r}"
    )


def run_batch(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    scheduler: str = "local",
    workers: int | None = None,
    force: bool = False,
    settings: AnalysisSettings | None = None,
    progress: bool = True,
    on_outcome: Callable[[RunOutcome], None] | None = None,
    command_line: list[str] | None = None,
) -> BatchResult:
    """Process every run folder under ``root`` into ``out/<run name>/``.

    Writes ``out/batch.csv`` and ``out/index.html`` (one row per run folder
    found, failed ones included). ``out`` must be empty, new or a batch
    output plscope wrote (its marker); its other files are never touched.
    After an interruption the index says so and lists the runs not reached;
    when the batch cannot start (bad scheduler, cluster fails) the previous
    index is kept.

    Parameters
    ----------
    scheduler : "local", "slurm" or a scheduler address ("tcp://host:8786")
    workers : int, optional
        Worker processes (local) or SLURM jobs (at least 1).
    force : bool
        Redo runs that are up to date.
    on_outcome : callable, optional
        Called with each :class:`RunOutcome` as it completes.
    """
    root = Path(root)
    out = Path(out)
    check_scheduler(scheduler)
    BatchOptions.check(workers=workers)  # 1 <= workers <= 1024: never a hang on -1
    runs, problems = discover_runs(root, exclude=out)
    if not runs and not problems:
        raise RunFolderError(
            root, "no run folder (a folder with experiment.toml or detector.toml) found under it"
        )
    check_not_input(out, runs)
    claim_folder(out, "batch", what="batch output folder")
    lock = _FolderLock(out, "batch output folder")
    lock.acquire()
    try:
        return _run_batch_locked(
            root, out, runs, problems, scheduler, workers, force, settings, progress, on_outcome, command_line
        )
    finally:
        lock.release()


def _run_batch_locked(
    root, out, runs, problems, scheduler, workers, force, settings, progress, on_outcome, command_line
) -> BatchResult:
    from distributed import as_completed
    from tqdm.auto import tqdm

    names = run_names(runs + [p for p, _ in problems], root)
    run_name = dict(zip(runs, names))
    settings = settings or AnalysisSettings()
    started = _dt.datetime.now(_dt.UTC)
    outcomes: list[RunOutcome] = [
        RunOutcome(run=n, run_dir=str(p), out_dir="", status="failed", reason=why)
        for (p, why), n in zip(problems, names[len(runs) :])
    ]
    for o in outcomes:
        if on_outcome is not None:
            on_outcome(o)
    logger.info("batch: %d run folder(s) under %s", len(runs), root)
    cluster_started = False
    complete = False
    try:
        with _ClusterContext(scheduler, workers, len(runs)) as client:
            cluster_started = True
            queue_name = f"plscope-progress-{uuid.uuid4().hex}" if progress else None
            stop = threading.Event()
            watcher = None
            if queue_name:
                watcher = threading.Thread(
                    target=_show_frame_progress, args=(client, queue_name, stop), daemon=True
                )
                watcher.start()
            futures = [
                client.submit(
                    process_run,
                    str(r),
                    str(out / run_name[r]),
                    settings.to_dict(),
                    force=force,
                    name=run_name[r],
                    command_line=command_line,
                    progress_queue=queue_name,
                    pure=False,
                    key=f"plscope-run-{i}-{uuid.uuid4().hex[:8]}",
                )
                for i, r in enumerate(runs)
            ]
            bar = tqdm(total=len(futures), desc="runs", unit="run", disable=not progress, position=0)
            try:
                for fut in as_completed(futures):
                    outcome = fut.result()
                    outcomes.append(outcome)
                    bar.update(1)
                    bar.set_postfix_str(f"{outcome.run}: {outcome.status}")
                    if on_outcome is not None:
                        on_outcome(outcome)
                complete = True
            finally:
                stop.set()
                if watcher is not None:
                    watcher.join(timeout=5)
                bar.close()
                for f in futures:
                    f.cancel()
    finally:
        if cluster_started:  # a batch that could not start keeps the previous index
            done = {o.run for o in outcomes}  # the cluster is closed here: no run commits any more
            for r in runs:
                if run_name[r] not in done:
                    outcomes.append(unfinished_outcome(r, run_name[r], out / run_name[r], started))
            order = {n: i for i, n in enumerate(names)}
            outcomes.sort(key=lambda o: order.get(o.run, 0))
            write_index(outcomes, out, started=started, root=root, interrupted=not complete)
    return BatchResult(outcomes=outcomes, out_dir=out)


def unfinished_outcome(run_dir: Path, name: str, out_dir: Path, since: _dt.datetime) -> RunOutcome:
    """The outcome of a run whose result the batch did not receive before it was interrupted.

    A worker may run its task to the end while the cluster closes: when ``out_dir`` holds a
    committed result whose provenance says it was started at or after ``since`` (the batch's start;
    provenance keeps whole seconds), the run finished after the interruption and is ``ok`` with the
    numbers it wrote, so that the index lists every result it leaves visible. Otherwise (nothing
    there, or an earlier batch's result) it is ``not reached``.
    """
    from .detector import SUMMARY_FILE as DETECTOR_SUMMARY

    summary = next((out_dir / f for f in ("summary.json", DETECTOR_SUMMARY) if (out_dir / f).is_file()), None)
    try:
        prov = json.loads((out_dir / "provenance.json").read_text(encoding="utf-8"))
        begun = _dt.datetime.fromisoformat(prov["started_utc"])
        late = summary is not None and begun >= since.replace(microsecond=0)
        numbers = _saved_numbers(summary, Path(run_dir).name) if late and summary is not None else {}
    except (OSError, ValueError, KeyError, TypeError):
        late = False
    if late:
        reason = "finished after the batch was interrupted"
        return RunOutcome(name, str(run_dir), str(out_dir), "ok", reason=reason, numbers=numbers)
    reason = "batch interrupted before this run finished"
    return RunOutcome(name, str(run_dir), str(out_dir), "not reached", reason=reason)


def frame_progress_update(bars: dict[str, Any], run: str, done: int, total: int, *, bar_class: Any) -> None:
    """Show that ``run`` has traced ``done`` of ``total`` chunks (its bar made on its first report).

    A bar starts at the count of its first report (``initial``): the chunks
    done before the client heard of them do not count towards the rate; and
    it is redrawn at most every 0.5 s (the workers' reporting interval), so
    reports that arrive together are never divided by microseconds. The
    first rate shown is never an absurd "119837.26chunk/s".
    """
    bar = bars.get(run)
    if bar is None:
        bar = bars[run] = bar_class(
            total=total,
            initial=done,
            desc=f"  {run} traces",
            unit="chunk",
            leave=False,
            position=len(bars) + 1,
            mininterval=0.5,
        )
    elif done > bar.n:
        bar.update(done - bar.n)
    if done >= total:
        bars.pop(run).close()


def _show_frame_progress(client, queue_name: str, stop: threading.Event) -> None:
    """Client thread: one progress bar per running run (chunks of frames traced)."""
    from distributed import Queue
    from tqdm.auto import tqdm

    bars: dict[str, Any] = {}
    try:
        queue = Queue(queue_name, client=client)
        while not stop.is_set():
            try:
                messages = queue.get(timeout=0.5, batch=True)
            except Exception:
                messages = []
            for run, done, total in messages:
                frame_progress_update(bars, run, done, total, bar_class=tqdm)
    except Exception as exc:  # the display is best effort
        logger.debug("frame progress display stopped: %s", exc)
    finally:
        for bar in bars.values():
            bar.close()


# --------------------------------------------------------------------------
# batch.csv and index.html
# --------------------------------------------------------------------------


def _atomic_write(path: Path, text: str) -> None:
    """The one atomic writer; a full disk is one line and keeps the previous file."""
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise RunFolderError(
            path, f"cannot be written: {exc.strerror or exc}; the previous one was kept"
        ) from None


#: first characters that make a spreadsheet read a cell as a formula (CSV injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A text cell that no spreadsheet evaluates: ``'`` before a leading ``= + - @``, tab or CR.

    Numbers are left alone (a negative number is not a formula).
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _display_name(name: str) -> str:
    """The folder name or path below the root that an output name stands for."""
    return unquote(name)


#: kinetics.csv columns the index's pooled τ_pol-against-size plot reads
_KINETICS_PLOT_COLUMNS = ("field_kV_per_cm", "size_nm", "tau_pol_s", "tau_pol_err_s", "used")


def _pooled_kinetics(outcomes: list[RunOutcome]) -> pd.DataFrame | None:
    """The saved kinetics tables of the imaging runs that have results, with a ``run`` column.

    A table that cannot be read is left out of the plot (its run's row and
    report are unaffected).
    """
    tables = []
    for o in outcomes:
        path = Path(o.out_dir) / "kinetics.csv" if o.out_dir else None
        if o.status not in ("ok", "skipped") or path is None or not path.is_file() or path.is_symlink():
            continue
        try:
            k = pd.read_csv(path, usecols=lambda c: c in _KINETICS_PLOT_COLUMNS)
        except (OSError, ValueError) as exc:
            logger.warning("%s: not in the index's plots: %s", path, exc)
            continue
        if len(k):
            tables.append(k.assign(run=_display_name(o.run)))
    return pd.concat(tables, ignore_index=True) if tables else None


def index_rows(outcomes: list[RunOutcome]) -> list[dict[str, Any]]:
    """The ``batch.csv`` rows of the outcomes (QC reasons as a list; ``shown``: the folder name)."""
    rows = []
    for o in outcomes:
        row = o.row()
        row["sample"] = row.get("sample") or _display_name(o.run)
        row["shown"] = _display_name(o.run)
        rows.append(row)
    return rows


def write_index(
    outcomes: list[RunOutcome], out: Path, *, started: _dt.datetime, root: Path, interrupted: bool = False
) -> None:
    """Write ``batch.csv`` and the self-contained ``index.html`` of a batch.

    The index is rendered by :func:`plscope.report.batch_index.render_index`
    from the rows and the runs' saved kinetics tables. Run names are data:
    links are relative and URL-encoded, text is HTML-escaped, CSV text cells
    cannot start a formula. Both files are written atomically.
    """
    rows = index_rows(outcomes)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(BATCH_COLUMNS), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        cells = dict(row, qc_reasons=QC_SEPARATOR.join(row.get("qc_reasons") or []))
        writer.writerow({k: csv_safe(v) for k, v in cells.items()})
    _atomic_write(out / "batch.csv", buf.getvalue())
    page = render_index(
        rows, root=str(root), started=started, interrupted=interrupted, kinetics=_pooled_kinetics(outcomes)
    )
    _atomic_write(out / "index.html", page)
    marker = read_marker(out)
    if marker is not None and marker.get("kind") == "batch":
        files = sorted(set(marker["files"]) | {"batch.csv", "index.html"})
        if files != marker["files"]:
            _write_marker(out, dict(marker, files=files, complete=True))
