"""Validation of the device lists of the peripheral collectors (`devices = [...]`).

Each entry is a table whose keys are `Option`s; a problem names the entry and
the key (`collectors.usb.devices[1].vid: ...`) through OptionError.subkey.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from totem_agent.options import Option, OptionError

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
HEX4_RE = re.compile(r"^[0-9a-fA-F]{4}$")


def check_hex4(value: str) -> None:
    if value and not HEX4_RE.match(value):
        raise OptionError(f"expected 4 hexadecimal digits such as 079b, got {value!r}")


def parse_entries(raw: Any, fields: Mapping[str, Option], required: tuple[str, ...],
                  unique: str) -> list[dict[str, Any]]:
    """Entries with defaults filled in; OptionError naming `[index].key`."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, entry in enumerate(raw or ()):
        values = {key: opt.default for key, opt in fields.items()}
        for key, value in entry.items():
            if key not in fields:
                raise OptionError(f"unknown key (known keys: {', '.join(sorted(fields))})",
                                  subkey=f"[{index}].{key}")
            try:
                values[key] = fields[key].parse(value)
            except OptionError as err:
                raise OptionError(str(err), subkey=f"[{index}].{key}") from None
        for key in required:
            if not values.get(key):
                raise OptionError("is required", subkey=f"[{index}].{key}")
        if unique in fields and values.get(unique):
            if not NAME_RE.match(values[unique]):
                raise OptionError(f"{values[unique]!r}: use letters, digits, '_', '-' or '.'",
                                  subkey=f"[{index}].{unique}")
            if values[unique] in seen:
                raise OptionError(f"{values[unique]!r} is used twice",
                                  subkey=f"[{index}].{unique}")
            seen.add(values[unique])
        for key in ("vid", "pid"):
            if isinstance(values.get(key), str):
                values[key] = values[key].lower()
        out.append(values)
    return out


def present_usb_ids(sysfs: Path, platform: str = sys.platform) -> set[tuple[str, str]]:
    """(vid, pid) of every present USB device: sysfs on Linux, PnP on Windows."""
    if platform == "win32":
        from totem_agent.collectors import _pnp_windows
        ids = (_pnp_windows.parse_instance_id(i) for i in _pnp_windows.instance_ids())
        return {pair for pair in ids if pair is not None}
    return usb_ids(sysfs / "bus" / "usb" / "devices")


def usb_ids(sys_usb_devices: Path) -> set[tuple[str, str]]:
    """(vid, pid) of every enumerated USB device under /sys/bus/usb/devices."""
    found: set[tuple[str, str]] = set()
    try:
        entries = list(sys_usb_devices.iterdir())
    except OSError:
        return found
    for entry in entries:
        try:
            vid = (entry / "idVendor").read_text().strip().lower()
            pid = (entry / "idProduct").read_text().strip().lower()
        except OSError:
            continue  # interfaces (1-1:1.0) have no idVendor
        found.add((vid, pid))
    return found
