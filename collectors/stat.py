"""stat: boot time, context switches, forks, interrupts, running/blocked processes.

node_exporter 1.5's stat collector (without its optional softirq breakdown).
Linux reads /proc/stat; Windows has boot time, context switches and
interrupts from psutil, and no fork counter or run-queue split.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from totem_agent.collectors.platform import SystemCollector


class StatCollector(SystemCollector):
    name = "stat"
    description = "Kernel counters from /proc/stat (node_exporter's stat collector)"

    def collect(self) -> Iterable[Metric]:
        stats = self._source.kernel_stats()
        families: list[Metric] = [
            GaugeMetricFamily("node_boot_time_seconds", "Node boot time, in unixtime.",
                              value=stats.boot_time),
        ]
        # CounterMetricFamily adds the _total suffix to the sample name.
        counters = (
            ("node_context_switches", "Total number of context switches.",
             stats.context_switches),
            ("node_forks", "Total number of forks.", stats.forks),
            ("node_intr", "Total number of interrupts serviced.", stats.interrupts),
        )
        for name, help_text, value in counters:
            if value is not None:
                families.append(CounterMetricFamily(name, help_text, value=value))
        gauges = (
            ("node_procs_running", "Number of processes in runnable state.",
             stats.procs_running),
            ("node_procs_blocked", "Number of processes blocked waiting for I/O to complete.",
             stats.procs_blocked),
        )
        for name, help_text, value in gauges:
            if value is not None:
                families.append(GaugeMetricFamily(name, help_text, value=value))
        return families
