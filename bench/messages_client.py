"""The load of `bench messages`, in its own process as real clients are: N POST /v1/messages
over HTTP, CONCURRENCY in flight, each answered 201.

    python -m bench.messages_client URL KEY N CONCURRENCY

Prints one JSON line: {"started": wall clock, "seconds": taken, "ids": [...]}. It waits for a
line on standard input before it starts, so that its imports are not timed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp

from tests.apikit import ACME_NUMBER


async def load(url: str, key: str, n: int, concurrency: int) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {key}"}
    ids: list[str] = []
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector, headers=headers) as http:

        async def post(i: int) -> None:
            async with sem:
                r = await http.post(
                    "/v1/messages",
                    json={
                        "to": f"+3247{i % 1000000:07d}"[:12],
                        "from": ACME_NUMBER,
                        "body": f"bench {i}",
                    },
                )
                text = await r.text()
                if r.status != 201:
                    raise SystemExit(f"POST /v1/messages answered {r.status}: {text}")
                ids.append(json.loads(text)["id"])

        print("ready", flush=True)
        sys.stdin.readline()
        started_wall, started = time.time(), time.perf_counter()
        await asyncio.gather(*(post(i) for i in range(n)))
        return {"started": started_wall, "seconds": time.perf_counter() - started, "ids": ids}


def main(argv: list[str]) -> int:
    url, key, n, concurrency = argv[0], argv[1], int(argv[2]), int(argv[3])
    print(json.dumps(asyncio.run(load(url, key, n, concurrency))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
