"""Statistics kept up to date by the appends are the statistics a full read gives."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from totem_agent.buffer import Buffer, BufferStats
from totem_agent.buffer.stats import FULL_READ_EVERY

from .helpers import assert_invariant, cycle, ts_of


def queries(buf: Buffer) -> list[str]:
    """The statements `buf.stats()` runs (sqlite3's trace of the buffer's connection)."""
    seen: list[str] = []
    conn: sqlite3.Connection = buf._conn
    conn.set_trace_callback(seen.append)
    try:
        buf.stats()
    finally:
        conn.set_trace_callback(None)
    return [q for q in seen if not q.startswith("--")]  # "--": a pragma function's own


def full(buf: Buffer) -> BufferStats:
    return buf._writer.stats(fresh=True)


def test_appends_update_the_counts_without_reading_them(tmp_path: Path) -> None:
    with Buffer.open(tmp_path / "b.db", chunk_cycles=1000) as buf:
        buf.register_destination("central")
        buf.register_destination("store")
        first = buf.stats()
        assert first.rows == 0 and first.destinations["central"].oldest_pending_ms is None
        for seq in range(1, 30):
            buf.append(ts_of(seq), cycle(seq, series=5 + seq % 4))
            assert len(queries(buf)) == 1  # the sizes only
            assert buf.stats() == full(buf)
        stats = buf.stats()
        assert stats.destinations["central"].oldest_pending_ms == ts_of(1)
        assert stats.newest_ms == ts_of(29) and stats.rows == 29
        assert_invariant(stats)


def test_anything_but_an_append_makes_the_next_read_full(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    with Buffer.open(path, chunk_cycles=4) as buf:
        buf.register_destination("central")
        for seq in range(1, 4):
            buf.append(ts_of(seq), cycle(seq))
        buf.stats()
        # A settle on this connection (another thread: a shipper).
        batch = buf.read("central", 40)
        assert batch is not None
        buf.ack("central", batch)
        assert len(queries(buf)) > 1
        assert buf.stats().destinations["central"].sent_samples == 40
        # Sealing (cycles 3 to 6 into one chunk row), during an append's maintenance.
        for seq in range(4, 7):
            buf.append(ts_of(seq), cycle(seq))
        assert buf.stats() == full(buf) and buf.stats().rows == 1
        # Another process settling the rest.
        with Buffer.open(path) as other:
            rest = other.read("central", 1000)
            assert rest is not None
            other.ack("central", rest)
        stats = buf.stats()
        assert stats.destinations["central"].sent_samples == 120
        assert stats.destinations["central"].pending_samples == 0
        assert stats.buffered_samples == 0
        assert stats == full(buf)


def test_a_lost_cycle_is_counted_then_persisted(tmp_path: Path) -> None:
    with Buffer.open(tmp_path / "b.db", chunk_cycles=1000) as buf:
        buf.register_destination("central")
        buf.append(ts_of(1), cycle(1))
        buf.stats()
        # What the writer does when the disk is full (tests/unit/buffer/test_disk_full.py
        # fills a real one); here only the accounting that follows is under test.
        buf._writer._lose(20, OSError(28, "No space left on device"))
        assert buf.stats().lost_cycles == {"disk_full": 1}
        buf.append(ts_of(3), cycle(3))
        stats = buf.stats()
        assert stats.lost_cycles == {"disk_full": 1} and stats.lost_samples == {"disk_full": 20}
        assert stats == full(buf)
        # Lost and appended again with no read in between.
        buf._writer._lose(20, OSError(28, "No space left on device"))
        buf.append(ts_of(5), cycle(5))
        stats = buf.stats()
        assert stats.lost_cycles == {"disk_full": 2} and stats.lost_samples == {"disk_full": 40}
        assert stats == full(buf)


def test_a_full_read_at_least_every_minute(tmp_path: Path) -> None:
    now = [1000.0]
    with Buffer.open(tmp_path / "b.db", chunk_cycles=1000) as buf:
        buf._writer._stats._monotonic = lambda: now[0]
        buf.append(ts_of(1), cycle(1))
        buf.stats()
        buf.append(ts_of(2), cycle(2))
        assert len(queries(buf)) == 1
        now[0] += FULL_READ_EVERY
        buf.append(ts_of(3), cycle(3))
        assert len(queries(buf)) > 1


@pytest.mark.parametrize("seed", [1, 2])
def test_random_operations_read_the_same_as_a_full_read(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    now = [ts_of(0) / 1000]
    with Buffer.open(tmp_path / "b.db", 40_000, 1800, clock=lambda: now[0],
                     chunk_cycles=rng.choice([3, 7, 30])) as buf:
        buf.register_destination("central")
        fast = 0
        for seq in range(1, 400):
            op = rng.random()
            if op < 0.7:
                buf.append(int(now[0] * 1000), cycle(seq, series=rng.randrange(1, 40)))
                now[0] += 15
            elif op < 0.9:
                dest = rng.choice(buf.destinations())
                batch = buf.read(dest, rng.randrange(1, 200))
                if batch is not None:
                    buf.commit(dest, batch, {"rejected": batch.samples // 3})
            elif op < 0.93:
                buf.register_destination(rng.choice(["store", "backup"]),
                                         from_oldest=rng.random() < 0.5)
            elif op < 0.95 and len(buf.destinations()) > 1:
                buf.remove_destination(rng.choice(buf.destinations()))
            else:
                now[0] += rng.uniform(0, 3600)  # past the age bound: eviction
            fast += len(queries(buf)) == 1
            stats = buf.stats()
            assert stats == full(buf)
            assert_invariant(stats)
        assert fast > 40  # appends not followed by maintenance took the short way
