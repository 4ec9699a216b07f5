"""netclass: /sys/class/net as node_exporter 1.5 exports it, attributes the kernel
will not read out (EINVAL on a down link's carrier), malformed and missing trees,
and this machine."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from tests.support import LINUX, collect, samples
from tests.unit.collectors.golden import assert_matches_node_exporter
from tests.unit.collectors.trees import copy_fixture, make_tree
from totem_agent.collectors.base import HostPaths, NoDataError
from totem_agent.collectors.netclass import (
    NUMERIC,
    NetclassCollector,
    families,
    go_int,
    list_interfaces,
    read_attribute,
    read_attributes,
)

NET = LINUX / "sys" / "class" / "net"


def test_fixture_matches_node_exporter() -> None:
    # tests/fixtures/linux/sys/class/net copies this machine's eth0, lo and two
    # down ifb devices (whose carrier, speed, duplex... answered EINVAL and so are
    # not in the copy); node_exporter 1.5 ran on the same tree.
    got = collect(NetclassCollector)
    names = ("node_network_up", "node_network_info", *(name for _, name, _ in NUMERIC))
    assert assert_matches_node_exporter(got.values(), *names) == 67


def test_types_follow_node_exporter() -> None:
    got = collect(NetclassCollector)
    assert got["node_network_carrier_changes"].type == "counter"
    assert got["node_network_mtu_bytes"].type == "gauge"
    assert all(f.documentation for f in got.values())


def test_unknown_speed_is_exported_unless_ignored() -> None:
    eth0 = (("device", "eth0"),)
    got = samples(collect(NetclassCollector).values())
    assert got[("node_network_speed_bytes", eth0)] == -125000  # speed -1, as 1.5 shows it
    got = samples(collect(NetclassCollector, settings={"ignore_invalid_speed": True}).values())
    assert ("node_network_speed_bytes", eth0) not in got


def test_families_from_literals() -> None:
    got = samples(families({
        "wlan0": {"operstate": "dormant", "address": "aa:bb:cc:dd:ee:ff", "ifalias": "till wifi",
                  "flags": "0x1003", "speed": "1000", "mtu": "1500", "carrier": "junk"},
    }))
    w = (("device", "wlan0"),)
    assert got[("node_network_up", w)] == 0  # only "up" is up
    assert got[("node_network_flags", w)] == 4099
    assert got[("node_network_speed_bytes", w)] == 125_000_000
    assert ("node_network_carrier", w) not in got  # unparsable: no series, as in 1.5
    assert got[("node_network_info", (("address", "aa:bb:cc:dd:ee:ff"), ("broadcast", ""),
                                      ("device", "wlan0"), ("duplex", ""),
                                      ("ifalias", "till wifi"), ("operstate", "dormant")))] == 1


@pytest.mark.parametrize("text, value", [
    ("0", 0), ("1500", 1500), ("-1", -1), ("0x1003", 4099), ("0X1f", 31), ("010", 8),
    ("0b11", 3), ("", None), ("12a", None), ("1.5", None), ("0x", None),
])
def test_go_int_parses_as_node_exporter(text: str, value: int | None) -> None:
    assert go_int(text) == value


def test_device_exclude_option() -> None:
    got = samples(collect(NetclassCollector, settings={"device_exclude": "^ifb"}).values())
    assert {dict(k[1])["device"] for k in got} == {"eth0", "lo"}


def test_interfaces_are_directories_or_symlinks_not_files(tmp_path: Path) -> None:
    (tmp_path / "eth0").mkdir()
    (tmp_path / "bonding_masters").write_text("bond0\n")
    os.symlink(tmp_path / "eth0", tmp_path / "eth1")
    assert list_interfaces(tmp_path) == ["eth0", "eth1"]


def test_attributes_skip_subdirectories_and_symlinks(tmp_path: Path) -> None:
    (tmp_path / "statistics").mkdir()
    (tmp_path / "mtu").write_text("1500\n")
    os.symlink(tmp_path / "mtu", tmp_path / "device")
    assert read_attributes(tmp_path) == {"mtu": "1500"}


def _einval_attribute() -> Path | None:
    """A real sysfs attribute that answers EINVAL right now (a down link's carrier)."""
    for name in ("carrier", "speed", "dormant", "name_assign_type"):
        for path in Path("/sys/class/net").glob(f"*/{name}"):
            try:
                path.read_bytes()
            except OSError as err:
                if err.errno == errno.EINVAL:
                    return path
    return None


def test_einval_attribute_is_left_out_not_zero() -> None:
    real = _einval_attribute()
    if real is None:
        pytest.skip("no network interface here answers EINVAL (no link is down)")
    # The kernel's own directory, so the read really fails with EINVAL.
    attributes = read_attributes(real.parent)
    assert real.name not in attributes and "mtu" in attributes
    got = samples(families({real.parent.name: attributes}))
    metric = {name: metric for name, metric, _ in NUMERIC}[real.name]
    assert (metric, (("device", real.parent.name),)) not in got
    assert ("node_network_mtu_bytes", (("device", real.parent.name),)) in got


def test_other_read_errors_are_raised_with_the_file(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=f"reading {tmp_path}"):
        read_attribute(tmp_path)  # a directory: EISDIR is not "the driver cannot say"


def test_missing_class_net_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="class/net"):
        collect(NetclassCollector, make_tree(tmp_path, {}))


def test_an_interface_with_no_attributes_still_has_up_and_info(tmp_path: Path) -> None:
    paths = copy_fixture(tmp_path, "sys/class/net/lo")
    (tmp_path / "sys" / "class" / "net" / "eth7").mkdir()
    got = samples(collect(NetclassCollector, paths).values())
    assert got[("node_network_up", (("device", "eth7"),))] == 0
    assert not any(dict(k[1]).get("device") == "eth7" and k[0] == "node_network_mtu_bytes"
                   for k in got)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this machine's /sys")
def test_live_this_machine() -> None:
    got = samples(collect(NetclassCollector, HostPaths()).values())
    devices = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.is_dir())
    assert sorted(dict(k[1])["device"] for k in got if k[0] == "node_network_up") == devices
    for device in devices:
        key = (("device", device),)
        assert got[("node_network_mtu_bytes", key)] > 0
        operstate = (Path("/sys/class/net") / device / "operstate").read_text().strip()
        assert got[("node_network_up", key)] == (operstate == "up")
