"""The HTTP client of the `webhook` verb: one aiohttp session per node."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from flexvoice.flows.base import StepFailed


class AiohttpWebhooks:
    def __init__(self, session: aiohttp.ClientSession | None = None):
        self._session = session
        self._own = session is None

    async def post_json(
        self, url: str, payload: dict[str, Any], timeout: float, headers: dict[str, str]
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        host = urlsplit(url).netloc
        try:
            async with self._session.post(
                url,
                json=payload,
                headers={"User-Agent": "FlexVoice", **headers},
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                if resp.status >= 300:
                    raise StepFailed(f"{host} answered HTTP {resp.status}")
                body = await resp.read()
        except TimeoutError:
            raise StepFailed(f"{host} did not answer within {timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise StepFailed(f"cannot reach {host}: {exc}") from None
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except ValueError:
            raise StepFailed(f"{host} answered something that is not JSON") from None

    async def close(self) -> None:
        if self._session is not None and self._own:
            await self._session.close()
            self._session = None


class FileWebhooks:
    """`flows simulate --webhook-json FILE`: every webhook answers with the file's JSON."""

    def __init__(self, answer: Any | None):
        self.answer = answer
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def post_json(
        self, url: str, payload: dict[str, Any], timeout: float, headers: dict[str, str]
    ) -> Any:
        self.calls.append((url, payload))
        await asyncio.sleep(0)
        if self.answer is None:
            raise StepFailed("no --webhook-json given, so the simulated webhook fails")
        return self.answer
