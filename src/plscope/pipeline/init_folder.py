"""``plscope init RUN_DIR``: a commented experiment.toml from the files found in a folder.

The folder's files are classified by name and content (:mod:`plscope.io.inspect`):
image stacks (a numbered series becomes one glob), spectra (a file with a
wavelength axis, frames of a few rows, or "spec" in the name), a DAQ log
(its camera TTL is the channel with the most rising edges, the voltage a
channel named like one, or the widest of the others), a lamp spectrum and a
``calibration.json``. What the files cannot say (field amplifier gain,
electrode gap, a missing pixel size, the lamp's lines) is written as
commented lines marked ``REQUIRED``. An existing experiment.toml is never
overwritten.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .._files import atomic_write_text
from ..config.experiment import EXPERIMENT_FILE
from ..errors import PlscopeError, RunFolderError
from ..io.inspect import DAQ_SUFFIXES, MOVIE_SUFFIXES, describe_daq, describe_movie
from ..io.stack import _natural_key

__all__ = ["init_run_folder", "experiment_template"]

_LAMP = re.compile(r"lamp|neon|argon|mercury|\bne[_\-.]|\bar[_\-.]|\bhg[_\-.]", re.I)
_TTL = re.compile(r"ttl|camera|cam|trig|expos|frame", re.I)
_VOLT = re.compile(r"volt|fg|field|ao|bias|amp", re.I)


def _series(names: list[str]) -> list[str]:
    """File names, numbered series of one stem replaced by a glob (``movie_*.tif``)."""
    groups: dict[str, list[str]] = {}
    for n in sorted(names, key=_natural_key):
        key = re.sub(r"\d+(?=[^\d]*$)", "*", n, count=1) if re.search(r"\d", n) else n
        groups.setdefault(key, []).append(n)
    return [k if len(v) > 1 else v[0] for k, v in groups.items()]


def _is_spectra(name: str, d: dict[str, Any]) -> bool:
    if "spec" in name.lower():
        return True
    return bool(d.get("readable") and (d.get("wavelength_nm") or d["shape"][1] <= 4))


def _pick_channels(daq: dict[str, Any]) -> tuple[str | None, str | None]:
    chans = daq["channels"]
    if not chans:
        return None, None
    ranked = sorted(chans, key=lambda n: (-chans[n]["rising_edges"], not _TTL.search(n)))
    ttl = ranked[0] if chans[ranked[0]]["rising_edges"] > 0 else None
    rest = [n for n in chans if n != ttl]
    named = [n for n in rest if _VOLT.search(n)]
    span = {n: (chans[n]["max"] or 0.0) - (chans[n]["min"] or 0.0) for n in rest}
    volt = named[0] if named else (max(rest, key=lambda n: span[n]) if rest else None)
    return ttl, volt


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _stack_lines(section: str, name: str, d: dict[str, Any], has_daq: bool) -> list[str]:
    out = [f"[{section}]", f"path = {_q(name)}"]
    if not d.get("readable"):
        sizes = " ".join(f"{k}={v}" for k, v in d["sizes"].items())
        out.append(f"# the file has axes {''.join(d['sizes'])} ({sizes}); plscope reads one (t, y, x) movie:")
        if d.get("channel_names"):
            out.append("# channels: " + ", ".join(f"{i} = '{n}'" for i, n in enumerate(d["channel_names"])))
        for key, axis in (("channel", "C"), ("z", "Z"), ("position", "P")):
            if d["sizes"].get(axis, 1) > 1:
                out.append(f"# {key} = 0   # REQUIRED: 0..{d['sizes'][axis] - 1}")
        return out
    t, h, w = d["shape"]
    out[-1] += f"   # {d['format']}: {t} frame(s) of {h} x {w} px, {d['dtype']}"
    if section == "movie":
        if d["pixel_size_nm"]:
            out.append(f"# pixel_size_nm = {d['pixel_size_nm']:.6g}   # from the file's metadata")
        else:
            out.append(
                "# pixel_size_nm = ...   # REQUIRED: not in the file's metadata (nm in the sample plane)"
            )
    if not has_daq:
        if d["frame_time_stamps"] or d["frame_interval_s"]:
            how = "time stamps" if d["frame_time_stamps"] else f"cycle time {d['frame_interval_s']:.6g} s"
            out.append(f"# frame_rate_hz = ...   # optional: frames are timed by the file's {how}")
        else:
            out.append("# frame_rate_hz = ...   # the file records no timing: frames are timed by index")
    return out


def experiment_template(run_dir: str | os.PathLike) -> tuple[str, list[str]]:
    """The text of a commented experiment.toml for ``run_dir``, and what the user must still fill in.

    Raises
    ------
    RunFolderError
        The folder does not exist or holds no image stack.
    """
    folder = Path(run_dir)
    if not folder.is_dir():
        raise RunFolderError(folder, "run folder does not exist or is not a folder")
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    movies = [n for n in files if n.lower().endswith(MOVIE_SUFFIXES)]
    calib = [n for n in files if n.lower().endswith(".json") and "calib" in n.lower()]
    lamps = [n for n in files if n.lower().endswith(DAQ_SUFFIXES) and _LAMP.search(n)]
    daqs = [n for n in files if n.lower().endswith(DAQ_SUFFIXES) and n not in lamps]
    if not movies:
        raise RunFolderError(folder, f"holds no image stack ({', '.join(MOVIE_SUFFIXES)}) to describe")
    todo: list[str] = []
    stacks = []
    for name in _series(movies):
        d = describe_movie(folder / name)
        stacks.append((name, d, "spectra" if _is_spectra(name, d) else "movie"))
    daq = None
    for name in daqs:
        try:
            daq = (name, describe_daq(folder / name))
            break
        except PlscopeError:
            continue
    lines = [
        "# experiment.toml written by `plscope init` from the files found here; check every value.",
        "# Lines marked REQUIRED need a value only you know. Keys: docs/run-folder.md",
        "schema = 1",
        "",
        "[sample]",
        f"name = {_q(folder.resolve().name)}",
        "temperature_K = 296.15   # used by the Einstein relation D = mu kB T / q",
    ]
    for section in ("movie", "spectra"):
        chosen = [s for s in stacks if s[2] == section]
        if not chosen:
            continue
        name, d, _ = chosen[0]
        lines += ["", *_stack_lines(section, name, d, daq is not None)]
        if len(chosen) > 1:
            lines.append("# other candidates: " + ", ".join(c[0] for c in chosen[1:]))
        if not d.get("readable"):
            todo.append(f"{section}: choose the channel / z plane of {name}")
        elif section == "movie" and not d["pixel_size_nm"]:
            todo.append("movie.pixel_size_nm (not in the file's metadata)")
        if section == "spectra":
            lines += _wavelength_lines(d, calib, lamps, todo)
    if daq is not None:
        lines += _daq_lines(*daq, todo)
    return "\n".join(lines) + "\n", todo


def _wavelength_lines(d: dict[str, Any], calib: list[str], lamps: list[str], todo: list[str]) -> list[str]:
    if calib:
        return [f"calibration = {_q(calib[0])}"]
    if d.get("wavelength_nm"):
        return ["# wavelength axis: from the file (no lamp or dispersion_nm needed)"]
    todo.append("spectra: a wavelength calibration (lamp lines or dispersion_nm)")
    if lamps:
        return [
            f"lamp = {_q(lamps[0])}",
            "lamp_lines_nm = []   # REQUIRED: wavelengths of the lamp lines in view",
        ]
    return ["# dispersion_nm = [c0, c1]   # REQUIRED: or lamp + lamp_lines_nm"]


def _daq_lines(name: str, dd: dict[str, Any], todo: list[str]) -> list[str]:
    ttl, volt = _pick_channels(dd)
    chans = ", ".join(f"{n} ({c['rising_edges']} edges)" for n, c in dd["channels"].items())
    lines = [
        "",
        "[daq]",
        f"path = {_q(name)}   # {dd['n_samples']} samples at {dd['sample_rate_hz'] or 0:.6g} Hz",
        f"# channels: {chans}",
        f"camera_ttl = {_q(ttl)}" if ttl else "# camera_ttl = ...   # REQUIRED: no channel has edges",
    ]
    if ttl is None:
        todo.append("daq.camera_ttl (no channel of the log has rising edges)")
    if volt:
        lines += [
            f"voltage = {_q(volt)}",
            "",
            "# [field]   # uncomment with the values of your set-up to get field quantities",
            "# amplifier_gain = ...     # REQUIRED: electrode volts per recorded volt",
            "# electrode_gap_um = ...   # REQUIRED: gap between the electrodes",
        ]
        todo.append("[field] amplifier_gain and electrode_gap_um, for field quantities")
    return lines


def init_run_folder(run_dir: str | os.PathLike) -> tuple[Path, list[str]]:
    """Write ``RUN_DIR/experiment.toml`` (never over an existing one).

    Returns
    -------
    path : Path
        The file written.
    todo : list of str
        What the user still has to fill in.

    Raises
    ------
    RunFolderError
        An experiment.toml exists already, the folder is missing or holds no stack.
    """
    target = Path(run_dir) / EXPERIMENT_FILE
    if target.exists():
        raise RunFolderError(target, "exists already; plscope init never overwrites it")
    text, todo = experiment_template(run_dir)
    if target.exists():  # appeared meanwhile
        raise RunFolderError(target, "exists already; plscope init never overwrites it")
    atomic_write_text(target, text)
    return target, todo
