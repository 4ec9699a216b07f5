"""Printers known to the Windows spooler: PRINTER_INFO_2 `Status` and `Attributes`.

The spooler only knows what the driver or language monitor tells it. With the
"Generic / Text Only" or raw POS drivers kiosks often use, `Status` stays 0 for
ever, so 0 means "the spooler knows nothing", not "fine": every field stays
unknown and no flag is exported. A non-zero Status shows the driver reports, and
then every flag is known (0 or 1). `Attributes & WORK_OFFLINE` is the spooler's
own setting and always known.

The Win32 calls live in `_win32` (one small module); tests replace its
`get_printer` with recorded values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from totem_agent.collectors.printer import _win32
from totem_agent.collectors.printer.status import (
    INVALID_RESPONSE,
    IO_ERROR,
    Identity,
    PrinterStatus,
    ProbeFailure,
)

# PRINTER_STATUS_* (MS-RPRN 2.2.3.12) worth a flag: the ones that mean trouble.
STATUS_FLAGS: dict[str, int] = {
    "paused": 0x1,
    "error": 0x2,
    "paper_jam": 0x8,
    "paper_out": 0x10,
    "paper_problem": 0x40,
    "offline": 0x80,
    "output_bin_full": 0x800,
    "not_available": 0x1000,
    "toner_low": 0x20000,
    "no_toner": 0x40000,
    "user_intervention": 0x100000,
    "out_of_memory": 0x200000,
    "door_open": 0x400000,
    "server_unknown": 0x800000,
}
PRINTER_ATTRIBUTE_WORK_OFFLINE = 0x400


@dataclass(frozen=True)
class WindowsReading:
    flags: Mapping[str, bool] | None   # None: Status 0, the driver reports nothing
    work_offline: bool
    jobs: int | None
    driver: str

    def status(self) -> PrinterStatus:
        if self.flags is None:
            return PrinterStatus(online=False if self.work_offline else None)
        f = self.flags
        errors = {"paper_jam": f["paper_jam"], "other": f["error"] or f["user_intervention"]}
        return PrinterStatus(
            online=not (f["offline"] or f["paused"] or self.work_offline
                        or f["not_available"]),
            cover_open=f["door_open"],
            paper_out=f["paper_out"],
            errors=errors,
        )


def decode(info: Mapping[str, Any]) -> WindowsReading:
    """Decode a PRINTER_INFO_2 as a dict (`Status`, `Attributes`, `cJobs`, `pDriverName`)."""
    try:
        status = int(info["Status"])
        attributes = int(info["Attributes"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"PRINTER_INFO_2 without a usable Status/Attributes ({err})") from err
    flags = None if status == 0 else {name: bool(status & bit)
                                      for name, bit in STATUS_FLAGS.items()}
    jobs = info.get("cJobs")
    return WindowsReading(flags=flags,
                          work_offline=bool(attributes & PRINTER_ATTRIBUTE_WORK_OFFLINE),
                          jobs=int(jobs) if isinstance(jobs, int) else None,
                          driver=str(info.get("pDriverName") or ""))


class WindowsPrinter:
    """The status source of one printer in the Windows spooler."""

    source = "windows"
    connection = "spooler"

    def __init__(self, queue: str,
                 get_printer: Callable[[str], Mapping[str, Any]] | None = None) -> None:
        self.queue = queue
        self._get_printer = get_printer or _win32.get_printer
        self.reading: WindowsReading | None = None
        self.present: bool | None = None

    def probe(self, identity_wanted: bool = False) -> tuple[PrinterStatus, Identity | None]:
        self.reading = None
        try:
            info = self._get_printer(self.queue)
        except FileNotFoundError as err:
            self.present = False
            raise ProbeFailure(IO_ERROR, f"Windows has no printer named {self.queue!r}") from err
        except OSError as err:
            raise ProbeFailure(IO_ERROR, f"cannot ask the spooler about {self.queue!r} "
                               f"({err})") from err
        self.present = True
        try:
            reading = decode(info)
        except ValueError as err:
            raise ProbeFailure(INVALID_RESPONSE, str(err)) from err
        self.reading = reading
        identity = Identity(model=reading.driver) if identity_wanted and reading.driver else None
        return reading.status(), identity

    def close(self) -> None:
        pass
