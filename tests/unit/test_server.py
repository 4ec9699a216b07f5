"""The HTTP server in-process on a free loopback port, with real sockets."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator

import pytest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.support import free_port, wait_until
from totem_agent.cli import ExitStatus
from totem_agent.collectors.base import Collector, CollectorContext
from totem_agent.config import CollectorSettings
from totem_agent.exposition import Exposition, SelfMetrics
from totem_agent.health import HealthModel
from totem_agent.scheduler import Scheduler
from totem_agent.server import AgentHTTPServer, build_routes
from totem_agent.status import format_report, show_status


class Ticks(Collector):
    name = "ticks"
    description = "a counter"
    broken = False

    def collect(self) -> Iterable[Metric]:
        if Ticks.broken:
            raise OSError("sensor unplugged")
        return [CounterMetricFamily("test_ticks", "Ticks.", value=42.0)]


class Server:
    def __init__(self, broken: bool = False) -> None:
        Ticks.broken = broken
        self.scheduler = Scheduler([CollectorSettings("ticks", Ticks, True, 60.0, 5.0, {})],
                                   CollectorContext(), labels={"store": "s9"})
        self.exposition = Exposition(self.scheduler, SelfMetrics(self.scheduler, {"store": "s9"}))
        self.scheduler.on_change = self.exposition.invalidate
        self.health = HealthModel("kiosk-9", {"store": "s9"})
        self.health.add_source(self.scheduler)
        self.scheduler.run_once()
        self.httpd = AgentHTTPServer(("127.0.0.1", 0), build_routes(self.exposition, self.health))
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = self.httpd.url

    def get(self, path: str, headers: dict[str, str] | None = None,
            method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url + path, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.scheduler.stop()
        Ticks.broken = False


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.close()


def test_metrics_text_format(server: Server) -> None:
    status, headers, body = server.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    (sample,) = families["test_ticks"].samples
    assert sample.value == 42.0 and sample.labels == {"store": "s9"}
    success = families["totem_agent_collector_success"].samples[0]
    assert success.labels == {"collector": "ticks", "store": "s9"} and success.value == 1.0
    assert "process_cpu_seconds" in families


def test_metrics_openmetrics_and_gzip(server: Server) -> None:
    status, headers, body = server.get("/metrics", {
        "Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    assert text.endswith("# EOF\n") and 'test_ticks_total{store="s9"} 42.0' in text


def test_scrapes_serve_the_cached_render_until_something_changes(server: Server) -> None:
    first, _, _ = server.exposition.render(None, None)
    again, _, _ = server.exposition.render(None, None)
    assert again is first  # no re-render between collector runs
    server.exposition.invalidate()
    third, _, _ = server.exposition.render(None, None)
    assert third is not first


def test_health_json(server: Server) -> None:
    status, headers, body = server.get("/health")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    report = json.loads(body)
    assert report["status"] == "ok" and report["instance"] == "kiosk-9"
    assert report["labels"] == {"store": "s9"}
    assert report["checks"]["collector:ticks"]["status"] == "ok"
    assert report["uptime_seconds"] >= 0


def test_failing_health_is_503() -> None:
    running = Server(broken=True)
    try:
        status, _, body = running.get("/health")
        report = json.loads(body)
        assert status == 503 and report["status"] == "failing"
        assert report["checks"]["collector:ticks"]["last_error"] == "sensor unplugged"
    finally:
        running.close()


def test_unknown_path_and_method(server: Server) -> None:
    status, _, body = server.get("/nope")
    assert status == 404 and "no such page" in json.loads(body)["error"]
    status, headers, _ = server.get("/metrics", method="POST")
    assert status == 405 and headers["Allow"] == "GET"
    status, headers, body = server.get("/metrics", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


def test_status_command_against_the_server(server: Server) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert show_status(server.url, as_json=False, timeout=5, out=out, err=err) == ExitStatus.OK
    assert "totem-agent on kiosk-9 (store=s9): OK" in out.getvalue()
    out = io.StringIO()
    assert show_status(server.url, as_json=True, timeout=5, out=out, err=err) == ExitStatus.OK
    assert json.loads(out.getvalue())["status"] == "ok"


def test_status_unreachable() -> None:
    out, err = io.StringIO(), io.StringIO()
    url = f"http://127.0.0.1:{free_port()}"
    assert show_status(url, as_json=False, timeout=2, out=out, err=err) == ExitStatus.UNREACHABLE
    assert f"not reachable at {url}" in err.getvalue()


def test_status_report_lists_problems_first() -> None:
    report = {
        "status": "degraded", "instance": "k1", "labels": {}, "version": "0.1.0",
        "uptime_seconds": 3725,
        "checks": {
            "collector:cpu": {"status": "ok"},
            "collector:hwmon": {"status": "failing", "since": "2026-11-23T10:00:00Z",
                                "message": "cannot read temp1_input"},
        },
    }
    lines = format_report(report).splitlines()
    assert lines[0] == "totem-agent on k1: DEGRADED"
    assert lines[1] == "version 0.1.0, up 1h 2m"
    assert lines[2].split() == ["FAILING", "collector:hwmon", "since", "2026-11-23T10:00:00Z:",
                                "cannot", "read", "temp1_input"]
    assert lines[3].split() == ["OK", "collector:cpu"]


def test_head_sends_no_body_on_a_kept_alive_connection(server: Server) -> None:
    # A body after HEAD would be read as the next response's status line.
    host, port = server.httpd.server_address[:2]
    connection = http.client.HTTPConnection(str(host), int(port), timeout=5)
    try:
        connection.request("HEAD", "/health")
        head = connection.getresponse()
        assert head.status == 200 and head.read() == b""
        connection.request("GET", "/health")
        again = connection.getresponse()
        assert again.status == 200 and json.loads(again.read())["status"] == "ok"
    finally:
        connection.close()


def test_finished_cycle_is_rendered_before_the_next_scrape(server: Server) -> None:
    server.scheduler.on_idle = server.exposition.warm
    # What the scraper asks for (called directly: an HTTP request also invalidates
    # the cache once it has been answered, which would race with this test).
    server.exposition.render(None, "gzip")
    server.scheduler.run_once()  # a new cycle: the lane goes idle, warm() renders it
    bodies = server.exposition._bodies
    key = ("text/plain; version=0.0.4; charset=utf-8", True)
    # warm() runs on the lane just after the run's result is handed over: poll.
    wait_until(lambda: bodies[key][0][0] == server.exposition._generation,
               message="the new cycle rendered without a scrape")


def test_an_event_renews_only_the_live_tail(server: Server) -> None:
    first, _, _ = server.exposition.render(None, None)
    server.exposition.invalidate_live()
    second, _, _ = server.exposition.render(None, None)
    assert second == first
    parts = server.exposition._parts
    collected_before = parts[("collected", "text/plain; version=0.0.4; charset=utf-8")]
    server.exposition.invalidate_live()
    server.exposition.render(None, None)
    assert parts[("collected", "text/plain; version=0.0.4; charset=utf-8")] is collected_before


def test_connections_over_the_limit_are_closed_and_counted(server: Server) -> None:
    import socket

    server.httpd.max_connections = 3
    host, port = server.httpd.server_address[:2]
    # Three clients that started a request and never finish it: each holds a thread.
    slow = [socket.create_connection((host, port), timeout=5) for _ in range(3)]
    try:
        for sock in slow:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x")
        wait_until(lambda: server.httpd._open == 3, message="three connections held")
        extra = socket.create_connection((host, port), timeout=5)
        assert extra.recv(100) == b"", "the fourth connection is closed at once"
        extra.close()
        assert server.httpd.http_metrics.refused_connections == 1
        slow.pop().close()  # one slow client gives up: its slot is free again
        wait_until(lambda: server.httpd._open == 2, message="the slot released")
        assert server.get("/health")[0] == 200
        refused = next(f for f in server.httpd.http_metrics.families()
                       if f.name == "totem_agent_http_connections_refused")
        assert refused.samples[0].value == 1.0
    finally:
        for sock in slow:
            sock.close()


def test_a_cycle_collects_the_agents_own_families_once() -> None:
    """warm() and the buffer's snapshot both read a scraped cycle: SelfMetrics.collect
    (which reads /proc for process_*) runs once per cycle, again after the next one."""
    calls = []

    class CountingSelfMetrics(SelfMetrics):
        def collect(self) -> list[Metric]:
            calls.append(1)
            return super().collect()

    scheduler = Scheduler([CollectorSettings("ticks", Ticks, True, 60.0, 5.0, {})],
                          CollectorContext(), labels={})
    exposition = Exposition(scheduler, CountingSelfMetrics(scheduler, {}))
    scheduler.on_change = exposition.invalidate
    try:
        scheduler.run_once()
        first = exposition.families()
        exposition.render(None, None)
        assert exposition.families() == first and len(calls) == 1
        scheduler.run_once()
        assert "test_ticks" in [f.name for f in exposition.families()]
        assert len(calls) == 2
    finally:
        scheduler.stop()
