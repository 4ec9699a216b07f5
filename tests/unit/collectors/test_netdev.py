"""netdev: /proc/net/dev as node_exporter 1.5 exports it (plus rx_nohandler from
sysfs), the exclude option, malformed and missing files, Windows, this machine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support import collect, samples
from tests.unit.collectors.fake_psutil_io import NET_IO, FakePsutilIO
from tests.unit.collectors.golden import assert_matches_node_exporter
from tests.unit.collectors.trees import copy_fixture, fixture_text, make_tree
from totem_agent.collectors.base import CollectorContext, HostPaths, NoDataError
from totem_agent.collectors.netdev import KNOWN_KEYS, NetdevCollector
from totem_agent.collectors.platform._linux_devices import parse_net_dev
from totem_agent.collectors.platform._windows import WindowsSource

HEADER = ("Inter-|   Receive                                                |  Transmit\n"
          " face |bytes    packets errs drop fifo frame compressed multicast|"
          "bytes    packets errs drop fifo colls carrier compressed\n")
NOHANDLER = "node_network_receive_nohandler_total"


def test_parse_names_counters_from_the_header() -> None:
    text = HEADER + ("    lo:  310958     253    0    0    0     0          0         0"
                     "   310958     253    0    0    0     0       0          0\n"
                     "  eth0:97369251    3361    1    2    3     4          5         6"
                     "   152797    1733    7    8    9    10      11         12\n")
    got = parse_net_dev(text)
    assert list(got) == ["lo", "eth0"]
    assert got["eth0"] == {
        "receive_bytes": 97369251, "receive_packets": 3361, "receive_errs": 1,
        "receive_drop": 2, "receive_fifo": 3, "receive_frame": 4, "receive_compressed": 5,
        "receive_multicast": 6, "transmit_bytes": 152797, "transmit_packets": 1733,
        "transmit_errs": 7, "transmit_drop": 8, "transmit_fifo": 9, "transmit_colls": 10,
        "transmit_carrier": 11, "transmit_compressed": 12,
    }


@pytest.mark.parametrize("text, message", [
    ("Inter-|   Receive\n face |bytes packets\n", "invalid header line"),
    ("", "no header lines"),
    (HEADER + "  eth0: 1 2 3\n", "eth0: 3 values for 16 columns"),
    (HEADER + "  eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", "no interface name"),
    (HEADER + "  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n", "not a whole number"),
])
def test_parse_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_net_dev(text)


def test_fixture_matches_node_exporter() -> None:
    # node_exporter 1.5 read the same /proc/net/dev (--no-collector.netdev.netlink);
    # receive_nohandler it has only through netlink, so here it is ours alone.
    families = collect(NetdevCollector)
    stems = tuple(f"node_network_{key}_total" for key in KNOWN_KEYS)
    assert assert_matches_node_exporter(families.values(), *stems, extra=[NOHANDLER]) == 64
    assert all(f.type == "counter" for f in families.values())


def test_nohandler_comes_from_sysfs() -> None:
    got = samples(collect(NetdevCollector).values())
    assert {dict(k[1])["device"] for k in got if k[0] == NOHANDLER} == \
        {"lo", "eth0", "ifb0", "ifb1"}


def test_nohandler_absent_without_sysfs(tmp_path: Path) -> None:
    got = samples(collect(NetdevCollector, copy_fixture(tmp_path, "proc/net/dev")).values())
    assert not any(k[0] == NOHANDLER for k in got)
    assert got[("node_network_receive_bytes_total", (("device", "eth0"),))] > 0


def test_device_exclude_option() -> None:
    got = samples(collect(NetdevCollector, settings={"device_exclude": "^(lo|ifb\\d+)$"})
                  .values())
    assert {dict(k[1])["device"] for k in got} == {"eth0"}
    # The default leaves none out, lo included (Debian's packaged node_exporter
    # excludes lo; upstream 1.5 does not).
    got = samples(collect(NetdevCollector).values())
    assert {dict(k[1])["device"] for k in got} == {"lo", "eth0", "ifb0", "ifb1"}


def test_missing_net_dev_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="net/dev"):
        collect(NetdevCollector, make_tree(tmp_path, {}))


def test_malformed_net_dev_names_the_file(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, {"proc/net/dev": fixture_text("proc/net/dev")
                                 .replace("eth0:", "eth0")})
    with pytest.raises(ValueError, match="proc/net/dev: no interface name"):
        collect(NetdevCollector, paths)


def test_windows_counts_what_psutil_has() -> None:
    collector = NetdevCollector(CollectorContext(), {"device_exclude": "^Loopback"},
                                source=WindowsSource(psutil_module=FakePsutilIO()))
    got = samples(collector.collect())
    eth = (("device", "Ethernet"),)
    io = NET_IO["Ethernet"]
    assert got == {
        ("node_network_receive_bytes_total", eth): io.bytes_recv,
        ("node_network_receive_packets_total", eth): io.packets_recv,
        ("node_network_receive_errs_total", eth): io.errin,
        ("node_network_receive_drop_total", eth): io.dropin,
        ("node_network_transmit_bytes_total", eth): io.bytes_sent,
        ("node_network_transmit_packets_total", eth): io.packets_sent,
        ("node_network_transmit_errs_total", eth): io.errout,
        ("node_network_transmit_drop_total", eth): io.dropout,
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this machine's /proc")
def test_live_this_machine() -> None:
    got = samples(collect(NetdevCollector, HostPaths()).values())
    listed = {line.split(":")[0].strip()
              for line in Path("/proc/net/dev").read_text().splitlines()[2:]}
    assert {dict(k[1])["device"] for k in got} == listed
    assert got[("node_network_receive_bytes_total", (("device", "lo"),))] >= 0
    assert all(v >= 0 for v in got.values())
