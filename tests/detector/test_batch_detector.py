"""`plscope batch` runs detector folders beside PL runs: one index, one batch.csv."""

from __future__ import annotations

import csv

import pytest

from plscope.cli import main
from plscope.sim.detector import simulate_detector_run

pytestmark = pytest.mark.slow


def test_batch_with_a_detector_folder_beside_a_pl_run(tmp_path, simulate_tiny):
    root = tmp_path / "root"
    simulate_tiny(root / "pl", seed=3)
    truth = simulate_detector_run(root / "devices" / "cy_i", seed=2)
    out = tmp_path / "out"
    for status in ("ok", "skipped"):  # the second batch skips the unchanged detector run
        assert main(["-q", "batch", str(root), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
        with open(out / "batch.csv", newline="") as fh:
            rows = {r["run"]: r for r in csv.DictReader(fh)}
        assert rows["cy_i"]["status"] == status
    assert set(rows) == {"pl", "cy_i"}
    det = rows["cy_i"]
    assert det["kind"] == "detector"
    assert float(det["detection_limit_nGy_per_s"]) == pytest.approx(
        truth["detection_limit_nGy_per_s"], rel=0.15
    )
    assert rows["pl"]["kind"] == "imaging"
    assert (out / "cy_i" / "detector_summary.json").is_file() and (out / "cy_i" / "report.html").is_file()
    assert "cy_i/report.html" in (out / "index.html").read_text()
    (root / "devices" / "cy_i" / "hecht.csv").write_text("voltage_V,current_A\n1,1e-12\n2,2e-12\n")
    assert main(["-q", "batch", str(root), "--out", str(out), "--workers", "1", "--no-progress"]) == 1
    with open(out / "batch.csv", newline="") as fh:
        failed = {r["run"]: r for r in csv.DictReader(fh)}["cy_i"]
    assert failed["status"] == "failed" and "hecht.csv" in failed["reason"]
