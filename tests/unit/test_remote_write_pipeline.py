"""The running shipper's pipeline (agent/outputs/remote_write_pipeline.py) against a real
HTTP receiver on loopback (tests/remote_write_fake.py) and a real buffer: parallel
lanes, batches read ahead, settled in order, at most BATCHES_IN_FLIGHT unsettled
batches sent, each series' samples in order, refusals bisected from the buffer."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remote_write_fake import HANG, FakeReceiver, Labels, fake_receiver
from tests.support import wait_until
from totem_agent.buffer import Buffer, SeriesSamples
from totem_agent.outputs import remote_write_pipeline
from totem_agent.outputs.remote_write import RemoteWrite
from totem_agent.outputs.remote_write_client import Destination
from totem_agent.outputs.remote_write_pipeline import BATCHES_IN_FLIGHT

SERIES = [(f"totem_pipe_{i % 3}", {"job": "totem", "part": str(i)}) for i in range(8)]


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[Buffer]:
    with Buffer.open(tmp_path / "buffer.sqlite") as buf:
        yield buf


@pytest.fixture
def split_small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spread even tiny batches over the lanes (the product does so from 10,000 samples)."""
    monkeypatch.setattr(remote_write_pipeline, "SPLIT_FROM", 1)


def fill(buffer: Buffer, cycles: int, start_ms: int, step_ms: int = 15_000) -> list[int]:
    stamps = []
    for c in range(cycles):
        ts = start_ms + c * step_ms
        buffer.append(ts, [(name, labels, c * 100 + i) for i, (name, labels) in enumerate(SERIES)])
        stamps.append(ts)
    return stamps


def now_ms() -> int:
    return int(time.time() * 1000)


def destination(url: str, **kwargs: object) -> Destination:
    settings: dict[str, object] = {"name": "central", "url": url, "min_backoff": 0.01,
                                   "max_backoff": 0.05, "timeout": 5.0, "parallel_requests": 3,
                                   "max_samples_per_send": 16}  # 2 cycles of 8 series
    settings.update(kwargs)
    return Destination.from_settings(settings)


def drain_running(buffer: Buffer, dest: Destination) -> RemoteWrite:
    """Start the shippers' threads (the pipeline), wait for an empty queue, stop."""
    group = RemoteWrite(buffer, [dest], idle_wait=0.05)
    group.start()
    try:
        wait_until(lambda: buffer.stats().destinations["central"].pending_samples == 0,
                   timeout=30, message="the buffer to drain")
    finally:
        group.stop()
    return group


def arrival_order(rx: FakeReceiver) -> dict[Labels, list[int]]:
    """Each series' timestamps in the order the receiver stored them."""
    order: dict[Labels, list[int]] = {}
    for sample in rx.stored:
        order.setdefault(sample.labels, []).append(sample.timestamp)
    return order


def test_lanes_deliver_everything_once_each_series_in_order(buffer: Buffer,
                                                             split_small: None) -> None:
    stamps = fill(buffer, 40, now_ms() - 3_600_000)
    with fake_receiver() as rx:
        group = drain_running(buffer, destination(rx.url))
    assert len(rx.stored) == 40 * 8
    assert len({(s.labels, s.timestamp) for s in rx.stored}) == 40 * 8  # no duplicate
    for labels, times in arrival_order(rx).items():
        assert times == stamps, labels  # one lane per series: in time order
    dest = buffer.stats().destinations["central"]
    assert (dest.sent_samples, dest.pending_samples, dest.dropped_total) == (320, 0, 0)
    # 20 batches, each split over the 3 lanes (8 series spread over all of them).
    pipeline = group.shippers[0].pipeline
    lanes = Counter(pipeline.lane_of(SeriesSamples(name, tuple(sorted(labels.items())), [], []))
                    for name, labels in SERIES)
    assert len(lanes) == 3
    assert len(rx.received) == 20 * 3
    for request in rx.received:  # a series always on the same lane
        names = {labels for labels, _ in request.series}
        assert len({pipeline.lane_of(SeriesSamples(dict(labels)["__name__"],
                                                   tuple((k, v) for k, v in labels
                                                         if k != "__name__"), [], []))
                    for labels in names}) == 1


