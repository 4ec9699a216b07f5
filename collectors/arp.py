"""arp: ARP table entries per interface (node_exporter's arp), from /proc/net/arp."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors._filters import NameFilter, regex_option
from totem_agent.collectors.base import Collector, CollectorContext, parse_file

# "IP address  HW type  Flags  HW address  Mask  Device": 9 words in the header,
# 6 columns per entry.
_HEADER_WORDS = 9
_COLUMNS = 6


class ArpCollector(Collector):
    name = "arp"
    description = "ARP table entries per network interface"
    platforms = frozenset({"linux"})
    options = {
        "device_exclude": regex_option(
            "",
            "Regular expression of interfaces whose ARP entries are not counted "
            "(searched anywhere in the name; empty leaves none out)."),
    }

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self._devices = NameFilter(settings["device_exclude"])

    def collect(self) -> Iterable[Metric]:
        path = self.context.paths.proc("net", "arp")
        entries = parse_file(path, parse_arp)
        family = GaugeMetricFamily("node_arp_entries", "ARP entries by device",
                                   labels=["device"])
        for device, count in sorted(entries.items()):
            if not self._devices.excluded(device):
                family.add_metric([device], float(count))
        return [family] if family.samples else []


def parse_arp(text: str) -> Counter[str]:
    """Count /proc/net/arp entries by their Device column."""
    entries: Counter[str] = Counter()
    for number, line in enumerate(text.splitlines(), start=1):
        columns = line.split()
        if not columns or (number == 1 and len(columns) == _HEADER_WORDS):
            continue
        if len(columns) != _COLUMNS:
            # node_exporter's procfs refuses the whole table the same way.
            raise ValueError(f"line {number}: {len(columns)} columns, expected {_COLUMNS}: "
                             f"{line.strip()!r}")
        entries[columns[5]] += 1
    return entries
