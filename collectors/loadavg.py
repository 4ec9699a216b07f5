"""loadavg: node_load1, node_load5, node_load15 (node_exporter's loadavg)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from totem_agent.collectors.base import Collector, CollectorContext
from totem_agent.collectors.platform import system_source


class LoadavgCollector(Collector):
    name = "loadavg"
    description = "1, 5 and 15 minute load average"
    platforms = frozenset({"linux", "win32"})

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self._source = system_source(context.paths)

    def collect(self) -> Iterable[Metric]:
        load = self._source.load_average()
        return [
            GaugeMetricFamily("node_load1", "1m load average.", value=load.load1),
            GaugeMetricFamily("node_load5", "5m load average.", value=load.load5),
            GaugeMetricFamily("node_load15", "15m load average.", value=load.load15),
        ]
