#!/usr/bin/env python3
"""Write the agent's SQLite files in their current formats, for later upgrade tests.

    .venv/bin/python scripts/make_format_fixtures.py [DIR]   (default tests/fixtures)

Buffer (buffer/schema.py, format N = its FORMAT_VERSION), in DIR/buffer/:
format-N.sqlite, format-N.jsonl (every buffered sample as `totem-agent buffer
export --format jsonl` writes it: the golden copy) and format-N.json (counters,
cursors, per-destination counts). 250 cycles of 15 s from 2026-01-01T00:00Z
(sealed chunks and single cycles): counters, fractional gauges, NaN, the stale
marker, infinities, -0.0, a device series present only part of the time, label
values with quotes and non-ASCII; two destinations: `central` has sent most of
it, `backup` less and had one batch rejected.

Events state (agent/business_store.py), in DIR/business/: format-N.sqlite and
format-N.json (what BusinessStore.load restores: series, admitted label values,
remembered event ids), from 200 events of every type.

Run it just before changing a format, and check the files in: the tests
(tests/unit/buffer/test_upgrade.py, tests/unit/test_business_upgrade.py) open
every format-*.sqlite with the current code and require all of it back. The
content is deterministic: a second run writes the same .jsonl and .json.
"""

from __future__ import annotations

import io
import json
import math
import struct
import sys
from pathlib import Path

from totem_agent import business_store
from totem_agent.buffer import FORMAT_VERSION, Buffer
from totem_agent.buffer_cli import export
from totem_agent.business import BusinessMetrics
from totem_agent.events import Limits, parse_event

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP_MS = 15_000
CYCLES = 250
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
KIOSK = {"instance": "kiosk-fixture", "job": "totem"}


