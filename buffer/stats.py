"""Statistics of a buffer, read in one snapshot (the caller holds the transaction)."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from totem_agent.buffer.maintenance import by_reason, counter, fetch_rows, used_bytes
from totem_agent.buffer.model import BufferStats, DestinationStats


def file_bytes(path: Path) -> int:
    """Bytes of the database and its WAL (the -shm index is memory, rebuilt at will)."""
    total = 0
    for file in (path, Path(f"{path}-wal")):
        try:
            total += os.stat(file).st_size
        except FileNotFoundError:
            continue  # no WAL between a clean close and the next write: 0 bytes
        except OSError as exc:
            raise OSError(exc.errno or errno.EIO, f"cannot stat buffer file: {exc}",
                          str(file)) from exc
    return total


def pending_after(conn: sqlite3.Connection, cursor: int) -> tuple[int, int | None]:
    """(samples after `cursor`, timestamp of the first of them)."""
    whole = conn.execute("SELECT coalesce(sum(samples), 0) FROM log WHERE first_seq > ?",
                         (cursor,)).fetchone()[0]
    partial = fetch_rows(conn, "first_seq <= ? AND last_seq > ?", (cursor, cursor), 1)
    pending = int(whole) + (partial[0].samples_after(cursor) if partial else 0)
    nxt = cursor + 1
    holder = partial or fetch_rows(conn, "first_seq = ?", (nxt,), 1)
    oldest = holder[0].timestamp_of(nxt) if holder else None
    return pending, oldest


def _merge(persisted: dict[str, int], unsaved: Mapping[str, int]) -> dict[str, int]:
    out = dict(persisted)
    for reason, n in unsaved.items():
        out[reason] = out.get(reason, 0) + n
    return {k: v for k, v in out.items() if v}


def read_stats(conn: sqlite3.Connection, path: Path, unsaved_cycles: Mapping[str, int],
               unsaved_samples: Mapping[str, int], maintenance_failures: int) -> BufferStats:
    appended = counter(conn, "appended_samples")
    destinations = {}
    for name, cursor, base, last_commit in conn.execute(
            "SELECT name, cursor, base, last_commit_ms FROM destinations ORDER BY name").fetchall():
        pending, oldest = pending_after(conn, cursor)
        destinations[name] = DestinationStats(
            name=name, cursor=cursor, appended_samples=appended - base,
            pending_samples=pending, oldest_pending_ms=oldest,
            sent_samples=counter(conn, "sent_samples", name),
            dropped_samples=by_reason(conn, "dropped_samples", name),
            last_commit_ms=last_commit)
    rows, buffered = conn.execute(
        "SELECT count(*), coalesce(sum(samples), 0) FROM log").fetchone()
    first = fetch_rows(conn, limit=1)
    last = conn.execute("SELECT last_ts FROM log ORDER BY first_seq DESC LIMIT 1").fetchone()
    return BufferStats(
        appended_samples=appended,
        appended_cycles=counter(conn, "appended_cycles"),
        evicted_samples=by_reason(conn, "evicted_samples"),
        lost_cycles=_merge(by_reason(conn, "lost_cycles"), unsaved_cycles),
        lost_samples=_merge(by_reason(conn, "lost_samples"), unsaved_samples),
        bytes_on_disk=file_bytes(path),
        used_bytes=used_bytes(conn),
        rows=int(rows),
        buffered_samples=int(buffered),
        oldest_ms=first[0].first_ts if first else None,
        newest_ms=int(last[0]) if last else None,
        maintenance_failures=maintenance_failures,
        destinations=destinations,
    )
