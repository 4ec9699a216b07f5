"""Deadlines, in process: a collector that hangs and one that raises, beside a fast one.

The real scheduler, exposition and HTTP server (`totem_agent.runtime.Agent`),
fed three collector classes defined here. The fast one must keep running on
its interval while the hung one is stuck; both broken ones are reported as
`totem_agent_collector_success 0` with their failure counted by reason and
shown in /health; /metrics answers while a collector is still stuck.
Timing goals (how fast /metrics answers) live in the benchmarks, not here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from tests.integration.servers import http_get, parse_metrics
from tests.support import wait_until
from totem_agent.collectors.base import Collector
from totem_agent.config import CollectorSettings, Config
from totem_agent.runtime import Agent

pytestmark = pytest.mark.integration

FAST_INTERVAL = 0.1
HUNG_TIMEOUT = 0.3


class Probe:
    """What the test collectors share with the test: run counts and the hung one's gate."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fast_runs = 0
        self.hung_entered = threading.Event()
        self.release = threading.Event()

    def count_fast(self) -> int:
        with self.lock:
            self.fast_runs += 1
            return self.fast_runs

    @property
    def runs(self) -> int:
        with self.lock:
            return self.fast_runs


class FastCollector(Collector):
    name = "fast"
    description = "returns at once"

    def collect(self) -> Iterable[Metric]:
        runs = self.settings["probe"].count_fast()
        return [GaugeMetricFamily("totem_test_fast_runs", "Runs of the fast test collector.",
                                  value=runs)]


class HungCollector(Collector):
    name = "hung"
    description = "blocks until the test releases it, like a serial port that never answers"

    def collect(self) -> Iterable[Metric]:
        probe = self.settings["probe"]
        probe.hung_entered.set()
        probe.release.wait(60)  # bounded, so a broken test cannot leave it forever
        return [GaugeMetricFamily("totem_test_hung", "Never seen: past its deadline.", value=1)]


class RaisingCollector(Collector):
    name = "boom"
    description = "raises every time"

    def collect(self) -> Iterable[Metric]:
        raise RuntimeError("sensor exploded")


@dataclass
class Running:
    agent: Agent
    url: str
    probe: Probe

    def metrics(self) -> dict[str, Metric]:
        result = http_get(self.url + "/metrics")
        assert result.status == 200
        return parse_metrics(result.text)

    def sample(self, name: str, **labels: str) -> float | None:
        """The value of the sample `name` with these labels (sample names: a counter's
        ends in _total), None when it is not exposed."""
        for family in self.metrics().values():
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
        return None

    def health(self) -> tuple[int, dict[str, Any]]:
        result = http_get(self.url + "/health")
        return result.status, dict(result.json())


@pytest.fixture
def running() -> Iterator[Running]:
    probe = Probe()

    def settings(cls: type[Collector], interval: float, timeout: float) -> CollectorSettings:
        # The probe travels as the collector's settings, as its config keys would.
        return CollectorSettings(cls.name, cls, True, interval, timeout, {"probe": probe})

    collectors = [settings(FastCollector, FAST_INTERVAL, FAST_INTERVAL),
                  settings(HungCollector, 0.2, HUNG_TIMEOUT),
                  settings(RaisingCollector, 0.2, 0.2)]
    config = Config(
        source="<test>",
        agent={"listen": "127.0.0.1:0", "instance": "test-kiosk", "procfs": "/proc",
               "sysfs": "/sys", "rootfs": "/"},
        labels={},
        collectors={c.name: c for c in collectors},
        log={})
    agent = Agent(config)
    agent.start()
    assert agent.server is not None
    try:
        yield Running(agent, agent.server.url, probe)
    finally:
        probe.release.set()   # let the stuck thread finish, then stop
        agent.stop()


def test_hung_collector_times_out_and_later_ticks_are_skipped(running: Running) -> None:
    wait_until(lambda: running.sample("totem_agent_collector_success", collector="hung") == 0,
               message="the hung collector reported as failed")
    wait_until(lambda: (running.sample("totem_agent_collector_failures_total",
                                       collector="hung", reason="timeout") or 0) >= 1,
               message="a timeout counted for the hung collector")
    wait_until(lambda: (running.sample("totem_agent_collector_failures_total",
                                       collector="hung", reason="skipped") or 0) >= 1,
               message="later ticks counted as skipped while it is stuck")
    assert not running.probe.release.is_set()
    families = running.metrics()
    assert "totem_test_hung" not in families, "a run past its deadline must not be served"


def test_fast_collector_keeps_its_interval_while_another_is_stuck(running: Running) -> None:
    wait_until(running.probe.hung_entered.is_set, message="the hung collector to start")
    wait_until(lambda: running.sample("totem_agent_collector_success", collector="hung") == 0,
               message="the hung collector to pass its deadline")
    before = running.probe.runs
    # Five more runs at a 0.1 s interval; the deadline is generous on purpose (a loaded
    # CI machine), the point is that they happen while the other collector is stuck.
    wait_until(lambda: running.probe.runs >= before + 5, timeout=10,
               message="five more runs of the fast collector")
    assert not running.probe.release.is_set() and running.probe.hung_entered.is_set()
    assert running.sample("totem_agent_collector_success", collector="fast") == 1
    assert (running.sample("totem_test_fast_runs") or 0) >= before


def test_raising_collector_reported_as_error(running: Running) -> None:
    wait_until(lambda: running.sample("totem_agent_collector_success", collector="boom") == 0,
               message="the raising collector reported as failed")
    wait_until(lambda: (running.sample("totem_agent_collector_failures_total",
                                       collector="boom", reason="error") or 0) >= 2,
               message="each failed run counted as error")
    assert running.sample("totem_agent_collector_failures_total",
                          collector="boom", reason="timeout") == 0


def test_health_names_the_broken_collectors(running: Running) -> None:
    def both_failing() -> dict[str, Any] | None:
        _, report = running.health()
        checks = report["checks"]
        if checks["collector:hung"]["status"] == checks["collector:boom"]["status"] == "failing":
            return report
        return None

    report = wait_until(both_failing, message="/health to show both collectors failing")
    assert report is not None
    checks = report["checks"]
    assert "sensor exploded" in checks["collector:boom"]["message"]
    assert "sensor exploded" in checks["collector:boom"]["last_error"]
    hung = checks["collector:hung"]["message"]
    assert "deadline" in hung or "still running" in hung, hung
    assert checks["collector:fast"]["status"] == "ok"
    # One collector still works: the agent is degraded, not failing, and says so with 200.
    status, report = running.health()
    assert (status, report["status"]) == (200, "degraded")


def test_metrics_answers_while_a_collector_is_stuck(running: Running) -> None:
    wait_until(running.probe.hung_entered.is_set, message="the hung collector to start")
    for _ in range(3):
        result = http_get(running.url + "/metrics", timeout=5)
        assert result.status == 200
        assert "totem_test_fast_runs" in result.text
        assert not running.probe.release.is_set(), "the hung collector must still be stuck"
