"""entropy: the kernel's entropy pool from /proc/sys/kernel/random (node_exporter's).

The names end in `_bits`, which promtool lints; they keep node_exporter's spelling
so existing dashboards work. Since Linux 5.18 both read 256 (the pool no longer
runs dry), but older kiosk kernels can starve programs that read /dev/random.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors.base import Collector, read_text


def parse_int_file(text: str) -> float:
    """A one-number proc file ("256\\n")."""
    try:
        return float(int(text.strip()))
    except ValueError:
        raise ValueError(f"expected a whole number, got {text[:40]!r}") from None


def _read_number(path: Path) -> float:
    try:
        return parse_int_file(read_text(path))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


class EntropyCollector(Collector):
    name = "entropy"
    description = "available entropy and entropy pool size"
    platforms = frozenset({"linux"})

    def collect(self) -> Iterable[Metric]:
        random = self.context.paths.proc("sys", "kernel", "random")
        return [
            GaugeMetricFamily("node_entropy_available_bits", "Bits of available entropy.",
                              value=_read_number(random / "entropy_avail")),
            GaugeMetricFamily("node_entropy_pool_size_bits", "Bits of entropy pool.",
                              value=_read_number(random / "poolsize")),
        ]
