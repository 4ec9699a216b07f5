"""softnet: node_softnet_*_total{cpu} from /proc/net/softnet_stat (hexadecimal),
old and new kernels' column counts, malformed and missing, this machine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support import collect, samples
from tests.unit.collectors.golden import assert_matches_node_exporter
from tests.unit.collectors.trees import make_tree
from totem_agent.collectors.base import HostPaths, NoDataError
from totem_agent.collectors.softnet import SoftnetCollector, SoftnetRow, parse_softnet

# A 6.x kernel prints 15 columns (the 13th is the CPU number), a 4.x kernel 11.
NEW = ("0000003c 00000002 00000001 00000000 00000000 00000000 00000000 00000000 00000000 "
       "00000000 00000000 00000000 00000000 00000000 00000000\n"
       "00000de2 00000000 0000001f 00000000 00000000 00000000 00000000 00000000 00000000 "
       "00000000 00000000 00000000 00000001 00000000 00000000\n")
OLD = ("0001e0a4 00000000 00000010 00000000 00000000 00000000 00000000 00000000 00000000 "
       "00000000 00000000\n")


def test_parse_reads_hexadecimal_columns() -> None:
    assert parse_softnet(NEW) == [SoftnetRow(60, 2, 1), SoftnetRow(3554, 0, 31)]
    assert parse_softnet(OLD) == [SoftnetRow(0x1E0A4, 0, 16)]


@pytest.mark.parametrize("text, message", [
    ("0000003c 00000000 00000000\n", "line 1: 3 columns, expected at least 9"),
    ("0000003c 0000000g" + " 00000000" * 9 + "\n", "line 1: not hexadecimal"),
])
def test_parse_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_softnet(text)


def test_fixture_matches_node_exporter() -> None:
    families = collect(SoftnetCollector)
    assert assert_matches_node_exporter(families.values(), "node_softnet_") == 6
    assert all(f.type == "counter" for f in families.values())


def test_cpu_label_is_the_row_position_as_in_1_5(tmp_path: Path) -> None:
    # Even where the kernel's own CPU column says 1 for the second row.
    got = samples(collect(SoftnetCollector, make_tree(tmp_path, {"proc/net/softnet_stat": NEW}))
                  .values())
    assert got[("node_softnet_times_squeezed_total", (("cpu", "1"),))] == 31
    assert got[("node_softnet_dropped_total", (("cpu", "0"),))] == 2


def test_missing_softnet_stat_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="softnet_stat"):
        collect(SoftnetCollector, make_tree(tmp_path, {}))


def test_malformed_softnet_stat_names_the_file(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, {"proc/net/softnet_stat": NEW + "zz\n"})
    with pytest.raises(ValueError, match="proc/net/softnet_stat: line 3"):
        collect(SoftnetCollector, paths)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this machine's /proc")
def test_live_this_machine() -> None:
    got = samples(collect(SoftnetCollector, HostPaths()).values())
    rows = len(Path("/proc/net/softnet_stat").read_text().splitlines())
    assert len([k for k in got if k[0] == "node_softnet_processed_total"]) == rows
    assert all(v >= 0 for v in got.values())
