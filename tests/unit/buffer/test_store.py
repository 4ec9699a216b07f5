"""The buffer's contract: append, read per destination, settle, evict, count, restart."""

from __future__ import annotations

import math
import sqlite3
import struct
import threading
from pathlib import Path

import pytest

from totem_agent.buffer import (
    Buffer,
    StaleBatchError,
    UnknownDestinationError,
)
from totem_agent.buffer.codec import PackedValues

from .helpers import Received, assert_invariant, cycle, drain, integrity, ts_of, value


class Clock:
    def __init__(self, t: float = ts_of(0) / 1000) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def expected(seqs: range, series: int = 20) -> list[Received]:
    """What a destination must receive for these cycles, grouped per series in time order."""
    out = []
    for i in range(series):
        labels = (("host", "k1"), ("i", str(i)))
        out += [(f"m_{i % 3}", labels, ts_of(s), value(s, i)) for s in seqs]
    return out


def test_append_read_ack_roundtrip(tmp_path: Path) -> None:
    with Buffer.open(tmp_path / "b.db", chunk_cycles=4) as buf:
        buf.register_destination("d")
        for seq in range(1, 11):
            assert buf.append(ts_of(seq), cycle(seq)) == 20
        batch = buf.read("d", 1000)
        assert batch is not None
        assert (batch.after_seq, batch.last_seq, batch.samples) == (0, 10, 200)
        assert (batch.first_ts, batch.last_ts) == (ts_of(1), ts_of(10))
        got = [(s.name, s.labels, t, v) for s in batch.series
               for t, v in zip(s.timestamps, s.values, strict=True)]
        assert got == expected(range(1, 11))
        # Reading does not move the cursor.
        assert buf.read("d", 1000) == batch
        buf.ack("d", batch)
        assert buf.read("d", 1000) is None
        stats = buf.stats()
        assert stats.destinations["d"].sent_samples == 200
        assert stats.destinations["d"].pending_samples == 0
        assert stats.rows == 0  # settled by every destination: deleted
        assert stats.maintenance_failures == 0


def test_batches_are_whole_cycles_across_chunks(tmp_path: Path) -> None:
    with Buffer.open(tmp_path / "b.db", chunk_cycles=4) as buf:
        buf.register_destination("d")
        for seq in range(1, 15):  # 3 chunks of 4 and 2 single cycles
            buf.append(ts_of(seq), cycle(seq))
        assert buf.stats().rows == 5
        sizes = []
        got = []
        while (batch := buf.read("d", 70)) is not None:
            sizes.append((batch.after_seq, batch.last_seq, batch.samples))
            got += [(s.name, s.labels, t, v) for s in batch.series
                    for t, v in zip(s.timestamps, s.values, strict=True)]
            buf.ack("d", batch)
        assert sizes == [(0, 3, 60), (3, 6, 60), (6, 9, 60), (9, 12, 60), (12, 14, 40)]
        assert sorted(got, key=lambda x: (x[1], x[2])) == sorted(expected(range(1, 15)),
                                                              key=lambda x: (x[1], x[2]))
        # A cycle larger than max_samples still goes out, alone.
        buf.append(ts_of(15), cycle(15))
        batch = buf.read("d", 5)
        assert batch is not None and batch.samples == 20


def test_each_destination_has_its_own_cursor(tmp_path: Path) -> None:
    with Buffer.open(tmp_path / "b.db", chunk_cycles=3) as buf:
        buf.register_destination("a")
        buf.register_destination("b")
        for seq in range(1, 8):
            buf.append(ts_of(seq), cycle(seq))
        assert sorted(drain(buf, "a", 50)) == sorted(expected(range(1, 8)))
        stats = buf.stats()
        assert stats.destinations["a"].pending_samples == 0
        assert stats.destinations["b"].pending_samples == 140
        assert stats.destinations["b"].oldest_pending_ms == ts_of(1)
        assert stats.rows > 0  # b has not settled: nothing deleted
        got = drain(buf, "b", 10_000)
        assert sorted(got) == sorted(expected(range(1, 8)))
        assert buf.stats().rows == 0


def test_drop_and_partial_commit_are_counted_by_reason(tmp_path: Path) -> None:
    with Buffer.open(tmp_path / "b.db") as buf:
        buf.register_destination("d")
        for seq in range(1, 4):
            buf.append(ts_of(seq), cycle(seq))
        batch = buf.read("d", 20)
        assert batch is not None
        buf.drop("d", batch, "rejected")
        batch = buf.read("d", 40)
        assert batch is not None and batch.samples == 40
        buf.commit("d", batch, {"too_old": 5, "out_of_order": 3})
        stats = buf.stats().destinations["d"]
        assert stats.dropped_samples == {"rejected": 20, "too_old": 5, "out_of_order": 3}
        assert stats.sent_samples == 32
        assert stats.last_commit_ms is not None
        assert_invariant(buf.stats())
        with pytest.raises(ValueError):
            buf.commit("d", batch, {"x": 41})


