"""PIN-pad truth from the kiosk application's payment events (device, error_code)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import samples
from totem_agent.business import BusinessMetrics
from totem_agent.business_store import BusinessStore
from totem_agent.events import Event, Limits, parse_events

NOW = 1_795_000_000.0
def parse(raw: list[dict[str, object]]) -> list[Event]:
    return parse_events(json.dumps(raw).encode(), NOW, Limits())[0]


LAST = "totem_payment_device_last_successful_transaction_timestamp_seconds"


def test_payment_events_feed_the_device_series(tmp_path: Path) -> None:
    metrics = BusinessMetrics(BusinessStore(tmp_path / "business.sqlite"), clock=lambda: NOW)
    events = parse([
        {"type": "payment", "status": "approved", "method": "credit", "device": "pinpad",
         "timestamp": NOW - 60},
        {"type": "payment", "status": "declined", "method": "credit", "device": "pinpad",
         "error_code": "051"},
        {"type": "payment", "status": "error", "method": "debit", "device": "pinpad",
         "error_code": "051"},
        {"type": "payment", "status": "approved", "method": "pix"},   # no device: no series
    ])
    metrics.record(events)
    s = samples(metrics.collect())
    assert s[(LAST, (("device", "pinpad"),))] == NOW - 60
    assert s[("totem_payment_device_errors_total", (("code", "051"), ("device", "pinpad")))] == 2
    # The existing payment series keep their labels.
    assert s[("totem_payment_processed_total", (("method", "credit"), ("status", "approved")))] == 1
    # An older approval arriving late does not move the timestamp back.
    metrics.record(parse([{"type": "payment", "status": "approved", "method": "credit",
                           "device": "pinpad", "timestamp": NOW - 3600}]))
    assert samples(metrics.collect())[(LAST, (("device", "pinpad"),))] == NOW - 60
    metrics.store.close()


def test_error_codes_are_bounded(tmp_path: Path) -> None:
    metrics = BusinessMetrics(BusinessStore(tmp_path / "business.sqlite"), clock=lambda: NOW,
                              max_label_values=3)
    metrics.record([Event("payment", {"status": "error", "method": "credit", "device": "pinpad",
                                      "code": f"E{i}"}, {}, index=i) for i in range(6)])
    codes = {dict(k[1])["code"] for k in samples(metrics.collect())
             if k[0] == "totem_payment_device_errors_total"}
    assert codes == {"E0", "E1", "E2", "other"}
    metrics.store.close()
