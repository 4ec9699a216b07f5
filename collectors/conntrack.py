"""conntrack: netfilter connection tracking table use and statistics (node_exporter's).

`node_nf_conntrack_entries` / `_entries_limit` from /proc/sys/net/netfilter
(absent when the nf_conntrack module is not loaded: nothing to watch), and the
`node_nf_conntrack_stat_*` sums over CPUs of /proc/net/stat/nf_conntrack.
A full table drops new connections (the kiosk goes "offline"), hence the limit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors.base import Collector, NoDataError

log = logging.getLogger(__name__)

# Column of /proc/net/stat/nf_conntrack -> (family, HELP). Gauges, as node_exporter 1.5.
STAT_FAMILIES: dict[str, tuple[str, str]] = {
    "found": ("node_nf_conntrack_stat_found",
              "Number of searched entries which were successful."),
    "invalid": ("node_nf_conntrack_stat_invalid",
                "Number of packets seen which can not be tracked."),
    "ignore": ("node_nf_conntrack_stat_ignore",
               "Number of packets seen which are already connected to a conntrack entry."),
    "insert": ("node_nf_conntrack_stat_insert", "Number of entries inserted into the list."),
    "insert_failed": ("node_nf_conntrack_stat_insert_failed",
                      "Number of entries for which list insertion was attempted but failed."),
    "drop": ("node_nf_conntrack_stat_drop",
             "Number of packets dropped due to conntrack failure."),
    "early_drop": ("node_nf_conntrack_stat_early_drop",
                   "Number of dropped conntrack entries to make room for new ones, if maximum "
                   "table size was reached."),
    "search_restart": ("node_nf_conntrack_stat_search_restart",
                       "Number of conntrack table lookups which had to be restarted due to "
                       "hashtable resizes."),
}


def parse_conntrack_stat(text: str) -> dict[str, int]:
    """Sum each column of /proc/net/stat/nf_conntrack over its per-CPU lines.

    The first line names the columns (their set and order changed across kernels:
    5.x replaced searched/delete_list with clashres/chainlength), values are hex.
    """
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("empty file")
    header = lines[0]
    totals = dict.fromkeys(header, 0)
    for number, values in enumerate(lines[1:], 2):
        if len(values) != len(header):
            raise ValueError(f"line {number}: {len(values)} values for {len(header)} columns")
        for column, value in zip(header, values, strict=True):
            try:
                totals[column] += int(value, 16)
            except ValueError:
                raise ValueError(f"line {number}: {column} is not hexadecimal: "
                                 f"{value!r}") from None
    return totals


def _read_uint(path: Path) -> float:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NoDataError(f"{path} does not exist (nf_conntrack not loaded)") from None
    try:
        return float(int(text.strip()))
    except ValueError:
        raise ValueError(f"{path}: expected a whole number, got {text[:40]!r}") from None


def conntrack_families(entries: float, limit: float,
                       stats: Mapping[str, int] | None) -> list[Metric]:
    families: list[Metric] = [
        GaugeMetricFamily("node_nf_conntrack_entries",
                          "Number of currently allocated flow entries for connection tracking.",
                          value=entries),
        GaugeMetricFamily("node_nf_conntrack_entries_limit",
                          "Maximum size of connection tracking table.", value=limit),
    ]
    if stats is not None:
        for column, (name, help_text) in STAT_FAMILIES.items():
            if column in stats:
                families.append(GaugeMetricFamily(name, help_text, value=float(stats[column])))
    return families


class ConntrackCollector(Collector):
    name = "conntrack"
    description = "netfilter connection tracking table entries, limit and statistics"
    platforms = frozenset({"linux"})

    def collect(self) -> Iterable[Metric]:
        netfilter = self.context.paths.proc("sys", "net", "netfilter")
        entries = _read_uint(netfilter / "nf_conntrack_count")
        limit = _read_uint(netfilter / "nf_conntrack_max")
        stat_path = self.context.paths.proc("net", "stat", "nf_conntrack")
        stats: dict[str, int] | None = None
        try:
            text = stat_path.read_text()
        except FileNotFoundError:
            # Kernels built without CONFIG_NF_CONNTRACK_PROCFS have no such file;
            # node_exporter 1.5 then fails the whole collector, we keep the table size.
            log.debug("conntrack: no %s, exporting entries and limit only", stat_path)
        else:
            try:
                stats = parse_conntrack_stat(text)
            except ValueError as err:
                raise ValueError(f"{stat_path}: {err}") from None
        return conntrack_families(entries, limit, stats)
