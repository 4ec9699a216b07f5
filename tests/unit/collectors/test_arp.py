"""arp: node_arp_entries{device} from /proc/net/arp, malformed and missing, this machine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support import collect, samples
from tests.unit.collectors.golden import assert_matches_node_exporter
from tests.unit.collectors.trees import make_tree
from totem_agent.collectors.arp import ArpCollector, parse_arp
from totem_agent.collectors.base import HostPaths, NoDataError

HEADER = "IP address       HW type     Flags       HW address            Mask     Device\n"


def test_parse_counts_entries_per_device() -> None:
    text = HEADER + (
        "192.168.1.1      0x1         0x2         00:11:22:33:44:55     *        eth0\n"
        "192.168.1.20     0x1         0x0         00:00:00:00:00:00     *        eth0\n"
        "10.0.0.1         0x1         0x2         66:77:88:99:aa:bb     *        wlan0\n")
    assert parse_arp(text) == {"eth0": 2, "wlan0": 1}
    assert parse_arp(HEADER) == {}


def test_parse_rejects_a_short_line() -> None:
    with pytest.raises(ValueError, match="line 2: 5 columns, expected 6"):
        parse_arp(HEADER + "192.168.1.1 0x1 0x2 00:11:22:33:44:55 *\n")


def test_fixture_matches_node_exporter() -> None:
    families = collect(ArpCollector)
    assert assert_matches_node_exporter(families.values(), "node_arp_") == 1
    assert families["node_arp_entries"].type == "gauge"


def test_device_exclude_option() -> None:
    assert collect(ArpCollector, settings={"device_exclude": "^eth"}) == {}


def test_empty_table_exports_nothing(tmp_path: Path) -> None:
    assert collect(ArpCollector, make_tree(tmp_path, {"proc/net/arp": HEADER})) == {}


def test_missing_arp_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="net/arp"):
        collect(ArpCollector, make_tree(tmp_path, {}))


def test_malformed_arp_names_the_file(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, {"proc/net/arp": HEADER + "garbage\n"})
    with pytest.raises(ValueError, match="proc/net/arp: line 2"):
        collect(ArpCollector, paths)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this machine's /proc")
def test_live_this_machine() -> None:
    got = samples(collect(ArpCollector, HostPaths()).values())
    # The table changes under us (entries expire), so no exact count: every
    # device counted is a real interface with at least one entry.
    interfaces = {p.name for p in Path("/sys/class/net").iterdir()}
    assert {dict(k[1])["device"] for k in got} <= interfaces
    assert all(v >= 1 for v in got.values())
