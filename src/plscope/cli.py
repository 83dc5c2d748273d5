"""The ``plscope`` command line.

The CLI only parses arguments, configures logging and reports; all work is
done by :mod:`plscope.pipeline` and :mod:`plscope.sim`. Expected failures
(bad input) end with one line on stderr and a non-zero exit code, never a
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import PlscopeError

logger = logging.getLogger("plscope")

#: exit codes
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


#: ANSI escape sequences (CSI/OSC/...) and every other control character but newline
_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROLS = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def clean_text(text: object, *, one_line: bool = False) -> str:
    """``text`` safe for a terminal: ANSI escapes and control characters removed.

    File names, DAQ headers and TOML values reach messages; they are data and
    must never move the cursor, recolour or retitle the user's terminal.
    Tabs become spaces; with ``one_line`` newlines do too.
    """
    out = _ESCAPES.sub("", str(text)).replace("\t", " ").replace("\r", " ")
    out = _CONTROLS.sub("\N{REPLACEMENT CHARACTER}", out)
    return out.replace("\n", " ") if one_line else out


def _print(*parts: object, file=None, one_line: bool = False, **kwargs) -> None:
    """print() through :func:`clean_text` (the CLI's only way to write a message)."""
    print(*(clean_text(p, one_line=one_line) for p in parts), file=file, **kwargs)


class _CleanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return clean_text(super().format(record))


def _float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _shape(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROWSxCOLS such as 160x160, got {text!r}") from None
    return rows, cols


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in ``--help``: ``(default: X)`` unless the help already says it.

    Flags (off unless given), required options and options whose absence has
    a meaning of its own (said in their help) are left alone.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "default" in text.lower()
            or any(action.default is v for v in (None, False, argparse.SUPPRESS))
            or action.required
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def _add_out(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder (created; plscope replaces only the files it wrote there)",
    )


def _add_progress(cmd: argparse.ArgumentParser) -> None:
    group = cmd.add_mutually_exclusive_group()
    group.add_argument(
        "--progress",
        dest="progress",
        action="store_const",
        const=True,
        default=None,
        help="progress bars on stderr even when it is not a terminal (default: only on a terminal)",
    )
    group.add_argument(
        "--no-progress", dest="progress", action="store_const", const=False, help="no progress bars"
    )


def _build_parser() -> argparse.ArgumentParser:
    # -v/-q are accepted before or after the command name
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output (-vv for debug)"
    )
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only errors")
    parser = argparse.ArgumentParser(
        prog="plscope",
        parents=[common],
        description="Single-particle PL microscopy under switched electric fields: "
        "sizes, polarization/recovery kinetics, switching efficiency, ion mobility.",
    )
    parser.add_argument("--version", action="version", version=f"plscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (text, description, add_arguments) in _COMMANDS.items():
        add_arguments(
            sub.add_parser(
                name, parents=[common], help=text, description=description, formatter_class=_HelpFormatter
            )
        )
    return parser


def _run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("run_dir", type=Path, help="run folder holding experiment.toml")
    _add_out(run)
    run.add_argument(
        "--config",
        type=Path,
        metavar="SETTINGS.toml",
        help="analysis settings (default: the defaults, see `plscope config --print-defaults`)",
    )
    _add_progress(run)


def _batch_arguments(bat: argparse.ArgumentParser) -> None:
    bat.add_argument("root", type=Path, help="folder to search for run folders")
    bat.add_argument("--out", type=Path, required=True, help="output folder")
    bat.add_argument(
        "--scheduler",
        default="local",
        metavar="local|slurm|ADDRESS",
        help="'local' (an embedded LocalCluster), 'slurm' (dask-jobqueue with the "
        "site's configuration) or the address of a running scheduler, e.g. tcp://host:8786",
    )
    bat.add_argument(
        "--workers", type=int, help="worker processes (local) or SLURM jobs (default: one per core, local)"
    )
    bat.add_argument("--force", action="store_true", help="redo runs whose inputs and settings are unchanged")
    bat.add_argument(
        "--config", type=Path, metavar="SETTINGS.toml", help="analysis settings (default: the defaults)"
    )
    _add_progress(bat)


def _calibrate_arguments(cal: argparse.ArgumentParser) -> None:
    cal.add_argument("lamp", type=Path, metavar="LAMP_CSV", help="lamp spectrum: pixel and counts columns")
    cal.add_argument(
        "--lines", type=Path, required=True, metavar="LINES_CSV", help="known line wavelengths (nm)"
    )
    cal.add_argument(
        "--out", type=Path, required=True, metavar="CALIB_JSON", help="calibration file to write"
    )
    cal.add_argument(
        "--guess",
        type=_float_list,
        metavar="C0,C1",
        help="rough dispersion: wavelength of pixel 0 and nm per pixel (write --guess=-5,0.1 "
        "for negative values; default: none, needed for long line lists)",
    )
    for what in ("pixel", "counts"):
        cal.add_argument(
            f"--{what}-column",
            help=f"name or 0-based index of the {what} column (default: found from the header)",
        )
    cal.add_argument(
        "--lines-column",
        help="name or 0-based index of the wavelength column in LINES_CSV (default: found from the header)",
    )
    cal.add_argument(
        "--min-intensity", type=float, help="ignore known lines weaker than this (default: none)"
    )
    cal.add_argument("--order", type=int, help="polynomial order (default: chosen from the data)")
    cal.add_argument("--max-order", type=int, default=3, help="highest order tried")
    cal.add_argument(
        "--saturation",
        default="auto",
        metavar="auto|none|COUNTS",
        help="saturation level: detected (auto), none, or a count value",
    )
    cal.add_argument("--min-snr", type=float, default=8.0, help="lamp peak detection threshold")


def _reanalyze_arguments(rea: argparse.ArgumentParser) -> None:
    rea.add_argument("out_dir", type=Path, help="an output folder written by `plscope run`")
    rea.add_argument(
        "--config",
        type=Path,
        metavar="SETTINGS.toml",
        help="settings to change; keys left out keep the values OUT_DIR was last analysed with "
        "(default: all kept, from OUT_DIR/provenance.json)",
    )
    rea.add_argument(
        "--out",
        type=Path,
        metavar="NEW_DIR",
        help="write the re-analysis into a new folder side by side (OUT_DIR is only read); "
        "default: replace plscope's files in OUT_DIR (files you added there are kept)",
    )


def _inspect_arguments(ins: argparse.ArgumentParser) -> None:
    ins.add_argument("file", type=Path, help="an image stack (TIFF, SPE, SIF, ND2, a glob) or a DAQ log")
    ins.add_argument(
        "--sample-rate-hz",
        type=float,
        default=None,
        help="DAQ log without a time column: its rate (default: none)",
    )
    ins.add_argument("--json", action="store_true", help="print the description as JSON")


def _init_arguments(ini: argparse.ArgumentParser) -> None:
    ini.add_argument("run_dir", type=Path, help="the run folder")


def _config_arguments(conf: argparse.ArgumentParser) -> None:
    group = conf.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--print-defaults",
        nargs="?",
        const="settings",
        choices=("settings", "experiment", "detector"),
        metavar="KIND",
        help="print the documented defaults: settings (default), experiment or detector",
    )
    group.add_argument("--check", type=Path, metavar="FILE", help="validate a configuration file")
    conf.add_argument(
        "--kind",
        choices=("settings", "experiment", "detector"),
        help="kind of the --check file (default: from its name; settings otherwise)",
    )


#: simulate's options: (flag, simulator field, type, metavar, help); defaults come from plscope.config.simulation
_SIM_OPTIONS: tuple[tuple[str, str, Any, str | None, str], ...] = (
    ("--particles", "n_particles", int, None, "number of particles"),
    ("--fields", "fields_kV_per_cm", _float_list, "E1,E2,...", "field levels in kV/cm, in the order applied"),
    ("--cycles", "cycles_per_level", int, None, "cycles per field level"),
    ("--period", "period_s", float, None, "square-wave period in s"),
    ("--frame-rate", "frame_rate_hz", float, None, "camera frame rate in Hz"),
    ("--mobility", "mobility_cm2_per_Vs", float, None, "mean ion mobility in cm^2/(V s)"),
    ("--temperature", "temperature_K", float, None, "temperature in K"),
    ("--shape", "image_shape", _shape, "ROWSxCOLS", "image size in pixels"),
    ("--size-range", "size_range_nm", _float_list, "MIN,MAX", "particle side lengths in nm"),
    ("--pixel-size", "pixel_size_nm", float, None, "pixel size in the sample plane, nm"),
    ("--psf-sigma", "psf_sigma_nm", float, None, "PSF standard deviation, nm"),
    ("--exposure", "exposure_s", float, None, "exposure time per frame, s"),
    ("--calibration", "calibration", None, None, "--spectral: calibrate from a lamp spectrum or give coefficients"),
    ("--shift-slope", "shift_slope_nm_per_kV_per_cm", float, "NM_PER_KV_PER_CM",
     "--spectral: peak shift per field, nm per kV/cm (negative: blue shift)"),
)  # fmt: skip


def _sim_fields() -> tuple[dict[str, Any], dict[str, Any]]:
    """The imaging and spectral simulators' fields (declared once in plscope.config.simulation)."""
    from .config._base import fields_of
    from .config.simulation import ImagingSimFields, SpectralSimFields

    return fields_of(ImagingSimFields), fields_of(SpectralSimFields)


def _nuisances(fields: dict[str, Any]) -> tuple[str, ...]:
    """The boolean nuisance switches among a simulator's fields."""
    return tuple(k for k, f in fields.items() if (f.description or "").startswith("nuisance:"))


def _shown(value: Any) -> str:
    """A default as it is typed on the command line (``90,110,130``, ``160x160``, ``2.56e-10``)."""
    if isinstance(value, tuple):
        sep = "x" if all(isinstance(v, int) for v in value) else ","
        return sep.join(_shown(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sim_default(name: str, imaging: dict[str, Any], spectral: dict[str, Any]) -> str:
    """``(default: …)`` of a simulator option: the imaging and the spectral default where they differ."""
    a = _shown(imaging[name].default) if name in imaging else None
    b = _shown(spectral[name].default) if name in spectral else None
    if a is None or b is None or a == b:
        return f"(default: {a or b})"
    return f"(default: {a}; {b} with --spectral)"


def _simulate_arguments(sim: argparse.ArgumentParser) -> None:
    imaging, spectral = _sim_fields()
    sim.add_argument("out_dir", type=Path, help="folder to write (created)")
    sim.add_argument("--seed", type=int, default=0, help="random seed")
    for flag, name, kind, metavar, text in _SIM_OPTIONS:
        extra: dict[str, Any] = {"choices": ("lamp", "coefficients")} if kind is None else {"type": kind}
        sim.add_argument(
            flag,
            dest=name,
            metavar=metavar or flag[2:].upper().replace("-", "_"),
            help=f"{text} {_sim_default(name, imaging, spectral)}",
            **extra,
        )
    sim.add_argument(
        "--spectral",
        action="store_true",
        help="write a spectral run (spectrograph frames, lamp spectrum, DAQ log) instead of a movie",
    )
    sim.add_argument(
        "--clean",
        action="store_true",
        help="switch every nuisance off (noise, drift, blinking, bleaching, DAQ quirks)",
    )
    for name in _nuisances(imaging):
        sim.add_argument(
            f"--no-{name.replace('_', '-')}",
            dest=f"no_{name}",
            action="store_true",
            help=f"switch the {name.replace('_', ' ')} off",
        )
    _add_progress(sim)
    sim.add_argument(
        "--detector", action="store_true", help="write a detector run folder instead (see simulate-detector)"
    )


def _detector_arguments(det: argparse.ArgumentParser) -> None:
    det.add_argument("run_dir", type=Path, help="run folder holding detector.toml")
    _add_out(det)


def _simulate_detector_arguments(sdet: argparse.ArgumentParser) -> None:
    sdet.add_argument("out_dir", type=Path, help="folder to write (created)")
    sdet.add_argument("--seed", type=int, default=0, help="random seed")


#: every sub-command: (one-line help, description, the function adding its arguments)
_COMMANDS: dict[str, tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = {
    "run": (
        "analyse one run folder",
        "Analyse one run folder (experiment.toml + movie + DAQ log) "
        "and write summary.json, particles.csv, kinetics.csv and report.html.",
        _run_arguments,
    ),
    "batch": (
        "analyse every run folder under a root, in parallel",
        "Find every run folder (a folder with experiment.toml or detector.toml) under ROOT, "
        "analyse them in parallel on a Dask cluster, and write OUT/<run>/ for each plus OUT/index.html "
        "and OUT/batch.csv. Exit 0 when all succeeded, 1 when any failed.",
        _batch_arguments,
    ),
    "calibrate": (
        "pixel -> wavelength calibration from a lamp spectrum",
        "Find the lamp peaks, match them to known lines, fit the dispersion "
        "polynomial and write {dispersion_nm, rms_nm, lines} as JSON.",
        _calibrate_arguments,
    ),
    "reanalyze": (
        "recompute kinetics and report from stored traces",
        "Recompute kinetics, summary and report of an output folder from the "
        "traces stored in it, without reading the stack, with the settings it was last analysed "
        "with unless --config changes some; provenance.json records what changed.",
        _reanalyze_arguments,
    ),
    "inspect": (
        "list what a movie or DAQ log holds",
        "Movie: shape, axes, pixel type, pixel size, timing metadata, wavelength axis "
        "(or the axes of a multi-dimensional file and the choice it needs). DAQ log: channels "
        "with their ranges and numbers of rising edges.",
        _inspect_arguments,
    ),
    "init": (
        "write a commented experiment.toml for a run folder",
        "Write RUN_DIR/experiment.toml from the files found there (movie, spectra, DAQ "
        "channels, lamp, calibration.json); values only you know are marked REQUIRED. "
        "An existing experiment.toml is never overwritten.",
        _init_arguments,
    ),
    "config": (
        "print or check configuration files",
        "Print the documented defaults or check a configuration file: analysis "
        "settings, experiment.toml or detector.toml (told by the file name, or --kind). "
        "Generated from the models in plscope.config; see docs/configuration.md.",
        _config_arguments,
    ),
    "simulate": (
        "write a simulated run folder with ground truth",
        "Write a simulated imaging run folder (movie.tif, daq.csv, "
        "experiment.toml) plus ground_truth.json, with the physics of "
        "Chem. Sci. 2025, 16, 22417 and the nuisances of real rigs.",
        _simulate_arguments,
    ),
    "detector": (
        "figures of merit of a photodetector run folder (detector.toml + electrometer logs)",
        "Analyse a detector run folder (detector.toml + current logs and sweeps) and write "
        "detector_summary.json, pyro_pulses.csv, xray_dose_rates.csv, provenance.json and report.html.",
        _detector_arguments,
    ),
    "simulate-detector": (
        "write a simulated detector run folder with ground truth",
        "Write a simulated detector run folder (CY-I of J. Mater. Chem. C 2025, 13, 12685 by "
        "default): pyroelectric pulses, X-ray on/off records at five dose rates, I-V and Hecht sweeps, "
        "dark drift and stability records, detector.toml and ground_truth.json.",
        _simulate_detector_arguments,
    ),
}


class _Once(logging.Filter):
    """Lets each message through once per command and remembers what was said."""

    def __init__(self) -> None:
        super().__init__()
        self.said: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in self.said:
            return False
        self.said.append(text)
        return True

    def told(self, warning: str) -> bool:
        """Whether a log message already said ``warning`` (a summary's warning, often with its file prefixed)."""
        return any(warning in text for text in self.said)


@contextlib.contextmanager
def _logging_to_stderr(verbose: int, quiet: bool):
    """Send plscope's log records to stderr for the duration of a command, each message once.

    Yields the :class:`_Once` filter, so that a command does not print again
    a warning that was already logged. The previous configuration is
    restored afterwards, so that ``main`` can be called repeatedly (tests,
    notebooks) without stacking handlers.
    """
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_CleanFormatter("plscope: %(levelname)s: %(message)s"))
    once = _Once()
    handler.addFilter(once)
    root = logging.getLogger("plscope")
    saved = (root.level, root.propagate)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    try:
        yield once
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        root.propagate = saved[1]


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars: asked for (--progress / --no-progress), else only when stderr is a terminal."""
    if args.quiet:
        return bool(args.progress)
    if args.progress is not None:
        return bool(args.progress)
    return sys.stderr.isatty()


def _print_warnings(args: argparse.Namespace, warnings: Sequence[str]) -> None:
    """A result's warnings, except those already logged while it was computed (each warning once)."""
    once: _Once | None = getattr(args, "once", None)
    for w in dict.fromkeys(warnings):
        if once is None or not once.told(w):
            _print(f"  warning: {w}", one_line=True)


def _cmd_run(args: argparse.Namespace) -> int:
    from .api import analyze

    t0 = time.perf_counter()
    result = analyze(
        args.run_dir,
        settings=args.config,
        out=args.out,
        progress=_progress(args),
        command_line=sys.argv,
    )
    s = result.summary
    if not args.quiet:
        shifts = s.get("spectral_shift_nm") or []
        mu = s.get("ion_mobility_cm2_per_Vs")
        d = s.get("diffusion_coefficient_cm2_per_s")
        _print(
            f"{args.run_dir}: {s['n_particles']} particles, {s['n_frames']} frames, "
            f"fields {', '.join(f'{e:.1f}' for e in s['fields_kV_per_cm']) or 'none'} kV/cm"
        )
        if mu is not None:
            _print(
                f"  ion mobility {mu:.3g} ± {s.get('ion_mobility_std_cm2_per_Vs') or float('nan'):.2g} cm^2/(V s)"
                f", D = {d:.3g} cm^2/s"
            )
        if shifts:
            text = ", ".join(f"{e['field_kV_per_cm']:.0f} kV/cm: {e['shift_nm']:+.3f} nm" for e in shifts)
            slope = s.get("spectral_shift_slope_nm_per_kV_per_cm")
            _print(
                f"  spectral shift {text}"
                + (f"; slope {slope:.4g} nm per kV/cm" if slope is not None else "")
            )
        _print_qc(s)
        _print_warnings(args, s.get("warnings", []))
        _print(
            f"  wrote {args.out}/ (summary.json, particles.csv, kinetics.csv, report.html) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
    return EXIT_OK


def _cmd_batch(args: argparse.Namespace) -> int:
    from .config import load_settings
    from .pipeline.batch import run_batch

    settings = load_settings(args.config)

    def report(outcome) -> None:
        if outcome.status == "failed":
            _print(f"FAILED {outcome.run}: {outcome.reason}", file=sys.stderr, one_line=True)
        elif outcome.status == "skipped" and not args.quiet:
            _print(f"skipped {outcome.run}: {outcome.reason}")

    result = run_batch(
        args.root,
        args.out,
        scheduler=args.scheduler,
        workers=args.workers,
        force=args.force,
        settings=settings,
        progress=_progress(args),
        on_outcome=report,
        command_line=sys.argv,
    )
    if not args.quiet:
        width = max(len(o.run) for o in result.outcomes)
        _print(f"\n{'run':<{width}}  status   particles  mobility (cm^2/Vs)  time (s)")
        for o in result.outcomes:
            mu = o.numbers.get("ion_mobility_cm2_per_Vs")
            _print(
                f"{o.run:<{width}}  {o.status:<7}  {o.numbers.get('n_particles') or '-':>9}  "
                f"{(f'{mu:.3g}' if mu is not None else '-'):>18}  {o.seconds:8.1f}"
            )
        counts = {s: sum(o.status == s for o in result.outcomes) for s in ("ok", "skipped", "failed")}
        _print(
            f"{counts['ok']} analysed, {counts['skipped']} unchanged, {counts['failed']} failed; "
            f"index: {args.out / 'index.html'}"
        )
    return EXIT_FAILED if result.n_failed else EXIT_OK


def _column(text: str | None) -> int | str | None:
    return int(text) if text is not None and text.isdigit() else text


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .pipeline.spectra import calibrate_command

    if args.guess is not None and len(args.guess) < 2:
        raise PlscopeError("--guess needs two numbers: C0 (nm at pixel 0), C1 (nm per pixel)")
    sat = args.saturation.lower()
    saturation: float | str | None
    if sat == "auto":
        saturation = "auto"
    elif sat == "none":
        saturation = None
    else:
        try:
            saturation = float(args.saturation)
        except ValueError:
            raise PlscopeError(
                f"--saturation: expected auto, none or a number, got {args.saturation!r}"
            ) from None
    rec = calibrate_command(
        args.lamp,
        args.lines,
        args.out,
        guess=args.guess,
        pixel_column=_column(args.pixel_column),
        counts_column=_column(args.counts_column),
        lines_column=_column(args.lines_column),
        min_intensity=args.min_intensity,
        order=args.order,
        max_order=args.max_order,
        saturation_counts=saturation,
        min_snr=args.min_snr,
    )
    if not args.quiet:
        coefs = ", ".join(f"{c:.6g}" for c in rec["dispersion_nm"])
        _print(
            f"{args.lamp}: order {rec.get('order', len(rec['dispersion_nm']) - 1)}, "
            f"{rec.get('n_lines', len(rec.get('lines', [])))} lines, rms {rec['rms_nm']:.4f} nm; "
            f"dispersion_nm = [{coefs}] -> {args.out}"
        )
        _print_warnings(args, rec.get("warnings", []))
    return EXIT_OK


def _cmd_reanalyze(args: argparse.Namespace) -> int:
    from .api import reanalyze

    dest = args.out if args.out is not None else args.out_dir
    result = reanalyze(args.out_dir, settings=args.config, out=dest, command_line=sys.argv)
    changes = result.changes or {"settings": {}, "summary": {}}
    if not args.quiet:
        if args.out is not None:
            _print(f"{args.out_dir}: re-analysis written to {args.out}")
        if not changes["settings"] and not changes["summary"]:
            _print(f"{args.out_dir}: re-analysed; settings and numbers unchanged")
        else:
            _print(
                f"{args.out_dir}: re-analysed; {len(changes['settings'])} setting(s) and "
                f"{len(changes['summary'])} summary value(s) changed (recorded in provenance.json)"
            )
            for key, (old, new) in changes["settings"].items():
                _print(f"  setting {key}: {old!r} -> {new!r}")
            for key, (old, new) in changes["summary"].items():
                if not isinstance(old, (list, dict)):
                    _print(f"  {key}: {old!r} -> {new!r}")
        _print_qc(result.summary)
    return EXIT_OK


def _print_qc(summary: dict) -> None:
    """The run's QC verdict (computed by the analysis, summary.json 'qc'), when it warns."""
    qc = summary.get("qc") or {}
    if qc.get("status") == "warn":
        _print("  QC: warn -- these numbers may be unreliable:")
        for reason in qc.get("reasons", []):
            _print(f"    - {reason}")


def _cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from .io.inspect import describe_file, format_description

    desc = describe_file(args.file, sample_rate_hz=args.sample_rate_hz)
    if args.json:
        print(json.dumps(desc, indent=2))
    else:
        print("\n".join(format_description(desc)))
    return EXIT_OK


def _cmd_init(args: argparse.Namespace) -> int:
    from .pipeline.init_folder import init_run_folder

    path, todo = init_run_folder(args.run_dir)
    if not args.quiet:
        print(f"wrote {path}")
        for item in todo:
            print(f"  to fill in: {item}")
    return EXIT_OK


def _cmd_config(args: argparse.Namespace) -> int:
    from .config.check import check_file, defaults_text

    if args.print_defaults:
        sys.stdout.write(defaults_text(args.print_defaults))
        return EXIT_OK
    kind, _warnings = check_file(args.check, args.kind)  # warnings are logged to stderr
    if not args.quiet:
        _print(f"{args.check}: valid {kind} file")
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .api import simulate

    if args.detector:
        return _cmd_simulate_detector(args)
    imaging, spectral = _sim_fields()
    fields = spectral if args.spectral else imaging
    changes = {name: getattr(args, name) for _, name, *_ in _SIM_OPTIONS}
    for name, value in changes.items():
        if value is not None and name not in fields:
            flag = next(f for f, n, *_ in _SIM_OPTIONS if n == name)
            raise PlscopeError(
                f"{flag} does not apply to --spectral runs"
                if args.spectral
                else f"{flag} goes with --spectral"
            )
    for name in _nuisances(imaging):
        if getattr(args, f"no_{name}"):
            if name not in _nuisances(fields):
                raise PlscopeError(f"--no-{name.replace('_', '-')} does not apply to --spectral runs")
            changes[name] = False
    t0 = time.perf_counter()
    truth = simulate(
        args.out_dir,
        seed=args.seed,
        spectral=args.spectral,
        clean=args.clean,
        progress=_progress(args),
        **{k: v for k, v in changes.items() if v is not None},
    )
    if not args.quiet:
        if args.spectral:
            what = (
                f"spectral run {args.out_dir}/ ({truth['n_frames']} frames, {truth['n_particles']} particles, "
                f"fields {truth['fields_kV_per_cm']} kV/cm, shift slope "
                f"{truth['spectral_shift_slope_nm_per_kV_per_cm']:.4g} nm per kV/cm)"
            )
        else:
            what = (
                f"run {args.out_dir}/ ({truth['n_frames']} frames, {len(truth['particles'])} particles, "
                f"fields {truth['fields_kV_per_cm']} kV/cm, "
                f"mu = {truth['mobility_mean_cm2_per_Vs']:.3g} cm^2/(V s))"
            )
        _print(f"wrote simulated {what} in {time.perf_counter() - t0:.1f} s")
    return EXIT_OK


def _cmd_detector(args: argparse.Namespace) -> int:
    from .pipeline.detector import run_detector

    result = run_detector(args.run_dir, args.out, command_line=sys.argv)
    if not args.quiet:
        s = result.summary
        for key in ("pyroelectric_coefficient_uC_per_cm2_K", "sensitivity_uC_per_Gy_cm2",
                    "detection_limit_nGy_per_s", "mu_tau_cm2_per_V", "resistivity_ohm_cm"):  # fmt: skip
            if s.get(key) is not None:
                _print(f"  {key} = {s[key]:.4g}")
        _print_warnings(args, result.warnings)
        _print(f"{args.run_dir}: wrote {args.out}/ (detector_summary.json, report.html, tables)")
    return EXIT_OK


def _cmd_simulate_detector(args: argparse.Namespace) -> int:
    from .pipeline.output import AtomicOutputDir
    from .sim.detector import simulate_detector_run

    if args.out_dir.exists() and (not args.out_dir.is_dir() or any(args.out_dir.iterdir())):
        raise PlscopeError(f"{args.out_dir}: exists and is not an empty folder; choose another folder")
    with AtomicOutputDir(args.out_dir, kind="simulate") as tmp:
        truth = simulate_detector_run(tmp, seed=args.seed)
    if not args.quiet:
        _print(
            f"wrote simulated detector run {args.out_dir}/ (P_e {truth['pyroelectric_coefficient_uC_per_cm2_K']:.3g} "
            f"uC/cm2/K, sensitivity {truth['sensitivity_uC_per_Gy_cm2']:.4g} uC/Gy/cm2, detection limit "
            f"{truth['detection_limit_nGy_per_s']:.4g} nGy/s)"
        )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``plscope`` console script.

    Returns
    -------
    int
        0 on success, 1 when some work failed, 2 on bad input or usage.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    args.verbose = getattr(args, "verbose", 0)
    args.quiet = getattr(args, "quiet", False)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    commands = {
        "run": _cmd_run,
        "simulate": _cmd_simulate,
        "batch": _cmd_batch,
        "reanalyze": _cmd_reanalyze,
        "calibrate": _cmd_calibrate,
        "config": _cmd_config,
        "inspect": _cmd_inspect,
        "init": _cmd_init,
        "detector": _cmd_detector,
        "simulate-detector": _cmd_simulate_detector,
    }
    previous = _terminate_as_interrupt()
    try:
        with _logging_to_stderr(args.verbose, args.quiet) as once:
            args.once = once
            return commands[args.command](args)
    except PlscopeError as exc:
        _print(f"plscope: error: {exc}", file=sys.stderr, one_line=True)
        return EXIT_BAD_INPUT
    except RecursionError:  # a file nested beyond any reader's depth (a hostile TOML or JSON)
        _print("plscope: error: an input file is nested too deeply to be read", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        if args.command == "batch":
            _print(
                "plscope: interrupted; finished runs were kept and the index lists the runs not reached",
                file=sys.stderr,
            )
        else:
            _print("plscope: interrupted; no partial results were kept", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame):  # pragma: no cover - exercised in a subprocess test
    raise KeyboardInterrupt


def _terminate_as_interrupt():
    """Treat SIGTERM like Ctrl-C, so temporary outputs are cleaned up (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
