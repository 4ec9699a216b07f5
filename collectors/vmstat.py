"""vmstat: paging, swapping and OOM-kill counters from /proc/vmstat, as node_exporter's.

Every "name value" line whose name matches the `fields` regex becomes
`node_vmstat_<name>`, typed untyped as node_exporter 1.5 declares them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.metrics_core import Metric, UnknownMetricFamily

from totem_agent.collectors._filters import regex_option
from totem_agent.collectors.base import Collector, CollectorContext, read_text

DEFAULT_FIELDS = r"^(oom_kill|pgpg|pswp|pg.*fault).*"


def parse_vmstat(text: str) -> dict[str, float]:
    """Parse /proc/vmstat: "pgfault 1704209" per line."""
    values: dict[str, float] = {}
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ValueError(f"line {number}: expected 'name value', got {line[:80]!r}")
        try:
            values[parts[0]] = float(parts[1])
        except ValueError:
            raise ValueError(f"line {number}: invalid value for {parts[0]}: "
                             f"{parts[1]!r}") from None
    return values


def vmstat_families(values: Mapping[str, float], fields: re.Pattern[str]) -> list[Metric]:
    return [UnknownMetricFamily(f"node_vmstat_{name}",
                                f"/proc/vmstat information field {name}.", value=value)
            for name, value in values.items() if fields.search(name)]


class VmstatCollector(Collector):
    name = "vmstat"
    description = "virtual memory counters (page faults, paging, swapping, OOM kills)"
    platforms = frozenset({"linux"})
    options = {
        "fields": regex_option(
            DEFAULT_FIELDS,
            "Regular expression of the /proc/vmstat fields to export "
            "(node_exporter's --collector.vmstat.fields)."),
    }

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self._fields = re.compile(settings.get("fields", DEFAULT_FIELDS))

    def collect(self) -> Iterable[Metric]:
        path = self.context.paths.proc("vmstat")
        try:
            values = parse_vmstat(read_text(path))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        return vmstat_families(values, self._fields)
