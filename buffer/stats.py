"""Statistics of a buffer: read in one snapshot, or kept up to date by the appends.

A full read is about ten queries. The agent reads the statistics after every
append (once a cycle), and between two of its appends usually nothing else
happened: `StatsCache` then adds the append to the last full read, in memory,
exactly as the queries would have counted it, and reads only the sizes again.
Anything else that writes (a shipper settling, sealing, eviction, another
process) moves SQLite's own counters of changes, and the next read is full.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from totem_agent.buffer.maintenance import by_reason, counter, fetch_rows, used_bytes
from totem_agent.buffer.model import BufferStats, DestinationStats

# A full read at least this often (seconds), whatever the counters of changes say.
FULL_READ_EVERY = 60.0


def file_bytes(path: Path) -> int:
    """Bytes of the database and its WAL (the -shm index is memory, rebuilt at will)."""
    total = 0
    for file in (path, f"{path}-wal"):  # no Path made per call: this runs every cycle
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


class StatsCache:
    """The last statistics and what the database looked like then.

    `conn.total_changes` counts the rows this connection changed (appends, settles,
    maintenance, even rolled back); `PRAGMA data_version` moves when another
    connection commits. The cached figures are only used while both are where the
    last full read, or an append this cache was told about, left them.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._conn = conn
        self._path = path
        self._monotonic = monotonic
        self._stats: BufferStats | None = None
        self._changes = -1
        self._version = -1
        self._read_at = 0.0
        self._page_size: int | None = None

    def forget(self) -> None:
        """The next read is a full one (the caller changed what it counts)."""
        self._stats = None

    def read(self, unsaved_cycles: Mapping[str, int], unsaved_samples: Mapping[str, int],
             maintenance_failures: int, fresh: bool = False) -> BufferStats:
        """The statistics now; the caller holds the buffer's lock."""
        conn = self._conn
        version, pages, free = conn.execute(
            "SELECT * FROM pragma_data_version(), pragma_page_count(), "
            "pragma_freelist_count()").fetchone()
        stats = self._stats
        if (stats is None or fresh or unsaved_cycles or conn.total_changes != self._changes
                or version != self._version or self._page_size is None
                or self._monotonic() - self._read_at >= FULL_READ_EVERY):
            return self._read_all(unsaved_cycles, unsaved_samples, maintenance_failures)
        return dataclasses.replace(stats, bytes_on_disk=file_bytes(self._path),
                                   used_bytes=(pages - free) * self._page_size,
                                   maintenance_failures=maintenance_failures)

    def _read_all(self, unsaved_cycles: Mapping[str, int], unsaved_samples: Mapping[str, int],
                  maintenance_failures: int) -> BufferStats:
        conn = self._conn
        self._stats = None
        conn.execute("BEGIN")
        try:
            # Inside the read transaction: a commit by another connection after this
            # point is not in the figures, and moves the version the next read sees.
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            stats = read_stats(conn, self._path, unsaved_cycles, unsaved_samples,
                               maintenance_failures)
            self._page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        finally:
            conn.execute("COMMIT")
        if not unsaved_cycles and not unsaved_samples:
            self._stats = stats
            self._changes = conn.total_changes
            self._version = version
            self._read_at = self._monotonic()
        return stats

    def appended(self, changes_before: int, timestamp_ms: int, samples: int) -> None:
        """An append of `samples` samples at `timestamp_ms` committed; `changes_before`
        is `conn.total_changes` just before its transaction began."""
        stats = self._stats
        if stats is None or changes_before != self._changes:
            self._stats = None
            return
        self._stats = after_append(stats, timestamp_ms, samples)
        self._changes = self._conn.total_changes


def after_append(stats: BufferStats, timestamp_ms: int, samples: int) -> BufferStats:
    """What `read_stats` reads after one more cycle row (`samples` samples, stamped
    `timestamp_ms`) was appended, and nothing else changed."""
    destinations = {
        name: dataclasses.replace(
            dest, appended_samples=dest.appended_samples + samples,
            pending_samples=dest.pending_samples + samples,
            # Nothing was pending: the new cycle is the oldest one pending.
            oldest_pending_ms=(timestamp_ms if dest.oldest_pending_ms is None
                               else dest.oldest_pending_ms))
        for name, dest in stats.destinations.items()}
    return dataclasses.replace(
        stats, appended_samples=stats.appended_samples + samples,
        appended_cycles=stats.appended_cycles + 1, rows=stats.rows + 1,
        buffered_samples=stats.buffered_samples + samples,
        oldest_ms=timestamp_ms if stats.oldest_ms is None else stats.oldest_ms,
        newest_ms=timestamp_ms, destinations=destinations)
