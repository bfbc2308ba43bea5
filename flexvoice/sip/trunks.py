"""Carrier trunks: `sip/trunks.yaml`, read once at start-up.

A trunk is where outbound calls go (its proxy) and where inbound calls may come from (its
source addresses, the edge's ACL). The proxy may be written as a name, but it is resolved here,
by the operating system, once: PJSIP's own DNS resolver carries advisories fixed only in 2.17,
so neither the workers nor the edge ever resolve a name (see the README's security section).

Passwords never live in the file: `password_env` names the environment variable that holds
one. A variable that is not set is a warning, not an error, so a node without credentials
still starts (calls that the carrier challenges will then fail, and the log says why).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flexvoice import e164
from flexvoice.errors import Problem, ProblemList
from flexvoice.yamlsrc import YamlDoc, load_yaml
from flexvoice.yamlwords import explain_validation_error

Codec = Literal["PCMA", "PCMU", "G722"]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_HOST_PORT = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+))(?::(?P<port>\d+))?$"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CALLER_PATTERN = re.compile(r"^\+?[0-9*?]+$")


def _e164(value: str) -> str:
    if not e164.is_possible(value):
        raise ValueError("is not an E.164 number such as '+3221234567'")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallerIdModel(_Section):
    default: str | None = Field(None, description="caller ID used when a call names none")
    allowed: list[str] = Field(
        default_factory=list,
        description="caller IDs a call may present: E.164 with * and ? wildcards ('+322*')",
    )

    @field_validator("default")
    @classmethod
    def _default_e164(cls, v: str | None) -> str | None:
        return None if v is None else _e164(v)

    @field_validator("allowed")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for p in v:
            if not _CALLER_PATTERN.match(p):
                raise ValueError(
                    f"'{p}' is not a caller-ID pattern; write digits with an optional leading "
                    "'+' and the wildcards * and ?, e.g. '+322*'"
                )
        return v


class TrunkModel(_Section):
    proxy: str = Field(description="the carrier's SIP proxy, host[:port] (port 5060 if left out)")
    transport: Literal["udp", "tcp"] = "udp"
    source_addresses: list[str] = Field(
        default_factory=list,
        description="addresses/networks the carrier sends from; default: the proxy's address",
    )
    allow_any_source: bool = Field(
        default=False,
        description="let source_addresses hold 0.0.0.0/0 or ::/0 (every address may send calls)",
    )
    username: str | None = None
    password_env: str | None = None
    codecs: Annotated[list[Codec], Field(min_length=1)] = ["PCMA", "PCMU"]
    caller_id: CallerIdModel = CallerIdModel()

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, v: str) -> str:
        m = _HOST_PORT.match(v.strip())
        if not m or (m.group("port") and not 1 <= int(m.group("port")) <= 65535):
            raise ValueError(
                "is not host[:port]; write e.g. '192.0.2.10:5060' or 'sip.carrier.example'"
            )
        return v.strip()

    @field_validator("source_addresses")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for text in v:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(
                    f"'{text}' is not an IP address or network (e.g. '192.0.2.10' or "
                    "'192.0.2.0/28'); names are not allowed here"
                ) from None
        return v

    @model_validator(mode="after")
    def _not_everyone(self) -> TrunkModel:
        # 0.0.0.0/0 opens the edge's ACL to the whole internet: toll fraud and floods. Only
        # when the operator says so in as many words.
        wide = [
            t for t in self.source_addresses if ipaddress.ip_network(t, strict=False).prefixlen == 0
        ]
        if wide and not self.allow_any_source:
            raise ValueError(
                f"source_addresses: '{wide[0]}' lets every address on the internet send calls "
                "through this trunk; list the carrier's addresses, or add "
                "'allow_any_source: true' to the trunk if that is really meant"
            )
        return self

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.match(v):
            raise ValueError(f"'{v}' is not an environment variable name")
        return v

    @field_validator("codecs")
    @classmethod
    def _unique(cls, v: list[Codec]) -> list[Codec]:
        if len(set(v)) != len(v):
            raise ValueError("lists a codec twice")
        return v


class TrunksFile(_Section):
    trunks: dict[str, TrunkModel] = Field(default_factory=dict)
    default_outbound: str | None = Field(
        None, description="the trunk outbound calls use when they name none"
    )


@dataclass(frozen=True)
class Trunk:
    name: str
    host: str  # as written in the file
    address: str  # the IP it resolved to at load
    port: int
    transport: Literal["udp", "tcp"]
    source_networks: tuple[IpNetwork, ...]
    username: str | None
    password_env: str | None
    codecs: tuple[Codec, ...]
    default_caller_id: str | None
    allowed_caller_ids: tuple[str, ...]
    password: str | None = field(default=None, repr=False)

    @property
    def proxy(self) -> str:
        """host:port of the carrier, by address (what a Request-URI to it carries)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    @property
    def uri(self) -> str:
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:{self.proxy}{suffix}"

    def caller_id_allowed(self, number: str) -> bool:
        """True when `number` may be presented on this trunk (no rules: any number)."""
        if not self.allowed_caller_ids:
            return True
        return any(fnmatchcase(number, p) for p in self.allowed_caller_ids)

    def caller_id_for(self, requested: str | None) -> str | None:
        """The caller ID to present: the requested one if allowed, else the default."""
        if requested and self.caller_id_allowed(requested):
            return requested
        return self.default_caller_id

    def accepts_source(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        return any(addr in net for net in self.source_networks)


@dataclass(frozen=True)
class Trunks:
    by_name: Mapping[str, Trunk]
    default_name: str | None
    source: str = "<none>"
    warnings: tuple[Problem, ...] = ()

    def __iter__(self) -> Iterator[Trunk]:
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)

    @property
    def default(self) -> Trunk | None:
        return self.by_name.get(self.default_name) if self.default_name else None

    def get(self, name: str) -> Trunk | None:
        return self.by_name.get(name)

    def for_source(self, ip: str) -> Trunk | None:
        """The trunk whose ACL admits `ip`, if any."""
        return next((t for t in self if t.accepts_source(ip)), None)

    def source_networks(self) -> list[IpNetwork]:
        seen: list[IpNetwork] = []
        for t in self:
            seen += [n for n in t.source_networks if n not in seen]
        return seen


