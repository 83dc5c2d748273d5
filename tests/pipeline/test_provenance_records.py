"""Input checksums made in a background thread (pipeline.provenance.BackgroundRecords)."""

from __future__ import annotations

import hashlib
import threading

import pytest

from plscope.pipeline.provenance import BackgroundRecords, file_records, provenance, sha256_file


def test_background_records_equal_hashlib(tmp_path):
    data = bytes(range(256)) * 40_000  # ~10 MB: more than one 8 MiB block
    f = tmp_path / "movie.tif"
    f.write_bytes(data)
    with BackgroundRecords([f]) as records:
        rec = records.result()
    assert rec[str(f)]["sha256"] == hashlib.sha256(data).hexdigest()
    assert rec[str(f)]["bytes"] == len(data)
    assert rec == file_records([f])


def test_provenance_takes_the_background_records(tmp_path):
    import datetime as dt

    f = tmp_path / "daq.csv"
    f.write_text("t,v\n0,1\n")
    started = dt.datetime.now(dt.UTC)
    with BackgroundRecords([f]) as records:
        prov = provenance(inputs=[f], config={}, started=started, records=records)
    assert prov["inputs"] == provenance(inputs=[f], config={}, started=started)["inputs"]


def test_a_stopped_hash_is_abandoned_between_blocks(tmp_path):
    f = tmp_path / "big.bin"
    f.write_bytes(bytes(3 << 20))
    stop = threading.Event()
    stop.set()
    with pytest.raises(InterruptedError, match="big.bin"):
        sha256_file(f, block_bytes=1 << 20, stop=stop)


def test_leaving_the_block_early_does_not_raise_and_an_unreadable_input_raises_at_result(tmp_path):
    with BackgroundRecords([tmp_path / "missing.tif"]) as records:
        with pytest.raises(FileNotFoundError):
            records.result()
    with BackgroundRecords([tmp_path / "missing.tif"]):
        pass  # a run that failed before asking: nothing raised on the way out
