"""SIGHUP: read the config file (and the environment the agent started with) again.

A valid new config takes effect without a restart: collectors and their
intervals and options (peripherals included), constant labels, instance, the
[log] table, [pushgateway] and [[remote_write]]. The HTTP server, the buffer and
the events store stay open, so the keys they were opened with need a restart
(RESTART_ONLY); when one of them changed, the log says which, at every reload
until the agent restarts. A config with problems is refused with one log line
naming the file and each key, and the running config goes on unchanged.
docs/config.md ("Reloading") is the user's copy of this.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from totem_agent.config import Config, ConfigError
from totem_agent.logs import setup_logging

log = logging.getLogger("totem_agent")

# Keys read once, when the server, the buffer and the events store open.
RESTART_ONLY = {"agent": ("listen", "web_config", "state_dir"), "buffer": None, "events": None}


class _Reloadable(Protocol):
    config: Config

    def reload(self, config: Config) -> None: ...


def restart_only_changes(running: Config, new: Config) -> list[str]:
    """The dotted keys that differ between the two configs but need a restart.
    Only names: values may be secrets ([events] token)."""
    changed = []
    for table, keys in RESTART_ONLY.items():
        old_values, new_values = getattr(running, table), getattr(new, table)
        for key in keys or sorted(set(old_values) | set(new_values)):
            if old_values.get(key) != new_values.get(key):
                changed.append(f"{table}.{key}")
    return changed


class ConfigReloader:
    """Reloads one running agent; `load` reads the config exactly as at start-up
    (same file, same environment, same command-line overrides)."""

    def __init__(self, agent: _Reloadable, load: Callable[[], Config]) -> None:
        self.agent = agent
        self.load = load
        # What the server, buffer and events store were opened with.
        self.started_with = agent.config

    def reload(self) -> str:
        """Apply the config file as it is now; a short outcome for STATUS=."""
        running = self.agent.config
        try:
            config = self.load()
        except ConfigError as problem:
            log.error("config reload refused, the previous config keeps running: %s",
                      "; ".join(problem.problems),
                      extra={"config": running.source, "problems": problem.problems})
            return "new config refused, see the log"
        if dict(config.log) != dict(running.log):
            try:
                setup_logging(config.log)
            except OSError as err:  # the file of [log] file cannot be opened
                log.error("config reload refused, the previous config keeps running: "
                          "%s: log.file: cannot open %s: %s", config.source,
                          config.log.get("file"), err.strerror or err,
                          extra={"config": config.source})
                return "new config refused, see the log"
        pending = restart_only_changes(self.started_with, config)
        if pending:
            log.warning("config reload: %s changed but take(s) effect only when the agent "
                        "restarts; until then the previous values stay in use",
                        ", ".join(pending), extra={"config": config.source,
                                                   "restart_needed": pending})
        self.agent.reload(config)
        return "restart needed for " + ", ".join(pending) if pending else ""
