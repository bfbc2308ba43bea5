"""A media worker: one process, one pjsua2 Endpoint, at most 4 calls (the wheel's limit).

One job, which is why it is longer than the 450 lines of issue 11: it is the only module that
imports pjsua2, the thin adapter between PJSIP and what has no pjsua2 in it, whose pure parts
live elsewhere (how long to sleep: wakes; which command goes where: dispatch; the pipes to the
control plane: workerio; WAV headers: wavfile; the fork server: forkserver).

The process's main thread owns the Endpoint and polls `libHandleEvents()`; with
`threadCnt = 0` and `mainThreadOnly` every PJSIP callback runs on that thread too. A reader
thread turns standard-input lines into commands on a queue that the main thread drains between
polls, so pjsua2 is never touched from another thread; after each command it sends a CRLF
keep-alive to the worker's own SIP port, which ends the poll at once, so an idle worker can
block for seconds and costs no CPU.
Events go out on standard output (see flexvoice.sip.protocol); logs on standard error.

Attack surface (PJSIP 2.15.1 advisories fixed only in 2.17): no ICE, no STUN/TURN, no
presence or subscriptions, no PJSIP DNS resolver (no nameserver configured: names are resolved
by the OS), no video; UDP/TCP bound to loopback unless `--no-edge` development mode says
otherwise.

Run: python -m flexvoice.sip.worker --index 0 --host 127.0.0.1 --port 5070 [--proxy URI]
 or: python -m flexvoice.sip.worker --template (standard input: a Unix SEQPACKET socket), a
     pre-forked template that has imported pjsua2 and this module once and forks a worker per
     request (see flexvoice.sip.forkserver); the pool starts its workers that way.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pjsua2 as pj

from flexvoice.sip import forkserver, talk, wakes
from flexvoice.sip.addresses import edge_source
from flexvoice.sip.dispatch import WORKER_COMMANDS, EndedCalls, handler_name, no_call_answer
from flexvoice.sip.eventout import EventOut
from flexvoice.sip.protocol import INTERNAL_PREFIX, Message, encode
from flexvoice.sip.wavfile import prompt_seconds, silence_file, wav_closed
from flexvoice.sip.workerio import read_commands, take_stdout

MAX_CALLS = 4
SLOT_OVERLAP = 2  # pjsua call slots past MAX_CALLS for a call ending as the next arrives
# pjmedia/stream.h flags of OnDtmfEventParam (not exported by the wheel)
DTMF_IS_UPDATE = 1
DTMF_IS_END = 2
PJ_ETOOMANY = 70010  # pjlib's "too many": no call slot free in pjsua
_CALL_ID = re.compile(r"^(?:Call-ID|i)\s*:(.*)$", re.IGNORECASE | re.MULTILINE)
RECORDING_CLOSE_WAIT = 5.0  # seconds to wait for PJSIP to close a recording's file
SECOND = "#2"  # the key of a dual-channel recording's second recorder: its id + this
# The control plane decides within milliseconds (number lookup, then ring, answer or refuse);
# past this, the worker refuses the INVITE itself (refuse_undecided).
DECIDE_WITHIN = 10.0
# Conference links (calls to sip:fv-link-...@ another worker) carry a room from one worker's
# bridge to another's on loopback; each hop adds a frame of packetising, a jitter buffer and
# the wait for the far bridge's next tick. Measured (bench conference, 12 in a room, depth 3,
# load 7-10): a hop cost 35-45 ms with 20 ms frames, packets and the default jitter buffer,
# 10-25 ms with 10 ms bridge frames, 10 ms packets on links (asked with a=ptime in their SDP:
# PJSIP encodes at the remote's ptime) and a link jitter buffer of one packet (loopback has
# no network jitter; only the far worker's scheduling).
# Relays (links only) tick their bridge every 10 ms; call workers keep 20 ms frames: at 10 ms a
# talking caller cost 18.9-19.2 ms of worker CPU per call against 14.5-17.2 (bench worker_cpu
# talk, side by side, load 2-3), while a room of 50 with 8 relays kept its worst delay (191-369
# ms with every worker at 10 ms, 217-404 ms with call workers at 20 ms, load 4-9, alternating).
FRAME_MS = 20
RELAY_FRAME_MS = 10
LINK_PTIME = 10
LINK_JB_MS = (10, 10, 40, 200)  # initial, minimum and maximum prefetch, capacity
GRAVE_SECONDS = 2.0  # how long a retired pjsua2 object is kept after PJSIP let go of it
# ... unless more than GRAVE_CROWD wait: then the oldest go once GRAVE_MIN_SECONDS old (a
# dozen media clock ticks after their port was disconnected). pjsua holds at most 32 players
# (PJSUA_MAX_PLAYERS); a worker taking its 20 new calls a second, one prompt each, kept 40
# for 2 s and its next prompts failed with PJ_ETOOMANY.
GRAVE_CROWD = 12
GRAVE_MIN_SECONDS = 0.25


def ignore(self: Any, prm: Any) -> None:
    """pjsua2 calls into Python for every callback of a Call subclass, overridden or not; one
    left to the base class crosses back into C++ to do nothing. Those empty in pjsua2's Call
    that come a dozen times per call end here instead."""


CALL_STATES = {
    pj.PJSIP_INV_STATE_EARLY: "early",
    pj.PJSIP_INV_STATE_CONFIRMED: "confirmed",
    pj.PJSIP_INV_STATE_DISCONNECTED: "disconnected",
}
# Offered in this order; everything else the wheel has (speex, iLBC, GSM, ...) is disabled.
CODECS = {"PCMA/8000": 250, "PCMU/8000": 240, "G722/16000": 230}


class Worker:
    def __init__(
        self,
        index: int,
        host: str,
        port: int,
        proxy: str | None,
        rtp_port: int,
        media_host: str | None = None,
        rtp_ports: int = 16,
        idle_ms: int = wakes.IDLE_POLL_MS,
        relay: bool = False,
    ):
        self.index = index
        self.prefix = f"w{index}.{os.getpid()}."
        self.counter = 0
        # Events go out once per turn of the loop, before it waits again (see eventout).
        self.out = EventOut(EVENTS_OUT)
        # Filled by the reader thread, drained by the main thread (deque: thread-safe ends).
        self.commands: collections.deque[Message | None] = collections.deque()
        self.calls: dict[str, WorkerCall] = {}
        # Calls that ended lately: a command for one of them crossed its end (see dispatch).
        self.ended_calls = EndedCalls()
        # Conference rooms on this worker: room key -> its members (calls mixed together).
        self.rooms: dict[str, list[WorkerCall]] = {}
        self.next_talk_sample = 0.0  # when the members' levels are read next (talk.py)
        # Objects PJSIP may still call back into: dropped only from the main loop, later
        # (oldest first: the loop looks at the first one only).
        self.graveyard: collections.deque[tuple[float, Any]] = collections.deque()
        # Set by what may change how long the loop may sleep or what its chores are (a
        # command, an event sent, a prompt started, an object retired); else a wake (an RTP
        # packet, 50 a second per call) costs the loop no Python beyond a few tests.
        self.changed = True
        # The reader thread sends a wake-up only while the main thread may be blocked in
        # PJSIP and none is on its way (see Worker.needs_wake).
        self.asleep = False
        self.wake_sent = False
        # (give-up time, call, rec, paths, seconds) of recordings whose files are being closed
        self.finished_recordings: list[tuple[float, str, str, tuple[str, ...], float]] = []
        self.running = True
        self.idle_ms = idle_ms
        # WORKER_BATCH_CALLS=N: batch wakes from N calls up (a benchmark's switch; 99: never).
        batch = os.environ.get("WORKER_BATCH_CALLS")
        self.batch_calls = int(batch) if batch else wakes.BATCH_CALLS
        # (give-up time, call, URI, op) of originates waiting for a slot pjsua has not freed
        self.waiting_originates: list[tuple[float, WorkerCall, str, Any]] = []
        # the Buddy's address (the request's user data) -> (message id, Buddy) of MESSAGEs
        # waiting for their final answer
        self.pending_messages: dict[int, tuple[str, Any]] = {}

        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        # The edge counts a call done when its BYE passes and may send the next INVITE at
        # once, before this loop has read the BYE or pjsua has freed the call's slot: with
        # no spare slot pjsua answered that caller 486 (2-9 calls in 2,000 at 200 calls per
        # second once the edge filled one worker before the next). The edge and the pool keep
        # a worker at MAX_CALLS; pjsua's own bound only has to cover that overlap.
        cfg.uaConfig.maxCalls = MAX_CALLS + SLOT_OVERLAP
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "FlexVoice"
        cfg.logConfig.level = 1
        cfg.logConfig.consoleLevel = 1
        cfg.medConfig.clockRate = 8000  # narrow-band calls: recordings at 8 kHz
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.noVad = True
        # RTP on the SIP ioqueue, polled by this thread: no media thread of PJSIP's own, which
        # would wake every 10 ms even with no call (0.3 % of a core per idle worker).
        cfg.medConfig.hasIoqueue = False
        cfg.medConfig.threadCnt = 0
        if relay:
            # A relay holds only conference links (4 x 100 packets a second): PJSIP's media
            # thread takes them in C; through the main loop each would wake Python.
            cfg.medConfig.hasIoqueue = True
            cfg.medConfig.threadCnt = 1
        cfg.medConfig.audioFramePtime = RELAY_FRAME_MS if relay else FRAME_MS
        self.ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = port
        tcfg.boundAddress = host
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_TCP, tcfg)
        self.ep.audDevManager().setNullDev()
        for codec in self.ep.codecEnum2():
            self.ep.codecSetPriority(codec.codecId, 0)
        for codec_id, priority in CODECS.items():
            self.ep.codecSetPriority(codec_id, priority)
        self.ep.libStart()

        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:flexvoice@{host}:{port}"
        if proxy:
            acfg.sipConfig.proxies.append(proxy)
        # Trunk credentials come in the environment (never on the command line, where `ps`
        # shows them); they answer the trunk's digest challenge on outbound calls.
        user, password = (
            os.environ.get("FLEXVOICE_TRUNK_USER"),
            os.environ.get("FLEXVOICE_TRUNK_PASSWORD"),
        )
        if user and password:
            acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
        acfg.natConfig.iceEnabled = False
        acfg.natConfig.turnEnabled = False
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.presConfig.publishEnabled = False
        # RTP goes straight between the carrier and the worker (only SIP passes the edge):
        # on loopback by default, on `sip.workers.media_address` when carriers must reach it.
        acfg.mediaConfig.transportConfig.boundAddress = media_host or host
        acfg.mediaConfig.transportConfig.port = rtp_port
        # pjsua tries pairs from `port` up to and including port + portRange (RTCP one above):
        # the last pair must still be ours, not the next worker's.
        acfg.mediaConfig.transportConfig.portRange = max(2, rtp_ports - 2)
        acfg.videoConfig.autoShowIncoming = False
        acfg.videoConfig.autoTransmitOutgoing = False
        self.account = WorkerAccount(self)
        self.account.create(acfg, True)
        self.host = host
        self.port = port
        self.edge = edge_source(proxy)
        # call id -> when the control plane must have said something about it (see
        # refuse_undecided)
        self.undecided: dict[str, float] = {}

    # -- output ------------------------------------------------------------------------------
    def emit(self, t: str, **fields: Any) -> None:
        """Queue an event; the loop writes the turn's events before it waits in PJSIP again.
        Main thread only (PJSIP's callbacks run there: mainThreadOnly)."""
        self.out.pending.append(encode(t, **fields))
        self.changed = True

    def new_call_id(self) -> str:
        self.counter += 1
        return f"{self.prefix}{self.counter}"

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> None:
        self.emit("ready", port=self.port, max_calls=MAX_CALLS, pid=os.getpid())
        # Kept short: this runs on every wake, 50 times a second per call with media up (RTP
        # shares PJSIP's ioqueue with SIP). The chores and the next wait are worked out again
        # only when something changed or their time has come.
        handle_events = self.ep.libHandleEvents
        commands = self.commands
        out = self.out
        monotonic, sleep = time.monotonic, time.sleep
        batch_calls, batch_s = self.batch_calls, wakes.BATCH_MS / 1000
        wait_ms, chores_at = 0, 0.0
        try:
            while self.running:
                if out.pending:
                    out.flush()  # the turn's events, before the wait (none waits for a packet)
                self.asleep = True
                # A command queued while the loop was busy: PJSIP's events, but no wait.
                handle_events(0 if commands else wait_ms)
                self.asleep = False
                self.wake_sent = False
                while commands:
                    msg = commands.popleft()
                    if msg is None:  # standard input closed: the control plane is gone
                        self.running = False
                        break
                    self.dispatch(msg)
                if self.rooms:
                    self.sample_talk()
                now = monotonic()
                if self.changed or now >= chores_at:
                    self.changed = False
                    self.chores(now)
                    wait_ms = self.poll_ms()
                    chores_at = now + wait_ms / 1000
                else:
                    # Nothing changed: most likely an RTP packet woke the loop (see BATCH_MS).
                    # Not while a conference room is mixed here: a late packet is heard late by
                    # the whole room, after each hop.
                    if len(self.calls) >= batch_calls and not commands and not self.rooms:
                        sleep(batch_s)
                        now = monotonic()
                    wait_ms = max(1, int((chores_at - now) * 1000))
        finally:
            out.flush()  # what a turn cut short by an error made still goes out
        self.shutdown()

    def chores(self, now: float) -> None:
        if self.graveyard and now - self.graveyard[0][0] >= self.grave_wait():
            self.bury()
        if self.undecided and now >= next(iter(self.undecided.values())):
            self.refuse_undecided()
        if self.finished_recordings:
            self.report_recordings()
        if self.waiting_originates:
            self.retry_originates()

    def needs_wake(self) -> bool:
        """Called by the reader thread after queueing a command: whether to send a wake-up.
        The main thread sets `asleep` before it looks at the queue and blocks, so a command
        queued while `asleep` is False is seen before the next wait; one queued while a
        wake-up is on its way is seen when that one ends the wait."""
        if not self.asleep or self.wake_sent:
            return False
        self.wake_sent = True
        return True

    def poll_ms(self) -> int:
        """How long the next libHandleEvents may block (see flexvoice.sip.wakes)."""
        return wakes.wait_ms(
            time.monotonic(),
            calls=bool(self.calls),
            play_ends=(call.play_ends for call in self.calls.values()),
            closing_files=bool(self.finished_recordings),
            retrying=bool(self.waiting_originates),
            graveyard=bool(self.graveyard),
            idle_ms=self.idle_ms,
        )

    def sample_talk(self) -> None:
        """Each room member's speech level into its talk meter. RTP wakes the loop every frame
        while calls are up, so sampling needs no wake of its own."""
        now = time.monotonic()
        if now < self.next_talk_sample:
            return
        self.next_talk_sample = now + talk.SAMPLE_EVERY
        for members in self.rooms.values():
            for call in members:
                if call.audio is not None:
                    with contextlib.suppress(pj.Error):
                        # pjsua2's "tx" level of a call's port: what the call sends into the
                        # bridge (its "rx" level is what the bridge sends it: measured).
                        call.report_talk(call.talk.sample(now, call.audio.getTxLevel()))

    def call_ended(self, call_id: str) -> None:
        self.ended_calls.add(call_id)

    def wake_address(self) -> tuple[str, int]:
        """Where the reader thread sends its wake-up: our own UDP SIP transport."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return host, self.port

    def report_recordings(self, force: bool = False) -> None:
        waiting = []
        now = time.monotonic()
        for entry in self.finished_recordings:
            give_up, call_id, rec_id, paths, seconds = entry
            if force or now > give_up or all(wav_closed(path) for path in paths):
                self.emit("record_done", call=call_id, rec=rec_id, path=paths[0], seconds=seconds)
            else:
                waiting.append(entry)
        self.finished_recordings = waiting

    def grave_wait(self) -> float:
        return GRAVE_MIN_SECONDS if len(self.graveyard) > GRAVE_CROWD else GRAVE_SECONDS

    def bury(self, force: bool = False) -> None:
        now = time.monotonic()
        graveyard = self.graveyard
        while graveyard and (force or now - graveyard[0][0] >= self.grave_wait()):
            graveyard.popleft()

    def retire(self, obj: Any) -> None:
        self.graveyard.append((time.monotonic(), obj))
        self.changed = True

    def shutdown(self) -> None:
        for call in list(self.calls.values()):
            call.end(503, "Service Unavailable")
        for _ in range(50):
            self.out.flush()
            self.ep.libHandleEvents(wakes.SHUTDOWN_POLL_MS)
            if not self.calls:
                break
        self.calls.clear()
        self.bury(force=True)
        for _ in range(100):
            self.out.flush()
            self.ep.libHandleEvents(wakes.SHUTDOWN_POLL_MS)
            self.report_recordings()
            if not self.finished_recordings:
                break
        self.report_recordings(force=True)
        self.out.flush()
        self.account.shutdown()
        self.ep.libDestroy()

    def refuse_undecided(self) -> None:
        """An INVITE the control plane said nothing about within DECIDE_WITHIN seconds gets
        500 from the worker itself: a caller always hears an answer, and the edge frees the
        slot at once rather than when its transaction timers run out. Deadlines are added in
        time order, so the first one not yet due ends the look."""
        now = time.monotonic()
        for call_id, deadline in list(self.undecided.items()):
            if now < deadline:
                break
            del self.undecided[call_id]
            call = self.calls.get(call_id)
            if call is not None and not call.ended:
                call.end(500, "No Decision")

    def dispatch(self, msg: Message) -> None:
        self.changed = True
        if msg.call:
            self.undecided.pop(msg.call, None)
        if msg.t in WORKER_COMMANDS:
            {"shutdown": self.stop, "originate": self.originate, "message": self.send_message}[
                msg.t
            ](msg)
            return
        call = self.calls.get(msg.call or "")
        if call is None:
            answer = no_call_answer(msg.t, msg.call, self.ended_calls)
            if answer is not None:
                self.emit("error", **answer)
            return
        handler: Callable[[Message], None] | None = getattr(call, handler_name(msg.t), None)
        if handler is None:
            self.emit("error", call=msg.call, cmd=msg.t, message="unknown command")
            return
        try:
            handler(msg)
        except pj.Error as exc:
            self.emit("error", call=msg.call, cmd=msg.t, message=exc.info(False))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.emit("error", call=msg.call, cmd=msg.t, message=str(exc))

    def stop(self, msg: Message) -> None:
        self.running = False

    def originate(self, msg: Message) -> None:
        call_id = msg.get("call") or self.new_call_id()
        if len(self.calls) >= MAX_CALLS:
            self.emit("state", call=call_id, state="disconnected", code=503, reason="worker full")
            return
        call = WorkerCall(self, call_id)
        call.link = str(msg.get("uri")).startswith(f"sip:{INTERNAL_PREFIX}")
        prm = pj.CallOpParam(True)
        caller_id = msg.get("caller_id")
        if caller_id:
            prm.txOption.localUri = f"<sip:{caller_id}@{self.host}>"
        self.calls[call_id] = call
        self.make_call(time.monotonic() + wakes.ORIGINATE_RETRY_FOR, call, str(msg.get("uri")), prm)

    def make_call(self, give_up: float, call: WorkerCall, uri: str, prm: Any) -> None:
        try:
            call.makeCall(uri, prm)
        except pj.Error as exc:
            if exc.status == PJ_ETOOMANY and time.monotonic() < give_up:
                self.waiting_originates.append((give_up, call, uri, prm))
                return
            self.calls.pop(call.id, None)
            self.emit("state", call=call.id, state="disconnected", code=500, reason=exc.reason)

    def retry_originates(self) -> None:
        waiting, self.waiting_originates = self.waiting_originates, []
        for give_up, call, uri, prm in waiting:
            if not call.ended:  # else hung up while it waited (its end is reported)
                self.make_call(give_up, call, uri, prm)

    # -- SIP MESSAGE (RFC 3428), outside any call ------------------------------------------
    def send_message(self, msg: Message) -> None:
        """A Buddy without subscription sends it (no call slot, the account's outbound proxy:
        the edge). The request carries the Buddy's address as its user data, which PJSIP hands
        back with the final answer: answers are matched to requests exactly, even for two
        identical texts to one number (matching by (To, body) swapped their outcomes)."""
        msg_id = str(msg.get("id"))
        token = 0
        try:
            bcfg = pj.BuddyConfig()
            bcfg.uri = str(msg.get("uri"))
            bcfg.subscribe = False
            buddy = pj.Buddy()
            buddy.create(self.account, bcfg)
            prm = pj.SendInstantMessageParam()
            prm.content = str(msg.get("body"))
            prm.contentType = str(msg.get("content_type") or "text/plain;charset=UTF-8")
            prm.userData = buddy.this
            token = int(buddy.this)
            sender = msg.get("from")
            if sender:
                prm.txOption.localUri = f"<sip:{sender}@{self.host}>"
            self.pending_messages[token] = (msg_id, buddy)
            buddy.sendInstantMessage(prm)
        except pj.Error as exc:
            self.take_pending(token)
            self.emit("message_status", id=msg_id, code=500, reason=exc.reason)

    def take_pending(self, token: int) -> str | None:
        found = self.pending_messages.pop(token, None)
        if found is None:
            return None
        msg_id, buddy = found
        self.retire(buddy)
        return msg_id


class WorkerAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, worker: Worker):
        super().__init__()
        self.worker = worker

    def onIncomingCall(self, prm: Any) -> None:
        worker = self.worker
        rdata = prm.rdata  # a new proxy object at each reading
        if worker.edge is not None and rdata.srcAddress != worker.edge:
            # Behind the edge, SIP comes from the edge alone: anything else on loopback is
            # someone bypassing its ACL, bounds and flood limits.
            self.refuse(prm.callId, 403, "Forbidden")
            return
        call_id = worker.new_call_id()
        try:
            call = WorkerCall(worker, call_id, prm.callId)
            info = call.getInfo()
            first_line = rdata.wholeMsg.split("\r\n", 1)[0].split(" ")
        except (pj.Error, ValueError, UnicodeError):
            self.refuse(prm.callId, 500, "Server Internal Error")
            return
        call.link = len(first_line) > 1 and first_line[1].startswith(f"sip:{INTERNAL_PREFIX}")
        worker.calls[call_id] = call
        worker.undecided[call_id] = time.monotonic() + DECIDE_WITHIN
        worker.emit(
            "incoming",
            call=call_id,
            **{"from": info.remoteUri, "to": info.localUri},
            ruri=first_line[1] if len(first_line) > 1 else "",
            sip_call_id=info.callIdString,
        )

    def refuse(self, pj_call_id: int, code: int, reason: str) -> None:
        """A final answer to an INVITE no call of ours takes (no slot, no event)."""
        call = pj.Call(self, pj_call_id)
        prm = pj.CallOpParam()
        prm.statusCode = code
        prm.reason = reason
        with contextlib.suppress(pj.Error):
            call.hangup(prm)
        self.worker.retire(call)

    def onInstantMessageStatus(self, prm: Any) -> None:
        msg_id = self.worker.take_pending(int(prm.userData) if prm.userData is not None else 0)
        if msg_id is not None:
            # The answer's Call-ID names the request at the carrier (none when PJSIP itself
            # gave up: timeout, transport error).
            found = _CALL_ID.search(prm.rdata.wholeMsg or "")
            self.worker.emit(
                "message_status",
                id=msg_id,
                code=int(prm.code),
                reason=str(prm.reason),
                sip_call_id=found.group(1).strip() if found else "",
            )

    def onInstantMessage(self, prm: Any) -> None:
        self.worker.emit(
            "message_in",
            **{"from": str(prm.fromUri), "to": str(prm.toUri)},
            body=str(prm.msgBody),
            content_type=str(prm.contentType),
        )


class WorkerCall(pj.Call):  # type: ignore[misc]
    def __init__(self, worker: Worker, call_id: str, pj_call_id: int = pj.PJSUA_INVALID_ID):
        super().__init__(worker.account, pj_call_id)
        self.worker = worker
        self.id = call_id
        self.audio: Any = None
        self.player: Any = None
        self.play_id: str | None = None
        self.play_stop_on_dtmf = False
        self.play_seconds: float | None = None  # of a prompt played once (None: looped)
        self.play_ends: float | None = None  # when it should reach its end (playing once)
        self.recorders: dict[str, Recording] = {}
        self.bridged: list[WorkerCall] = []
        self.room: str | None = None  # the conference room this call is in
        self.pending_room: tuple[str, bool] | None = None  # joined before its media was up
        self.muted = False
        self.talk = talk.TalkMeter()  # talking time in its conference room
        self.ended = False
        self.link = False  # a conference link to another worker (see LINK_PTIME)

    # -- PJSIP callbacks (main thread) ------------------------------------------------------
    onCallTsxState = onCallMediaTransportState = onStreamCreated = onStreamDestroyed = ignore

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        state = CALL_STATES.get(info.state)
        if state is None:
            return
        if state == "disconnected":
            self.release()
        self.worker.emit(
            "state", call=self.id, state=state, code=info.lastStatusCode, reason=info.lastReason
        )

    def onCallSdpCreated(self, prm: Any) -> None:
        # Both ends of a link ask for 10 ms packets (offer and answer alike: the answer is
        # made when the call is answered, so this object exists by then).
        if not self.link:
            return  # the SDP (a string made for Python) is read for links only
        sdp = prm.sdp.wholeSdp
        if "a=ptime" not in sdp:
            prm.sdp.wholeSdp = f"{sdp.rstrip()}\r\na=ptime:{LINK_PTIME}\r\n"

    def onStreamPreCreate(self, prm: Any) -> None:
        if self.link:
            info = prm.streamInfo
            info.jbInit, info.jbMinPre, info.jbMaxPre, info.jbMax = LINK_JB_MS

    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status in (
                pj.PJSUA_CALL_MEDIA_ACTIVE,
                pj.PJSUA_CALL_MEDIA_REMOTE_HOLD,
            ):
                audio = self.getAudioMedia(media.index)
                if self.audio is None:
                    self.audio = audio
                    self.replay_pending()
                else:
                    self.audio = audio

    def onDtmfEvent(self, prm: Any) -> None:
        # One callback per RFC 4733 packet of a digit: the first (no UPDATE/END flag) counts.
        # (onDtmfDigit is not used: with this one overridden, PJSIP reports through it only.)
        if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO:
            self.digit(prm.digit, "info")
        elif not prm.flags & (DTMF_IS_UPDATE | DTMF_IS_END):
            self.digit(prm.digit, "rfc4733")

    def digit(self, digit: str, method: str) -> None:
        self.worker.emit("dtmf", call=self.id, digit=digit, method=method)
        if self.player is not None and self.play_stop_on_dtmf:
            self.stop_player("dtmf")

    # -- commands -----------------------------------------------------------------------------
    def cmd_ring(self, msg: Message) -> None:
        prm = pj.CallOpParam()
        prm.statusCode = int(msg.get("code", 180))
        self.answer(prm)

    def cmd_answer(self, msg: Message) -> None:
        prm = pj.CallOpParam()
        prm.statusCode = 200
        self.answer(prm)

    def cmd_play(self, msg: Message) -> None:
        self.stop_player("stopped")
        files = [str(f) for f in msg.get("files", [])]
        lengths = [prompt_seconds(f) for f in files]
        for f, length in zip(files, lengths, strict=True):
            if length is None:
                raise ValueError(f"prompt file not found: {f}")
        player = PromptPlayer(self, str(msg.get("play")))
        loop = bool(msg.get("loop"))
        if len(files) == 1:
            player.createPlayer(files[0], 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
        else:
            player.createPlaylist(files, "prompts", 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
        self.player = player
        self.play_id = str(msg.get("play"))
        self.play_stop_on_dtmf = bool(msg.get("stop_on_dtmf"))
        self.play_seconds = None if loop else sum(length or 0.0 for length in lengths)
        if self.audio is not None:
            player.startTransmit(self.audio)
            self.playing_from_now()
        # else: replay_pending() starts it when media comes up (early media, answer)
        self.refeed_recordings()  # a whole-call recording hears what we play too

    def playing_from_now(self) -> None:
        if self.play_seconds is not None:
            self.play_ends = time.monotonic() + self.play_seconds
            self.worker.changed = True  # the loop must wake for its end

    def replay_pending(self) -> None:
        self.join_pending_room()
        if self.player is not None and self.audio is not None:
            self.player.startTransmit(self.audio)
            self.playing_from_now()
        self.refeed_recordings()

    def cmd_stop_play(self, msg: Message) -> None:
        self.stop_player("stopped")

    def stop_player(self, why: str) -> None:
        player, play_id = self.player, self.play_id
        if player is None:
            return
        self.player = None
        self.play_id = None
        self.play_ends = self.play_seconds = None
        if self.audio is not None:
            with contextlib.suppress(pj.Error):
                player.stopTransmit(self.audio)
        for rec in self.recorders.values():
            rec.unfeed_player(player)
        player.call = None  # the retired player must not keep the Call alive (see release)
        self.worker.retire(player)
        self.worker.emit("play_done", call=self.id, play=play_id, stopped=why)

    def player_eof(self, player: PromptPlayer) -> None:
        if player is self.player:
            self.stop_player("eof")

    def cmd_record(self, msg: Message) -> None:
        """One recorder (`mix`: both parties mixed; else this call alone), or with `path2` a
        dual-channel recording: two recorders, this call's party into `path`, what it hears
        into `path2` (the bridge is mono; the control plane interleaves the two)."""
        rec_id = str(msg.get("rec"))
        second = msg.get("path2")
        tracks = [(rec_id, str(msg.get("path")), "all" if msg.get("mix") else "self")]
        if second:
            tracks = [(rec_id, tracks[0][1], "self"), (rec_id + SECOND, str(second), "others")]
        started = time.monotonic()
        for key, path, hears in tracks:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            recorder = pj.AudioMediaRecorder()
            recorder.createRecorder(path)
            rec = self.recorders[key] = Recording(recorder, path, started, hears)
            if second:
                # A recorder that nothing feeds writes nothing: the channel of a party not
                # yet (or no longer) heard would lose that time and slip against the other.
                # Looped silence keeps each half's clock (mixing silence in changes nothing).
                rec.clock = pj.AudioMediaPlayer()
                rec.clock.createPlayer(str(silence_file()), 0)
                rec.clock.startTransmit(recorder)
        self.refeed_recordings()

    def tracks(self, rec_id: str) -> list[Recording]:
        """The recorders of one recording (two for dual channel)."""
        keys = (rec_id, rec_id + SECOND)
        return [self.recorders[key] for key in keys if key in self.recorders]

    def refeed_recordings(self) -> None:
        """Connect what each recording should hear and does not yet: this call; with `mix`
        (whole-call recording) the calls bridged to it and the prompt it plays. Called when
        media comes up, a bridge is made, a prompt starts or a recording resumes."""
        for rec in self.recorders.values():
            if rec.paused:
                continue
            calls = {"all": [self, *self.bridged], "self": [self], "others": self.bridged}
            for call in calls[rec.hears]:
                if call.audio is not None and call not in rec.calls:
                    call.audio.startTransmit(rec.recorder)
                    rec.calls.append(call)
            hears_player = rec.hears != "self"
            if hears_player and self.player is not None and self.player not in rec.players:
                self.player.startTransmit(rec.recorder)
                rec.players.append(self.player)

    def cmd_pause_record(self, msg: Message) -> None:
        for rec in self.tracks(str(msg.get("rec"))):
            if rec.paused:
                continue
            rec.unfeed()
            # Silence while paused, not nothing: the file keeps the call's timeline (its
            # length matches the call), and the pause is an audible gap rather than a cut.
            rec.silence = pj.AudioMediaPlayer()
            rec.silence.createPlayer(str(silence_file()), 0)
            rec.silence.startTransmit(rec.recorder)
            rec.paused = True

    def cmd_resume_record(self, msg: Message) -> None:
        for rec in self.tracks(str(msg.get("rec"))):
            if rec.paused:
                rec.stop_silence(self.worker)
                rec.paused = False
        self.refeed_recordings()

    def cmd_stop_record(self, msg: Message) -> None:
        self.stop_recorder(str(msg.get("rec")))

    def stop_recorder(self, rec_id: str) -> None:
        rec_id = rec_id.removesuffix(SECOND)
        tracks = self.tracks(rec_id)
        if not tracks:
            return
        paths = []
        for rec in tracks:
            self.recorders.pop(rec_id if rec.hears != "others" else rec_id + SECOND, None)
            rec.unfeed()
            rec.stop_silence(self.worker)
            rec.silence, rec.clock = rec.clock, None
            rec.stop_silence(self.worker)
            # Destroyed here, not retired. PJSIP's conference bridge removes the port (and
            # the WAV writer fills in the header's sizes) a little later, on its own clock,
            # so record_done waits until the header is complete: the file is ready to read.
            paths.append(rec.path)
            rec.recorder = None
        seconds = round(time.monotonic() - tracks[0].started, 3)
        del rec, tracks
        self.worker.finished_recordings.append(
            (time.monotonic() + RECORDING_CLOSE_WAIT, self.id, rec_id, tuple(paths), seconds)
        )

    def cmd_bridge(self, msg: Message) -> None:
        other = self.worker.calls.get(str(msg.get("other")))
        if other is None or other.audio is None or self.audio is None:
            raise ValueError("both calls must be on this worker with media up")
        self.stop_player("stopped")
        other.stop_player("stopped")
        self.audio.startTransmit(other.audio)
        other.audio.startTransmit(self.audio)
        self.bridged.append(other)
        other.bridged.append(self)
        self.refeed_recordings()
        other.refeed_recordings()

    # -- conference rooms: the bridge mixes; a port never hears itself (PJSIP: a port
    # receives only the ports connected to it), so every member hears every other one.
    def cmd_conf_join(self, msg: Message) -> None:
        self.conf_leave()
        self.pending_room = (str(msg.get("room")), bool(msg.get("muted")))
        if self.audio is not None:  # else replay_pending() joins once media is up
            self.join_pending_room()

    def join_pending_room(self) -> None:
        if self.pending_room is None or self.audio is None:
            return
        (room, self.muted), self.pending_room = self.pending_room, None
        self.stop_player("stopped")
        members = self.worker.rooms.setdefault(room, [])
        for other in members:
            if other.audio is None:
                continue
            if not self.muted:
                self.audio.startTransmit(other.audio)
            if not other.muted:
                other.audio.startTransmit(self.audio)
        members.append(self)
        self.room = room
        self.talk = talk.TalkMeter(seconds=self.talk.seconds)  # rejoined: the total goes on

    def report_talk(self, change: talk.TalkChange | None) -> None:
        if change is not None:
            self.worker.emit("talk", call=self.id, talking=change.talking, seconds=change.seconds)

    def cmd_conf_mute(self, msg: Message) -> None:
        muted = bool(msg.get("muted"))
        if self.room is None or self.audio is None or muted == self.muted:
            self.muted = muted
            return
        self.muted = muted
        for other in self.worker.rooms.get(self.room, []):
            if other is self or other.audio is None:
                continue
            with contextlib.suppress(pj.Error):
                if muted:
                    self.audio.stopTransmit(other.audio)
                else:
                    self.audio.startTransmit(other.audio)

    def cmd_conf_leave(self, msg: Message) -> None:
        self.conf_leave()

    def conf_leave(self) -> None:
        self.pending_room = None
        room, self.room = self.room, None
        if room is None:
            return
        self.report_talk(self.talk.stop())
        members = self.worker.rooms.get(room, [])
        if self in members:
            members.remove(self)
        if not members:
            self.worker.rooms.pop(room, None)
        if self.audio is None:
            return  # the call ended: PJSIP removed its port and its connections
        for other in members:
            if other.audio is None:
                continue
            with contextlib.suppress(pj.Error):
                self.audio.stopTransmit(other.audio)
            with contextlib.suppress(pj.Error):
                other.audio.stopTransmit(self.audio)

    def cmd_redirect(self, msg: Message) -> None:
        prm = pj.CallOpParam()
        prm.statusCode = 302
        header = pj.SipHeader()
        header.hName = "Contact"
        header.hValue = f"<{msg.get('target')}>"
        prm.txOption.headers.append(header)
        self.answer(prm)

    def cmd_transfer(self, msg: Message) -> None:
        self.xfer(str(msg.get("target")), pj.CallOpParam())

    def onCallTransferStatus(self, prm: Any) -> None:
        # The transferee's final NOTIFY: on success our part of the call is over.
        if prm.finalNotify:
            if 200 <= prm.statusCode < 300:
                self.end(200, "transferred")
            else:
                self.worker.emit(
                    "error",
                    call=self.id,
                    cmd="transfer",
                    message=f"transfer failed: {prm.statusCode} {prm.reason}",
                )

    def cmd_hangup(self, msg: Message) -> None:
        self.end(int(msg.get("code", 200)), str(msg.get("reason", "")))

    def end(self, code: int, reason: str) -> None:
        prm = pj.CallOpParam()
        prm.statusCode = code
        if reason:
            prm.reason = reason
        try:
            self.hangup(prm)
        except pj.Error:
            # Already gone; make sure the control plane hears about it exactly once.
            if not self.ended:
                self.release()
                self.worker.emit(
                    "state", call=self.id, state="disconnected", code=code, reason=reason
                )

    def release(self) -> None:
        """The call is over (called from onCallState DISCONNECTED, or when a hangup finds it
        gone). The Python object is dropped here, inside PJSIP's callback, as pjsua2's own
        samples delete theirs: pjsua reuses the call's slot as soon as the callback returns,
        and pjsua2's ~Call hangs up whatever call then holds the slot, so a Call object that
        outlives the callback would later cut a stranger's call."""
        if self.ended:
            return
        self.ended = True
        # Owned by the pjsua2 Call, whose bridge port PJSIP removes with every connection to
        # and from it. Forgotten first, so nothing below disconnects it: stopTransmit calls
        # naming the ending call's port, made here, cut every connection of the other
        # members of its conference room (measured: a room went silent when one of its links
        # ended; the bridge seems to read a disconnect naming a removed port as "all").
        self.audio = None
        self.stop_player("hangup")
        self.conf_leave()
        for rec_id in list(self.recorders):
            self.stop_recorder(rec_id)
        for other in self.bridged:
            if self in other.bridged:
                other.bridged.remove(self)
        self.bridged.clear()
        self.worker.calls.pop(self.id, None)
        self.worker.call_ended(self.id)


class Recording:
    """One recorder and what feeds it (sources are kept so they can be disconnected)."""

    def __init__(self, recorder: Any, path: str, started: float, hears: str):
        self.recorder = recorder
        self.path = path
        self.started = started
        self.hears = hears  # "self": this call's party; "others": what it hears; "all": both
        self.calls: list[WorkerCall] = []
        self.players: list[Any] = []
        self.silence: Any = None  # played while paused
        self.clock: Any = None  # silence played all along (dual channel: see cmd_record)
        self.paused = False

    def unfeed(self) -> None:
        for call in self.calls:
            if call.audio is not None:  # an ended call: PJSIP disconnected it already
                with contextlib.suppress(pj.Error):
                    call.audio.stopTransmit(self.recorder)
        self.calls.clear()
        for player in list(self.players):
            self.unfeed_player(player)

    def unfeed_player(self, player: Any) -> None:
        if player in self.players:
            self.players.remove(player)
            with contextlib.suppress(pj.Error):
                player.stopTransmit(self.recorder)

    def stop_silence(self, worker: Worker) -> None:
        if self.silence is not None:
            with contextlib.suppress(pj.Error):
                self.silence.stopTransmit(self.recorder)
            worker.retire(self.silence)
            self.silence = None


class PromptPlayer(pj.AudioMediaPlayer):  # type: ignore[misc]
    def __init__(self, call: WorkerCall, play_id: str):
        super().__init__()
        self.call: WorkerCall | None = call
        self.play_id = play_id

    def onEof2(self) -> None:
        # mainThreadOnly: this runs on the main thread, from libHandleEvents.
        if self.call is not None:
            self.call.player_eof(self)


EVENTS_OUT: Any = None


def main(argv: list[str] | None = None) -> int:
    global EVENTS_OUT
    parser = argparse.ArgumentParser(prog="flexvoice-worker")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rtp-port", type=int, default=0, help="first RTP port")
    parser.add_argument("--rtp-ports", type=int, default=16, help="RTP/RTCP ports from the first")
    parser.add_argument("--proxy", default=None, help="outbound proxy (the edge), e.g. sip:..;lr")
    parser.add_argument("--relay", action="store_true", help="conference links only")
    parser.add_argument("--media-host", default=None, help="address RTP binds to (default --host)")
    parser.add_argument(
        "--idle-ms", type=int, default=wakes.IDLE_POLL_MS, help="longest wait in PJSIP with no call"
    )
    args = parser.parse_args(argv)
    # The control plane stops us with the "shutdown" command; signals meant for the whole
    # process group (Ctrl-C) must not kill calls before it has drained them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    EVENTS_OUT = take_stdout()
    rtp_port = args.rtp_port or 20000 + args.index * args.rtp_ports
    try:
        worker = Worker(
            args.index,
            args.host,
            args.port,
            args.proxy,
            rtp_port,
            args.media_host,
            args.rtp_ports,
            args.idle_ms,
            args.relay,
        )
    except pj.Error as exc:
        print(f"worker {args.index}: cannot start: {exc.reason}", file=sys.stderr)
        return 1
    threading.Thread(
        target=read_commands,
        args=(worker.commands.append, worker.wake_address()),
        kwargs={"needs_wake": worker.needs_wake},
        daemon=True,
    ).start()
    profile_dir = os.environ.get("WORKER_PROFILE_DIR")
    if profile_dir:
        # A benchmark's switch (bench sip_load, SIP_LOAD_WORKER_PROFILE): py-spy cannot follow
        # workers forked from the template, so each worker profiles itself and writes
        # DIR/worker-PID.prof when it stops.
        profiler = cProfile.Profile(time.thread_time)  # CPU of this thread, not waits
        profiler.runcall(worker.run)
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(Path(profile_dir) / f"worker-{os.getpid()}.prof")
    else:
        worker.run()
    worker.out.flush()
    with contextlib.suppress(OSError, ValueError):  # the control plane is gone: nobody to tell
        EVENTS_OUT.flush()
    # The stdin reader thread may sit in read(): leave without the interpreter's teardown.
    os._exit(0)


if __name__ == "__main__":
    if sys.argv[1:] == ["--template"]:
        raise SystemExit(forkserver.serve(main))
    raise SystemExit(main())
