"""The writing side of the buffer: append a cycle, then maintain the log.

Holds what only the appending process needs: caches of series and layout ids
(checked inside each appending transaction, so another process collecting
garbage cannot make them lie), the disk-full accounting, and the maintenance
steps that run after each append (seal, evict, collect garbage, release pages).
The caller (`Buffer`) holds its lock around every call.

A cycle is its series keys, in order and distinct, and their values. Cycle
after cycle a kiosk reports the same series in the same order, so the layout
of the previous cycle is kept with its keys: a cycle whose keys equal them (one
comparison done in C, instant when the caller hands back the same tuple) reuses
that layout without looking up any series.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from totem_agent.buffer import codec, maintenance
from totem_agent.buffer.maintenance import add_counter, counter
from totem_agent.buffer.model import DISK_FULL, BufferStats, Labels
from totem_agent.buffer.rows import CYCLE, ROW_COLUMNS, Catalog, labels_json
from totem_agent.buffer.stats import StatsCache

log = logging.getLogger("totem_agent.buffer")

GC_EVERY_APPENDS = 240

Key = tuple[str, Labels]


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return (getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
                or "database or disk is full" in str(exc))
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def transaction(conn: sqlite3.Connection, body: Callable[[], Any]) -> Any:
    """Run `body` in BEGIN IMMEDIATE ... COMMIT; roll back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


