"""The running agent: config in, scheduler + HTTP server up, clean stop on a signal."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from totem_agent import __version__
from totem_agent.business import BusinessMetrics
from totem_agent.business_store import FILE_NAME, BusinessStore, StoreError
from totem_agent.collectors.base import CollectorContext, HostPaths
from totem_agent.config import Config
from totem_agent.events_api import EventsAPI
from totem_agent.exposition import Exposition, SelfMetrics
from totem_agent.health import HealthModel
from totem_agent.httpmetrics import HttpMetrics
from totem_agent.openapi import openapi
from totem_agent.options import parse_listen
from totem_agent.pushgateway import Pusher
from totem_agent.scheduler import Scheduler
from totem_agent.server import (
    AgentHTTPServer,
    RequestHandler,
    Response,
    build_routes,
    json_response,
)

log = logging.getLogger("totem_agent")


def collector_context(config: Config) -> CollectorContext:
    agent = config.agent
    return CollectorContext(paths=HostPaths(procfs=Path(agent["procfs"]),
                                            sysfs=Path(agent["sysfs"]),
                                            rootfs=Path(agent["rootfs"])))


def open_business(config: Config) -> tuple[BusinessMetrics | None, str | None]:
    """The persisted business state, or (None, why): the agent still monitors the
    machine when its state directory is unusable, and says so in /health."""
    state_dir = config.agent.get("state_dir")
    if not state_dir:
        return None, "no [agent] state_dir"
    events = config.events
    try:
        store = BusinessStore(Path(state_dir) / FILE_NAME,
                              synchronous=str(events["synchronous"]).upper())
        business = BusinessMetrics(store, max_label_values=int(events["max_label_values"]),
                                   id_window=float(events["idempotency_window"]),
                                   max_ids=int(events["idempotency_max_ids"]))
    except StoreError as err:
        log.error("events API disabled: cannot open its state", extra={"error": str(err)})
        return None, str(err)
    return business, None


def openapi_handler(request: RequestHandler) -> Response:
    return json_response(200, openapi())


class Agent:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.scheduler = Scheduler(config.enabled_collectors(), collector_context(config),
                                   labels=config.labels)
        self.business, problem = open_business(config)
        self.events = EventsAPI(self.business, config.events, store_problem=problem)
        self.http_metrics = HttpMetrics()
        extra = [self.events.families, self.http_metrics.families]
        self.pusher: Pusher | None = None
        if config.pushgateway["url"]:
            self.pusher = Pusher(config.pushgateway, config.instance, config.labels,
                                 lambda: self.exposition.families())
            extra.append(self.pusher.metrics)
        self.self_metrics = SelfMetrics(self.scheduler, config.labels, extra=extra)
        self.exposition = Exposition(self.scheduler, self.self_metrics)
        self.scheduler.on_change = self.exposition.invalidate
        self.scheduler.on_idle = self.exposition.warm
        if self.business is not None:
            self.business.on_change = self.exposition.invalidate_live
        # A scrape does not invalidate the cache it is served from (its own count shows
        # from the next render); any other request renews the live tail.
        self.http_metrics.on_change = lambda handler: (
            None if handler == "/metrics" else self.exposition.invalidate_live())
        self.health = HealthModel(config.instance, config.labels)
        self.health.add_source(self.scheduler)
        self.health.add_source(self.events)
        if self.pusher is not None:
            self.health.add_source(self.pusher)
        self.server: AgentHTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self.stopped = threading.Event()

    def start(self) -> None:
        """Bind the server (raises OSError if the port is taken), then start collecting."""
        host, port = parse_listen(self.config.agent["listen"])
        routes = build_routes(self.exposition, self.health,
                              {("POST", "/api/v1/events"): self.events.handle,
                               ("GET", "/api/v1/openapi.json"): openapi_handler})
        self.server = AgentHTTPServer((host, port), routes, self.http_metrics)
        self.scheduler.start()
        self._serve_thread = threading.Thread(target=self.server.serve_forever,
                                              kwargs={"poll_interval": 0.5},
                                              name="http", daemon=True)
        self._serve_thread.start()
        if self.pusher is not None:
            self.pusher.start()
        log.info("totem-agent started", extra={
            "version": __version__, "url": self.server.url, "instance": self.config.instance,
            "config": self.config.source,
            "collectors": [c.name for c in self.config.enabled_collectors()]})

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.pusher is not None:
            self.pusher.stop()
        self.scheduler.stop()
        if self.business is not None:
            self.business.store.close()
        log.info("totem-agent stopped")
        self.stopped.set()
