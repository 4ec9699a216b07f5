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


def gauge(name: str, values: dict[str, float], label: str = "device") -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, name, labels=[label])
    for label_value, v in values.items():
        family.add_metric([label_value], v)
    return family


def test_record_stores_what_cycle_samples_would_as_the_series_change(tmp_path: Path) -> None:
    """The recorder keeps the previous cycle's keys: every edge of reusing them,
    checked against cycle_samples + Buffer.append (the plain path) cycle by cycle."""
    reused = GaugeMetricFamily("mutated", "a labels dict its source changes in place",
                               labels=["x"])
    reused.add_metric(["1"], 5.0)

    def base(v: float) -> list[Metric]:
        return [*families(v), gauge("disk", {"sda": v, "sdb": 2 * v})]

    snapshots: list[tuple[dict[str, str], list[Metric]]] = []
    extra = {"instance": "kiosk-7", "job": "totem"}
    snapshots += [(extra, base(1.0)), (extra, base(2.0))]              # the same series
    snapshots += [(extra, [*base(3.0), gauge("disk", {"sdc": 9.0})])]  # one added
    snapshots += [(extra, base(4.0)[1:])]                               # one removed
    snapshots += [(extra, base(5.0)[::-1])]                             # reordered
    snapshots += [(extra, [*families(6.0), gauge("disk", {"sda": 1.0, "sdb": 2.0}, "dev")])]
    snapshots += [(extra, [*base(7.0), gauge("disk", {"sda": 70.0})])]  # twice: last wins
    snapshots += [(extra, base(7.5)),
                  ({"instance": "kiosk-8", "job": "totem"}, base(8.0))]  # reload: instance
    snapshots += [(extra, [*base(9.0), gauge("x", {"kiosk-own": 1.0}, "instance")])]
    snapshots += [(extra, [*base(10.0), reused]), (extra, [*base(11.0), reused])]
    snapshots += [(extra, []), (extra, base(12.0)), (extra, base(13.0))]

    current: list[Metric] = []
    rec = Recorder(Buffer.open(tmp_path / "fast.sqlite"), lambda: current,
                   instance="kiosk-7", interval=15.0)
    plain = Buffer.open(tmp_path / "plain.sqlite")
    told: list[list[tuple[str, dict[str, str], float]]] = []
    rec.on_appended = lambda ts, samples: told.append(
        [(name, dict(labels), value) for name, labels, value in samples])
    for buf in (rec.buffer, plain):
        buf.register_destination("d")
    for seq, (extra_labels, snapshot) in enumerate(snapshots):
        if seq == 11:  # the source reuses the family and changes a label in place
            reused.samples[0].labels["x"] = "2"
        current[:] = snapshot
        rec.extra_labels = extra_labels
        expected = cycle_samples(snapshot, extra_labels)
        ts = NOW + 15 * seq
        assert rec.record(ts) == plain.append(int(ts * 1000), expected)
        if expected:
            # Buffer.append keeps one sample per series: the last value, first position.
            merged = {(name, tuple(sorted(labels.items()))): (name, labels, value)
                      for name, labels, value in expected}
            first = list(dict.fromkeys((n, tuple(sorted(lb.items()))) for n, lb, _ in expected))
            assert told.pop(0) == [merged[key] for key in first]
        fast, slow = rec.buffer.read("d", 100_000), plain.read("d", 100_000)
        assert (fast is None) == (slow is None)
        if fast is not None and slow is not None:
            assert [(s.name, s.labels, s.values) for s in fast.series] == \
                [(s.name, s.labels, s.values) for s in slow.series], f"cycle {seq}"
            rec.buffer.ack("d", fast)
            plain.ack("d", slow)
    assert told == []
    plain.close()
    rec.buffer.close()


def test_listeners_get_only_the_names_they_want_as_the_series_change(tmp_path: Path) -> None:
    """`on_appended_names` picks samples by positions kept per layout: they must be
    the named samples of that very cycle, whatever changed since the last one."""
    snapshots: list[list[Metric]] = [
        [*families(1.0), gauge("disk", {"sda": 1.0, "sdb": 2.0})],
        [*families(2.0), gauge("disk", {"sda": 3.0, "sdb": 4.0})],      # the same series
        [gauge("disk", {"sdb": 5.0, "sdc": 6.0}), *families(3.0)],      # changed, moved
        [*families(4.0)],                                                # none wanted left
        [gauge("disk", {"sda": 7.0}), gauge("other", {"sda": 8.0})],
        [gauge("disk", {"sda": 9.0}), gauge("other", {"sda": 10.0})],
    ]
    current: list[Metric] = []
    every = Recorder(Buffer.open(tmp_path / "every.sqlite"), lambda: current,
                     instance="kiosk-7", interval=15.0)
    some = Recorder(Buffer.open(tmp_path / "some.sqlite"), lambda: current,
                    instance="kiosk-7", interval=15.0)
    wanted = frozenset({"disk", "node_load1"})
    some.on_appended_names = wanted
    told: dict[str, list[tuple[int, list[tuple[str, dict[str, str], float]]]]] = {
        "every": [], "some": []}
    for name, rec in (("every", every), ("some", some)):
        rec.on_appended = lambda ts, samples, name=name: told[name].append(
            (ts, [(n, dict(labels), value) for n, labels, value in samples]))
    for seq, snapshot in enumerate(snapshots):
        current[:] = snapshot
        for rec in (every, some):
            rec.record(NOW + 15 * seq)
    assert len(told["some"]) == len(snapshots)
    assert told["some"] == [(ts, [s for s in samples if s[0] in wanted])
                            for ts, samples in told["every"]]
    assert told["some"][3][1] == [("node_load1", {"instance": "kiosk-7", "job": "totem"}, 4.0)]
    assert told["some"][5][1] == [("disk", {"device": "sda", "instance": "kiosk-7",
                                            "job": "totem"}, 9.0)]
    every.buffer.close()
    some.buffer.close()
