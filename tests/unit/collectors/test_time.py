"""time: node_time_seconds, zone offset, clocksources; an injected clock, fixtures, live."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric

from tests.support import LINUX, collect, linux_paths, samples
from tests.unit.collectors.fake_psutil import FakePsutil
from totem_agent.collectors.base import CollectorContext
from totem_agent.collectors.platform._windows import WindowsSource
from totem_agent.collectors.time import TimeCollector

CET = timezone(timedelta(hours=1), "CET")
NOW = datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=CET)  # 2026-01-02T02:04:05.25Z


def collect_at(root: Path, now: datetime = NOW) -> dict[str, Metric]:
    collector = TimeCollector(CollectorContext(paths=linux_paths(root)), {}, clock=lambda: now)
    return {f.name: f for f in collector.collect()}


def write_clocksource(root: Path, device: str, available: str, current: str) -> Path:
    directory = root / "sys" / "devices" / "system" / "clocksource" / device
    directory.mkdir(parents=True)
    (directory / "available_clocksource").write_text(available)
    (directory / "current_clocksource").write_text(current)
    return directory


def test_fixture_time_zone_and_clocksources() -> None:
    families = collect_at(LINUX)
    assert {name: f.type for name, f in families.items()} == {
        "node_time_seconds": "gauge",
        "node_time_zone_offset_seconds": "gauge",
        "node_time_clocksource_available_info": "gauge",
        "node_time_clocksource_current_info": "gauge",
    }
    assert samples(families.values()) == {
        ("node_time_seconds", ()): 1767319445.25,
        ("node_time_zone_offset_seconds", (("time_zone", "CET"),)): 3600.0,
        # tests/fixtures/linux/sys/devices/system/clocksource/clocksource0
        ("node_time_clocksource_available_info",
         (("clocksource", "tsc"), ("device", "0"))): 1.0,
        ("node_time_clocksource_available_info",
         (("clocksource", "kvm-clock"), ("device", "0"))): 1.0,
        ("node_time_clocksource_current_info",
         (("clocksource", "tsc"), ("device", "0"))): 1.0,
    }


def test_negative_offsets_and_utc() -> None:
    west = datetime(2026, 7, 1, 12, 0, tzinfo=timezone(timedelta(hours=-3), "-03"))
    got = samples(collect_at(Path("/nonexistent"), west).values())
    assert got[("node_time_zone_offset_seconds", (("time_zone", "-03"),))] == -10800.0
    assert got[("node_time_seconds", ())] == west.timestamp()


def test_a_clock_without_a_time_zone_is_an_error() -> None:
    with pytest.raises(ValueError, match="without a time zone"):
        collect_at(Path("/nonexistent"), datetime(2026, 1, 2, 3, 4, 5))


def test_no_clocksource_directory_leaves_those_families_out(tmp_path: Path) -> None:
    (tmp_path / "sys").mkdir()
    assert set(collect_at(tmp_path)) == {"node_time_seconds", "node_time_zone_offset_seconds"}


def test_devices_are_labelled_by_position_like_node_exporter(tmp_path: Path) -> None:
    write_clocksource(tmp_path, "clocksource0", "tsc hpet acpi_pm \n", "tsc\n")
    write_clocksource(tmp_path, "clocksource1", "jiffies\n", "jiffies\n")
    (tmp_path / "sys" / "devices" / "system" / "clocksource" / "power").mkdir()  # not a device
    got = samples(collect_at(tmp_path).values())
    available = sorted((dict(k)["device"], dict(k)["clocksource"]) for name, k in got
                       if name == "node_time_clocksource_available_info")
    assert available == [("0", "acpi_pm"), ("0", "hpet"), ("0", "tsc"), ("1", "jiffies")]
    current = sorted((dict(k)["device"], dict(k)["clocksource"]) for name, k in got
                     if name == "node_time_clocksource_current_info")
    assert current == [("0", "tsc"), ("1", "jiffies")]


def test_a_device_missing_its_files_is_a_failure_naming_the_file(tmp_path: Path) -> None:
    directory = write_clocksource(tmp_path, "clocksource0", "tsc\n", "tsc\n")
    (directory / "current_clocksource").unlink()
    with pytest.raises(FileNotFoundError, match="current_clocksource"):
        collect_at(tmp_path)


def test_windows_has_time_but_no_clocksources() -> None:
    collector = TimeCollector(CollectorContext(), {}, clock=lambda: NOW,
                              source=WindowsSource(psutil_module=FakePsutil()))
    assert {f.name for f in collector.collect()} == {"node_time_seconds",
                                                     "node_time_zone_offset_seconds"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this machine's /sys")
def test_live_this_machine() -> None:
    before = time.time()
    families = collect(TimeCollector, settings={})
    after = time.time()
    got = samples(families.values())
    # datetime keeps microseconds, time.time() more: allow for the truncation.
    assert before - 1e-3 <= got[("node_time_seconds", ())] <= after + 1e-3
    local = datetime.now().astimezone()
    offset = local.utcoffset()
    assert offset is not None
    assert got[("node_time_zone_offset_seconds", (("time_zone", local.tzname() or ""),))] \
        == offset.total_seconds()
    current = [k for name, k in got if name == "node_time_clocksource_current_info"]
    if Path("/sys/devices/system/clocksource/clocksource0").exists():
        assert len(current) >= 1