def test_settling_twice_or_stale_or_unknown(tmp_path: Path) -> None:
    with Buffer.open(tmp_path / "b.db") as buf:
        buf.register_destination("d")
        buf.register_destination("keep")  # never settles: keeps every row
        buf.append(ts_of(1), cycle(1))
        buf.append(ts_of(2), cycle(2))
        batch = buf.read("d", 20)
        assert batch is not None
        buf.ack("d", batch)
        buf.ack("d", batch)  # a second ack changes nothing
        assert buf.stats().destinations["d"].sent_samples == 20
        with pytest.raises(UnknownDestinationError):
            buf.read("nobody", 10)
        with pytest.raises(ValueError):
            buf.ack("keep", batch)
        second = buf.read("d", 20)
        assert second is not None and second.after_seq == 1
        # Re-registered from the oldest row, "d" is back at cycle 0: the batch is stale.
        buf.remove_destination("d")
        buf.register_destination("d")
        with pytest.raises(StaleBatchError):
            buf.ack("d", second)
        buf.remove_destination("d")
        with pytest.raises(UnknownDestinationError):
            buf.ack("d", second)
        assert_invariant(buf.stats())


def test_register_from_oldest_or_newest(tmp_path: Path) -> None:
    with Buffer.open(tmp_path / "b.db") as buf:
        for seq in range(1, 4):
            buf.append(ts_of(seq), cycle(seq))  # no destination yet: kept
        assert buf.register_destination("history") is True
        assert buf.register_destination("history") is False
        buf.register_destination("fresh", from_oldest=False)
        buf.append(ts_of(4), cycle(4))
        stats = buf.stats()
        assert stats.destinations["history"].pending_samples == 80
        assert stats.destinations["history"].appended_samples == 80
        assert stats.destinations["fresh"].pending_samples == 20
        assert stats.destinations["fresh"].appended_samples == 20
        assert_invariant(stats)
        # Removing the laggard lets the others' settled rows go.
        drain(buf, "fresh")
        assert buf.stats().rows == 4
        buf.remove_destination("history")
        assert buf.stats().rows == 0
        assert buf.destinations() == ["fresh"]


def test_age_eviction_counts_every_unsent_sample(tmp_path: Path) -> None:
    clock = Clock()
    with Buffer.open(tmp_path / "b.db", max_age_seconds=60, clock=clock, chunk_cycles=2) as buf:
        buf.register_destination("a")
        buf.register_destination("b")
        for seq in range(1, 9):  # 2 minutes of cycles, all young at ts_of(1)
            clock.t = ts_of(1) / 1000
            buf.append(ts_of(seq), cycle(seq))
        assert buf.stats().evicted_samples == {}
        batch = buf.read("a", 60)
        assert batch is not None
        buf.ack("a", batch)  # a sent cycles 1-3
        clock.t = ts_of(8) / 1000 + 31  # 60 s ago is just after cycle 6
        buf.append(ts_of(9), cycle(9))
        stats = buf.stats()
        assert_invariant(stats)
        # Rows whose newest cycle is older than 60 s went: cycles 1..6 (3 chunks of 2).
        assert stats.evicted_samples == {"age": 120}
        assert stats.destinations["a"].dropped_samples == {"age": 60}
        assert stats.destinations["b"].dropped_samples == {"age": 120}
        assert stats.oldest_ms == ts_of(7)
        assert [t for _, _, t, _ in drain(buf, "b")][:1] == [ts_of(7)]


