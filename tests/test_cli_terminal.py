"""The terminal (issue 15): defaults in every --help, progress bars only on a TTY, each warning once."""

from __future__ import annotations

import argparse
import logging
import sys

import pytest

from plscope import cli


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli._build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_with_a_value_shows_its_default(name):
    cmd = _subcommands()[name]
    fmt = cmd.formatter_class(prog=name)
    one_of = {a for g in cmd._mutually_exclusive_groups if g.required for a in g._group_actions}
    for action in cmd._actions:
        if not action.option_strings or action.nargs == 0 or action.required or action in one_of:
            continue  # flags, positionals and required options have no default to show
        if action.help is argparse.SUPPRESS:
            continue
        text = fmt._get_help_string(action) % {"default": action.default}
        assert "default" in text.lower(), f"plscope {name} {action.option_strings[0]}: {text!r}"


def test_simulate_and_batch_help_show_the_values(capsys):
    for argv in (["simulate", "--help"], ["batch", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
    text = " ".join(capsys.readouterr().out.split())
    assert "number of particles (default: 16; 2 with --spectral)" in text
    assert "(default: 90,110,130; 70,100,130 with --spectral)" in text
    assert "image size in pixels (default: 160x160)" in text
    assert "tcp://host:8786 (default: local)" in text
    assert "(default: only on a terminal)" in text


def _args(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"quiet": False, "progress": None} | kw)


def test_progress_only_on_a_terminal_unless_asked(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert cli._progress(_args()) is False
    assert cli._progress(_args(progress=True)) is True
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert cli._progress(_args()) is True
    assert cli._progress(_args(progress=False)) is False
    assert cli._progress(_args(quiet=True)) is False


SIM = [
    "simulate",
    "--particles",
    "1",
    "--fields",
    "130",
    "--cycles",
    "1",
    "--shape",
    "64x64",
    "--period",
    "4",
    "--clean",
]


def test_no_progress_bar_in_a_pipe_or_log_file_but_with_progress(tmp_path, capsys):
    """stderr not a terminal (a pipe, a log file, CI): no bar; --progress forces one."""
    assert cli.main([*SIM, str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "frame/s" not in err and "%|" not in err
    assert cli.main([*SIM, str(tmp_path / "b"), "--progress"]) == 0
    assert "simulating frames" in capsys.readouterr().err


def test_a_logged_warning_is_not_printed_again_from_the_summary(capsys):
    log = logging.getLogger("plscope.test")
    with cli._logging_to_stderr(0, False) as once:
        log.warning(
            "run/daq.csv channel 'camera_ttl': 3 surplus TTL edge(s) after the last of 9 frames ignored"
        )
        log.warning(
            "run/daq.csv channel 'camera_ttl': 3 surplus TTL edge(s) after the last of 9 frames ignored"
        )
        cli._print_warnings(
            argparse.Namespace(once=once),
            ["3 surplus TTL edge(s) after the last of 9 frames ignored", "another", "another"],
        )
    cap = capsys.readouterr()
    assert (cap.out + cap.err).count("surplus TTL") == 1
    assert cap.out.count("warning: another") == 1


def test_batch_frame_progress_has_no_absurd_first_rate():
    """A run first reports 3 of 5 chunks done, then 4 and 5 at once: no rate of chunks per microsecond."""
    import io

    from tqdm import tqdm

    from plscope.pipeline.batch import frame_progress_update

    out = io.StringIO()

    def bar(**kw):
        return tqdm(file=out, **kw)

    bars: dict = {}
    frame_progress_update(bars, "run0", 3, 5, bar_class=bar)
    first = bars["run0"].format_dict
    assert first["n"] == 3 and first["initial"] == 3
    assert "?chunk/s" in out.getvalue()  # no rate before a second report
    frame_progress_update(bars, "run0", 4, 5, bar_class=bar)
    assert bars["run0"].n == 4
    frame_progress_update(bars, "run0", 5, 5, bar_class=bar)
    assert bars == {}
    rates = [float(r) for r in __import__("re").findall(r"([\d.]+)chunk/s", out.getvalue())]
    assert all(r < 1e4 for r in rates), rates


def test_batch_run_reports_its_trace_chunks_through_the_progress_adapter(monkeypatch):
    """On a worker, the trace pass's chunks are counted by the one progress adapter and sent to the client."""
    import dask
    import dask.array as da
    import distributed
    import numpy as np
    import pandas as pd

    from plscope.pipeline.batch import _frame_progress_callback
    from plscope.tracking import extract_traces

    sent = []

    class FakeQueue:
        def __init__(self, name):
            assert name == "q"

        def put(self, item):
            sent.append(item)

    monkeypatch.setattr(distributed, "Queue", FakeQueue)
    stack = da.from_array(np.random.default_rng(0).normal(100.0, 1.0, (12, 24, 24)), chunks=(4, 24, 24))
    particles = pd.DataFrame({"particle_id": [0], "x_px": [12.0], "y_px": [12.0]})
    with dask.config.set(scheduler="synchronous"), _frame_progress_callback("run0", "q"):
        extract_traces(stack, particles, radius_px=2.0)
    assert sent and sent[-1] == ("run0", 3, 3)  # three chunks of four frames, the last always sent
