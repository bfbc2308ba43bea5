"""The voice channel of verification: a call through the node's originator (the same path as
POST /v1/calls) that speaks the code twice, digit by digit, with the locale's prompts from
ivr_prompts/<locale>/ (verify_intro, digit_0..9, verify_repeat, verify_bye). It is a call of
the account like any other: created in the call registry (a CA id, listed by GET /v1/calls,
its events stored), and its leg billed by the SIP layer. No file name, trace or log line
carries the code."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from flexvoice.callcontrol import Originator, new_call_id
from flexvoice.calls import CallRegistry
from flexvoice.logs import get_logger

log = get_logger(__name__)


class CallVoice:
    def __init__(
        self,
        originator: Callable[[], Originator | None],
        prompts_dir: Path,
        ring_timeout: float = 40.0,
        calls: Callable[[], CallRegistry | None] = lambda: None,
    ):
        self.originator = originator
        self.calls = calls
        self.prompts_dir = prompts_dir
        self.ring_timeout = ring_timeout
        self._calls: set[asyncio.Task[None]] = set()

    def prompts(self, locale: str, code: str) -> list[Path]:
        folder = self.prompts_dir / locale
        if not (folder / "verify_intro.wav").exists():
            folder = self.prompts_dir / "en"
        digits = [folder / f"digit_{d}.wav" for d in code]
        return [
            folder / "verify_intro.wav",
            *digits,
            folder / "verify_repeat.wav",
            *digits,
            folder / "verify_bye.wav",
        ]

    async def speak_code(self, account: str, to: str, code: str, locale: str) -> str:
        originator = self.originator()
        if originator is None:
            raise ConnectionError("outbound calling is not running on this node")
        paths = self.prompts(locale, code)
        # Every digit is checked, not the code's: a message naming the missing ones must not
        # tell which digits the code has.
        every_digit = self.prompts(locale, "0123456789")
        missing = [p.name for p in every_digit if not p.exists()]
        if missing:
            raise FileNotFoundError(
                f"verification prompts missing: {', '.join(sorted(set(missing)))}"
            )
        registry = self.calls()
        if registry is not None:
            call_id = registry.create(
                account=account, direction="outbound", from_number="", to_number=to, flow=None
            ).id
        else:
            call_id = new_call_id()
        task = asyncio.create_task(self._call(originator, registry, account, to, paths, call_id))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        return call_id

    async def _call(
        self,
        originator: Originator,
        registry: CallRegistry | None,
        account: str,
        to: str,
        paths: list[Path],
        call_id: str,
    ) -> None:
        try:
            if registry is not None:
                registry.call_event(call_id, "initiated", {"to": to, "from": ""})
            try:
                leg, attempt = await originator.originate(
                    to,
                    "",
                    ring_timeout=self.ring_timeout,
                    call_id=call_id,
                    observer=registry,
                    account=account,
                )
            except Exception as exc:
                if registry is not None:  # no leg will report this call's end
                    cause = f"originate_error: {type(exc).__name__}"
                    registry.finish(call_id, "failed", sip_status=None, cause=cause)
                raise
            if leg is None:
                log.info("verify.call_failed", call_id=call_id, sip_status=attempt.sip_status)
                if registry is not None:  # as the dialer: the first "ended" is kept
                    registry.call_event(
                        call_id,
                        "ended",
                        {
                            "outcome": attempt.outcome,
                            "sip_status": attempt.sip_status,
                            "cause": attempt.reason,
                            "ended_by": "callee",
                        },
                    )
                return
            try:
                await leg.play(paths)
            finally:
                await leg.hangup()
            log.info("verify.call_done", call_id=call_id)
        except Exception as exc:
            # The type only: a playback error names prompt files, which spell the code.
            log.warning("verify.call_error", call_id=call_id, error=type(exc).__name__)

    async def close(self) -> None:
        for task in list(self._calls):
            task.cancel()
        await asyncio.gather(*self._calls, return_exceptions=True)
