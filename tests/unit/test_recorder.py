"""The agent's side of the buffer: what a cycle appends, what it reports, the CLI's parts."""

from __future__ import annotations

import io
import math
import sqlite3
from pathlib import Path

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from totem_agent.buffer import Buffer
from totem_agent.buffer_cli import ExportError, export, parse_when, print_stats, stats_document
from totem_agent.recorder import Recorder, buffer_families, cycle_samples

NOW = 1_790_000_000.0


def families(value: float) -> list[Metric]:
    load = GaugeMetricFamily("node_load1", "load", value=value)
    ticks = CounterMetricFamily("totem_ticket_created", "tickets", labels=["service"],
                                created=NOW - 5)
    ticks.add_metric(["cashier"], 3.0, created=NOW - 5)
    wait = HistogramMetricFamily("totem_ticket_wait_time_seconds", "wait", labels=["service"])
    wait.add_metric(["cashier"], [("30", 1.0), ("+Inf", 2.0)], sum_value=70.0)
    return [load, ticks, wait]


def test_cycle_samples_carry_instance_and_job_and_skip_created() -> None:
    samples = cycle_samples(families(0.5), {"instance": "kiosk-7", "job": "totem"})
    names = [name for name, _, _ in samples]
    assert "totem_ticket_created_created" not in names
    assert names.count("totem_ticket_wait_time_seconds_bucket") == 2
    assert ("node_load1", {"instance": "kiosk-7", "job": "totem"}, 0.5) in samples
    assert ("totem_ticket_created_total",
            {"service": "cashier", "instance": "kiosk-7", "job": "totem"}, 3.0) in samples


def test_a_series_own_instance_label_is_kept() -> None:
    gauge = GaugeMetricFamily("x", "x", labels=["instance"])
    gauge.add_metric(["other"], 1.0)
    assert cycle_samples([gauge], {"instance": "k", "job": "totem"}) == [
        ("x", {"instance": "other", "job": "totem"}, 1.0)]


def make_recorder(tmp_path: Path, value: list[float], clock: list[float]) -> Recorder:
    buf = Buffer.open(tmp_path / "buffer.sqlite", clock=lambda: clock[0])
    buf.register_destination("central")
    return Recorder(buf, lambda: families(value[0]), instance="kiosk-7", interval=15.0,
                    clock=lambda: clock[0])


def test_record_appends_the_snapshot_with_the_cycle_time(tmp_path: Path) -> None:
    value, clock = [0.25], [NOW]
    rec = make_recorder(tmp_path, value, clock)
    assert rec.record() == 6
    value[0], clock[0] = 0.75, NOW + 15
    assert rec.record() == 6
    rows = [s for row in rec.buffer.scan() for s in row if s.name == "node_load1"]
    assert [(t, v) for s in rows for t, v in zip(s.timestamps, s.values, strict=True)] == [
        (int(NOW * 1000), 0.25), (int((NOW + 15) * 1000), 0.75)]
    stats = rec.stats
    assert stats is not None and stats.appended_samples == 12
    assert rec.health_checks()[0].status == "ok"


def test_metrics_report_pending_and_oldest_age_per_destination(tmp_path: Path) -> None:
    value, clock = [1.0], [NOW]
    rec = make_recorder(tmp_path, value, clock)
    rec.record()
    clock[0] = NOW + 90
    rec.record()
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in rec.metrics() for s in f.samples}
    dest = (("destination", "central"),)
    assert got[("totem_agent_buffer_pending_samples", dest)] == 12
    assert got[("totem_agent_buffer_oldest_pending_age_seconds", dest)] == pytest.approx(90)
    assert got[("totem_agent_buffer_appended_samples_total", ())] == 12
    assert got[("totem_agent_buffer_sent_samples_total", dest)] == 0
    assert got[("totem_agent_buffer_dropped_samples_total", (*dest, ("reason", "size")))] == 0
    assert got[("totem_agent_buffer_lost_cycles_total", (("reason", "disk_full"),))] == 0
    batch = rec.buffer.read("central", max_samples=100)
    assert batch is not None
    rec.buffer.ack("central", batch)
    rec.refresh()
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in rec.metrics() for s in f.samples}
    assert got[("totem_agent_buffer_pending_samples", dest)] == 0
    assert got[("totem_agent_buffer_oldest_pending_age_seconds", dest)] == 0
    assert got[("totem_agent_buffer_sent_samples_total", dest)] == 12


def test_a_full_disk_turns_the_check_degraded_and_recovers(tmp_path: Path) -> None:
    value, clock = [1.0], [NOW]
    rec = make_recorder(tmp_path, value, clock)
    rec.record()
    conn: sqlite3.Connection = rec.buffer._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    stored, n = 1, 0
    while stored and n < 500:  # values change every cycle, so pages run out
        n += 1
        clock[0] += 15
        value[0] = n * 1.37
        stored = rec.record()
    assert stored == 0, "the page limit never filled"
    check = rec.health_checks()[0]
    assert check.status == "degraded" and "disk is full" in check.message
    conn.execute("PRAGMA max_page_count = 1000000")
    clock[0] += 15
    assert rec.record() == 6
    assert rec.health_checks()[0].status == "ok"
    stats = rec.stats
    assert stats is not None and stats.lost_cycles.get("disk_full", 0) >= 1


def test_buffer_families_absent_without_stats() -> None:
    assert buffer_families(None, NOW) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("24h", int((NOW - 86400) * 1000)),
    ("90m", int((NOW - 5400) * 1000)),
    ("1790000000", 1_790_000_000_000),
    ("2026-11-23T10:00:00Z", 1_795_428_000_000),
    ("2026-11-23", 1_795_392_000_000),
])
def test_parse_when(text: str, expected: int) -> None:
    assert parse_when(text, NOW) == expected


def test_parse_when_names_what_it_wanted() -> None:
    with pytest.raises(ExportError, match="not a time: use 2026-11-23T10:00:00Z"):
        parse_when("yesterday", NOW)


def test_export_openmetrics_and_jsonl(tmp_path: Path) -> None:
    value, clock = [float("nan")], [NOW]
    rec = make_recorder(tmp_path, value, clock)
    rec.record()
    value[0], clock[0] = 2.5, NOW + 15
    rec.record()
    out = io.StringIO()
    assert export(rec.buffer, None, None, "openmetrics", out, io.StringIO()) == 12
    text = out.getvalue()
    assert text.endswith("# EOF\n")
    assert f'node_load1{{instance="kiosk-7",job="totem"}} NaN {NOW:.3f}\n' in text
    assert f'node_load1{{instance="kiosk-7",job="totem"}} 2.5 {NOW + 15:.3f}\n' in text
    out = io.StringIO()
    since = int((NOW + 10) * 1000)
    assert export(rec.buffer, since, None, "jsonl", out, io.StringIO()) == 6
    assert '"value":2.5' in out.getvalue() and "NaN" not in out.getvalue()


def test_stats_text_and_json(tmp_path: Path) -> None:
    value, clock = [1.0], [NOW]
    rec = make_recorder(tmp_path, value, clock)
    rec.record()
    stats = rec.buffer.stats()
    out = io.StringIO()
    print_stats(stats, rec.buffer.path, NOW + 3600, out)
    assert "central" in out.getvalue() and "1.0h" in out.getvalue()
    doc = stats_document(stats, rec.buffer.path, NOW + 60)
    assert doc["destinations"]["central"]["pending_samples"] == 6
    assert math.isclose(doc["destinations"]["central"]["oldest_pending_age_seconds"], 60)