NO_TRUNKS = Trunks(by_name={}, default_name=None)


def _resolve(host: str) -> str:
    """An IP for `host`, from the OS resolver (getaddrinfo), IPv4 first."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    infos.sort(key=lambda i: 0 if i[0] == socket.AF_INET else 1)
    return str(infos[0][4][0])


def load_trunks(path: Path, environ: Mapping[str, str] | None = None) -> Trunks:
    """Read and check `trunks.yaml`; raise ProblemList (file:line:col: message) if it is wrong."""
    environ = os.environ if environ is None else environ
    doc = load_yaml(path)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ProblemList([doc.problem((), "the file must be a mapping with a 'trunks:' key")])
    try:
        model = TrunksFile.model_validate({**data, "trunks": {}})
    except ValidationError as exc:
        raise ProblemList(explain_validation_error(exc, doc, TrunksFile)) from None
    raw = data.get("trunks") or {}
    if not isinstance(raw, dict):
        raise ProblemList([doc.problem(("trunks",), "trunks: must be a mapping of trunk names")])
    # Each trunk on its own, so that errors know the model at their place (allowed keys).
    problems: list[Problem] = []
    parsed: dict[str, TrunkModel] = {}
    for name, body in raw.items():
        try:
            parsed[str(name)] = TrunkModel.model_validate(body)
        except ValidationError as exc:
            problems += explain_validation_error(exc, doc, TrunkModel, prefix=("trunks", name))
    if problems:
        raise ProblemList(problems)
    return _build(model.model_copy(update={"trunks": parsed}), doc, environ)


def _build(model: TrunksFile, doc: YamlDoc, environ: Mapping[str, str]) -> Trunks:
    problems: list[Problem] = []
    warnings: list[Problem] = []
    trunks: dict[str, Trunk] = {}
    for name, t in model.trunks.items():
        where = ("trunks", name)
        m = _HOST_PORT.match(t.proxy)
        assert m is not None  # checked by the model
        host = m.group("v6") or m.group("host")
        port = int(m.group("port") or 5060)
        try:
            address = _resolve(host)
        except OSError as exc:
            problems.append(
                doc.problem(
                    (*where, "proxy"),
                    f"trunks.{name}.proxy: cannot resolve '{host}' ({exc.strerror or exc}); "
                    "write the carrier's IP address or fix the name",
                )
            )
            continue
        networks = tuple(ipaddress.ip_network(s, strict=False) for s in t.source_addresses)
        if not networks:
            networks = (ipaddress.ip_network(address),)
        if t.username and not t.password_env:
            problems.append(
                doc.problem(
                    (*where, "username"),
                    f"trunks.{name}: a username needs password_env, the name of the "
                    "environment variable that holds the password",
                )
            )
        password = None
        if t.password_env:
            password = environ.get(t.password_env)
            if password is None:
                warnings.append(
                    doc.problem(
                        (*where, "password_env"),
                        f"trunks.{name}.password_env: {t.password_env} is not set; calls the "
                        "carrier challenges will fail until it is exported",
                        severity="warning",
                    )
                )
        cid = t.caller_id
        if (
            cid.default
            and cid.allowed
            and not any(fnmatchcase(cid.default, p) for p in cid.allowed)
        ):
            problems.append(
                doc.problem(
                    (*where, "caller_id", "default"),
                    f"trunks.{name}.caller_id.default: {cid.default} matches none of "
                    f"caller_id.allowed ({', '.join(cid.allowed)})",
                )
            )
        trunks[name] = Trunk(
            name=name,
            host=host,
            address=address,
            port=port,
            transport=t.transport,
            source_networks=networks,
            username=t.username,
            password_env=t.password_env,
            codecs=tuple(t.codecs),
            default_caller_id=cid.default,
            allowed_caller_ids=tuple(cid.allowed),
            password=password,
        )
    default = model.default_outbound
    if default is not None and default not in model.trunks:
        known = ", ".join(model.trunks) or "none defined"
        problems.append(
            doc.problem(
                ("default_outbound",),
                f"default_outbound: no trunk named '{default}' (trunks: {known})",
            )
        )
    if default is None and len(model.trunks) == 1:
        default = next(iter(model.trunks))  # one trunk: no need to say which
    if problems:
        raise ProblemList(problems)
    return Trunks(by_name=trunks, default_name=default, source=doc.source, warnings=tuple(warnings))


def default_trunk_address(path: Path) -> str | None:
    """host:port (an IP) of the default outbound trunk's proxy, or None without trunks."""
    trunk = load_trunks(path).default
    return trunk.proxy if trunk else None
