"""time: node_time_seconds, node_time_zone_offset_seconds and the kernel clocksources.

node_exporter 1.5's time collector. The clock is injected (a callable
returning an aware datetime) so tests are deterministic; the clocksource
families come through the platform door and exist only where the kernel lists
clocksources (Linux /sys/devices/system/clocksource).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors.base import CollectorContext
from totem_agent.collectors.platform import SystemCollector, SystemSource

Clock = Callable[[], datetime]


def local_now() -> datetime:
    """The current time in the system's local time zone (name and offset included)."""
    return datetime.now().astimezone()


class TimeCollector(SystemCollector):
    name = "time"
    description = "System time, time zone and clocksources (node_exporter's time collector)"

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any],
                 clock: Clock = local_now, source: SystemSource | None = None) -> None:
        super().__init__(context, settings, source)
        self._clock = clock

    def collect(self) -> Iterable[Metric]:
        now = self._clock()
        offset = now.utcoffset()
        if offset is None:
            raise ValueError(f"clock returned a time without a time zone: {now!r}")
        zone = GaugeMetricFamily("node_time_zone_offset_seconds",
                                 "System time zone offset in seconds.", labels=["time_zone"])
        # tzname() is the abbreviation on Linux ("UTC", "CET"), as Go's Zone()
        # gives; on Windows it is Windows' own zone name.
        zone.add_metric([now.tzname() or ""], offset.total_seconds())
        families: list[Metric] = [
            GaugeMetricFamily("node_time_seconds", "System time in seconds since epoch (1970).",
                              value=now.timestamp()),
            zone,
        ]
        sources = self._source.clock_sources()
        # No clocksources (Windows, a /sys without them): node_exporter then
        # exports neither family, so an empty one would be a difference.
        if sources:
            available = GaugeMetricFamily(
                "node_time_clocksource_available_info",
                "Available clocksources read from '/sys/devices/system/clocksource'.",
                labels=["clocksource", "device"])
            current = GaugeMetricFamily(
                "node_time_clocksource_current_info",
                "Current clocksource read from '/sys/devices/system/clocksource'.",
                labels=["clocksource", "device"])
            for source in sources:
                for name in source.available:
                    available.add_metric([name, source.device], 1.0)
                current.add_metric([source.current, source.device], 1.0)
            families += [available, current]
        return families
