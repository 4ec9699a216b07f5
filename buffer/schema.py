"""The buffer's on-disk format: tables, PRAGMAs, and the format version.

One SQLite database in WAL mode. Everything that matters is in plain tables a
technician can read with the `sqlite3` shell:

* `meta(key, value)`: `format_version` (refused when newer than this code
  knows) and `created_ms`.
* `series(id, name, labels)`: each series once; `labels` is the JSON object of
  its labels, keys sorted. Ids are AUTOINCREMENT: never reused, so a reader may
  cache them.
* `layouts(id, digest, series_ids)`: the ordered list of series ids of a cycle
  (most cycles share one), zlib-compressed int64 differences; `digest` finds an
  existing one.
* `log(first_seq, last_seq, first_ts, last_ts, samples, kind, layout_id,
  timestamps, counts, data)`: the append-only log. Every collection cycle gets
  the next sequence number (`seq`). A row holds one cycle (`kind` 0, values as
  in `codec.encode_cycle`) or a sealed chunk of consecutive cycles (`kind` 1,
  `codec.encode_chunk`, with the per-cycle timestamps and sample counts as
  little-endian int64 / int32 arrays beside it, so cursors and statistics never
  need to decompress). Rows are only ever removed from the oldest end.
* `destinations(name, cursor, base, created_ms, last_commit_ms)`: a cursor is
  the seq of the last cycle this destination has settled (sent, dropped or had
  evicted); `base` is the value of the appended-samples total that this
  destination does not answer for (what was appended before it existed).
* `counters(name, destination, reason, value)`: persisted totals (appended,
  sent, dropped by reason, evicted, lost cycles); destination and reason are ''
  where they do not apply.

Upgrades: `MIGRATIONS[n]` turns a format-n file into format n+1. Each step runs
in its own transaction, which also bumps `format_version`, so a kill -9 in the
middle leaves the file at n or at n+1, never between (SQLite's DDL is
transactional; a step must not COMMIT, e.g. through executescript). There is one
format so far: no step yet. tests/fixtures/buffer/ keeps a file of every older
format (made by scripts/make_format_fixtures.py), which the tests open and check.

PRAGMAs (checked by the tests): `journal_mode=WAL`; `synchronous=FULL` (each
commit fsyncs the WAL: on power loss at most the cycle being written is lost,
see docs/buffer.md for why NORMAL is not enough); `auto_vacuum=INCREMENTAL`
(space freed by eviction can be handed back to the filesystem);
`busy_timeout` (other processes, e.g. `totem-agent buffer stats`, wait instead
of failing); `journal_size_limit` (the WAL shrinks back after a big write).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path

FORMAT_VERSION = 1
APPLICATION_ID = 0x746F7465  # "tote": `file` and the sqlite3 shell show it
BUSY_TIMEOUT_MS = 10_000
log = logging.getLogger("totem_agent.buffer")

# One step per format: MIGRATIONS[n](conn) turns a format-n database into format
# n+1, inside the transaction migrate() opens (it bumps format_version itself).
Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: dict[int, Migration] = {}
JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024

_TABLES = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE series (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    UNIQUE (name, labels)
);
CREATE TABLE layouts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    digest BLOB NOT NULL UNIQUE,
    series_ids BLOB NOT NULL
);
CREATE TABLE log (
    first_seq INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    layout_id INTEGER NOT NULL,
    timestamps BLOB,
    counts BLOB,
    data BLOB NOT NULL
);
CREATE INDEX log_cycles ON log (first_seq) WHERE kind = 0;
CREATE TABLE destinations (
    name TEXT PRIMARY KEY,
    cursor INTEGER NOT NULL,
    base INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    last_commit_ms INTEGER
) WITHOUT ROWID;
CREATE TABLE counters (
    name TEXT NOT NULL,
    destination TEXT NOT NULL,
    reason TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (name, destination, reason)
) WITHOUT ROWID;
"""


class BufferFormatError(RuntimeError):
    """The file is not a buffer this version of totem-agent can use."""


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """An autocommit connection with the buffer's PRAGMAs (schema not touched)."""
    if readonly:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                               isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly:
            # Only effective before the first table exists, which is when it matters.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise BufferFormatError(
                    f"{path}: SQLite refused WAL mode (got {mode!r}); the buffer needs a "
                    "local filesystem that supports shared memory (not a network share)")
            conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        conn.execute("PRAGMA synchronous = FULL")
    except BaseException:
        conn.close()
        raise
    return conn


