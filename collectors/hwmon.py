"""hwmon: temperatures, fans, voltages, currents and power from <sysfs>/class/hwmon.

Names, labels, units and scaling are node_exporter 1.5's hwmon collector's:
every sensor file `<type><n>_<property>` of a chip becomes
`node_hwmon_<type>[_<property>]_<unit>{chip, sensor="<type><n>"}`, e.g.
temp1_input -> `node_hwmon_temp_celsius`, temp1_crit -> `node_hwmon_temp_crit_celsius`,
fan1_input -> `node_hwmon_fan_rpm`, in0_input -> `node_hwmon_in_volts`,
power1_input -> `node_hwmon_power_watt`. `chip` is derived from the chip's
device path (stable across reboots, unlike hwmonN); `node_hwmon_chip_names`
maps it to the driver's name and `node_hwmon_sensor_label` carries the
`<sensor>_label` files.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from totem_agent.collectors.base import Collector, NoDataError

log = logging.getLogger(__name__)

SENSOR_TYPES = frozenset({
    "vrm", "beep_enable", "update_interval", "in", "cpu", "fan", "pwm", "temp", "curr",
    "power", "energy", "humidity", "intrusion",
})
_FILENAME_RE = re.compile(r"^(?P<type>[^0-9]+)(?P<id>[0-9]*)?(_(?P<property>.+))?$")
_INVALID_CHARS_RE = re.compile(r"[^a-z0-9:_]")
_LABELS = ["chip", "sensor"]

# {sensor ("temp1", "beep_enable0"): {property ("input", "", "label"): raw text}}
ChipData = dict[str, dict[str, str]]


def clean_name(text: str) -> str:
    """node_exporter's cleanMetricName: lower case, [^a-z0-9:_] -> _, no edge underscores."""
    return _INVALID_CHARS_RE.sub("_", text.lower()).strip("_")


def explode_sensor_filename(filename: str) -> tuple[str, int, str] | None:
    """"temp1_crit_alarm" -> ("temp", 1, "crit_alarm"); "pwm1" -> ("pwm", 1, "")."""
    match = _FILENAME_RE.match(filename)
    if match is None:
        return None
    number = int(match["id"]) if match["id"] else 0
    return match["type"], number, match["property"] or ""


def chip_label(device_target: Path | None, name_text: str | None, directory_name: str) -> str:
    """The `chip` label: from the resolved `device` link ("platform_coretemp_0"),
    else the `name` file, else the hwmonN directory name."""
    if device_target is not None:
        dev_name = clean_name(device_target.name)
        dev_type = clean_name(device_target.parent.name)
        if dev_type and dev_name:
            return f"{dev_type}_{dev_name}"
        if dev_name:
            return dev_name
    if name_text:
        cleaned = clean_name(name_text)
        if cleaned:
            return cleaned
    cleaned = clean_name(directory_name)
    if not cleaned:
        raise ValueError(f"cannot derive a chip name for {directory_name!r}")
    return cleaned


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


class _Families:
    """Families by name, created on first use (first HELP wins)."""

    def __init__(self) -> None:
        self.by_name: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}

    def add(self, name: str, help_text: str, labels: Mapping[str, str], value: float,
            counter: bool = False) -> None:
        family = self.by_name.get(name)
        if family is None:
            kind = CounterMetricFamily if counter else GaugeMetricFamily
            family = kind(name, help_text, labels=list(labels))
            self.by_name[name] = family
        family.add_metric(list(labels.values()), value)


def _milli(value: float) -> float:
    return value * 0.001


def _micro(value: float) -> float:
    # node_exporter multiplies by 0.001 but divides by 1e6: the same float operations.
    return value / 1_000_000.0


def _raw(value: float) -> float:
    return value


Convert = Callable[[float], float]


def _element_family(sensor_type: str, element: str, has_bare_value: bool
                    ) -> tuple[str, str, Convert, bool]:
    """(name, HELP, conversion, is_counter) for one property of a sensor: node_exporter's
    rules, in its order (the first that applies wins)."""
    name = "node_hwmon_" + sensor_type
    if element == "input":
        # `<sensor>_input` is the value itself, unless a bare `<sensor>` file also exists.
        if has_bare_value:
            name += "_input"
    elif element:
        name += "_" + clean_name(element)
    if element in ("fault", "alarm"):
        return name, f"Hardware sensor {element} status ({sensor_type}).", _raw, False
    if element == "beep":
        return name + "_enabled", "Hardware monitor sensor has beeping enabled.", _raw, False
    if sensor_type in ("in", "cpu"):
        return name + "_volts", f"Hardware monitor for voltage ({element}).", _milli, False
    if sensor_type == "temp" and element != "type":
        shown = element or "input"
        return name + "_celsius", f"Hardware monitor for temperature ({shown}).", _milli, False
    if sensor_type == "curr":
        return name + "_amps", f"Hardware monitor for current ({element}).", _milli, False
    if sensor_type == "energy":
        # A counter: CounterMetricFamily adds the _total node_exporter's name ends with.
        return (name + "_joule", f"Hardware monitor for joules used so far ({element}).",
                _micro, True)
    if sensor_type == "power" and element == "accuracy":
        return name, "Hardware monitor power meter accuracy, as a ratio.", _micro, False
    if sensor_type == "power" and element in ("average_interval", "average_interval_min",
                                              "average_interval_max"):
        return (name + "_seconds", f"Hardware monitor power usage update interval ({element}).",
                _milli, False)
    if sensor_type == "power":
        return (name + "_watt", f"Hardware monitor for power usage in watts ({element}).",
                _micro, False)
    if sensor_type == "humidity":
        return (name, "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get "
                f"the humidity as a percentage) ({element}).", _micro, False)
    if sensor_type == "fan" and element in ("input", "min", "max", "target"):
        return (name + "_rpm", f"Hardware monitor for fan revolutions per minute ({element}).",
                _raw, False)
    return name, f"Hardware monitor {sensor_type} element {element}.", _raw, False