def test_size_eviction_keeps_the_bound_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    bound = 100_000
    with Buffer.open(path, max_size_bytes=bound, chunk_cycles=10) as buf:
        buf.register_destination("d")
        for seq in range(1, 600):
            buf.append(ts_of(seq), cycle(seq, series=200))
            assert buf.stats().used_bytes <= bound
        stats = buf.stats()
        assert stats.evicted_samples["size"] > 0
        assert stats.destinations["d"].dropped_samples == {"size": stats.evicted_samples["size"]}
        assert_invariant(stats)
        got = drain(buf, "d", 5000)
        # What survived is the newest, contiguous, complete.
        seqs = sorted({(t - ts_of(0)) // 15_000 for _, _, t, _ in got})
        assert seqs == list(range(seqs[0], 600))
        assert len(got) == len(seqs) * 200
    assert integrity(path) == "ok"
    assert path.stat().st_size <= bound  # evicted pages went back to the filesystem


def test_the_file_shrinks_after_a_drained_backlog(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    with Buffer.open(path, chunk_cycles=10) as buf:
        buf.register_destination("d")
        def noisy(seq: int) -> list[tuple[str, dict[str, str], float]]:
            return [("n", {"i": str(i)}, (seq * 2654435761 + i * 40503) % 1000003 / 7.0)
                    for i in range(700)]
        for seq in range(1, 450):
            buf.append(ts_of(seq), noisy(seq))
        buf.checkpoint()
        full = path.stat().st_size
        assert full > 1_100_000  # past the 256 free pages that trigger a release
        drain(buf, "d", 10_000)
        buf.append(ts_of(450), noisy(450))
        buf.checkpoint()
        assert path.stat().st_size < full / 4, (full, path.stat().st_size)
        assert buf.stats().maintenance_failures == 0


def test_eviction_of_a_batch_in_flight_is_not_counted_twice(tmp_path: Path) -> None:
    clock = Clock()
    with Buffer.open(tmp_path / "b.db", max_age_seconds=60, clock=clock, chunk_cycles=1) as buf:
        buf.register_destination("d")
        for seq in range(1, 5):
            clock.t = ts_of(seq) / 1000
            buf.append(ts_of(seq), cycle(seq))
        batch = buf.read("d", 80)
        assert batch is not None and batch.samples == 80
        clock.t = ts_of(4) / 1000 + 40  # cycles 1 and 2 get older than 60 s
        buf.append(ts_of(5), cycle(5))
        assert buf.stats().destinations["d"].dropped_samples == {"age": 40}
        buf.ack("d", batch)
        stats = buf.stats()
        assert stats.destinations["d"].sent_samples == 40
        assert stats.destinations["d"].pending_samples == 20
        assert_invariant(stats)


def test_counters_and_cursors_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    with Buffer.open(path, chunk_cycles=3) as buf:
        buf.register_destination("d")
        for seq in range(1, 8):
            buf.append(ts_of(seq), cycle(seq))
        batch = buf.read("d", 40)
        assert batch is not None
        buf.commit("d", batch, {"rejected": 7})
        before = buf.stats()
    with Buffer.open(path, chunk_cycles=3) as buf:
        after = buf.stats()
        assert after.destinations == before.destinations
        assert after.appended_samples == 140 and after.appended_cycles == 7
        for seq in range(8, 10):
            buf.append(ts_of(seq), cycle(seq))
        assert sorted(drain(buf, "d")) == sorted(expected(range(3, 10)))
        assert_invariant(buf.stats())


def test_changing_series_sets_and_duplicates(tmp_path: Path) -> None:
    with Buffer.open(tmp_path / "b.db", chunk_cycles=4) as buf:
        buf.register_destination("d")
        cycles = {
            1: [("a", {}, 1.0), ("b", {"x": "1"}, 2.0)],
            2: [("a", {}, 1.5), ("c", {"y": "é", "x": "2"}, math.nan)],
            3: [("b", {"x": "1"}, 3.0), ("a", {}, 2.0), ("a", {}, 2.5)],  # last value wins
            4: [("a", {}, -0.0)],
            5: [("c", {"x": "2", "y": "é"}, 4.0)],  # same series, labels in another order
        }
        for seq, samples in cycles.items():
            assert buf.append(ts_of(seq), samples) == len({(n, tuple(sorted(lab.items())))
                                                           for n, lab, _ in samples})
        assert buf.append(ts_of(6), []) == 0
        got = {}
        for name, labels, t, v in drain(buf, "d"):
            got.setdefault((name, labels), []).append((t, v))
        assert got[("a", ())] == [(ts_of(1), 1.0), (ts_of(2), 1.5), (ts_of(3), 2.5),
                                  (ts_of(4), -0.0)]
        assert math.copysign(1, got[("a", ())][3][1]) == -1
        assert got[("b", (("x", "1"),))] == [(ts_of(1), 2.0), (ts_of(3), 3.0)]
        c = got[("c", (("x", "2"), ("y", "é")))]
        assert [t for t, _ in c] == [ts_of(2), ts_of(5)]
        assert math.isnan(c[0][1]) and c[1][1] == 4.0


def test_scan_exports_everything_in_a_time_range(tmp_path: Path) -> None:
    with Buffer.open(tmp_path / "b.db", chunk_cycles=3) as buf:
        for seq in range(1, 8):
            buf.append(ts_of(seq), cycle(seq, series=4))
        rows = list(buf.scan(since_ms=ts_of(2), until_ms=ts_of(6)))
        got = sorted((s.name, s.labels, t) for row in rows for s in row for t in s.timestamps)
        assert {t for _, _, t in got} == {ts_of(s) for s in range(2, 6)}
        assert len(got) == 16


def test_garbage_series_are_collected_but_live_ones_stay(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    with Buffer.open(path, chunk_cycles=2) as buf:
        buf.register_destination("d")
        for seq in range(1, 6):
            buf.append(ts_of(seq), cycle(seq, series=5, prefix=f"gen{seq}"))
        drain(buf, "d")
        buf._transaction(buf._writer.collect_garbage)
        conn = sqlite3.connect(path)
        names = {n for (n,) in conn.execute("SELECT name FROM series")}
        conn.close()
        assert names == {"gen5_0", "gen5_1", "gen5_2"}  # the newest layout is kept
        buf.append(ts_of(6), cycle(6, series=5, prefix="gen1"))  # re-created after collection
        assert len(drain(buf, "d")) == 5


def test_threads_append_and_ship_at_once(tmp_path: Path) -> None:
    with Buffer.open(tmp_path / "b.db", chunk_cycles=5) as buf:
        buf.register_destination("d")
        done = threading.Event()
        received: list[int] = []

        def ship() -> None:
            while True:
                batch = buf.read("d", 100)
                if batch is None:
                    if done.wait(0.001) and buf.read("d", 100) is None:
                        return
                    continue
                received.append(batch.samples)
                buf.ack("d", batch)

        shipper = threading.Thread(target=ship)
        shipper.start()
        for seq in range(1, 201):
            buf.append(ts_of(seq), cycle(seq, series=10))
        done.set()
        shipper.join(timeout=30)
        assert not shipper.is_alive()
        assert sum(received) == 2000
        assert_invariant(buf.stats())


def test_packed_reads_are_the_list_reads_bit_for_bit(tmp_path: Path) -> None:
    """`read(packed=True)` (the drain's) gives the same series, timestamps and value bits
    as `read()`: as columns while every series is in every cycle, else as PackedValues
    (sparse series); sealed chunks and cycles not sealed yet, batches across several
    rows, read ahead."""
    forms = set()
    with Buffer.open(tmp_path / "b.db", chunk_cycles=4) as buf:
        buf.register_destination("d")
        for seq in range(1, 23):
            samples = cycle(seq, series=6)
            if seq in (6, 9):
                samples = samples[::2]  # some series absent from some cycles
            samples.append(("z", {}, [0.0, -0.0, math.nan, 5e-324][seq % 4]))
            buf.append(ts_of(seq), samples)
        for max_samples in (1, 10, 25, 1000):
            after = None
            while True:
                lists = buf.read("d", max_samples, after_seq=after)
                packed = buf.read("d", max_samples, after_seq=after, packed=True)
                if lists is None:
                    assert packed is None
                    break
                assert packed is not None
                assert (packed.after_seq, packed.last_seq, packed.cycle_samples) == \
                    (lists.after_seq, lists.last_seq, lists.cycle_samples)
                want = [(s.name, s.labels, s.timestamps,
                         struct.pack(f"<{len(s.values)}d", *s.values)) for s in lists.series]
                if packed.columns is None:
                    forms.add("series")
                    assert all(isinstance(s.values, PackedValues) for s in packed.series)
                    got = [(s.name, s.labels, s.timestamps, getattr(s.values, "raw", None))
                           for s in packed.series]
                else:
                    forms.add("columns")
                    assert packed.series == ()
                    columns = packed.columns
                    got = [(name, labels, columns.timestamps, raw) for (name, labels), raw
                           in zip(columns.keys, columns.values, strict=True)]
                    again = buf.read("d", max_samples, after_seq=after, packed=True)
                    assert again is not None and again.columns is not None
                    assert again.columns.keys is columns.keys  # what consumers may cache by
                assert got == want
                after = lists.last_seq
    assert forms == {"series", "columns"}


def test_packed_values_read_as_a_sequence_of_floats() -> None:
    values = PackedValues(struct.pack("<3d", 1.5, -0.0, math.inf))
    assert len(values) == 3 and values[0] == 1.5 and values[-1] == math.inf
    assert values[1:] == [-0.0, math.inf] and list(values) == [1.5, -0.0, math.inf]
    assert values == [1.5, -0.0, math.inf] and values == PackedValues(values.raw)
    assert values != [1.5]
    with pytest.raises(IndexError):
        values[3]
    with pytest.raises(ValueError, match="whole number of float64"):
        PackedValues(b"\x00" * 7)
