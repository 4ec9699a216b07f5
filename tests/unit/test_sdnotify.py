"""agent/sdnotify.py pieces over a real unix datagram socket (the end-to-end case
with a real agent is tests/integration/test_sdnotify.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from totem_agent.collectors.base import CollectorContext
from totem_agent.health import Check, HealthModel
from totem_agent.scheduler import Scheduler
from totem_agent.sdnotify import (
    NotifySocket,
    ServiceNotifier,
    socket_address,
    status_line,
    watchdog_seconds,
)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_addresses() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@/org/freedesktop/systemd1/notify") == \
        b"\0/org/freedesktop/systemd1/notify"
    with pytest.raises(ValueError, match="neither a socket path"):
        socket_address("vsock:2:1234")


def test_watchdog_seconds_only_for_this_process() -> None:
    assert watchdog_seconds({}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, pid=42) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "41"}, pid=42) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "0"}) is None


def test_no_socket_no_notifier() -> None:
    assert NotifySocket.from_env({}) is None
    assert NotifySocket.from_env({"NOTIFY_SOCKET": "relative/path"}) is None


def test_send_reaches_the_socket_and_a_missing_one_does_not_raise(
        receiver: tuple[str, socket.socket], tmp_path: Path) -> None:
    path, sock = receiver
    notify = NotifySocket.from_env({"NOTIFY_SOCKET": path})
    assert notify is not None
    assert notify.send("READY=1", "STATUS=ok: fine")
    assert sock.recv(1024) == b"READY=1\nSTATUS=ok: fine"
    gone = NotifySocket(str(tmp_path / "nobody-listens"))
    assert gone.send("WATCHDOG=1") is False
    notify.close()
    gone.close()


def test_status_line() -> None:
    checks = [Check(name="collector:cpu", kind="collector", status="ok"),
              Check(name="collector:hwmon", kind="collector", status="failing",
                    message="boom"),
              Check(name="buffer", kind="buffer", status="ok",
                    details={"bytes_on_disk": 1_234_567, "buffered_samples": 900})]
    assert status_line(checks) == ("degraded: 2 collectors (1 failing: hwmon), "
                                   "buffer 1.2 MB, 900 samples buffered")


def test_tick_pings_only_while_the_heartbeat_is_fresh(
        receiver: tuple[str, socket.socket]) -> None:
    path, sock = receiver
    scheduler = Scheduler([], CollectorContext())
    now = [1000.0]
    notifier = ServiceNotifier(NotifySocket(path), scheduler, HealthModel("kiosk", {}),
                               watchdog=2.0, clock=lambda: now[0])
    assert scheduler.heartbeat_every == 0.5  # the loop turns twice per ping period
    scheduler.last_heartbeat = 999.5
    notifier.tick()
    assert sock.recv(1024).split(b"\n")[0] == b"WATCHDOG=1"
    scheduler.last_heartbeat = 998.0  # 2 s without a turn: stuck
    notifier.tick()
    assert sock.recv(1024).startswith(b"STATUS=failing: the collector scheduler has been stuck")
    notifier.tick()
    sock.settimeout(0.05)
    with pytest.raises(TimeoutError):
        sock.recv(1024)  # stuck: nothing more, and the STATUS was said once
    notifier.close()
    scheduler.stop(wait=0)
