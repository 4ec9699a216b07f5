"""remote_write into real receivers: Prometheus 2.42 and VictoriaMetrics on loopback.

- An outage: the agent collects every 0.5 s while its Prometheus is down, keeps
  shipping to VictoriaMetrics meanwhile (independent cursors), and when Prometheus
  starts every buffered sample arrives with the time it was taken.
- Prometheus refuses a mixed batch whole (500 "too old sample" for samples older
  than its out-of-order window): bisection gets the rest in and counts the refused
  samples by reason; VictoriaMetrics accepts the same batch.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.servers import (
    AgentProcess,
    ServerProcess,
    agent_config,
    http_get,
    start_prometheus_receiver,
    start_victoria_metrics,
)
from tests.support import free_port, wait_until
from totem_agent.buffer import Buffer, SeriesSamples
from totem_agent.outputs.remote_write import RemoteWrite
from totem_agent.outputs.remote_write_client import Client, Destination
from totem_agent.outputs.remote_write_proto import write_request_body

pytestmark = pytest.mark.integration

Sample = tuple[int, float]  # (timestamp ms, value)


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_victoria_metrics(tmp_path)
    yield server
    server.stop()


def prometheus_samples(server: ServerProcess, selector: str, window: str = "3h"
                       ) -> dict[str, list[Sample]]:
    """Raw samples (exact timestamps) per series, from an instant query of a range."""
    query = urllib.parse.urlencode({"query": f"{selector}[{window}]", "time": f"{time.time():.3f}"})
    result = http_get(f"{server.url}/api/v1/query?{query}")
    assert result.status == 200, result.text
    out = {}
    for series in result.json()["data"]["result"]:
        key = json.dumps(series["metric"], sort_keys=True)
        out[key] = [(round(float(t) * 1000), float(v)) for t, v in series["values"]]
    return out


def victoria_samples(server: ServerProcess, selector: str) -> dict[str, list[Sample]]:
    """Every stored sample per series, from /api/v1/export (after a flush)."""
    assert http_get(f"{server.url}/internal/force_flush").status == 200
    query = urllib.parse.urlencode({"match[]": selector})
    result = http_get(f"{server.url}/api/v1/export?{query}")
    assert result.status == 200, result.text
    out: dict[str, list[Sample]] = {}
    for line in result.text.splitlines():
        row = json.loads(line)
        key = json.dumps(row["metric"], sort_keys=True)
        out.setdefault(key, []).extend(zip(row["timestamps"], row["values"], strict=True))
    return {key: sorted(set(samples)) for key, samples in out.items()}


def families_value(agent: AgentProcess, family: str, **labels: str) -> float | None:
    for fam in agent.metrics().values():
        for sample in fam.samples:
            if sample.name == family and all(sample.labels.get(k) == v
                                             for k, v in labels.items()):
                return float(sample.value)
    return None


def test_outage_then_every_sample_arrives_with_its_time(tmp_path: Path,
                                                        victoria: ServerProcess) -> None:
    prom_port = free_port()  # nothing listens here until the outage ends
    state = tmp_path / "state"
    config = tmp_path / "agent.toml"
    config.write_text(agent_config(state, interval="0.5s", only=["loadavg"], extra=f"""
[[remote_write]]
name = "prom"
url = "http://127.0.0.1:{prom_port}/api/v1/write"
min_backoff = "50ms"
max_backoff = "500ms"

