"""The running agent: config in, scheduler + HTTP server up, clean stop on a signal."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from totem_agent import __version__
from totem_agent.collectors.base import CollectorContext, HostPaths
from totem_agent.config import Config
from totem_agent.exposition import Exposition, SelfMetrics
from totem_agent.health import HealthModel
from totem_agent.options import parse_listen
from totem_agent.scheduler import Scheduler
from totem_agent.server import AgentHTTPServer, build_routes

log = logging.getLogger("totem_agent")


def collector_context(config: Config) -> CollectorContext:
    agent = config.agent
    return CollectorContext(paths=HostPaths(procfs=Path(agent["procfs"]),
                                            sysfs=Path(agent["sysfs"]),
                                            rootfs=Path(agent["rootfs"])))


class Agent:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.scheduler = Scheduler(config.enabled_collectors(), collector_context(config),
                                   labels=config.labels)
        self.self_metrics = SelfMetrics(self.scheduler, config.labels)
        self.exposition = Exposition(self.scheduler, self.self_metrics)
        self.scheduler.on_change = self.exposition.invalidate
        self.health = HealthModel(config.instance, config.labels)
        self.health.add_source(self.scheduler)
        self.server: AgentHTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self.stopped = threading.Event()

    def start(self) -> None:
        """Bind the server (raises OSError if the port is taken), then start collecting."""
        host, port = parse_listen(self.config.agent["listen"])
        self.server = AgentHTTPServer((host, port), build_routes(self.exposition, self.health))
        self.scheduler.start()
        self._serve_thread = threading.Thread(target=self.server.serve_forever,
                                              kwargs={"poll_interval": 0.5},
                                              name="http", daemon=True)
        self._serve_thread.start()
        log.info("totem-agent started", extra={
            "version": __version__, "url": self.server.url, "instance": self.config.instance,
            "config": self.config.source,
            "collectors": [c.name for c in self.config.enabled_collectors()]})

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        self.scheduler.stop()
        log.info("totem-agent stopped")
        self.stopped.set()
