"""Configuration: one TOML file, defaults for every key, environment overrides.

Precedence, lowest first: built-in defaults, the TOML file, TOTEM_AGENT_*
environment variables, command-line flags. Every problem is reported with the
file (or variable) and the dotted key, all at once, so a technician fixes the
file in one pass. docs/config.md is the user's copy of this schema.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from totem_agent import DEFAULT_PORT
from totem_agent.collectors import builtin_collectors, runs_here
from totem_agent.collectors.base import Collector
from totem_agent.options import Option, OptionError, check_readable_file
from totem_agent.outputs.remote_write_config import load_remote_write

ENV_PREFIX = "TOTEM_AGENT_"
ENV_CONFIG_FILE = "TOTEM_AGENT_CONFIG"
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Set by Prometheus or by the agent itself; a constant label may not take them.
RESERVED_LABELS = frozenset({"instance", "job", "le", "quantile"})


def default_config_path(platform: str = sys.platform) -> Path:
    if platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData"), "totem-agent", "config.toml")
    return Path("/etc/totem-agent/config.toml")


def default_state_dir(platform: str = sys.platform) -> str:
    if platform == "win32":
        return str(Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData"), "totem-agent"))
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return "/var/lib/totem-agent"
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(state_home, "totem-agent"))


def _check_web_config(value: str) -> None:
    if not value:
        return
    from totem_agent.webconfig import WebConfigError, load_web_config

    try:
        load_web_config(value)
    except WebConfigError as err:
        raise OptionError("; ".join(err.problems)) from None


def _check_instance(value: str) -> None:
    if not value.strip():
        raise OptionError("must not be empty")


AGENT_OPTIONS: dict[str, Option] = {
    "instance": Option("str", None, "The kiosk's name, sent as the `instance` label on pushed "
                       "and remote-written series. Default: the host name.",
                       check=_check_instance),
    "listen": Option("listen", f"127.0.0.1:{DEFAULT_PORT}",
                     "HOST:PORT of the HTTP server (/metrics, /health). Loopback by default."),
    "state_dir": Option("str", None, "Directory for the buffer and persisted state. Default: "
                        "/var/lib/totem-agent as root, ~/.local/state/totem-agent otherwise, "
                        r"%PROGRAMDATA%\totem-agent on Windows."),
    "interval": Option("duration", 15.0, "How often each collector runs.", minimum=0.1),
    "collector_timeout": Option("duration", None, "Deadline of one collector run; a collector "
                                "past it is reported failed and never stalls the others. "
                                "Default: 10s, or the interval if that is shorter.",
                                minimum=0.01),
    "procfs": Option("str", "/proc", "Where the host's /proc is mounted (node_exporter's "
                     "--path.procfs)."),
    "sysfs": Option("str", "/sys", "Where the host's /sys is mounted."),
    "rootfs": Option("str", "/", "Where the host's / is mounted (for filesystem paths)."),
    "web_config": Option("str", "", "exporter-toolkit web-config file (YAML, as node_exporter's "
                         "--web.config.file): TLS, client certificates, basic auth, headers "
                         "(docs/security.md). Empty: plain HTTP, no auth. Also --web-config.",
                         check=_check_web_config),
}

LOG_OPTIONS: dict[str, Option] = {
    "level": Option("choice", "info", "Least severe level written.",
                    choices=("debug", "info", "warning", "error")),
    "format": Option("choice", "json", "json: one JSON object per line; text: for a person.",
                     choices=("json", "text")),
    "file": Option("str", "", "Also write to this file, rotated by size. Empty: stderr only."),
    "max_size": Option("size", 10 * 1000 * 1000, "Rotate the log file at this size.", minimum=1024),
    "max_files": Option("int", 5, "Rotated log files kept beside the current one.", minimum=1),
}

COLLECTOR_COMMON_OPTIONS: dict[str, Option] = {
    "enabled": Option("bool", None, "Run this collector. Default: the collector's own default."),
    "interval": Option("duration", None, "Overrides [agent] interval for this collector.",
                       minimum=0.1),
    "timeout": Option("duration", None, "Overrides [agent] collector_timeout for this "
                      "collector.", minimum=0.01),
}

EVENTS_OPTIONS: dict[str, Option] = {
    "token": Option("str", "", "Bearer token the kiosk application must send "
                    "(`Authorization: Bearer ...`). Empty: no token.", secret=True),
    "allow_remote": Option("bool", False, "Accept events from other machines. Off: only "
                           "clients on this kiosk (loopback) may post events, even when "
                           "the server listens on the network. On: requires token "
                           "(docs/security.md)."),
    "max_body_bytes": Option("size", 1024 * 1024, "Largest request body accepted (413 above).",
                             minimum=64),
    "max_batch": Option("int", 1000, "Most events in one batch (413 above).", minimum=1),
    "max_label_values": Option("int", 50, "Distinct values kept per label (service, status, "
                               "method, type); later new values are counted under `other`.",
                               minimum=1),
    "max_future_skew": Option("duration", 60.0, "How far in the future an event's timestamp "
                              "may be (the kiosk's clock against the agent's).", minimum=0),
    "max_age": Option("duration", 7 * 86400.0, "How old an event's timestamp may be.",
                      minimum=1),
    "idempotency_window": Option("duration", 86400.0, "How long an event `id` is remembered, "
                                 "so a retried event is counted once.", minimum=1),
    "idempotency_max_ids": Option("int", 10_000, "Most event ids remembered (the oldest are "
                                  "forgotten first).", minimum=1),
    "synchronous": Option("choice", "full", "SQLite `synchronous` of business.sqlite: full "
                          "survives power loss after each answer; normal is faster and "
                          "survives a crash of the agent, not of the machine.",
                          choices=("full", "normal")),
}

# The environment variable the operations guides use for the gateway's URL; an
# alias of TOTEM_AGENT_PUSHGATEWAY_URL, which wins when both are set.
PUSHGATEWAY_URL_ALIAS = "PROMETHEUS_PUSH_GATEWAY"

PUSHGATEWAY_OPTIONS: dict[str, Option] = {
    "url": Option("str", "", "Pushgateway base URL, e.g. http://pushgw.example:9091. Empty: "
                  f"no push. Also read from {PUSHGATEWAY_URL_ALIAS}."),
    "interval": Option("duration", 30.0, "How often the current snapshot is pushed.",
                       minimum=1),
    "timeout": Option("duration", 10.0, "Deadline of one push.", minimum=0.1),
    "job": Option("str", "totem", "The `job` of the pushed group."),
    "grouping": Option("str_list", [], "Constant labels (names from [labels]) added to the "
                       "group's URL after job and instance, e.g. [\"store\"]."),
    "username": Option("str", "", "Basic auth user name (empty: no auth)."),
    "password": Option("str", "", "Basic auth password.", secret=True),
    "ca_file": Option("str", "", "PEM file of the CA(s) that sign the gateway's certificate "
                      "(https:// URL); only these are then trusted. Empty: the system's "
                      "certificate store.", check=check_readable_file),
    "cert_file": Option("str", "", "PEM client certificate, for a gateway that requires one "
                        "(mutual TLS); needs key_file.", check=check_readable_file),
    "key_file": Option("str", "", "PEM private key of cert_file.", check=check_readable_file),
    "insecure_skip_verify": Option("bool", False, "Do not verify the gateway's certificate "
                                   "nor its host name. For testing only: anyone on the path "
                                   "can then read and alter the pushes."),
}
PUSHGATEWAY_TLS_KEYS = ("ca_file", "cert_file", "key_file", "insecure_skip_verify")

BUFFER_OPTIONS: dict[str, Option] = {
    "enabled": Option("bool", True, "Keep every collection cycle in the buffer "
                      "(state_dir/buffer.sqlite) for the remote_write destinations and the "
                      "status page's history. Off: nothing is kept while offline."),
    "max_size": Option("size", 256 * 1000 * 1000, "Most disk space the buffer may use; beyond "
                       "it the oldest samples are dropped (and counted, reason size). About "
                       "1 byte per sample: 1,000 series at 15 s fill ~6 MB a day.",
                       minimum=1024 * 1024),
    "max_age": Option("duration", 14 * 86400.0, "Samples older than this are dropped (and "
                      "counted, reason age) even if not sent.", minimum=60),
}

TABLES = ("agent", "labels", "collectors", "log", "events", "pushgateway", "buffer",
          "remote_write")


@dataclass(frozen=True)
class CollectorSettings:
    name: str
    cls: type[Collector]
    enabled: bool
    interval: float
    timeout: float
    options: Mapping[str, Any]


@dataclass(frozen=True)
class Config:
    source: str
    agent: Mapping[str, Any]
    labels: Mapping[str, str]
    collectors: Mapping[str, CollectorSettings]
    log: Mapping[str, Any]
    problems: tuple[str, ...] = field(default=())
    events: Mapping[str, Any] = field(
        default_factory=lambda: {key: opt.default for key, opt in EVENTS_OPTIONS.items()})
    pushgateway: Mapping[str, Any] = field(
        default_factory=lambda: {key: opt.default for key, opt in PUSHGATEWAY_OPTIONS.items()})
    buffer: Mapping[str, Any] = field(
        default_factory=lambda: {key: opt.default for key, opt in BUFFER_OPTIONS.items()})
    # [[remote_write]] destinations, validated (totem_agent.outputs.remote_write_config).
    remote_write: tuple[Mapping[str, Any], ...] = ()

    @property
    def instance(self) -> str:
        return str(self.agent["instance"])

    def enabled_collectors(self) -> list[CollectorSettings]:
        return [c for c in self.collectors.values() if c.enabled]


class ConfigError(Exception):
    """One or more problems, each naming the file or variable and the key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def env_name(table: str, key: str, collector: str | None = None) -> str:
    """The environment variable that overrides a key ([agent] keys need no table)."""
    if collector is not None:
        return f"{ENV_PREFIX}COLLECTORS_{collector}_{key}".upper()
    if table == "agent":
        return f"{ENV_PREFIX}{key}".upper()
    return f"{ENV_PREFIX}{table}_{key}".upper()


