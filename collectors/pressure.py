"""pressure: pressure stall information (PSI) from /proc/pressure, as node_exporter's.

node_exporter 1.5 reads the `some` line of cpu, io and memory and the `full` line
of io and memory. Two more series are exported here when the kernel has them,
under the names later node_exporter releases use:

- `node_pressure_cpu_stalled_seconds_total`: the `full` line of /proc/pressure/cpu
  (kernels >= 5.13 print it; it is all zeros at the system level, but cgroup-aware
  dashboards read it);
- `node_pressure_irq_stalled_seconds_total`: /proc/pressure/irq, which exists only
  with CONFIG_IRQ_TIME_ACCOUNTING (kernels >= 6.1) and has a `full` line only. The
  "Node Exporter Full" dashboard's Pressure panel reads it, so without it that
  panel stays empty, as it does with node_exporter 1.5.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.metrics_core import CounterMetricFamily, Metric

from totem_agent.collectors.base import Collector, NoDataError

log = logging.getLogger(__name__)

# (resource, line) -> (family name without _total, HELP), in exposition order.
FAMILIES: dict[tuple[str, str], tuple[str, str]] = {
    ("cpu", "some"): ("node_pressure_cpu_waiting_seconds",
                      "Total time in seconds that processes have waited for CPU time."),
    ("cpu", "full"): ("node_pressure_cpu_stalled_seconds",
                      "Total time in seconds no process could make progress due to CPU "
                      "congestion (not read by node_exporter 1.5)."),
    ("io", "some"): ("node_pressure_io_waiting_seconds",
                     "Total time in seconds that processes have waited due to IO congestion."),
    ("io", "full"): ("node_pressure_io_stalled_seconds",
                     "Total time in seconds no process could make progress due to IO "
                     "congestion."),
    ("memory", "some"): ("node_pressure_memory_waiting_seconds",
                         "Total time in seconds that processes have waited for memory."),
    ("memory", "full"): ("node_pressure_memory_stalled_seconds",
                         "Total time in seconds no process could make progress due to memory "
                         "congestion."),
    ("irq", "full"): ("node_pressure_irq_stalled_seconds",
                      "Total time in seconds no process could make progress due to IRQ "
                      "handling (not read by node_exporter 1.5)."),
}
RESOURCES = ("cpu", "io", "memory", "irq")


@dataclass(frozen=True)
class PressureTotals:
    """The `total=` of each line of one /proc/pressure file, in seconds (None: no line)."""

    some: float | None = None
    full: float | None = None


def parse_pressure(text: str) -> PressureTotals:
    """Parse one /proc/pressure/<resource> file:

        some avg10=0.00 avg60=0.00 avg300=0.00 total=2353432
        full avg10=0.00 avg60=0.00 avg300=0.00 total=2235616
    """
    totals: dict[str, float] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        kind, _, rest = line.partition(" ")
        if kind not in ("some", "full"):
            raise ValueError(f"line {number}: expected 'some' or 'full', got {line[:60]!r}")
        fields = dict(part.partition("=")[::2] for part in rest.split())
        if "total" not in fields:
            raise ValueError(f"line {number}: no total= field in {line[:80]!r}")
        try:
            microseconds = int(fields["total"])
        except ValueError:
            raise ValueError(f"line {number}: total is not a whole number: "
                             f"{fields['total']!r}") from None
        # Divided twice, as node_exporter does, so the float is bit-for-bit the same.
        totals[kind] = microseconds / 1000.0 / 1000.0
    if not totals:
        raise ValueError("no 'some' or 'full' line")
    return PressureTotals(some=totals.get("some"), full=totals.get("full"))


def pressure_families(stats: dict[str, PressureTotals]) -> list[Metric]:
    """Metric families for the resources read (resource -> totals)."""
    families: list[Metric] = []
    for (resource, kind), (name, help_text) in FAMILIES.items():
        totals = stats.get(resource)
        value = None if totals is None else getattr(totals, kind)
        if value is not None:
            families.append(CounterMetricFamily(name, help_text, value=value))
    return families


class PressureCollector(Collector):
    name = "pressure"
    description = "pressure stall information (PSI) for cpu, io, memory and irq"
    platforms = frozenset({"linux"})

    def collect(self) -> Iterable[Metric]:
        directory = self.context.paths.proc("pressure")
        if not directory.is_dir():
            raise NoDataError(f"{directory} does not exist (kernel < 4.20 or CONFIG_PSI off)")
        stats: dict[str, PressureTotals] = {}
        for resource in RESOURCES:
            path = directory / resource
            try:
                text = path.read_text()
            except FileNotFoundError:
                # irq needs CONFIG_IRQ_TIME_ACCOUNTING; older kernels lack it by design.
                log.debug("no %s, skipping", path)
                continue
            except OSError as err:
                if err.errno == errno.EOPNOTSUPP:
                    raise NoDataError(f"{path}: PSI is compiled in but disabled "
                                      "(boot with psi=1)") from err
                raise
            try:
                stats[resource] = parse_pressure(text)
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from None
        if not stats:
            raise NoDataError(f"{directory} has none of {', '.join(RESOURCES)}")
        return pressure_families(stats)
