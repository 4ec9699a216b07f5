"""business.sqlite: the business metrics' state, so counters survive restarts and power loss.

Small, low-rate, money-related data, so every commit is durable before the
events API answers 2xx: WAL with `synchronous=FULL` (a commit is fsynced), one
transaction per request (`BEGIN IMMEDIATE` ... `COMMIT`), autocommit otherwise
(litequeue's habit). The file holds the *state* (each series' current value,
histogram buckets), not a log of events: restoring is reading a few hundred rows.

Tables (format version 1, in `meta`):
  series(metric, labels, kind, value, sum, count, buckets, updated)
      labels: JSON object, keys sorted; buckets: JSON list of per-bucket counts
      (not cumulative; the last is +Inf); updated: event time of a gauge's value.
  label_values(label, value)     distinct values admitted under the cardinality cap
  seen_ids(id, seen_at)          the idempotency window

Upgrades as the buffer's (buffer/schema.py): MIGRATIONS[n] turns format n into
n+1 in one transaction that also bumps the version; a newer file is refused
before anything in it is touched. tests/fixtures/business/format-N.sqlite keep a
file of every format (scripts/make_format_fixtures.py).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

FORMAT_VERSION = 1
FILE_NAME = "business.sqlite"
log = logging.getLogger("totem_agent.business")

# MIGRATIONS[n](conn) turns a format-n file into format n+1 (none yet: one format).
Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: dict[int, Migration] = {}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    metric TEXT NOT NULL, labels TEXT NOT NULL, kind TEXT NOT NULL,
    value REAL NOT NULL DEFAULT 0, sum REAL NOT NULL DEFAULT 0, count REAL NOT NULL DEFAULT 0,
    buckets TEXT NOT NULL DEFAULT '[]', updated REAL,
    PRIMARY KEY (metric, labels));
CREATE TABLE IF NOT EXISTS label_values (
    label TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (label, value));
CREATE TABLE IF NOT EXISTS seen_ids (id TEXT PRIMARY KEY, seen_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_ids_by_time ON seen_ids (seen_at);
"""

LabelKey = tuple[tuple[str, str], ...]


@dataclass
class SeriesState:
    """One series: a counter or gauge `value`, or a histogram's buckets, sum and count."""

    kind: str                     # counter, gauge, histogram
    value: float = 0.0
    sum: float = 0.0
    count: float = 0.0
    buckets: list[float] = field(default_factory=list)
    updated: float | None = None

    def copy(self) -> SeriesState:
        return SeriesState(self.kind, self.value, self.sum, self.count, list(self.buckets),
                           self.updated)


@dataclass
class Restored:
    series: dict[tuple[str, LabelKey], SeriesState]
    label_values: dict[str, set[str]]
    seen_ids: list[tuple[str, float]]     # oldest first


class StoreError(Exception):
    """business.sqlite cannot be opened or written; the message names the file."""


def labels_json(key: LabelKey) -> str:
    return json.dumps(dict(key), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def labels_key(text: str) -> LabelKey:
    return tuple(sorted(json.loads(text).items()))


class BusinessStore:
    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: autocommit; transactions are explicit.
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                        timeout=10.0)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(f"PRAGMA synchronous={synchronous}")
            self._prepare()
        except StoreError:
            self.conn.close()
            raise
        except sqlite3.Error as err:
            raise StoreError(f"{path}: cannot open the business state: {err}") from err
        except OSError as err:
            raise StoreError(f"{path}: cannot create its directory: {err}") from err

    def _version(self) -> int | None:
        if not self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
            return None
        row = self.conn.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()
        try:
            return None if row is None else int(row[0])
        except ValueError:
            raise StoreError(f"{self.path}: format_version {row[0]!r} is not a number; "
                             "not a business state file this agent wrote") from None

    def _prepare(self) -> None:
        """Create a new file's tables, refuse a newer format untouched, upgrade an older."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._version()
            if version is None:
                for statement in _SCHEMA.split(";"):  # not executescript: it would COMMIT
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('format_version', ?)",
                                  (str(FORMAT_VERSION),))
                version = FORMAT_VERSION
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        if version > FORMAT_VERSION:
            raise StoreError(f"{self.path}: format version {version}, this agent reads "
                             f"{FORMAT_VERSION} (written by a newer agent?)")
        if version < FORMAT_VERSION:
            self.migrate()

    def migrate(self, target: int | None = None,
                steps: Mapping[int, Migration] | None = None) -> int:
        """Up to format `target` (default FORMAT_VERSION), one transaction per step;
        a failed step leaves the file at the format before it (StoreError says so)."""
        target = FORMAT_VERSION if target is None else target
        steps = MIGRATIONS if steps is None else steps
        while True:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                version = self._version() or FORMAT_VERSION
                if version >= target:
                    self.conn.execute("COMMIT")
                    return version
                if version not in steps:
                    raise StoreError(f"{self.path}: no upgrade from format {version} to "
                                     f"{version + 1}")
                try:
                    steps[version](self.conn)
                except sqlite3.Error as err:
                    raise StoreError(f"{self.path}: upgrading from format {version} to "
                                     f"{version + 1} failed ({err}); the file is unchanged, "
                                     f"still format {version}") from err
                self.conn.execute("UPDATE meta SET value = ? WHERE key = 'format_version'",
                                  (str(version + 1),))
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            log.info("business state upgraded from format %d to %d", version, version + 1,
                     extra={"path": str(self.path)})

    def load(self, id_window_start: float, max_ids: int) -> Restored:
        series = {}
        for metric, labels, kind, value, total, count, buckets, updated in self.conn.execute(
                "SELECT metric, labels, kind, value, sum, count, buckets, updated FROM series"):
            series[(metric, labels_key(labels))] = SeriesState(
                kind, value, total, count, [float(b) for b in json.loads(buckets)], updated)
        values: dict[str, set[str]] = {}
        for label, value in self.conn.execute("SELECT label, value FROM label_values"):
            values.setdefault(label, set()).add(value)
        ids = self.conn.execute(
            "SELECT id, seen_at FROM (SELECT id, seen_at FROM seen_ids WHERE seen_at >= ? "
            "ORDER BY seen_at DESC LIMIT ?) ORDER BY seen_at", (id_window_start, max_ids)
        ).fetchall()
        return Restored(series, values, [(str(i), float(t)) for i, t in ids])

    def commit(self, series: dict[tuple[str, LabelKey], SeriesState],
               new_label_values: Iterable[tuple[str, str]],
               new_ids: Iterable[tuple[str, float]], expired_ids: Iterable[str]) -> None:
        """Write one request's effects in one durable transaction, or raise StoreError
        with nothing written."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany(
                    "INSERT INTO series (metric, labels, kind, value, sum, count, buckets, "
                    "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (metric, labels) DO "
                    "UPDATE SET value=excluded.value, sum=excluded.sum, count=excluded.count, "
                    "buckets=excluded.buckets, updated=excluded.updated",
                    [(metric, labels_json(key), s.kind, s.value, s.sum, s.count,
                      json.dumps(s.buckets), s.updated) for (metric, key), s in series.items()])
                self.conn.executemany("INSERT OR IGNORE INTO label_values VALUES (?, ?)",
                                      list(new_label_values))
                # Forget first: an expired id may come back in this very request.
                self.conn.executemany("DELETE FROM seen_ids WHERE id = ?",
                                      [(i,) for i in expired_ids])
                self.conn.executemany("INSERT OR REPLACE INTO seen_ids VALUES (?, ?)",
                                      list(new_ids))
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: cannot store the events: {err}") from err

    def close(self) -> None:
        self.conn.close()
