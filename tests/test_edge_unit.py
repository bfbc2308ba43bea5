"""Small pieces of the edge that need no Kamailio."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexvoice.config import Config, load_config
from flexvoice.errors import UserError
from flexvoice.node.pool import pool_settings
from flexvoice.sip.addresses import edge_proxy_uri, relay_addresses, worker_addresses
from flexvoice.sip.edge import rotate_log
from flexvoice.sip.edge_config import DS_DISABLED, render_dispatcher_list


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


def write_config(tmp_path: Path, workers: str, cluster: str = "") -> Config:
    path = tmp_path / "flexvoice.yaml"
    path.write_text(f"sip:\n  edge: {{port: 5060}}\n  workers: {workers}\n{cluster}")
    return load_config(path, {})


def test_relay_workers_follow_the_call_workers_and_the_edge_keeps_them_from_callers(
    tmp_path: Path,
) -> None:
    cfg = write_config(tmp_path, "{count: 3, relays: 2, base_port: 5070}")
    workers, relays = worker_addresses(cfg), relay_addresses(cfg)
    assert [(w.index, w.port) for w in workers] == [(0, 5070), (1, 5071), (2, 5072)]
    assert [(r.index, r.port) for r in relays] == [(3, 5073), (4, 5074)]
    # Callers are dispatched from set 1 only; route[LINK] reaches set 2 as well.
    listed = render_dispatcher_list(workers, 4, {4}, relays).splitlines()[1:]
    assert [line.split()[:3] for line in listed] == [
        ["1", "sip:127.0.0.1:5070", "0"],
        ["1", "sip:127.0.0.1:5071", "0"],
        ["1", "sip:127.0.0.1:5072", "0"],
        ["2", "sip:127.0.0.1:5073", "0"],
        ["2", "sip:127.0.0.1:5074", str(DS_DISABLED)],
    ]
    # The pool runs both; its last `relays` workers take no callers (PoolSettings.relays).
    settings = pool_settings(cfg, edge=True, trunk=None)
    assert (settings.count, settings.relays) == (5, 2)
    # Relays need ports too: the layout check counts them.
    cfg = write_config(tmp_path, "{count: 10, relays: 4, base_port: 5050, rtp_base: 20000}")
    with pytest.raises(UserError, match="the edge's port 5060"):
        worker_addresses(cfg)


def test_relays_are_refused_behind_a_shared_edge_and_out_of_range(tmp_path: Path) -> None:
    shared = "cluster: {enabled: true, edge: shared}\n"
    cfg = write_config(tmp_path, "{count: 2, relays: 1}", shared)
    with pytest.raises(UserError, match=r"sip\.workers\.relays: a shared edge"):
        pool_settings(cfg, edge=True, trunk=None)
    with pytest.raises(UserError, match=r"sip\.workers\.relays: must be at most 64"):
        write_config(tmp_path, "{count: 2, relays: 65}")


def test_workers_reach_their_own_edge_on_loopback_and_a_shared_edge_at_its_address(
    tmp_path: Path,
) -> None:
    own = load_config(write_edge(tmp_path, "{host: 0.0.0.0, port: 5080}"), {})
    assert edge_proxy_uri(own) == "sip:127.0.0.1:5080;lr"
    shared = "cluster: {enabled: true, edge: shared}\n"
    cfg = load_config(write_edge(tmp_path, "{host: 10.0.0.1, port: 5080}", shared), {})
    assert edge_proxy_uri(cfg) == "sip:10.0.0.1:5080;lr"
    cfg = load_config(write_edge(tmp_path, "{host: 0.0.0.0}", shared), {})
    with pytest.raises(UserError, match=r"sip\.edge\.host: with cluster\.edge: shared"):
        edge_proxy_uri(cfg)


def write_edge(tmp_path: Path, edge: str, extra: str = "") -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(f"sip:\n  edge: {edge}\n{extra}")
    return path