def open_database(path: Path, *, readonly: bool, now_ms: int) -> sqlite3.Connection:
    """A connection to a checked buffer file (created unless `readonly`).

    Raises BufferFormatError for a file that is not a buffer or is too new,
    FileNotFoundError for a missing file opened read-only, and lets
    sqlite3.OperationalError (locked, I/O error, permissions) through as it is.
    """
    if readonly and not path.exists():
        raise FileNotFoundError(errno.ENOENT, "no buffer at this path", str(path))
    try:
        conn = connect(path, readonly=readonly)
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError as exc:
        raise BufferFormatError(f"{path}: not a usable buffer: {exc}") from exc
    try:
        if readonly:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
                raise BufferFormatError(f"{path}: not a totem-agent buffer (no meta table)")
            check_readable(dict(conn.execute("SELECT key, value FROM meta").fetchall()), path)
        else:
            ensure_schema(conn, path, now_ms)
    except sqlite3.OperationalError:
        conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise BufferFormatError(f"{path}: not a totem-agent buffer: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def ensure_schema(conn: sqlite3.Connection, path: Path,
                  now_ms: int | None = None) -> dict[str, str]:
    """Create the tables in a new file, or check the version of an existing one.

    Returns the meta table. Raises BufferFormatError for a file written by a
    newer format, or one that is not a buffer at all.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.DatabaseError as exc:
        raise BufferFormatError(f"{path}: not a usable SQLite database: {exc}") from exc
    try:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        if not exists:
            others = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if others:
                raise BufferFormatError(f"{path}: an SQLite database, but not a totem-agent "
                                        "buffer (it has tables and no meta table)")
            _create(conn, now_ms if now_ms is not None else int(time.time() * 1000))
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    check_version(meta, path)
    if int(meta["format_version"]) < FORMAT_VERSION:
        migrate(conn, path)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    return meta


def migrate(conn: sqlite3.Connection, path: Path, *, target: int | None = None,
            steps: Mapping[int, Migration] | None = None) -> int:
    """Bring the file up to format `target` (default FORMAT_VERSION), one step per
    transaction; returns the format it is at. A step that fails rolls back alone:
    the file stays at the last format reached, and BufferFormatError says which.
    Safe against another process migrating the same file at the same time (the
    version is read again inside each step's write transaction)."""
    target = FORMAT_VERSION if target is None else target
    steps = MIGRATIONS if steps is None else steps
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute(
                "SELECT value FROM meta WHERE key = 'format_version'").fetchone()[0])
            if version >= target:
                conn.execute("COMMIT")
                return version
            step = steps.get(version)
            if step is None:
                raise BufferFormatError(f"{path}: no upgrade from buffer format {version} to "
                                        f"{version + 1}; this totem-agent cannot read it")
            try:
                step(conn)
            except sqlite3.Error as exc:
                raise BufferFormatError(f"{path}: upgrading the buffer from format {version} "
                                        f"to {version + 1} failed ({exc}); the file is "
                                        f"unchanged, still format {version}") from exc
            conn.execute("UPDATE meta SET value = ? WHERE key = 'format_version'",
                         (str(version + 1),))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("buffer upgraded from format %d to %d", version, version + 1,
                 extra={"path": str(path)})


def check_version(meta: dict[str, str], path: Path) -> None:
    try:
        version = int(meta["format_version"])
    except (KeyError, ValueError) as exc:
        raise BufferFormatError(f"{path}: buffer meta table has no valid format_version") from exc
    if version > FORMAT_VERSION:
        raise BufferFormatError(
            f"{path}: buffer format {version} was written by a newer totem-agent; this one "
            f"reads formats up to {FORMAT_VERSION}. Upgrade totem-agent, or move the file "
            "aside (its samples can be exported with the newer version)")
    if version < 1:
        raise BufferFormatError(f"{path}: buffer format {version} is not a known format")


def check_readable(meta: dict[str, str], path: Path) -> None:
    """A read-only open cannot upgrade: an older file is for the agent to open first."""
    check_version(meta, path)
    version = int(meta["format_version"])
    if version < FORMAT_VERSION:
        raise BufferFormatError(
            f"{path}: buffer format {version} was written by an older totem-agent; this one "
            f"reads format {FORMAT_VERSION}. Start the agent once (it upgrades the file in "
            "place, keeping every sample), then read it again")


def _create(conn: sqlite3.Connection, now_ms: int) -> None:
    for statement in _TABLES.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
        ("format_version", str(FORMAT_VERSION)),
        ("created_ms", str(now_ms)),
    ])
    conn.executemany("INSERT INTO counters VALUES (?, '', '', 0)",
                     [("appended_samples",), ("appended_cycles",)])
