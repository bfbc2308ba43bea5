"""The node's configuration: `flexvoice.yaml`, overridden key by key from FLEXVOICE_* variables.

A typo or a bad value stops start-up with one line naming the key, the value and what is
allowed. Overrides use a double underscore between levels, e.g. FLEXVOICE_HTTP__PORT=8081 or
FLEXVOICE_SIP__WORKERS__COUNT=4; the value is read as a YAML scalar (8081, true, "text").
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
)

from flexvoice.errors import Problem, ProblemList
from flexvoice.local_address import local_address
from flexvoice.units import Duration
from flexvoice.yamlsrc import load_yaml
from flexvoice.yamlwords import did_you_mean, explain_validation_error

ENV_PREFIX = "FLEXVOICE_"
ENV_CONFIG_FILE = "FLEXVOICE_CONFIG"  # names the file itself; not an override
DEFAULT_CONFIG_FILE = "flexvoice.yaml"

# An alphanumeric SMS sender (GSM 03.40): 11 letters, digits or spaces, one letter at least.
ALPHANUMERIC_SENDER = r"^[A-Za-z0-9 ]*[A-Za-z][A-Za-z0-9 ]*$"
Port = Annotated[int, Field(ge=1, le=65535, description="a TCP/UDP port from 1 to 65535")]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpConfig(Section):
    host: str = "127.0.0.1"
    port: Port = 8080


class EdgeConfig(Section):
    enabled: bool = True
    host: str = Field(
        "127.0.0.1",
        description="address the edge listens on for carriers; on a node with cluster.edge: "
        "shared, the address its workers reach the shared edge at (another host's)",
    )
    port: Port = 5060
    kamailio: str = Field("kamailio", description="the Kamailio binary (name on PATH or path)")
    ctl_socket: str = "var/kamailio-ctl.sock"
    advertise: str = Field(
        "", description="public address[:port] put in Via/Record-Route when behind NAT"
    )
    aliases: list[str] = Field(
        default_factory=list, description="other names/addresses carriers use for the edge"
    )
    acl: bool = Field(True, description="only trunk source addresses may send SIP")
    flood_limit: Annotated[int, Field(ge=10, le=100000)] = Field(
        100, description="requests per second from one non-trunk address before it is blocked"
    )
    ping_interval: Annotated[int, Field(ge=1, le=60)] = Field(
        1, description="seconds between OPTIONS pings to each worker (safety net)"
    )
    worker_timeout: Duration = Field(
        1.5, description="no provisional reply from a worker within this: try the next one"
    )
    # PJSIP in a worker aborts when a fast stream of INVITEs uses up its 64 socket slots
    # (measured at 200 INVITEs/s per worker); 20 leaves a wide margin (sip/kamailio.cfg.tmpl).
    worker_cps: Annotated[int, Field(ge=1, le=10000)] = Field(
        20, description="new calls the edge gives one worker per second before the next"
    )
    children: Annotated[int, Field(ge=1, le=64)] = 4


MAX_WORKERS = 2000  # 8,000 call slots: far past what one machine's CPU carries


def _worker_count(value: object) -> int | str:
    """A whole number of workers, or "auto" (sized from the machine at start-up)."""
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number of workers or 'auto'")
    if value < 1:
        raise ValueError("must be at least 1")
    if value > MAX_WORKERS:
        raise ValueError(f"must be at most {MAX_WORKERS}")
    return value


WorkerCount = Annotated[
    int | Literal["auto"], PlainValidator(_worker_count, json_schema_input_type=int | str)
]


class WorkersConfig(Section):
    count: WorkerCount = Field(
        2, description="media worker processes (4 calls each), or 'auto' from cores and memory"
    )
    host: str = Field(
        "127.0.0.1",
        description="address of this machine the workers listen on; the edge reaches them "
        "there (another host's edge: a private address it can reach)",
    )

    @field_validator("host")
    @classmethod
    def _local_address(cls, value: str) -> str:
        return local_address(value)

    base_port: Port = 5070
    max_calls: Annotated[int, Field(ge=1, le=4)] = 4
    relays: Annotated[int, Field(ge=0, le=64)] = Field(
        0,
        description="extra workers that carry only the links of conference rooms spread over "
        "workers (no callers: not call capacity), the inside of a room's tree; 12 hold a room of "
        "50 (two per worker) with any two participants at most 6 hops apart",
    )
    drain_grace: Duration = 30.0
    restart_backoff: Duration = 1.0
    rtp_base: Port = 20000
    media_address: str | None = Field(
        None, description="address RTP binds to when carriers must reach it (default: host)"
    )


class SipConfig(Section):
    edge: EdgeConfig = EdgeConfig()
    workers: WorkersConfig = WorkersConfig()
    trunks: str = "sip/trunks.yaml"
    numbers: str = "sip/numbers.yaml"


def _database(value: object) -> str:
    """A SQLite file path, or a postgresql:// URL (checked for shape here; reached at start)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a file path (SQLite) or a postgresql:// URL")
    if "://" not in value:
        return value
    parts = urlsplit(value)
    if parts.password is not None:
        masked = value.replace(f":{parts.password}@", ":***@", 1)
    else:
        masked = value
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(
            f"'{parts.scheme}://' is not a database FlexVoice can use (got {masked!r}); write a "
            "file path (SQLite, one node) or postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
            "(PostgreSQL, shared by several nodes)"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValueError(f"the port is not a number (got {masked!r})") from None
    if not parts.path.strip("/") and "dbname=" not in parts.query:
        raise ValueError(
            f"names no database (got {masked!r}); add it after the host, e.g. "
            "postgresql://flexvoice@127.0.0.1:5432/flexvoice"
        )
    return value


Database = Annotated[str, PlainValidator(_database, json_schema_input_type=str)]


def is_database_url(database: str) -> bool:
    return "://" in database


class StorageConfig(Section):
    database: Database = Field(
        "var/flexvoice.db",
        description="SQLite file of one node, or postgresql://... shared by several nodes",
    )
    local: str = Field(
        "var/flexvoice.db",
        description="with a PostgreSQL database: this node's own SQLite file (its usage spool "
        "beside it, heartbeat, idempotency keys and lockouts without Redis)",
    )
    recordings: str = "var/recordings"

    @property
    def shared_url(self) -> str | None:
        """The PostgreSQL URL when the shared stores live there, else None."""
        return self.database if is_database_url(self.database) else None

    @property
    def local_database(self) -> str:
        """This node's SQLite file: `database` itself, or `local` beside a PostgreSQL URL."""
        return self.local if is_database_url(self.database) else self.database


class RedisConfig(Section):
    enabled: bool = False
    url: str = "redis://127.0.0.1:6379/0"


class ClusterConfig(Section):
    """Several nodes as one service (README, "Several nodes"): live legs and node membership
    in Redis, what must last in PostgreSQL, one edge in front."""

    enabled: bool = Field(
        False, description="join the cluster: needs redis.enabled and a PostgreSQL database"
    )
    node: str = Field(
        "",
        description="this node's name, unique in the cluster (default: host-httpport): "
        "letters, digits, '.', '_' or '-', at most 63",
    )

    @field_validator("node", "agents_from")
    @classmethod
    def _node_name(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", value):
            raise ValueError(
                "a node's name is 1-63 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit (e.g. node-a)"
            )
        return value

    url: str = Field(
        "", description="where the other nodes reach this node's API (default: from http)"
    )
    edge: Literal["own", "shared"] = Field(
        "own",
        description="own: this node runs its Kamailio; shared: 'flexvoice edge serve' runs "
        "one edge for every node and this node registers its workers with it through Redis",
    )
    agents_from: str = Field(
        "", description="the node that dials queue agents for every node's callers (the one "
        "next to the agents' trunk); default: the node with the most free call slots",
    )  # fmt: skip


class PathsConfig(Section):
    flows: str = "flows"
    prompts: str = "ivr_prompts"
    tariffs: str = "metering/tariffs"


class ApiConfig(Section):
    rate_limit_cps: Annotated[int, Field(ge=1, le=10000)] = Field(
        10, description="calls an account may place per second over REST"
    )
    lockout_failures: Annotated[int, Field(ge=1, le=100)] = 5
    lockout_window: Duration = 900.0
    lockout_time: Duration = 900.0
    idempotency_ttl: Duration = 86400.0
    webhook_retry_base: Duration = 5.0
    webhook_retry_max: Duration = 3600.0
    webhook_max_age: Duration = 86400.0
    webhook_timeout: Duration = 10.0
    private_urls: bool = Field(
        False,
        description="let flow_url and status_callback reach loopback and private networks "
        "(development only)",
    )


class SmppConfig(Section):
    host: str = Field("127.0.0.1", description="the SMSC's address")
    port: Port = 2775
    system_id: str = Field("flexvoice", max_length=15, description="our ESME system_id")
    password_env: str = Field(
        "", description="environment variable holding the bind password (never in this file)"
    )
    system_type: str = Field("", max_length=12)


class MessagingAccountConfig(Section):
    senders: list[Annotated[str, Field(max_length=11, pattern=ALPHANUMERIC_SENDER)]] = Field(
        default_factory=list, description="alphanumeric sender names the account may send from"
    )
    sms_url: str | None = Field(None, description="inbound SMS to the account's numbers go here")
    gateway: Literal["smpp", "sip"] | None = Field(None, description="instead of the default")
    verify_countries: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] | None = Field(
        None, description="countries verification codes may go to (default: verify.countries)"
    )


class MessagingConfig(Section):
    gateway: Literal["none", "smpp", "sip"] = Field(
        "none", description="how SMS leave the node: SMPP to an SMSC, or SIP MESSAGE to the trunk"
    )
    smpp: SmppConfig = SmppConfig()
    retry_base: Duration = 2.0
    retry_max: Duration = 300.0
    validity: Duration = Field(86400.0, description="a message not taken by then fails (30036)")
    window: Annotated[int, Field(ge=1, le=1000)] = 32
    accounts: dict[str, MessagingAccountConfig] = Field(default_factory=dict)


class VerifyConfig(Section):
    secret_file: str = Field(
        "var/verify.secret", description="HMAC key for stored codes; made at first start"
    )
    sender: Annotated[str, Field(max_length=11, pattern=ALPHANUMERIC_SENDER)] = "Verify"
    validity: Duration = 600.0
    max_checks: Annotated[int, Field(ge=1, le=20)] = 5
    max_sends: Annotated[int, Field(ge=1, le=50)] = 5
    send_window: Duration = 600.0
    countries: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] = Field(
        default_factory=lambda: ["BE"], description="home country: codes go only there by default"
    )
    prefix_rate: Annotated[int, Field(ge=1, le=100000)] = Field(
        30, description="sends per minute to one number prefix (country code + 4 digits)"
    )


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["kv", "json"] = "kv"


