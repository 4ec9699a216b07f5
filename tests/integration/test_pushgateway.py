"""The agent pushing to a real Pushgateway (Debian's prometheus-pushgateway) on loopback."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.servers import (
    AgentProcess,
    ServerProcess,
    agent_config,
    http_get,
    parse_metrics,
    start_prometheus,
    start_pushgateway,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration

GROUP = {"job": "totem", "instance": "kiosk-it", "store": "sp-0042"}


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[ServerProcess]:
    workdir = tmp_path / "pushgateway"
    workdir.mkdir()
    server = start_pushgateway(workdir)
    try:
        yield server
    finally:
        server.stop()


def config(tmp_path: Path, url: str) -> str:
    return agent_config(tmp_path / "state", only=["loadavg"], interval="1s",
                        agent={"instance": "kiosk-it"},
                        extra='[labels]\nstore = "sp-0042"\nregion = "sudeste"\n\n'
                              f'[pushgateway]\nurl = "{url}"\ninterval = "1s"\n'
                              'timeout = "2s"\ngrouping = ["store"]\n')


def gateway_value(gateway: ServerProcess, family: str, sample: str,
                  **labels: str) -> float | None:
    families = parse_metrics(http_get(gateway.url + "/metrics").text)
    if family not in families:
        return None
    for s in families[family].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def test_push_reaches_the_gateway_with_its_group(
        tmp_path: Path, pushgateway: ServerProcess,
        start_agent: Callable[..., AgentProcess]) -> None:
    agent = start_agent(config(tmp_path, pushgateway.url))
    assert agent.url is not None
    request = urllib.request.Request(
        agent.url + "/api/v1/events", method="POST",
        data=json.dumps({"type": "ticket_created", "service": "caixa"}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200

    def pushed() -> float | None:
        return gateway_value(pushgateway, "totem_ticket_created", "totem_ticket_created_total",
                             service="caixa", region="sudeste", **GROUP)

    assert wait_until(pushed, timeout=20, message="the ticket counter on the gateway") == 1
    # System metrics go too, with the same group.
    assert gateway_value(pushgateway, "node_load1", "node_load1", **GROUP) is not None
    first = gateway_value(pushgateway, "push_time_seconds", "push_time_seconds", **GROUP)
    assert first is not None
    wait_until(lambda: (gateway_value(pushgateway, "push_time_seconds", "push_time_seconds",
                                      **GROUP) or 0) > first,
               timeout=20, message="push_time_seconds to advance")
    assert gateway_value(pushgateway, "push_failure_time_seconds",
                         "push_failure_time_seconds", **GROUP) == 0
    _, report = agent.health()
    assert report["checks"]["output:pushgateway"]["status"] == "ok"


def test_gateway_down_degrades_health_and_keeps_serving(
        tmp_path: Path, pushgateway: ServerProcess,
        start_agent: Callable[..., AgentProcess]) -> None:
    agent = start_agent(config(tmp_path, pushgateway.url))
    wait_until(lambda: agent.health()[1]["checks"]["output:pushgateway"]["status"] == "ok",
               timeout=20, message="a first successful push")
    pushgateway.stop()
    _, report = wait_until(
        lambda: (r := agent.health())[1]["checks"]["output:pushgateway"]["status"]
        == "degraded" and r, timeout=20, message="/health to show the push degraded")
    assert report["status"] == "degraded"
    assert report["checks"]["output:pushgateway"]["last_error"]
    families = agent.metrics()  # still serving
    failures = {s.labels["result"]: s.value
                for s in families["totem_agent_push_requests"].samples}
    assert failures["failure"] >= 1 and failures["success"] >= 1
    assert "node_load1" in families


def test_prometheus_sees_the_kiosk_directly_and_through_the_gateway(
        tmp_path: Path, pushgateway: ServerProcess,
        start_agent: Callable[..., AgentProcess]) -> None:
    """Events end to end: posted to the agent, scraped by a real Prometheus from the
    agent and (honor_labels) from the Pushgateway, histogram buckets included."""
    from tests.integration.test_prometheus_scrape import poll_query

    agent = start_agent(config(tmp_path, pushgateway.url))
    assert agent.url is not None
    batch = [{"type": "ticket_completed", "service": "caixa", "wait_seconds": w}
             for w in (10, 45, 45, 900)]
    request = urllib.request.Request(agent.url + "/api/v1/events", method="POST",
                                     data=json.dumps(batch).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    prometheus = start_prometheus(
        workdir, {"agent": agent.url.removeprefix("http://"),
                  "pushgateway": pushgateway.url.removeprefix("http://")},
        honor_labels=["pushgateway"])
    try:
        direct = poll_query(prometheus, 'totem_ticket_completed_total{job="agent"}')
        assert [float(r["value"][1]) for r in direct] == [4.0]
        assert direct[0]["metric"]["store"] == "sp-0042"
        pushed = poll_query(prometheus, 'totem_ticket_completed_total{job="totem",'
                                        'instance="kiosk-it",store="sp-0042"}')
        assert [float(r["value"][1]) for r in pushed] == [4.0]
        buckets = poll_query(prometheus, 'totem_ticket_wait_time_seconds_bucket{job="totem"}')
        by_le = {float(r["metric"]["le"]): float(r["value"][1]) for r in buckets}
        assert by_le == {30.0: 1, 60.0: 3, 120.0: 3, 300.0: 3, 600.0: 3, float("inf"): 4}
    finally:
        prometheus.stop()
