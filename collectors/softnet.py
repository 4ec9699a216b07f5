"""softnet: per-CPU packet processing of the network stack (node_exporter's softnet).

node_softnet_processed_total, node_softnet_dropped_total and
node_softnet_times_squeezed_total, labelled `cpu`, from /proc/net/softnet_stat.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from prometheus_client.metrics_core import CounterMetricFamily, Metric

from totem_agent.collectors.base import Collector, parse_file

# Every kernel since 2.6 prints at least processed, dropped, time_squeeze, five
# unused columns and cpu_collision; node_exporter's procfs wants those 9.
_MIN_COLUMNS = 9


class SoftnetRow(NamedTuple):
    processed: int
    dropped: int
    times_squeezed: int


class SoftnetCollector(Collector):
    name = "softnet"
    description = "packets processed and dropped, and budget squeezes, per CPU"
    platforms = frozenset({"linux"})

    def collect(self) -> Iterable[Metric]:
        path = self.context.paths.proc("net", "softnet_stat")
        rows = parse_file(path, parse_softnet)
        processed = CounterMetricFamily("node_softnet_processed", "Number of processed packets",
                                        labels=["cpu"])
        dropped = CounterMetricFamily("node_softnet_dropped", "Number of dropped packets",
                                      labels=["cpu"])
        squeezed = CounterMetricFamily(
            "node_softnet_times_squeezed",
            "Number of times processing packets ran out of quota", labels=["cpu"])
        # node_exporter 1.5 labels each row by its position. The kernel skips
        # offline CPUs, so with CPUs offline position and CPU number part ways;
        # 1.5's labels are kept so its dashboards line up.
        for index, row in enumerate(rows):
            cpu = [str(index)]
            processed.add_metric(cpu, float(row.processed))
            dropped.add_metric(cpu, float(row.dropped))
            squeezed.add_metric(cpu, float(row.times_squeezed))
        return [processed, dropped, squeezed] if rows else []


def parse_softnet(text: str) -> list[SoftnetRow]:
    """Parse /proc/net/softnet_stat: one line per online CPU, hexadecimal columns."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        columns = line.split()
        if not columns:
            continue
        if len(columns) < _MIN_COLUMNS:
            raise ValueError(f"line {number}: {len(columns)} columns, expected at least "
                             f"{_MIN_COLUMNS}")
        try:
            rows.append(SoftnetRow(*(int(c, 16) for c in columns[:3])))
        except ValueError:
            raise ValueError(f"line {number}: not hexadecimal: {line.strip()!r}") from None
    return rows
