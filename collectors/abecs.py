"""The ABECS PIN-pad link (Brazilian standard: Gertec, Ingenico, Verifone, PAX in BC
mode), just enough for an identity probe: OPN, GIN 00, CLO.

Packet: SYN, DATA (ABECS 2.x escaping: 13 -> 13 33, 16 -> 13 36, 17 -> 13 37),
ETB, CRC-16/XMODEM of the unescaped DATA + ETB (big-endian, not escaped). The pad
answers ACK (06) or NAK (15), then a response packet `CMD` + `STAT` (3 digits)
+ blocks. DC3 (13) is also XOFF, so the port runs without flow control.
Sources: ../shared/research/peripherals.md §2.1 (ACBr ACBrAbecsPinPad.pas).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from totem_agent.collectors._lazy import lazy_module

# pyserial ships no stubs; lazy: 1.2 MB of RSS that kiosks without serial devices never pay.
serial: Any = lazy_module("serial")

ACK, NAK, SYN, ETB, CAN, EOT, DC3 = 0x06, 0x15, 0x16, 0x17, 0x18, 0x04, 0x13
MAX_NAK_TRIES = 3
_ESCAPES = {DC3: b"\x13\x33", SYN: b"\x13\x36", ETB: b"\x13\x37"}
_UNESCAPES = {0x33: DC3, 0x36: SYN, 0x37: ETB}

# Probe failure reasons (the `reason` label), bounded.
TIMEOUT = "timeout"
NAK_REASON = "nak"
BAD_CRC = "bad_crc"
STAT_NONZERO = "stat_nonzero"
PORT_BUSY = "port_busy"
IO_ERROR = "io_error"
REASONS = (TIMEOUT, NAK_REASON, BAD_CRC, STAT_NONZERO, PORT_BUSY, IO_ERROR)


class PadProbeError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def escape(data: bytes) -> bytes:
    return b"".join(_ESCAPES.get(b, bytes([b])) for b in data)


def unescape(data: bytes) -> bytes:
    out = bytearray()
    it = iter(data)
    for byte in it:
        if byte == DC3:
            nxt = next(it, None)
            if nxt not in _UNESCAPES:
                raise ValueError("bad escape sequence")
            out.append(_UNESCAPES[nxt])
        else:
            out.append(byte)
    return bytes(out)


def frame(data: bytes) -> bytes:
    return (bytes([SYN]) + escape(data) + bytes([ETB])
            + crc16_xmodem(data + bytes([ETB])).to_bytes(2, "big"))


def command(name: str, *blocks: str) -> bytes:
    """DATA of a command: ID + blocks, each LLL (3 decimal digits) + payload."""
    return (name + "".join(f"{len(b):03d}{b}" for b in blocks)).encode("ascii")


@dataclass(frozen=True)
class PadInfo:
    manufacturer: str
    model: str
    firmware: str
    spec_version: str
    serial: str


def parse_gin(data: bytes) -> PadInfo:
    """GIN000 + LLL + the 100-character general information block."""
    text = data.decode("ascii", "replace")
    if len(text) < 9 + 100 or not text.startswith("GIN000"):
        raise ValueError(f"not a GIN answer: {text[:12]!r}")
    block = text[9:9 + 100]
    return PadInfo(manufacturer=block[0:20].strip(), model=block[20:39].strip(),
                   firmware=block[40:60].strip(), spec_version=block[60:64].strip(),
                   serial=block[80:100].strip())


class AbecsLink:
    """One conversation over an open serial port, every read bounded by `deadline`."""

    def __init__(self, port: serial.Serial, deadline: float) -> None:
        self.port = port
        self.deadline = deadline

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            left = self.deadline - time.monotonic()
            if left <= 0:
                break
            self.port.timeout = left
            chunk = self.port.read(size - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def exchange(self, data: bytes) -> bytes:
        """Send a command, wait for ACK and the response; the response's DATA."""
        packet = frame(data)
        name = data[:3].decode("ascii", "replace")
        for _ in range(MAX_NAK_TRIES):
            self.port.reset_input_buffer()
            self.port.write(packet)
            answer = self._read(1)
            if not answer:
                raise PadProbeError(TIMEOUT, f"no answer to {name}")
            if answer[0] == ACK:
                break
            if answer[0] != NAK:
                raise PadProbeError(NAK_REASON, f"answer {answer.hex()} to {name} is neither "
                                    "ACK nor NAK")
        else:
            raise PadProbeError(NAK_REASON, f"{name} refused (NAK) {MAX_NAK_TRIES} times")
        return self._response(name)

    def _response(self, name: str) -> bytes:
        start = self._read(1)
        if start != bytes([SYN]):
            raise PadProbeError(TIMEOUT if not start else BAD_CRC,
                                f"no response packet to {name}")
        body = b""
        while True:
            byte = self._read(1)
            if not byte:
                raise PadProbeError(TIMEOUT, f"response to {name} cut short")
            if byte[0] == ETB:
                break
            body += byte
            if len(body) > 4096:
                raise PadProbeError(BAD_CRC, f"response to {name} never ends")
        crc = self._read(2)
        if len(crc) != 2:
            raise PadProbeError(TIMEOUT, f"response to {name} cut short")
        try:
            data = unescape(body)
        except ValueError as err:
            raise PadProbeError(BAD_CRC, f"response to {name}: {err}") from None
        if crc16_xmodem(data + bytes([ETB])) != int.from_bytes(crc, "big"):
            self.port.write(bytes([NAK]))
            raise PadProbeError(BAD_CRC, f"response to {name} has a bad CRC")
        if len(data) < 6 or data[:3] != name.encode("ascii"):
            raise PadProbeError(BAD_CRC, f"response {data[:6]!r} does not answer {name}")
        stat = data[3:6].decode("ascii", "replace")
        if stat != "000":
            raise PadProbeError(STAT_NONZERO, f"{name} answered status {stat}")
        return data


def probe(port_path: str, baudrate: int, timeout: float) -> PadInfo:
    """OPN, GIN 00, CLO. Raises PadProbeError."""
    deadline = time.monotonic() + timeout
    try:
        port = serial.Serial(port=port_path, baudrate=baudrate, timeout=0,
                             write_timeout=timeout, xonxoff=False, rtscts=False,
                             dsrdtr=False, exclusive=True)
    except serial.SerialException as err:
        text = str(err)
        if "exclusively lock" in text or getattr(err, "errno", None) in (11, 16):
            raise PadProbeError(PORT_BUSY, f"{port_path} is in use by another program") from err
        raise PadProbeError(IO_ERROR, f"cannot open {port_path} ({text})") from err
    try:
        link = AbecsLink(port, deadline)
        link.exchange(command("OPN"))
        try:
            info = parse_gin(link.exchange(command("GIN", "00")))
        except ValueError as err:
            raise PadProbeError(BAD_CRC, str(err)) from None
        link.exchange(command("CLO"))
        return info
    except (serial.SerialException, OSError) as err:
        raise PadProbeError(IO_ERROR, f"connection lost ({err})") from err
    finally:
        with contextlib.suppress(serial.SerialException, OSError):
            port.close()