def add_chip(families: _Families, chip: str, chip_name: str | None, data: ChipData) -> None:
    """Add one chip's series to `families` (pure: `data` is what its files held)."""
    if chip_name is not None:
        families.add("node_hwmon_chip_names", "Annotation metric for human-readable chip names.",
                     {"chip": chip, "chip_name": chip_name}, 1.0)
    for sensor in sorted(data):
        properties = data[sensor]
        exploded = explode_sensor_filename(sensor)
        sensor_type = exploded[0] if exploded else sensor
        labels = {"chip": chip, "sensor": sensor}
        if "label" in properties:
            families.add("node_hwmon_sensor_label", "Label for given chip and sensor.",
                         {**labels, "label": properties["label"]}, 1.0)
        if sensor_type == "beep_enable":
            families.add("node_hwmon_beep_enabled", "Hardware beep enabled.", labels,
                         1.0 if properties.get("") == "1" else 0.0)
            continue
        if sensor_type in ("vrm", "update_interval"):
            value = _number(properties.get(""))
            if value is None:
                continue
            if sensor_type == "vrm":
                families.add("node_hwmon_voltage_regulator_version",
                             "Hardware voltage regulator.", labels, value)
            else:
                families.add("node_hwmon_update_interval_seconds",
                             "Hardware monitor update interval.", labels, _milli(value))
            continue
        for element in sorted(properties):
            if element == "label":
                continue
            value = _number(properties[element])
            if value is None:
                continue
            name, help_text, convert, counter = _element_family(sensor_type, element,
                                                                "" in properties)
            families.add(name, help_text, labels, convert(value), counter=counter)


# ---- reading sysfs ---------------------------------------------------------------


def _read_attribute(path: Path) -> str | None:
    """A sysfs attribute's text without trailing newlines, or None if it cannot be read.

    Sensors that are absent or faulty answer reads with EIO/ENODATA/EAGAIN, and the
    hwmon directory holds sub-directories (power/) whose names look like sensors:
    node_exporter skips them, so do we, logged at debug.
    """
    try:
        raw = path.read_bytes()
    except OSError as err:
        log.debug("hwmon: cannot read %s: %s", path, err)
        return None
    return raw.decode("utf-8", errors="replace").strip("\n")


def read_sensor_files(directory: Path, data: ChipData) -> None:
    """Add every sensor attribute file of `directory` to `data` (later reads win)."""
    for filename in sorted(os.listdir(directory)):
        exploded = explode_sensor_filename(filename)
        if exploded is None or exploded[0] not in SENSOR_TYPES:
            continue
        sensor_type, number, prop = exploded
        text = _read_attribute(directory / filename)
        if text is not None:
            data.setdefault(f"{sensor_type}{number}", {})[prop] = text


def read_chip(directory: Path) -> tuple[str, str | None, ChipData]:
    """(chip label, name file, sensor data) of one /sys/class/hwmon/hwmonN."""
    device = directory / "device"
    try:
        device_target: Path | None = device.resolve(strict=True)
    except OSError:
        device_target = None  # no device link (virtual chips): fall back to `name`
    name_text = _read_attribute(directory / "name") if (directory / "name").exists() else None
    chip = chip_label(device_target, name_text, directory.resolve().name)
    data: ChipData = {}
    read_sensor_files(directory, data)
    # Older drivers keep their attributes in the device directory.
    if device_target is not None and device_target.is_dir():
        read_sensor_files(device, data)
    chip_name = clean_name(name_text) if name_text else None
    return chip, chip_name or None, data


class HwmonCollector(Collector):
    name = "hwmon"
    description = "hardware sensors (temperatures, fans, voltages, power) from /sys/class/hwmon"
    platforms = frozenset({"linux"})

    def collect(self) -> Iterable[Metric]:
        root = self.context.paths.sys("class", "hwmon")
        try:
            entries = sorted(os.listdir(root))
        except FileNotFoundError:
            raise NoDataError(f"{root} does not exist") from None
        families = _Families()
        chips = 0
        for entry in entries:
            directory = root / entry
            if not directory.is_dir():  # follows the hwmonN symlink; dangling -> skipped
                log.debug("hwmon: %s is not a directory, skipping", directory)
                continue
            try:
                chip, chip_name, data = read_chip(directory)
            except (OSError, ValueError) as err:
                # One broken chip must not hide the others: report it and go on.
                log.warning("hwmon: cannot read chip %s: %s", directory, err)
                continue
            add_chip(families, chip, chip_name, data)
            chips += 1
        if chips == 0:
            raise NoDataError(f"no hardware monitoring chips under {root}")
        return list(families.by_name.values())


def families_for(chips: Mapping[str, tuple[str | None, ChipData]]) -> list[Metric]:
    """Families for recorded chips ({chip: (chip_name, data)}), for tests and tools."""
    families = _Families()
    for chip, (chip_name, data) in chips.items():
        add_chip(families, chip, chip_name, data)
    return list(families.by_name.values())
