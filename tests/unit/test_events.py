"""The events schema (agent/events.py), pure: bodies as literals, the clock as a number."""

from __future__ import annotations

import json
from typing import Any

import pytest

from totem_agent.events import SCHEMA, EventError, Limits, parse_events

NOW = 1_795_000_000.0
LIMITS = Limits(max_batch=3, max_future_skew=60.0, max_age=3600.0)


def parse(doc: Any) -> list[Any]:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return parse_events(body, NOW, LIMITS)[0]


def rejected(doc: Any) -> EventError:
    with pytest.raises(EventError) as info:
        parse(doc)
    return info.value


VALID = [
    {"type": "ticket_created", "service": "caixa"},
    {"type": "ticket_completed", "service": "caixa", "wait_seconds": 42.5},
    {"type": "queue_length", "length": 7},
    {"type": "queue_length", "length": 0, "service": "caixa"},
    {"type": "payment", "status": "approved", "method": "pix", "amount": 99.9},
    {"type": "payment", "status": "declined", "method": "credit"},
    {"type": "service_usage", "service": "segunda_via", "status": "ok"},
    {"type": "error", "error_type": "printer_offline"},
]


@pytest.mark.parametrize("doc", VALID, ids=lambda d: d["type"])
def test_valid_events(doc: dict[str, Any]) -> None:
    [event] = parse(doc)
    assert event.type == doc["type"]
    for name, spec in SCHEMA[event.type].items():
        if name in doc:
            got = event.labels[spec.label or name] if spec.kind == "label" \
                else event.values[name]
            assert got == doc[name]


def test_error_type_travels_as_error_type() -> None:
    # "type" is the event's type, so the error's own type has its own field, and
    # fills the metric's `type` label.
    [event] = parse({"type": "error", "error_type": "printer_offline"})
    assert event.labels == {"type": "printer_offline"}
    assert rejected({"type": "error"}).field == "event.error_type"


def test_single_event_and_batch() -> None:
    events, batch = parse_events(json.dumps(VALID[0]).encode(), NOW, LIMITS)
    assert not batch and len(events) == 1
    events, batch = parse_events(json.dumps(VALID[:3]).encode(), NOW, LIMITS)
    assert batch and [e.index for e in events] == [0, 1, 2]


def test_timestamps() -> None:
    [event] = parse({**VALID[0], "timestamp": NOW - 10})
    assert event.timestamp == NOW - 10
    [event] = parse({**VALID[0], "timestamp": "2026-11-18T12:36:40+02:00"})
    assert event.timestamp == NOW - 1800


BAD: list[tuple[str, Any, int, str | None, str]] = [
    ("invalid utf-8", b'{"type": "ticket_created", "service": "\xff"}', 400, None, "UTF-8"),
    ("not json", b"{type: ticket}", 400, None, "JSON"),
    ("NaN literal", b'{"type": "payment", "status": "a", "method": "b", "amount": NaN}', 400,
     None, "NaN"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, 400, None, "deep"),
    ("empty batch", [], 422, "events", "empty"),
    ("batch too large", [VALID[0]] * 4, 413, "events", "limit is 3"),
    ("not an object", "hello", 422, "event", "object"),
    ("missing type", {"service": "a"}, 422, "event.type", "missing"),
    ("unknown type", {"type": "coffee"}, 422, "event.type", "unknown"),
    ("unknown field", {**VALID[0], "colour": "red"}, 422, "event.colour", "not a field"),
    ("missing service", {"type": "ticket_created"}, 422, "event.service", "missing"),
    ("service not a string", {"type": "ticket_created", "service": 3}, 422, "event.service",
     "string"),
    ("empty label", {"type": "ticket_created", "service": ""}, 422, "event.service", "1 to"),
    ("long label", {"type": "ticket_created", "service": "x" * 65}, 422, "event.service", "1 to"),
    ("newline in label", {"type": "ticket_created", "service": "a\nb"}, 422, "event.service",
     "not allowed"),
    ("quote in label", {"type": "ticket_created", "service": 'a"b'}, 422, "event.service",
     "not allowed"),
    ("negative amount", {**VALID[4], "amount": -1}, 422, "event.amount", "negative"),
    ("amount as string", {**VALID[4], "amount": "10"}, 422, "event.amount", "number"),
    ("amount as bool", {**VALID[4], "amount": True}, 422, "event.amount", "number"),
    ("huge amount", {**VALID[4], "amount": 1e300}, 422, "event.amount", "large"),
    ("nested amount", {**VALID[4], "amount": {"v": 1}}, 422, "event.amount", "number"),
    ("fractional length", {"type": "queue_length", "length": 1.5}, 422, "event.length", "whole"),
    ("future timestamp", {**VALID[0], "timestamp": NOW + 120}, 422, "event.timestamp", "future"),
    ("old timestamp", {**VALID[0], "timestamp": NOW - 7200}, 422, "event.timestamp", "old"),
    ("naive time", {**VALID[0], "timestamp": "2026-11-18T08:26:40"}, 422, "event.timestamp",
     "zone"),
    ("bad time", {**VALID[0], "timestamp": "yesterday"}, 422, "event.timestamp", "RFC 3339"),
    ("empty id", {**VALID[0], "id": ""}, 422, "event.id", "printable"),
    ("numeric id", {**VALID[0], "id": 7}, 422, "event.id", "printable"),
    ("bad event in batch", [VALID[0], VALID[1], {**VALID[4], "amount": -5}], 422,
     "events[2].amount", "negative"),
    ("repeated id in batch", [{**VALID[0], "id": "a"}, {**VALID[1], "id": "a"}], 422,
     "events[1].id", "twice"),
]


@pytest.mark.parametrize(("doc", "status", "field", "reason"),
                         [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_rejected(doc: Any, status: int, field: str | None, reason: str) -> None:
    err = rejected(doc)
    assert (err.status, err.field) == (status, field)
    assert reason in err.reason
    assert set(err.as_json()) == {"error", "field", "reason"}
