"""filefd: allocated and maximum file handles from /proc/sys/fs/file-nr (node_exporter's)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors.base import Collector, read_text


class FileNr(NamedTuple):
    allocated: float
    maximum: float


def parse_file_nr(text: str) -> FileNr:
    """Parse file-nr: "465\t0\t2466177" (allocated, free (always 0 since 2.6), maximum)."""
    parts = text.split()
    if len(parts) != 3:
        raise ValueError(f"expected 3 fields, got {len(parts)}: {text[:60]!r}")
    try:
        return FileNr(allocated=float(parts[0]), maximum=float(parts[2]))
    except ValueError:
        raise ValueError(f"not numbers: {text[:60]!r}") from None


class FilefdCollector(Collector):
    name = "filefd"
    description = "allocated and maximum file handles"
    platforms = frozenset({"linux"})

    def collect(self) -> Iterable[Metric]:
        path = self.context.paths.proc("sys", "fs", "file-nr")
        try:
            stats = parse_file_nr(read_text(path))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        return [
            GaugeMetricFamily("node_filefd_allocated", "File descriptor statistics: allocated.",
                              value=stats.allocated),
            GaugeMetricFamily("node_filefd_maximum", "File descriptor statistics: maximum.",
                              value=stats.maximum),
        ]
