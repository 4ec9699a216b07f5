"""The `totem-agent` command, declared in one place. `main(argv, env)` runs in-process."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Any, NoReturn, TextIO

from totem_agent import DEFAULT_PORT, __version__


class ExitStatus(IntEnum):
    """Exit codes. 0-3 follow the Nagios plugin convention so `status` drops into
    existing check scripts: ok, degraded (warning), failing (critical), unreachable."""

    OK = 0
    DEGRADED = 1
    FAILING = 2
    UNREACHABLE = 3
    ERROR = 4          # the agent could not start or run (port in use, ...)
    USAGE = 64         # EX_USAGE: wrong command line
    NO_PERMISSION = 77  # EX_NOPERM: the agent wants a token or password not given (event)
    BAD_CONFIG = 78    # EX_CONFIG: the config file or environment has errors


DESCRIPTION = f"""\
totem-agent {__version__}: watches this kiosk (system, peripherals, business
events) and serves its metrics for Prometheus on http://127.0.0.1:{DEFAULT_PORT}/metrics.
With no config file it serves this machine's own metrics. docs/config.md lists every
setting; docs/health.md explains `status`."""

EVENT_EPILOG = """\
fields by type: see docs/events.md. exit codes: 0 recorded (or already recorded),
3 the agent is not reachable, 4 the agent could not store it, 64 refused (the
message names the field), 77 the agent wants the events token (or refused it).
The token: --token-file, else [events] token of the config (TOTEM_AGENT_EVENTS_TOKEN).
The address: --url, else the config's listen (https, trusting the agent's own
certificate, when its web_config turns TLS on). docs/security.md"""

STATUS_EPILOG = """\
exit codes: 0 ok, 1 degraded (something needs a look), 2 failing (the agent cannot
do its job), 3 unreachable (the agent is not running or not on that address, or it
asks for a user and password: the message says which).
When the agent's web-config asks for basic auth: set TOTEM_AGENT_USER and
TOTEM_AGENT_PASSWORD (or --user and --password-file FILE); never put a password on
the command line. The address: --url, else the config's listen (https, trusting the
agent's own certificate, when its web_config turns TLS on). docs/security.md"""


