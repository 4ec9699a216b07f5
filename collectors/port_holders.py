"""Which other processes hold a device node open (a tty, /dev/usb/lp0).

The agent never fights another program for a port: the TEF client owns the PIN
pad, the kiosk application may own the printer, and a status request injected
into a print job corrupts it. pyserial's `exclusive=True` only sees programs that
take the same advisory lock, so this scans /proc/*/fd symlinks (what `fuser`
does). Processes of other users cannot be read without privilege; they are
skipped and counted, so "nobody holds it" is only claimed when every process
could be read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from totem_agent.collectors.base import HostPaths


@dataclass(frozen=True)
class Holder:
    pid: int
    name: str


@dataclass(frozen=True)
class Holders:
    holders: tuple[Holder, ...]
    unreadable: int          # processes whose fds could not be read (other users)

    @property
    def held(self) -> bool | None:
        """True when someone holds it; False only when every process was read."""
        if self.holders:
            return True
        return False if self.unreadable == 0 else None

    def describe(self) -> str:
        return ", ".join(f"{h.name} (pid {h.pid})" for h in self.holders)


def port_exists(port: str) -> bool:
    """A device path (/dev/ttyACM0) exists, or a Windows COM port (COM3) is present."""
    if port.startswith(("/", "\\")):
        return os.path.exists(port)
    from serial.tools import list_ports  # type: ignore[import-untyped]
    return port.upper() in {p.device.upper() for p in list_ports.comports()}


def resolve(device: str | os.PathLike[str]) -> str:
    """The node a path names (/dev/serial/by-id/... links resolve to /dev/ttyACM0)."""
    return os.path.realpath(device)


def port_holders(paths: HostPaths, device: str | os.PathLike[str],
                 own_pid: int | None = None) -> Holders:
    """Every process other than `own_pid` (default: this one) with `device` open."""
    target = resolve(device)
    own = os.getpid() if own_pid is None else own_pid
    found: list[Holder] = []
    unreadable = 0
    try:
        entries = list(paths.procfs.iterdir())
    except OSError:
        return Holders((), 1)
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except PermissionError:
            unreadable += 1
            continue
        except OSError:
            continue  # the process ended meanwhile
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link == target:
                found.append(Holder(int(entry.name), _process_name(entry)))
                break
    return Holders(tuple(found), unreadable)


def _process_name(entry: Path) -> str:
    try:
        return (entry / "comm").read_text().strip() or "?"
    except OSError:
        return "?"
