"""Property-based tests of the events schema (hypothesis), built from events.SCHEMA itself.

1. Any event the schema describes is accepted, and its fields come back as given.
2. Any JSON at all, and any bytes, is either accepted or refused with an
   EventError (a 4xx with a field and a reason): never another exception,
   which the server would turn into a 500.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from totem_agent.events import MAX_LABEL_LENGTH, SCHEMA, EventError, Limits, parse_events

NOW = 1_795_000_000.0
LIMITS = Limits(max_batch=50, max_future_skew=60.0, max_age=86400.0)

label_values = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn", "Cf", "Zs"),
                  blacklist_characters='"\\'),
    min_size=1, max_size=MAX_LABEL_LENGTH)
numbers = st.one_of(st.integers(0, 10**9), st.floats(0, 1e12, allow_nan=False))


@st.composite
def valid_event(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(SCHEMA)))
    doc: dict[str, Any] = {"type": kind}
    for name, spec in SCHEMA[kind].items():
        if not spec.required and draw(st.booleans()):
            continue
        if spec.kind == "label":
            doc[name] = draw(label_values)
        elif spec.kind == "count":
            doc[name] = draw(st.integers(0, 10**6))
        else:
            doc[name] = draw(numbers)
    if draw(st.booleans()):
        doc["timestamp"] = draw(st.floats(NOW - 86400, NOW + 60))
    return doc


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_event(), min_size=1, max_size=20))
def test_every_described_event_is_accepted(docs: list[dict[str, Any]]) -> None:
    events, batch = parse_events(json.dumps(docs).encode(), NOW, LIMITS)
    assert batch and len(events) == len(docs)
    for doc, event in zip(docs, events, strict=True):
        assert event.type == doc["type"]
        for name, spec in SCHEMA[event.type].items():
            if name not in doc:
                continue
            if spec.kind == "label":
                assert event.labels[spec.label or name] == doc[name]
            else:
                assert event.values[name] == doc[name]


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["type", "service", "amount", "id", "timestamp",
                                       "length", "status", "method", "x"]) | st.text(),
                      children, max_size=6),
    max_leaves=20)


@settings(max_examples=500)
@given(json_values)
def test_any_json_is_accepted_or_refused_cleanly(doc: Any) -> None:
    try:
        parse_events(json.dumps(doc).encode(), NOW, LIMITS)
    except EventError as err:
        assert 400 <= err.status < 500 and err.reason


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_any_bytes_are_accepted_or_refused_cleanly(body: bytes) -> None:
    try:
        parse_events(body, NOW, LIMITS)
    except EventError as err:
        assert err.status in (400, 413, 422) and err.reason