def cycle(i: int) -> list[tuple[str, dict[str, str], float]]:
    samples: list[tuple[str, dict[str, str], float]] = [
        ("node_cpu_seconds_total", {**KIOSK, "cpu": "0", "mode": "idle"}, 1000.0 + 14.25 * i),
        ("node_cpu_seconds_total", {**KIOSK, "cpu": "0", "mode": "user"}, 50.0 + 0.73 * i),
        ("node_load1", KIOSK, round(0.05 * (i % 40), 2)),
        ("node_memory_MemAvailable_bytes", KIOSK, float(1_500_000_000 - 4096 * (i % 97))),
        ("node_time_seconds", KIOSK, (START_MS + i * STEP_MS) / 1000 + 0.001 * (i % 7)),
        ("node_hwmon_temp_celsius", {**KIOSK, "chip": "coretemp", "sensor": "temp1"},
         40.0 + math.sin(i / 10)),
        ("totem_payment_total", {**KIOSK, "status": "approved", "method": "pix"}, float(i // 3)),
        ("totem_payment_amount_sum", {**KIOSK, "method": "pix"}, 12.5 * (i // 3)),
        ("totem_printer_paper_ok", {**KIOSK, "printer": 'caixa "1" \u2013 balcão'},
         float(i % 50 != 0)),
        ("totem_agent_build_info", {**KIOSK, "version": "0.1.0"}, 1.0),
        ("odd_values", {**KIOSK, "kind": "nan"}, math.nan),
        ("odd_values", {**KIOSK, "kind": "stale"}, STALE_NAN if i % 10 == 0 else float(i)),
        ("odd_values", {**KIOSK, "kind": "inf"}, math.inf if i % 2 else -math.inf),
        ("odd_values", {**KIOSK, "kind": "negzero"}, -0.0),
        ("odd_values", {**KIOSK, "kind": "big"}, float(2**53 - i)),
    ]
    if 100 <= i < 180:  # a PIN pad plugged in for a while
        samples.append(("totem_pinpad_up", {**KIOSK, "port": "/dev/ttyACM0"}, 1.0))
    return samples


def build_buffer(directory: Path) -> dict[str, object]:
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"format-{FORMAT_VERSION}"
    database = stem.with_suffix(".sqlite")
    for old in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        old.unlink(missing_ok=True)
    now = [START_MS / 1000]
    buffer = Buffer.open(database, clock=lambda: now[0])
    try:
        buffer.register_destination("central")
        buffer.register_destination("backup")
        for i in range(CYCLES):
            now[0] = (START_MS + i * STEP_MS) / 1000
            buffer.append(START_MS + i * STEP_MS, cycle(i))
            if i == 200:  # central is 49 cycles behind at the end
                settle(buffer, "central")
            if i == 150:  # backup: one batch rejected, then sent up to cycle 130
                batch = buffer.read("backup", 15 * 10)
                assert batch is not None
                buffer.drop("backup", batch, "rejected")
                settle(buffer, "backup", until_seq=130)
        stats = buffer.stats()
        golden = io.StringIO()
        export(buffer, None, None, "jsonl", golden, io.StringIO())
        buffer.checkpoint()
    finally:
        buffer.close()
    stem.with_suffix(".jsonl").write_text(golden.getvalue())
    summary = {
        "format_version": FORMAT_VERSION,
        "appended_samples": stats.appended_samples,
        "appended_cycles": stats.appended_cycles,
        "buffered_samples": stats.buffered_samples,
        "rows": stats.rows,
        "destinations": {name: {"cursor": d.cursor, "pending_samples": d.pending_samples,
                                "sent_samples": d.sent_samples,
                                "dropped_samples": d.dropped_samples}
                         for name, d in sorted(stats.destinations.items())},
    }
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def settle(buffer: Buffer, destination: str, until_seq: int | None = None) -> None:
    """Send (ack) whole batches, as a shipper whose far end accepts everything would."""
    while (batch := buffer.read(destination, 15 * 10)) is not None:
        if until_seq is not None and batch.last_seq > until_seq:
            return
        buffer.ack(destination, batch)


def event(i: int) -> dict[str, object]:
    """The i-th event of the business fixture: every type, a few label values."""
    services = ("cartao", "identidade", "2a-via")
    j = i // 6  # the round: each type gets every label value in turn
    kinds: list[dict[str, object]] = [
        {"type": "ticket_created", "service": services[j % 3]},
        {"type": "ticket_completed", "service": services[j % 3], "wait_seconds": 30 + i % 400},
        {"type": "queue_length", "length": j % 12, "service": services[j % 3]},
        {"type": "payment", "status": ("approved", "declined", "error")[j % 3],
         "method": ("pix", "credit", "debit")[j % 4 % 3], "amount": round(3.5 + i * 1.25, 2),
         "device": "/dev/ttyACM0", **({"error_code": "ABECS_TIMEOUT"} if j % 3 == 2 else {})},
        {"type": "service_usage", "service": services[j % 3], "status": ("ok", "failed")[j % 2]},
        {"type": "error", "error_type": ("printer_jam", "network")[j % 2]},
    ]
    return {**kinds[i % len(kinds)], "id": f"evt-{i:04d}",
            "timestamp": (START_MS + i * STEP_MS) / 1000}


def build_business(directory: Path) -> dict[str, object]:
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"format-{business_store.FORMAT_VERSION}"
    database = stem.with_suffix(".sqlite")
    for old in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        old.unlink(missing_ok=True)
    now = [START_MS / 1000]
    store = business_store.BusinessStore(database)
    try:
        metrics = BusinessMetrics(store, max_label_values=5, clock=lambda: now[0])
        for first in range(0, 200, 10):  # in requests of 10 events, as they arrive
            now[0] = (START_MS + (first + 10) * STEP_MS) / 1000
            metrics.record([parse_event(event(i), f"event[{i}]", i, now[0], Limits())
                            for i in range(first, first + 10)])
        restored = store.load(0.0, 1_000_000)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()
    summary = restored_json(restored)
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def restored_json(restored: business_store.Restored) -> dict[str, object]:
    """What BusinessStore.load gave back, as JSON that compares exactly (floats by repr)."""
    return {
        "series": [[metric, dict(key), vars(state)]
                   for (metric, key), state in sorted(restored.series.items())],
        "label_values": {label: sorted(values)
                         for label, values in sorted(restored.label_values.items())},
        "seen_ids": sorted([list(pair) for pair in restored.seen_ids]),
    }


def main(argv: list[str]) -> int:
    directory = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / \
        "tests" / "fixtures"
    print(json.dumps(build_buffer(directory / "buffer"), indent=2))
    business = build_business(directory / "business")
    print(f"business: {len(business['series'])} series")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