class Writer:
    def __init__(self, conn: sqlite3.Connection, path: Path, catalog: Catalog, *,
                 clock: Callable[[], float], chunk_cycles: int, max_size_bytes: int | None,
                 max_age_seconds: float | None) -> None:
        self.conn = conn
        self.path = path
        self.catalog = catalog
        self.clock = clock
        self.chunk_cycles = chunk_cycles
        self.max_size_bytes = max_size_bytes
        self.max_age_seconds = max_age_seconds
        # Caches, only trusted after a check in the appending transaction.
        self._series_ids: dict[tuple[str, Labels], int] = {}
        self._layout_ids: dict[tuple[int, ...], int] = {}
        # The previous cycle's keys and layout id (a layout never changes once
        # written, and while it exists its series do: garbage collection only
        # deletes series that no layout holds).
        self._last_keys: tuple[Key, ...] | None = None
        self._last_layout = 0
        self._appends_since_gc = 0
        # Single-cycle rows not sealed yet, at most (eviction and shipping only take
        # rows away): counted again only once it reaches chunk_cycles, not every append.
        self._cycle_rows: int | None = None
        # Cycles lost to a full disk, not yet persisted (they go in with the next append).
        self.unsaved_cycles: Counter[str] = Counter()
        self.unsaved_samples: Counter[str] = Counter()
        self._full_episode = False
        self._episode_lost = 0
        self._maintenance_full = False
        self._evicted_since_release = False
        self.maintenance_failures = 0
        self._stats = StatsCache(conn, path)

    def stats(self, fresh: bool = False) -> BufferStats:
        """The buffer's statistics (`fresh`: read them all from the database)."""
        return self._stats.read(self.unsaved_cycles, self.unsaved_samples,
                                self.maintenance_failures, fresh)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def append(self, ts: int, keys: Sequence[Key], values: Sequence[float]) -> int:
        """Store one cycle and maintain the log; 0 when the disk is full (counted).

        `keys` are distinct (ValueError otherwise), `values[i]` is the value of `keys[i]`.
        """
        if len(keys) != len(values):
            raise ValueError(f"a cycle of {len(keys)} series has {len(values)} values")
        keys = keys if isinstance(keys, tuple) else tuple(keys)
        changes = self.conn.total_changes
        try:
            self._append(ts, keys, values)
        except (sqlite3.OperationalError, OSError) as exc:
            if not is_disk_full(exc):
                raise
            self._lose(len(keys), exc)
            return 0
        if self._full_episode:
            log.warning("buffer: appending again after the disk was full; %d cycles lost",
                        self._episode_lost, extra={"path": str(self.path),
                                                   "lost_cycles": self._episode_lost})
            self._full_episode = False
        self._stats.appended(changes, ts, len(keys))
        if self._cycle_rows is not None:
            self._cycle_rows += 1
        self._maintain()
        return len(keys)

    def _append(self, ts: int, keys: tuple[Key, ...], values: Sequence[float]) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            new_series: dict[Key, int] = {}
            new_layouts: dict[tuple[int, ...], int] = {}
            layout = self._reuse(keys)
            if layout is None:
                layout = self._resolve(keys, new_series, new_layouts)
            seq = counter(conn, "appended_cycles") + 1
            conn.execute(f"INSERT INTO log ({ROW_COLUMNS}, data) VALUES "
                         "(?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?)",
                         (seq, seq, ts, ts, len(keys), CYCLE, layout,
                          codec.encode_cycle(values)))
            add_counter(conn, "appended_samples", len(keys))
            add_counter(conn, "appended_cycles", 1)
            for reason, n in self.unsaved_cycles.items():
                add_counter(conn, "lost_cycles", n, "", reason)
            for reason, n in self.unsaved_samples.items():
                add_counter(conn, "lost_samples", n, "", reason)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        # Only now: ids of a rolled-back transaction may be handed out again.
        self._series_ids.update(new_series)
        self._layout_ids.update(new_layouts)
        self._last_keys, self._last_layout = keys, layout
        self.unsaved_cycles.clear()
        self.unsaved_samples.clear()

    def _reuse(self, keys: tuple[Key, ...]) -> int | None:
        """The previous cycle's layout id if these are its keys and the layout still exists."""
        if self._last_keys is None or (keys is not self._last_keys and keys != self._last_keys):
            return None
        if self.conn.execute("SELECT 1 FROM layouts WHERE id = ?",
                             (self._last_layout,)).fetchone():
            return self._last_layout
        self._forget()  # collected by another process: every cached id is suspect
        return None

    def _forget(self) -> None:
        self._series_ids.clear()
        self._layout_ids.clear()
        self._last_keys = None

    def _resolve(self, keys: tuple[Key, ...], new_series: dict[Key, int],
                 new_layouts: dict[tuple[int, ...], int]) -> int:
        """The layout id of this cycle's series, creating series and layout as needed."""
        if len(set(keys)) != len(keys):  # checked once per new layout, not every cycle
            raise ValueError("a cycle names the same series twice")
        conn = self.conn
        for _attempt in range(2):
            ids = []
            for key in keys:
                sid = self._series_ids.get(key) or new_series.get(key)
                if sid is None:
                    name, labels = key
                    text = labels_json(labels)
                    conn.execute("INSERT OR IGNORE INTO series (name, labels) VALUES (?, ?)",
                                 (name, text))
                    sid = conn.execute("SELECT id FROM series WHERE name = ? AND labels = ?",
                                       (name, text)).fetchone()[0]
                    new_series[key] = sid
                ids.append(sid)
            layout_key = tuple(ids)
            cached = self._layout_ids.get(layout_key)
            if cached is not None and conn.execute(
                    "SELECT 1 FROM layouts WHERE id = ?", (cached,)).fetchone():
                return cached
            # A layout not seen (or collected since): check the cached series still exist.
            old = [sid for key, sid in zip(keys, ids, strict=True) if key not in new_series]
            if self._all_exist(old):
                layout = maintenance.layout_id(conn, ids)
                new_layouts[layout_key] = layout
                return layout
            self._forget()
            new_series.clear()
        raise AssertionError("series vanished twice while appending")

    def _all_exist(self, series_ids: list[int]) -> bool:
        for start in range(0, len(series_ids), 500):
            part = series_ids[start:start + 500]
            marks = ",".join("?" * len(part))
            found = self.conn.execute(f"SELECT count(*) FROM series WHERE id IN ({marks})",
                                       part).fetchone()[0]
            if found != len(set(part)):
                return False
        return True

    def _lose(self, samples: int, exc: BaseException) -> None:
        self._stats.forget()  # the next append also writes these counters
        self.unsaved_cycles[DISK_FULL] += 1
        self.unsaved_samples[DISK_FULL] += samples
        if not self._full_episode:  # logged once per episode, not once per cycle
            self._full_episode = True
            self._episode_lost = 0
            log.warning("buffer: disk full, collection cycles are lost until space returns: %s",
                        exc, extra={"path": str(self.path)})
        self._episode_lost += 1

    def _maintain(self) -> None:
        """Seal, evict, collect garbage, release pages: none of it can lose the cycle.

        Each step is its own transaction (the last one manages its own), so a
        failure leaves the log as the append left it; the step is retried at
        the next append.
        """
        self._appends_since_gc += 1
        gc = self._appends_since_gc >= GC_EVERY_APPENDS
        # Cheap reads decide which steps need the write lock at all.
        steps: list[tuple[Callable[[], Any], bool]] = []
        if self._cycle_rows is None or self._cycle_rows >= self.chunk_cycles:
            self._cycle_rows = self.conn.execute("SELECT count(*) FROM log WHERE kind = ?",
                                                 (CYCLE,)).fetchone()[0]
        if self._cycle_rows >= self.chunk_cycles:
            steps.append((self._seal, True))
        if self._beyond_bounds():
            steps.append((self._enforce_bounds, True))
        if gc:
            steps.append((self.collect_garbage, True))
        steps.append((self._release, False))
        full = False
        for step, in_transaction in steps:
            try:
                if in_transaction:
                    transaction(self.conn, step)
                else:
                    step()
            except Exception as exc:
                if not is_disk_full(exc):
                    self.maintenance_failures += 1
                    log.exception("buffer: maintenance step failed",
                                  extra={"path": str(self.path)})
                    continue
                if not self._maintenance_full:  # once per episode
                    log.warning("buffer: disk full during maintenance (sealing, eviction)",
                                extra={"path": str(self.path), "error": str(exc)})
                full = True
        self._maintenance_full = full
        if gc:
            self._appends_since_gc = 0

    def _seal(self) -> None:
        self._cycle_rows = None  # whatever happens, count again at the next append
        maintenance.seal(self.conn, self.catalog, self.chunk_cycles)

    def _beyond_bounds(self) -> bool:
        conn = self.conn
        if self.max_size_bytes is not None and maintenance.used_bytes(conn) > self.max_size_bytes:
            return True
        if self.max_age_seconds is not None:
            oldest = conn.execute("SELECT last_ts FROM log ORDER BY first_seq LIMIT 1").fetchone()
            if oldest and oldest[0] < self._now_ms() - self.max_age_seconds * 1000:
                return True
        return False

    def _enforce_bounds(self) -> None:
        max_age_ms = None if self.max_age_seconds is None else int(self.max_age_seconds * 1000)
        if maintenance.enforce_bounds(self.conn, self.max_size_bytes, max_age_ms,
                                      self._now_ms()):
            self._evicted_since_release = True

    def _release(self) -> None:
        """Hand free pages back to the filesystem after eviction or a drained backlog."""
        if self._evicted_since_release or maintenance.free_pages_to_release(self.conn):
            maintenance.release_free_pages(self.conn)
            self._evicted_since_release = False

    def collect_garbage(self) -> None:
        if maintenance.collect_garbage(self.conn):
            self._forget()
