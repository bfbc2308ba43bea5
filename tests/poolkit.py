"""A worker pool of real pjsua2 workers for the SIP tests (a pytest plugin loaded by
conftest.py: the `make_pool` fixture), and `tone`, the test prompt they play."""

from __future__ import annotations

import random
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from flexvoice.sip.leg import SipLeg
from flexvoice.sip.pool import PoolSettings, WorkerPool
from tests.conftest import free_port_range

Handler = Callable[[SipLeg], Awaitable[None]]


def tone(path: Path, seconds: float = 2.0) -> Path:
    """A 440 Hz sine, 8 kHz mono WAV at `path`: the prompt the SIP tests play."""
    import math
    import wave

    frames = b"".join(
        struct.pack("<h", int(9000 * math.sin(2 * math.pi * 440 * i / 8000)))
        for i in range(int(8000 * seconds))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(frames)
    return path


class PoolHarness:
    def __init__(self, pool: WorkerPool, legs: list[SipLeg]):
        self.pool = pool
        self.legs = legs

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.pool.settings.base_port}"


@pytest.fixture
async def make_pool() -> AsyncIterator[Callable[..., Awaitable[PoolHarness]]]:
    pools: list[WorkerPool] = []

    async def make(
        handler: Handler, count: int = 1, trunk: str | None = None, **extra: str
    ) -> PoolHarness:
        legs: list[SipLeg] = []

        async def on_incoming(leg: SipLeg) -> None:
            legs.append(leg)
            await handler(leg)

        settings = PoolSettings(
            count=count,
            base_port=free_port_range(count),
            rtp_base=random.randrange(30000, 50000, 2),
            restart_backoff=0.2,
            trunk=trunk,
            **extra,  # type: ignore[arg-type]
        )
        pool = WorkerPool(settings, on_incoming)
        await pool.start()
        pools.append(pool)
        return PoolHarness(pool, legs)

    yield make
    for pool in pools:
        await pool.stop(grace=0)


async def stay(leg: SipLeg) -> None:
    await leg.wait_until(lambda: leg.ended, 30)
