"""The flow runtime of a node: flows loaded from flows/, reloaded when a file changes, one
asyncio task per call.

A changed file is validated before it replaces anything: a valid new version serves the
next call, an invalid one is refused with the validator's messages in the log while the last
good version keeps serving. A call keeps the `Flow` object it started with, so an edit never
changes a call in progress. Voice Continuity is checked before the flow: an active override
redirects the call (302) to its number without running the flow.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flexvoice.callcontrol import CallEnded, CallLeg, CallObserver
from flexvoice.continuity import continuity_target
from flexvoice.errors import Problem
from flexvoice.flows.context import CallContext
from flexvoice.flows.deps import FlowDeps, iso, maybe_await
from flexvoice.flows.interpreter import ended_by_words, run_call
from flexvoice.flows.model import Flow
from flexvoice.flows.prompts import PromptResolver
from flexvoice.flows.queues import QueueBoard, QueueBoards
from flexvoice.flows.validate import Validation, validate_file
from flexvoice.flows.webhooks import AiohttpWebhooks
from flexvoice.logs import bind_call, get_logger
from flexvoice.offloop import parse_off_loop

log = get_logger("flexvoice.flows")

FLOW_SUFFIXES = (".yaml", ".yml")
# The SIP reason phrase of the 503 for a number whose flow is missing; the edge reads it.
FLOW_UNKNOWN_PHRASE = "No Flow For This Number"


@dataclass(frozen=True)
class FileState:
    mtime_ns: int
    size: int


class FlowRuntime:
    def __init__(
        self,
        flows_dir: Path,
        prompts_dir: Path,
        deps: FlowDeps | None = None,
        *,
        poll_interval: float = 1.0,
    ):
        self.flows_dir = flows_dir
        self.prompts_dir = prompts_dir
        self.deps = deps or FlowDeps()
        self.poll_interval = poll_interval
        self.prompts = PromptResolver(prompts_dir, self.deps.tts_cache_dir)
        # One node's lines in memory; a cluster node puts its Redis lines here.
        self.queues: QueueBoards = QueueBoard()
        self.flows: dict[str, Flow] = {}
        self.problems: dict[Path, list[Problem]] = {}  # the last refusal or warnings per file
        self.calls: dict[str, asyncio.Task[str]] = {}
        self._seen: dict[Path, FileState] = {}
        self._owner: dict[Path, str] = {}  # file -> the flow name it serves
        self._watcher: asyncio.Task[None] | None = None
        self._own_webhooks: AiohttpWebhooks | None = None

    # -- loading --------------------------------------------------------------------------
    def scan(self) -> list[Problem]:
        """Load new and changed flow files, drop removed ones; return the problems found."""
        found: list[Problem] = []
        for path in self._changed():
            found += self._load(path)
        return found

    def _changed(self) -> list[Path]:
        """Forget removed files; the files that are new or changed since the last look."""
        files: dict[Path, FileState] = {}
        if self.flows_dir.is_dir():
            for path in sorted(self.flows_dir.iterdir()):
                if path.suffix in FLOW_SUFFIXES and path.is_file():
                    st = path.stat()
                    files[path] = FileState(st.st_mtime_ns, st.st_size)
        for path in [p for p in self._seen if p not in files]:
            del self._seen[path]
            name = self._owner.pop(path, None)
            if name is not None:
                self.flows.pop(name, None)
                log.info("flow.removed", flow=name, file=str(path))
        changed = [path for path, state in files.items() if self._seen.get(path) != state]
        for path in changed:
            self._seen[path] = files[path]
        return changed

    async def rescan(self) -> list[Problem]:
        """`scan` with the parsing and validating in a thread: a large or hostile file
        saved on the node never holds the event loop (calls keep moving meanwhile)."""
        changed = self._changed()
        if not changed:
            return []
        prompts = self.prompts_dir
        checked = await parse_off_loop(lambda: [(p, validate_file(p, prompts)) for p in changed])
        found: list[Problem] = []
        for path, res in checked:
            found += self._load(path, res)
        return found

    def _load(self, path: Path, checked: Validation | None = None) -> list[Problem]:
        res = checked if checked is not None else validate_file(path, self.prompts_dir)
        self.problems[path] = res.problems
        old = self._owner.get(path)
        if res.flow is None:
            for problem in res.errors:
                log.error("flow.refused", file=str(path), problem=str(problem))
            if old is not None:
                log.warning("flow.kept_last_good", flow=old, file=str(path))
            return res.problems
        flow = res.flow
        clash = next((p for p, n in self._owner.items() if n == flow.name and p != path), None)
        if clash is not None:
            problem = Problem(
                str(path), 1, 1, f"flow name '{flow.name}' is already used by {clash}"
            )
            log.error("flow.refused", file=str(path), problem=str(problem))
            self.problems[path] = [problem]
            return [problem]
        for problem in res.warnings:
            log.warning("flow.warning", file=str(path), problem=str(problem))
        if old is not None and old != flow.name:
            self.flows.pop(old, None)
        previous = self.flows.get(flow.name)
        self.flows[flow.name] = flow
        self._owner[path] = flow.name
        event = "flow.reloaded" if previous is not None else "flow.loaded"
        log.info(event, flow=flow.name, file=str(path), version=flow.digest[:12])
        return res.problems

    def load_file(self, path: Path, checked: Validation | None = None) -> list[Problem]:
        """Load one flow file now rather than at the next poll (the REST API just wrote it,
        so the next call runs it); refused like any reload when it is not valid. `checked`:
        the validation the caller already made of exactly this file's text."""
        st = path.stat()
        self._seen[path] = FileState(st.st_mtime_ns, st.st_size)
        return self._load(path, checked)

    async def start(self) -> None:
        if self.deps.webhooks is None:
            self._own_webhooks = AiohttpWebhooks()
            self.deps.webhooks = self._own_webhooks
        self.scan()
        log.info("flows.started", flows=",".join(sorted(self.flows)), dir=str(self.flows_dir))
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.rescan()
            except OSError as exc:
                log.error("flows.scan_failed", error=str(exc))

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for task in list(self.calls.values()):
            task.cancel()
        if self.calls:
            await asyncio.gather(*self.calls.values(), return_exceptions=True)
        if self._own_webhooks is not None:
            await self._own_webhooks.close()

    # -- calls ----------------------------------------------------------------------------
    def start_call(
        self,
        leg: CallLeg,
        flow_name: str,
        *,
        account: str | None = None,
        variables: dict[str, str] | None = None,
        observer: CallObserver | None = None,
        flow: Flow | None = None,
    ) -> asyncio.Task[str]:
        """Run `flow_name` on `leg` in its own task; the task's result says why it ended.
        `flow` runs that validated flow instead of the file of that name (a REST call's
        flow_inline or flow_url)."""
        if not self._seen and not self.flows:
            self.scan()  # started without start(): load the flows once, no watching
        task = asyncio.create_task(
            self._call(leg, flow_name, account, variables or {}, observer, flow),
            name=f"call-{leg.call_id}",
        )
        self.calls[leg.call_id] = task
        task.add_done_callback(lambda done: self._forget(leg.call_id, done))
        return task

    def _forget(self, call_id: str, task: asyncio.Task[str]) -> None:
        # A moved call's next flow runs under the same id: keep it.
        if self.calls.get(call_id) is task:
            del self.calls[call_id]

    def make_context(
        self,
        flow: Flow,
        leg: CallLeg,
        *,
        account: str | None,
        bills_reroute: bool = False,
        variables: dict[str, str],
        observer: CallObserver | None,
    ) -> CallContext:
        return CallContext(
            flow=flow,
            leg=leg,
            deps=self.deps,
            prompts=self.prompts,
            queues=self.queues,
            account=account,
            observer=observer,
            bills_reroute=bills_reroute,
            vars={**flow.variables, **{k: str(v) for k, v in variables.items()}},
            language=flow.language,
            started_at=self.deps.clock(),
        )

    async def _call(
        self,
        leg: CallLeg,
        flow_name: str,
        account: str | None,
        variables: dict[str, str],
        observer: CallObserver | None,
        given: Flow | None = None,
    ) -> str:
        bind_call(leg.call_id)
        started = self.deps.clock()
        business_number = leg.callee if leg.direction == "inbound" else leg.caller
        if account is None and self.deps.account_for is not None:
            account = await _lookup(self.deps.account_for, business_number, "account_for")
        bills_reroute = False
        if account and self.deps.prices_for is not None:
            prices_for = self.deps.prices_for
            bills_reroute = bool(
                await _lookup(lambda a: prices_for(a, "reroute"), account, "prices_for")
            )
        flow = given or self.flows.get(flow_name)
        if given is None and leg.direction == "inbound" and self.deps.draft_for is not None:
            draft_for = self.deps.draft_for
            draft = await _lookup(lambda caller: draft_for(flow_name, caller), leg.caller, "draft")
            if isinstance(draft, Flow):
                log.info("flow.draft_for_tester", flow=flow_name, digest=draft.digest[:12])
                flow = draft
        stub = flow or _stub_flow(flow_name)
        ctx = self.make_context(
            stub,
            leg,
            account=account,
            bills_reroute=bills_reroute,
            variables=variables,
            observer=observer,
        )
        ctx.started_at = started
        if leg.direction == "inbound" and self.deps.continuity_for is not None:
            override = await _lookup(self.deps.continuity_for, leg.callee, "continuity_for")
            forward_to = continuity_target(override)
            if forward_to is not None:
                return await _continuity(ctx, forward_to)
        if flow is None:
            known = ", ".join(sorted(self.flows)) or "none loaded"
            log.error("flow.unknown", flow=flow_name, known=known)
            ctx.trace("flow_end", {"flow": flow_name, "reason": f"no flow named '{flow_name}'"})
            with contextlib.suppress(CallEnded):
                # The edge passes this phrase on instead of trying another worker (which
                # would refuse the same and count the caller twice): sip/kamailio.cfg.tmpl.
                await leg.hangup(sip_status=503, reason=FLOW_UNKNOWN_PHRASE)
            return f"no flow named '{flow_name}'"
        log.info("flow.call", flow=flow.name, version=flow.digest[:12], account=account)
        return await run_call(ctx)


async def _continuity(ctx: CallContext, forward_to: str) -> str:
    """Voice Continuity: the number is redirected as a whole, the flow does not run."""
    why = f"Voice Continuity active: redirect to {forward_to}"
    log.info("flow.continuity", to=forward_to)
    ctx.step = "continuity"
    ctx.trace("step", {"step": "continuity", "verb": "redirect", "why": why, "from": None})
    reason = why
    try:
        how = await ctx.redirect(forward_to)
        reason = f"{how} to {forward_to} (Voice Continuity)"
        ctx.reroute("continuity")
    except CallEnded as exc:
        reason = f"{ended_by_words(exc.cause)} before the redirect"
    finally:
        ended = ctx.now()
        ctx.note_answered()
        ctx.trace("flow_end", {"flow": ctx.flow.name, "reason": reason, "at": iso(ended)})
    return reason


async def _lookup(fn: Any, key: str, what: str) -> Any:
    try:
        return await maybe_await(fn(key))
    except Exception:  # a broken registry must not drop calls: run the flow without it
        log.exception("flow.lookup_failed", lookup=what, key=key)
        return None


def _stub_flow(name: str) -> Flow:
    return Flow(name, "", "", "en", "Europe/Brussels", {}, {}, "", "")
