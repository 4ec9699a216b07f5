"""The `printer` collector: every configured printer, probed each interval.

Only what is known is exported. A field the source cannot report, or any field
after a failed probe, is left out (absent, not 0); the failure is counted by
reason. The collector also offers one health check per printer (`printer:NAME`,
kind "peripheral") with a sentence a store employee understands: "Receipt
printer: paper out".
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from totem_agent.collectors.base import Collector, CollectorContext, NoDataError
from totem_agent.collectors.printer.config import FIELDS, PrinterConfig, parse_printers
from totem_agent.collectors.printer.cups import CupsPrinter, CupsReading
from totem_agent.collectors.printer.escpos import EscposPrinter
from totem_agent.collectors.printer.status import (
    FAILURE_REASONS,
    INVALID_RESPONSE,
    IO_ERROR,
    PORT_BUSY,
    TIMEOUT,
    Identity,
    PrinterStatus,
    ProbeFailure,
)
from totem_agent.collectors.printer.windows import WindowsPrinter, WindowsReading
from totem_agent.health import DEGRADED, NOT_APPLICABLE, OK, PENDING, Check
from totem_agent.options import Option, OptionError

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
IDENTITY_ATTEMPTS = 3
ERROR_WORDS = {
    "autocutter": "cutter error (paper jammed in the cutter?)",
    "paper_jam": "paper jam",
    "unrecoverable": "unrecoverable error (switch it off and on; call service if it stays)",
    "auto_recoverable": "temporary error (print head too hot?)",
    "mechanical": "mechanical error",
    "head_overheat": "print head too hot",
    "other": "reports an error",
}
FAILURE_WORDS = {
    TIMEOUT: "not answering",
    INVALID_RESPONSE: "status unreadable",
    IO_ERROR: "cannot be reached",
}


class Source(Protocol):
    source: str
    present: bool | None

    @property
    def connection(self) -> str: ...

    def probe(self, identity_wanted: bool = False) -> tuple[PrinterStatus, Identity | None]: ...
    def close(self) -> None: ...


def _check_printers(value: Any) -> None:
    parse_printers(value)


@dataclass
class _Printer:
    config: PrinterConfig
    source: Source
    status: PrinterStatus | None = None
    failure: ProbeFailure | None = None
    failures: Counter[str] = field(default_factory=Counter)
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    identity: Identity | None = None
    identity_attempts: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0
    probes: int = 0
    check_key: tuple[str, str] | None = None
    since: float | None = None

    @property
    def name(self) -> str:
        return self.config.name


def build_source(config: PrinterConfig, context: CollectorContext,
                 get_windows_printer: Callable[[str], Mapping[str, Any]] | None = None
                 ) -> Source:
    if config.source == "escpos":
        assert config.escpos is not None
        return EscposPrinter(config.escpos, context.paths)
    if config.source == "cups":
        return CupsPrinter(config.uri, config.timeout)
    return WindowsPrinter(config.queue, get_windows_printer)


class PrinterCollector(Collector):
    name = "printer"
    description = ("Receipt and other printers: ESC/POS real-time status over serial, USB "
                   "or TCP 9100, CUPS queues over IPP, the Windows spooler")
    platforms = frozenset({"linux", "win32"})
    options = {
        "printers": Option("tables", [], "The printers to watch, one table each "
                           "(docs/peripherals.md lists the keys). Empty: the collector has "
                           "nothing to watch.", check=_check_printers),
    }
    def __init__(self, context: CollectorContext, settings: Mapping[str, Any],
                 clock: Callable[[], float] = time.time,
                 windows_spooler: Callable[[str], Mapping[str, Any]] | None = None) -> None:
        """`windows_spooler`: tests pass recorded PRINTER_INFO_2 values instead."""
        super().__init__(context, settings)
        try:
            configs = parse_printers(settings.get("printers", ()))
        except OptionError as err:
            raise ValueError(f"printers{err.subkey}: {err}") from None
        self.clock = clock
        self._printers = [_Printer(c, build_source(c, context, windows_spooler))
                          for c in configs]
        self._lock = threading.Lock()
        self._checks: list[Check] = [
            Check(name=f"printer:{p.name}", kind="peripheral", status=PENDING,
                  message=f"{p.config.title}: not checked yet") for p in self._printers]

    def close(self) -> None:
        """ASB mode keeps each serial port open (and locked) between polls: let it go."""
        for printer in self._printers:
            printer.source.close()

    # -- collecting --------------------------------------------------------------
    def collect(self) -> Iterable[Metric]:
        if not self._printers:
            raise NoDataError("no printers configured")
        for printer in self._printers:
            self._poll(printer)
        checks = [self._check(p) for p in self._printers]
        with self._lock:
            self._checks = checks
        return self._families()

    def _poll(self, printer: _Printer) -> None:
        wanted = (printer.identity is None and printer.identity_attempts < IDENTITY_ATTEMPTS
                  and not (printer.config.vendor and printer.config.model))
        started = time.monotonic()
        try:
            status, identity = printer.source.probe(identity_wanted=wanted)
        except ProbeFailure as failure:
            printer.status, printer.failure = None, failure
            printer.failures[failure.reason] += 1
            printer.last_error, printer.last_error_at = str(failure), self.clock()
        else:
            printer.status, printer.failure = status, None
            printer.last_success_at = self.clock()
            if wanted:
                printer.identity_attempts += 1
                if identity is not None:
                    printer.identity = identity
        elapsed = time.monotonic() - started
        index = next((i for i, le in enumerate(DURATION_BUCKETS) if elapsed <= le),
                     len(DURATION_BUCKETS))
        printer.buckets[index] += 1
        printer.duration_sum += elapsed
        printer.probes += 1

    # -- metrics -----------------------------------------------------------------
    def _families(self) -> list[Metric]:
        g = _Gauges()
        probe_success = g.gauge("totem_printer_status_probe_success",
                                "1 when the last status probe got a valid reply.",
                                ["printer", "source"])
        last_success = g.gauge("totem_printer_status_last_success_timestamp_seconds",
                               "When the status was last read (freshness of the fields).",
                               ["printer", "source"])
        failures = CounterMetricFamily("totem_printer_status_probe_failures",
                                       "Status probes that learned nothing, by reason.",
                                       labels=["printer", "source", "reason"])
        durations = HistogramMetricFamily("totem_printer_status_probe_duration_seconds",
                                          "How long each status probe took.",
                                          labels=["printer", "source"])
        present = g.gauge("totem_printer_device_present",
                          "1 when the printer's port exists or its address accepts a "
                          "connection.", ["printer", "connection"])
        info = g.gauge("totem_printer_info", "The printer's identity, read once at start-up.",
                       ["printer", "vendor", "model", "firmware", "dialect", "connection"])
        cups_up: dict[str, bool] = {}
        for p in self._printers:
            cfg, src = p.config, p.source
            labels = [p.name, src.source]
            probe_success.add_metric(labels, 1.0 if p.status is not None else 0.0)
            if p.last_success_at is not None:
                last_success.add_metric(labels, p.last_success_at)
            for reason in FAILURE_REASONS:
                failures.add_metric([*labels, reason], float(p.failures[reason]))
            cumulative, acc = [], 0
            for le, count in zip((*DURATION_BUCKETS, float("inf")), p.buckets, strict=True):
                acc += count
                cumulative.append((_le(le), float(acc)))
            durations.add_metric(labels, cumulative, p.duration_sum)
            if src.present is not None and src.connection != "spooler":
                present.add_metric([p.name, src.connection], 1.0 if src.present else 0.0)
            identity_done = (p.identity is not None or p.identity_attempts >= IDENTITY_ATTEMPTS
                             or bool(cfg.vendor and cfg.model))
            if identity_done:
                ident = p.identity or Identity()
                dialect = cfg.escpos.dialect if cfg.escpos is not None else ""
                info.add_metric([p.name, cfg.vendor or ident.vendor, cfg.model or ident.model,
                                 ident.firmware, dialect, src.connection], 1.0)
            if p.status is not None:
                g.status(p.name, p.status)
            if isinstance(src, CupsPrinter):
                if src.server_up is not None:
                    cups_up[src.server] = cups_up.get(src.server, False) or src.server_up
                if src.reading is not None:
                    g.cups(p.name, src.reading)
            if isinstance(src, WindowsPrinter) and src.reading is not None:
                g.windows(p.name, src.reading)
        if cups_up:
            up = g.gauge("totem_printer_cups_up",
                         "1 when the CUPS server answered the last IPP request.", ["server"])
            for server, value in cups_up.items():
                up.add_metric([server], 1.0 if value else 0.0)
        return [*g.families(), failures, durations]

    # -- health ------------------------------------------------------------------
    def health_checks(self) -> list[Check]:
        with self._lock:
            return list(self._checks)

    def _check(self, p: _Printer) -> Check:
        status, message = describe(p)
        key = (status, message)
        now = self.clock()
        if key != p.check_key:
            p.check_key, p.since = key, now
        details: dict[str, Any] = {"source": p.source.source,
                                   "connection": p.source.connection,
                                   "known": p.status is not None}
        return Check(name=f"printer:{p.name}", kind="peripheral", status=status,
                     message=message, since=p.since, last_error=p.last_error,
                     last_error_at=p.last_error_at, last_success_at=p.last_success_at,
                     details=details)


def _le(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


def describe(p: _Printer) -> tuple[str, str]:
    """(health status, sentence) of one printer from its last probe."""
    title = p.config.title
    if p.failure is not None:
        if p.failure.reason == PORT_BUSY:
            return NOT_APPLICABLE, f"{title}: status unknown, {p.failure}"
        detail = str(p.failure)
        if detail.startswith("not connected"):
            return DEGRADED, f"{title}: {detail}"
        if p.failure.reason == INVALID_RESPONSE and p.source.source == "escpos":
            detail += "; is the dialect setting right?"
        return DEGRADED, f"{title}: {FAILURE_WORDS.get(p.failure.reason, 'failed')} ({detail})"
    status = p.status
    assert status is not None
    problems: list[str] = []
    src = p.source
    if isinstance(src, WindowsPrinter) and src.reading is not None:
        if src.reading.work_offline:
            problems.append("set to \"Use Printer Offline\" in Windows")
        if src.reading.flags is None and not problems:
            return NOT_APPLICABLE, (f"{title}: status unknown (the Windows driver reports "
                                    "nothing about this printer)")
    if status.paper_out:
        problems.append("paper out")
    if status.cover_open:
        problems.append("cover open")
    problems += [ERROR_WORDS[kind] for kind in status.active_errors]
    if isinstance(src, CupsPrinter) and src.reading is not None:
        problems += _cups_problems(src.reading, status)
    if status.online is False and not problems:
        problems.append("offline")
    if status.paper_near_end and not status.paper_out:
        problems.append("paper running low")
    if problems:
        return DEGRADED, f"{title}: " + "; ".join(problems)
    if status.ticket_in_presenter:
        return OK, f"{title}: a receipt is waiting to be taken"
    return OK, f"{title}: ok"


def _cups_problems(reading: CupsReading, status: PrinterStatus) -> list[str]:
    out = []
    shown = {"media-empty", "media-needed", "cover-open", "door-open", "interlock-open",
             "media-jam", "media-low", "offline", "paused"}
    if reading.state == "stopped":
        why = f" ({reading.message})" if reading.message else ""
        out.append(f"stopped in CUPS{why}")
    if reading.accepting_jobs is False:
        out.append("not accepting jobs")
    for reason in reading.reasons:
        if reason.severity == "error" and reason.keyword not in shown:
            out.append(f"reports {reason.raw}")
    return out


class _Gauges:
    """Gauge families built as they are first used, in a stable order."""

    def __init__(self) -> None:
        self._families: dict[str, GaugeMetricFamily] = {}

    def gauge(self, name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
        if name not in self._families:
            self._families[name] = GaugeMetricFamily(name, doc, labels=labels)
        return self._families[name]

    def families(self) -> list[Metric]:
        return [f for f in self._families.values() if f.samples]

    def _flag(self, name: str, doc: str, printer: str, value: bool | None) -> None:
        if value is not None:
            self.gauge(name, doc, ["printer"]).add_metric([printer], 1.0 if value else 0.0)

    def status(self, printer: str, s: PrinterStatus) -> None:
        self._flag("totem_printer_online", "1 when the printer says it is online.", printer,
                   s.online)
        self._flag("totem_printer_cover_open", "1 when the cover is open.", printer,
                   s.cover_open)
        self._flag("totem_printer_paper_near_end", "1 when the roll is nearly used up.",
                   printer, s.paper_near_end)
        self._flag("totem_printer_paper_out", "1 when there is no paper.", printer,
                   s.paper_out)
        self._flag("totem_printer_ticket_in_presenter",
                   "1 while a printed ticket waits in the presenter (not taken).", printer,
                   s.ticket_in_presenter)
        errors = self.gauge("totem_printer_error", "1 while the printer reports an error of "
                            "this kind.", ["printer", "kind"])
        for kind, active in s.errors.items():
            errors.add_metric([printer, kind], 1.0 if active else 0.0)

    def cups(self, printer: str, r: CupsReading) -> None:
        if r.state is not None:
            state = self.gauge("totem_printer_cups_state", "The CUPS queue's state (one "
                               "series per state, 1 for the current one).",
                               ["printer", "state"])
            for name in ("idle", "processing", "stopped"):
                state.add_metric([printer, name], 1.0 if r.state == name else 0.0)
        reasons = self.gauge("totem_printer_cups_state_reason", "Each current "
                             "printer-state-reasons keyword (suffix split into severity).",
                             ["printer", "reason", "severity"])
        seen = set()
        for reason in r.reasons:
            if (reason.keyword, reason.severity) not in seen:
                seen.add((reason.keyword, reason.severity))
                reasons.add_metric([printer, reason.keyword, reason.severity], 1.0)
        if r.accepting_jobs is not None:
            self.gauge("totem_printer_cups_accepting_jobs", "1 when the queue accepts jobs.",
                       ["printer"]).add_metric([printer], 1.0 if r.accepting_jobs else 0.0)
        if r.queued_jobs is not None:
            self.gauge("totem_printer_cups_queued_jobs", "Jobs waiting in the queue.",
                       ["printer"]).add_metric([printer], float(r.queued_jobs))
        if r.state_change_time is not None:
            self.gauge("totem_printer_cups_state_change_timestamp_seconds",
                       "When the queue's state or reasons last changed.",
                       ["printer"]).add_metric([printer], r.state_change_time)

    def windows(self, printer: str, r: WindowsReading) -> None:
        self.gauge("totem_printer_windows_work_offline", "1 when the printer is set to "
                   "\"Use Printer Offline\".", ["printer"]).add_metric(
            [printer], 1.0 if r.work_offline else 0.0)
        if r.flags is not None:
            flags = self.gauge("totem_printer_windows_status_flag", "PRINTER_INFO_2 Status "
                               "flags, when the driver reports any.", ["printer", "flag"])
            for name, value in r.flags.items():
                flags.add_metric([printer, name], 1.0 if value else 0.0)


__all__ = ["FIELDS", "PrinterCollector", "describe"]
