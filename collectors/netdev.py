"""netdev: traffic counters per network interface (node_exporter's netdev).

node_network_receive_{bytes,packets,errs,drop,fifo,frame,compressed,multicast,
nohandler}_total and node_network_transmit_{bytes,packets,errs,drop,fifo,colls,
carrier,compressed}_total, labelled `device`. Linux: /proc/net/dev (plus
rx_nohandler from sysfs, which node_exporter 1.5 exports through netlink);
Windows: psutil, for the columns Windows counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, Metric

from totem_agent.collectors._filters import NameFilter, regex_option
from totem_agent.collectors.base import CollectorContext
from totem_agent.collectors.platform import SystemCollector, SystemSource
from totem_agent.collectors.platform.types import NetDevStats

# The usual keys in /proc/net/dev's column order, so families come out in a
# stable order; a key a kernel adds is exported too, after these.
KNOWN_KEYS = (
    "receive_bytes", "receive_packets", "receive_errs", "receive_drop", "receive_fifo",
    "receive_frame", "receive_compressed", "receive_multicast", "receive_nohandler",
    "transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop", "transmit_fifo",
    "transmit_colls", "transmit_carrier", "transmit_compressed",
)


class NetdevCollector(SystemCollector):
    name = "netdev"
    description = "bytes, packets, errors and drops received and sent per network interface"
    options = {
        "device_exclude": regex_option(
            "",
            "Regular expression of interfaces to leave out (searched anywhere in the "
            "name), for example \"^lo$\". Empty (node_exporter 1.5's default) leaves "
            "none out."),
    }

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any],
                 source: SystemSource | None = None) -> None:
        super().__init__(context, settings, source)
        self._devices = NameFilter(settings["device_exclude"])

    def collect(self) -> Iterable[Metric]:
        return families(self._source.net_dev_stats(self._devices.excluded))


def families(interfaces: Iterable[NetDevStats]) -> list[Metric]:
    """One counter family per statistic, node_network_<key>_total{device}."""
    interfaces = list(interfaces)
    keys = list(KNOWN_KEYS)
    keys += sorted({k for i in interfaces for k in i.counters} - set(KNOWN_KEYS))
    out: list[Metric] = []
    for key in keys:
        family = CounterMetricFamily(f"node_network_{key}",
                                     f"Network device statistic {key}.", labels=["device"])
        for interface in interfaces:
            if key in interface.counters:
                family.add_metric([interface.device], interface.counters[key])
        if family.samples:
            out.append(family)
    return out
