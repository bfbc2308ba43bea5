"""A media worker: one process, one pjsua2 Endpoint, at most 4 calls (the wheel's limit).

This is the only module that imports pjsua2. The process's main thread owns the Endpoint and
polls `libHandleEvents()`; with `threadCnt = 0` and `mainThreadOnly` every PJSIP callback runs
on that thread too. A reader thread turns standard-input lines into commands on a queue that
the main thread drains between polls, so pjsua2 is never touched from another thread.
Events go out on standard output (see flexvoice.sip.protocol); logs on standard error.

Attack surface (PJSIP 2.15.1 advisories fixed only in 2.17): no ICE, no STUN/TURN, no
presence or subscriptions, no PJSIP DNS resolver (no nameserver configured: names are resolved
by the OS), no video; UDP/TCP bound to loopback unless `--no-edge` development mode says
otherwise.

Run: python -m flexvoice.sip.worker --index 0 --host 127.0.0.1 --port 5070 [--proxy URI]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pjsua2 as pj

from flexvoice.sip.protocol import COMMANDS, Message, ProtocolError, decode, encode

MAX_CALLS = 4
# pjmedia/stream.h flags of OnDtmfEventParam (not exported by the wheel)
DTMF_IS_UPDATE = 1
DTMF_IS_END = 2
POLL_MS = 10
RECORDING_CLOSE_WAIT = 5.0  # seconds to wait for PJSIP to close a recording's file
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
    ):
        self.index = index
        self.prefix = f"w{index}.{os.getpid()}."
        self.counter = 0
        self.out_lock = threading.Lock()
        self.commands: queue.Queue[Message | None] = queue.Queue()
        self.calls: dict[str, WorkerCall] = {}
        # Objects PJSIP may still call back into: dropped only from the main loop, later.
        self.graveyard: list[tuple[float, Any]] = []
        # (give-up time, call, rec, path, seconds) of recordings whose file is being closed
        self.finished_recordings: list[tuple[float, str, str, str, float]] = []
        self.running = True
        # (To URI, body) -> [(message id, Buddy)] of MESSAGEs waiting for their answer
        self.pending_messages: dict[tuple[str, str], list[tuple[str, Any]]] = {}

        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.maxCalls = MAX_CALLS
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "FlexVoice"
        cfg.logConfig.level = 1
        cfg.logConfig.consoleLevel = 1
        cfg.medConfig.clockRate = 8000  # narrow-band calls: recordings at 8 kHz
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.noVad = True
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
        acfg.mediaConfig.transportConfig.portRange = 200
        acfg.videoConfig.autoShowIncoming = False
        acfg.videoConfig.autoTransmitOutgoing = False
        self.account = WorkerAccount(self)
        self.account.create(acfg, True)
        self.host = host
        self.port = port

    # -- output ------------------------------------------------------------------------------
    def emit(self, t: str, **fields: Any) -> None:
        line = encode(t, **fields)
        with self.out_lock:
            EVENTS_OUT.write(line)
            EVENTS_OUT.flush()

    def new_call_id(self) -> str:
        self.counter += 1
        return f"{self.prefix}{self.counter}"

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> None:
        self.emit("ready", port=self.port, max_calls=MAX_CALLS, pid=os.getpid())
        while self.running:
            self.ep.libHandleEvents(POLL_MS)
            while True:
                try:
                    msg = self.commands.get_nowait()
                except queue.Empty:
                    break
                if msg is None:  # standard input closed: the control plane is gone
                    self.running = False
                    break
                self.dispatch(msg)
            self.bury()
            if self.finished_recordings:
                self.report_recordings()
        self.shutdown()

    def report_recordings(self, force: bool = False) -> None:
        waiting = []
        now = time.monotonic()
        for entry in self.finished_recordings:
            give_up, call_id, rec_id, path, seconds = entry
            if force or now > give_up or wav_closed(path):
                self.emit("record_done", call=call_id, rec=rec_id, path=path, seconds=seconds)
            else:
                waiting.append(entry)
        self.finished_recordings = waiting

    def bury(self, force: bool = False) -> None:
        now = time.monotonic()
        self.graveyard = [(t, o) for t, o in self.graveyard if not force and now - t < 2.0]

    def retire(self, obj: Any) -> None:
        self.graveyard.append((time.monotonic(), obj))

    def shutdown(self) -> None:
        for call in list(self.calls.values()):
            call.end(503, "Service Unavailable")
        for _ in range(50):
            self.ep.libHandleEvents(POLL_MS)
            if not self.calls:
                break
        self.calls.clear()
        self.bury(force=True)
        for _ in range(100):
            self.ep.libHandleEvents(POLL_MS)
            self.report_recordings()
            if not self.finished_recordings:
                break
        self.report_recordings(force=True)
        self.account.shutdown()
        self.ep.libDestroy()

    def dispatch(self, msg: Message) -> None:
        if msg.t == "shutdown":
            self.running = False
            return
        if msg.t == "originate":
            self.originate(msg)
            return
        if msg.t == "message":
            self.send_message(msg)
            return
        call = self.calls.get(msg.call or "")
        if call is None:
            self.emit("error", call=msg.call, cmd=msg.t, message="no such call on this worker")
            return
        handler: Callable[[Message], None] | None = getattr(call, f"cmd_{msg.t}", None)
        if handler is None:
            self.emit("error", call=msg.call, cmd=msg.t, message="unknown command")
            return
        try:
            handler(msg)
        except pj.Error as exc:
            self.emit("error", call=msg.call, cmd=msg.t, message=exc.info(False))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.emit("error", call=msg.call, cmd=msg.t, message=str(exc))

    def originate(self, msg: Message) -> None:
        call_id = msg.get("call") or self.new_call_id()
        if len(self.calls) >= MAX_CALLS:
            self.emit("state", call=call_id, state="disconnected", code=503, reason="worker full")
            return
        call = WorkerCall(self, call_id)
        prm = pj.CallOpParam(True)
        caller_id = msg.get("caller_id")
        if caller_id:
            prm.txOption.localUri = f"<sip:{caller_id}@{self.host}>"
        self.calls[call_id] = call
        try:
            call.makeCall(str(msg.get("uri")), prm)
        except pj.Error as exc:
            del self.calls[call_id]
            self.emit("state", call=call_id, state="disconnected", code=500, reason=exc.reason)

    # -- SIP MESSAGE (RFC 3428), outside any call ------------------------------------------
    def send_message(self, msg: Message) -> None:
        """A Buddy without subscription sends it (no call slot, the account's outbound proxy:
        the edge). PJSIP hands no request id back to Python, so the answer is matched by
        (To URI, body), oldest first."""
        msg_id = str(msg.get("id"))
        uri = str(msg.get("uri"))
        body = str(msg.get("body"))
        try:
            bcfg = pj.BuddyConfig()
            bcfg.uri = uri
            bcfg.subscribe = False
            buddy = pj.Buddy()
            buddy.create(self.account, bcfg)
            prm = pj.SendInstantMessageParam()
            prm.content = body
            prm.contentType = str(msg.get("content_type") or "text/plain;charset=UTF-8")
            sender = msg.get("from")
            if sender:
                prm.txOption.localUri = f"<sip:{sender}@{self.host}>"
            self.pending_messages.setdefault((uri, body), []).append((msg_id, buddy))
            buddy.sendInstantMessage(prm)
        except pj.Error as exc:
            self.take_pending(uri, body)
            self.emit("message_status", id=msg_id, code=500, reason=exc.reason)

    def take_pending(self, uri: str, body: str) -> str | None:
        waiting = self.pending_messages.get((uri, body))
        if not waiting:
            return None
        msg_id, buddy = waiting.pop(0)
        if not waiting:
            del self.pending_messages[(uri, body)]
        self.retire(buddy)
        return msg_id


def wav_closed(path: str) -> bool:
    """True once the WAV writer filled in the RIFF size (it is 0 while the file is open)."""
    try:
        with open(path, "rb") as f:
            header = f.read(8)
    except OSError:
        return True  # nothing to wait for
    return len(header) == 8 and header[4:8] != b"\0\0\0\0"


class WorkerAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, worker: Worker):
        super().__init__()
        self.worker = worker

    def onIncomingCall(self, prm: Any) -> None:
        worker = self.worker
        call_id = worker.new_call_id()
        call = WorkerCall(worker, call_id, prm.callId)
        info = call.getInfo()
        first_line = prm.rdata.wholeMsg.split("\r\n", 1)[0].split(" ")
        worker.calls[call_id] = call
        worker.emit(
            "incoming",
            call=call_id,
            **{"from": info.remoteUri, "to": info.localUri},
            ruri=first_line[1] if len(first_line) > 1 else "",
            sip_call_id=info.callIdString,
        )

    def onInstantMessageStatus(self, prm: Any) -> None:
        msg_id = self.worker.take_pending(str(prm.toUri), str(prm.msgBody))
        if msg_id is not None:
            self.worker.emit(
                "message_status", id=msg_id, code=int(prm.code), reason=str(prm.reason)
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
        # rec id -> (recorder, path, start, the calls whose audio feeds it)
        self.recorders: dict[str, tuple[Any, str, float, list[WorkerCall]]] = {}
        self.bridged: list[WorkerCall] = []
        self.ended = False

    # -- PJSIP callbacks (main thread) ------------------------------------------------------
    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        state = {
            pj.PJSIP_INV_STATE_EARLY: "early",
            pj.PJSIP_INV_STATE_CONFIRMED: "confirmed",
            pj.PJSIP_INV_STATE_DISCONNECTED: "disconnected",
        }.get(info.state)
        if state is None:
            return
        if state == "disconnected":
            self.release()
        self.worker.emit(
            "state", call=self.id, state=state, code=info.lastStatusCode, reason=info.lastReason
        )

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
        for f in files:
            if not Path(f).is_file():
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
        if self.audio is not None:
            player.startTransmit(self.audio)
        # else: replay_pending() starts it when media comes up (early media, answer)

    def replay_pending(self) -> None:
        if self.player is not None and self.audio is not None:
            self.player.startTransmit(self.audio)
        for recorder, _path, _start, sources in self.recorders.values():
            if self.audio is not None and not sources:
                self.audio.startTransmit(recorder)
                sources.append(self)

    def cmd_stop_play(self, msg: Message) -> None:
        self.stop_player("stopped")

    def stop_player(self, why: str) -> None:
        player, play_id = self.player, self.play_id
        if player is None:
            return
        self.player = None
        self.play_id = None
        if self.audio is not None:
            with contextlib.suppress(pj.Error):
                player.stopTransmit(self.audio)
        player.call = None  # the retired player must not keep the Call alive (see release)
        self.worker.retire(player)
        self.worker.emit("play_done", call=self.id, play=play_id, stopped=why)

    def player_eof(self, player: PromptPlayer) -> None:
        if player is self.player:
            self.stop_player("eof")

    def cmd_record(self, msg: Message) -> None:
        rec_id = str(msg.get("rec"))
        path = Path(str(msg.get("path")))
        path.parent.mkdir(parents=True, exist_ok=True)
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(str(path))
        sources: list[WorkerCall] = []
        if self.audio is not None:
            self.audio.startTransmit(recorder)
            sources.append(self)
        if msg.get("mix"):
            # Whole-call recording: the bridged party too.
            for other in self.bridged:
                if other.audio is not None:
                    other.audio.startTransmit(recorder)
                    sources.append(other)
        self.recorders[rec_id] = (recorder, str(path), time.monotonic(), sources)

    def cmd_stop_record(self, msg: Message) -> None:
        self.stop_recorder(str(msg.get("rec")))

    def stop_recorder(self, rec_id: str) -> None:
        entry = self.recorders.pop(rec_id, None)
        if entry is None:
            return
        recorder, path, started, sources = entry
        for source in sources:
            if source.audio is None:  # that call ended: PJSIP disconnected it already
                continue
            with contextlib.suppress(pj.Error):
                source.audio.stopTransmit(recorder)
        # Destroyed here, not retired. PJSIP's conference bridge removes the port (and the
        # WAV writer fills in the header's sizes) a little later, on its own clock, so
        # record_done waits until the header is complete: then the file is ready to read.
        sources.clear()
        del recorder, entry
        seconds = round(time.monotonic() - started, 3)
        self.worker.finished_recordings.append(
            (time.monotonic() + RECORDING_CLOSE_WAIT, self.id, rec_id, path, seconds)
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
        self.stop_player("hangup")
        for rec_id in list(self.recorders):
            self.stop_recorder(rec_id)
        for other in self.bridged:
            if self in other.bridged:
                other.bridged.remove(self)
        self.bridged.clear()
        self.audio = None  # owned by the pjsua2 Call: not to be touched after this
        self.worker.calls.pop(self.id, None)


class PromptPlayer(pj.AudioMediaPlayer):  # type: ignore[misc]
    def __init__(self, call: WorkerCall, play_id: str):
        super().__init__()
        self.call: WorkerCall | None = call
        self.play_id = play_id

    def onEof2(self) -> None:
        # mainThreadOnly: this runs on the main thread, from libHandleEvents.
        if self.call is not None:
            self.call.player_eof(self)


def read_commands(worker: Worker) -> None:
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            worker.commands.put(decode(line, COMMANDS))
        except ProtocolError as exc:
            print(f"worker: bad command line: {exc}", file=sys.stderr, flush=True)
    worker.commands.put(None)


def _take_stdout() -> Any:
    """Keep the real standard output for events only: PJSIP (C code) logs to fd 1 too, and a
    stray line there would corrupt the protocol. From here on fd 1 goes to standard error."""
    events = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return events


EVENTS_OUT: Any = None


def main(argv: list[str] | None = None) -> int:
    global EVENTS_OUT
    parser = argparse.ArgumentParser(prog="flexvoice-worker")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rtp-port", type=int, default=0)
    parser.add_argument("--proxy", default=None, help="outbound proxy (the edge), e.g. sip:..;lr")
    parser.add_argument("--media-host", default=None, help="address RTP binds to (default --host)")
    args = parser.parse_args(argv)
    # The control plane stops us with the "shutdown" command; signals meant for the whole
    # process group (Ctrl-C) must not kill calls before it has drained them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    EVENTS_OUT = _take_stdout()
    rtp_port = args.rtp_port or 20000 + args.index * 200
    try:
        worker = Worker(args.index, args.host, args.port, args.proxy, rtp_port, args.media_host)
    except pj.Error as exc:
        print(f"worker {args.index}: cannot start: {exc.reason}", file=sys.stderr)
        return 1
    threading.Thread(target=read_commands, args=(worker,), daemon=True).start()
    worker.run()
    EVENTS_OUT.flush()
    # The stdin reader thread may sit in read(): leave without the interpreter's teardown.
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
