"""netstat: /proc/net/{netstat,snmp,snmp6} parsing, the fields regex, node_exporter 1.5
parity over the fixture tree, malformed and missing files, and this machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import collect, linux_paths, samples
from tests.unit.collectors.golden import assert_matches_node_exporter
from tests.unit.collectors.trees import fixture_text, make_tree
from totem_agent.collectors.base import CollectorContext, HostPaths, NoDataError
from totem_agent.collectors.netstat import (
    DEFAULT_FIELDS,
    NetstatCollector,
    netstat_families,
    parse_netstat,
    parse_snmp6,
)
from totem_agent.options import OptionError

SNMP = ("Tcp: RtoAlgorithm RtoMin MaxConn ActiveOpens InSegs CurrEstab\n"
        "Tcp: 1 200 -1 35 3495 2\n"
        "Udp: InDatagrams NoPorts\n"
        "Udp: 53 0\n")


def test_parse_netstat_pairs_header_and_value_lines() -> None:
    assert parse_netstat(SNMP) == {
        "Tcp": {"RtoAlgorithm": 1, "RtoMin": 200, "MaxConn": -1, "ActiveOpens": 35,
                "InSegs": 3495, "CurrEstab": 2},
        "Udp": {"InDatagrams": 53, "NoPorts": 0},
    }


@pytest.mark.parametrize("text, message", [
    ("Tcp: A B\nTcp: 1 2\nUdp: A\n", "odd number of lines"),
    ("Tcp: A B\nTcp: 1\n", "line 1: Tcp has 2 names but 1 values"),
    ("Tcp: A B\nUdp: 1 2\n", "line 2: values for 'Udp:' follow the 'Tcp:' header"),
    ("Tcp: A B\nTcp: 1 x\n", r"line 2 \(TcpB\): invalid value 'x'"),
])
def test_parse_netstat_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_netstat(text)


def test_parse_snmp6_splits_protocol_at_the_six() -> None:
    text = "Ip6InReceives  128\nIcmp6InMsgs 1\nUdpLite6InErrors 0\nIcmp6OutType133 9\n\n"
    assert parse_snmp6(text) == {"Ip6": {"InReceives": 128}, "Icmp6": {"InMsgs": 1,
                                                                         "OutType133": 9},
                                 "UdpLite6": {"InErrors": 0}}
    with pytest.raises(ValueError, match="line 1: invalid value"):
        parse_snmp6("Ip6InReceives lots\n")


def test_default_fields_pick_node_exporters_set_as_untyped() -> None:
    families = netstat_families(parse_netstat(SNMP), re.compile(DEFAULT_FIELDS))
    assert [f.name for f in families] == [
        "node_netstat_Tcp_ActiveOpens", "node_netstat_Tcp_CurrEstab", "node_netstat_Tcp_InSegs",
        "node_netstat_Udp_InDatagrams", "node_netstat_Udp_NoPorts"]
    assert {f.type for f in families} == {"unknown"}  # "untyped" in the text format
    assert families[0].documentation == "Statistic TcpActiveOpens."


def test_fixture_matches_node_exporter_1_5() -> None:
    families = collect(NetstatCollector, linux_paths())
    assert assert_matches_node_exporter(families.values(), "node_netstat_") == 40


def test_fields_option_selects_other_fields() -> None:
    families = collect(NetstatCollector, linux_paths(),
                       {"fields": "^(Tcp_MaxConn|TcpExt_TCPOFOQueue)$"})
    got = samples(families.values())
    assert got == {("node_netstat_Tcp_MaxConn", ()): -1.0,
                   ("node_netstat_TcpExt_TCPOFOQueue", ()): 0.0}


def test_fields_option_must_be_a_regex() -> None:
    with pytest.raises(OptionError, match="not a valid regular expression"):
        NetstatCollector.options["fields"].parse("^(Tcp")


def test_without_snmp6_ipv4_is_still_exported(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, {"proc/net/netstat": fixture_text("proc/net/netstat"),
                                 "proc/net/snmp": fixture_text("proc/net/snmp")})
    names = set(collect(NetstatCollector, paths))
    assert "node_netstat_Tcp_InSegs" in names
    assert not any(name.startswith(("node_netstat_Ip6", "node_netstat_Udp6")) for name in names)


def test_missing_netstat_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError):
        collect(NetstatCollector, make_tree(tmp_path, {}))


def test_malformed_file_fails_naming_it(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, {"proc/net/netstat": fixture_text("proc/net/netstat"),
                                 "proc/net/snmp": "Tcp: A B\nTcp: 1\n"})
    with pytest.raises(ValueError, match="net/snmp: line 1"):
        collect(NetstatCollector, paths)


def test_live_this_machine() -> None:
    settings = {"fields": DEFAULT_FIELDS}
    collector = NetstatCollector(CollectorContext(paths=HostPaths()), settings)
    got = {f.name: f for f in collector.collect()}
    for name in ("node_netstat_Tcp_InSegs", "node_netstat_Tcp_CurrEstab",
                 "node_netstat_IpExt_InOctets", "node_netstat_Udp_InDatagrams"):
        assert got[name].type == "unknown" and got[name].samples[0].value >= 0
