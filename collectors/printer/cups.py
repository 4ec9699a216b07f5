"""Printers behind a CUPS queue, read with IPP Get-Printer-Attributes.

CUPS knows the queue's state (idle / processing / stopped), the reasons filters
and backends reported (`STATE: +media-empty-error`), whether it accepts jobs and
how many wait. It does not know paper sensors unless a vendor filter reports
them: the stock USB backend never asks (../shared/research/peripherals.md §1.7).
So a reason that is present says something (paper out, cover open); a reason
that is absent proves nothing, and the matching field stays unknown.

Reasons are sticky: a `media-empty-error` stays until a later job's backend clears
it, so `printer-state-change-time` is exported beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from totem_agent.collectors.printer.ipp import (
    STATUS_NOT_FOUND,
    IppError,
    get_printer_attributes,
    http_target,
)
from totem_agent.collectors.printer.status import (
    INVALID_RESPONSE,
    IO_ERROR,
    TIMEOUT,
    Identity,
    PrinterStatus,
    ProbeFailure,
)

PRINTER_GROUP = 0x04
STATES = {3: "idle", 4: "processing", 5: "stopped"}
SEVERITIES = ("report", "warning", "error")

REQUESTED = (
    "printer-state", "printer-state-reasons", "printer-state-message",
    "printer-is-accepting-jobs", "queued-job-count", "printer-state-change-time",
    "printer-make-and-model", "printer-info",
)

# RFC 8011 / PWG 5100.9 keywords (and CUPS's own) kept as label values; anything
# else is `other`, so a driver's private keywords cannot grow the series count.
KNOWN_REASONS = frozenset({
    "other", "media-needed", "media-jam", "moving-to-paused", "paused", "shutdown",
    "connecting-to-device", "timed-out", "stopping", "stopped-partly", "toner-low",
    "toner-empty", "spool-area-full", "cover-open", "interlock-open", "door-open",
    "input-tray-missing", "media-low", "media-empty", "output-tray-missing",
    "output-area-almost-full", "output-area-full", "marker-supply-low",
    "marker-supply-empty", "marker-waste-almost-full", "marker-waste-full",
    "fuser-over-temp", "fuser-under-temp", "opc-near-eol", "opc-life-over",
    "developer-low", "developer-empty", "interpreter-resource-unavailable", "offline",
    "hold-new-jobs", "cups-missing-filter", "cups-waiting-for-job-completed",
})


@dataclass(frozen=True)
class Reason:
    keyword: str      # bounded: a known keyword or "other"
    severity: str     # report, warning, error
    raw: str          # as CUPS said it, for messages


def split_reason(text: str) -> Reason | None:
    """`media-empty-error` -> (media-empty, error). No suffix means error (RFC 8011
    §5.4.12); `none` means no reason at all."""
    if text == "none" or not text:
        return None
    keyword, severity = text, "error"
    for suffix in SEVERITIES:
        if text.endswith("-" + suffix):
            keyword, severity = text[:-len(suffix) - 1], suffix
            break
    if keyword not in KNOWN_REASONS:
        keyword = "other"
    return Reason(keyword, severity, text)


@dataclass(frozen=True)
class CupsReading:
    state: str | None                       # idle, processing, stopped (None: unknown)
    reasons: tuple[Reason, ...]
    message: str
    accepting_jobs: bool | None
    queued_jobs: int | None
    state_change_time: float | None
    make_and_model: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def status(self) -> PrinterStatus:
        keywords = {r.keyword for r in self.reasons}
        errors: dict[str, bool] = {}
        if "media-jam" in keywords:
            errors["paper_jam"] = True
        return PrinterStatus(
            online=False if "offline" in keywords else None,
            cover_open=True if keywords & {"cover-open", "door-open", "interlock-open"}
            else None,
            paper_near_end=True if "media-low" in keywords else None,
            paper_out=True if keywords & {"media-empty", "media-needed"} else None,
            errors=errors,
        )


def parse_reading(attributes: dict[str, list[object]]) -> CupsReading:
    def one(name: str) -> object | None:
        values = attributes.get(name) or [None]
        return values[0]

    state_value = one("printer-state")
    if state_value is not None and not isinstance(state_value, int):
        raise IppError(f"printer-state is {state_value!r}, not an enum")
    reasons = tuple(r for r in (split_reason(str(v)) for v in attributes.get(
        "printer-state-reasons", []) if v is not None) if r is not None)
    accepting = one("printer-is-accepting-jobs")
    queued = one("queued-job-count")
    changed = one("printer-state-change-time")
    return CupsReading(
        state=STATES.get(state_value) if isinstance(state_value, int) else None,
        reasons=reasons,
        message=str(one("printer-state-message") or ""),
        accepting_jobs=accepting if isinstance(accepting, bool) else None,
        queued_jobs=queued if isinstance(queued, int) and not isinstance(queued, bool) else None,
        state_change_time=float(changed) if isinstance(changed, int)
        and not isinstance(changed, bool) and changed > 0 else None,
        make_and_model=str(one("printer-make-and-model") or ""),
    )


class CupsPrinter:
    """The status source of one CUPS queue."""

    source = "cups"
    connection = "cups"

    def __init__(self, uri: str, timeout: float) -> None:
        self.uri = uri
        self.timeout = timeout
        _, host, port, self.path, _ = http_target(uri)
        self.server = f"{host}:{port}"
        self.server_up: bool | None = None
        self.reading: CupsReading | None = None
        self.present: bool | None = None

    def probe(self, identity_wanted: bool = False) -> tuple[PrinterStatus, Identity | None]:
        import http.client  # only when a CUPS printer is queried (see ipp.py)

        self.reading = None
        try:
            response = get_printer_attributes(self.uri, REQUESTED, self.timeout)
        except TimeoutError as err:
            self.server_up = False
            raise ProbeFailure(TIMEOUT, f"the print server at {self.server} did not answer "
                               f"within {self.timeout:g}s") from err
        except OSError as err:
            self.server_up = False
            raise ProbeFailure(IO_ERROR, f"cannot reach the print server at {self.server} "
                               f"({err.strerror or err})") from err
        except (IppError, http.client.HTTPException) as err:
            self.server_up = False
            raise ProbeFailure(INVALID_RESPONSE, f"the print server at {self.server} sent "
                               f"something that is not IPP ({err})") from err
        self.server_up = True
        if response.status == STATUS_NOT_FOUND:
            self.present = False
            raise ProbeFailure(IO_ERROR, f"the print server at {self.server} has no queue "
                               f"{self.path}")
        if not response.ok:
            raise ProbeFailure(INVALID_RESPONSE, f"the print server at {self.server} answered "
                               f"IPP status {response.status:#06x}")
        try:
            reading = parse_reading(response.group(PRINTER_GROUP))
        except IppError as err:
            raise ProbeFailure(INVALID_RESPONSE, str(err)) from err
        self.present = True
        self.reading = reading
        identity = None
        if identity_wanted and reading.make_and_model:
            identity = Identity(model=reading.make_and_model)
        return reading.status(), identity

    def close(self) -> None:
        pass
