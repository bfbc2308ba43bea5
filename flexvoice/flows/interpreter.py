"""The interpreter: runs one call through a flow, step by step, on a `CallLeg`, and
guarantees that a call always ends: a failing step takes its `on_error` branch or the caller
hears an apology and the call is hung up. What the verbs share is `CallContext`
(flows/context.py); each verb is a module in flows/verbs/; what the node hands in is
`FlowDeps` (flows/deps.py)."""

from __future__ import annotations

import asyncio
import contextlib

from flexvoice.callcontrol import CallEnded
from flexvoice.flows.base import Next, StepFailed
from flexvoice.flows.context import CallContext
from flexvoice.flows.deps import FlowDeps
from flexvoice.logs import get_logger

# FlowDeps and CallContext are imported from here too (as before they had modules of their own).
__all__ = ["FLOW_MOVED", "CallContext", "FlowDeps", "apologize", "ended_by_words", "run_call"]

log = get_logger("flexvoice.flows")

APOLOGY_TEXT = {
    "nl": "Sorry, er ging iets mis. Probeer later opnieuw.",
    "fr": "Désolé, une erreur s'est produite. Veuillez rappeler plus tard.",
    "en": "Sorry, something went wrong. Please call again later.",
}


# The message a flow's task is cancelled with when its call moves to another flow
# (POST /v1/calls/{id} {"flow": ...}); any other cancellation is the node stopping.
FLOW_MOVED = "moved to another flow"


async def run_call(ctx: CallContext) -> str:
    """Run the flow to its end; return why the call ended. Never leaves the call up."""
    flow, leg = ctx.flow, ctx.leg
    step: str | None = flow.start
    why, prev = "start", None
    taken = 0
    end_status: int | None = None
    reason = ""
    try:
        while step is not None:
            taken += 1
            verb = flow.steps[step]
            ctx.step = step
            log.info("flow.step", flow=flow.name, step=step, verb=verb.verb, why=why)
            ctx.trace("step", {"step": step, "verb": verb.verb, "why": why, "from": prev})
            try:
                if taken > ctx.deps.max_steps:
                    raise StepFailed(f"more than {ctx.deps.max_steps} steps: the flow loops")
                nxt: Next = await verb.run(ctx)
            except (CallEnded, asyncio.CancelledError):
                raise
            except Exception as exc:
                if not isinstance(exc, StepFailed):
                    log.exception("flow.step_crashed", step=step, verb=verb.verb)
                message = str(exc) or type(exc).__name__
                log.warning("flow.step_failed", step=step, verb=verb.verb, error=message)
                ctx.trace("step_failed", {"step": step, "verb": verb.verb, "error": message})
                if verb.on_error is not None and taken <= ctx.deps.max_steps:
                    nxt = Next(verb.on_error, f"{step} failed: {message} -> on_error")
                else:
                    await apologize(ctx)
                    nxt = Next(None, f"{step} failed: {message}; apology played")
            ctx.note_answered()
            prev, step, why, end_status = step, nxt.step, nxt.why, nxt.sip_status
        reason = why
        if not ctx.ended:
            # Said before the BYE: the statistics tell a flow's hangup from the caller's.
            ctx.trace("hangup", {"step": ctx.step, "by": "flow", "sip_status": end_status})
            await leg.hangup(sip_status=end_status or 480, reason="flow_end")
            ctx.ended = True
    except CallEnded as exc:
        reason = f"{ended_by_words(exc.cause)} during {ctx.step}"
        ctx.ended = True
    except asyncio.CancelledError as exc:
        if exc.args and exc.args[0] == FLOW_MOVED:
            # The leg goes on with another flow: nothing to hang up.
            reason = f"{FLOW_MOVED} during {ctx.step}"
            raise
        reason = "cancelled (node shutting down)"
        if not ctx.ended:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    leg.hangup(sip_status=503, reason="shutdown", ended_by="node_shutdown"), 2
                )
        raise
    finally:
        await _finish(ctx, reason)
    return reason


def ended_by_words(who: str) -> str:
    """The trace's words for who ended a call (flexvoice.outcomes.EndedBy)."""
    return {
        "caller": "the caller hung up",
        "callee": "the callee hung up",
        "api": "hung up over the API",
        "flow": "ended by the flow",
        "worker_lost": "the media worker holding the call was lost",
        "node_shutdown": "the node shut down",
        "node_lost": "the node stopped unexpectedly (closed at its restart)",
    }.get(who, f"call ended ({who})")


async def apologize(ctx: CallContext) -> None:
    """Tell the caller something went wrong; any trouble here just ends the call."""
    try:
        await ctx.ensure_answered()
        try:
            paths = [ctx.prompts.prompt("apology", ctx.language)]
        except StepFailed:
            text = APOLOGY_TEXT.get(ctx.language, APOLOGY_TEXT["en"])
            paths = [await ctx.prompts.say(text, ctx.language)]
        await ctx.leg.play(paths)
    except CallEnded:
        raise
    except Exception as exc:
        log.warning("flow.apology_failed", error=str(exc))


async def _finish(ctx: CallContext, reason: str) -> None:
    ctx.note_answered()
    if ctx.call_recording:
        try:
            await ctx.deps.recording_service().stop(ctx.call_id)
        except Exception:  # the recording's own row says what went wrong
            log.exception("flow.recording_stop_failed")
    log.info("flow.ended", flow=ctx.flow.name, reason=reason)
    ctx.trace("flow_end", {"flow": ctx.flow.name, "reason": reason})
