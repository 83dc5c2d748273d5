"""spectra.csv and spectral_shifts.csv are written by plscope._csv: pandas' to_csv text, byte for byte (issue 16)."""

from __future__ import annotations


def test_spectra_tables_are_the_text_of_pandas(spectral_output):
    out, result, _ = spectral_output
    assert (out / "spectra.csv").read_bytes() == result.table.to_csv(index=False).encode("utf-8")
    assert (out / "spectral_shifts.csv").read_bytes() == result.shifts.to_csv(index=False).encode("utf-8")
