"""The running agent: config in, scheduler + HTTP server up, clean stop on a signal."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import Metric

from totem_agent import __version__
from totem_agent.business import BusinessMetrics
from totem_agent.business_store import FILE_NAME, BusinessStore, StoreError
from totem_agent.collectors.base import CollectorContext, HostPaths
from totem_agent.config import Config
from totem_agent.events_api import EventsAPI
from totem_agent.exposition import Exposition, SelfMetrics
from totem_agent.health import Check, HealthModel, HealthSource
from totem_agent.history import WANTED, History
from totem_agent.httpmetrics import HttpMetrics
from totem_agent.openapi import openapi
from totem_agent.options import parse_listen
from totem_agent.recorder import MIN_SPACING, Recorder, open_buffer, unavailable_check
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

if TYPE_CHECKING:  # imported when configured: see open_remote_write and Agent._open_pusher
    from totem_agent.buffer import Buffer, BufferStats
    from totem_agent.outputs.remote_write import RemoteWrite
    from totem_agent.pushgateway import Pusher

log = logging.getLogger("totem_agent")
SWITCH_INTERVAL = 0.0002


def open_remote_write(settings: Any, buffer: Buffer | None,
                      stats: Callable[[], BufferStats | None] | None = None,
                      on_settled: Callable[[], object] | None = None) -> RemoteWrite | None:
    """outputs.remote_write.open_remote_write, imported only when it has work: a
    destination configured, or one the buffer still knows to forget. Its modules
    bring http.client, ssl and email, which an agent without remote_write never needs."""
    if not settings:
        if buffer is None:
            return None
        try:
            if not buffer.destinations():
                return None
        except Exception:  # the output's own opening reports a failed buffer
            pass
    from totem_agent.outputs import remote_write

    return remote_write.open_remote_write(settings, buffer, stats, on_settled=on_settled)


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


class _Current:
    """The checks of parts a reload (SIGHUP) replaces, looked up at each call."""

    def __init__(self, parts: Callable[[], Iterable[HealthSource | None]]) -> None:
        self._parts = parts

    def health_checks(self) -> list[Check]:
        return [check for part in self._parts() if part is not None
                for check in part.health_checks()]


def release_collectors(scheduler: Scheduler, wait: float) -> None:
    """After stop(): let runs in flight finish (up to `wait` seconds), then close what
    each collector holds (a printer's serial port in ASB mode), so that the collector
    replacing it can open it. A run still stuck keeps its collector: it is not closed."""
    scheduler.wait_runs(wait)
    for state in scheduler.snapshot():
        if state.collector is not None and (state.running is None or state.running.done()):
            try:
                state.collector.close()
            except Exception as err:  # the reload goes on; the port is freed at exit
                log.warning("could not close the %s collector: %s", state.name, err)


def new_scheduler(config: Config) -> Scheduler:
    return Scheduler(config.enabled_collectors(), collector_context(config),
                     labels=config.labels)


class Agent:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.scheduler = new_scheduler(config)
        self.business, problem = open_business(config)
        self.events = EventsAPI(self.business, config.events, store_problem=problem)
        self.http_metrics = HttpMetrics()
        extra = [self.events.families, self.http_metrics.families]
        self.recorder, buffer_problem = open_recorder(config, self._families)
        self.buffer = self.recorder.buffer if self.recorder is not None else None
        # The status page's charts (agent/status_page.py), read from the buffer.
        self.history = History(lambda: self.buffer)
        if self.recorder is not None:
            self.recorder.on_appended = self.history.observe
            self.recorder.on_appended_names = WANTED  # the few series the charts read
        if self.recorder is not None:
            extra.append(self.recorder.metrics)
        recorder = self.recorder
        self.remote_write = open_remote_write(
            config.remote_write, self.buffer, (lambda: recorder.stats) if recorder else None,
            on_settled=recorder.refresh if recorder else None)
        self.pusher: Pusher | None = self._open_pusher(config)
        # Outputs are looked up at each render: a reload (SIGHUP) replaces them.
        extra.append(self._output_families)
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
        self.health.add_source(_Current(lambda: [self.scheduler]))
        self.health.add_source(self.events)
        if self.recorder is not None:
            self.health.add_source(self.recorder)
        elif buffer_problem is not None:
            self.health.add_source(_Fixed([unavailable_check(buffer_problem)]))
        self.health.add_source(_Current(lambda: [self.pusher, self.remote_write]))
        self.server: AgentHTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self.stopped = threading.Event()

    def _open_pusher(self, config: Config) -> Pusher | None:
        if not config.pushgateway["url"]:
            return None
        # Imported only when configured: it brings urllib.request, ssl and hashlib.
        from totem_agent.pushgateway import Pusher

        return Pusher(config.pushgateway, config.instance, config.labels, self._families)

    def _output_families(self) -> list[Metric]:
        families: list[Metric] = []
        for output in (self.remote_write, self.pusher):
            if output is not None:
                families.extend(output.metrics())
        return families

    def reload(self, config: Config) -> None:
        """Take a new, already validated config while running (SIGHUP, agent/reload.py).

        New collectors, labels and outputs replace the old ones; the HTTP server, the
        buffer and the events store stay as they are (their keys need a restart). The
        old scheduler's last results stay on /metrics until the new one's first cycle
        completes, so a scrape never sees the collectors missing.
        """
        scheduler = new_scheduler(config)
        scheduler.heartbeat_every = self.scheduler.heartbeat_every
        old_scheduler, old_pusher, old_remote_write = self.scheduler, self.pusher, self.remote_write
        if old_pusher is not None:
            old_pusher.stop()
        # The old shippers stop before the new ones register: one per destination.
        if old_remote_write is not None:
            old_remote_write.stop()
        old_scheduler.stop()
        release_collectors(old_scheduler, wait=float(config.agent["collector_timeout"]))

        def first_cycle() -> None:
            if self.exposition.scheduler is not scheduler:
                self._show(scheduler, config)
            self._cycle_complete()

        self.config = config
        self.scheduler = scheduler
        scheduler.on_change = self.exposition.invalidate
        scheduler.on_idle = first_cycle
        self.health.instance, self.health.labels = config.instance, dict(config.labels)
        if self.recorder is not None:
            self.recorder.extra_labels = {**self.recorder.extra_labels,
                                          "instance": config.instance}
            self.recorder.min_spacing = float(config.agent.get("interval", 15.0)) * MIN_SPACING
        recorder = self.recorder
        self.remote_write = open_remote_write(
            config.remote_write, self.buffer, (lambda: recorder.stats) if recorder else None,
            on_settled=recorder.refresh if recorder else None)
        self.pusher = self._open_pusher(config)
        if not config.enabled_collectors():  # no cycle will ever complete
            self._show(scheduler, config)
        scheduler.start()
        if self.remote_write is not None:
            self.remote_write.start()
        if self.pusher is not None:
            self.pusher.start()
        self.exposition.invalidate_live()
        log.info("config reloaded", extra={
            "config": config.source, "instance": config.instance,
            "collectors": [c.name for c in config.enabled_collectors()]})

    def _show(self, scheduler: Scheduler, config: Config) -> None:
        """/metrics and the buffer from now on read `scheduler`, with config's labels."""
        self.self_metrics.labels = dict(config.labels)
        self.self_metrics.scheduler = self.exposition.scheduler = scheduler
        self.exposition.invalidate()
        self.exposition.invalidate_live()

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
        # /metrics p99. 0.2 ms bounds each wait; the price is more switches only while
        # two threads want the CPU at once (the lane and the buffer, a few ms a cycle).
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
        if self.remote_write is not None:  # before the buffer closes; unsent batches stay
            self.remote_write.stop()
        if self.recorder is not None:
            self.recorder.stop()
            self.recorder.close()
        if self.business is not None:
            self.business.store.close()
        log.info("totem-agent stopped")
        self.stopped.set()
