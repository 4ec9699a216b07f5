"""entropy: /proc/sys/kernel/random, node_exporter 1.5 parity, malformed and missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import collect, linux_paths
from tests.unit.collectors.golden import assert_matches_node_exporter
from tests.unit.collectors.trees import make_tree
from totem_agent.collectors.base import CollectorContext, HostPaths, NoDataError
from totem_agent.collectors.entropy import EntropyCollector, parse_int_file


def test_parse() -> None:
    assert parse_int_file("256\n") == 256.0
    with pytest.raises(ValueError, match="expected a whole number"):
        parse_int_file("plenty\n")


def test_fixture_matches_node_exporter_1_5_spelling_included() -> None:
    families = collect(EntropyCollector, linux_paths())
    # `_bits` is node_exporter's spelling (promtool lints it); kept for the dashboards.
    assert set(families) == {"node_entropy_available_bits", "node_entropy_pool_size_bits"}
    assert assert_matches_node_exporter(families.values(), "node_entropy_") == 2


def test_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(NoDataError):
        collect(EntropyCollector, make_tree(tmp_path / "a", {}))
    paths = make_tree(tmp_path / "b", {"proc/sys/kernel/random/entropy_avail": "256\n",
                                       "proc/sys/kernel/random/poolsize": "\n"})
    with pytest.raises(ValueError, match="poolsize: expected a whole number"):
        collect(EntropyCollector, paths)


def test_live_this_machine() -> None:
    got = {f.name: f.samples[0].value
           for f in EntropyCollector(CollectorContext(paths=HostPaths()), {}).collect()}
    assert 0 <= got["node_entropy_available_bits"] <= got["node_entropy_pool_size_bits"]
    assert got["node_entropy_pool_size_bits"] > 0
