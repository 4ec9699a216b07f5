"""display: screens on the DRM connectors (/sys/class/drm/card*-*/status, enabled).

The kernel keeps each connector's last detected state (`connected`,
`disconnected`, `unknown`); reading it needs no privilege and does not re-probe.
`unknown` is left out. With `connectors` set, each named connector must have a
screen. Without it, a connector that had a screen since the agent started and
lost it turns the check degraded; a machine that never had one (a headless box
with a GPU) is "not applicable", not broken.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors.base import Collector, CollectorContext, NoDataError
from totem_agent.health import DEGRADED, NOT_APPLICABLE, OK, PENDING, Check
from totem_agent.options import Option

CARD_RE = re.compile(r"^card\d+-(.+)$")


class DisplayCollector(Collector):
    name = "display"
    description = "Screens on the DRM connectors (connected, enabled)"
    options = {
        "connectors": Option("str_list", [], "Connectors that must have a screen, e.g. "
                             "[\"HDMI-A-1\"]. Empty: any connector that had a screen since "
                             "the agent started must keep it."),
    }

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.expected: tuple[str, ...] = tuple(settings.get("connectors", ()))
        self.seen_connected: set[str] = set()
        self._lock = threading.Lock()
        self._checks: list[Check] = [Check("display", "peripheral", PENDING,
                                           "Screen: not checked yet")]

    def read(self) -> dict[str, tuple[bool | None, bool | None]]:
        """connector -> (connected, enabled); None where the kernel does not say."""
        out: dict[str, tuple[bool | None, bool | None]] = {}
        drm = self.context.paths.sys("class", "drm")
        try:
            entries = sorted(drm.iterdir())
        except OSError:
            return out
        for entry in entries:
            match = CARD_RE.match(entry.name)
            if not match:
                continue
            status = _read(entry / "status")
            enabled = _read(entry / "enabled")
            out[match.group(1)] = (
                {"connected": True, "disconnected": False}.get(status or ""),
                {"enabled": True, "disabled": False}.get(enabled or ""))
        return out

    def collect(self) -> Iterable[Metric]:
        connectors = self.read()
        if not connectors and not self.expected:
            raise NoDataError("no DRM display connectors")
        connected = GaugeMetricFamily("totem_display_connected", "1 when a screen is "
                                      "connected to the connector.", labels=["connector"])
        enabled = GaugeMetricFamily("totem_display_enabled", "1 when the connector is in use "
                                    "(enabled by the display server).", labels=["connector"])
        for name, (is_connected, is_enabled) in connectors.items():
            if is_connected is not None:
                connected.add_metric([name], 1.0 if is_connected else 0.0)
            if is_enabled is not None:
                enabled.add_metric([name], 1.0 if is_enabled else 0.0)
        check = self._check(connectors)
        with self._lock:
            self._checks = [check]
        return [f for f in (connected, enabled) if f.samples]

    def _check(self, connectors: Mapping[str, tuple[bool | None, bool | None]]) -> Check:
        if self.expected:
            missing = [n for n in self.expected if connectors.get(n, (None, None))[0] is not True]
            if missing:
                words = [f"Screen {n} disconnected" if n in connectors
                         else f"Screen {n} not found" for n in missing]
                return Check("display", "peripheral", DEGRADED, "; ".join(words))
            return Check("display", "peripheral", OK, "Screen: connected")
        self.seen_connected |= {n for n, (c, _) in connectors.items() if c is True}
        lost = sorted(n for n in self.seen_connected if connectors.get(n, (None, None))[0]
                      is not True)
        if lost:
            return Check("display", "peripheral", DEGRADED,
                         "; ".join(f"Screen {n} disconnected" for n in lost))
        if self.seen_connected:
            return Check("display", "peripheral", OK, "Screen: connected")
        return Check("display", "peripheral", NOT_APPLICABLE,
                     "No screen connected (none expected: set connectors to require one)")

    def health_checks(self) -> list[Check]:
        with self._lock:
            return list(self._checks)


def _read(path: Any) -> str | None:
    try:
        return str(path.read_text()).strip()
    except OSError:
        return None
