"""`./run fuzz`: the SIP fuzz corpus through a real node, then schemathesis against the REST
API with a large example budget, bounded in time. Prints cases sent, 5xx answers, crashes,
worker restarts and call slots left taken; exits 1 unless all of those are 0 (and a real
call is answered right after the SIP corpus).

    ./run fuzz [--examples 300] [--workers 2]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.sipfuzz import send_corpus
from tests.fuzzkit import fuzz_api, serve_api
from tests.nodekit import (
    edge_loads,
    edge_node,
    http_port,
    metric,
    start_node,
    wait_http,
    wait_workers,
)
from tests.sipptool import run_uac


def fuzz_sip(tmp: Path, workers: int) -> dict[str, int]:
    config, sip_port = edge_node(tmp, workers=workers)
    proc = start_node(config)
    port = http_port(config)
    try:
        wait_http(port, "/healthz", proc, timeout=60)
        wait_workers(port, proc, workers)
        restarts = metric(port, "flexvoice_worker_restarts_total")
        started = time.monotonic()
        report = send_corpus(sip_port)
        print(
            f"sip: {report.sent} malformed INVITEs in {time.monotonic() - started:.1f} s, "
            f"answers by status {dict(sorted((report.by_status or {}).items()))}",
            flush=True,
        )
        call = run_uac("uac_until_bye.xml", f"127.0.0.1:{sip_port}", "+3225551003")
        deadline = time.monotonic() + 10
        loads = edge_loads(config)
        while time.monotonic() < deadline and any(x.split("/")[0] != "0" for x in loads):
            time.sleep(0.5)
            loads = edge_loads(config)
        taken = sum(int(x.split("/")[0]) for x in loads)
        result = {
            "sent": report.sent,
            "5xx": report.server_errors,
            "crashes": 0 if proc.poll() is None else 1,
            "restarts": int(metric(port, "flexvoice_worker_restarts_total") - restarts),
            "slots_left_taken": taken + int(metric(port, "flexvoice_worker_slots_used")),
            "real_call_failed": 0 if call.successful == 1 else 1,
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./run fuzz")
    parser.add_argument(
        "--examples", type=int, default=300, help="schemathesis examples per operation"
    )
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flexvoice-fuzz-") as tmp:
        (Path(tmp) / "sip").mkdir()
        sip = fuzz_sip(Path(tmp) / "sip", args.workers)
        print("sip: " + ", ".join(f"{k} {v}" for k, v in sip.items()), flush=True)
        started = time.monotonic()
        rest_dir = Path(tmp) / "rest"
        rest_dir.mkdir()
        crashed = 0
        try:
            with serve_api(rest_dir) as (url, headers):
                rest = fuzz_api(url, headers, args.examples)
        except AssertionError as exc:  # a 5xx or an undeclared answer: schemathesis says which
            print(f"rest: FAILED: {str(exc)[:2000]}")
            rest = {"n": 0, "5xx": 1}
            crashed = 1
        print(
            f"rest: {rest['n']} requests in {time.monotonic() - started:.0f} s, "
            f"5xx {rest.get('5xx', 0)}, crashes {crashed}",
            flush=True,
        )
    bad = sum(v for k, v in sip.items() if k != "sent") + rest.get("5xx", 0) + crashed
    print("fuzz: " + ("all 0" if bad == 0 else f"{bad} problem(s)"))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
