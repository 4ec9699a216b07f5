"""A fake ABECS PIN pad behind a real pseudo-terminal (../shared/research/peripherals.md
§2.3): parses SYN..ETB+CRC, NAKs a bad CRC, ACKs and answers OPN, GIN, CLO, answers
CAN with EOT.

    pad = FakePinPad()            # .port is the slave path
    pad.mode = "mute"             # never answers
    pad.stat = "040"              # every response carries STAT 040 (INTERR)
    pad.strict_open = True        # GIN before OPN answers 015 (NOTOPEN)
    pad.close()
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty

from totem_agent.collectors.abecs import (
    ACK,
    CAN,
    EOT,
    ETB,
    NAK,
    SYN,
    crc16_xmodem,
    frame,
    unescape,
)

GIN_BLOCK = (f"{'GERTEC':<20}{'PPC930':<19}C{'0077_0071_0080_0106':<20}{'1.08':<4}"
             f"{'001.23 100820':<16}{'0450805232030714':<20}")


class FakePinPad:
    def __init__(self) -> None:
        self._master, slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        os.close(slave)   # not held: an agent in another process must see the port idle
        self.mode = "normal"          # normal | mute | corrupt_crc
        self.stat = "000"
        self.strict_open = False
        self.commands: list[str] = []
        self.received = bytearray()
        self._opened = False
        self._buffer = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fake-pinpad")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.2)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                self._stop.wait(0.01)   # nobody has the slave open
                continue
            self.received += data
            self._buffer += data
            self._handle()

    def _send(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self._master, data)

    def _handle(self) -> None:
        while self._buffer:
            if self._buffer[0] == CAN:
                self._buffer = self._buffer[1:]
                self._send(bytes([EOT]))
                continue
            if self._buffer[0] != SYN:
                self._buffer = self._buffer[1:]
                continue
            end = self._buffer.find(bytes([ETB]))
            if end < 0 or len(self._buffer) < end + 3:
                return
            body, crc = self._buffer[1:end], self._buffer[end + 1:end + 3]
            self._buffer = self._buffer[end + 3:]
            if self.mode == "mute":
                continue
            data = unescape(body)
            if crc16_xmodem(data + bytes([ETB])) != int.from_bytes(crc, "big"):
                self._send(bytes([NAK]))
                continue
            name = data[:3].decode("ascii", "replace")
            self.commands.append(name)
            self._send(bytes([ACK]))
            self._send(self._response(name))

    def _response(self, name: str) -> bytes:
        stat = self.stat
        if name == "OPN":
            self._opened = True
        elif name == "CLO":
            self._opened = False
        if name == "GIN" and self.strict_open and not self._opened:
            stat = "015"
        payload = f"{name}{stat}"
        if name == "GIN" and stat == "000":
            payload += f"{len(GIN_BLOCK):03d}{GIN_BLOCK}"
        packet = frame(payload.encode("ascii"))
        if self.mode == "corrupt_crc":
            packet = packet[:-1] + bytes([packet[-1] ^ 0xFF])
        return packet

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            os.close(self._master)
