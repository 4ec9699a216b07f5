"""Tells systemd how the agent is doing (the sd_notify protocol, no library needed).

Under a `Type=notify` unit systemd passes `NOTIFY_SOCKET`, a unix datagram socket
(a path, or an abstract name written with a leading `@`), and with `WatchdogSec=`
also `WATCHDOG_USEC` (and `WATCHDOG_PID`). The agent sends:

- `READY=1` once the HTTP server listens and the buffer is open (after
  `Agent.start()` returns), with a first `STATUS=`;
- `WATCHDOG=1` every WATCHDOG_USEC/2, but only while the scheduler's own loop
  keeps turning (its heartbeat is fresh): a wedged scheduler stops the pings and
  systemd restarts the agent, which a timer thread of its own would never do;
- `STATUS=` one line for `systemctl status`, when it changes;
- `RELOADING=1` (with `MONOTONIC_USEC=`) when a reload (SIGHUP) begins, and
  `READY=1` again when it is over, applied or refused, so that systemd leaves
  the "reloading" state either way;
- `STOPPING=1` when a stop begins.

Outside systemd (no NOTIFY_SOCKET) nothing of this runs. A send that fails is
logged once and never stops the agent: the service manager is a witness here,
not a dependency.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from totem_agent.health import FAILING, PENDING, Check, roll_up
from totem_agent.threadnames import name_native_thread

log = logging.getLogger("totem_agent.sdnotify")

# How often STATUS= is recomputed when there is no watchdog to pace the loop.
STATUS_EVERY = 10.0


def socket_address(value: str) -> str | bytes:
    """NOTIFY_SOCKET as an address for socket.sendto(): `@name` is Linux's abstract
    namespace (a leading NUL byte), anything else a filesystem path."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    raise ValueError(f"NOTIFY_SOCKET={value!r} is neither a socket path nor an @abstract name")