BUFFER_EPILOG = """\
The buffer is state_dir/buffer.sqlite ([agent] state_dir). exit codes: 0 done,
4 the buffer cannot be read, 64 a --since/--until that is not a time."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitStatus.USAGE, f"{self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="totem-agent", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_text: str, epilog: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    def client_args(p: argparse.ArgumentParser, basic_auth: bool = True) -> None:
        """How a local command reaches an agent whose server is protected (agent_client)."""
        p.add_argument("--ca-file", metavar="FILE",
                       help="trust the agent's certificate if signed by this CA (default: "
                            "with --url, the system's CAs; from the config, the agent's own "
                            "certificate)")
        p.add_argument("--cert-file", metavar="FILE",
                       help="client certificate, when the agent requires one")
        p.add_argument("--key-file", metavar="FILE", help="the client certificate's key")
        if basic_auth:
            p.add_argument("--user", metavar="NAME",
                           help="basic-auth user (default: $TOTEM_AGENT_USER)")
            p.add_argument("--password-file", metavar="FILE",
                           help="file holding the basic-auth password (default: "
                                "$TOTEM_AGENT_PASSWORD)")

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", "-c", metavar="FILE",
                       help="TOML config file (default: $TOTEM_AGENT_CONFIG, else "
                            "/etc/totem-agent/config.toml if it exists, else built-in defaults)")

    run = add("run", "Run the agent: collect on schedule and serve /metrics and /health.")
    config_arg(run)
    run.add_argument("--listen", metavar="HOST:PORT",
                     help=f"address to serve on, overriding the config "
                          f"(default 127.0.0.1:{DEFAULT_PORT}; 0.0.0.0:PORT exposes it)")
    run.add_argument("--web-config", metavar="FILE",
                     help="exporter-toolkit web-config file (TLS, client certificates, "
                          "basic auth), overriding [agent] web_config; see docs/security.md")

    check = add("check-config", "Check a config file and the TOTEM_AGENT_* environment; "
                "print every problem with its key, or the effective settings.")
    config_arg(check)
    check.add_argument("--quiet", "-q", action="store_true", help="print nothing when valid")

    collect = add("collect", "Run the enabled collectors and print their metrics "
                  "(for trying a collector or a config on the spot).")
    config_arg(collect)
    collect.add_argument("--once", action="store_true", required=True,
                         help="run each collector once, print, exit (required for now)")
    collect.add_argument("--collector", action="append", metavar="NAME",
                         help="run only this collector (repeatable)")

    status = add("status", "Ask the running agent how it is and print it for a person.",
                 epilog=STATUS_EPILOG)
    config_arg(status)
    status.add_argument("--url", help="agent address (default: from the config's listen)")
    status.add_argument("--json", action="store_true", help="print /health's JSON as it is")
    client_args(status)
    status.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                        help="give up after this long (default 5)")

    # The fields from the schema itself, not event_cli.EVENT_FIELDS (the same names in
    # the same order): event_cli brings the HTTP client (http.client, ssl, email),
    # which every command would then carry, a running agent included.
    from totem_agent.events import SCHEMA

    event_fields = dict.fromkeys(name for fields in SCHEMA.values() for name in fields)

    event = add("event", "Post one event to the running agent, for shell scripts. Example: "
                "totem-agent event payment --status approved --method pix --amount 12.50",
                epilog=EVENT_EPILOG)
    config_arg(event)
    event.add_argument("type", choices=list(SCHEMA), metavar="TYPE",
                       help=f"one of: {', '.join(SCHEMA)}")
    for name in [*event_fields, "id", "timestamp"]:
        event.add_argument("--" + name.replace("_", "-"), dest=f"field_{name}", metavar="VALUE")
    event.add_argument("--url", help="agent address (default: from the config's listen)")
    client_args(event, basic_auth=False)
    event.add_argument("--token-file", metavar="FILE",
                       help="file holding the events token (default: [events] token)")
    event.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                       help="give up after this long (default 5)")

    push = add("push", "Collect once and push the snapshot to the configured Pushgateway; "
               "report the result.")
    config_arg(push)

    buffer = add("buffer", "Look into the buffer kept for remote_write (works while the agent "
                 "runs, or on a disk taken out of a kiosk).", epilog=BUFFER_EPILOG)
    buffer_sub = buffer.add_subparsers(dest="buffer_command", metavar="stats|export",
                                       parser_class=_Parser, required=True)
    stats = buffer_sub.add_parser("stats", help="per destination: pending samples, oldest, "
                                  "sent, dropped; and the buffer's size on disk",
                                  description="Per destination: pending samples, the oldest "
                                  "one's age, sent and dropped; the buffer's size on disk.")
    config_arg(stats)
    stats.add_argument("--json", action="store_true", help="print JSON for scripts")
    export = buffer_sub.add_parser("export", help="write buffered samples as OpenMetrics "
                                   "(loadable by promtool tsdb create-blocks-from openmetrics) "
                                   "or JSON lines", description="Write buffered samples with "
                                   "their timestamps. OpenMetrics output loads with `promtool "
                                   "tsdb create-blocks-from openmetrics FILE DIR`.")
    config_arg(export)
    export.add_argument("--since", metavar="WHEN", help="from this time: "
                        "2026-11-23T10:00:00Z, a Unix time, or a duration ago (24h, 7d)")
    export.add_argument("--until", metavar="WHEN", help="up to (not including) this time")
    export.add_argument("--format", choices=("openmetrics", "jsonl"), default="openmetrics",
                        help="openmetrics (default) or jsonl (one JSON object per sample)")
    export.add_argument("--output", "-o", metavar="FILE",
                        help="write to FILE instead of standard output")

    tray = add("tray", "Show a tray icon that follows the running agent's health (green ok, "
               "amber degraded, red failing, grey unreachable); needs a desktop session and "
               "the tray extra. See docs/status-page.md.")
    config_arg(tray)
    tray.add_argument("--url", help="agent address (default: from the config's listen)")
    tray.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                      help="ask the agent this often (default 5)")
    client_args(tray)

    service = add("service", "Install or remove totem-agent as a service of this machine "
                  "(Linux: systemd, via install.sh; Windows: a Windows service). "
                  "docs/install.md")
    service.add_argument("action", choices=("install", "uninstall", "run"),
                         help="run: what Windows' service manager starts")
    service.add_argument("--purge", action="store_true",
                         help="uninstall: also remove the config and the buffer")
    service.add_argument("--root", metavar="DIR",
                         help="Linux: install into this directory tree instead of /")
    config_arg(service)

    add("version", "Print the version of totem-agent and of its platform.")
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
         stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    try:
        code = _main(argv, env, out, stderr or sys.stderr)
        if out is not None:  # None: no console at all (pythonw, a Windows service)
            out.flush()  # inside the try: a closed pipe shows up here, not at exit
    except BrokenPipeError:
        # `totem-agent status | head -1`: the reader left. Exit quietly as Python's docs
        # advise: stdout to devnull, so the flush at exit does not raise again.
        if out is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1
    return code


def _main(argv: Sequence[str] | None, env: Mapping[str, str] | None, out: TextIO,
          err: TextIO) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from totem_agent.client_env import CLIENT_ENV

    client_env = dict(os.environ if env is None else env)  # status/event/tray credentials
    env = {k: v for k, v in client_env.items() if k not in CLIENT_ENV}  # not agent settings
    if args.command is None:
        parser.print_help(out)
        return ExitStatus.USAGE
    if args.command == "version":
        print(f"totem-agent {__version__} (Python {platform.python_version()}, "
              f"{platform.system()} {platform.release()} {platform.machine()})", file=out)
        return ExitStatus.OK
    if args.command == "service":
        from totem_agent.service_cli import service_command

        return service_command(args.action, args.root, args.purge, args.config, env, out, err)
    if args.command == "tray":  # before the config: the user may not be allowed to read it
        from totem_agent.tray import run_tray, tray_target

        target = tray_target(args, client_env, err)
        return run_tray(target, args.interval, err) if target is not None else ExitStatus.USAGE
    from totem_agent.config import ConfigError, load_config

    overrides = {"listen": args.listen} if getattr(args, "listen", None) else None
    if getattr(args, "web_config", None):
        overrides = {**(overrides or {}), "web_config": args.web_config}
    try:
        config = load_config(args.config, env=env, overrides=overrides)
    except ConfigError as problem:
        print(f"totem-agent: the configuration has {len(problem.problems)} problem(s):", file=err)
        for line in problem.problems:
            print(f"  {line}", file=err)
        return ExitStatus.BAD_CONFIG
    if args.command == "check-config":
        from totem_agent.secrets_policy import check_config_warnings

        if not args.quiet:
            print(f"config OK: {config.source}", file=out)
            print(json.dumps(_effective(config), indent=2, default=str), file=out)
        for warning in check_config_warnings(config):
            print(f"warning: {warning}", file=err)
        return ExitStatus.OK
    if args.command == "collect":
        return _collect_once(config, args.collector, out, err)
    if args.command == "event":
        from totem_agent.event_cli import event_command

        return event_command(args, config, client_env, out, err)
    if args.command == "push":
        from totem_agent.event_cli import push_once

        return push_once(config, out, err)
    if args.command == "buffer":
        from totem_agent.buffer_cli import run_buffer_command

        return run_buffer_command(args, str(config.agent["state_dir"]), out, err)
    if args.command == "status":
        from totem_agent.status import status_command

        return status_command(args, config, client_env, out, err)
    return _run(config, err, env,
                reload=lambda: load_config(args.config, env=env, overrides=overrides))


def _effective(config: Any) -> dict[str, Any]:
    from totem_agent.secrets_policy import redact_secrets

    return redact_secrets({
        "agent": dict(config.agent),
        "labels": dict(config.labels),
        "collectors": {c.name: {"enabled": c.enabled, "interval": c.interval,
                                "timeout": c.timeout, **c.options}
                       for c in config.collectors.values()},
        "log": dict(config.log),
        # The token is a secret: say whether one is set, never print it.
        "events": {**config.events, "token": "(set)" if config.events.get("token") else ""},
        "pushgateway": {**config.pushgateway,
                        "password": "(set)" if config.pushgateway.get("password") else ""},
        "remote_write": [dict(destination) for destination in config.remote_write],
    })


def _collect_once(config: Any, only: list[str] | None, out: TextIO, err: TextIO) -> int:
    from totem_agent.exposition import _Families
    from totem_agent.exposition_format import generate_latest
    from totem_agent.runtime import collector_context
    from totem_agent.scheduler import Scheduler, nothing_to_watch

    wanted = config.enabled_collectors()
    if only:
        unknown = sorted(set(only) - set(config.collectors))
        if unknown:
            print(f"totem-agent: unknown collector(s): {', '.join(unknown)} "
                  f"(known: {', '.join(config.collectors)})", file=err)
            return ExitStatus.USAGE
        wanted = [config.collectors[name] for name in only]
    scheduler = Scheduler(wanted, collector_context(config), labels=config.labels)
    scheduler.run_once()
    failed = 0
    families = []
    for state in scheduler.snapshot():
        families.extend(state.families)
        if not state.success:
            failed += 1
            print(f"collector {state.name} failed: {state.last_error}", file=err)
        elif state.outcome == "no_data":
            print(f"collector {state.name}: {nothing_to_watch(state)}", file=err)
    out.write(generate_latest(_Families(families)).decode())
    scheduler.stop(wait=0)
    return ExitStatus.DEGRADED if failed else ExitStatus.OK


def _run(config: Any, err: TextIO, env: Mapping[str, str] | None = None,
         reload: Any = None) -> int:
    from totem_agent.logs import setup_logging
    from totem_agent.runtime import Agent
    from totem_agent.sdnotify import ServiceNotifier

    setup_logging(config.log)
    agent = Agent(config)
    # systemd's Type=notify: None when no service manager listens.
    notifier = ServiceNotifier.from_env(env or {}, agent.scheduler, agent.health)
    try:
        agent.start()
    except ValueError as error:  # WebConfigError: the web-config file changed since the check
        print(f"totem-agent: {error}", file=err)
        agent.scheduler.stop(wait=0)
        return ExitStatus.BAD_CONFIG
    except OSError as error:
        listen = config.agent["listen"]
        print(f"totem-agent: cannot serve on {listen}: {error.strerror or error}. "
              "Is another totem-agent already running? Choose another address with "
              "--listen or [agent] listen.", file=err)
        agent.scheduler.stop(wait=0)
        return ExitStatus.ERROR
    done, reload_asked, wake = threading.Event(), threading.Event(), threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        # Only flags here: the reload itself runs in the loop below, not in the handler.
        (reload_asked if signum == getattr(signal, "SIGHUP", None) else done).set()
        wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if reload is not None and hasattr(signal, "SIGHUP"):  # no SIGHUP on Windows
        from totem_agent.reload import ConfigReloader

        reloader = ConfigReloader(agent, reload)
        signal.signal(signal.SIGHUP, on_signal)
    if notifier is not None:
        notifier.ready()
    while not done.is_set():
        wake.wait(1.0)
        wake.clear()
        if reload_asked.is_set() and not done.is_set():
            reload_asked.clear()
            _reload(reloader, agent, notifier)
    if notifier is not None:
        notifier.stopping()
    agent.stop()
    if notifier is not None:
        notifier.close()
    return ExitStatus.OK


def _reload(reloader: Any, agent: Any, notifier: Any) -> None:
    """SIGHUP: agent/reload.py; systemd hears RELOADING=1, then READY=1 either way."""
    import logging

    if notifier is not None:
        notifier.reloading()
    try:
        outcome = reloader.reload()
    except Exception:  # a bug in a reload must not end the agent that runs
        logging.getLogger("totem_agent").exception("config reload failed")
        outcome = "config reload failed, see the log"
    if notifier is not None:
        notifier.reloaded(agent.scheduler, outcome)


def entry_point() -> None:
    sys.exit(main())


def tray_main() -> int:
    """`totem-agent-tray [options]`: `totem-agent tray` as its own command, what the
    XDG autostart entry starts (a pip install's launcher, or the tray binary)."""
    return main(["tray", *sys.argv[1:]])


if __name__ == "__main__":
    entry_point()
