"""The events API's schema: a request body in, validated `Event`s out, or one `EventError`.

Pure (no I/O, the clock is an argument), so every rule is tested with literals.
A batch is all or nothing: the first bad event rejects the whole request, and
the error names it (`events[2].amount`), so the kiosk app fixes and resends it
without wondering which half got in. docs/events.md is the user's copy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Label values become Prometheus label values and dashboard legends: printable,
# short, and without the characters that need escaping in the exposition format.
MAX_LABEL_LENGTH = 64
MAX_ID_LENGTH = 128


@dataclass(frozen=True)
class FieldSpec:
    kind: str            # "label" (string label value), "number" (finite, >= 0), "count"
    required: bool = True
    label: str | None = None   # the metric label it fills, when not the field's own name


# Per type: its fields (besides the common `type`, `id`, `timestamp`).
SCHEMA: dict[str, dict[str, FieldSpec]] = {
    "ticket_created": {"service": FieldSpec("label")},
    "ticket_completed": {"service": FieldSpec("label"), "wait_seconds": FieldSpec("number")},
    "queue_length": {"length": FieldSpec("count"), "service": FieldSpec("label", required=False)},
    "payment": {"status": FieldSpec("label"), "method": FieldSpec("label"),
                "amount": FieldSpec("number", required=False),
                # The PIN pad that handled it (docs/peripherals.md), and the TEF/ABECS
                # error code of a failed payment.
                "device": FieldSpec("label", required=False),
                "error_code": FieldSpec("label", required=False, label="code")},
    "service_usage": {"service": FieldSpec("label"), "status": FieldSpec("label")},
    # "type" names the event type, so the error's own type travels as error_type.
    "error": {"error_type": FieldSpec("label", label="type")},
}
COMMON_FIELDS = ("type", "id", "timestamp")


@dataclass(frozen=True)
class Limits:
    max_batch: int = 1000
    max_future_skew: float = 60.0
    max_age: float = 7 * 86400.0


@dataclass(frozen=True)
class Event:
    type: str
    labels: Mapping[str, str]            # metric label -> value, for the labels present
    values: Mapping[str, float]          # numeric fields present in the event
    id: str | None = None
    timestamp: float | None = None       # Unix seconds, when the app sent one
    index: int = 0                       # position in the request, for messages


class EventError(Exception):
    """A rejected request: HTTP status, a short error, the field at fault and why."""

    def __init__(self, status: int, error: str, field: str | None = None,
                 reason: str = "") -> None:
        super().__init__(f"{error}: {field}: {reason}" if field else f"{error}: {reason}")
        self.status = status
        self.error = error
        self.field = field
        self.reason = reason

    def as_json(self) -> dict[str, Any]:
        return {"error": self.error, "field": self.field, "reason": self.reason}


def _invalid(field_name: str, reason: str) -> EventError:
    return EventError(422, "invalid event", field_name, reason)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def decode_body(body: bytes) -> Any:
    """bytes -> JSON value; 400 for anything that is not strict UTF-8 JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise EventError(400, "invalid body", None,
                         f"not UTF-8 (byte {err.start}: {err.reason})") from None
    try:
        # parse_constant: NaN and Infinity are Python extensions, not JSON.
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise EventError(400, "invalid body", None, "JSON nested too deeply") from None
    except ValueError as err:
        raise EventError(400, "invalid body", None, f"not valid JSON: {err}") from None


def _label_value(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _invalid(where, f"expected a string, got {_kind(value)}")
    if not value or len(value) > MAX_LABEL_LENGTH:
        raise _invalid(where, f"must be 1 to {MAX_LABEL_LENGTH} characters, got {len(value)}")
    for ch in value:
        if not ch.isprintable() or ch in '"\\':
            raise _invalid(where, f"character {ch!r} is not allowed (printable characters "
                                  "other than quote and backslash)")
    return value


def _number(where: str, value: Any, whole: bool) -> float:
    # bool is an int in Python but never a number in an event.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(where, f"expected a number, got {_kind(value)}")
    if not math.isfinite(value):
        raise _invalid(where, "must be finite")
    if value < 0:
        raise _invalid(where, f"must not be negative, got {value}")
    if whole and value != int(value):
        raise _invalid(where, f"expected a whole number, got {value}")
    if value > 1e15:
        raise _invalid(where, f"implausibly large: {value}")
    return float(value)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), "?")


