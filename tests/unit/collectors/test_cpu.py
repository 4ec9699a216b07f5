"""cpu: node_cpu_seconds_total / node_cpu_guest_seconds_total over fixtures, Windows, live."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.support import LINUX, collect, linux_paths, samples
from tests.unit.collectors.fake_psutil import FakePsutil
from totem_agent.collectors.base import CollectorContext
from totem_agent.collectors.cpu import CpuCollector, hold_monotonic
from totem_agent.collectors.platform._linux_system import parse_proc_stat
from totem_agent.collectors.platform._windows import WindowsSource
from totem_agent.collectors.platform.types import CpuTimes
from totem_agent.collectors.stat import StatCollector

MODES = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]

STAT_TEMPLATE = """\
cpu  {total}
cpu0 {cpu0}
cpu1 {cpu1}
intr 100 0 0
ctxt 200
btime 1795425890
processes 300
procs_running 1
procs_blocked 0
"""


def write_stat(root: Path, cpu0: str, cpu1: str = "1 0 1 1 0 0 0 0 0 0") -> None:
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "stat").write_text(
        STAT_TEMPLATE.format(total="0 0 0 0 0 0 0 0 0 0", cpu0=cpu0, cpu1=cpu1))


def cpu_values(collector: CpuCollector, cpu: str = "0") -> dict[str, float]:
    got = samples(collector.collect())
    return {dict(labels)["mode"]: value for (name, labels), value in got.items()
            if name == "node_cpu_seconds_total" and dict(labels)["cpu"] == cpu}


def test_parse_converts_user_hz_ticks_to_seconds_per_cpu() -> None:
    cpus, _ = parse_proc_stat(STAT_TEMPLATE.format(
        total="9 9 9 9 9 9 9 9 9 9",
        cpu0="101 2 303 40404 5 6 7 8 9 10",
        cpu1="1 0 1 1 0 0 0 0 0 0"))
    assert [c.cpu for c in cpus] == ["0", "1"]  # the aggregate "cpu" line is not a CPU
    assert cpus[0] == CpuTimes(cpu="0", user=1.01, nice=0.02, system=3.03, idle=404.04,
                               iowait=0.05, irq=0.06, softirq=0.07, steal=0.08, guest=0.09,
                               guest_nice=0.1)


def test_parse_orders_cpus_numerically_and_zero_fills_old_kernels_columns() -> None:
    text = STAT_TEMPLATE.replace("cpu0 {cpu0}\ncpu1 {cpu1}\n", "cpu10 1 2 3 4\ncpu2 5 6 7 8 9\n")
    cpus, _ = parse_proc_stat(text.format(total="0 0 0 0"))
    assert [c.cpu for c in cpus] == ["2", "10"]
    assert cpus[1].idle == 0.04 and cpus[1].iowait == 0.0 and cpus[1].guest_nice == 0.0
    assert cpus[0].iowait == 0.09 and cpus[0].steal == 0.0


@pytest.mark.parametrize("cpu0, message", [
    ("1 2 3", "cpu0 has 3 columns"),
    ("1 2 x 4 5 6 7 8 9 10", "line 2: cpu0 column 3 is not a whole number: 'x'"),
])
def test_parse_rejects_malformed_cpu_lines(cpu0: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_proc_stat(STAT_TEMPLATE.format(total="0 0 0 0", cpu0=cpu0, cpu1="1 2 3 4"))


def test_fixture_values_types_and_labels() -> None:
    families = collect(CpuCollector, linux_paths())
    assert set(families) == {"node_cpu_seconds", "node_cpu_guest_seconds"}
    assert all(f.type == "counter" for f in families.values())
    got = samples(families.values())
    # tests/fixtures/linux/proc/stat: cpu1 2610 8 1168 101926 244 3 21 7 4 2
    cpu1 = {m: got[("node_cpu_seconds_total", (("cpu", "1"), ("mode", m)))] for m in MODES}
    assert cpu1 == {"user": 26.1, "nice": 0.08, "system": 11.68, "idle": 1019.26,
                    "iowait": 2.44, "irq": 0.03, "softirq": 0.21, "steal": 0.07}
    assert got[("node_cpu_guest_seconds_total", (("cpu", "1"), ("mode", "user")))] == 0.04
    assert got[("node_cpu_guest_seconds_total", (("cpu", "1"), ("mode", "nice")))] == 0.02
    assert len(got) == 2 * len(MODES) + 2 * 2


def test_guest_option_off_drops_the_guest_family() -> None:
    families = collect(CpuCollector, linux_paths(), {"guest": False})
    assert set(families) == {"node_cpu_seconds"}


def test_counters_never_step_back_but_a_hotplug_restarts_them(tmp_path: Path) -> None:
    write_stat(tmp_path, "1000 0 500 90000 300 0 10 0 0 0")
    collector = CpuCollector(CollectorContext(paths=linux_paths(tmp_path)), {"guest": True})
    assert cpu_values(collector)["iowait"] == 3.0
    # iowait steps back a little (a known kernel quirk): the old value is held.
    write_stat(tmp_path, "1100 0 550 90100 290 0 11 0 0 0")
    assert cpu_values(collector) == {**dict.fromkeys(MODES, 0.0), "user": 11.0, "system": 5.5,
                                     "idle": 901.0, "iowait": 3.0, "softirq": 0.11}
    # idle drops by 3 s or more: the CPU was replugged, its counters start afresh.
    write_stat(tmp_path, "5 0 2 100 1 0 0 0 0 0")
    values = cpu_values(collector)
    assert values["idle"] == 1.0 and values["user"] == 0.05 and values["iowait"] == 0.01


def test_hold_monotonic_keeps_fields_windows_does_not_measure_absent() -> None:
    old = CpuTimes("0", 10.0, None, 5.0, 100.0, None, 1.0, 1.0, None, None, None)
    new = CpuTimes("0", 11.0, None, 4.0, 101.0, None, 2.0, 1.5, None, None, None)
    assert hold_monotonic(old, new) == CpuTimes("0", 11.0, None, 5.0, 101.0, None, 2.0, 1.5,
                                                None, None, None)


def test_a_changed_cpu_set_drops_the_held_values(tmp_path: Path) -> None:
    write_stat(tmp_path, "1000 0 500 90000 300 0 10 0 0 0")
    collector = CpuCollector(CollectorContext(paths=linux_paths(tmp_path)), {"guest": True})
    collector.collect()
    (tmp_path / "proc" / "stat").write_text(
        STAT_TEMPLATE.replace("cpu1 {cpu1}\n", "").format(total="0 0 0 0",
                                                           cpu0="900 0 400 89999 200 0 9 0 0 0"))
    values = cpu_values(collector)
    assert values["user"] == 9.0 and values["iowait"] == 2.0
    assert cpu_values(collector, "1") == {}


def test_malformed_stat_names_the_file(tmp_path: Path) -> None:
    shutil.copytree(LINUX / "proc", tmp_path / "proc")
    stat = tmp_path / "proc" / "stat"
    stat.write_text(stat.read_text().replace("cpu1 2610", "cpu1 26x0"))
    with pytest.raises(ValueError, match=f"{stat}: line 3: cpu1 column 1"):
        collect(CpuCollector, linux_paths(tmp_path))


def test_missing_stat_is_a_failure_not_nothing_to_watch(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    with pytest.raises(FileNotFoundError, match="stat"):
        collect(CpuCollector, linux_paths(tmp_path))


def test_windows_exports_only_the_modes_windows_measures() -> None:
    collector = CpuCollector(CollectorContext(), {"guest": True},
                             source=WindowsSource(psutil_module=FakePsutil()))
    families = {f.name: f for f in collector.collect()}
    assert set(families) == {"node_cpu_seconds"}  # Windows measures no guest time
    got = samples(families.values())
    # fake_psutil PER_CPU_TIMES[1]: user=1398.0625, system=802.5, idle=40520.4375,
    # interrupt=21.03125, dpc=8.984375
    assert {dict(k)["mode"]: v for (_, k), v in got.items() if dict(k)["cpu"] == "1"} == {
        "user": 1398.0625, "system": 802.5, "idle": 40520.4375, "irq": 21.03125,
        "softirq": 8.984375}
    assert {dict(k)["cpu"] for _, k in got} == {"0", "1"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this machine's /proc")
def test_live_this_machine() -> None:
    got = samples(collect(CpuCollector, settings={}).values())
    cpus = {dict(k)["cpu"] for name, k in got if name == "node_cpu_seconds_total"}
    assert cpus == {str(n) for n in range(len(cpus))} and len(cpus) == os.cpu_count()
    assert all(v >= 0 for v in got.values())
    boot = samples(collect(StatCollector, settings={}).values())[("node_boot_time_seconds", ())]
    uptime = time.time() - boot
    busy_and_idle = sum(v for (name, k), v in got.items()
                        if name == "node_cpu_seconds_total" and dict(k)["cpu"] == "0")
    # A CPU cannot account for more time than has passed since boot (1 s for rounding).
    assert 0 < busy_and_idle <= uptime + 1
