"""meminfo: node_memory_* over fixtures, malformed and missing files, Windows, live."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.support import LINUX, collect, linux_paths, samples
from tests.unit.collectors.fake_psutil import FakePsutil
from totem_agent.collectors.base import CollectorContext
from totem_agent.collectors.meminfo import MeminfoCollector
from totem_agent.collectors.platform._linux_system import parse_meminfo
from totem_agent.collectors.platform._windows import WindowsSource


def test_parse_names_fields_as_node_exporter() -> None:
    assert parse_meminfo(
        "MemTotal:       24684092 kB\n"
        "Active(anon):       1516 kB\n"
        "Inactive(file):    52388 kB\n"
        "\n"  # blank lines occur on some kernels
        "HugePages_Total:       7\n"
        "Hugepagesize:       2048 kB\n"
    ) == {
        "MemTotal_bytes": 24684092 * 1024.0,
        "Active_anon_bytes": 1516 * 1024.0,
        "Inactive_file_bytes": 52388 * 1024.0,
        "HugePages_Total": 7.0,  # unitless: no _bytes, no scaling
        "Hugepagesize_bytes": 2048 * 1024.0,
    }


@pytest.mark.parametrize("text, message", [
    ("MemTotal:  lots kB\n", "line 1: 'lots' is not a number"),
    ("MemFree:  1 kB\nMemTotal 123 kB\n", "line 2: expected 'Name: value"),
    ("MemTotal:\n", "line 1: expected 'Name: value"),
    ("MemTotal:  1 kB extra\n", "line 1: expected 'Name: value"),
    ("MemTotal:  1 MB\n", "line 1: unknown unit 'MB'"),
    ("", "no fields"),
])
def test_parse_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_meminfo(text)


def test_fixture_every_field_is_a_gauge_with_node_exporter_name() -> None:
    families = collect(MeminfoCollector, linux_paths())
    lines = (LINUX / "proc" / "meminfo").read_text().splitlines()
    assert len(families) == len(lines)
    assert all(f.type == "gauge" and f.documentation for f in families.values())
    got = samples(families.values())
    # Values from tests/fixtures/linux/proc/meminfo.
    assert got[("node_memory_MemTotal_bytes", ())] == 24684092 * 1024
    assert got[("node_memory_MemAvailable_bytes", ())] == 24341972 * 1024
    assert got[("node_memory_Active_anon_bytes", ())] == 1548 * 1024
    assert got[("node_memory_Inactive_file_bytes", ())] == 29996 * 1024
    assert got[("node_memory_VmallocTotal_bytes", ())] == 34359738367 * 1024
    assert got[("node_memory_Hugepagesize_bytes", ())] == 2048 * 1024
    assert ("node_memory_HugePages_Total", ()) in got
    assert not any(name.startswith("node_memory_HugePages_") and name.endswith("_bytes")
                   for name, _ in got)


def test_malformed_meminfo_names_the_file(tmp_path: Path) -> None:
    shutil.copytree(LINUX / "proc", tmp_path / "proc")
    meminfo = tmp_path / "proc" / "meminfo"
    meminfo.write_text(meminfo.read_text().replace("MemFree:        24378696 kB",
                                                   "MemFree:        24378696 kB 12"))
    with pytest.raises(ValueError, match=f"{meminfo}: line 2: expected 'Name: value"):
        collect(MeminfoCollector, linux_paths(tmp_path))


def test_missing_meminfo_is_a_failure(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    with pytest.raises(FileNotFoundError, match="meminfo"):
        collect(MeminfoCollector, linux_paths(tmp_path))


def test_windows_exports_only_what_psutil_measures() -> None:
    collector = MeminfoCollector(CollectorContext(), {},
                                 source=WindowsSource(psutil_module=FakePsutil()))
    assert samples(collector.collect()) == {
        # fake_psutil VIRTUAL_MEMORY and SWAP_MEMORY
        ("node_memory_MemTotal_bytes", ()): 8469987328,
        ("node_memory_MemFree_bytes", ()): 5147426816,
        ("node_memory_MemAvailable_bytes", ()): 5147426816,
        ("node_memory_SwapTotal_bytes", ()): 1342177280,
        ("node_memory_SwapFree_bytes", ()): 1207959552,
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this machine's /proc")
def test_live_this_machine() -> None:
    got = samples(collect(MeminfoCollector, settings={}).values())
    fields = [line.split(":")[0] for line in Path("/proc/meminfo").read_text().splitlines()]
    assert len(got) == len(fields)
    total = got[("node_memory_MemTotal_bytes", ())]
    assert total > 64 * 1024 * 1024
    assert 0 < got[("node_memory_MemAvailable_bytes", ())] <= total
    assert 0 < got[("node_memory_MemFree_bytes", ())] <= total
