"""conntrack: table size and per-CPU statistics, node_exporter 1.5 parity, the module
not loaded, kernels without the stat file, malformed files, and this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import collect, linux_paths, samples
from tests.unit.collectors.golden import assert_matches_node_exporter
from tests.unit.collectors.trees import make_tree
from totem_agent.collectors.base import CollectorContext, HostPaths, NoDataError
from totem_agent.collectors.conntrack import ConntrackCollector, parse_conntrack_stat

# The column set of kernels before 5.x (searched, delete_list) and after (clashres,
# chainlength): values are summed by column name, not position.
OLD_HEADER = ("entries  searched found new invalid ignore delete delete_list insert "
              "insert_failed drop early_drop icmp_error  expect_new expect_create "
              "expect_delete search_restart\n")
TABLE = {"proc/sys/net/netfilter/nf_conntrack_count": "12\n",
         "proc/sys/net/netfilter/nf_conntrack_max": "65536\n"}


def test_parse_sums_columns_over_cpus_by_name() -> None:
    cpu0 = " ".join(f"{i:08x}" for i in range(17))
    cpu1 = " ".join(f"{16 * i:08x}" for i in range(17))
    totals = parse_conntrack_stat(OLD_HEADER + cpu0 + "\n" + cpu1 + "\n")
    assert totals["found"] == 2 + 32
    assert totals["insert_failed"] == 9 + 144
    assert totals["search_restart"] == 16 + 256


@pytest.mark.parametrize("text, message", [
    ("", "empty file"),
    ("entries found\n00000001\n", "line 2: 1 values for 2 columns"),
    ("entries found\n00000001 zz\n", "line 2: found is not hexadecimal"),
])
def test_parse_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_conntrack_stat(text)


def test_fixture_matches_node_exporter_1_5() -> None:
    # The fixture's two CPU lines hold a different value in every column, so a column
    # read from the wrong position would show here.
    families = collect(ConntrackCollector, linux_paths())
    assert assert_matches_node_exporter(families.values(), "node_nf_conntrack_") == 10


def test_module_not_loaded_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="nf_conntrack not loaded"):
        collect(ConntrackCollector, make_tree(tmp_path, {}))


def test_without_stat_file_the_table_size_is_still_exported(tmp_path: Path) -> None:
    got = samples(collect(ConntrackCollector, make_tree(tmp_path, TABLE)).values())
    assert got == {("node_nf_conntrack_entries", ()): 12.0,
                   ("node_nf_conntrack_entries_limit", ()): 65536.0}


def test_malformed_files_fail_naming_them(tmp_path: Path) -> None:
    paths = make_tree(tmp_path / "a", {**TABLE, "proc/net/stat/nf_conntrack": "entries\nxyz\n"})
    with pytest.raises(ValueError, match="nf_conntrack: line 2"):
        collect(ConntrackCollector, paths)
    paths = make_tree(tmp_path / "b", {**TABLE,
                                       "proc/sys/net/netfilter/nf_conntrack_max": "many\n"})
    with pytest.raises(ValueError, match="nf_conntrack_max: expected a whole number"):
        collect(ConntrackCollector, paths)


def test_live_this_machine() -> None:
    collector = ConntrackCollector(CollectorContext(paths=HostPaths()), {})
    if not Path("/proc/sys/net/netfilter/nf_conntrack_count").exists():
        with pytest.raises(NoDataError):
            collector.collect()
        return
    got = {f.name: f.samples[0].value for f in collector.collect()}
    assert 0 <= got["node_nf_conntrack_entries"] <= got["node_nf_conntrack_entries_limit"]
