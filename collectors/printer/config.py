"""The `printers` key of [collectors.printer]: one table per printer, validated.

    [[collectors.printer.printers]]
    name = "receipt"             # the `printer` label
    source = "escpos"            # escpos | cups | windows
    port = "/dev/ttyUSB0"        # or address = "192.168.0.50:9100"
    dialect = "epson"            # epson | bematech | daruma | custom

    [[collectors.printer.printers]]
    name = "office"
    source = "cups"
    uri = "ipp://127.0.0.1:631/printers/office"

A table keyed by name works too (`[collectors.printer.printers.receipt]`). Every
problem names the entry and key: `collectors.printer.printers[0].baudrate: ...`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from totem_agent.collectors.printer.dialects import DIALECTS
from totem_agent.collectors.printer.escpos import EscposSettings
from totem_agent.collectors.printer.ipp import http_target
from totem_agent.options import Option, OptionError, parse_listen

SOURCES = ("escpos", "cups", "windows")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")

FIELDS: dict[str, Option] = {
    "name": Option("str", None, "The printer's name: the `printer` label and the health "
                   "check `printer:NAME`. Required."),
    "source": Option("choice", "escpos", "Where its status comes from.", choices=SOURCES),
    "title": Option("str", "", "How a person calls it in /health (default: \"Receipt "
                    "printer\" for the ESC/POS printer named receipt, \"Receipt printer "
                    "NAME\" for other ESC/POS ones, \"Printer NAME\" otherwise)."),
    "timeout": Option("duration", None, "Deadline of one status probe (default 1s for "
                      "ESC/POS, 3s for CUPS and Windows). Keep it below the collector's "
                      "timeout.", minimum=0.05),
    # escpos
    "port": Option("str", "", "escpos: serial / USB-CDC device, e.g. /dev/ttyUSB0 or "
                   "/dev/serial/by-id/..."),
    "address": Option("str", "", "escpos: HOST:PORT of a network printer's raw port, "
                      "e.g. 192.168.0.50:9100."),
    "dialect": Option("choice", "epson", "escpos: status commands the printer speaks.",
                      choices=tuple(DIALECTS)),
    "baudrate": Option("int", 9600, "escpos: serial speed (ignored by USB-CDC).", minimum=1),
    "mode": Option("choice", "poll", "escpos: poll = open, ask, close each time; asb = keep "
                   "the port open and read Automatic Status Back (only when no other program "
                   "uses the printer).", choices=("poll", "asb")),
    "vendor": Option("str", "", "Maker for totem_printer_info (default: asked once with GS I "
                     "where the dialect allows)."),
    "model": Option("str", "", "Model for totem_printer_info (default: asked once)."),
    # cups
    "uri": Option("str", "", "cups: the queue, ipp://HOST:PORT/printers/NAME."),
    # windows
    "queue": Option("str", "", "windows: the printer's name in Windows."),
}
SOURCE_KEYS = {
    "escpos": {"port", "address", "dialect", "baudrate", "mode", "vendor", "model"},
    "cups": {"uri", "vendor", "model"},
    "windows": {"queue", "vendor", "model"},
}
COMMON_KEYS = {"name", "source", "title", "timeout"}
DEFAULT_TIMEOUT = {"escpos": 1.0, "cups": 3.0, "windows": 3.0}


@dataclass(frozen=True)
class PrinterConfig:
    name: str
    source: str
    title: str
    timeout: float
    escpos: EscposSettings | None = None
    uri: str = ""
    queue: str = ""
    vendor: str = ""
    model: str = ""


def _entry(index: int, raw: Mapping[str, Any]) -> PrinterConfig:
    where = f"[{index}]"
    values: dict[str, Any] = {key: opt.default for key, opt in FIELDS.items()}
    for key, value in raw.items():
        if key not in FIELDS:
            raise OptionError(f"unknown key (known keys: {', '.join(sorted(FIELDS))})",
                              subkey=f"{where}.{key}")
        try:
            values[key] = FIELDS[key].parse(value)
        except OptionError as err:
            raise OptionError(str(err), subkey=f"{where}.{key}") from None
    name = values["name"]
    if not name:
        raise OptionError("every printer needs a name (e.g. name = \"receipt\")",
                          subkey=f"{where}.name")
    if not NAME_RE.match(name):
        raise OptionError(f"{name!r}: use letters, digits, '_', '-' or '.' (at most 40)",
                          subkey=f"{where}.name")
    source = values["source"]
    for key in raw:
        if key not in COMMON_KEYS and key not in SOURCE_KEYS[source]:
            raise OptionError(f"does not apply to source = \"{source}\"",
                              subkey=f"{where}.{key}")
    timeout = values["timeout"] if values["timeout"] is not None else DEFAULT_TIMEOUT[source]
    title = values["title"] or ("Receipt printer" if source == "escpos" and name == "receipt"
                                else f"Receipt printer {name}" if source == "escpos"
                                else f"Printer {name}")
    common = {"name": name, "source": source, "title": title, "timeout": timeout,
              "vendor": values["vendor"], "model": values["model"]}
    if source == "escpos":
        port, address = values["port"], values["address"]
        if bool(port) == bool(address):
            raise OptionError("set either port (serial / USB) or address (network), "
                              "not both", subkey=f"{where}.{'address' if port else 'port'}")
        if address:
            try:
                parse_listen(address)
            except OptionError as err:
                raise OptionError(str(err).replace("127.0.0.1:10084", "192.168.0.50:9100"),
                                  subkey=f"{where}.address") from None
        if values["mode"] == "asb" and not DIALECTS[values["dialect"]].speaks_asb:
            raise OptionError(f"the {values['dialect']} dialect has no Automatic Status Back; "
                              "use mode = \"poll\"", subkey=f"{where}.mode")
        settings = EscposSettings(port=port, address=address, dialect=values["dialect"],
                                  baudrate=values["baudrate"], timeout=timeout,
                                  mode=values["mode"])
        return PrinterConfig(**common, escpos=settings)
    if source == "cups":
        try:
            http_target(values["uri"])
        except ValueError as err:
            raise OptionError(str(err), subkey=f"{where}.uri") from None
        return PrinterConfig(**common, uri=values["uri"])
    if not values["queue"]:
        raise OptionError("the Windows printer name is required for source = \"windows\"",
                          subkey=f"{where}.queue")
    return PrinterConfig(**common, queue=values["queue"])


def parse_printers(entries: Any) -> tuple[PrinterConfig, ...]:
    """Typed printers from the `printers` option's tables; OptionError naming the key."""
    printers = tuple(_entry(i, raw) for i, raw in enumerate(entries or ()))
    seen: set[str] = set()
    for index, printer in enumerate(printers):
        if printer.name in seen:
            raise OptionError(f"{printer.name!r} is used twice", subkey=f"[{index}].name")
        seen.add(printer.name)
    return printers


def check_printers(entries: Any) -> None:
    parse_printers(entries)