class Config(Section):
    http: HttpConfig = HttpConfig()
    sip: SipConfig = SipConfig()
    storage: StorageConfig = StorageConfig()
    redis: RedisConfig = RedisConfig()
    cluster: ClusterConfig = ClusterConfig()
    paths: PathsConfig = PathsConfig()
    api: ApiConfig = ApiConfig()
    messaging: MessagingConfig = MessagingConfig()
    verify: VerifyConfig = VerifyConfig()
    logging: LoggingConfig = LoggingConfig()

    # Where the file was: relative paths in it are taken from there. Not a YAML key.
    base_dir: Path = Field(default=Path("."), exclude=True)

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def node_name(self) -> str:
        """This node among several sharing one store: its host's name and HTTP port (the
        calls it carries say it, and its live statistics board is published under it);
        `cluster.node` when set."""
        return self.cluster.node or f"{socket.gethostname()}-{self.http.port}"


def _env_overrides(
    environ: Mapping[str, str],
) -> tuple[list[tuple[str, tuple[str, ...], Any]], list[Problem]]:
    overrides: list[tuple[str, tuple[str, ...], Any]] = []
    problems: list[Problem] = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG_FILE:
            continue
        path = tuple(p.lower() for p in name[len(ENV_PREFIX) :].split("__"))
        if not all(path):
            problems.append(Problem("environment", 0, 0, f"{name}: empty key between '__'"))
            continue
        try:
            value = yaml.safe_load(environ[name])
        except yaml.YAMLError:
            value = environ[name]
        overrides.append((name, path, value))
    return overrides, problems


