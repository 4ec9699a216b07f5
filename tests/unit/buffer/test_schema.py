"""The on-disk format: PRAGMAs as chosen, versioned, foreign files refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from totem_agent.buffer import FORMAT_VERSION, Buffer, BufferFormatError
from totem_agent.buffer.schema import APPLICATION_ID, BUSY_TIMEOUT_MS, JOURNAL_SIZE_LIMIT

from .helpers import cycle, ts_of


def pragma(buf: Buffer, name: str) -> object:
    return buf._conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_pragmas_of_the_connection(tmp_path: Path) -> None:
    with Buffer.open(tmp_path / "b.db") as buf:
        assert pragma(buf, "journal_mode") == "wal"
        assert pragma(buf, "synchronous") == 2  # FULL: see docs/buffer.md
        assert pragma(buf, "auto_vacuum") == 2  # INCREMENTAL
        assert pragma(buf, "busy_timeout") == BUSY_TIMEOUT_MS
        assert pragma(buf, "journal_size_limit") == JOURNAL_SIZE_LIMIT
        assert pragma(buf, "application_id") == APPLICATION_ID
        # Autocommit: every transaction is an explicit BEGIN IMMEDIATE.
        assert buf._conn.isolation_level is None
        assert not buf._conn.in_transaction


def test_wal_and_format_persist_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    with Buffer.open(path) as buf:
        buf.append(ts_of(1), cycle(1))
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta["format_version"] == str(FORMAT_VERSION)
        assert int(meta["created_ms"]) > 0
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"meta", "series", "layouts", "log", "destinations", "counters"} <= tables
    finally:
        conn.close()


def test_newer_format_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    Buffer.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'format_version'",
                 (str(FORMAT_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(BufferFormatError, match="newer totem-agent"):
        Buffer.open(path)
    with pytest.raises(BufferFormatError, match="newer totem-agent"):
        Buffer.open(path, readonly=True)


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    path.write_bytes(b"this is a text file, not a database" * 200)
    with pytest.raises(BufferFormatError, match="not"):
        Buffer.open(path)


def test_another_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    with pytest.raises(BufferFormatError, match="not a totem-agent buffer"):
        Buffer.open(path)


def test_readonly_reads_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    with Buffer.open(path) as buf:
        buf.register_destination("d")
        buf.append(ts_of(1), cycle(1))
    with Buffer.open(path, readonly=True) as ro:
        assert ro.stats().destinations["d"].pending_samples == 20
        assert ro.read("d", 100) is not None
        with pytest.raises(PermissionError):
            ro.append(ts_of(2), cycle(2))
    with pytest.raises(FileNotFoundError):
        Buffer.open(tmp_path / "missing.db", readonly=True)


def test_bad_bounds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Buffer.open(tmp_path / "b.db", max_size_bytes=0)
    with pytest.raises(ValueError):
        Buffer.open(tmp_path / "b.db", max_age_seconds=-1)
    with pytest.raises(ValueError):
        Buffer.open(tmp_path / "b.db", chunk_cycles=0)
