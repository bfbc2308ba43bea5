"""The node's configuration: `flexvoice.yaml`, overridden key by key from FLEXVOICE_* variables.

A typo or a bad value stops start-up with one line naming the key, the value and what is
allowed. Overrides use a double underscore between levels, e.g. FLEXVOICE_HTTP__PORT=8081 or
FLEXVOICE_SIP__WORKERS__COUNT=4; the value is read as a YAML scalar (8081, true, "text").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flexvoice.errors import Problem, ProblemList
from flexvoice.units import Duration
from flexvoice.yamlsrc import did_you_mean, explain_validation_error, load_yaml

ENV_PREFIX = "FLEXVOICE_"
ENV_CONFIG_FILE = "FLEXVOICE_CONFIG"  # names the file itself; not an override
DEFAULT_CONFIG_FILE = "flexvoice.yaml"

Port = Annotated[int, Field(ge=1, le=65535, description="a TCP/UDP port from 1 to 65535")]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpConfig(Section):
    host: str = "127.0.0.1"
    port: Port = 8080


class EdgeConfig(Section):
    enabled: bool = True
    host: str = Field("127.0.0.1", description="address the edge listens on for carriers")
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
    children: Annotated[int, Field(ge=1, le=64)] = 4


class WorkersConfig(Section):
    count: Annotated[int, Field(ge=1, le=64)] = 2
    host: Literal["127.0.0.1"] = "127.0.0.1"
    base_port: Port = 5070
    max_calls: Annotated[int, Field(ge=1, le=4)] = 4
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


class StorageConfig(Section):
    database: str = "var/flexvoice.db"
    recordings: str = "var/recordings"


class RedisConfig(Section):
    enabled: bool = False
    url: str = "redis://127.0.0.1:6379/0"


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


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["kv", "json"] = "kv"


class Config(Section):
    http: HttpConfig = HttpConfig()
    sip: SipConfig = SipConfig()
    storage: StorageConfig = StorageConfig()
    redis: RedisConfig = RedisConfig()
    paths: PathsConfig = PathsConfig()
    api: ApiConfig = ApiConfig()
    logging: LoggingConfig = LoggingConfig()

    # Where the file was: relative paths in it are taken from there. Not a YAML key.
    base_dir: Path = Field(default=Path("."), exclude=True)

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else (self.base_dir / p)


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
