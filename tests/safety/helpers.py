"""Helpers of the safety tests: tree snapshots and the command line in-process."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def snapshot(root: Path) -> dict[str, str]:
    """{relative path: sha256 (files), 'dir' (folders), 'link -> target' (symlinks)} of a tree."""
    snap = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                snap[rel] = f"link -> {os.readlink(p)}"
            elif p.is_dir():
                snap[rel] = "dir"
            else:
                snap[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return snap


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """`plscope ARGS` in-process: (exit code, stdout, stderr); asserts no traceback."""
    from plscope.cli import main

    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err, cap.err
    return code, cap.out, cap.err


def last_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert lines, "nothing on stderr"
    return lines[-1]
