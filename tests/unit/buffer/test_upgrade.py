"""Upgrades: a buffer written by an earlier format is opened, migrated, and loses nothing.

tests/fixtures/buffer/format-N.sqlite are real files written by the code of
format N (scripts/make_format_fixtures.py), with their golden export beside them
(format-N.jsonl) and their counts (format-N.json). There is one format so far, so
the migration mechanism itself is proven with a synthetic next step registered
on a copy of the file.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from totem_agent.buffer import FORMAT_VERSION, Buffer, BufferFormatError, schema
from totem_agent.buffer_cli import export

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "buffer"
FORMAT_FILES = sorted(FIXTURES.glob("format-*.sqlite"))
STALE_NAN_BITS = 0x7FF0000000000002
REPO = Path(__file__).resolve().parents[3]


def copy_of(fixture: Path, tmp_path: Path) -> Path:
    """Never open the checked-in file itself: opening writes -wal/-shm beside it."""
    target = tmp_path / "buffer.sqlite"
    shutil.copyfile(fixture, target)
    return target


def version_of(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT value FROM meta WHERE key = 'format_version'")
                   .fetchone()[0])
    finally:
        conn.close()


def tables_of(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def exported(buffer: Buffer) -> str:
    out = io.StringIO()
    export(buffer, None, None, "jsonl", out, io.StringIO())
    return out.getvalue()


def assert_everything_is_there(buffer: Buffer, fixture: Path) -> None:
    golden = fixture.with_suffix(".jsonl").read_text()
    text = exported(buffer)
    assert text.count("\n") == golden.count("\n")
    for number, (got, want) in enumerate(zip(text.splitlines(), golden.splitlines(),
                                             strict=True), 1):
        assert got == want, f"{fixture.name}: sample {number} differs"
    summary = json.loads(fixture.with_suffix(".json").read_text())
    stats = buffer.stats()
    assert stats.appended_samples == summary["appended_samples"]
    assert stats.appended_cycles == summary["appended_cycles"]
    assert stats.buffered_samples == summary["buffered_samples"]
    assert {name: {"cursor": d.cursor, "pending_samples": d.pending_samples,
                   "sent_samples": d.sent_samples, "dropped_samples": d.dropped_samples}
            for name, d in stats.destinations.items()} == summary["destinations"]


def test_there_is_a_fixture_for_every_format() -> None:
    assert [p.name for p in FORMAT_FILES] == [f"format-{n}.sqlite"
                                              for n in range(1, FORMAT_VERSION + 1)]


@pytest.fixture(params=FORMAT_FILES, ids=lambda p: p.stem)
def fixture(request: pytest.FixtureRequest) -> Path:
    return Path(request.param)


def test_every_checked_in_format_opens_with_every_sample_and_cursor(
        fixture: Path, tmp_path: Path) -> None:
    path = copy_of(fixture, tmp_path)
    with Buffer.open(path) as buffer:
        assert_everything_is_there(buffer, fixture)
        # The stale marker's NaN payload survives (the JSONL shows any NaN as "NaN").
        stale = [series for row in buffer.scan() for series in row
                 if series.name == "odd_values" and ("kind", "stale") in series.labels]
        bits = {struct.unpack("<Q", struct.pack("<d", v))[0]
                for s in stale for v in s.values if math.isnan(v)}
        assert bits == {STALE_NAN_BITS}
        # Shipping goes on where each destination stopped.
        summary = json.loads(fixture.with_suffix(".json").read_text())
        for name, counts in summary["destinations"].items():
            batch = buffer.read(name, 10_000)
            assert batch is not None and batch.after_seq == counts["cursor"]
    assert version_of(path) == FORMAT_VERSION
    # Once opened by this version, the read-only tools read it too.
    with Buffer.open(path, readonly=True) as buffer:
        assert_everything_is_there(buffer, fixture)


# -- the migration mechanism, with a synthetic format 2 ----------------------------------

class AddNotes:
    """A next format: a new table filled from the log, as a real step might."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, conn: sqlite3.Connection) -> None:
        self.runs += 1
        conn.execute("CREATE TABLE notes (first_seq INTEGER PRIMARY KEY, note TEXT)")
        conn.execute("INSERT INTO notes SELECT first_seq, 'migrated' FROM log")


