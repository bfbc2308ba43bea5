"""The floor of the library: a bare pjsua2 answering machine, for `bench sip_load` only.

One process, one Endpoint, the same wheel and media settings as a FlexVoice worker (8 kHz
bridge, null sound device, PCMA/PCMU/G722), PJSIP's own thread doing all the work (the
library's defaults): every incoming call is answered with 200 and hears the same prompt,
looped, until the caller hangs up. No control plane, no edge, no Python between calls.
(pjsua2 is imported here, outside flexvoice/sip/worker.py, because this measures the library
itself, not the engine.)

Run: python -m bench.bare_pjsua2 --port 5070 --rtp-port 40000 --prompt menu.wav
Prints "ready" on standard output once listening; stops when standard input closes.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import pjsua2 as pj

CODECS = {"PCMA/8000": 250, "PCMU/8000": 240, "G722/16000": 230}


class Machine(pj.Account):  # type: ignore[misc]
    def __init__(self, prompt: str):
        super().__init__()
        self.prompt = prompt
        self.calls: dict[int, BareCall] = {}

    def onIncomingCall(self, prm: Any) -> None:
        call = BareCall(self, prm.callId)
        self.calls[prm.callId] = call
        op = pj.CallOpParam()
        op.statusCode = 200
        call.answer(op)


class BareCall(pj.Call):  # type: ignore[misc]
    def __init__(self, machine: Machine, call_id: int):
        super().__init__(machine, call_id)
        self.machine = machine
        self.player: Any = None

    def onCallMediaState(self, prm: Any) -> None:
        if self.player is not None:
            return
        # The CallInfo is kept while its media vector is read: iterating the vector of a
        # temporary reads freed memory (measured: garbage types, so no prompt ever played).
        info = self.getInfo()
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.player = pj.AudioMediaPlayer()
                self.player.createPlayer(self.machine.prompt, 0)
                self.player.startTransmit(self.getAudioMedia(media.index))

    def onCallState(self, prm: Any) -> None:
        if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
            # Dropped inside the callback, as pjsua2's samples do (the slot is reused next).
            self.player = None
            self.machine.calls.pop(self.getId(), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bare_pjsua2")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rtp-port", type=int, required=True)
    parser.add_argument("--rtp-ports", type=int, default=16)
    parser.add_argument("--prompt", required=True)
    args = parser.parse_args(argv)
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.maxCalls = 4
    cfg.logConfig.level = 0
    cfg.logConfig.consoleLevel = 0
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = args.port
    tcfg.boundAddress = "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.audDevManager().setNullDev()
    for codec in ep.codecEnum2():
        ep.codecSetPriority(codec.codecId, 0)
    for codec_id, priority in CODECS.items():
        ep.codecSetPriority(codec_id, priority)
    ep.libStart()
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:bare@127.0.0.1:{args.port}"
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acfg.mediaConfig.transportConfig.port = args.rtp_port
    acfg.mediaConfig.transportConfig.portRange = max(2, args.rtp_ports - 2)
    machine = Machine(args.prompt)
    machine.create(acfg, True)
    print("ready", flush=True)
    sys.stdin.read()  # PJSIP's thread does the work until we are told to stop
    ep.hangupAllCalls()
    machine.calls.clear()
    ep.libDestroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
