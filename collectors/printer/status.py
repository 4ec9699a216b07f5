"""What is known about one printer, whatever the source said it.

Every field is tri-state: True, False, or None for "this source cannot tell" or
"the probe failed". None is never exported (absent is not 0) and never read as
fine. A failed probe is a `ProbeFailure` with one of a few bounded reasons, so
`totem_printer_status_probe_failures_total{reason}` stays small.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Why a probe gave no status (the `reason` label).
TIMEOUT = "timeout"                    # no (complete) reply before the deadline
INVALID_RESPONSE = "invalid_response"  # a reply that breaks the dialect's fixed bits
IO_ERROR = "io_error"                  # cannot open, or the link broke mid-probe
PORT_BUSY = "port_busy"                # another program holds the port: not touched
FAILURE_REASONS = (TIMEOUT, INVALID_RESPONSE, IO_ERROR, PORT_BUSY)

# Error kinds (the `kind` label of totem_printer_error), bounded.
ERROR_KINDS = ("autocutter", "unrecoverable", "auto_recoverable", "mechanical",
               "head_overheat", "paper_jam", "other")


class ProbeFailure(Exception):
    """A probe that learned nothing; `reason` is one of FAILURE_REASONS and the
    message says what happened in plain words."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PrinterStatus:
    """The normalised state of one printer at one probe."""

    online: bool | None = None
    cover_open: bool | None = None
    paper_near_end: bool | None = None
    paper_out: bool | None = None
    # kind -> active. A kind the source cannot report is absent, not False.
    errors: Mapping[str, bool] = field(default_factory=dict)
    ticket_in_presenter: bool | None = None

    @property
    def active_errors(self) -> list[str]:
        return [kind for kind in ERROR_KINDS if self.errors.get(kind)]


@dataclass(frozen=True)
class Identity:
    """Who the printer is (`totem_printer_info`): read once, never per poll."""

    vendor: str = ""
    model: str = ""
    firmware: str = ""