class _Loader:
    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env
        self.problems: list[str] = []
        self.used_env: set[str] = set()

    def problem(self, where: str, key: str, message: str) -> None:
        self.problems.append(f"{where}: {key}: {message}")

    def table(self, doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        raw = doc.get(name, {})
        if not isinstance(raw, dict):
            self.problem(self.source, f"[{name}]", f"must be a table, got {type(raw).__name__}")
            return {}
        return raw

    def options(self, raw: Mapping[str, Any], schema: Mapping[str, Option], dotted: str,
                env_for: Any) -> dict[str, Any]:
        """Defaults, then the file's values, then the environment's, all validated."""
        values = {key: opt.default for key, opt in schema.items()}
        for key, value in raw.items():
            if key not in schema:
                known = ", ".join(sorted(schema)) or "none"
                self.problem(self.source, f"{dotted}.{key}", f"unknown key (known keys: {known})")
                continue
            try:
                values[key] = schema[key].parse(value)
            except OptionError as err:
                self.problem(self.source, f"{dotted}.{key}{err.subkey}", str(err))
        for key, opt in schema.items():
            var = env_for(key)
            if var in self.env:
                self.used_env.add(var)
                try:
                    values[key] = opt.parse(self.env[var], from_text=True)
                except OptionError as err:
                    self.problem(f"environment {var}", f"{dotted}.{key}", str(err))
        return values


def load_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None,
                platform: str = sys.platform) -> Config:
    """Build the effective config, or raise ConfigError listing every problem.

    path None means: $TOTEM_AGENT_CONFIG, else the default path if it exists,
    else built-in defaults alone. overrides are [agent] keys from the CLI.
    """
    env = dict(os.environ if env is None else env)
    doc: dict[str, Any] = {}
    explicit = path if path is not None else env.get(ENV_CONFIG_FILE) or None
    file_path = Path(explicit) if explicit else default_config_path(platform)
    source = str(file_path)
    if explicit or file_path.exists():
        try:
            with open(file_path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError([f"{source}: config file not found"]) from None
        except PermissionError:
            raise ConfigError([f"{source}: cannot read the config file (permission denied)"]) \
                from None
        except IsADirectoryError:
            raise ConfigError([f"{source}: is a directory, not a config file"]) from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError([f"{source}: not valid TOML: {err}"]) from None
    else:
        source = "<built-in defaults>"

    loader = _Loader(source, env)
    for name in doc:
        if name not in TABLES:
            loader.problem(source, f"[{name}]",
                           f"unknown table (known tables: {', '.join(TABLES)})")

    agent = loader.options(loader.table(doc, "agent"), AGENT_OPTIONS, "agent",
                           lambda key: env_name("agent", key))
    for key, value in (overrides or {}).items():
        try:
            agent[key] = AGENT_OPTIONS[key].parse(value, from_text=True)
        except OptionError as err:
            loader.problem("command line", f"agent.{key}", str(err))
    if agent["instance"] is None:
        agent["instance"] = socket.gethostname()
    if agent["state_dir"] is None:
        agent["state_dir"] = default_state_dir(platform)
    if agent["collector_timeout"] is None:
        agent["collector_timeout"] = min(10.0, agent["interval"])
    elif agent["collector_timeout"] > agent["interval"]:
        loader.problem(source, "agent.collector_timeout",
                       f"{agent['collector_timeout']:g}s is longer than agent.interval "
                       f"({agent['interval']:g}s)")

    labels = _load_labels(loader, doc, env)
    collectors = _load_collectors(loader, doc, agent, platform)
    log = loader.options(loader.table(doc, "log"), LOG_OPTIONS, "log",
                         lambda key: env_name("log", key))
    events = loader.options(loader.table(doc, "events"), EVENTS_OPTIONS, "events",
                            lambda key: env_name("events", key))
    pushgateway = loader.options(loader.table(doc, "pushgateway"), PUSHGATEWAY_OPTIONS,
                                 "pushgateway", lambda key: env_name("pushgateway", key))
    if not pushgateway["url"] and env.get(PUSHGATEWAY_URL_ALIAS):
        pushgateway["url"] = env[PUSHGATEWAY_URL_ALIAS]
    _check_pushgateway_tls(loader, pushgateway)
    if events["allow_remote"] and not events["token"]:
        loader.problem(source, "events.allow_remote", "remote clients need [events] token: "
                       "set a token (the kiosk application sends it as 'Authorization: "
                       "Bearer ...'), or remove allow_remote")
    buffer = loader.options(loader.table(doc, "buffer"), BUFFER_OPTIONS, "buffer",
                            lambda key: env_name("buffer", key))
    remote_write = load_remote_write(doc.get("remote_write"),
                                     lambda key, message: loader.problem(source, key, message))
    if remote_write and not buffer["enabled"]:
        loader.problem(source, "buffer.enabled", "[[remote_write]] sends from the buffer: "
                       "keep [buffer] enabled, or remove the [[remote_write]] tables")
    for name in pushgateway["grouping"]:
        if name not in labels:
            loader.problem(source, "pushgateway.grouping",
                           f"{name!r} is not a constant label (set it in [labels])")

    for var in sorted(env):
        if var.startswith(ENV_PREFIX) and var != ENV_CONFIG_FILE and var not in loader.used_env:
            loader.problems.append(f"environment {var}: not a totem-agent setting "
                                   "(see docs/config.md for the variable names)")
    if loader.problems:
        raise ConfigError(loader.problems)
    return Config(source=source, agent=agent, labels=labels, collectors=collectors, log=log,
                  events=events, pushgateway=pushgateway, buffer=buffer,
                  remote_write=tuple(remote_write))


def _check_pushgateway_tls(loader: _Loader, pushgateway: Mapping[str, Any]) -> None:
    if bool(pushgateway["cert_file"]) != bool(pushgateway["key_file"]):
        given, missing = (("cert_file", "key_file") if pushgateway["cert_file"]
                          else ("key_file", "cert_file"))
        loader.problem(loader.source, f"pushgateway.{missing}",
                       f"pushgateway.{given} is set ({pushgateway[given]}) but {missing} is "
                       "not: a client certificate needs both")
    url = str(pushgateway["url"])
    tls_set = [key for key in PUSHGATEWAY_TLS_KEYS if pushgateway[key]]
    if url and tls_set and not url.lower().startswith("https://"):
        loader.problem(loader.source, f"pushgateway.{tls_set[0]}",
                       f"TLS settings need an https:// url, the url is {url!r}")


def _load_labels(loader: _Loader, doc: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    raw = dict(loader.table(doc, "labels"))
    prefix = f"{ENV_PREFIX}LABELS_"
    for var, value in env.items():
        if var.startswith(prefix) and len(var) > len(prefix):
            loader.used_env.add(var)
            raw[var[len(prefix):].lower()] = value
    for name, value in raw.items():
        if not LABEL_NAME_RE.match(name) or name.startswith("__"):
            loader.problem(loader.source, f"labels.{name}",
                           "not a valid label name (letters, digits and _; not starting with __)")
        elif name in RESERVED_LABELS:
            loader.problem(loader.source, f"labels.{name}",
                           f"'{name}' is reserved" + (" (set [agent] instance instead)"
                                                      if name == "instance" else ""))
        elif not isinstance(value, str):
            loader.problem(loader.source, f"labels.{name}",
                           f"expected a string, got {value!r} ({type(value).__name__})")
        else:
            labels[name] = value
    return labels


def _load_collectors(loader: _Loader, doc: Mapping[str, Any], agent: Mapping[str, Any],
                     platform: str) -> dict[str, CollectorSettings]:
    known = builtin_collectors()
    raw_all = loader.table(doc, "collectors")
    for name, raw in raw_all.items():
        if name not in known:
            loader.problem(loader.source, f"collectors.{name}",
                           f"unknown collector (known collectors: {', '.join(known)})")
        elif not isinstance(raw, dict):
            loader.problem(loader.source, f"[collectors.{name}]",
                           f"must be a table, got {type(raw).__name__}")
    result: dict[str, CollectorSettings] = {}
    for name, cls in known.items():
        raw = raw_all.get(name, {})
        if not isinstance(raw, dict):
            raw = {}
        schema = {**COLLECTOR_COMMON_OPTIONS, **cls.options}
        values = loader.options(raw, schema, f"collectors.{name}",
                                lambda key, n=name: env_name("collectors", key, collector=n))
        enabled = cls.default_enabled if values["enabled"] is None else values["enabled"]
        if enabled and not runs_here(cls, platform):
            if values["enabled"]:
                loader.problem(loader.source, f"collectors.{name}.enabled",
                               f"the {name} collector does not run on {platform}")
            enabled = False
        interval = values["interval"] or agent["interval"]
        timeout = values["timeout"] or min(agent["collector_timeout"], interval)
        own = {key: values[key] for key in cls.options}
        result[name] = CollectorSettings(name, cls, bool(enabled), interval, timeout, own)
    return result
