"""Talking to a running edge over its ctl socket with `kamcmd`: uptime, the workers as the
dispatcher sees them, statistics, and the calls (dialogs) it holds, which it can end itself."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from flexvoice.config import Config
from flexvoice.errors import UserError
from flexvoice.logs import get_logger
from flexvoice.sip.addresses import WorkerAddress
from flexvoice.sip.edge_kamcmd import (
    EdgeDialog,
    EdgeTarget,
    dialogs_from,
    parse_kamcmd,
    targets_from,
)
from flexvoice.system import require_binary

log = get_logger(__name__)

RPC_TIMEOUT = 5.0


class EdgeRpc:
    """The ctl-socket side of `Edge` (flexvoice.sip.edge), which sets these attributes."""

    cfg: Config
    workers: list[WorkerAddress]
    ctl_socket: Path

    @property
    def kamailio(self) -> str:
        e = self.cfg.sip.edge
        return require_binary(e.kamailio, "kamailio", "the SIP edge", "sip.edge.kamailio")

    @property
    def kamcmd(self) -> str:
        beside = Path(self.kamailio).with_name("kamcmd")
        if beside.exists():
            return str(beside)
        return require_binary("kamcmd", "kamailio", "talking to the SIP edge")

    async def rpc(self, *args: str) -> str:
        """Run one `kamcmd` command over the ctl socket; its output."""
        proc = await asyncio.create_subprocess_exec(
            self.kamcmd,
            "-s",
            f"unix:{self.ctl_socket}",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), RPC_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise UserError(
                f"the SIP edge did not answer '{args[0]}' within {RPC_TIMEOUT}s"
            ) from None
        if proc.returncode != 0:
            why = (err or out).decode("utf-8", "replace").strip().splitlines()
            raise UserError(
                f"the SIP edge refused '{' '.join(args)}': {why[-1] if why else 'no answer'} "
                f"(ctl socket {self.ctl_socket})"
            )
        return out.decode("utf-8", "replace")

    async def uptime(self) -> int:
        """Seconds Kamailio has been running (asks it over the ctl socket)."""
        data = parse_kamcmd(await self.rpc("core.uptime"))
        try:
            return int(str(data.get("uptime"))) if isinstance(data, dict) else 0
        except ValueError:
            return 0

    async def targets(self) -> list[EdgeTarget]:
        """The workers as the dispatcher sees them now, each with its calls (its dialogs:
        what the edge counts when it dispatches)."""
        found = targets_from(parse_kamcmd(await self.rpc("dispatcher.list")), self.workers)
        return [replace(t, load=await self.calls_on(t.uri)) for t in found]

    async def calls_on(self, uri: str) -> int:
        """How many calls (dialogs, answered or not) the edge holds with the worker `uri`."""
        out = (await self.rpc("dlg.profile_get_size", "worker", uri)).strip()
        return int(out) if out.isdigit() else 0

    async def counters(self) -> dict[str, int]:
        """Kamailio's statistics (`group:name` -> value), e.g. core:rcv_requests."""
        out = await self.rpc("stats.get_statistics", "all")
        stats: dict[str, int] = {}
        for line in out.splitlines():
            name, sep, value = line.strip().partition(" = ")
            if sep and value.strip().lstrip("-").isdigit():
                stats[name.strip()] = int(value)
        return stats

    async def dialogs(self, worker: WorkerAddress) -> list[EdgeDialog]:
        """The calls the edge holds with one worker (the dialog profile `worker`; a short
        list, where `dlg.list` of a busy edge is too big for one ctl-socket reply)."""
        out = await self.rpc("dlg.profile_list", "worker", worker.uri)
        return dialogs_from(parse_kamcmd(out))

    async def end_dialogs(self, worker: WorkerAddress, why: str) -> int:
        """End every call `worker` held, answered or not, toward the carrier: an answered
        one with a BYE both ways (the worker's side, gone, times out), an unanswered one with
        a 503 to the caller. Either frees the call's worker slot. How many."""
        ended = 0
        for dialog in await self.dialogs(worker):
            try:
                if dialog.answered:
                    reason = f'Reason: SIP;cause=503;text="{why}"\r\n'
                    await self.rpc("dlg.end_dlg", dialog.h_entry, dialog.h_id, reason)
                elif dialog.ringing:
                    await self.rpc(
                        "tm.reply_callid", "503", "Service Unavailable", dialog.call_id,
                        f"{dialog.cseq} INVITE", "edge-lost", "Retry-After: 5\r\n",
                    )  # fmt: skip
                else:
                    continue
            except UserError as exc:  # ended meanwhile: the other side hung up
                log.info("edge.dialog_end_failed", call=dialog.call_id, error=str(exc))
                continue
            ended += 1
        return ended
