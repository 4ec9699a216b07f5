"""`Buffer.append_cycle`: pre-keyed cycles, and the writer's reuse of the previous layout."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from totem_agent.buffer import Buffer

from .helpers import assert_invariant, drain, ts_of

Key = tuple[str, tuple[tuple[str, str], ...]]


def keys(*names: str, host: str = "k1") -> tuple[Key, ...]:
    return tuple((name, (("host", host),)) for name in names)


def layouts(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM layouts").fetchone()[0])
    finally:
        conn.close()


def received(buf: Buffer) -> list[tuple[str, tuple[tuple[str, str], ...], int, float]]:
    return sorted(drain(buf, "d"), key=lambda r: (r[2], r[0], r[1]))


def test_the_same_keys_reuse_one_layout_and_every_value_lands(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    same = keys("a", "b", "c")
    with Buffer.open(path, chunk_cycles=4) as buf:
        buf.register_destination("d")
        for seq in range(1, 10):  # crosses two seals
            assert buf.append_cycle(ts_of(seq), same, [seq, seq * 2.0, -seq]) == 3
        assert layouts(path) == 1
        got = received(buf)
        assert_invariant(buf.stats())
    assert got == [(name, (("host", "k1"),), ts_of(seq), v)
                   for seq in range(1, 10)
                   for name, v in (("a", seq), ("b", seq * 2.0), ("c", -seq))]


@pytest.mark.parametrize("then", [
    keys("a", "b", "c", "d"),          # a series added
    keys("a", "c"),                    # one removed
    keys("c", "a", "b"),               # reordered
    keys("a", "b", "c", host="k2"),    # same names, other labels
])
def test_changed_keys_are_attributed_to_their_own_series(tmp_path: Path,
                                                         then: tuple[Key, ...]) -> None:
    first = keys("a", "b", "c")
    with Buffer.open(tmp_path / "b.db", chunk_cycles=3) as buf:
        buf.register_destination("d")
        cycles = [first, first, then, then, first, then]
        for seq, ks in enumerate(cycles, start=1):
            # Each cycle's keys built anew (equal, not identical) half of the time.
            ks = tuple(list(ks)) if seq % 2 else ks
            buf.append_cycle(ts_of(seq), ks, [seq * 10.0 + i for i in range(len(ks))])
        got = received(buf)
    want = sorted(((name, labels, ts_of(seq), seq * 10.0 + i)
                   for seq, ks in enumerate(cycles, start=1)
                   for i, (name, labels) in enumerate(ks)), key=lambda r: (r[2], r[0], r[1]))
    assert got == want


def test_append_and_append_cycle_agree(tmp_path: Path) -> None:
    with Buffer.open(tmp_path / "a.db") as a, Buffer.open(tmp_path / "b.db") as b:
        for buf in (a, b):
            buf.register_destination("d")
        a.append(ts_of(1), [("x", {"z": "1", "a": "2"}, 1.0), ("y", {}, 2.0),
                            ("x", {"a": "2", "z": "1"}, 3.0)])  # twice: the last value wins
        b.append_cycle(ts_of(1), (("x", (("a", "2"), ("z", "1"))), ("y", ())), [3.0, 2.0])
        assert drain(a, "d") == drain(b, "d")


def test_a_key_twice_or_a_value_short_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    with Buffer.open(tmp_path / "b.db") as buf:
        buf.register_destination("d")
        with pytest.raises(ValueError, match="same series twice"):
            buf.append_cycle(ts_of(1), keys("a", "b", "a"), [1.0, 2.0, 3.0])
        with pytest.raises(ValueError, match="3 series has 2 values"):
            buf.append_cycle(ts_of(1), keys("a", "b", "c"), [1.0, 2.0])
        assert buf.append_cycle(ts_of(1), (), []) == 0
        assert buf.stats().appended_cycles == 0
        assert buf.append_cycle(ts_of(2), keys("a", "b"), [1.0, 2.0]) == 2
        assert received(buf) == [("a", (("host", "k1"),), ts_of(2), 1.0),
                                 ("b", (("host", "k1"),), ts_of(2), 2.0)]


def test_a_layout_collected_by_another_process_is_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    old, other = keys("gone1", "gone2"), keys("kept")
    with Buffer.open(path, chunk_cycles=100) as buf:
        buf.register_destination("d")
        buf.append_cycle(ts_of(1), old, [1.0, 2.0])    # layout 1
        buf.append_cycle(ts_of(2), other, [3.0])       # layout 2, the newest
        buf.append_cycle(ts_of(3), old, [4.0, 5.0])    # layout 1 again: the writer's last
        drain(buf, "d")                                # nothing uses layout 1 any more
        with Buffer.open(path) as elsewhere:
            elsewhere._transaction(elsewhere._writer.collect_garbage)
        assert layouts(path) == 1
        buf.append_cycle(ts_of(4), old, [6.0, 7.0])    # the same keys: must be re-created
        assert layouts(path) == 2
    with Buffer.open(path) as fresh:  # no cached layouts or series: reads what is on disk
        assert received(fresh) == [("gone1", (("host", "k1"),), ts_of(4), 6.0),
                                   ("gone2", (("host", "k1"),), ts_of(4), 7.0)]
        assert_invariant(fresh.stats())


def test_sealing_still_happens_every_chunk_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    ks = keys("a")

    def rows() -> list[tuple[int, int]]:
        conn = sqlite3.connect(path)
        try:
            return conn.execute("SELECT kind, last_seq - first_seq + 1 FROM log "
                                "ORDER BY first_seq").fetchall()
        finally:
            conn.close()

    with Buffer.open(path, chunk_cycles=3) as buf:
        for seq in range(1, 6):
            buf.append_cycle(ts_of(seq), ks, [float(seq)])
    assert rows() == [(1, 3), (0, 1), (0, 1)]
    with Buffer.open(path, chunk_cycles=3) as buf:  # two unsealed rows carried over
        buf.append_cycle(ts_of(6), ks, [6.0])
        assert rows() == [(1, 3), (1, 3)]
        for seq in range(7, 10):
            buf.append_cycle(ts_of(seq), ks, [float(seq)])
    assert rows() == [(1, 3), (1, 3), (1, 3)]
