"""The load of `bench messages`, in its own process as real clients are: N POST /v1/messages
over HTTP/1.1, CONCURRENCY keep-alive connections each with one request in flight, each
answered 201.

    python bench/messages_client.py URL KEY N CONCURRENCY FROM

Prints one JSON line: {"started": wall clock, "seconds": taken, "ids": [...]}. It waits for a
line on standard input before it starts, so that its imports are not timed.

The requests are written and the answers read with asyncio streams, not an HTTP client
library: on this 2-core machine the load generator shares the cores with the node, and
aiohttp's client spent as much CPU per request as the node spent per message (1.7-2.2 ms),
so the benchmark measured mostly itself.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


def request(host: str, key: str, to: str, sender: str, i: int) -> bytes:
    body = json.dumps({"to": to, "from": sender, "body": f"bench {i}"}).encode()
    head = (
        f"POST /v1/messages HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def load(url: str, key: str, n: int, concurrency: int, sender: str) -> dict[str, object]:
    where = urlsplit(url)
    host, port = where.hostname or "127.0.0.1", where.port or 80
    ids: list[str] = []
    todo = iter(range(n))
    streams = [await asyncio.open_connection(host, port) for _ in range(concurrency)]

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for i in todo:
            writer.write(request(host, key, f"+3247{i % 1000000:07d}"[:12], sender, i))
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            text = await reader.readexactly(length)
            if status != 201:
                raise SystemExit(f"POST /v1/messages answered {status}: {text.decode()}")
            ids.append(json.loads(text)["id"])

    print("ready", flush=True)
    sys.stdin.readline()
    started_wall, started = time.time(), time.perf_counter()
    await asyncio.gather(*(worker(r, w) for r, w in streams))
    took = time.perf_counter() - started
    for _, w in streams:
        w.close()
    return {"started": started_wall, "seconds": took, "ids": ids}


def main(argv: list[str]) -> int:
    url, key, n, concurrency, sender = argv[0], argv[1], int(argv[2]), int(argv[3]), argv[4]
    print(json.dumps(asyncio.run(load(url, key, n, concurrency, sender))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