def test_small_batches_go_whole_in_one_request(buffer: Buffer) -> None:
    fill(buffer, 3, now_ms() - 60_000)
    with fake_receiver() as rx:
        drain_running(buffer, destination(rx.url, max_samples_per_send=8))  # a cycle each
    assert [len(request.series) for request in rx.received] == [8, 8, 8]
    assert buffer.stats().destinations["central"].sent_samples == 24


def test_receiver_unwell_then_back_nothing_lost_nor_doubled(buffer: Buffer,
                                                            split_small: None) -> None:
    stamps = fill(buffer, 30, now_ms() - 3_600_000)
    unwell = [(503, "unavailable", {})] * 9
    with fake_receiver(script=list(unwell)) as rx:
        group = drain_running(buffer, destination(rx.url))
    assert rx.answers[:9] == [503] * 9
    assert len(rx.stored) == 30 * 8
    assert len({(s.labels, s.timestamp) for s in rx.stored}) == 30 * 8
    for times in arrival_order(rx).values():
        assert times == stamps
    shipper = group.shippers[0]
    assert shipper.retries == 9
    dest = buffer.stats().destinations["central"]
    assert (dest.sent_samples, dest.pending_samples, dest.dropped_total) == (240, 0, 0)


def test_a_refused_part_is_read_again_and_bisected(buffer: Buffer, split_small: None) -> None:
    now = now_ms()
    cutoff = now - 3_600_000
    old = fill(buffer, 5, now - 7_200_000, step_ms=60_000)   # 2 h old: refused
    new = fill(buffer, 9, now - 300_000, step_ms=15_000)     # 5 min old: fine

    def too_old(labels: Labels, timestamp: int, value: float) -> tuple[int, str] | None:
        return (500, "too old sample") if timestamp < cutoff else None

    with fake_receiver(rule=too_old) as rx:
        group = drain_running(buffer, destination(rx.url, max_samples_per_send=24))
    assert sorted({s.timestamp for s in rx.stored}) == new
    assert len(rx.stored) == len(new) * 8
    dest = buffer.stats().destinations["central"]
    assert dest.dropped_samples == {"too_old": len(old) * 8}
    assert dest.sent_samples == len(new) * 8 and dest.pending_samples == 0
    assert group.shippers[0].bisections > 0


def test_one_batch_in_flight_while_one_part_hangs(buffer: Buffer, split_small: None) -> None:
    """One lane's request hangs: the other lane delivers its part of the same batch and
    then waits, so that a kill can make at most the unacknowledged batch arrive twice."""
    assert BATCHES_IN_FLIGHT == 1
    stamps = fill(buffer, 10, now_ms() - 3_600_000)
    with fake_receiver(script=[HANG]) as rx:
        group = RemoteWrite(buffer, [destination(rx.url, timeout=60.0, parallel_requests=2,
                                                 max_samples_per_send=8)])
        group.start()
        try:
            # The other lane's part of batch 0 is answered; its part of batch 1 waits for
            # batch 0, whose other part hangs.
            wait_until(lambda: sorted(rx.answers) == [0, 204],
                       message="one request to hang, the other to be answered")
        finally:
            group.stop(wait=10.0)
        assert len(rx.received) == 2
    assert {s.timestamp for s in rx.stored} == {stamps[0]}
    assert buffer.stats().destinations["central"].pending_samples == 80


def test_lane_of_a_series_does_not_depend_on_the_process(buffer: Buffer) -> None:
    """A checksum, not Python's per-process salted hash: after a restart a series stays
    on its lane (the value is fixed by crc32 of the series' name and labels)."""
    group = RemoteWrite(buffer, [destination("http://127.0.0.1:9/api/v1/write",
                                             parallel_requests=4)])
    lane = group.shippers[0].pipeline.lane_of(SeriesSamples("node_load1", (("job", "totem"),),
                                                            [], []))
    assert lane == 3  # crc32(repr(("node_load1", (("job", "totem"),)))) % 4
