"""hwmon: sensor naming rules, the fixture chips (node_exporter 1.5 parity), broken and
missing chips, and this machine's /sys/class/hwmon."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import collect, linux_paths, samples
from tests.unit.collectors.golden import assert_matches_node_exporter
from tests.unit.collectors.trees import copy_fixture, make_tree
from totem_agent.collectors.base import CollectorContext, HostPaths, NoDataError
from totem_agent.collectors.hwmon import (
    HwmonCollector,
    chip_label,
    clean_name,
    explode_sensor_filename,
    families_for,
)

CORETEMP = "platform_coretemp_0"


@pytest.mark.parametrize("filename, expected", [
    ("temp1_input", ("temp", 1, "input")),
    ("temp1_crit_alarm", ("temp", 1, "crit_alarm")),
    ("pwm1", ("pwm", 1, "")),
    ("beep_enable", ("beep_enable", 0, "")),
    ("update_interval", ("update_interval", 0, "")),
    ("power1_average_interval_min", ("power", 1, "average_interval_min")),
    ("in10_input", ("in", 10, "input")),
    ("1abc", None),
])
def test_explode_sensor_filename(filename: str, expected: tuple[str, int, str] | None) -> None:
    assert explode_sensor_filename(filename) == expected


def test_clean_name_keeps_colons_and_trims_underscores() -> None:
    assert clean_name("Package id 0") == "package_id_0"
    assert clean_name("1-0040") == "1_0040"
    assert clean_name("LNXSYBUS:00") == "lnxsybus:00"
    assert clean_name("  fan-\n") == "fan"


def test_chip_label_prefers_device_path_then_name_then_directory() -> None:
    device = Path("/sys/devices/platform/coretemp.0")
    assert chip_label(device, "coretemp", "hwmon0") == CORETEMP
    assert chip_label(None, "nct6779\n", "hwmon1") == "nct6779"
    assert chip_label(None, None, "hwmon3") == "hwmon3"
    with pytest.raises(ValueError, match="cannot derive a chip name"):
        chip_label(None, "", "---")


def test_fixture_matches_node_exporter_1_5() -> None:
    families = collect(HwmonCollector, linux_paths())
    compared = assert_matches_node_exporter(families.values(), "node_hwmon_")
    assert compared == 65


def test_fixture_temperatures_fans_voltages_power() -> None:
    families = collect(HwmonCollector, linux_paths())
    got = samples(families.values())

    def at(name: str, chip: str, sensor: str) -> float:
        return got[(name, (("chip", chip), ("sensor", sensor)))]

    assert at("node_hwmon_temp_celsius", CORETEMP, "temp1") == 55.0
    assert at("node_hwmon_temp_crit_celsius", CORETEMP, "temp1") == 100.0
    assert at("node_hwmon_temp_max_celsius", CORETEMP, "temp2") == 84.0
    assert at("node_hwmon_temp_crit_alarm_celsius", CORETEMP, "temp3") == 0.0
    assert at("node_hwmon_temp_celsius", "platform_nct6775_656", "temp2") == -62.0
    assert at("node_hwmon_fan_rpm", "platform_nct6775_656", "fan1") == 1230
    assert at("node_hwmon_fan_min_rpm", "platform_nct6775_656", "fan1") == 300
    assert at("node_hwmon_in_volts", "platform_nct6775_656", "in0") == 1.032
    assert at("node_hwmon_power_watt", "i2c_1_1_0040", "power1") == 18.0
    assert at("node_hwmon_curr_amps", "i2c_1_1_0040", "curr1") == 1.5
    # Found in the device directory, not the hwmon directory (older drivers' layout).
    assert at("node_hwmon_temp_celsius", "i2c_1_1_0040", "temp1") == 41.0
    assert at("node_hwmon_energy_joule_total", "hwmon3", "energy1") == 12.345678
    assert families["node_hwmon_energy_joule"].type == "counter"
    assert got[("node_hwmon_chip_names", (("chip", CORETEMP), ("chip_name", "coretemp")))] == 1
    # Label text as the file holds it (node_exporter 1.5 does not clean it).
    assert got[("node_hwmon_sensor_label",
                (("chip", CORETEMP), ("label", "Package id 0"), ("sensor", "temp1")))] == 1
    # The chip without a name file has no chip_names series.
    assert not any(name == "node_hwmon_chip_names" and ("chip", "hwmon3") in labels
                   for name, labels in got)


def test_directories_named_like_sensors_are_skipped() -> None:
    # coretemp's hwmon directory holds power/ (runtime PM): not a power sensor.
    got = samples(collect(HwmonCollector, linux_paths()).values())
    assert not any(name.startswith("node_hwmon_power") and ("chip", CORETEMP) in labels
                   for name, labels in got)


def test_unparsable_value_skips_that_series_only() -> None:
    families = families_for({"c": ("chip", {"temp1": {"input": "N/A", "max": "90000"},
                                            "fan1": {"input": "900"}})})
    got = samples(families)
    assert ("node_hwmon_temp_celsius", (("chip", "c"), ("sensor", "temp1"))) not in got
    assert got[("node_hwmon_temp_max_celsius", (("chip", "c"), ("sensor", "temp1")))] == 90.0
    assert got[("node_hwmon_fan_rpm", (("chip", "c"), ("sensor", "fan1")))] == 900


def test_bare_value_file_turns_input_into_its_own_series() -> None:
    got = samples(families_for({"c": (None, {"temp1": {"": "30000", "input": "31000"}})}))
    assert got[("node_hwmon_temp_celsius", (("chip", "c"), ("sensor", "temp1")))] == 30.0
    assert got[("node_hwmon_temp_input_celsius", (("chip", "c"), ("sensor", "temp1")))] == 31.0


def test_dangling_chip_link_does_not_hide_the_others(tmp_path: Path) -> None:
    paths = copy_fixture(tmp_path, "sys/class/hwmon/hwmon0", "sys/devices/platform/coretemp.0")
    os.symlink("../../devices/platform/gone/hwmon/hwmon9", tmp_path / "sys/class/hwmon/hwmon9")
    got = samples(collect(HwmonCollector, paths).values())
    assert got[("node_hwmon_temp_celsius", (("chip", CORETEMP), ("sensor", "temp1")))] == 55.0
    assert {dict(labels)["chip"] for _, labels in got} == {CORETEMP}


def test_no_hwmon_class_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="hwmon does not exist"):
        collect(HwmonCollector, make_tree(tmp_path, {}))


def test_no_chips_is_no_data(tmp_path: Path) -> None:
    (tmp_path / "sys" / "class" / "hwmon").mkdir(parents=True)
    with pytest.raises(NoDataError, match="no hardware monitoring chips"):
        collect(HwmonCollector, make_tree(tmp_path, {}))


def test_live_this_machine() -> None:
    collector = HwmonCollector(CollectorContext(paths=HostPaths()), {})
    if not Path("/sys/class/hwmon").is_dir() or not os.listdir("/sys/class/hwmon"):
        with pytest.raises(NoDataError):
            collector.collect()
        return
    families = list(collector.collect())
    assert families
    for family in families:
        assert family.name.startswith("node_hwmon_") and family.samples