def watchdog_seconds(env: Mapping[str, str], pid: int | None = None) -> float | None:
    """The watchdog timeout systemd asked for, in seconds, or None (none asked, or
    WATCHDOG_PID names another process, as when a wrapper script started us)."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner.isdigit() and int(owner) != (os.getpid() if pid is None else pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a number of microseconds", usec)
        return None
    return value / 1_000_000 if value > 0 else None


class NotifySocket:
    """The datagram socket to the service manager. send() never raises."""

    def __init__(self, address: str | bytes) -> None:
        self.address = address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._failed = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NotifySocket | None:
        value = env.get("NOTIFY_SOCKET", "")
        if not value or not hasattr(socket, "AF_UNIX"):
            return None
        try:
            return cls(socket_address(value))
        except (ValueError, OSError) as err:
            log.warning("cannot talk to the service manager: %s", err)
            return None

    def send(self, *fields: str) -> bool:
        """One datagram of `KEY=value` lines; False (logged once) when it could not go."""
        message = "\n".join(fields).encode("utf-8", "replace")
        try:
            self._sock.sendto(message, self.address)
        except OSError as err:
            if not self._failed:
                log.warning("cannot notify the service manager: %s", err,
                            extra={"notify_socket": str(self.address)})
            self._failed = True
            return False
        if self._failed:
            log.info("notifying the service manager again")
        self._failed = False
        return True

    def close(self) -> None:
        self._sock.close()


class _Scheduler(Protocol):
    last_heartbeat: float
    heartbeat_every: float | None


class _Health(Protocol):
    def checks(self) -> list[Check]: ...


def status_line(checks: Iterable[Check]) -> str:
    """One line for `systemctl status`, e.g.
    "ok: 24 collectors, buffer 1.2 MB, 0 samples buffered"."""
    checks = list(checks)
    collectors = [c for c in checks if c.kind == "collector"]
    failing = [c.name.removeprefix("collector:") for c in collectors if c.status == FAILING]
    waiting = sum(c.status == PENDING for c in collectors)
    parts = [f"{len(collectors)} collectors"]
    if failing:
        parts[0] += f" ({len(failing)} failing: {', '.join(sorted(failing)[:3])}"
        parts[0] += ", ...)" if len(failing) > 3 else ")"
    elif waiting:
        parts[0] += f" ({waiting} not run yet)"
    for check in checks:
        if check.name != "buffer":
            continue
        details: Mapping[str, Any] = check.details or {}
        if "bytes_on_disk" in details:
            parts.append(f"buffer {human_bytes(int(details['bytes_on_disk']))}, "
                         f"{int(details.get('buffered_samples', 0))} samples buffered")
        if check.message:
            parts.append(f"buffer: {check.message}")
    problems = [c for c in checks if c.kind not in ("collector", "buffer")
                and c.status not in ("ok", "not_applicable", PENDING) and c.message]
    parts += [f"{c.name}: {c.message}" for c in problems[:2]]
    return f"{roll_up(checks)}: " + ", ".join(parts)


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


class ServiceNotifier:
    """READY, WATCHDOG, STATUS and STOPPING for one running agent.

    `scheduler.last_heartbeat` (time.monotonic of the scheduler loop's last turn)
    decides the watchdog; this sets `scheduler.heartbeat_every` so that the loop
    turns at least twice per ping period even when every collector's interval is
    longer than the watchdog.
    """

    def __init__(self, notify: NotifySocket, scheduler: _Scheduler, health: _Health,
                 watchdog: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.notify = notify
        self.scheduler = scheduler
        self.health = health
        self.watchdog = watchdog
        self.clock = clock
        # Ping at half the timeout, as sd_watchdog_enabled(3) advises.
        self.period = watchdog / 2 if watchdog else STATUS_EVERY
        if watchdog:
            scheduler.heartbeat_every = self.period / 2
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_status = ""
        self._last_status_at = 0.0
        self._stale_logged = False

    @classmethod
    def from_env(cls, env: Mapping[str, str], scheduler: _Scheduler,
                 health: _Health) -> ServiceNotifier | None:
        """None unless a service manager is listening (NOTIFY_SOCKET is set)."""
        notify = NotifySocket.from_env(env)
        if notify is None:
            return None
        return cls(notify, scheduler, health, watchdog_seconds(env))

    def ready(self) -> None:
        """The agent serves and buffers: say so, then keep the watchdog fed."""
        self._last_status = status_line(self.health.checks())
        self._last_status_at = self.clock()
        self.notify.send("READY=1", f"STATUS={self._last_status}", f"MAINPID={os.getpid()}")
        log.info("told the service manager the agent is ready",
                 extra={"watchdog_seconds": self.watchdog})
        self._thread = threading.Thread(target=self._loop, name="sd-notify", daemon=True)
        self._thread.start()

    def reloading(self) -> None:
        """A reload (SIGHUP) begins. MONOTONIC_USEC is what systemd 253's
        Type=notify-reload asks for; older versions ignore it."""
        usec = time.monotonic_ns() // 1000  # CLOCK_MONOTONIC, as systemd wants
        self.notify.send("RELOADING=1", f"MONOTONIC_USEC={usec}",
                         "STATUS=reloading the configuration")

    def reloaded(self, scheduler: _Scheduler, outcome: str = "") -> None:
        """The reload is over; the watchdog now follows `scheduler` (a reload builds a
        new one). `outcome` is said in STATUS= (e.g. that a bad config was refused)."""
        scheduler.heartbeat_every = self.scheduler.heartbeat_every
        self.scheduler = scheduler
        line = status_line(self.health.checks())
        self._last_status = f"{line} ({outcome})" if outcome else line
        self._last_status_at = self.clock()
        self.notify.send("READY=1", f"STATUS={self._last_status}")

    def stopping(self) -> None:
        self._stop.set()
        self.notify.send("STOPPING=1", "STATUS=stopping")
        if self._thread is not None:
            self._thread.join(1.0)

    def close(self) -> None:
        self.notify.close()

    def heartbeat_age(self) -> float:
        return self.clock() - self.scheduler.last_heartbeat

    def _loop(self) -> None:
        name_native_thread()
        while not self._stop.wait(self.period):
            self.tick()

    def tick(self) -> None:
        """One ping period: the watchdog first (it must not wait on anything the
        scheduler holds), then STATUS when it is due and changed."""
        age = self.heartbeat_age()
        # The loop turns at least every period/2; a full period without a turn is stuck.
        # (Without a watchdog the loop may sleep a whole collector interval: no verdict.)
        if self.watchdog and age > self.period:
            if not self._stale_logged:
                log.error("the collector scheduler has not run for %.1fs: no longer "
                          "feeding the service watchdog", age)
                self.notify.send(f"STATUS=failing: the collector scheduler has been stuck "
                                 f"for {age:.0f}s")
                self._last_status = ""
            self._stale_logged = True
            return
        if self._stale_logged:
            log.info("the collector scheduler runs again")
        self._stale_logged = False
        fields = ["WATCHDOG=1"] if self.watchdog else []
        now = self.clock()
        if now - self._last_status_at >= STATUS_EVERY or not self._last_status:
            self._last_status_at = now
            line = status_line(self.health.checks())
            if line != self._last_status:
                self._last_status = line
                fields.append(f"STATUS={line}")
        if fields:
            self.notify.send(*fields)
