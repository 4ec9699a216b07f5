"""loadavg: node_load1, node_load5, node_load15 (node_exporter's loadavg)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors.platform import SystemCollector


class LoadavgCollector(SystemCollector):
    name = "loadavg"
    description = "1, 5 and 15 minute load average"

    def collect(self) -> Iterable[Metric]:
        load = self._source.load_average()
        return [
            GaugeMetricFamily("node_load1", "1m load average.", value=load.load1),
            GaugeMetricFamily("node_load5", "5m load average.", value=load.load5),
            GaugeMetricFamily("node_load15", "15m load average.", value=load.load15),
        ]
