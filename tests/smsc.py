"""A real SMSC for the tests and the benchmark: PyPI smpp34's SMPP 3.4 server (its Rust core
does the protocol: binds, windows, enquire_link, PDU codec), with a few lines of policy here.

    python -m tests.smsc --port 2775 --log received.jsonl [--receipts delivered]

Every submit_sm is accepted with a message id in hexadecimal, written as one JSON line to
--log (flushed at once), and answered later with a delivery receipt whose text names the id
in DECIMAL, as many SMSCs do. `--receipts undelivered` makes every receipt UNDELIV;
`--fail-part N` makes the N-th part of every long message UNDELIV; `--reject-to NUMBER` refuses
submits to NUMBER with ESME_RINVDSTADR; `--slow-to NUMBER` answers submits to NUMBER only after
--slow-seconds (a slow route). JSON lines on standard input inject mobile-originated
messages: {"from": "+32475...", "to": "+3226...", "text": "STOP"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import traceback
from typing import Any

import smpp34

from flexvoice.messaging.text import decode, split


async def main(args: argparse.Namespace) -> None:
    server = smpp34.Server(
        host="127.0.0.1", port=args.port, system_id="TESTSMSC", inbound_capacity=4096
    )
    await server.start()
    out = open(args.log, "a", encoding="utf-8")  # noqa: SIM115 - closed at the end
    sessions: dict[str, Any] = {}
    counter = 0x10000
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pending: set[asyncio.Task[None]] = set()

    async def receipt(
        session_id: str, ev_from: str, ev_to: str, message_id: str, stat: str
    ) -> None:
        await asyncio.sleep(args.receipt_delay)
        text = (
            f"id:{int(message_id, 16)} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
            f"submit date:2612011200 done date:2612011201 stat:{stat} err:000 text:"
        )
        # As a real SMSC: a receipt the ESME refused (a NAK, its window or buffer full) is
        # offered again a little later, a few times.
        for attempt in range(1, 6):
            esme = sessions.get(session_id)
            if esme is None:
                return
            try:
                resp = await esme.deliver_sm(
                    ev_from,
                    text.encode(),
                    source_addr=ev_to,
                    esm_class=0x04,
                    source_addr_ton=1,
                    dest_addr_ton=1,
                )
                if resp.is_success:
                    return
                why = f"command_status 0x{resp.command_status:08X}"
            except Exception as exc:
                why = str(exc)
            print(f"smsc: receipt not delivered (attempt {attempt}): {why}", file=sys.stderr)
            await asyncio.sleep(0.5 * attempt)

    async def serve() -> None:
        while True:
            ev = await server.next()
            try:
                await handle(ev)
            except Exception:  # keep serving; say what went wrong
                traceback.print_exc()

    async def handle(ev: Any) -> None:
        if isinstance(ev, smpp34.Esme):
            sessions[ev.session_id] = ev
        elif isinstance(ev, smpp34.Unbound):
            sessions.pop(ev.session_id, None)
        elif isinstance(ev, smpp34.SubmitSmEvent):
            if args.reject_to and ev.destination_addr == args.reject_to.lstrip("+"):
                ev.reject(smpp34.ESME_RINVDSTADR)
                return
            if args.slow_to and ev.destination_addr == args.slow_to.lstrip("+"):
                args.slow_to = ""  # the first one only (its retry, if any, goes through)
                task = asyncio.create_task(slow(ev))
                pending.add(task)
                task.add_done_callback(pending.discard)
                return
            accept(ev)

    async def slow(ev: Any) -> None:
        await asyncio.sleep(args.slow_seconds)
        accept(ev)

    def accept(ev: Any) -> None:
        nonlocal counter
        counter += 1
        message_id = format(counter, "x")
        text, concat = decode(ev.short_message, ev.data_coding, ev.esm_class)
        ev.accept(message_id=message_id)
        record = {
            "message_id": message_id,
            "from": ev.source_addr,
            "from_ton": ev.source_addr_ton,
            "to": ev.destination_addr,
            "esm_class": ev.esm_class,
            "data_coding": ev.data_coding,
            "registered_delivery": ev.registered_delivery,
            "text": text,
            "concat": list(concat) if concat else None,
            "octets": len(ev.short_message),
        }
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
        if args.receipts != "none" and ev.registered_delivery & 0x01:
            stat = "DELIVRD" if args.receipts == "delivered" else "UNDELIV"
            if concat and concat[2] == args.fail_part:
                stat = "UNDELIV"
            task = asyncio.create_task(
                receipt(ev.session_id, ev.source_addr, ev.destination_addr, message_id, stat)
            )
            pending.add(task)
            task.add_done_callback(pending.discard)

    async def mobile_originated() -> None:
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            mo = json.loads(line)
            _, parts = split(mo["text"], 7)
            for esme in list(sessions.values()):
                for part in parts:
                    await esme.deliver_sm(
                        mo["to"].lstrip("+"),
                        part.payload,
                        source_addr=mo["from"].lstrip("+"),
                        source_addr_ton=1,
                        dest_addr_ton=1,
                        esm_class=part.esm_class,
                        data_coding=part.data_coding,
                    )
                break

    tasks = [asyncio.create_task(serve())]
    if not sys.stdin.isatty() and args.stdin:
        tasks.append(asyncio.create_task(mobile_originated()))
    print(f"smsc: listening on 127.0.0.1:{args.port}", flush=True)
    await stop.wait()
    for task in tasks + list(pending):
        task.cancel()
    await server.stop()
    out.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument(
        "--receipts", choices=("delivered", "undelivered", "none"), default="delivered"
    )
    parser.add_argument("--receipt-delay", type=float, default=0.05)
    parser.add_argument("--fail-part", type=int, default=0)
    parser.add_argument("--reject-to", default="")
    parser.add_argument("--slow-to", default="")
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    parser.add_argument("--stdin", action="store_true", help="read mobile-originated messages")
    asyncio.run(main(parser.parse_args()))
