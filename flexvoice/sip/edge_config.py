"""The edge's configuration, rendered without side effects: kamailio.cfg from
sip/kamailio.cfg.tmpl (placeholders filled from flexvoice.yaml and sip/trunks.yaml) and the
dispatcher list of the media workers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from flexvoice.config import Config
from flexvoice.errors import UserError
from flexvoice.sip.addresses import WorkerAddress
from flexvoice.sip.trunks import Trunks

REPO_TEMPLATE = Path(__file__).resolve().parent.parent.parent / "sip" / "kamailio.cfg.tmpl"
DISPATCHER_SET = 1
# Relay workers (sip.workers.relays): reached by conference links only, never by callers
# (route[DISPATCH] selects from DISPATCHER_SET alone).
RELAY_SET = 2
# The dialog module's db_text tables (under the edge's state directory): the calls Kamailio
# held when it was stopped, so a node killed with calls up ends them at its next start.
DIALOG_DB = "dialogs"
_DIALOG_TABLES = {
    "version": "id(int,auto) table_name(string) table_version(int) \n0:dialog:7\n0:dialog_vars:1\n",
    "dialog": (
        "id(int,auto) hash_entry(int) hash_id(int) callid(string) from_uri(string) "
        "from_tag(string) to_uri(string) to_tag(string) caller_cseq(string) "
        "callee_cseq(string) caller_route_set(string,null) callee_route_set(string,null) "
        "caller_contact(string) callee_contact(string) caller_sock(string) callee_sock(string) "
        "state(int) start_time(int) timeout(int) sflags(int) iflags(int) "
        "toroute_name(string,null) req_uri(string) xdata(string,null) \n"
    ),
    "dialog_vars": (
        "id(int,auto) hash_entry(int) hash_id(int) dialog_key(string) dialog_value(string) \n"
    ),
}


def ensure_dialog_db(runtime_dir: Path) -> Path:
    """The db_text folder of the dialog module, with empty tables where there are none."""
    folder = runtime_dir / DIALOG_DB
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in _DIALOG_TABLES.items():
        table = folder / name
        if not table.exists():
            table.write_text(text)
    return folder


# Dispatcher destination flags (dispatcher module, ds.h).
DS_INACTIVE = 1
DS_DISABLED = 4
DS_PROBING = 8

_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")

# What the media workers can read, measured on the pjsua2 2.15.1 wheel: a message over 4,000
# bytes is dropped without an answer (PJSIP_MAX_PKT_LEN), a URI over 256 characters prints as
# "-error" (PJSIP_MAX_URL_SIZE). The edge adds about 250 bytes (its Via and two
# Record-Routes) before a request reaches a worker, so it refuses larger ones itself.
MAX_REQUEST_URI = 256
MAX_SIP_BODY = 2500
MAX_SIP_MESSAGE = 3600


def template_path(cfg: Config) -> Path:
    """sip/kamailio.cfg.tmpl next to the trunks file, else the one shipped in the repository."""
    beside = cfg.path(cfg.sip.trunks).parent / "kamailio.cfg.tmpl"
    return beside if beside.exists() else REPO_TEMPLATE


def sip_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def render_config(
    cfg: Config,
    workers: list[WorkerAddress],
    trunks: Trunks,
    *,
    runtime_dir: Path,
    dispatcher_list: Path,
    ctl_socket: Path,
    template: Path | None = None,
) -> str:
    """The Kamailio configuration text for this node (pure: writes nothing)."""
    edge = cfg.sip.edge
    template = template or template_path(cfg)
    try:
        text = template.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read the edge template {template}: {exc.strerror}") from None

    host, port = edge.host, edge.port
    wildcard = host in ("0.0.0.0", "::")
    loopback_only = host == "127.0.0.1"
    advertise = f" advertise {edge.advertise}" if edge.advertise else ""
    listen = [
        f"listen=udp:{sip_host(host)}:{port}{advertise}",
        f"listen=tcp:{sip_host(host)}:{port}{advertise}",
    ]
    worker_socket = "# one listen address: replies to workers leave from it"
    if not (wildcard or loopback_only):
        # A node's own workers reach the edge on loopback (their outbound proxy is
        # 127.0.0.1:port) and must see its requests come from there; workers on another host
        # (a shared edge) are reached from the edge's own address.
        listen += [f"listen=udp:127.0.0.1:{port}", f"listen=tcp:127.0.0.1:{port}"]
        worker_socket = (
            f'if ($nh(d) =~ "^127[.]") {{ $fs = "udp:127.0.0.1:{port}"; }}  '
            "# towards workers on this host: the loopback side"
        )

    aliases = [a for a in edge.aliases]
    if edge.advertise:
        aliases.append(edge.advertise)
    alias_lines = [f'alias="{a}"' for a in aliases] or ["# (no aliases configured)"]

    trunk_sources: list[str] = []
    for trunk in trunks:
        for net in trunk.source_networks:
            trunk_sources.append(
                f"\tif (src_ip == {net.with_prefixlen}) {{  # trunk {trunk.name}\n"
                f'\t\t$var(peer) = "trunk";\n\t\treturn;\n\t}}'
            )
    trunk_targets: list[str] = []
    for trunk in trunks:
        carrier_socket = ""
        dest = f"sip:{sip_host(trunk.address)}:{trunk.port};transport={trunk.transport}"
        if not (wildcard or loopback_only):
            carrier_socket = f'\t\t$fs = "{trunk.transport}:{sip_host(host)}:{port}";\n'
        trunk_targets.append(
            f'\tif ($rd == "{trunk.address}" && $rp == {trunk.port}) {{  # trunk {trunk.name}\n'
            f"\t\trecord_route();\n"
            f'\t\t$du = "{dest}";\n'
            f"{carrier_socket}"
            f"\t\tt_set_fr(120000, 5000);\n"
            f"\t\troute(RELAY);\n\t}}"
        )

    values = {
        "CHILDREN": str(edge.children),
        "ALIASES": "\n".join(alias_lines),
        "RUNTIME_DIR": str(runtime_dir),
        "DIALOG_DB": str(runtime_dir / DIALOG_DB),
        "LISTEN": "\n".join(listen),
        "CTL_SOCKET": str(ctl_socket),
        "PIKE_DENSITY": str(edge.flood_limit * 2),  # per 2 s sampling window
        "DISPATCHER_LIST": str(dispatcher_list),
        "PING_INTERVAL": str(edge.ping_interval),
        "TRUNK_SOURCES": "\n".join(trunk_sources) or "\t# (no trunks configured)",
        "WORKER_SOCKET": worker_socket,
        "WORKER_TIMEOUT_MS": str(max(100, round(edge.worker_timeout * 1000))),
        "TRUNK_TARGETS": "\n".join(trunk_targets) or "\t# (no trunks configured)",
        "MAX_CALLS": str(cfg.sip.workers.max_calls),
        "FILL_CALLS": str(max(1, cfg.sip.workers.max_calls - 1)),
        "WORKER_CPS": str(edge.worker_cps),
        "MAX_REQUEST_URI": str(MAX_REQUEST_URI),
        "MAX_BODY": str(MAX_SIP_BODY),
        "MAX_MESSAGE": str(MAX_SIP_MESSAGE),
    }
    unknown = sorted({m for m in _PLACEHOLDER.findall(text) if m not in values})
    if unknown:
        raise UserError(
            f"{template}: unknown placeholder(s) {', '.join('{{' + u + '}}' for u in unknown)}; "
            f"known: {', '.join(sorted(values))}"
        )
    body = _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
    defines = ["#!define WITH_ACL"] if edge.acl else ["# ACL off (sip.edge.acl: false)"]
    first, _, rest = body.partition("\n")
    if first.strip() != "#!KAMAILIO":
        raise UserError(f"{template}: the first line must be '#!KAMAILIO'")
    header = "# GENERATED FILE: edit sip/kamailio.cfg.tmpl or flexvoice.yaml instead."
    return "\n".join([first, header, *defines, rest])


def render_dispatcher_list(
    workers: list[WorkerAddress],
    max_calls: int,
    down: set[int] | None = None,
    relays: Sequence[WorkerAddress] = (),
) -> str:
    lines = ["# setid destination flags priority attrs (generated: one line per media worker)"]
    for setid, w in [(DISPATCHER_SET, w) for w in workers] + [(RELAY_SET, r) for r in relays]:
        flags = DS_DISABLED if down and w.index in down else 0
        lines.append(f"{setid} {w.uri} {flags} 0 duid={w.duid};maxload={max_calls}")
    return "\n".join(lines) + "\n"
