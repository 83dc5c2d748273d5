"""Control characters never reach the terminal; errors are one line (issue 13, "content is data")."""

from __future__ import annotations

from plscope.cli import clean_text

from .helpers import last_line, run_cli

ESCAPES = "\x1b]0;PWNED\x07\x1b[31;1m\x1b[2J\x9b1m\x00"


def test_clean_text_strips_ansi_escapes_and_control_characters():
    assert clean_text(f"a{ESCAPES}b") == "a\ufffd1m\ufffdb"  # the C1 CSI and NUL become visible marks
    assert "\x1b" not in clean_text("\x1b[31mred\x1b[0m") and clean_text("\x1b[31mred\x1b[0m") == "red"
    assert clean_text("two\nlines\ttab", one_line=True) == "two lines tab"
    assert clean_text("keep\nnewline") == "keep\nnewline"


def test_ansi_escapes_from_a_daq_header_do_not_reach_the_terminal(tiny_run, tmp_path, capsys):
    daq = tiny_run / "daq.csv"
    header, rest = daq.read_text().split("\n", 1)
    daq.write_text(header.replace("camera_ttl", f"cam{ESCAPES}era") + "\n" + rest)
    code, out, err = run_cli(["run", tiny_run, "--out", tmp_path / "out", "--no-progress"], capsys)
    assert code == 2
    for ch in ("\x1b", "\x07", "\x9b", "\x00"):
        assert ch not in err and ch not in out
    assert last_line(err).startswith(f"plscope: error: {daq}")
    assert len(err.strip().splitlines()) == 1


def test_ansi_escapes_in_a_path_argument_do_not_reach_the_terminal(tmp_path, capsys):
    bad = tmp_path / f"run{ESCAPES.replace(chr(0), '')}"
    code, _, err = run_cli(["run", bad, "--out", tmp_path / "out", "--no-progress"], capsys)
    assert code == 2 and "\x1b" not in err and "\x07" not in err
