"""The printer collector against fake printers behind real pseudo-terminals and TCP.

pyserial opens the pty slave exactly as it opens /dev/ttyUSB0; the fake answers
each dialect byte for byte (tests/fakes/escpos_printer.py). Each case asserts the
exported series and the /health sentence.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.escpos_printer import (
    FakeEscposNetworkPrinter,
    FakeEscposPrinter,
    printer_toml,
)
from tests.integration.servers import agent_config
from tests.support import samples, wait_until
from totem_agent.collectors.base import CollectorContext
from totem_agent.collectors.printer.collector import PrinterCollector
from totem_agent.health import DEGRADED, NOT_APPLICABLE, OK
from totem_agent.scheduler import Scheduler

pytestmark = pytest.mark.integration

P = (("printer", "receipt"),)


def make(port: str = "", **keys: Any) -> PrinterCollector:
    entry = {"name": "receipt", **({"port": port} if port else {}), **keys}
    return PrinterCollector(CollectorContext(), {"printers": (entry,)})


def scrape(collector: PrinterCollector) -> tuple[dict[Any, float], str, str]:
    series = samples(collector.collect())
    check = collector.health_checks()[0]
    return series, check.status, check.message


def flag(series: dict[Any, float], name: str) -> float | None:
    return series.get((f"totem_printer_{name}", P))


def error(series: dict[Any, float], kind: str) -> float | None:
    return series.get(("totem_printer_error", (("kind", kind), ("printer", "receipt"))))


def failures(series: dict[Any, float], reason: str) -> float:
    return series[("totem_printer_status_probe_failures_total",
                   (("printer", "receipt"), ("reason", reason), ("source", "escpos")))]


def success(series: dict[Any, float]) -> float:
    return series[("totem_printer_status_probe_success", (*P, ("source", "escpos")))]


@pytest.fixture
def fakes() -> Iterator[list[FakeEscposPrinter]]:
    made: list[FakeEscposPrinter] = []
    yield made
    for fake in made:
        fake.close()


# What each dialect can tell: Bematech cannot read paper with the cover open, and
# has no mechanical-error bit; Daruma reports one generic error.
CASES = [
    ("healthy", {}, OK, "Receipt printer: ok", {"online": 1, "cover_open": 0, "paper_out": 0}),
    ("cover open", {"cover_open": True}, DEGRADED, "Receipt printer: cover open",
     {"online": 0, "cover_open": 1}),
    ("paper near end", {"paper_near_end": True}, DEGRADED,
     "Receipt printer: paper running low", {"online": 1, "paper_near_end": 1, "paper_out": 0}),
    ("paper out", {"paper_out": True}, DEGRADED, "Receipt printer: paper out",
     {"online": 0, "paper_out": 1}),
]


@pytest.mark.parametrize("dialect", ["epson", "bematech", "daruma", "custom"])
def test_every_dialect_reports_each_state(fakes: list[FakeEscposPrinter], dialect: str) -> None:
    fake = FakeEscposPrinter(dialect)
    fakes.append(fake)
    collector = make(fake.port, dialect=dialect)
    for label, state, status, message, expected in CASES:
        fake.set_state(**{"cover_open": False, "paper_near_end": False, "paper_out": False,
                          **state})
        series, got_status, got_message = scrape(collector)
        assert (got_status, got_message) == (status, message), (dialect, label)
        assert success(series) == 1.0
        for name, value in expected.items():
            assert flag(series, name) == value, (dialect, label, name)
        if dialect == "bematech" and state.get("cover_open"):
            # The sensor sees no paper with the cover open: unknown, so absent.
            assert flag(series, "paper_out") is None
            assert flag(series, "paper_near_end") is None
    # Only Custom has a presenter; elsewhere the series is absent, never 0.
    has_presenter = flag(series, "ticket_in_presenter") is not None
    assert has_presenter == (dialect == "custom")
    assert fake.printed == b"", "the agent must never print"


@pytest.mark.parametrize("dialect", ["epson", "bematech", "custom"])
def test_cutter_error(fakes: list[FakeEscposPrinter], dialect: str) -> None:
    fake = FakeEscposPrinter(dialect, cutter_error=True)
    fakes.append(fake)
    series, status, message = scrape(make(fake.port, dialect=dialect))
    assert status == DEGRADED
    assert message == "Receipt printer: cutter error (paper jammed in the cutter?)"
    assert error(series, "autocutter") == 1.0
    assert error(series, "unrecoverable") == 0.0
    assert flag(series, "online") == 0.0


def test_custom_presenter_ticket(fakes: list[FakeEscposPrinter]) -> None:
    fake = FakeEscposPrinter("custom", ticket_in_presenter=True)
    fakes.append(fake)
    series, status, message = scrape(make(fake.port, dialect="custom"))
    assert flag(series, "ticket_in_presenter") == 1.0
    assert (status, message) == (OK, "Receipt printer: a receipt is waiting to be taken")


@pytest.mark.parametrize("dialect", ["epson", "bematech", "daruma", "custom"])
def test_garbage_is_a_failed_probe_never_paper_adequate(fakes: list[FakeEscposPrinter],
                                                        dialect: str) -> None:
    fake = FakeEscposPrinter(dialect)
    fakes.append(fake)
    collector = make(fake.port, dialect=dialect)
    scrape(collector)
    fake.set_reply("garbage")
    series, status, message = scrape(collector)
    assert success(series) == 0.0
    assert failures(series, "invalid_response") == 1.0
    for name in ("online", "paper_out", "paper_near_end", "cover_open"):
        assert flag(series, name) is None, name
    assert error(series, "autocutter") is None
    assert status == DEGRADED
    assert message.startswith("Receipt printer: status unreadable (")
    assert "is the dialect setting right?" in message


def test_wrong_dialect_is_invalid_not_healthy(fakes: list[FakeEscposPrinter]) -> None:
    fake = FakeEscposPrinter("daruma")   # the agent is told Epson: DLE EOT goes unanswered
    fakes.append(fake)
    series, status, _ = scrape(make(fake.port, dialect="epson", timeout="0.3s"))
    assert success(series) == 0.0
    assert failures(series, "timeout") == 1.0
    assert flag(series, "paper_out") is None
    assert status == DEGRADED


def test_no_reply_times_out_within_the_probe_deadline(fakes: list[FakeEscposPrinter]) -> None:
    fake = FakeEscposPrinter("epson")
    fakes.append(fake)
    fake.set_reply("mute")
    series, status, message = scrape(make(fake.port, timeout="0.3s"))
    assert failures(series, "timeout") == 1.0
    assert flag(series, "online") is None
    assert (status, message) == (DEGRADED, "Receipt printer: not answering (no reply to "
                                 "DLE EOT 1 (printer status) within 0.3s)")
    # The duration histogram saw one probe, bounded by the deadline.
    total = series[("totem_printer_status_probe_duration_seconds_sum", (*P, ("source", "escpos")))]
    assert 0.25 <= total < 1.0


def test_late_reply_then_recovery(fakes: list[FakeEscposPrinter]) -> None:
    fake = FakeEscposPrinter("epson")
    fakes.append(fake)
    collector = make(fake.port, timeout="0.2s")
    fake.set_reply("late", late_delay=0.4)
    series, status, _ = scrape(collector)
    assert failures(series, "timeout") == 1.0 and status == DEGRADED
    fake.set_reply("normal")
    assert scrape(collector)[1:] == (OK, "Receipt printer: ok")


@pytest.mark.parametrize("dialect", ["epson", "custom"])
def test_a_doubled_reply_is_not_taken_for_the_next_query(fakes: list[FakeEscposPrinter],
                                                         dialect: str) -> None:
    # Cover open: DLE EOT 1 answers 1A, itself a valid DLE EOT 2 byte meaning "cover
    # closed". Reading the stale copy as the next answer would hide the open cover.
    fake = FakeEscposPrinter(dialect, cover_open=True)
    fakes.append(fake)
    fake.set_reply("double")
    series, status, message = scrape(make(fake.port, dialect=dialect))
    assert (status, message) == (DEGRADED, "Receipt printer: cover open")
    assert flag(series, "cover_open") == 1.0


def test_unplugged_mid_probe(fakes: list[FakeEscposPrinter]) -> None:
    fake = FakeEscposPrinter("epson")
    fakes.append(fake)
    collector = make(fake.port)
    assert scrape(collector)[1] == OK
    fake.set_reply("unplug")
    series, status, message = scrape(collector)
    assert fake.unplugged
    assert failures(series, "io_error") == 1.0
    assert flag(series, "online") is None
    assert status == DEGRADED and message.startswith("Receipt printer: cannot be reached")
    # The next poll finds no port at all.
    series, status, message = scrape(collector)
    assert message == f"Receipt printer: not connected ({fake.port} does not exist)"
    assert series[("totem_printer_device_present", (("connection", "serial"), *P))] == 0.0
    assert failures(series, "io_error") == 2.0


def test_paper_low_then_out_then_replaced(fakes: list[FakeEscposPrinter]) -> None:
    fake = FakeEscposPrinter("epson")
    fakes.append(fake)
    collector = make(fake.port)
    steps = [
        ({}, OK, "Receipt printer: ok", (0, 0)),
        ({"paper_near_end": True}, DEGRADED, "Receipt printer: paper running low", (1, 0)),
        ({"paper_near_end": True, "paper_out": True}, DEGRADED, "Receipt printer: paper out",
         (1, 1)),
        ({"paper_near_end": False, "paper_out": False}, OK, "Receipt printer: ok", (0, 0)),
    ]
    sinces: list[float] = []
    for changes, status, message, (near, out) in steps:
        fake.set_state(**changes)
        series, got_status, got_message = scrape(collector)
        assert (got_status, got_message) == (status, message)
        assert (flag(series, "paper_near_end"), flag(series, "paper_out")) == (near, out)
        since = collector.health_checks()[0].since
        assert since is not None
        sinces.append(since)
    assert sorted(sinces) == sinces and len(set(sinces)) == len(sinces)


def test_identity_is_read_once(fakes: list[FakeEscposPrinter]) -> None:
    fake = FakeEscposPrinter("epson", maker="EPSON", model="TM-T20III", firmware="1.01")
    fakes.append(fake)
    collector = make(fake.port)
    series, _, _ = scrape(collector)
    info = [k for k in series if k[0] == "totem_printer_info"]
    assert info == [("totem_printer_info", (("connection", "serial"), ("dialect", "epson"),
                                            ("firmware", "1.01"), ("model", "TM-T20III"),
                                            ("printer", "receipt"), ("vendor", "EPSON")))]
    asked = sum(1 for c in fake.commands if c[:2] == b"\x1dI")
    scrape(collector)
    scrape(collector)
    assert sum(1 for c in fake.commands if c[:2] == b"\x1dI") == asked == 3


def test_port_held_by_another_process_is_left_alone(fakes: list[FakeEscposPrinter]) -> None:
    fake = FakeEscposPrinter("epson")
    fakes.append(fake)
    with open(fake.port, "rb", buffering=0) as held:
        holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                  stdin=held)
    try:
        before = len(fake.commands)
        series, status, message = scrape(make(fake.port))
        assert failures(series, "port_busy") == 1.0
        assert flag(series, "paper_out") is None
        assert status == NOT_APPLICABLE
        assert message.startswith("Receipt printer: status unknown, ")
        assert f"(pid {holder.pid})" in message
        assert len(fake.commands) == before, "the agent wrote to a port another program holds"
    finally:
        holder.kill()
        holder.wait()


def test_asb_mode_keeps_the_port_and_follows_changes(fakes: list[FakeEscposPrinter]) -> None:
    fake = FakeEscposPrinter("epson")
    fakes.append(fake)
    collector = make(fake.port, mode="asb")
    assert scrape(collector)[1:] == (OK, "Receipt printer: ok")
    fake.set_state(cover_open=True)
    wait_until(lambda: scrape(collector)[2] == "Receipt printer: cover open",
               message="the ASB frame for the open cover")
    fake.set_state(cover_open=False, paper_out=True)
    wait_until(lambda: scrape(collector)[2] == "Receipt printer: paper out",
               message="the ASB frame for paper out")
    # One GS a at start; no status request per poll.
    assert [c for c in fake.commands if c[:2] == b"\x10\x04"] == []
    assert fake.commands.count(b"\x1da\x0e") == 1


def test_network_printer_on_raw_tcp() -> None:
    with FakeEscposNetworkPrinter("epson", cover_open=True) as fake:
        collector = PrinterCollector(CollectorContext(), {"printers": (
            {"name": "receipt", "address": fake.address},)})
        series, status, message = scrape(collector)
        assert (status, message) == (DEGRADED, "Receipt printer: cover open")
        assert series[("totem_printer_device_present", (("connection", "network"), *P))] == 1.0
        fake.set_reply("mute")
        series, status, message = scrape(collector)
        assert failures(series, "timeout") == 1.0
        assert message.startswith("Receipt printer: not answering")
    series, status, message = scrape(collector)
    assert failures(series, "io_error") == 1.0
    assert series[("totem_printer_device_present", (("connection", "network"), *P))] == 0.0


def test_hung_printer_does_not_stop_other_collectors(fakes: list[FakeEscposPrinter]) -> None:
    """A probe deadline longer than the collector's: the scheduler's fence holds, and
    loadavg keeps its interval meanwhile."""
    from totem_agent.collectors.loadavg import LoadavgCollector
    from totem_agent.config import CollectorSettings

    fake = FakeEscposPrinter("epson")
    fakes.append(fake)
    fake.set_reply("mute")
    printers = ({"name": "receipt", "port": fake.port, "timeout": 5.0},)
    scheduler = Scheduler([
        CollectorSettings("printer", PrinterCollector, True, 0.2, 0.3, {"printers": printers}),
        CollectorSettings("loadavg", LoadavgCollector, True, 0.2, 0.3, {}),
    ], CollectorContext())
    scheduler.start()
    try:
        wait_until(lambda: scheduler.states["printer"].outcome == "timeout", timeout=5,
                   message="the printer collector's deadline")
        runs = scheduler.states["loadavg"].runs
        wait_until(lambda: scheduler.states["loadavg"].runs >= runs + 5, timeout=3,
                   message="loadavg to keep running every 0.2s while the printer hangs")
        assert scheduler.states["printer"].outcome in ("timeout", "skipped")
        assert scheduler.states["loadavg"].outcome == "ok"
    finally:
        scheduler.stop()


def test_agent_reports_paper_out_in_health_and_metrics(tmp_path: Path, start_agent: Any,
                                                       fakes: list[FakeEscposPrinter]) -> None:
    fake = FakeEscposPrinter("epson", paper_out=True)
    fakes.append(fake)
    config = agent_config(tmp_path / "state", interval="1s", only=["loadavg", "printer"],
                          collectors={"printer": {"enabled": True}})
    agent = start_agent(config + printer_toml(port=fake.port, dialect="epson"))

    def check() -> dict[str, Any] | None:
        report = agent.health()[1]
        found = report["checks"].get("printer:receipt")
        return report if found and found["status"] != "pending" else None

    report = wait_until(check, message="the printer check")
    assert report is not None
    printer = report["checks"]["printer:receipt"]
    assert printer["status"] == "degraded" and printer["kind"] == "peripheral"
    assert printer["message"] == "Receipt printer: paper out"
    assert report["status"] == "degraded"
    metrics = agent.metrics()
    out = metrics["totem_printer_paper_out"].samples
    assert [(s.labels["printer"], s.value) for s in out] == [("receipt", 1.0)]
    fake.set_state(paper_out=False)
    wait_until(lambda: agent.health()[1]["checks"]["printer:receipt"]["status"] == "ok",
               message="the paper to be seen replaced")


def test_agent_without_printers_is_not_applicable(tmp_path: Path, start_agent: Any) -> None:
    config = agent_config(tmp_path / "state", interval="1s", only=["loadavg", "printer"])
    agent = start_agent(config)
    report = agent.health()[1]
    assert report["checks"]["collector:printer"]["status"] == "not_applicable"
    assert not any(name.startswith("printer:") for name in report["checks"])
    assert report["status"] == "ok"
    assert "totem_printer_online" not in agent.metrics_text()
