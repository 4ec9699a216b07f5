"""ESC/POS receipt printers over serial / USB-CDC (pyserial) or raw TCP (port 9100).

One poll: check nobody else holds the port, open it, send each status query of
the dialect and wait for its reply (the input is flushed first, so a late or
doubled reply of an earlier query is never taken for this one), validate, decode,
close. Every read is bounded by the probe's deadline, so a printer that never
answers costs `timeout` seconds and the collector's other printers and the other
collectors go on (the scheduler's own deadline is the second fence).

`mode = "asb"` is for a printer only the agent talks to: the port stays open,
Automatic Status Back is switched on once, and each poll reads the newest status
frame the printer pushed (it sends one on every change), so nothing is injected
into the stream between polls.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from dataclasses import dataclass
from typing import Any, Protocol

from totem_agent.collectors._lazy import lazy_module
from totem_agent.collectors.base import HostPaths
from totem_agent.collectors.port_holders import port_exists, port_holders
from totem_agent.collectors.printer.dialects import (
    ASB_ENABLE,
    DIALECTS,
    GS_I,
    InvalidReply,
    decode_asb,
    gs_i,
    last_asb_frame,
    parse_gs_i,
)
from totem_agent.collectors.printer.status import (
    INVALID_RESPONSE,
    IO_ERROR,
    PORT_BUSY,
    TIMEOUT,
    Identity,
    PrinterStatus,
    ProbeFailure,
)

# pyserial ships no stubs; lazy: 1.2 MB of RSS that kiosks without serial devices never pay.
serial: Any = lazy_module("serial")


class Link(Protocol):
    def write(self, data: bytes) -> None: ...
    def read(self, size: int, deadline: float) -> bytes: ...
    def read_available(self) -> bytes: ...
    def flush_input(self) -> None: ...
    def close(self) -> None: ...


class SerialLink:
    """A serial / USB-CDC port. Raw, no flow control: XON/XOFF bytes are data here."""

    def __init__(self, port: str, baudrate: int, deadline: float) -> None:
        try:
            self._serial = serial.Serial(
                port=port, baudrate=baudrate, timeout=0, write_timeout=_left(deadline),
                xonxoff=False, rtscts=False, dsrdtr=False, exclusive=True)
        except serial.SerialException as err:
            raise _open_failure(port, err) from err
        except (OSError, ValueError) as err:  # e.g. a path that is not a serial port
            raise ProbeFailure(IO_ERROR, f"cannot open {port} as a serial port ({err})") from err

    def write(self, data: bytes) -> None:
        try:
            self._serial.write(data)
        except serial.SerialTimeoutException as err:
            raise ProbeFailure(TIMEOUT, "the port did not accept the status request "
                               "(flow control held)") from err
        except (serial.SerialException, OSError) as err:
            raise ProbeFailure(IO_ERROR, f"connection lost while writing ({err})") from err

    def read(self, size: int, deadline: float) -> bytes:
        data = b""
        try:
            while len(data) < size:
                left = _left(deadline)
                if left <= 0:
                    break
                self._serial.timeout = left
                chunk = self._serial.read(size - len(data))
                if not chunk:
                    break
                data += chunk
        except (serial.SerialException, OSError) as err:
            raise ProbeFailure(IO_ERROR, f"connection lost while reading ({err})") from err
        return data

    def read_available(self) -> bytes:
        try:
            waiting = self._serial.in_waiting
            return self._serial.read(waiting) if waiting else b""
        except (serial.SerialException, OSError) as err:
            raise ProbeFailure(IO_ERROR, f"connection lost while reading ({err})") from err

    def flush_input(self) -> None:
        try:
            self._serial.reset_input_buffer()
        except (serial.SerialException, OSError) as err:
            raise ProbeFailure(IO_ERROR, f"connection lost ({err})") from err

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self._serial.close()


def _open_failure(port: str, err: serial.SerialException) -> ProbeFailure:
    code = err.errno if isinstance(err.errno, int) else None
    text = str(err)
    if code == errno.ENOENT:
        return ProbeFailure(IO_ERROR, f"not connected ({port} does not exist)")
    if code in (errno.EACCES, errno.EPERM):
        return ProbeFailure(IO_ERROR, f"no permission to open {port} (add the agent's user "
                                      "to the dialout or lp group)")
    if code in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text:
        return ProbeFailure(PORT_BUSY, f"{port} is in use by another program")
    return ProbeFailure(IO_ERROR, f"cannot open {port} ({text})")


class TcpLink:
    """Raw TCP to the printer's port 9100 (or whatever it listens on)."""

    def __init__(self, host: str, port: int, deadline: float) -> None:
        try:
            self._sock = socket.create_connection((host, port), timeout=max(_left(deadline),
                                                                              0.001))
        except TimeoutError as err:
            raise ProbeFailure(TIMEOUT, f"no answer from {host}:{port}") from err
        except OSError as err:
            raise ProbeFailure(IO_ERROR, f"cannot connect to {host}:{port} "
                               f"({err.strerror or err})") from err

    def write(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as err:
            raise ProbeFailure(IO_ERROR, f"connection lost while writing ({err})") from err

    def read(self, size: int, deadline: float) -> bytes:
        data = b""
        try:
            while len(data) < size:
                left = _left(deadline)
                if left <= 0:
                    break
                self._sock.settimeout(left)
                chunk = self._sock.recv(size - len(data))
                if not chunk:
                    raise ProbeFailure(IO_ERROR, "the printer closed the connection")
                data += chunk
        except TimeoutError:
            pass
        except OSError as err:
            raise ProbeFailure(IO_ERROR, f"connection lost while reading ({err})") from err
        return data

    def read_available(self) -> bytes:
        data = b""
        self._sock.setblocking(False)
        try:
            while True:
                chunk = self._sock.recv(4096)
                if not chunk:
                    raise ProbeFailure(IO_ERROR, "the printer closed the connection")
                data += chunk
        except BlockingIOError:
            return data
        except OSError as err:
            raise ProbeFailure(IO_ERROR, f"connection lost while reading ({err})") from err
        finally:
            self._sock.setblocking(True)

    def flush_input(self) -> None:
        self.read_available()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def _left(deadline: float) -> float:
    return deadline - time.monotonic()


@dataclass(frozen=True)
class EscposSettings:
    port: str = ""            # serial / USB-CDC device path
    address: str = ""         # host:port for raw TCP
    dialect: str = "epson"
    baudrate: int = 9600
    timeout: float = 1.0      # deadline of one whole probe
    mode: str = "poll"        # poll | asb

    @property
    def connection(self) -> str:
        return "network" if self.address else "serial"

    @property
    def target(self) -> str:
        return self.address or self.port


class EscposPrinter:
    """The status source of one ESC/POS printer."""

    source = "escpos"

    def __init__(self, settings: EscposSettings, paths: HostPaths) -> None:
        self.settings = settings
        self.paths = paths
        self.dialect = DIALECTS[settings.dialect]
        self.present: bool | None = None    # node exists / TCP connect worked
        self._asb_link: Link | None = None
        self._asb_status: PrinterStatus | None = None

    @property
    def connection(self) -> str:
        return self.settings.connection

    def _open(self, deadline: float) -> Link:
        s = self.settings
        if s.address:
            host, _, port = s.address.rpartition(":")
            try:
                link: Link = TcpLink(host.strip("[]"), int(port), deadline)
            except ProbeFailure:
                self.present = False
                raise
            self.present = True
            return link
        self.present = port_exists(s.port)
        if not self.present:
            raise ProbeFailure(IO_ERROR, f"not connected ({s.port} does not exist)")
        holders = port_holders(self.paths, s.port)
        if holders.held:
            raise ProbeFailure(PORT_BUSY, f"{s.port} is in use by {holders.describe()}; "
                               "the agent leaves it alone")
        return SerialLink(s.port, s.baudrate, deadline)

    def probe(self, identity_wanted: bool = False) -> tuple[PrinterStatus, Identity | None]:
        """One status reading (and, when asked and the printer is online, its identity).
        Raises ProbeFailure."""
        deadline = time.monotonic() + self.settings.timeout
        if self.settings.mode == "asb" and self.dialect.speaks_asb:
            return self._probe_asb(deadline), None
        link = self._open(deadline)
        try:
            replies = []
            for query in self.dialect.queries:
                link.flush_input()
                link.write(query.command)
                reply = link.read(query.length, deadline)
                if not reply:
                    raise ProbeFailure(TIMEOUT, f"no reply to {query.name} within "
                                       f"{self.settings.timeout:g}s")
                if not query.valid(reply):
                    raise ProbeFailure(INVALID_RESPONSE,
                                       f"reply {reply.hex(' ')} to {query.name} is not "
                                       f"a valid {self.dialect.name} status")
                replies.append(reply)
            try:
                status = self.dialect.decode(replies)
            except InvalidReply as err:
                raise ProbeFailure(INVALID_RESPONSE, str(err)) from err
            identity = None
            if identity_wanted and status.online and self.dialect.reads_identity:
                identity = _read_identity(link, deadline)
            return status, identity
        finally:
            link.close()

    def _probe_asb(self, deadline: float) -> PrinterStatus:
        if self._asb_link is None:
            link = self._open(deadline)
            try:
                link.flush_input()
                link.write(ASB_ENABLE)
                first = link.read(4, deadline)
            except ProbeFailure:
                link.close()
                raise
            frame = last_asb_frame(first)
            if frame is None:
                link.close()
                if not first:
                    raise ProbeFailure(TIMEOUT, "no Automatic Status Back after GS a within "
                                       f"{self.settings.timeout:g}s")
                raise ProbeFailure(INVALID_RESPONSE, f"reply {first.hex(' ')} to GS a is not "
                                   "an Automatic Status Back frame")
            self._asb_link = link
            self._asb_status = decode_asb(frame)
        try:
            frame = last_asb_frame(self._asb_link.read_available())
        except ProbeFailure:
            self.close()
            raise
        if frame is not None:
            self._asb_status = decode_asb(frame)
        assert self._asb_status is not None
        return self._asb_status

    def close(self) -> None:
        if self._asb_link is not None:
            self._asb_link.close()
            self._asb_link = None
            self._asb_status = None


def _read_identity(link: Link, deadline: float) -> Identity | None:
    """GS I maker/model/firmware; None when the printer does not answer all three."""
    values = {}
    for field, n in GS_I.items():
        link.flush_input()
        link.write(gs_i(n))
        reply = b""
        while not reply.endswith(b"\x00") and len(reply) < 80:
            chunk = link.read(1, deadline)
            if not chunk:
                return None
            reply += chunk
        text = parse_gs_i(reply)
        if text is None:
            return None
        values[field] = text
    return Identity(**values)
