"""What `kamcmd` prints, read: its nested { KEY: value } structures as dicts, the dispatcher's
view of the workers, the dialog module's list of calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flexvoice.sip.addresses import WorkerAddress


@dataclass(frozen=True)
class EdgeTarget:
    """One worker as the dispatcher sees it."""

    index: int
    uri: str
    state: str  # "active", "inactive" (pings failed) or "disabled" (the pool took it out)
    probing: bool
    flags: str  # Kamailio's own letters, e.g. "AP"
    load: int  # calls on it now (its dialogs at the edge; see EdgeRpc.targets)
    maxload: int


def parse_kamcmd(text: str) -> Any:
    """kamcmd's printed structures ({ KEY: value ... }) as dicts; repeated keys become lists."""
    # Every key collects a list while parsing; single values are unwrapped at the end.
    stack: list[dict[str, list[Any]]] = [{}]
    keys: list[str] = ["ROOT"]
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.endswith("{"):
            key = line[:-1].strip().rstrip(":").strip() or "ITEM"
            stack.append({})
            keys.append(key)
            continue
        if line == "}":
            if len(stack) > 1:
                done, key = stack.pop(), keys.pop()
                stack[-1].setdefault(key, []).append(_unwrap(done))
            continue
        key, sep, value = line.partition(":")
        if sep:
            stack[-1].setdefault(key.strip(), []).append(value.strip())
        else:
            stack[-1].setdefault("VALUE", []).append(line)
    while len(stack) > 1:
        done, key = stack.pop(), keys.pop()
        stack[-1].setdefault(key, []).append(_unwrap(done))
    root = _unwrap(stack[0])
    return root.get("ITEM", root) if isinstance(root, dict) else root


def _unwrap(d: dict[str, list[Any]]) -> dict[str, Any]:
    return {k: v[0] if len(v) == 1 else v for k, v in d.items()}


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def targets_from(data: Any, workers: list[WorkerAddress]) -> list[EdgeTarget]:
    """`dispatcher.list`, parsed, as the workers' targets in index order."""
    by_uri = {w.uri: w for w in workers}
    found: list[EdgeTarget] = []
    records = data.get("RECORDS") if isinstance(data, dict) else None
    for record in _as_list(records):
        for set_ in _as_list(record.get("SET")):
            targets = set_.get("TARGETS", {})
            for dest in _as_list(targets.get("DEST") if isinstance(targets, dict) else None):
                uri = str(dest.get("URI", ""))
                flags = str(dest.get("FLAGS", ""))
                worker = by_uri.get(uri)
                state = (
                    "disabled"
                    if "D" in flags
                    else "inactive"
                    if "I" in flags
                    else "active"
                    if "A" in flags
                    else "trying"
                )
                found.append(
                    EdgeTarget(
                        index=worker.index if worker else -1,
                        uri=uri,
                        state=state,
                        probing="P" in flags,
                        flags=flags,
                        load=_int(_get(dest, "RUNTIME", "DLGLOAD")),
                        maxload=_int(_get(dest, "ATTRS", "MAXLOAD")),
                    )
                )
    return sorted(found, key=lambda t: t.index)


@dataclass(frozen=True)
class EdgeDialog:
    """One call the edge's dialog module holds (`dlg.list`)."""

    h_entry: str
    h_id: str
    call_id: str
    state: int  # 1 unconfirmed, 2 early, 3 confirmed (no ACK yet), 4 confirmed, 5 deleted
    cseq: str  # the caller's CSeq number (of the INVITE while unanswered)

    @property
    def answered(self) -> bool:
        return self.state in (3, 4)

    @property
    def ringing(self) -> bool:
        return self.state in (1, 2)


def dialogs_from(data: Any) -> list[EdgeDialog]:
    """`dlg.list`, parsed (kamcmd prints one top-level { } per dialog)."""
    found: list[EdgeDialog] = []
    for d in _as_list(data):
        if not isinstance(d, dict) or "h_entry" not in d:
            continue
        found.append(
            EdgeDialog(
                h_entry=str(d["h_entry"]),
                h_id=str(d.get("h_id", "")),
                call_id=str(d.get("call-id", "")),
                state=_int(d.get("state")),
                cseq=str(_get(d, "caller", "cseq") or "1"),
            )
        )
    return found
