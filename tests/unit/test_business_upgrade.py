"""Upgrades of business.sqlite (the events' counters): every older format opens with
its whole state, and the migration steps are all-or-nothing.

tests/fixtures/business/format-N.sqlite were written by the code of format N
(scripts/make_format_fixtures.py); format-N.json is what that code restored from it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from totem_agent import business_store
from totem_agent.business_store import FORMAT_VERSION, BusinessStore, Restored, StoreError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "business"
FORMAT_FILES = sorted(FIXTURES.glob("format-*.sqlite"))


def as_json(restored: Restored) -> dict[str, Any]:
    return {
        "series": [[metric, dict(key), vars(state)]
                   for (metric, key), state in sorted(restored.series.items())],
        "label_values": {label: sorted(values)
                         for label, values in sorted(restored.label_values.items())},
        "seen_ids": sorted([list(pair) for pair in restored.seen_ids]),
    }


def copy_of(fixture: Path, tmp_path: Path) -> Path:
    target = tmp_path / "business.sqlite"
    shutil.copyfile(fixture, target)
    return target


def version_of(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("SELECT value FROM meta WHERE key = 'format_version'")
                   .fetchone()[0])
    finally:
        conn.close()


def test_there_is_a_fixture_for_every_format() -> None:
    assert [p.name for p in FORMAT_FILES] == [f"format-{n}.sqlite"
                                              for n in range(1, FORMAT_VERSION + 1)]


@pytest.mark.parametrize("fixture", FORMAT_FILES, ids=lambda p: p.stem)
def test_every_checked_in_format_restores_its_whole_state(fixture: Path, tmp_path: Path) -> None:
    store = BusinessStore(copy_of(fixture, tmp_path))
    try:
        restored = as_json(store.load(0.0, 1_000_000))
    finally:
        store.close()
    want = json.loads(fixture.with_suffix(".json").read_text())
    assert restored == want
    assert len(want["series"]) > 20 and len(want["seen_ids"]) == 200  # not an empty file


def add_column(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE series ADD COLUMN note TEXT NOT NULL DEFAULT 'v2'")


def test_a_step_runs_once_in_the_open_and_moves_the_version(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[int] = []

    def step(conn: sqlite3.Connection) -> None:
        runs.append(1)
        add_column(conn)

    monkeypatch.setattr(business_store, "FORMAT_VERSION", 2)
    monkeypatch.setattr(business_store, "MIGRATIONS", {1: step})
    path = copy_of(FIXTURES / "format-1.sqlite", tmp_path)
    for _ in range(2):
        store = BusinessStore(path)
        restored = as_json(store.load(0.0, 1_000_000))
        store.close()
        assert restored == json.loads((FIXTURES / "format-1.json").read_text())
    assert runs == [1] and version_of(path) == "2"
    monkeypatch.undo()
    # Rolled back to the agent of format 1: refused, and the file left alone.
    with pytest.raises(StoreError, match="format version 2, this agent reads 1"):
        BusinessStore(path)
    assert version_of(path) == "2"


def test_a_failing_step_leaves_format_1(tmp_path: Path) -> None:
    path = copy_of(FIXTURES / "format-1.sqlite", tmp_path)

    def half_done(conn: sqlite3.Connection) -> None:
        add_column(conn)
        conn.execute("DELETE FROM series")
        conn.execute("SELECT * FROM no_such_table")

    store = BusinessStore(path)
    try:
        with pytest.raises(StoreError, match=r"from format 1 to 2 failed.*still format 1"):
            store.migrate(target=2, steps={1: half_done})
        assert version_of(path) == "1"
        assert as_json(store.load(0.0, 1_000_000)) == json.loads(
            (FIXTURES / "format-1.json").read_text())
        with pytest.raises(StoreError, match="no upgrade from format 1 to 2"):
            store.migrate(target=2, steps={})
    finally:
        store.close()


def test_a_newer_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "business.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('format_version', '7')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="format version 7"):
        BusinessStore(path)
    conn = sqlite3.connect(path)
    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert tables == {"meta"}, "the agent created its tables in a newer format's file"
