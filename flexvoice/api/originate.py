"""Placing an outbound call: the one path every caller of the node's dialer goes through
(POST /v1/calls, the designer's "Call me"), so that the same checks (the account's number,
its trunk's caller IDs, the account's calls per second) apply and the call is metered and
priced as every other."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from flexvoice.api.dialer import FlowStarter
from flexvoice.api.framework import retry_after_seconds
from flexvoice.api.problems import ProblemError
from flexvoice.appkeys import CALLS, CONFIG, DIALER, FLOWS, NUMBERS, ORIGINATOR, RATE_LIMITER
from flexvoice.calls import CallRecord
from flexvoice.flows.model import Flow


def check_from_number(app: Mapping[Any, Any], account: str, from_: str) -> None:
    number = app[NUMBERS].lookup(from_)
    if number is None or number.account != account:
        raise ProblemError(
            "invalid-field",
            f"from: {from_} is not one of this account's numbers (GET /v1/numbers lists them)",
            field="from",
        )


async def originate(
    app: Mapping[Any, Any],
    account: str,
    *,
    from_: str,
    to: str,
    flow: str | None,
    document: Flow | None,
    document_source: str | None,
    ring_timeout: float,
    variables: dict[str, str],
    status_callback: str | None = None,
    status_events: tuple[str, ...] = (),
    record: bool = False,
    recording_channels: int = 1,
) -> CallRecord:
    """Ring `to` from the account's number `from_`; when answered, `document` (or the flow
    named `flow`) runs. Raises ProblemError for what the caller must fix."""
    cfg = app[CONFIG]
    check_from_number(app, account, from_)
    originator = app.get(ORIGINATOR)
    if originator is None:
        raise ProblemError(
            "originator-unavailable",
            "this node has no outbound calling configured (no SIP worker pool or trunk); "
            "start it with 'flexvoice serve' and a trunk in sip/trunks.yaml",
            headers={"Retry-After": "30"},
        )
    refusal = originator.caller_id_refusal(from_)
    if refusal is not None:
        raise ProblemError("caller-id-not-allowed", refusal, field="from")
    wait = await app[RATE_LIMITER].hit(account, cfg.api.rate_limit_cps)
    if wait > 0:
        raise ProblemError(
            "rate-limited",
            f"account '{account}' may place {cfg.api.rate_limit_cps} calls per "
            "second; retry after Retry-After seconds",
            headers={"Retry-After": retry_after_seconds(wait)},
        )
    registry = app[CALLS]
    call: CallRecord = registry.create(
        account=account,
        direction="outbound",
        from_number=from_,
        to_number=to,
        flow=flow or (document.name if document is not None else None),
        status_callback=status_callback,
        status_events=status_events,
        record=record,
    )
    if document is not None and document_source is not None:
        registry.call_event(
            call.id, "flow_document", {"source": document_source, "digest": document.digest}
        )
    app[DIALER].place(
        call,
        originator,
        cast(FlowStarter | None, app.get(FLOWS)),
        ring_timeout=ring_timeout,
        variables=variables,
        flow=document,
        recording_channels=recording_channels,
    )
    return call
