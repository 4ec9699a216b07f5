"""totem-agent as a Windows service: install, uninstall, and the service's own run.

    totem-agent.exe service install      register (auto start, restart on failure), start
    totem-agent.exe service uninstall    stop and unregister; keeps %ProgramData%\\totem-agent
    totem-agent.exe service run          what the Service Control Manager starts

Windows is reached only through the thin layer in agent/_win32.py (pywin32,
imported lazily); tests run everything here on Linux against a fake of it.
State and config live under %ProgramData%\\totem-agent (config.toml, the buffer,
logs\\agent.log: a service has no console to write to).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from totem_agent._win32 import Win32

log = logging.getLogger("totem_agent.winservice")

SERVICE_NAME = "totem-agent"
DISPLAY_NAME = "totem-agent kiosk monitoring agent"
DESCRIPTION = ("Watches this kiosk (system, printer, PIN pad, business events) and serves "
               "its metrics on http://127.0.0.1:10084/metrics. docs/install.md")
# Restart 5 s after the first and second failure, 30 s after later ones; forget
# failures after a day without one.
RESTART_DELAYS_MS = [5_000, 5_000, 30_000]
RESET_FAILURES_AFTER = 86_400


def home(layer: Win32) -> Path:
    return layer.program_data() / "totem-agent"


def command_line(executable: str, config: Path) -> str:
    """The service's command line: quoted, so a path with spaces (Program Files) works."""
    return f'"{executable}" service run --config "{config}"'


def install(layer: Win32, executable: str, example_config: Path | None,
            out: TextIO) -> int:
    """Register (or update) and start the service. Idempotent: an existing service
    gets the current command line and recovery actions; config and state are kept."""
    directory = home(layer)
    for sub in (directory, directory / "logs"):
        sub.mkdir(parents=True, exist_ok=True)
    config = directory / "config.toml"
    if not config.exists() and example_config is not None and example_config.is_file():
        shutil.copyfile(example_config, config)
        print(f"wrote {config} from the commented example", file=out)
    line = command_line(executable, config)
    if layer.service_exists(SERVICE_NAME):
        layer.stop_service(SERVICE_NAME)
        layer.update_service(SERVICE_NAME, DISPLAY_NAME, DESCRIPTION, line)
        print(f"updated the {SERVICE_NAME} service", file=out)
    else:
        layer.create_service(SERVICE_NAME, DISPLAY_NAME, DESCRIPTION, line)
        print(f"registered the {SERVICE_NAME} service (starts with Windows)", file=out)
    layer.set_failure_actions(SERVICE_NAME, RESET_FAILURES_AFTER, RESTART_DELAYS_MS)
    layer.start_service(SERVICE_NAME)
    print(f"started {SERVICE_NAME}; config {config}, state and logs in {directory}", file=out)
    return 0


def uninstall(layer: Win32, purge: bool, out: TextIO) -> int:
    """Stop and unregister; keep config and buffer unless `purge`. Idempotent."""
    if layer.service_exists(SERVICE_NAME):
        layer.stop_service(SERVICE_NAME)
        layer.delete_service(SERVICE_NAME)
        print(f"removed the {SERVICE_NAME} service", file=out)
    else:
        print(f"the {SERVICE_NAME} service is not installed", file=out)
    directory = home(layer)
    if purge:
        if directory.exists():
            shutil.rmtree(directory)
            print(f"removed {directory} (config, buffer, logs)", file=out)
    elif directory.exists():
        print(f"kept {directory} (config, buffer, logs); remove it with "
              "`totem-agent service uninstall --purge`", file=out)
    return 0


class ServiceRunner:
    """The agent inside the service: the same Agent as `totem-agent run`, stopped
    by the Service Control Manager instead of a signal."""

    def __init__(self, layer: Win32, config_path: str | None, env: Mapping[str, str]) -> None:
        self.layer = layer
        self.config_path = config_path
        self.env = env
        self._stop = threading.Event()
        self.running = threading.Event()

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        """0 after a requested stop; non-zero makes Windows apply the recovery actions."""
        from totem_agent.cli import ExitStatus
        from totem_agent.config import ConfigError, load_config
        from totem_agent.logs import setup_logging
        from totem_agent.runtime import Agent

        logs = home(self.layer) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        try:
            config = load_config(self.config_path, env=self.env)
        except ConfigError as problem:
            setup_logging({"file": str(logs / "agent.log")})
            for line in problem.problems:
                log.error("the configuration has a problem: %s", line)
            return int(ExitStatus.BAD_CONFIG)
        # No console under the SCM: the log goes to a file unless one is configured.
        setup_logging({**config.log, "file": config.log.get("file") or str(logs / "agent.log")})
        agent = Agent(config)
        try:
            agent.start()
        except OSError as err:
            log.error("cannot serve on %s: %s", config.agent["listen"], err)
            agent.scheduler.stop(wait=0)
            return int(ExitStatus.ERROR)
        self.running.set()
        self._stop.wait()
        agent.stop()
        return int(ExitStatus.OK)


def run_service(layer: Win32, config_path: str | None, env: Mapping[str, str]) -> int:
    """Host the agent under the Service Control Manager (`totem-agent service run`)."""
    runner = ServiceRunner(layer, config_path, env)
    layer.run_dispatcher(SERVICE_NAME, DISPLAY_NAME, runner.run, runner.request_stop)
    return 0
