"""A fake receipt printer behind a real pseudo-terminal (or raw TCP 9100).

It speaks the status dialects of ../shared/research/peripherals.md §1 byte for byte,
so the agent's serial code runs unchanged against it:

    printer = FakeEscposPrinter("epson")          # healthy, on a fresh pty
    config: port = printer.port                     # the slave path, e.g. /dev/pts/7
    printer.set_state(paper_out=True)               # the roll runs out
    printer.set_reply("mute")                       # the printer stops answering
    printer.unplug()                                # USB-CDC pulled: the master closes
    printer.close()

Both ends are raw (no echo, no line discipline). The fake does not keep the slave
open by default: an agent in another process would then rightly see the port as held
by someone else and leave it alone. While nobody has the slave open the master reads
EIO; the fake waits for the next opener instead of dying, so the agent may open and
close the port every poll. `hold_slave=True` keeps it open anyway (then only an agent
in this same process, which ignores its own file descriptors, will probe it).
Bytes that are not a status command count as printed (`printed`): a test asserts the
agent never printed anything.

Reply modes: "normal"; "mute" (never answers: a hung printer); "garbage" (answers
bytes that break the dialect's fixed bits); "late" (answers after `late_delay`
seconds, past any sane read timeout); "unplug" (the cable is pulled as the next
status request arrives: the master closes mid-probe); "double" (every reply is sent
twice, so a host that does not flush stale input reads the wrong answer next).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import socket
import threading
import time
import tty
from dataclasses import dataclass
from typing import Any, Self

DLE, EOT, ENQ, GS = 0x10, 0x04, 0x05, 0x1D
DIALECTS = ("epson", "bematech", "daruma", "custom")
REPLY_MODES = ("normal", "mute", "garbage", "late", "unplug", "double")


@dataclass(frozen=True)
class PrinterState:
    """What is physically true of the fake printer right now."""

    online: bool = True            # False = taken offline for another reason
    cover_open: bool = False
    paper_near_end: bool = False
    paper_out: bool = False
    cutter_error: bool = False
    unrecoverable_error: bool = False
    auto_recoverable_error: bool = False   # e.g. head overheat
    mechanical_error: bool = False
    ticket_in_presenter: bool = False      # Custom kiosk presenters only
    maker: str = "EPSON"
    model: str = "TM-T20III"
    firmware: str = "1.01 ESC/POS"

    @property
    def any_error(self) -> bool:
        return (self.cutter_error or self.unrecoverable_error
                or self.auto_recoverable_error or self.mechanical_error)

    @property
    def offline(self) -> bool:
        # A printer stops (goes offline) on an open cover, paper end or any error.
        return not self.online or self.cover_open or self.paper_out or self.any_error


def _bit(flag: bool, mask: int) -> int:
    return mask if flag else 0


# ---- replies, per dialect -------------------------------------------------------------

def epson_dle_eot(state: PrinterState, n: int) -> bytes:
    """DLE EOT n (n = 1..4): one byte, pattern 0xx1xx10."""
    s = state
    if n == 1:
        value = 0x12 | _bit(s.offline, 0x08)
    elif n == 2:
        value = (0x12 | _bit(s.cover_open, 0x04) | _bit(s.paper_out, 0x20)
                 | _bit(s.any_error, 0x40))
    elif n == 3:
        value = (0x12 | _bit(s.mechanical_error, 0x04) | _bit(s.cutter_error, 0x08)
                 | _bit(s.unrecoverable_error, 0x20) | _bit(s.auto_recoverable_error, 0x40))
    elif n == 4:
        value = (0x12 | _bit(s.paper_near_end or s.paper_out, 0x0C)
                 | _bit(s.paper_out, 0x60))
    else:
        return b""
    return bytes([value])


def custom_full_status(state: PrinterState) -> bytes:
    """Custom DLE EOT 20: 10 0F, paper, user, recoverable, unrecoverable."""
    s = state
    paper = (_bit(s.paper_out, 0x01) | _bit(s.paper_near_end or s.paper_out, 0x04)
             | _bit(s.ticket_in_presenter, 0x20))
    user = _bit(s.cover_open, 0x02)
    recoverable = _bit(s.auto_recoverable_error, 0x01)
    unrecoverable = _bit(s.unrecoverable_error, 0x01)
    return bytes([0x10, 0x0F, paper, user, recoverable, unrecoverable])


def bematech_extended_status(state: PrinterState) -> bytes:
    """Bematech GS F8 31: 5 bytes, as NDDigital captured from a real MP-4200 TH."""
    s = state
    b1 = 0x80 | _bit(s.offline, 0x08)
    # b2: bit7 cover CLOSED, bit6 error, bit5 no paper, bit4 drawer (set in every
    # capture), bit2 paper sensor empty, bit1 near end, bit0 fixed 1. With the cover
    # open the sensor sees no paper (capture "cover open" = 0x35).
    sensor_empty = s.paper_out or s.cover_open
    b2 = (0x01 | 0x10 | _bit(not s.cover_open, 0x80) | _bit(s.any_error, 0x40)
          | _bit(sensor_empty, 0x24) | _bit(s.paper_near_end or s.paper_out, 0x02))
    b3 = (0x90 | _bit(s.auto_recoverable_error, 0x40) | _bit(s.unrecoverable_error, 0x20)
          | _bit(s.cutter_error, 0x08))
    b4 = 0x91
    b5 = 0x16
    return bytes([b1, b2, b3, b4, b5])


def daruma_enq(state: PrinterState) -> bytes:
    """Daruma ENQ: bit3 error, bit4 online, bit5 no paper, bit7 cover open."""
    s = state
    return bytes([_bit(s.any_error, 0x08) | _bit(not s.offline, 0x10)
                  | _bit(s.paper_out, 0x20) | _bit(s.cover_open, 0x80)])


def daruma_gs_enq(state: PrinterState) -> bytes:
    """Daruma GS ENQ: bit0 low paper, bit1 no paper, bit3 offline, bit4 cover closed
    and paper over the sensor, bit6 failure."""
    s = state
    return bytes([_bit(s.paper_near_end and not s.paper_out, 0x01) | _bit(s.paper_out, 0x02)
                  | _bit(s.offline, 0x08) | _bit(not (s.cover_open or s.paper_out), 0x10)
                  | _bit(s.any_error, 0x40)])


def asb_status(state: PrinterState) -> bytes:
    """Automatic Status Back (GS a): 4 bytes, first byte pattern 0xx1xx00."""
    s = state
    b1 = 0x10 | _bit(s.offline, 0x08) | _bit(s.cover_open, 0x20)
    b2 = (_bit(s.mechanical_error, 0x04) | _bit(s.cutter_error, 0x08)
          | _bit(s.unrecoverable_error, 0x20) | _bit(s.auto_recoverable_error, 0x40))
    b3 = _bit(s.paper_near_end or s.paper_out, 0x03) | _bit(s.paper_out, 0x0C)
    return bytes([b1, b2, b3, 0x00])


# Garbage that breaks each dialect's validation rule (fixed bits or consistency).
_GARBAGE = {
    "epson": b"\x00",
    "custom": b"\x00",
    "bematech": b"\x00\x00\x00\x00\x00",
    "daruma": b"\x00",
}


class EscposEngine:
    """Turns the bytes a host sends into the bytes the printer answers.

    Transport-free, so the pty and TCP fakes share it. Not thread-safe by itself:
    the owner holds its lock.
    """

    def __init__(self, dialect: str) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}; one of {DIALECTS}")
        self.dialect = dialect
        self.pending = b""
        self.printed = bytearray()
        self.commands: list[bytes] = []
        self.asb_enabled = False

    # (prefix, total length) of every command the dialect knows.
    def _patterns(self) -> list[tuple[bytes, int]]:
        common = [(bytes([DLE, EOT]), 3), (bytes([GS, 0x49]), 3), (bytes([GS, 0x61]), 3)]
        if self.dialect == "bematech":
            return [*common, (bytes([GS, 0xF8, 0x31]), 3)]
        if self.dialect == "daruma":
            return [(bytes([ENQ]), 1), (bytes([GS, ENQ]), 2)]
        return common

    def feed(self, data: bytes, state: PrinterState, mode: str) -> list[bytes]:
        """Consume host bytes; return the replies to send, in order."""
        self.pending += data
        replies: list[bytes] = []
        while self.pending:
            command, consumed = self._match(self.pending)
            if consumed == 0:
                break  # a command split across reads: wait for the rest
            chunk, self.pending = self.pending[:consumed], self.pending[consumed:]
            if command is None:
                self.printed += chunk
                continue
            self.commands.append(chunk)
            reply = self._answer(chunk, state)
            if not reply:
                continue
            if mode == "garbage" and not chunk.startswith(bytes([GS, 0x49])):
                reply = _GARBAGE[self.dialect]
            if mode == "double":
                reply += reply
            replies.append(reply)
        return replies

    def _match(self, buf: bytes) -> tuple[bytes | None, int]:
        """(command, length) at the start of buf; (None, 0) while a command may still
        be arriving; (None, 1) for a printed byte."""
        for prefix, total in self._patterns():
            n = min(len(buf), len(prefix))
            if buf[:n] != prefix[:n]:
                continue
            if len(buf) >= total:
                return buf[:total], total
            return None, 0
        return None, 1

    def _answer(self, command: bytes, state: PrinterState) -> bytes:
        if command[:2] == bytes([DLE, EOT]):
            n = command[2]
            if n == 20 and self.dialect == "custom":
                return custom_full_status(state)
            return epson_dle_eot(state, n)
        if command[:2] == bytes([GS, 0x49]):
            # GS I is not real-time: a stopped printer never reaches it.
            if state.offline:
                return b""
            text = {0x41: state.firmware, 0x42: state.maker, 0x43: state.model}.get(command[2])
            return b"" if text is None else b"\x5f" + text.encode("ascii") + b"\x00"
        if command[:2] == bytes([GS, 0x61]):
            self.asb_enabled = bool(command[2] & 0x0E)
            return asb_status(state) if self.asb_enabled else b""
        if command == bytes([GS, 0xF8, 0x31]):
            return bematech_extended_status(state)
        if command == bytes([ENQ]):
            return daruma_enq(state)
        if command == bytes([GS, ENQ]):
            return daruma_gs_enq(state)
        return b""


class _FakeBase:
    """State, reply mode and the outgoing queue shared by the pty and TCP fakes."""

    def __init__(self, dialect: str, state: PrinterState | None, **changes: Any) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}; one of {DIALECTS}")
        self.dialect = dialect
        self._lock = threading.Lock()
        self._state = dataclasses.replace(state or PrinterState(), **changes)
        self._mode = "normal"
        self.late_delay = 3.0
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._engines: list[EscposEngine] = []
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> PrinterState:
        with self._lock:
            return self._state

    @property
    def reply_mode(self) -> str:
        with self._lock:
            return self._mode

    @property
    def printed(self) -> bytes:
        with self._lock:
            return b"".join(bytes(e.printed) for e in self._engines)

    @property
    def commands(self) -> list[bytes]:
        with self._lock:
            return [c for e in self._engines for c in e.commands]

    def set_state(self, **changes: Any) -> PrinterState:
        """Change what is physically true (paper_out=True, cover_open=False, ...)."""
        return self.replace_state(dataclasses.replace(self.state, **changes))

    def replace_state(self, state: PrinterState) -> PrinterState:
        with self._lock:
            self._state = state
            new = self._state
        self._on_state_change(new)
        return new

    def set_reply(self, mode: str, late_delay: float | None = None) -> None:
        if mode not in REPLY_MODES:
            raise ValueError(f"unknown reply mode {mode!r}; one of {REPLY_MODES}")
        with self._lock:
            self._mode = mode
            if late_delay is not None:
                self.late_delay = late_delay

    def _on_state_change(self, state: PrinterState) -> None:
        """ASB: a printer with Automatic Status Back tells the host on every change."""

    def _replies(self, engine: EscposEngine, data: bytes) -> list[tuple[float, bytes]]:
        """Feed host bytes and return (due time, bytes) to send."""
        with self._lock:
            state, mode, delay = self._state, self._mode, self.late_delay
            replies = engine.feed(data, state, mode)
        if mode == "mute":
            return []
        due = time.monotonic() + (delay if mode == "late" else 0.0)
        return [(due, r) for r in replies]

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


class FakeEscposPrinter(_FakeBase):
    """A receipt printer on a pseudo-terminal; `port` is the path the agent opens."""

    def __init__(self, dialect: str = "epson", state: PrinterState | None = None,
                 *, hold_slave: bool = False, **changes: Any) -> None:
        super().__init__(dialect, state, **changes)
        self._master, slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        if hold_slave:
            self._slave = slave
        else:
            os.close(slave)
            self._slave = -1
        self._engine = EscposEngine(dialect)
        self._engines.append(self._engine)
        self._outbox: list[tuple[float, bytes]] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"fake-printer-{self.port}",
                                        daemon=True)
        self._thread.start()

    def _on_state_change(self, state: PrinterState) -> None:
        with self._lock:
            if self._engine.asb_enabled and self._mode != "mute":
                self._outbox.append((time.monotonic(), asb_status(state)))
        self._wake()

    def _run(self) -> None:
        master = self._master
        while not self._stop.is_set():
            with self._lock:
                now = time.monotonic()
                due = [item for item in self._outbox if item[0] <= now]
                self._outbox = [item for item in self._outbox if item[0] > now]
                next_due = min((item[0] for item in self._outbox), default=None)
            for _, data in due:
                try:
                    os.write(master, data)
                except OSError:
                    return
            timeout = 0.5 if next_due is None else max(0.0, next_due - time.monotonic())
            try:
                ready, _, _ = select.select([master, self._wake_r], [], [], timeout)
            except (OSError, ValueError):
                return
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
            if master in ready:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    # EIO: nobody has the slave open right now. Wait for the next opener.
                    self._stop.wait(0.01)
                    continue
                if not data:
                    continue
                replies = self._replies(self._engine, data)
                if replies and self.reply_mode == "unplug":
                    self._close_master()
                    return
                with self._lock:
                    self._outbox.extend(replies)

    def unplug(self) -> None:
        """Pull the cable: stop answering and close the master (the host sees EIO)."""
        self._stop.set()
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._close_master()

    def _close_master(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        os.close(self._master)

    @property
    def unplugged(self) -> bool:
        with self._lock:
            return self._closed

    def close(self) -> None:
        self.unplug()
        for fd in (self._slave, self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._slave = self._wake_r = self._wake_w = -1


class FakeEscposNetworkPrinter(_FakeBase):
    """A receipt printer on raw TCP (port 9100 style) at 127.0.0.1:`tcp_port`."""

    def __init__(self, dialect: str = "epson", state: PrinterState | None = None,
                 **changes: Any) -> None:
        super().__init__(dialect, state, **changes)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = "127.0.0.1"
        self.tcp_port = int(self._listener.getsockname()[1])
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, name="fake-printer-tcp",
                                        daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.tcp_port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        engine = EscposEngine(self.dialect)
        with self._lock:
            self._engines.append(engine)
        outbox: list[tuple[float, bytes]] = []
        with conn:
            while not self._stop.is_set():
                now = time.monotonic()
                for item in [i for i in outbox if i[0] <= now]:
                    outbox.remove(item)
                    try:
                        conn.sendall(item[1])
                    except OSError:
                        return
                next_due = min((i[0] for i in outbox), default=None)
                timeout = 0.2 if next_due is None else max(0.0, next_due - time.monotonic())
                ready, _, _ = select.select([conn], [], [], timeout)
                if not ready:
                    continue
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                outbox.extend(self._replies(engine, data))

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


__all__ = [
    "DIALECTS",
    "REPLY_MODES",
    "EscposEngine",
    "FakeEscposNetworkPrinter",
    "FakeEscposPrinter",
    "PrinterState",
    "printer_toml",
]


def printer_toml(name: str = "receipt", **keys: Any) -> str:
    """A `[[collectors.printer.printers]]` block for an agent config, e.g.
    `printer_toml(port=fake.port, dialect="epson")` (append after [collectors.printer])."""
    lines = ["", "[[collectors.printer.printers]]", f"name = {json.dumps(name)}"]
    for key, value in keys.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.fakes.escpos_printer --paper-out`: a fake printer for manual runs
    (status page, tray); prints its port and a config block, runs until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--dialect", default="epson", choices=DIALECTS)
    for name in ("paper-out", "paper-near-end", "cover-open", "cutter-error"):
        parser.add_argument(f"--{name}", action="store_true")
    parser.add_argument("--reply", default="normal", choices=REPLY_MODES)
    args = parser.parse_args(argv)
    fake = FakeEscposPrinter(args.dialect, paper_out=args.paper_out,
                             paper_near_end=args.paper_near_end, cover_open=args.cover_open,
                             cutter_error=args.cutter_error)
    fake.set_reply(args.reply)
    print(f"fake {args.dialect} printer on {fake.port}; config:\n\n[collectors.printer]"
          f"\nenabled = true{printer_toml(port=fake.port, dialect=args.dialect)}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
