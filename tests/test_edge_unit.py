"""Small pieces of the edge that need no Kamailio."""

from __future__ import annotations

from pathlib import Path

from flexvoice.sip.edge import rotate_log


def test_a_large_kamailio_log_is_rotated_at_start_and_a_small_one_kept(tmp_path: Path) -> None:
    log = tmp_path / "kamailio.log"
    log.write_bytes(b"x" * 100)
    rotate_log(log, limit=1000)
    assert log.read_bytes() == b"x" * 100
    log.write_bytes(b"y" * 2000)
    (tmp_path / "kamailio.log.1").write_bytes(b"old")
    rotate_log(log, limit=1000)
    assert not log.exists()
    assert (tmp_path / "kamailio.log.1").read_bytes() == b"y" * 2000
    rotate_log(tmp_path / "missing.log")  # nothing to do, no error