def _check_env_path(name: str, path: tuple[str, ...]) -> Problem | None:
    model: Any = Config
    for i, part in enumerate(path):
        fields = {k: f for k, f in model.model_fields.items() if k != "base_dir"}
        if part not in fields:
            dotted = ".".join(path[: i + 1])
            hint = ""
            flat = "__".join(path).upper()
            # FLEXVOICE_HTTP_PORT for FLEXVOICE_HTTP__PORT is the usual slip.
            for cand in _all_env_names():
                if cand.replace("__", "_") == f"{ENV_PREFIX}{flat}".replace("__", "_"):
                    hint = f"; did you mean {cand}?"
                    break
            else:
                hint = did_you_mean(part, fields)
            return Problem("environment", 0, 0, f"{name}: no setting '{dotted}'{hint}")
        model = fields[part].annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            if i != len(path) - 1:
                return Problem("environment", 0, 0, f"{name}: '{part}' has no sub-keys")
            return None
    return Problem("environment", 0, 0, f"{name}: names a whole section; set one key inside it")


def _all_env_names(model: Any = None, prefix: str = ENV_PREFIX) -> list[str]:
    model = model or Config
    names: list[str] = []
    for key, fld in model.model_fields.items():
        if key == "base_dir":
            continue
        ann = fld.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            names += _all_env_names(ann, f"{prefix}{key.upper()}__")
        else:
            names.append(f"{prefix}{key.upper()}")
    return names


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override and validate; raise ProblemList with every problem found."""
    environ = os.environ if environ is None else environ
    if path is None:
        path = Path(environ.get(ENV_CONFIG_FILE, DEFAULT_CONFIG_FILE))
    if not path.exists():
        raise ProblemList(
            [
                Problem(
                    str(path),
                    0,
                    0,
                    "configuration file not found; run from the repository root, "
                    f"pass --config PATH, or set {ENV_CONFIG_FILE}",
                )
            ]
        )
    doc = load_yaml(path)
    if doc.data is None:
        doc.data = {}
    if not isinstance(doc.data, dict):
        raise ProblemList(
            [doc.problem((), "the file must be a mapping of sections (http:, sip:, ...)")]
        )

    overrides, problems = _env_overrides(environ)
    env_sources: dict[str, str] = {}  # dotted key -> the variable that set it
    for name, env_path, value in overrides:
        bad = _check_env_path(name, env_path)
        if bad:
            problems.append(bad)
            continue
        node = doc.data
        for part in env_path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append(
                    Problem("environment", 0, 0, f"{name}: '{part}' in the file is not a section")
                )
                break
            node = child
        else:
            node[env_path[-1]] = value
            env_sources[".".join(env_path)] = name
    if problems:
        raise ProblemList(problems)
    try:
        return Config.model_validate({**doc.data, "base_dir": path.resolve().parent})
    except ValidationError as exc:
        found = explain_validation_error(exc, doc, Config)
        raise ProblemList([_blame_env(p, env_sources) for p in found]) from None


def _blame_env(problem: Problem, env_sources: Mapping[str, str]) -> Problem:
    """A value that came from FLEXVOICE_* is reported against the variable, not the file."""
    dotted, _, rest = problem.message.partition(": ")
    name = env_sources.get(dotted)
    if name is None:
        return problem
    return Problem("environment", 0, 0, f"{name}: {rest}")


def config_from_args(args: Any) -> Config:
    """The node configuration for commands that need it (read once per command)."""
    return load_config(getattr(args, "config", None))
