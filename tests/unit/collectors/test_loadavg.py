from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import collect, samples
from totem_agent.collectors.base import HostPaths
from totem_agent.collectors.loadavg import LoadavgCollector
from totem_agent.collectors.platform._linux import parse_loadavg


def test_parse_loadavg() -> None:
    assert parse_loadavg("0.21 0.06 0.02 4/88 1755\n") == (0.21, 0.06, 0.02)


@pytest.mark.parametrize("text", ["", "0.1 0.2", "this is not a load"])
def test_malformed_loadavg_names_the_file(tmp_path: Path, text: str) -> None:
    (tmp_path / "loadavg").write_text(text)
    with pytest.raises(ValueError, match=r"loadavg: expected three load averages"):
        collect(LoadavgCollector, HostPaths(procfs=tmp_path))


def test_live() -> None:
    values = samples(collect(LoadavgCollector, HostPaths()).values())
    assert {name for name, _ in values} == {"node_load1", "node_load5", "node_load15"}
    assert all(v >= 0 for v in values.values())