def _timestamp(where: str, value: Any, now: float, limits: Limits) -> float:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _invalid(where, "expected Unix seconds or an RFC 3339 time such as "
                                  "2026-11-23T10:15:00Z") from None
        if parsed.tzinfo is None:
            raise _invalid(where, "an RFC 3339 time needs a zone (Z or +01:00)")
        ts = parsed.timestamp()
    elif isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise _invalid(where, f"expected Unix seconds or an RFC 3339 string, got {_kind(value)}")
    else:
        ts = float(value)
    if ts > now + limits.max_future_skew:
        raise _invalid(where, f"{ts - now:.0f}s in the future (the limit is "
                              f"{limits.max_future_skew:g}s: is the kiosk's clock right?)")
    if ts < now - limits.max_age:
        raise _invalid(where, f"{now - ts:.0f}s old (the limit is {limits.max_age:g}s)")
    return ts


def parse_event(raw: Any, where: str, index: int, now: float, limits: Limits) -> Event:
    if not isinstance(raw, dict):
        raise _invalid(where, f"an event is a JSON object, got {_kind(raw)}")
    kind = raw.get("type")
    if kind is None:
        raise _invalid(f"{where}.type", "missing")
    if not isinstance(kind, str) or kind not in SCHEMA:
        raise _invalid(f"{where}.type", f"unknown event type {kind!r} (known: "
                                        f"{', '.join(SCHEMA)})")
    spec = SCHEMA[kind]
    for name in raw:
        if name not in spec and name not in COMMON_FIELDS:
            raise _invalid(f"{where}.{name}", f"not a field of {kind} (fields: "
                                              f"{', '.join([*spec, 'id', 'timestamp'])})")
    labels: dict[str, str] = {}
    values: dict[str, float] = {}
    for name, fs in spec.items():
        at = f"{where}.{name}"
        if name not in raw or raw[name] is None:
            if fs.required:
                raise _invalid(at, "missing")
            continue
        if fs.kind == "label":
            labels[fs.label or name] = _label_value(at, raw[name])
        else:
            values[name] = _number(at, raw[name], whole=fs.kind == "count")
    event_id = raw.get("id")
    if event_id is not None and (not isinstance(event_id, str) or not event_id
                                 or len(event_id) > MAX_ID_LENGTH or not event_id.isprintable()):
        raise _invalid(f"{where}.id", f"expected a printable string of 1 to "
                                      f"{MAX_ID_LENGTH} characters")
    ts = raw.get("timestamp")
    timestamp = None if ts is None else _timestamp(f"{where}.timestamp", ts, now, limits)
    return Event(kind, labels, values, event_id, timestamp, index)


def parse_events(body: bytes, now: float, limits: Limits) -> tuple[list[Event], bool]:
    """(events, was_batch). One object is one event; an array is a batch."""
    doc = decode_body(body)
    if isinstance(doc, list):
        if not doc:
            raise EventError(422, "invalid batch", "events", "empty array")
        if len(doc) > limits.max_batch:
            raise EventError(413, "batch too large", "events",
                             f"{len(doc)} events, the limit is {limits.max_batch}")
        events = [parse_event(item, f"events[{i}]", i, now, limits) for i, item in enumerate(doc)]
        ids = [e.id for e in events if e.id is not None]
        if len(ids) != len(set(ids)):
            seen: set[str] = set()
            for e in events:
                if e.id is not None and e.id in seen:
                    raise _invalid(f"events[{e.index}].id", f"id {e.id!r} appears twice "
                                                            "in this batch")
                if e.id is not None:
                    seen.add(e.id)
        return events, True
    return [parse_event(doc, "event", 0, now, limits)], False
