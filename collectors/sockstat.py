"""sockstat: socket counts and memory from /proc/net/sockstat and sockstat6.

As node_exporter's sockstat collector: `node_sockstat_sockets_used` from the
"sockets: used N" line, `node_sockstat_<PROTO>_<key>` for each known key of the
other lines (inuse, orphan, tw, alloc, mem, memory), and `<PROTO>_mem_bytes`
(mem is in pages) where a protocol has mem.
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors.base import Collector, CollectorContext, NoDataError

log = logging.getLogger(__name__)

# The keys node_exporter exports, in its order; inuse is always exported (0 if absent).
KNOWN_KEYS = ("inuse", "orphan", "tw", "alloc", "mem", "memory")


@dataclass(frozen=True)
class Sockstat:
    """One sockstat file: "sockets: used" (IPv4 file only) and each protocol's pairs."""

    used: int | None = None
    protocols: dict[str, dict[str, int]] = field(default_factory=dict)


def parse_sockstat(text: str) -> Sockstat:
    """Parse /proc/net/sockstat or sockstat6:

        sockets: used 14
        TCP: inuse 2 orphan 0 tw 30 alloc 2 mem 0
        FRAG6: inuse 0 memory 0
    """
    used: int | None = None
    protocols: dict[str, dict[str, int]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 3 or len(parts) % 2 == 0:
            raise ValueError(f"line {number}: expected 'PROTO: key value ...', "
                             f"got {line[:80]!r}")
        pairs: dict[str, int] = {}
        for key, value in zip(parts[1::2], parts[2::2], strict=True):
            try:
                pairs[key] = int(value)
            except ValueError:
                raise ValueError(f"line {number}: {key} is not a whole number: "
                                 f"{value!r}") from None
        protocol = parts[0].removesuffix(":")
        if protocol == "sockets":
            if "used" not in pairs:
                raise ValueError(f"line {number}: 'sockets:' line without 'used'")
            used = pairs["used"]
        else:
            protocols[protocol] = pairs
    return Sockstat(used=used, protocols=protocols)


def sockstat_families(stats: Iterable[Sockstat], page_size: int) -> list[Metric]:
    """Families for the IPv4 then IPv6 file (either may be missing from `stats`)."""
    families: list[Metric] = []
    for stat in stats:
        if stat.used is not None:
            families.append(GaugeMetricFamily("node_sockstat_sockets_used",
                                              "Number of IPv4 sockets in use.",
                                              value=float(stat.used)))
        for protocol, pairs in stat.protocols.items():
            values = {key: pairs[key] for key in KNOWN_KEYS if key in pairs}
            values.setdefault("inuse", 0)
            if "mem" in pairs:
                values["mem_bytes"] = pairs["mem"] * page_size
            for key, value in values.items():
                families.append(GaugeMetricFamily(
                    f"node_sockstat_{protocol}_{key}",
                    f"Number of {protocol} sockets in state {key}.", value=float(value)))
    return families


class SockstatCollector(Collector):
    name = "sockstat"
    description = "sockets in use and socket buffer memory per protocol (/proc/net/sockstat)"
    platforms = frozenset({"linux"})

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any],
                 page_size: int = mmap.PAGESIZE) -> None:
        super().__init__(context, settings)
        self._page_size = page_size

    def collect(self) -> Iterable[Metric]:
        stats: list[Sockstat] = []
        for name in ("sockstat", "sockstat6"):
            path = self.context.paths.proc("net", name)
            try:
                text = path.read_text()
            except FileNotFoundError:
                # A kernel without IPv4 or IPv6 has no such file, by design.
                log.debug("sockstat: no %s, skipping", path)
                continue
            try:
                stats.append(parse_sockstat(text))
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from None
        if not stats:
            raise NoDataError("neither /proc/net/sockstat nor sockstat6 exists")
        return sockstat_families(stats, self._page_size)