@pytest.fixture
def format_1_copy(tmp_path: Path) -> Path:
    return copy_of(FIXTURES / "format-1.sqlite", tmp_path)


@pytest.fixture
def format_2_known(monkeypatch: pytest.MonkeyPatch) -> Iterator[AddNotes]:
    step = AddNotes()
    monkeypatch.setattr(schema, "FORMAT_VERSION", 2)
    monkeypatch.setattr(schema, "MIGRATIONS", {1: step})
    yield step


def test_opening_runs_the_step_once_and_moves_the_version(
        format_1_copy: Path, format_2_known: AddNotes) -> None:
    with Buffer.open(format_1_copy) as buffer:
        assert_everything_is_there(buffer, FIXTURES / "format-1.sqlite")
    assert format_2_known.runs == 1
    assert version_of(format_1_copy) == 2 and "notes" in tables_of(format_1_copy)
    Buffer.open(format_1_copy).close()
    assert format_2_known.runs == 1, "a migrated file was migrated again"


def test_a_reader_of_format_1_refuses_the_migrated_file(format_1_copy: Path) -> None:
    conn = schema.connect(format_1_copy)
    try:
        assert schema.migrate(conn, format_1_copy, target=2, steps={1: AddNotes()}) == 2
    finally:
        conn.close()
    # Rolling the agent back: the older code does not touch a newer file.
    with pytest.raises(BufferFormatError, match="newer totem-agent"):
        Buffer.open(format_1_copy)


def test_a_read_only_open_of_an_older_file_says_to_start_the_agent(
        format_1_copy: Path, format_2_known: AddNotes) -> None:
    with pytest.raises(BufferFormatError, match=r"older totem-agent.*Start the agent once"):
        Buffer.open(format_1_copy, readonly=True)
    assert version_of(format_1_copy) == 1 and format_2_known.runs == 0


def test_a_failing_step_leaves_the_file_at_the_old_format(
        format_1_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_done(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE notes (note TEXT)")
        conn.execute("DELETE FROM log")
        conn.execute("SELECT * FROM no_such_table")  # fails after changing things

    monkeypatch.setattr(schema, "FORMAT_VERSION", 2)
    monkeypatch.setattr(schema, "MIGRATIONS", {1: half_done})
    with pytest.raises(BufferFormatError, match=r"from format 1 to 2 failed.*still format 1"):
        Buffer.open(format_1_copy)
    assert version_of(format_1_copy) == 1 and "notes" not in tables_of(format_1_copy)
    monkeypatch.undo()
    with Buffer.open(format_1_copy) as buffer:  # the release that wrote it still reads it all
        assert_everything_is_there(buffer, FIXTURES / "format-1.sqlite")


def test_a_missing_step_is_named(format_1_copy: Path) -> None:
    conn = schema.connect(format_1_copy)
    try:
        with pytest.raises(BufferFormatError, match="no upgrade from buffer format 2 to 3"):
            schema.migrate(conn, format_1_copy, target=3, steps={1: AddNotes()})
    finally:
        conn.close()
    assert version_of(format_1_copy) == 2  # the step that exists was kept


MIGRATE_AND_HANG = """
import sys
from pathlib import Path
from totem_agent.buffer import schema

def step(conn):
    conn.execute("CREATE TABLE notes (n INTEGER)")
    conn.executemany("INSERT INTO notes VALUES (?)", ((i,) for i in range(100_000)))
    conn.execute("UPDATE meta SET value = 'half' WHERE key = 'created_ms'")
    print("inside", flush=True)
    sys.stdin.read()  # until killed

path = Path(sys.argv[1])
schema.migrate(schema.connect(path), path, target=2, steps={1: step})
"""


def test_kill_9_in_the_middle_of_a_step_leaves_the_old_format(format_1_copy: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", MIGRATE_AND_HANG, str(format_1_copy)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"inside\n", "the child did not reach the step"
        proc.kill()
    finally:
        proc.wait(10)
    assert proc.returncode == -9
    assert version_of(format_1_copy) == 1 and "notes" not in tables_of(format_1_copy)
    with Buffer.open(format_1_copy) as buffer:
        assert_everything_is_there(buffer, FIXTURES / "format-1.sqlite")
