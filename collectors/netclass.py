"""netclass: link state and properties of network interfaces (node_exporter's netclass).

From /sys/class/net/<iface>/: node_network_up, node_network_info{address,
broadcast,device,duplex,ifalias,operstate}, and one gauge or counter per
numeric attribute (carrier, mtu_bytes, speed_bytes, flags, ...), as
node_exporter 1.5 exports them. An attribute the kernel refuses to read (a
down link's carrier and speed answer EINVAL) has no series, as in 1.5; it is
not exported as 0.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from totem_agent.collectors._filters import NameFilter, regex_option
from totem_agent.collectors.base import Collector, CollectorContext, NoDataError
from totem_agent.options import Option

log = logging.getLogger("totem_agent.collectors.netclass")

# sysfs attribute -> metric name as exposed (counters without _total), counter?
NUMERIC: tuple[tuple[str, str, bool], ...] = (
    ("addr_assign_type", "node_network_address_assign_type", False),
    ("carrier", "node_network_carrier", False),
    ("carrier_changes", "node_network_carrier_changes", True),
    ("carrier_up_count", "node_network_carrier_up_changes", True),
    ("carrier_down_count", "node_network_carrier_down_changes", True),
    ("dev_id", "node_network_device_id", False),
    ("dormant", "node_network_dormant", False),
    ("flags", "node_network_flags", False),
    ("ifindex", "node_network_iface_id", False),
    ("iflink", "node_network_iface_link", False),
    ("link_mode", "node_network_iface_link_mode", False),
    ("mtu", "node_network_mtu_bytes", False),
    ("name_assign_type", "node_network_name_assign_type", False),
    ("netdev_group", "node_network_net_dev_group", False),
    ("speed", "node_network_speed_bytes", False),
    ("tx_queue_len", "node_network_transmit_queue_length", False),
    ("type", "node_network_protocol_type", False),
)
INFO_LABELS = ["device", "address", "broadcast", "duplex", "ifalias", "operstate"]

# What procfs' sysfs reader (used by node_exporter 1.5) passes over: the file is
# gone, not ours to read, or the driver cannot answer (a down link's carrier).
_UNREADABLE = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EINVAL, errno.EOPNOTSUPP}

# Go's strconv.ParseInt(s, 0, 64): 0x hex (flags, dev_id), 0o/0b, a leading 0 is octal.
_GO_INT = re.compile(r"^([+-]?)(0[xX][0-9a-fA-F]+|0[oO]?[0-7]+|0[bB][01]+|[1-9][0-9]*|0)$")


class NetclassCollector(Collector):
    name = "netclass"
    description = "link state, speed, MTU and addresses of network interfaces from sysfs"
    platforms = frozenset({"linux"})
    options = {
        "device_exclude": regex_option(
            "",
            "Regular expression of interfaces to leave out (searched anywhere in the "
            "name; empty leaves none out), node_exporter's "
            "--collector.netclass.ignored-devices."),
        "ignore_invalid_speed": Option(
            "bool", False,
            "Leave out node_network_speed_bytes where the driver reports an unknown "
            "speed (-1, exported as -125000 otherwise, as node_exporter 1.5 does)."),
    }

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self._devices = NameFilter(settings["device_exclude"])
        self._ignore_invalid_speed = bool(settings["ignore_invalid_speed"])

    def collect(self) -> Iterable[Metric]:
        root = self.context.paths.sys("class", "net")
        if not root.is_dir():
            raise NoDataError(f"{root} does not exist")
        interfaces = {name: read_attributes(root / name) for name in list_interfaces(root)
                      if not self._devices.excluded(name)}
        return families(interfaces, ignore_invalid_speed=self._ignore_invalid_speed)


def list_interfaces(root: Path) -> list[str]:
    """The interface entries of /sys/class/net: symlinks or directories, sorted.
    Regular files there (bonding_masters) are not interfaces."""
    return sorted(e.name for e in os.scandir(root) if not e.is_file(follow_symlinks=False))


def read_attributes(directory: Path) -> dict[str, str]:
    """Every readable regular file of one interface directory, stripped.

    Subdirectories (statistics/, queues/) and symlinks (device, subsystem) are
    not attributes. A file the kernel will not read out is left out (see
    _UNREADABLE); any other error is raised with the file's name.
    """
    attributes = {}
    for entry in os.scandir(directory):
        if not entry.is_file(follow_symlinks=False):
            continue
        value = read_attribute(entry.path)
        if value is not None:
            attributes[entry.name] = value
    return attributes


def read_attribute(path: str | Path) -> str | None:
    """One sysfs attribute, or None if the kernel declines to give it (EINVAL...).

    os.open/os.read on a str path: this runs ~20 times per interface per cycle,
    and a file object (with pathlib around it) cost twice the read itself.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.read(fd, 4096).decode(errors="replace").strip()
        finally:
            os.close(fd)
    except OSError as err:
        if err.errno in _UNREADABLE:
            log.debug("sysfs attribute not readable", extra={"path": str(path),
                                                             "error": err.strerror})
            return None
        raise OSError(err.errno, f"reading {path}: {err.strerror}") from err


def go_int(text: str) -> int | None:
    """Parse an integer as node_exporter does (Go's base-0 ParseInt); None if it is not one."""
    match = _GO_INT.match(text)
    if match is None:
        return None
    sign, digits = match.groups()
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "0123456789":
        value = int(digits, 8)  # Go's leading-zero octal
    else:
        value = int(digits, 0)
    return -value if sign == "-" else value


def families(interfaces: Mapping[str, Mapping[str, str]], *,
             ignore_invalid_speed: bool = False) -> list[Metric]:
    """node_network_* families from {device: {attribute: text}}."""
    up = GaugeMetricFamily("node_network_up", "Value is 1 if operstate is 'up', 0 otherwise.",
                           labels=["device"])
    info = GaugeMetricFamily(
        "node_network_info", "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
        labels=INFO_LABELS)
    numeric: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
    for attribute, name, is_counter in NUMERIC:
        doc = f"Network device property: {name.removeprefix('node_network_')}" + \
            ("_total" if is_counter else "")
        numeric[attribute] = (CounterMetricFamily(name, doc, labels=["device"]) if is_counter
                              else GaugeMetricFamily(name, doc, labels=["device"]))
    for device in sorted(interfaces):
        attrs = interfaces[device]
        up.add_metric([device], 1.0 if attrs.get("operstate") == "up" else 0.0)
        info.add_metric([device] + [attrs.get(label, "") for label in INFO_LABELS[1:]], 1.0)
        for attribute, family in numeric.items():
            if attribute not in attrs:
                continue
            value = go_int(attrs[attribute])
            if value is None:
                log.debug("sysfs attribute is not a number",
                          extra={"device": device, "attribute": attribute})
                continue  # procfs leaves an unparsable value unset, so 1.5 has no series
            if attribute == "speed":
                if value < 0 and ignore_invalid_speed:
                    continue
                value *= 1_000_000 // 8  # Mbit/s to bytes/s: -1 (unknown) is -125000
            family.add_metric([device], float(value))
    return [f for f in (up, info, *numeric.values()) if f.samples]
