"""pressure: PSI totals over the fixture tree, node_exporter 1.5 parity, missing and
malformed files, and this machine's /proc/pressure."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import collect, linux_paths, samples
from tests.unit.collectors.golden import assert_matches_node_exporter
from tests.unit.collectors.trees import make_tree
from totem_agent.collectors.base import CollectorContext, HostPaths, NoDataError
from totem_agent.collectors.pressure import PressureCollector, PressureTotals, parse_pressure

# Series node_exporter 1.5 does not read; exported here when the kernel has them.
EXTRA = ("node_pressure_cpu_stalled_seconds_total", "node_pressure_irq_stalled_seconds_total")
LINE = "some avg10=0.00 avg60=0.02 avg300=0.01 total={}\n"
FULL = "full avg10=0.00 avg60=0.02 avg300=0.00 total={}\n"


def test_parse_converts_microseconds_to_seconds_as_node_exporter() -> None:
    totals = parse_pressure(LINE.format(2353432) + FULL.format(2235616))
    # node_exporter divides by 1000 twice; the float must be the same bit for bit.
    assert totals == PressureTotals(some=2353432 / 1000.0 / 1000.0, full=2.235616)
    assert totals.some == 2.3534319999999997


def test_parse_accepts_cpu_without_full_and_irq_with_full_only() -> None:
    assert parse_pressure(LINE.format(5)) == PressureTotals(some=5e-6, full=None)
    assert parse_pressure(FULL.format(4242)) == PressureTotals(some=None, full=0.004242)


@pytest.mark.parametrize("text, message", [
    ("", "no 'some' or 'full' line"),
    ("partial avg10=0.00 total=1\n", "line 1: expected 'some' or 'full'"),
    ("some avg10=0.00 avg60=0.00 avg300=0.00\n", "line 1: no total= field"),
    (LINE.format(1) + "full avg10=0.00 total=lots\n", "line 2: total is not a whole number"),
])
def test_parse_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pressure(text)


def test_fixture_matches_node_exporter_1_5_plus_cpu_full_and_irq() -> None:
    families = collect(PressureCollector, linux_paths())
    assert_matches_node_exporter(families.values(), "node_pressure_", extra=EXTRA)
    got = samples(families.values())
    assert got[("node_pressure_cpu_stalled_seconds_total", ())] == 1500 / 1e6
    assert got[("node_pressure_irq_stalled_seconds_total", ())] == 4242 / 1e6
    assert all(f.type == "counter" for f in families.values())


def test_without_irq_file_the_rest_is_exported(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, {"proc/pressure/cpu": LINE.format(1_000_000),
                                 "proc/pressure/io": LINE.format(2) + FULL.format(1),
                                 "proc/pressure/memory": LINE.format(0) + FULL.format(0)})
    got = samples(collect(PressureCollector, paths).values())
    assert got[("node_pressure_cpu_waiting_seconds_total", ())] == 1.0
    # A pre-5.13 cpu file has no full line, hence no cpu_stalled series.
    assert {name for name, _ in got} == {
        "node_pressure_cpu_waiting_seconds_total", "node_pressure_io_waiting_seconds_total",
        "node_pressure_io_stalled_seconds_total", "node_pressure_memory_waiting_seconds_total",
        "node_pressure_memory_stalled_seconds_total"}


def test_no_pressure_directory_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="pressure does not exist"):
        collect(PressureCollector, make_tree(tmp_path, {}))


def test_empty_pressure_directory_is_no_data(tmp_path: Path) -> None:
    (tmp_path / "proc" / "pressure").mkdir(parents=True)
    with pytest.raises(NoDataError, match="has none of cpu, io, memory, irq"):
        collect(PressureCollector, make_tree(tmp_path, {}))


def test_malformed_file_fails_naming_it(tmp_path: Path) -> None:
    paths = make_tree(tmp_path, {"proc/pressure/cpu": LINE.format(1),
                                 "proc/pressure/io": "some total=x\n"})
    with pytest.raises(ValueError, match=r"pressure/io: line 1: total is not a whole number"):
        collect(PressureCollector, paths)


def test_live_this_machine() -> None:
    if not Path("/proc/pressure").is_dir():
        with pytest.raises(NoDataError):
            list(PressureCollector(CollectorContext(paths=HostPaths()), {}).collect())
        return
    families = {f.name: f for f in PressureCollector(CollectorContext(paths=HostPaths()),
                                                     {}).collect()}
    for name in ("node_pressure_cpu_waiting_seconds", "node_pressure_io_waiting_seconds",
                 "node_pressure_memory_stalled_seconds"):
        assert families[name].type == "counter"
        assert families[name].samples[0].value >= 0
