"""vmstat: /proc/vmstat parsing, the fields regex, node_exporter 1.5 parity, and this
machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import collect, linux_paths, samples
from tests.unit.collectors.golden import assert_matches_node_exporter
from tests.unit.collectors.trees import make_tree
from totem_agent.collectors.base import CollectorContext, HostPaths, NoDataError
from totem_agent.collectors.vmstat import DEFAULT_FIELDS, VmstatCollector, parse_vmstat
from totem_agent.options import OptionError


def test_parse() -> None:
    assert parse_vmstat("nr_free_pages 1057397\npgfault 1704209\n\n") == {
        "nr_free_pages": 1057397.0, "pgfault": 1704209.0}


@pytest.mark.parametrize("text, message", [
    ("pgfault\n", "line 1: expected 'name value'"),
    ("pgfault 1 2\n", "line 1: expected 'name value'"),
    ("pgfault 1\npgmajfault many\n", "line 2: invalid value for pgmajfault"),
])
def test_parse_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_vmstat(text)


def test_fixture_matches_node_exporter_1_5() -> None:
    families = collect(VmstatCollector, linux_paths())
    assert assert_matches_node_exporter(families.values(), "node_vmstat_") == 7
    assert {f.type for f in families.values()} == {"unknown"}


def test_fields_option() -> None:
    got = samples(collect(VmstatCollector, linux_paths(), {"fields": "^nr_dirty$"}).values())
    assert got == {("node_vmstat_nr_dirty", ()): 147.0}
    with pytest.raises(OptionError):
        VmstatCollector.options["fields"].parse("(")


def test_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(NoDataError):
        collect(VmstatCollector, make_tree(tmp_path / "a", {}))
    with pytest.raises(ValueError, match="vmstat: line 1"):
        collect(VmstatCollector, make_tree(tmp_path / "b", {"proc/vmstat": "pgfault x\n"}))


def test_live_this_machine() -> None:
    collector = VmstatCollector(CollectorContext(paths=HostPaths()), {"fields": DEFAULT_FIELDS})
    got = {f.name: f.samples[0].value for f in collector.collect()}
    assert got["node_vmstat_pgfault"] > 0
    assert {"node_vmstat_pgpgin", "node_vmstat_pswpin", "node_vmstat_oom_kill",
            "node_vmstat_pgmajfault"} <= set(got)
