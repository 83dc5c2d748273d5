"""Reading electrometer logs as labs write them, and the real Keithley record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plscope.detector import exp_fit, read_log
from plscope.errors import RunFolderError


def _real_data() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        cand = parent / "shared" / "data" / "real"
        if cand.is_dir():
            return cand
    return None


KEITHLEY = _real_data() / "keithley" if _real_data() else None
#: SOURCES.md: a*exp(-t/tau)+b fitted 300-1000 s on the current normalized to its maximum
PUBLISHED_TAU_S = {"1": 290.54, "2": 295.42, "3": 299.77, "4": 307.12, "5": 323.48, "6": 319.54}


def test_keithley_kickstart_export_with_comments_units_and_columns(tmp_path):
    p = tmp_path / "kickstart.csv"
    lines = ["Keithley KickStart export", "# Instrument: 2636B", "", "Time (ms),Current (nA),Current 2 (pA)"]
    lines += [f"{k * 10},{1.5 + k},{-3.0 * k}" for k in range(20)]
    p.write_text("\n".join(lines) + "\n")
    log = read_log(p)
    assert log.axis_name == "Time (ms)"
    np.testing.assert_allclose(log.axis, np.arange(20) * 0.01)
    np.testing.assert_allclose(log.column("current_A"), (1.5 + np.arange(20)) * 1e-9)
    np.testing.assert_allclose(log.column("Current 2 (pA)"), -3.0 * np.arange(20) * 1e-12)


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_spec_csv(tmp_path, sep):
    p = tmp_path / "x.csv"
    p.write_text(
        f"time_s{sep}current_A{sep}shutter_V\n" + "".join(f"{k}{sep}{k * 1e-12}{sep}0\n" for k in range(5))
    )
    log = read_log(p)
    np.testing.assert_allclose(log.column("current_A"), np.arange(5) * 1e-12)
    assert set(log.columns) == {"current_A", "shutter_V"}


def test_missing_column_names_the_existing_ones(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("time_s,current_A\n0,1\n1,2\n2,3\n")
    with pytest.raises(RunFolderError, match=r"x.csv: no column 'I_A'; columns are: 'current_A'"):
        read_log(p).column("I_A")


def test_non_monotonic_time(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("time_s,current_A\n0,1\n2,2\n1,3\n")
    with pytest.raises(RunFolderError, match="not strictly increasing.*row 3"):
        read_log(p)


def test_binary_file_is_not_csv(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(RunFolderError, match="is not a CSV text file"):
        read_log(p)


def test_text_without_numbers_is_not_csv(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("hello\nthis is prose\n")
    with pytest.raises(RunFolderError, match="no row of numbers"):
        read_log(p)


def test_sweep_is_sorted_by_voltage(tmp_path):
    p = tmp_path / "iv.csv"
    p.write_text("voltage_V,current_A\n1,1e-12\n-1,-1e-12\n0,0\n")
    log = read_log(p, kind="voltage")
    np.testing.assert_allclose(log.axis, [-1, 0, 1])
    np.testing.assert_allclose(log.column("current_A"), [-1e-12, 0, 1e-12])


@pytest.mark.skipif(KEITHLEY is None, reason="real data not available")
@pytest.mark.parametrize("column", sorted(PUBLISHED_TAU_S))
def test_real_keithley_decay_times_reproduce_published(column):
    """The file read as it is; tau of a*exp(-t/tau)+b over 300-1000 s within 2 % of the source's value."""
    (path,) = sorted(KEITHLEY.glob("*.csv"))
    log = read_log(path)
    assert log.axis.size == 1000 and log.axis[-1] == pytest.approx(1998.0)
    t = log.axis
    y = log.column(column)
    y = y / y.max()
    sel = (t >= 300) & (t <= 1000)
    fit = exp_fit(t[sel], y[sel], tau_guess=300.0)
    assert fit["tau_s"] == pytest.approx(PUBLISHED_TAU_S[column], rel=0.02)
