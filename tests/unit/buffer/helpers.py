"""Shared helpers of the buffer tests: deterministic cycles and the invariant."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from totem_agent.buffer import Buffer, BufferStats

T0 = 1_795_000_000_000


def value(seq: int, series: int) -> float:
    """A value that depends only on (cycle, series), so any read can be checked."""
    kind = series % 4
    if kind == 0:
        return 42.0
    if kind == 1:
        return float(seq * (series + 3))
    if kind == 2:
        return round(seq * 0.37 + series, 2)
    return (seq * 7919 + series) / 3.0


Sample = tuple[str, dict[str, str], float]
Received = tuple[str, tuple[tuple[str, str], ...], int, float]


def cycle(seq: int, series: int = 20, prefix: str = "m") -> list[Sample]:
    return [(f"{prefix}_{i % 3}", {"i": str(i), "host": "k1"}, value(seq, i))
            for i in range(series)]


def ts_of(seq: int) -> int:
    return T0 + seq * 15_000


def assert_invariant(stats: BufferStats) -> None:
    for dest in stats.destinations.values():
        assert dest.sent_samples + dest.pending_samples + dest.dropped_total == \
            dest.appended_samples, dest


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def drain(buf: Buffer, destination: str, max_samples: int = 1000) -> list[Received]:
    """Read and ack everything pending; returns (name, labels, ts, value) in read order."""
    out = []
    while (batch := buf.read(destination, max_samples)) is not None:
        for series in batch.series:
            out += [(series.name, series.labels, t, v)
                    for t, v in zip(series.timestamps, series.values, strict=True)]
        buf.ack(destination, batch)
    return out
