"""udp_queues: /proc/net/udp{,6} parsing, node_exporter 1.5 parity, missing and
malformed files, and a real queued datagram on this machine."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support import collect, linux_paths, samples
from tests.unit.collectors.golden import assert_matches_node_exporter
from tests.unit.collectors.trees import fixture_text, make_tree
from totem_agent.collectors.base import CollectorContext, HostPaths, NoDataError
from totem_agent.collectors.udp_queues import QueueTotals, UdpQueuesCollector, parse_udp

HEADER = ("   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
          "timeout inode ref pointer drops\n")
LINE = (" 3561: 0100007F:890A 00000000:0000 07 {}:{} 00:00000000 00000000     0        0 11658 2 "
        "000000008d2b20c9 0\n")


def test_parse_sums_hex_queues() -> None:
    text = HEADER + LINE.format("00000010", "000009C0") + LINE.format("00000200", "00000000")
    assert parse_udp(text) == QueueTotals(tx=0x10 + 0x200, rx=0x9C0)
    assert parse_udp(HEADER) == QueueTotals(0, 0)


@pytest.mark.parametrize("text, message", [
    ("", "missing the 'sl local_address"),
    (HEADER + " 1: 0100007F:890A\n", "line 2: too few fields"),
    (HEADER + LINE.format("0000001G", "0"), "line 2: bad tx_queue:rx_queue"),
    (HEADER + " 1: a b 07 00000010 x\n", "line 2: bad tx_queue:rx_queue"),
])
def test_parse_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_udp(text)


def test_fixture_matches_node_exporter_1_5() -> None:
    families = collect(UdpQueuesCollector, linux_paths())
    assert assert_matches_node_exporter(families.values(), "node_udp_queues") == 4


def test_without_ipv6_only_v4_is_exported(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, {"proc/net/udp": fixture_text("proc/net/udp")})
    assert samples(collect(UdpQueuesCollector, paths).values()) == {
        ("node_udp_queues", (("ip", "v4"), ("queue", "tx"))): 512.0,
        ("node_udp_queues", (("ip", "v4"), ("queue", "rx"))): 2496.0}


def test_neither_file_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError):
        collect(UdpQueuesCollector, make_tree(tmp_path, {}))


def test_malformed_file_fails_naming_it(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, {"proc/net/udp6": "garbage\n"})
    with pytest.raises(ValueError, match="udp6: missing the 'sl"):
        collect(UdpQueuesCollector, paths)


def rx_v4() -> float:
    collector = UdpQueuesCollector(CollectorContext(paths=HostPaths()), {})
    return samples(collector.collect())[("node_udp_queues", (("ip", "v4"), ("queue", "rx")))]


def test_live_an_unread_datagram_shows_in_the_rx_queue() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        receiver.bind(("127.0.0.1", 0))
        for _ in range(3):
            sender.sendto(b"x" * 100, receiver.getsockname())
        # Loopback delivery is synchronous: the datagrams are queued once sendto returns.
        # The kernel accounts buffer truesize, more than the 300 payload bytes.
        assert rx_v4() >= 300
