"""The wire protocol between the control plane and a media worker.

One JSON object per line: commands go to the worker's standard input, events come back on its
standard output (its standard error carries logs). Every message has `t`, its type; call-related
ones carry `call`, the worker's id for the call (`w<index>.<pid>.<n>`, unique across restarts,
so an event from a dead worker can never be taken for a live call).

Commands (control plane -> worker)
  ring        call, code (180, or 183 for early media)
  answer      call
  play        call, play (id chosen by the sender), files, loop, stop_on_dtmf
  stop_play   call
  record      call, rec (id), path, mix (also record what we send: whole-call recording),
              path2 (dual channel: the call's party into path, what it hears into path2)
  stop_record call, rec
  pause_record call, rec (silence is written until resumed: the file keeps the call's length)
  resume_record call, rec
  bridge      call, other (both on this worker: audio both ways)
  conf_join   call, room (key of a room on this worker), muted (hears all, is heard unless muted)
  conf_mute   call, muted
  conf_leave  call
  redirect    call, target (302 with Contact: target)
  transfer    call, target (REFER)
  originate   call (id chosen by the sender), uri, caller_id
  hangup      call, code, reason
  message     id (chosen by the sender), uri, from, body, content_type: an out-of-dialog SIP
              MESSAGE (RFC 3428), no call slot used
  shutdown    (hang up nothing: the control plane drains first; then libDestroy and exit 0)

Events (worker -> control plane)
  ready       port, max_calls
  incoming    call, from, to, ruri, sip_call_id
  state       call, state (early|confirmed|disconnected), code, reason
  dtmf        call, digit, method (rfc4733|info)
  play_done   call, play, stopped (eof|dtmf|stopped|hangup)
  record_done call, rec, path, seconds
  talk        call, talking, seconds (a member of a conference room starts or stops speaking;
              seconds: its talking time in the room so far, see flexvoice.sip.talk)
  error       call, cmd, message[, ended] (a command the worker could not carry out; `ended`:
              the call had ended before the command arrived, a race rather than a fault; a
              hangup for such a call gets no answer at all: its end was reported already)
  message_status  id, code, reason, sip_call_id (the final answer to a `message`; the
              Call-ID is empty when PJSIP itself gave up)
  message_in  from, to, body, content_type (a MESSAGE that reached the worker)

Nothing here does I/O: `encode` and `decode` turn messages into lines and back, and `decode`
refuses what does not fit (a worker bug must not become a control-plane crash).
"""

from __future__ import annotations

import contextlib
import json
import json.encoder
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

# The user part of internal calls between workers (conference links): the pool sends them to
# `on_internal`, never to number routing; the worker tunes their media for a short hop.
INTERNAL_PREFIX = "fv-link-"

COMMANDS = frozenset(
    {
        "ring",
        "answer",
        "play",
        "stop_play",
        "record",
        "stop_record",
        "pause_record",
        "resume_record",
        "bridge",
        "conf_join",
        "conf_mute",
        "conf_leave",
        "redirect",
        "transfer",
        "originate",
        "hangup",
        "message",
        "shutdown",
    }
)
EVENTS = frozenset(
    {
        "ready",
        "incoming",
        "state",
        "dtmf",
        "play_done",
        "record_done",
        "talk",
        "error",
        "message_status",
        "message_in",
    }
)
CallState = Literal["early", "confirmed", "disconnected"]


class ProtocolError(ValueError):
    """A line that is not a valid message."""


@dataclass(frozen=True)
class Message:
    t: str
    fields: dict[str, Any]

    @property
    def call(self) -> str | None:
        value = self.fields.get("call")
        return value if isinstance(value, str) else None

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


def _not_json(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _line_encoder() -> Callable[[dict[str, Any]], str]:
    """One encoder for every line. JSONEncoder.encode builds a C encoder per call (json.dumps
    with separators a whole JSONEncoder too); the worker encodes an event per call state,
    so the C encoder is made once here, with JSONEncoder's settings (the same lines:
    compact, ASCII only). Messages are flat: no check for circular references."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is not None:
        with contextlib.suppress(TypeError):  # another signature: the slower path below
            chunks = make(
                None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",",
                False, False, True,
            )  # fmt: skip
            return lambda obj: "".join(chunks(obj, 0))
    return json.JSONEncoder(separators=(",", ":")).encode


_ENCODE = _line_encoder()


def encode(t: str, **fields: Any) -> bytes:
    if t not in COMMANDS and t not in EVENTS:
        raise ProtocolError(f"unknown message type {t!r}")
    return (_ENCODE({"t": t, **fields}) + "\n").encode()


def decode(line: bytes | str, allowed: frozenset[str]) -> Message:
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        raise ProtocolError("not a message object with a 't' field")
    t = obj.pop("t")
    if t not in allowed:
        raise ProtocolError(f"unexpected message type {t!r}")
    call = obj.get("call")
    if call is not None and not isinstance(call, str):
        raise ProtocolError("'call' must be a string")
    return Message(t, obj)
