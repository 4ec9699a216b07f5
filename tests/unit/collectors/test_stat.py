"""stat: boot time, context switches, forks, interrupts, procs over fixtures, Windows, live."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.support import LINUX, collect, linux_paths, samples
from tests.unit.collectors.fake_psutil import FakePsutil
from totem_agent.collectors.base import CollectorContext
from totem_agent.collectors.platform._linux_system import parse_proc_stat
from totem_agent.collectors.platform._windows import WindowsSource
from totem_agent.collectors.platform.types import KernelStats
from totem_agent.collectors.stat import StatCollector

STAT = """\
cpu  1 2 3 4
cpu0 1 2 3 4
intr 161223 17 0 5
ctxt 323107
btime 1795425890
processes 6359
procs_running 2
procs_blocked 1
softirq 112770 0 17723
"""


def test_parse_reads_the_kernel_counters() -> None:
    _, stats = parse_proc_stat(STAT)
    assert stats == KernelStats(boot_time=1795425890, context_switches=323107,
                                interrupts=161223, forks=6359, procs_running=2,
                                procs_blocked=1)


@pytest.mark.parametrize("drop, message", [
    ("btime 1795425890\n", "no btime line"),
    ("procs_blocked 1\n", "no procs_blocked line"),
])
def test_parse_rejects_a_missing_counter_line(drop: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_proc_stat(STAT.replace(drop, ""))


def test_parse_rejects_a_counter_without_a_number() -> None:
    with pytest.raises(ValueError, match="line 4: ctxt is not a whole number: '3e5'"):
        parse_proc_stat(STAT.replace("ctxt 323107", "ctxt 3e5"))
    with pytest.raises(ValueError, match="line 5: btime has no value"):
        parse_proc_stat(STAT.replace("btime 1795425890", "btime"))


def test_fixture_values_and_types() -> None:
    families = collect(StatCollector, linux_paths())
    assert {name: f.type for name, f in families.items()} == {
        "node_boot_time_seconds": "gauge",
        "node_context_switches": "counter",
        "node_forks": "counter",
        "node_intr": "counter",
        "node_procs_running": "gauge",
        "node_procs_blocked": "gauge",
    }
    # tests/fixtures/linux/proc/stat
    assert samples(families.values()) == {
        ("node_boot_time_seconds", ()): 1795425890,
        ("node_context_switches_total", ()): 323107,
        ("node_forks_total", ()): 6359,
        ("node_intr_total", ()): 161223,
        ("node_procs_running", ()): 2,
        ("node_procs_blocked", ()): 1,
    }


def test_malformed_stat_names_the_file(tmp_path: Path) -> None:
    shutil.copytree(LINUX / "proc", tmp_path / "proc")
    stat = tmp_path / "proc" / "stat"
    stat.write_text(stat.read_text().replace("processes 6359\n", ""))
    with pytest.raises(ValueError, match=f"{stat}: no processes line"):
        collect(StatCollector, linux_paths(tmp_path))


def test_missing_stat_is_a_failure(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    with pytest.raises(FileNotFoundError, match="stat"):
        collect(StatCollector, linux_paths(tmp_path))


def test_windows_exports_boot_time_context_switches_and_interrupts() -> None:
    collector = StatCollector(CollectorContext(), {},
                              source=WindowsSource(psutil_module=FakePsutil()))
    assert samples(collector.collect()) == {
        # fake_psutil BOOT_TIME and CPU_STATS; Windows has no forks or procs_* figures.
        ("node_boot_time_seconds", ()): 1795400000.4812,
        ("node_context_switches_total", ()): 187654321,
        ("node_intr_total", ()): 98765432,
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this machine's /proc")
def test_live_this_machine() -> None:
    got = samples(collect(StatCollector, settings={}).values())
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    # btime is whole seconds, so boot time agrees with now - uptime to about a second.
    assert abs(got[("node_boot_time_seconds", ())] - (time.time() - uptime)) < 2
    assert got[("node_context_switches_total", ())] > 0
    assert got[("node_forks_total", ())] > 0
    assert got[("node_intr_total", ())] > 0
    assert got[("node_procs_running", ())] >= 1  # this test is running
    assert got[("node_procs_blocked", ())] >= 0
