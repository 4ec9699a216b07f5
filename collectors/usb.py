"""usb: configured USB devices by role (barcode scanner, touchscreen, ...), present or not.

    [[collectors.usb.devices]]
    role = "scanner"
    vid = "0c2e"
    pid = "0b61"

Presence comes from /sys/bus/usb/devices/*/idVendor and idProduct on Linux and
from PnP (SetupAPI, present devices) on Windows: no privilege, nothing opened.
Reading scans or touches would mean grabbing the device from the kiosk
application, so the agent does not.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors.base import Collector, CollectorContext, NoDataError
from totem_agent.collectors.device_tables import check_hex4, parse_entries, present_usb_ids
from totem_agent.health import DEGRADED, OK, Check
from totem_agent.options import Option

FIELDS = {
    "role": Option("str", "", "What the device is for (scanner, touchscreen, ...): the `role` "
                   "label and the check usb:ROLE. Required."),
    "vid": Option("str", "", "USB vendor id, 4 hex digits. Required.", check=check_hex4),
    "pid": Option("str", "", "USB product id, 4 hex digits. Required.", check=check_hex4),
    "title": Option("str", "", "How a person calls it in /health (default: the role)."),
}


def _check_devices(value: Any) -> None:
    parse_entries(value, FIELDS, ("role", "vid", "pid"), "role")


class UsbCollector(Collector):
    name = "usb"
    description = "Configured USB devices by role (scanner, touchscreen): present or not"
    platforms = frozenset({"linux", "win32"})
    options = {
        "devices": Option("tables", [], "USB devices that must be plugged in, one table each "
                          "with role, vid, pid, title. Empty: nothing to watch.",
                          check=_check_devices),
    }

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.devices = parse_entries(settings.get("devices", ()), FIELDS,
                                     ("role", "vid", "pid"), "role")
        self._lock = threading.Lock()
        self._checks: list[Check] = []

    def collect(self) -> Iterable[Metric]:
        if not self.devices:
            raise NoDataError("no USB devices configured")
        present_ids = present_usb_ids(self.context.paths.sysfs)
        family = GaugeMetricFamily("totem_usb_device_present", "1 when the configured USB "
                                   "device is plugged in.", labels=["role", "vid", "pid"])
        checks = []
        for device in self.devices:
            present = (device["vid"], device["pid"]) in present_ids
            family.add_metric([device["role"], device["vid"], device["pid"]],
                              1.0 if present else 0.0)
            title = device["title"] or device["role"].replace("_", " ").capitalize()
            ids = f"{device['vid']}:{device['pid']}"
            checks.append(Check(f"usb:{device['role']}", "peripheral",
                                OK if present else DEGRADED,
                                f"{title}: connected" if present
                                else f"{title}: not connected (USB device {ids} missing)"))
        with self._lock:
            self._checks = checks
        return [family]

    def health_checks(self) -> list[Check]:
        with self._lock:
            return list(self._checks)
