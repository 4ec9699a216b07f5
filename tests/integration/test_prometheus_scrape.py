"""A real Prometheus (Debian's 2.42) scrapes the agent every second; the answers come
back through Prometheus' HTTP API, as a dashboard or an alert rule would read them."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.servers import AgentProcess, ServerProcess, http_get, start_prometheus
from tests.support import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory,
               system_agent: AgentProcess) -> Iterator[ServerProcess]:
    assert system_agent.url is not None
    target = system_agent.url.removeprefix("http://")
    server = start_prometheus(tmp_path_factory.mktemp("prometheus"), {"totem": target})
    try:
        yield server
    finally:
        server.stop()


def query(prometheus: ServerProcess, promql: str) -> list[dict[str, Any]]:
    result = http_get(f"{prometheus.url}/api/v1/query?"
                      + urllib.parse.urlencode({"query": promql}))
    assert result.status == 200, f"{promql}: HTTP {result.status} {result.text}"
    payload = result.json()
    assert payload["status"] == "success", payload
    return list(payload["data"]["result"])


def poll_query(prometheus: ServerProcess, promql: str, timeout: float = 20.0
               ) -> list[dict[str, Any]]:
    try:
        return wait_until(lambda: query(prometheus, promql), timeout=timeout,
                          message=f"Prometheus to answer {promql}")
    except AssertionError as err:
        targets = http_get(f"{prometheus.url}/api/v1/targets").text
        raise AssertionError(f"{err}\ntargets: {targets}\n{prometheus.describe()}") from None


def test_prometheus_sees_the_agent_up(prometheus: ServerProcess) -> None:
    result = poll_query(prometheus, 'up{job="totem"} == 1')
    assert len(result) == 1, result
    assert result[0]["value"][1] == "1"


def test_scrape_has_no_error(prometheus: ServerProcess) -> None:
    poll_query(prometheus, 'up{job="totem"} == 1')
    targets = http_get(f"{prometheus.url}/api/v1/targets").json()["data"]["activeTargets"]
    ours = [t for t in targets if t["labels"].get("job") == "totem"]
    assert len(ours) == 1, json.dumps(targets, indent=2)
    assert ours[0]["health"] == "up", ours[0]
    assert ours[0]["lastError"] == "", ours[0]


def test_node_metrics_arrive_through_prometheus(prometheus: ServerProcess,
                                                system_agent: AgentProcess) -> None:
    load = poll_query(prometheus, 'node_load1{job="totem"}')
    assert len(load) == 1 and float(load[0]["value"][1]) >= 0, load
    memory = poll_query(prometheus, 'node_memory_MemTotal_bytes{job="totem"}')
    assert len(memory) == 1, memory
    exposed = system_agent.metrics()["node_memory_MemTotal_bytes"].samples[0].value
    assert float(memory[0]["value"][1]) == exposed


def test_agent_self_metrics_arrive(prometheus: ServerProcess) -> None:
    """Collector health is queryable centrally: every collector reported."""
    result = poll_query(prometheus, 'totem_agent_collector_success{job="totem"}')
    assert {r["metric"]["collector"] for r in result}, result
