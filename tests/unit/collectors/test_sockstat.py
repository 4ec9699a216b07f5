"""sockstat: /proc/net/sockstat{,6} parsing, node_exporter 1.5 parity, page size,
missing and malformed files, and this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import collect, linux_paths, samples
from tests.unit.collectors.golden import assert_matches_node_exporter
from tests.unit.collectors.trees import fixture_text, make_tree
from totem_agent.collectors.base import CollectorContext, HostPaths, NoDataError
from totem_agent.collectors.sockstat import Sockstat, SockstatCollector, parse_sockstat


def test_parse_reads_used_and_protocol_pairs() -> None:
    text = "sockets: used 14\nTCP: inuse 2 orphan 1 tw 30 alloc 3 mem 3\nFRAG: inuse 0 memory 0\n"
    assert parse_sockstat(text) == Sockstat(used=14, protocols={
        "TCP": {"inuse": 2, "orphan": 1, "tw": 30, "alloc": 3, "mem": 3},
        "FRAG": {"inuse": 0, "memory": 0}})


@pytest.mark.parametrize("text, message", [
    ("TCP:\n", "line 1: expected 'PROTO: key value"),
    ("TCP: inuse 2 orphan\n", "line 1: expected 'PROTO: key value"),
    ("TCP: inuse two\n", "line 1: inuse is not a whole number"),
    ("sockets: free 3\n", "line 1: 'sockets:' line without 'used'"),
])
def test_parse_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_sockstat(text)


def test_fixture_matches_node_exporter_1_5() -> None:
    # node_exporter ran on a 4 KiB-page machine, as the default here does.
    families = collect(SockstatCollector, linux_paths())
    assert assert_matches_node_exporter(families.values(), "node_sockstat_") == 20


def test_mem_bytes_uses_the_page_size() -> None:
    collector = SockstatCollector(CollectorContext(paths=linux_paths()), {}, page_size=16384)
    got = samples(collector.collect())
    assert got[("node_sockstat_TCP_mem", ())] == 3
    assert got[("node_sockstat_TCP_mem_bytes", ())] == 3 * 16384
    assert got[("node_sockstat_UDP_mem_bytes", ())] == 2 * 16384
    assert ("node_sockstat_FRAG_mem_bytes", ()) not in got  # FRAG has memory, not mem


def test_without_ipv6_only_ipv4_is_exported(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, {"proc/net/sockstat": fixture_text("proc/net/sockstat")})
    names = set(collect(SockstatCollector, paths))
    assert "node_sockstat_sockets_used" in names and "node_sockstat_TCP_inuse" in names
    assert "node_sockstat_TCP6_inuse" not in names


def test_neither_file_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError):
        collect(SockstatCollector, make_tree(tmp_path, {}))


def test_malformed_file_fails_naming_it(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, {"proc/net/sockstat": fixture_text("proc/net/sockstat"),
                                 "proc/net/sockstat6": "TCP6: inuse\n"})
    with pytest.raises(ValueError, match="sockstat6: line 1"):
        collect(SockstatCollector, paths)


def test_live_this_machine() -> None:
    got = {f.name: f for f in SockstatCollector(CollectorContext(paths=HostPaths()),
                                                {}).collect()}
    assert got["node_sockstat_sockets_used"].samples[0].value > 0
    for name in ("node_sockstat_TCP_inuse", "node_sockstat_TCP_mem_bytes",
                 "node_sockstat_UDP_inuse", "node_sockstat_FRAG_memory"):
        assert got[name].type == "gauge" and got[name].samples[0].value >= 0
