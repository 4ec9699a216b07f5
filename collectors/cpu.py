"""cpu: node_cpu_seconds_total{cpu,mode} and node_cpu_guest_seconds_total{cpu,mode}.

node_exporter 1.5's cpu collector (its /proc/stat part; node_cpu_info and the
thermal-throttle counters are not exported). On Windows the same names come
from psutil, with only the modes Windows measures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, Metric

from totem_agent.collectors.base import CollectorContext
from totem_agent.collectors.platform import SystemCollector, SystemSource
from totem_agent.collectors.platform.types import CpuTimes
from totem_agent.options import Option

# node_cpu_seconds_total's modes, in node_exporter's order.
MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
# node_cpu_guest_seconds_total's modes and the CpuTimes field behind each.
GUEST_MODES = (("user", "guest"), ("nice", "guest_nice"))
_COUNTERS = (*MODES, "guest", "guest_nice")

# An idle counter this many seconds lower than last time means the CPU was
# unplugged and plugged back in (its counters restarted), not a kernel glitch.
JUMP_BACK_SECONDS = 3.0


def hold_monotonic(previous: CpuTimes | None, current: CpuTimes) -> CpuTimes:
    """Keep each counter from going backwards, as node_exporter 1.5 does.

    Some kernels let iowait (and, after hotplug, others) step back a little;
    exporting that would read as a counter reset and make rate() spike. A
    large step back in idle is a hotplug, so the CPU starts afresh instead.
    """
    if previous is None or previous.idle - current.idle >= JUMP_BACK_SECONDS:
        return current
    held: dict[str, Any] = {}
    for field in _COUNTERS:
        old, new = getattr(previous, field), getattr(current, field)
        held[field] = old if old is not None and new is not None and new < old else new
    return dataclasses.replace(current, **held)


class CpuCollector(SystemCollector):
    name = "cpu"
    description = "Seconds each CPU spent in each mode (node_exporter's cpu collector)"
    options = {
        "guest": Option("bool", True, "Export node_cpu_guest_seconds_total "
                                      "(node_exporter's --collector.cpu.guest)."),
    }

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any],
                 source: SystemSource | None = None) -> None:
        super().__init__(context, settings, source)
        self._guest = bool(settings.get("guest", True))
        self._last: dict[str, CpuTimes] = {}

    def collect(self) -> Iterable[Metric]:
        current = self._source.cpu_times()
        # A different set of CPUs (hotplug) invalidates what was held back.
        if {t.cpu for t in current} != set(self._last):
            self._last = {}
        self._last = {t.cpu: hold_monotonic(self._last.get(t.cpu), t) for t in current}

        seconds = CounterMetricFamily(
            "node_cpu_seconds", "Seconds the CPUs spent in each mode.", labels=["cpu", "mode"])
        guest = CounterMetricFamily(
            "node_cpu_guest_seconds",
            "Seconds the CPUs spent in guests (VMs) for each mode; also counted in user and nice.",
            labels=["cpu", "mode"])
        for times in self._last.values():
            for mode in MODES:
                value = getattr(times, mode)
                if value is not None:
                    seconds.add_metric([times.cpu, mode], value)
            for mode, field in GUEST_MODES:
                value = getattr(times, field)
                if value is not None:
                    guest.add_metric([times.cpu, mode], value)
        families: list[Metric] = [seconds]
        # Windows measures no guest time: leave the family out rather than show it empty.
        if self._guest and guest.samples:
            families.append(guest)
        return families
