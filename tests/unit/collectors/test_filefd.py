"""filefd: /proc/sys/fs/file-nr, node_exporter 1.5 parity, malformed and missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import collect, linux_paths
from tests.unit.collectors.golden import assert_matches_node_exporter
from tests.unit.collectors.trees import make_tree
from totem_agent.collectors.base import CollectorContext, HostPaths, NoDataError
from totem_agent.collectors.filefd import FilefdCollector, FileNr, parse_file_nr


def test_parse_skips_the_always_zero_middle_field() -> None:
    assert parse_file_nr("465\t0\t2466177\n") == FileNr(allocated=465, maximum=2466177)


@pytest.mark.parametrize("text, message", [
    ("465\t0\n", "expected 3 fields, got 2"),
    ("a\t0\tb\n", "not numbers"),
])
def test_parse_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_file_nr(text)


def test_fixture_matches_node_exporter_1_5() -> None:
    families = collect(FilefdCollector, linux_paths())
    assert assert_matches_node_exporter(families.values(), "node_filefd_") == 2


def test_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(NoDataError):
        collect(FilefdCollector, make_tree(tmp_path / "a", {}))
    with pytest.raises(ValueError, match="file-nr: expected 3 fields"):
        collect(FilefdCollector, make_tree(tmp_path / "b", {"proc/sys/fs/file-nr": "1\n"}))


def test_live_this_machine() -> None:
    got = {f.name: f.samples[0].value
           for f in FilefdCollector(CollectorContext(paths=HostPaths()), {}).collect()}
    assert 0 < got["node_filefd_allocated"] <= got["node_filefd_maximum"]
