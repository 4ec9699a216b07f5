"""uname: node_uname_info{domainname,machine,nodename,release,sysname,version} = 1.

node_exporter 1.5's uname collector. Linux: uname(2) (os.uname(), plus the NIS
domain name from /proc/sys/kernel/domainname); Windows: platform.uname().
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors.platform import SystemCollector

LABELS = ("domainname", "machine", "nodename", "release", "sysname", "version")


class UnameCollector(SystemCollector):
    name = "uname"
    description = "Kernel name, release, version and host name (node_exporter's uname collector)"

    def collect(self) -> Iterable[Metric]:
        info = self._source.uname()
        # A gauge of 1, not an info family: node_exporter types it gauge, and the
        # parity contract is the same TYPE in both exposition formats.
        family = GaugeMetricFamily(
            "node_uname_info", "Labeled system information as provided by the uname system call.",
            labels=list(LABELS))
        family.add_metric([getattr(info, label) for label in LABELS], 1.0)
        return [family]
