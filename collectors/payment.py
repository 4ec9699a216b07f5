"""payment: PIN pads, as far as the agent can see them without disturbing them.

    [[collectors.payment.devices]]
    name = "pinpad"                     # the `device` label, check payment:pinpad
    vid = "079b"                        # USB ids, when it is a USB device
    pid = "0028"
    port = "/dev/ttyACM0"               # its serial node, when it has one
    title = "PIN pad"

The pad belongs to the TEF client (CliSiTef, PayGo...): the agent only checks that
the USB device is enumerated (sysfs), that its port node exists, and whether a
program holds the port (/proc/*/fd; holding it is normal while the TEF client
runs). Whether payments work comes from the kiosk application's `payment` events
(docs/events.md: `device`, `error_code`).

With `probe = true` the agent also asks the pad who it is (ABECS OPN, GIN, CLO;
`abecs.py`) every `probe_every`, and only while no program holds the port and
its holders could all be read: never in the middle of the TEF client's session.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from totem_agent.collectors import abecs
from totem_agent.collectors.base import Collector, CollectorContext, NoDataError
from totem_agent.collectors.device_tables import check_hex4, parse_entries, present_usb_ids
from totem_agent.collectors.port_holders import port_exists, port_holders
from totem_agent.health import DEGRADED, OK, Check
from totem_agent.options import Option, OptionError

FIELDS = {
    "name": Option("str", "", "The `device` label and the check payment:NAME. Required."),
    "vid": Option("str", "", "USB vendor id, 4 hex digits.", check=check_hex4),
    "pid": Option("str", "", "USB product id, 4 hex digits.", check=check_hex4),
    "port": Option("str", "", "Serial node, e.g. /dev/ttyACM0 or /dev/serial/by-id/..."),
    "title": Option("str", "", "How a person calls it in /health (default: \"PIN pad\")."),
    "probe": Option("bool", False, "Ask the idle pad who it is (ABECS OPN/GIN/CLO). Off: the "
                    "pad is never opened."),
    "probe_every": Option("duration", 300.0, "How often the probe runs.", minimum=1.0),
    "baudrate": Option("int", 19200, "Serial speed for the probe (USB-CDC ignores it).",
                       minimum=1),
    "timeout": Option("duration", 3.0, "Deadline of one probe.", minimum=0.05),
}


def _parse(value: Any) -> list[dict[str, Any]]:
    entries = parse_entries(value, FIELDS, ("name",), "name")
    for index, entry in enumerate(entries):
        if bool(entry["vid"]) != bool(entry["pid"]):
            raise OptionError("set vid and pid together",
                              subkey=f"[{index}].{'pid' if entry['vid'] else 'vid'}")
        if not entry["vid"] and not entry["port"]:
            raise OptionError("set vid and pid, or port (or both)", subkey=f"[{index}].vid")
        if entry["probe"] and not entry["port"]:
            raise OptionError("the probe needs the pad's port", subkey=f"[{index}].probe")
    return entries


def _check_devices(value: Any) -> None:
    _parse(value)


class PaymentCollector(Collector):
    name = "payment"
    description = "PIN pads: USB device present, port present, port held by the TEF client"
    platforms = frozenset({"linux", "win32"})
    options = {
        "devices": Option("tables", [], "PIN pads, one table each with name, vid, pid, port, "
                          "title. Empty: nothing to watch.", check=_check_devices),
    }

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self.devices = _parse(settings.get("devices", ()))
        self._lock = threading.Lock()
        self._checks: list[Check] = []
        self._probes = {d["name"]: _ProbeState() for d in self.devices if d["probe"]}

    def collect(self) -> Iterable[Metric]:
        if not self.devices:
            raise NoDataError("no payment devices configured")
        ids = present_usb_ids(self.context.paths.sysfs)
        usb = GaugeMetricFamily("totem_payment_device_usb_present", "1 when the PIN pad's "
                                "USB device is enumerated.", labels=["device"])
        port = GaugeMetricFamily("totem_payment_device_port_present", "1 when the PIN pad's "
                                 "serial node exists.", labels=["device"])
        held = GaugeMetricFamily("totem_payment_device_port_held", "1 when a program (the "
                                 "TEF client) holds the PIN pad's port open.",
                                 labels=["device"])
        checks = []
        for device in self.devices:
            name = device["name"]
            title = device["title"] or "PIN pad"
            problems, notes = [], []
            if device["vid"]:
                present = (device["vid"], device["pid"]) in ids
                usb.add_metric([name], 1.0 if present else 0.0)
                if not present:
                    problems.append(f"USB device {device['vid']}:{device['pid']} missing")
            if device["port"]:
                exists = port_exists(device["port"])
                port.add_metric([name], 1.0 if exists else 0.0)
                if not exists:
                    problems.append(f"{device['port']} missing")
                else:
                    holders = port_holders(self.context.paths, device["port"])
                    if holders.held is not None:
                        held.add_metric([name], 1.0 if holders.held else 0.0)
                    if holders.held:
                        notes.append(f"in use by {holders.describe()}")
                    if device["probe"] and holders.held is False:
                        self._maybe_probe(device)
            state = self._probes.get(name)
            if state is not None and state.failure is not None and not problems and not notes:
                problems_words = _PROBE_WORDS.get(state.failure.reason, "probe failed")
                checks.append(Check(f"payment:{name}", "peripheral", DEGRADED,
                                    f"{title}: {problems_words} ({state.failure})",
                                    last_error=str(state.failure),
                                    last_success_at=state.last_success_at))
                continue
            if problems:
                check = Check(f"payment:{name}", "peripheral", DEGRADED,
                              f"{title}: not connected ({'; '.join(problems)})")
            else:
                extra = f" ({'; '.join(notes)})" if notes else ""
                check = Check(f"payment:{name}", "peripheral", OK, f"{title}: connected{extra}")
            checks.append(check)
        with self._lock:
            self._checks = checks
        return [f for f in (usb, port, held) if f.samples] + self._probe_families()

    def health_checks(self) -> list[Check]:
        with self._lock:
            return list(self._checks)

    def _maybe_probe(self, device: Mapping[str, Any]) -> None:
        state = self._probes[device["name"]]
        now = time.monotonic()
        if state.last_run is not None and now - state.last_run < device["probe_every"]:
            return
        state.last_run = now
        try:
            state.info = abecs.probe(device["port"], device["baudrate"], device["timeout"])
        except abecs.PadProbeError as err:
            state.failure = err
            state.failures[err.reason] += 1
        else:
            state.failure = None
            state.last_success_at = time.time()

    def _probe_families(self) -> list[Metric]:
        if not self._probes:
            return []
        success = GaugeMetricFamily("totem_payment_device_probe_success", "1 when the last "
                                    "ABECS probe (OPN, GIN, CLO) succeeded.", labels=["device"])
        last = GaugeMetricFamily("totem_payment_device_probe_last_success_timestamp_seconds",
                                 "When the ABECS probe last succeeded.", labels=["device"])
        failures = CounterMetricFamily("totem_payment_device_probe_failures", "ABECS probes "
                                       "that failed, by reason.", labels=["device", "reason"])
        info = GaugeMetricFamily("totem_payment_device_info", "The PIN pad's identity (GIN).",
                                 labels=["device", "manufacturer", "model", "firmware",
                                         "spec_version"])
        for name, state in self._probes.items():
            if state.last_run is not None:
                success.add_metric([name], 0.0 if state.failure is not None else 1.0)
            if state.last_success_at is not None:
                last.add_metric([name], state.last_success_at)
            for reason in abecs.REASONS:
                failures.add_metric([name, reason], float(state.failures[reason]))
            if state.info is not None:
                i = state.info
                info.add_metric([name, i.manufacturer, i.model, i.firmware, i.spec_version], 1.0)
        return [f for f in (success, last, failures, info) if f.samples]


@dataclass
class _ProbeState:
    last_run: float | None = None
    last_success_at: float | None = None
    failure: abecs.PadProbeError | None = None
    failures: Counter[str] = field(default_factory=Counter)
    info: abecs.PadInfo | None = None


_PROBE_WORDS = {
    abecs.TIMEOUT: "not answering",
    abecs.STAT_NONZERO: "reports an error",
    abecs.NAK_REASON: "communication errors",
    abecs.BAD_CRC: "communication errors",
    abecs.PORT_BUSY: "in use",
    abecs.IO_ERROR: "cannot be reached",
}