[[remote_write]]
name = "vm"
url = "{victoria.url}/api/v1/write"
"""))
    agent = AgentProcess(config).start()
    prometheus: ServerProcess | None = None
    try:
        # The outage: at least 12 cycles (6 s) pile up for prom; vm keeps up meanwhile.
        wait_until(lambda: (families_value(agent, "totem_agent_buffer_oldest_pending_age_seconds",
                                           destination="prom") or 0) >= 6.0,
                   timeout=30, message="6 s of samples pending for the stopped Prometheus")
        wait_until(lambda: families_value(agent, "totem_agent_buffer_pending_samples",
                                          destination="vm") == 0,
                   timeout=15, message="the vm destination to be drained during the outage")
        _, report = agent.health()
        prom_check, vm_check = report["checks"]["remote_write:prom"], \
            report["checks"]["remote_write:vm"]
        assert prom_check["status"] == "degraded", prom_check
        assert "refused the connection" in prom_check["message"]
        assert vm_check["status"] == "ok", vm_check
        assert (families_value(agent, "totem_agent_remote_write_retries_total",
                               destination="prom") or 0) >= 3
        outage_end_ms = int(time.time() * 1000)

        prometheus = start_prometheus_receiver(tmp_path, port=prom_port)
        wait_until(lambda: families_value(agent, "totem_agent_buffer_pending_samples",
                                          destination="prom") == 0,
                   timeout=30, message="the prom backlog to drain to 0")
        assert agent.stop() == 0
        with Buffer.open(state / "buffer.sqlite", readonly=True) as buffer:
            stats = buffer.stats()
        prom, vm = stats.destinations["prom"], stats.destinations["vm"]
        for dest in (prom, vm):
            assert dest.dropped_samples == {}, dest
            assert dest.sent_samples + dest.pending_samples == dest.appended_samples
        assert prom.sent_samples > 0

        # Everything prom acknowledged is stored, with the kiosk's timestamps.
        in_prom = prometheus_samples(prometheus, '{job="totem"}')
        stored = sum(len(samples) for samples in in_prom.values())
        assert prom.sent_samples <= stored <= prom.sent_samples + prom.pending_samples
        in_vm = victoria_samples(victoria, '{job="totem"}')
        # Same series, same timestamps, same values in both (vm got them live, prom
        # after the outage), up to the last point both have. VictoriaMetrics keeps
        # about 12 significant digits of a value.
        common = set(in_prom) & set(in_vm)
        assert len(common) >= 0.9 * len(in_prom)
        for key in common:
            last = min(in_prom[key][-1][0], in_vm[key][-1][0])
            from_prom = [s for s in in_prom[key] if s[0] <= last]
            from_vm = [s for s in in_vm[key] if s[0] <= last]
            assert [t for t, _ in from_prom] == [t for t, _ in from_vm], key
            assert [v for _, v in from_prom] == pytest.approx([v for _, v in from_vm],
                                                              rel=1e-9, nan_ok=True), key
        # Stamped when taken, not when sent: the collector's own success time (a value)
        # matches the sample's timestamp, for samples taken during the outage too.
        (stamps,) = [v for k, v in in_prom.items()
                     if '"totem_agent_collector_last_success_timestamp_seconds"' in k
                     and '"loadavg"' in k]
        during_outage = [(t, v) for t, v in stamps if t < outage_end_ms]
        assert len(during_outage) >= 12
        assert all(abs(t / 1000 - v) < 2.0 for t, v in stamps), stamps[:5]
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(stamps)]
        assert max(gaps) < 2000, f"a cycle is missing: gaps {gaps}"
    finally:
        agent.stop()
        if prometheus is not None:
            prometheus.stop()


def test_mixed_batch_prometheus_bisects_victoriametrics_accepts(
        tmp_path: Path, victoria: ServerProcess) -> None:
    prometheus = start_prometheus_receiver(tmp_path, out_of_order_window="30m")
    try:
        now_ms = int(time.time() * 1000)
        # Give Prometheus a newest sample of now: its out-of-order window counts from it.
        prime = Client(Destination(name="prime", url=f"{prometheus.url}/api/v1/write"))
        answer = prime.post(write_request_body([SeriesSamples("totem_rw_prime", (), [now_ms],
                                                              [1.0])]))
        assert answer.status == 204, answer.describe()

        series = [("totem_rw_test", {"job": "rwtest", "part": str(i)}) for i in range(3)]
        old = [now_ms - 7_200_000 + i * 60_000 for i in range(4)]   # 2 h old: too old
        new = [now_ms - 600_000 + i * 15_000 for i in range(6)]     # 10 min old: in window
        with Buffer.open(tmp_path / "buffer.sqlite") as buffer:
            for c, ts in enumerate(old + new):
                buffer.append(ts, [(name, labels, c * 10 + i)
                                   for i, (name, labels) in enumerate(series)])
            group = RemoteWrite(buffer, [
                Destination(name="prom", url=f"{prometheus.url}/api/v1/write",
                            min_backoff=0.01, max_backoff=0.1),
                Destination(name="vm", url=f"{victoria.url}/api/v1/write")])
            for shipper in group.shippers:
                while shipper.ship_once():
                    pass
            stats = buffer.stats().destinations
            requests = {s.labels["code"]: s.value for f in group.metrics() for s in f.samples
                        if s.name == "totem_agent_remote_write_requests_total"
                        and s.labels["destination"] == "prom"}
        # Prometheus refused the whole batch (500), then took everything in the window.
        assert requests.get("500", 0) >= 1 and requests.get("204", 0) >= 1, requests
        assert stats["prom"].dropped_samples == {"too_old": len(old) * 3}
        assert stats["prom"].sent_samples == len(new) * 3
        in_prom = prometheus_samples(prometheus, '{__name__="totem_rw_test"}')
        assert len(in_prom) == 3
        for samples in in_prom.values():
            assert [t for t, _ in samples] == new
        # VictoriaMetrics took the same batch whole.
        assert stats["vm"].dropped_samples == {} and stats["vm"].sent_samples == 30
        in_vm = victoria_samples(victoria, '{__name__="totem_rw_test"}')
        assert len(in_vm) == 3
        for key, samples in in_vm.items():
            part = int(json.loads(key)["part"])
            assert samples == [(t, float(c * 10 + part)) for c, t in enumerate(old + new)]
    finally:
        prometheus.stop()


