"""History for the status page: chart points derived from a real buffer (SQLite in tmp)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from totem_agent.buffer import Buffer
from totem_agent.history import MAX_POINTS, History, disk_mount, downsample

T0 = 1_795_000_000_000  # ms
STEP = 15_000


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


def cycle(i: int, *, idle: float, busy: float, events: float, failures: float,
          pending: float | None = None) -> list[tuple[str, dict[str, str], float]]:
    samples = [
        ("node_cpu_seconds_total", {"cpu": "0", "mode": "idle"}, idle),
        ("node_cpu_seconds_total", {"cpu": "0", "mode": "user"}, busy),
        ("node_memory_MemAvailable_bytes", {}, 250.0),
        ("node_memory_MemTotal_bytes", {}, 1000.0),
        ("node_filesystem_avail_bytes", {"mountpoint": "/", "device": "sda1"}, 40.0),
        ("node_filesystem_size_bytes", {"mountpoint": "/", "device": "sda1"}, 100.0),
        ("node_filesystem_avail_bytes", {"mountpoint": "/boot", "device": "sda2"}, 1.0),
        ("node_filesystem_size_bytes", {"mountpoint": "/boot", "device": "sda2"}, 10.0),
        ("totem_agent_events_accepted_total", {}, events),
        ("totem_agent_collector_failures_total", {"collector": "cpu", "reason": "error"},
         failures),
        ("totem_agent_collector_failures_total", {"collector": "hwmon", "reason": "timeout"},
         0.0),
        ("node_load1", {}, float(i)),  # not charted: ignored
    ]
    if pending is not None:
        samples.append(("totem_agent_buffer_pending_samples", {"destination": "central"},
                        pending))
    return samples


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[Buffer]:
    with Buffer.open(tmp_path / "buffer.sqlite", chunk_cycles=4) as buf:
        yield buf


def fill(buffer: Buffer, n: int, start: int = 0) -> None:
    """n cycles 15 s apart: CPU 25 % busy, 2 events and 1 failure per cycle (8 and 4 /min)."""
    for i in range(start, start + n):
        buffer.append(T0 + i * STEP, cycle(i, idle=30.0 * i, busy=10.0 * i, events=2.0 * i,
                                            failures=1.0 * i, pending=100.0 + i))


def chart(report: dict, chart_id: str) -> dict[str, list[list[float]]]:
    found = next(c for c in report["charts"] if c["id"] == chart_id)
    return {s["name"]: s["points"] for s in found["series"]}


def test_every_chart_from_the_buffer(buffer: Buffer) -> None:
    fill(buffer, 10)
    history = History(lambda: buffer, clock=Clock(T0 + 10 * STEP))
    report = history.report(hours=1)
    assert report["available"] is True and report["reason"] is None
    cpu = chart(report, "cpu")["busy"]
    assert len(cpu) == 9  # a rate needs two cycles
    assert {v for _, v in cpu} == {25.0}
    assert [t for t, _ in cpu] == [T0 + i * STEP for i in range(1, 10)]
    assert {v for _, v in chart(report, "memory")["used"]} == {75.0}
    assert {v for _, v in chart(report, "disk")["/"]} == {60.0}  # "/", not the larger-% /boot
    assert [v for _, v in chart(report, "backlog")["central"]] == [100.0 + i for i in range(10)]
    assert {v for _, v in chart(report, "events")["total"]} == {8.0}
    assert {v for _, v in chart(report, "failures")["total"]} == {4.0}


def test_counter_reset_counts_from_zero(buffer: Buffer) -> None:
    fill(buffer, 3)
    # The agent restarted: its counters start again near zero.
    buffer.append(T0 + 3 * STEP, cycle(3, idle=120, busy=40, events=1.0, failures=0.0))
    history = History(lambda: buffer, clock=Clock(T0 + 4 * STEP))
    events = chart(history.report(hours=1), "events")["total"]
    assert [v for _, v in events] == [8.0, 8.0, 4.0]  # 1 event in 15 s = 4 / min
    assert all(v >= 0 for _, v in chart(history.report(hours=1), "failures")["total"])


def test_refresh_reads_only_new_cycles_and_keeps_points_the_buffer_deleted(
        buffer: Buffer) -> None:
    clock = Clock(T0 + 5 * STEP)
    fill(buffer, 5)
    history = History(lambda: buffer, clock=clock, min_refresh_seconds=0)
    assert len(chart(history.report(hours=1), "memory")["used"]) == 5
    # A destination sends everything: the buffer deletes the settled rows.
    buffer.register_destination("central", from_oldest=True)
    while (batch := buffer.read("central", 1000)) is not None:
        buffer.ack("central", batch)
    assert list(buffer.scan()) == []
    fill(buffer, 3, start=5)
    clock.ms = T0 + 8 * STEP
    memory = chart(history.report(hours=1), "memory")["used"]
    assert [t for t, _ in memory] == [T0 + i * STEP for i in range(8)]
    # The rate across the join uses the counter state carried over.
    assert len(chart(history.report(hours=1), "cpu")["busy"]) == 7


def test_an_older_window_is_read_and_prepended(buffer: Buffer) -> None:
    fill(buffer, 40)  # 10 minutes
    clock = Clock(T0 + 40 * STEP)
    history = History(lambda: buffer, clock=clock, min_refresh_seconds=0,
                      backfill_hours=0.05)  # 3 minutes at first
    assert len(chart(history.report(hours=0.05), "memory")["used"]) == 12
    assert len(chart(history.report(hours=1), "memory")["used"]) == 40


def test_no_buffer_says_no_history_yet() -> None:
    report = History(lambda: None).report(hours=3)
    assert report["available"] is False
    assert report["reason"].startswith("no history yet")
    assert report["charts"] == []


def test_empty_buffer_says_no_history_yet(buffer: Buffer) -> None:
    report = History(lambda: buffer).report(hours=3)
    assert report["reason"].startswith("no history yet")
    assert all(c["series"] == [] for c in report["charts"])


def test_downsample_keeps_few_points_and_buckets_many() -> None:
    few = [(T0 + i * 1000, float(i)) for i in range(10)]
    points, step = downsample(few, T0, T0 + 3_600_000)
    assert points == [[t, v] for t, v in few] and step == 1000
    many = [(T0 + i * 500, float(i % 2)) for i in range(7200)]  # an hour at 0.5 s
    points, step = downsample(many, T0, T0 + 3_600_000)
    assert len(points) == MAX_POINTS and step == 15_000
    assert all(v == 0.5 for _, v in points)
    outside = downsample([(T0 - 1, 1.0), (T0 + 10, 2.0)], T0, T0 + 100)[0]
    assert outside == [[T0 + 10, 2.0]]


def test_disk_mount_prefers_root_else_the_largest() -> None:
    assert disk_mount([("/boot", 10), ("/", 5)]) == "/"
    assert disk_mount([("/boot", 10), ("/data", 500)]) == "/data"
    assert disk_mount([]) is None


def test_observed_cycles_chart_without_reading_the_buffer_and_older_hours_come_from_it(
        buffer: Buffer) -> None:
    fill(buffer, 10)  # what an earlier run of the agent appended
    clock = Clock(T0 + 20 * STEP)
    history = History(lambda: buffer, clock=clock, min_refresh_seconds=0)
    for i in range(10, 20):  # this run: each cycle is observed as it is appended
        history.observe(T0 + i * STEP, cycle(i, idle=30.0 * i, busy=10.0 * i,
                                             events=2.0 * i, failures=1.0 * i, pending=1.0))
    # A cycle observed twice (or out of order) is ignored.
    history.observe(T0 + 15 * STEP, cycle(15, idle=0, busy=0, events=0, failures=0))
    memory = chart(history.report(hours=1), "memory")["used"]
    assert [t for t, _ in memory] == [T0 + i * STEP for i in range(20)]
    busy = chart(history.report(hours=1), "cpu")["busy"]
    assert [round(v) for _, v in busy] == [25] * 18  # a rate needs two cycles, per part
    # Rows the buffer deletes later do not take observed points with them.
    buffer.register_destination("central", from_oldest=True)
    while (batch := buffer.read("central", 1000)) is not None:
        buffer.ack("central", batch)
    assert len(chart(history.report(hours=1), "memory")["used"]) == 20
