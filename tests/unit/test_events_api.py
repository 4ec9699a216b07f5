"""POST /api/v1/events through the agent's real HTTP server, in-process, on a free port."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from totem_agent.config import EVENTS_OPTIONS, Config
from totem_agent.runtime import Agent

EVENTS = "/api/v1/events"


class Running:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        assert agent.server is not None
        self.host, self.port = agent.server.server_address[:2]

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(str(self.host), int(self.port), timeout=5)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def post(self, doc: Any, headers: Mapping[str, str] | None = None
             ) -> tuple[int, dict[str, Any]]:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        status, _, data = self.request("POST", EVENTS, body,
                                       {"Content-Type": "application/json", **(headers or {})})
        return status, json.loads(data)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, _, body = self.request("GET", "/metrics")
        assert status == 200
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(body.decode()) for s in f.samples}

    def business(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {k: v for k, v in self.metrics().items()
                if k[0].startswith("totem_") and not k[0].startswith("totem_agent")}


def start(tmp_path: Path, **events: Any) -> Agent:
    settings = {key: opt.default for key, opt in EVENTS_OPTIONS.items()}
    settings.update(events)
    config = Config(source="<test>",
                    agent={"listen": "127.0.0.1:0", "instance": "kiosk-1", "procfs": "/proc",
                           "sysfs": "/sys", "rootfs": "/", "state_dir": str(tmp_path / "state")},
                    labels={"store": "s1"}, collectors={}, log={}, events=settings)
    agent = Agent(config)
    agent.start()
    return agent


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Running]:
    agent = start(tmp_path, max_body_bytes=4096, max_label_values=3)
    yield Running(agent)
    agent.stop()


TICKET = {"type": "ticket_created", "service": "caixa"}
PAYMENT = {"type": "payment", "status": "approved", "method": "pix", "amount": 75.0}


def test_event_counted_with_constant_labels(api: Running) -> None:
    assert api.post(TICKET) == (200, {"accepted": 1, "duplicate": False})
    got = api.business()
    assert got[("totem_ticket_created_total", (("service", "caixa"), ("store", "s1")))] == 1


def test_batch_and_idempotent_retry(api: Running) -> None:
    batch = [{**PAYMENT, "id": "p-1"}, {**TICKET, "id": "t-1"}]
    assert api.post(batch) == (200, {"accepted": 2, "duplicates": []})
    assert api.post(batch) == (200, {"accepted": 0, "duplicates": [0, 1]})
    assert api.post({**PAYMENT, "id": "p-1"}) == (200, {"accepted": 0, "duplicate": True})
    got = api.business()
    labels = (("method", "pix"), ("status", "approved"), ("store", "s1"))
    assert got[("totem_payment_processed_total", labels)] == 1
    assert got[("totem_payment_amount_sum", (("method", "pix"), ("store", "s1")))] == 75
    assert api.metrics()[("totem_agent_events_duplicate_total", (("store", "s1"),))] == 3


BAD_REQUESTS: list[tuple[str, bytes, dict[str, str], int, str | None]] = [
    ("wrong content type", b"{}", {"Content-Type": "text/plain"}, 415, "Content-Type"),
    ("no content type", b"{}", {"Content-Type": ""}, 415, "Content-Type"),
    ("huge body", b"[" + b" " * 5000 + b"]", {}, 413, None),
    ("invalid utf-8", b'{"type":"ticket_created","service":"\xc3\x28"}', {}, 400, None),
    ("not json", b"{", {}, 400, None),
    ("one bad event rejects the batch",
     json.dumps([TICKET, TICKET, {**PAYMENT, "amount": float("nan")}]).encode(), {}, 400, None),
    ("negative amount in batch", json.dumps([TICKET, {**PAYMENT, "amount": -1}]).encode(), {},
     422, "events[1].amount"),
    ("label with quote", json.dumps({**TICKET, "service": 'a"b'}).encode(), {}, 422,
     "event.service"),
    ("unknown type", b'{"type": "coffee"}', {}, 422, "event.type"),
]


@pytest.mark.parametrize(("body", "headers", "status", "field"),
                         [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_change_nothing(api: Running, body: bytes, headers: dict[str, str],
                                     status: int, field: str | None) -> None:
    api.post(TICKET)
    before = api.business()
    got, _, data = api.request("POST", EVENTS, body,
                               {"Content-Type": "application/json", **headers})
    assert got == status
    answer = json.loads(data)
    assert answer["field"] == field and answer["reason"] and answer["error"]
    assert api.business() == before


def test_missing_content_length_is_411(api: Running) -> None:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=5)
    conn.putrequest("POST", EVENTS)
    conn.putheader("Content-Type", "application/json")
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 411 and response.getheader("Connection") == "close"
    conn.close()


def test_rejections_are_counted_by_reason(api: Running) -> None:
    api.post(b"{")
    api.post({"type": "coffee"})
    got = api.metrics()
    assert got[("totem_agent_events_rejected_total",
                (("reason", "invalid_body"), ("store", "s1")))] == 1
    assert got[("totem_agent_events_rejected_total",
                (("reason", "invalid_event"), ("store", "s1")))] == 1


def test_label_cap_folds_and_counts(api: Running) -> None:
    status, answer = api.post([{**TICKET, "service": s} for s in "abcde"])
    assert status == 200 and answer["folded_label_values"] == 2
    got = api.metrics()
    assert got[("totem_ticket_created_total", (("service", "other"), ("store", "s1")))] == 2
    assert got[("totem_agent_events_rejected_total",
                (("reason", "label_value_folded"), ("store", "s1")))] == 2


def test_http_golden_signals(api: Running) -> None:
    api.post(TICKET)
    api.post(b"{")
    api.request("GET", "/no/such/page")
    got = api.metrics()
    assert got[("http_requests_total", (("code", "200"), ("handler", EVENTS),
                                        ("store", "s1")))] == 1
    assert got[("http_requests_total", (("code", "400"), ("handler", EVENTS),
                                        ("store", "s1")))] == 1
    assert got[("http_requests_total", (("code", "404"), ("handler", "other"),
                                        ("store", "s1")))] == 1
    assert got[("http_request_duration_seconds_count", (("handler", EVENTS),
                                                        ("store", "s1")))] == 2


def test_token_required_and_compared(tmp_path: Path) -> None:
    agent = start(tmp_path, token="s3cret")
    api = Running(agent)
    try:
        status, answer = api.post(TICKET)
        assert status == 401 and answer["field"] == "Authorization"
        assert api.post(TICKET, {"Authorization": "Bearer wrong"})[0] == 401
        assert api.post(TICKET, {"Authorization": "Bearer s3cret"})[0] == 200
    finally:
        agent.stop()


def test_restart_restores_counters(tmp_path: Path) -> None:
    agent = start(tmp_path)
    api = Running(agent)
    api.post([TICKET, TICKET, PAYMENT])
    before = api.business()
    agent.stop()
    agent = start(tmp_path)
    try:
        assert Running(agent).business() == before
    finally:
        agent.stop()


def test_unusable_state_dir_degrades_health_and_answers_503(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file where the directory should be")
    agent = start(tmp_path)
    api = Running(agent)
    try:
        status, answer = api.post(TICKET)
        assert status == 503 and "business.sqlite" in answer["reason"]
        report = agent.health.report()
        assert report["checks"]["events"]["status"] == "degraded"
        assert report["status"] == "degraded"
    finally:
        agent.stop()


def test_openapi_matches_the_validator(api: Running) -> None:
    from totem_agent.events import SCHEMA

    status, headers, body = api.request("GET", "/api/v1/openapi.json")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    for kind, fields in SCHEMA.items():
        props = schemas[kind]["properties"]
        assert set(props) == {"type", "id", "timestamp", *fields}
        assert set(schemas[kind]["required"]) == {"type", *[n for n, s in fields.items()
                                                            if s.required]}
    assert set(doc["paths"]["/api/v1/events"]["post"]["responses"]) == {
        "200", "400", "401", "403", "411", "413", "415", "422", "503"}
