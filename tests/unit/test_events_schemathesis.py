"""schemathesis against the events API's own OpenAPI description, on a running agent.

The agent serves GET /api/v1/openapi.json; schemathesis reads it from there and
sends generated requests (valid events, and bodies and headers that break the
description) to POST /api/v1/events. Every answer must be one the description
lists, with the listed body, and never a 500; a request that breaks the
description is refused (4xx). Bounded (max_examples) so it adds
seconds to the suite; the count of requests sent is printed at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from totem_agent.config import EVENTS_OPTIONS, Config  # noqa: E402
from totem_agent.runtime import Agent  # noqa: E402

SENT: list[int] = []


@pytest.fixture(scope="module")
def events_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    state = tmp_path_factory.mktemp("schemathesis")
    events = {key: opt.default for key, opt in EVENTS_OPTIONS.items()}
    config = Config(source="<test>",
                    agent={"listen": "127.0.0.1:0", "instance": "kiosk-1", "procfs": "/proc",
                           "sysfs": "/sys", "rootfs": "/", "state_dir": str(state),
                           "interval": 15.0},
                    labels={}, collectors={}, log={}, events=events)
    agent = Agent(config)
    agent.start()
    assert agent.server is not None
    try:
        yield schemathesis.openapi.from_url(f"{agent.server.url}/api/v1/openapi.json")
    finally:
        agent.stop()
        print(f"\nschemathesis requests sent: {len(SENT)}")


def test_events_api_conforms(events_schema: Any) -> None:
    operations = [result.ok() for result in events_schema.get_all_operations()]
    assert [op.label for op in operations] == ["POST /api/v1/events"]
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    for operation, mode in [(op, mode) for op in operations for mode in modes]:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=100, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def call(case: Any) -> None:
            SENT.append(1)
            # positive_data_acceptance is left out: the description cannot express the
            # timestamp window (now - max_age .. now + max_future_skew) nor max_batch, so
            # a schema-valid event from the year 3000 gets its documented 422/413.
            case.call_and_validate(
                excluded_checks=[schemathesis.checks.positive_data_acceptance])

        call()


def test_description_regressions() -> None:
    """What schemathesis found, pinned without it: the description's patterns compile
    in Python's re, and null optional fields are allowed where the validator takes them."""
    import json
    import re

    import jsonschema_rs  # comes with schemathesis

    from totem_agent.events import Limits, parse_events
    from totem_agent.openapi import openapi

    doc = openapi()
    for kind, schema in doc["components"]["schemas"].items():
        for name, prop in schema.get("properties", {}).items():
            for option in [prop, *prop.get("anyOf", [])]:
                if "pattern" in option:
                    assert re.compile(option["pattern"]), (kind, name)
    event = {"type": "payment", "status": "ok", "method": "pix", "amount": None,
             "id": None, "timestamp": None}
    parse_events(json.dumps(event).encode(), 1.0e9, Limits(10, 60.0, 86400.0))
    jsonschema_rs.validate({**doc["components"]["schemas"]["payment"],
                            "components": doc["components"]}, event)
