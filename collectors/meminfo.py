"""meminfo: node_memory_*, one gauge per /proc/meminfo field (node_exporter's meminfo).

Names are node_exporter 1.5's: "Active(anon)" becomes node_memory_Active_anon_bytes,
fields the kernel gives in kB get `_bytes`, unitless counts (HugePages_Total)
keep their bare name. On Windows only the fields psutil measures honestly.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors.platform import SystemCollector


class MeminfoCollector(SystemCollector):
    name = "meminfo"
    description = "Memory statistics from /proc/meminfo (node_exporter's meminfo collector)"

    def collect(self) -> Iterable[Metric]:
        # The field set is whatever this kernel prints (it grows with kernel
        # versions), so families are built per read rather than declared.
        return [
            GaugeMetricFamily(f"node_memory_{field}", f"Memory information field {field}.",
                              value=value)
            for field, value in sorted(self._source.memory_info().items())
        ]
