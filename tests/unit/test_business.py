"""Business metrics over a real business.sqlite in tmp_path: apply, restore, dedupe, cap."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.support import samples
from totem_agent.business import BusinessMetrics
from totem_agent.business_store import BusinessStore, StoreError
from totem_agent.events import Event


class Clock:
    def __init__(self, now: float = 1_795_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ev(kind: str, labels: dict[str, str] | None = None, id: str | None = None,
       timestamp: float | None = None, index: int = 0, **values: float) -> Event:
    return Event(kind, labels or {}, values, id, timestamp, index)


def open_metrics(path: Path, clock: Clock | None = None, **kwargs: Any) -> BusinessMetrics:
    return BusinessMetrics(BusinessStore(path / "business.sqlite"), clock=clock or Clock(),
                           **kwargs)


def values(metrics: BusinessMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return samples(metrics.collect())


def test_families_names_types_and_buckets(tmp_path: Path) -> None:
    m = open_metrics(tmp_path)
    m.record([ev("ticket_created", {"service": "caixa"}),
              ev("ticket_completed", {"service": "caixa"}, wait_seconds=45),
              ev("ticket_completed", {"service": "caixa"}, wait_seconds=700),
              ev("queue_length", {}, length=4),
              ev("payment", {"status": "approved", "method": "pix"}, amount=60),
              ev("payment", {"status": "declined", "method": "pix"}),
              ev("service_usage", {"service": "caixa", "status": "ok"}),
              ev("error", {"type": "printer_offline"})])
    families = {f.name: f.type for f in m.collect()}
    assert families == {
        "totem_ticket_created": "counter", "totem_ticket_completed": "counter",
        "totem_ticket_wait_time_seconds": "histogram", "totem_queue_length": "gauge",
        "totem_payment_processed": "counter", "totem_payment_amount": "histogram",
        "totem_service_usage": "counter", "totem_errors": "counter"}
    got = values(m)
    svc = (("service", "caixa"),)
    assert got[("totem_ticket_created_total", svc)] == 1
    assert got[("totem_ticket_completed_total", svc)] == 2
    wait = {dict(k[1])["le"]: v for k, v in got.items()
            if k[0] == "totem_ticket_wait_time_seconds_bucket"}
    assert wait == {"30.0": 0, "60.0": 1, "120.0": 1, "300.0": 1, "600.0": 1, "+Inf": 2}
    assert got[("totem_ticket_wait_time_seconds_sum", svc)] == 745
    assert got[("totem_queue_length", ())] == 4
    amount = {dict(k[1])["le"]: v for k, v in got.items() if k[0] == "totem_payment_amount_bucket"}
    assert amount == {"10.0": 0, "50.0": 0, "100.0": 1, "500.0": 1, "1000.0": 1, "+Inf": 1}
    assert got[("totem_payment_processed_total", (("method", "pix"), ("status", "declined")))] == 1
    assert got[("totem_errors_total", (("type", "printer_offline"),))] == 1


def test_state_survives_reopen_and_continues(tmp_path: Path) -> None:
    m = open_metrics(tmp_path)
    m.record([ev("payment", {"status": "approved", "method": "pix"}, amount=20, id="p1")])
    m.store.close()
    again = open_metrics(tmp_path)
    assert values(again) == values(m)
    again.record([ev("payment", {"status": "approved", "method": "pix"}, amount=600)])
    state = again.value("totem_payment_amount", method="pix")
    assert state is not None and (state.count, state.sum) == (2, 620)
    # The id seen before the restart is still remembered.
    result = again.record([ev("payment", {"status": "approved", "method": "pix"}, amount=20,
                              id="p1")])
    assert (result.accepted, result.duplicates) == (0, [0])
    counter = again.value("totem_payment_processed", method="pix", status="approved")
    assert counter is not None and counter.value == 2


def test_pragmas_and_format_version(tmp_path: Path) -> None:
    m = open_metrics(tmp_path / "new" / "dir")  # the state dir is created
    assert m.store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert m.store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    m.store.close()
    db = sqlite3.connect(tmp_path / "new" / "dir" / "business.sqlite")
    assert db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone() == ("1",)
    db.execute("UPDATE meta SET value='99' WHERE key='format_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="format version 99"):
        open_metrics(tmp_path / "new" / "dir")


def test_failed_commit_changes_nothing(tmp_path: Path) -> None:
    m = open_metrics(tmp_path)
    m.record([ev("ticket_created", {"service": "caixa"})])
    before = values(m)
    m.store.conn.execute("PRAGMA busy_timeout=50")
    # Another writer holds the database: the commit cannot happen.
    blocker = sqlite3.connect(tmp_path / "business.sqlite", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="locked"):
            m.record([ev("ticket_created", {"service": "caixa"}, id="t2")])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert values(m) == before
    # The id was not remembered either: the retry is applied.
    assert m.record([ev("ticket_created", {"service": "caixa"}, id="t2")]).accepted == 1


def test_duplicates_in_a_batch_are_skipped_rest_applied(tmp_path: Path) -> None:
    m = open_metrics(tmp_path)
    m.record([ev("error", {"type": "a"}, id="e1")])
    result = m.record([ev("error", {"type": "a"}, id="e1", index=0),
                       ev("error", {"type": "a"}, id="e2", index=1)])
    assert (result.accepted, result.duplicates) == (1, [0])
    state = m.value("totem_errors", type="a")
    assert state is not None and state.value == 2


def test_id_window_is_bounded_by_count_and_age(tmp_path: Path) -> None:
    clock = Clock()
    m = open_metrics(tmp_path, clock, max_ids=3, id_window=100.0)
    for i in range(5):
        m.record([ev("error", {"type": "a"}, id=f"e{i}")])
    rows = m.store.conn.execute("SELECT id FROM seen_ids ORDER BY id").fetchall()
    assert rows == [("e2",), ("e3",), ("e4",)]
    assert m.record([ev("error", {"type": "a"}, id="e0")]).accepted == 1  # forgotten
    clock.now += 101
    assert m.record([ev("error", {"type": "a"}, id="e4")]).accepted == 1  # expired
    m.store.close()
    # Restored: only what is inside the window.
    clock.now += 50
    again = open_metrics(tmp_path, clock, max_ids=3, id_window=100.0)
    assert again.record([ev("error", {"type": "a"}, id="e4")]).duplicates == [0]
    assert again.record([ev("error", {"type": "a"}, id="e3")]).accepted == 1


def test_label_values_over_the_cap_fold_into_other(tmp_path: Path) -> None:
    m = open_metrics(tmp_path, max_label_values=2)
    result = m.record([ev("ticket_created", {"service": s}) for s in ("a", "b", "c", "d", "a")])
    assert result.folded == 2
    got = values(m)
    assert {dict(k[1])["service"]: v for k, v in got.items()} == {"a": 2, "b": 1, "other": 2}
    m.store.close()
    again = open_metrics(tmp_path, max_label_values=2)  # the admitted values persist
    assert again.record([ev("ticket_created", {"service": "e"})]).folded == 1
    assert again.record([ev("ticket_created", {"service": "b"})]).folded == 0


def test_gauge_ignores_older_news(tmp_path: Path) -> None:
    m = open_metrics(tmp_path)
    m.record([ev("queue_length", {"service": "caixa"}, timestamp=1000.0, length=5)])
    m.record([ev("queue_length", {"service": "caixa"}, timestamp=900.0, length=9)])
    state = m.value("totem_queue_length", service="caixa")
    assert state is not None and state.value == 5
    m.record([ev("queue_length", {"service": "caixa"}, length=2)])  # no timestamp: now
    state = m.value("totem_queue_length", service="caixa")
    assert state is not None and state.value == 2


def test_on_change_called_after_commit(tmp_path: Path) -> None:
    calls: list[int] = []
    m = open_metrics(tmp_path)
    m.on_change = lambda: calls.append(len(values(m)))
    m.record([ev("ticket_created", {"service": "caixa"})])
    assert calls == [1]
