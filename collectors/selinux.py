"""selinux: whether SELinux is on, and its modes (node_exporter's selinux collector).

Enabled means the kernel exposes selinuxfs (`/sys/fs/selinux/enforce` exists).
When it is off only `node_selinux_enabled 0` is exported, as node_exporter does.
Modes use node_exporter's numbers: -1 disabled, 0 permissive, 1 enforcing; the
configured mode is `SELINUX=` in /etc/selinux/config (under the rootfs path).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors.base import Collector, NoDataError, read_text

CONFIG_MODES = {"enforcing": 1.0, "permissive": 0.0, "disabled": -1.0}


def parse_config_mode(text: str) -> float:
    """SELINUX= of /etc/selinux/config; an absent or unknown value reads as disabled."""
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        if key.strip() == "SELINUX":
            return CONFIG_MODES.get(value.strip().strip("\"'").lower(), -1.0)
    return -1.0


def parse_enforce(text: str) -> float:
    value = text.strip()
    if value not in ("0", "1"):
        raise ValueError(f"expected 0 or 1, got {value[:20]!r}")
    return float(value)


class SelinuxCollector(Collector):
    name = "selinux"
    description = "SELinux enabled, configured and current mode"
    platforms = frozenset({"linux"})

    def collect(self) -> Iterable[Metric]:
        paths = self.context.paths
        enforce = paths.sys("fs", "selinux", "enforce")
        enabled = enforce.exists()
        families: list[Metric] = [GaugeMetricFamily(
            "node_selinux_enabled", "SELinux is enabled, 1 is true, 0 is false",
            value=1.0 if enabled else 0.0)]
        if not enabled:
            return families
        try:
            config_mode = parse_config_mode(read_text(paths.root("etc", "selinux", "config")))
        except NoDataError:
            config_mode = -1.0
        try:
            current = parse_enforce(read_text(enforce))
        except ValueError as err:
            raise ValueError(f"{enforce}: {err}") from None
        families.append(GaugeMetricFamily("node_selinux_config_mode",
                                          "Configured SELinux enforcement mode",
                                          value=config_mode))
        families.append(GaugeMetricFamily("node_selinux_current_mode",
                                          "Current SELinux enforcement mode", value=current))
        return families
