"""The running agent: config in, scheduler + HTTP server up, clean stop on a signal."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from prometheus_client.metrics_core import Metric

from totem_agent import __version__
from totem_agent.business import BusinessMetrics
from totem_agent.business_store import FILE_NAME, BusinessStore, StoreError
from totem_agent.collectors.base import CollectorContext, HostPaths
from totem_agent.config import Config
from totem_agent.events_api import EventsAPI
from totem_agent.exposition import Exposition, SelfMetrics
from totem_agent.health import Check, HealthModel
from totem_agent.history import History
from totem_agent.httpmetrics import HttpMetrics
from totem_agent.openapi import openapi
from totem_agent.options import parse_listen
from totem_agent.outputs.remote_write import open_remote_write
from totem_agent.pushgateway import Pusher
from totem_agent.recorder import Recorder, open_buffer, unavailable_check
from totem_agent.scheduler import Scheduler
from totem_agent.server import (
    AgentHTTPServer,
    RequestHandler,
    Response,
    build_routes,
    json_response,
)
from totem_agent.status_page import status_routes
from totem_agent.websecurity import open_web_security

log = logging.getLogger("totem_agent")
SWITCH_INTERVAL = 0.001


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


def open_recorder(config: Config, snapshot: Callable[[], list[Metric]]
                  ) -> tuple[Recorder | None, str | None]:
    """The buffer and its recorder, or (None, why): without a usable state directory
    the agent still serves /metrics, and /health says that nothing is kept offline."""
    if not config.buffer["enabled"]:
        return None, None
    state_dir = config.agent.get("state_dir")
    if not state_dir:
        return None, "no [agent] state_dir"
    try:
        buffer = open_buffer(state_dir, config.buffer)
    except Exception as err:  # OSError, sqlite3.Error, BufferFormatError: all said the same way
        log.error("buffer disabled: cannot open it", extra={"error": str(err)})
        return None, str(err)
    return Recorder(buffer, snapshot, instance=config.instance,
                    interval=float(config.agent.get("interval", 15.0))), None


def openapi_handler(request: RequestHandler) -> Response:
    return json_response(200, openapi())


class _Fixed:
    """A health source whose checks never change (a part that could not start)."""

    def __init__(self, checks: list[Check]) -> None:
        self._checks = checks

    def health_checks(self) -> list[Check]:
        return self._checks


class Agent:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.scheduler = Scheduler(config.enabled_collectors(), collector_context(config),
                                   labels=config.labels)
        self.business, problem = open_business(config)
        self.events = EventsAPI(self.business, config.events, store_problem=problem)
        self.http_metrics = HttpMetrics()
        extra = [self.events.families, self.http_metrics.families]
        self.recorder, buffer_problem = open_recorder(config, self._families)
        self.buffer = self.recorder.buffer if self.recorder is not None else None
        # The status page's charts (agent/status_page.py), read from the buffer.
        self.history = History(lambda: self.buffer)
        if self.recorder is not None:
            extra.append(self.recorder.metrics)
        recorder = self.recorder
        self.remote_write = open_remote_write(
            config.remote_write, self.buffer, (lambda: recorder.stats) if recorder else None,
            on_settled=recorder.refresh if recorder else None)
        if self.remote_write is not None:
            extra.append(self.remote_write.metrics)
        self.pusher: Pusher | None = None
        if config.pushgateway["url"]:
            self.pusher = Pusher(config.pushgateway, config.instance, config.labels,
                                 self._families)
            extra.append(self.pusher.metrics)
        self.self_metrics = SelfMetrics(self.scheduler, config.labels, extra=extra)
        self.exposition = Exposition(self.scheduler, self.self_metrics)
        self.scheduler.on_change = self.exposition.invalidate
        self.scheduler.on_idle = self._cycle_complete
        if self.business is not None:
            self.business.on_change = self.exposition.invalidate_live
        if self.recorder is not None:
            self.recorder.on_change = self._buffer_changed
        # A scrape does not invalidate the cache it is served from (its own count shows
        # from the next render); any other request renews the live tail.
        self.http_metrics.on_change = lambda handler: (
            None if handler == "/metrics" else self.exposition.invalidate_live())
        self.health = HealthModel(config.instance, config.labels)
        self.health.add_source(self.scheduler)
        self.health.add_source(self.events)
        if self.pusher is not None:
            self.health.add_source(self.pusher)
        if self.recorder is not None:
            self.health.add_source(self.recorder)
        elif buffer_problem is not None:
            self.health.add_source(_Fixed([unavailable_check(buffer_problem)]))
        if self.remote_write is not None:
            self.health.add_source(self.remote_write)
        self.server: AgentHTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self.stopped = threading.Event()

    def _buffer_changed(self) -> None:
        """After an append (or a settled batch): renew /metrics' tail, wake the shippers."""
        self.exposition.invalidate_live()
        if self.remote_write is not None:
            self.remote_write.notify()

    def _families(self) -> list[Metric]:
        return self.exposition.families()

    def _cycle_complete(self) -> None:
        # The live tail (buffer, outputs, push) moves on its own threads: renew it at
        # least once a cycle, so no scrape serves it older than that.
        self.exposition.invalidate_live()
        self.exposition.warm()
        if self.recorder is not None:
            self.recorder.cycle_complete()

    def start(self) -> None:
        """Bind the server (raises OSError if the port is taken), then start collecting."""
        # A scrape served from the cache needs the GIL for well under a millisecond, but
        # arriving while a collector or the buffer holds it, it waited for the
        # interpreter's 5 ms switch interval, several times per request: that set the
        # /metrics p99. 1 ms bounds each wait for a few more switches per cycle.
        sys.setswitchinterval(SWITCH_INTERVAL)
        host, port = parse_listen(self.config.agent["listen"])
        routes = build_routes(self.exposition, self.health,
                              {("POST", "/api/v1/events"): self.events.handle,
                               ("GET", "/api/v1/openapi.json"): openapi_handler,
                               **status_routes(self.history)})
        web = open_web_security(str(self.config.agent.get("web_config") or ""), host)
        self.server = AgentHTTPServer((host, port), routes, self.http_metrics, web=web)
        self.scheduler.start()
        if self.recorder is not None:
            self.recorder.start()
        if self.remote_write is not None:
            self.remote_write.start()
        self._serve_thread = threading.Thread(target=self.server.serve_forever,
                                              kwargs={"poll_interval": 0.5},
                                              name="http", daemon=True)
        self._serve_thread.start()
        if self.pusher is not None:
            self.pusher.start()
        if self.buffer is not None:
            self.history.start(every_seconds=float(self.config.agent.get("interval", 15.0)))
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
        self.history.stop()
        self.scheduler.stop()
        if self.remote_write is not None:  # before the buffer closes; unsent batches stay
            self.remote_write.stop()
        if self.recorder is not None:
            self.recorder.stop()
            self.recorder.close()
        if self.business is not None:
            self.business.store.close()
        log.info("totem-agent stopped")
        self.stopped.set()
