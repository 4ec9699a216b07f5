"""sd_notify against a real unix datagram socket, the way systemd runs the agent.

No systemd is PID 1 here, so the test plays the service manager: it binds the
socket, passes NOTIFY_SOCKET (and WATCHDOG_USEC) to a real `totem-agent run`,
and reads what arrives. The wedged-scheduler case runs the agent through
tests/integration/wedged_agent.py, which holds the real scheduler's lock.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.servers import AgentProcess, agent_config, http_get
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


class ServiceManager:
    """The receiving end of NOTIFY_SOCKET: every datagram, with its arrival time."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + address[1:].encode() if address.startswith("@") else address)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self.on_ready: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            if fields.get("READY") == "1":
                self.on_ready()  # before recording it: the test sees READY with its check done
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def received(self, key: str, value: str | None = None, after: float = 0.0
                 ) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [(t, f) for t, f in self.messages
                    if t >= after and key in f and (value is None or f[key] == value)]

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(2)


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[ServiceManager]:
    server = ServiceManager(str(tmp_path / "notify.sock"))
    yield server
    server.close()


def test_ready_only_once_metrics_answers_then_stopping_on_sigterm(
        tmp_path: Path, manager: ServiceManager) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    answers: list[tuple[int, dict[str, object]]] = []

    def check_agent_at_ready() -> None:
        # The instant READY arrives, the agent must already serve and buffer.
        try:
            metrics = http_get(url + "/metrics").status
            health = http_get(url + "/health").json()
        except OSError as err:
            answers.append((-1, {"error": str(err)}))
            return
        answers.append((metrics, health))

    manager.on_ready = check_agent_at_ready
    config = tmp_path / "agent.toml"
    config.write_text(agent_config(tmp_path / "state", interval="1s",
                                   only=["loadavg", "meminfo"]))
    agent = AgentProcess(config, listen=f"127.0.0.1:{port}",
                         env={"NOTIFY_SOCKET": manager.address}).start()
    try:
        ready = wait_until(lambda: manager.received("READY", "1"), timeout=15,
                           message="READY=1 on the notify socket")
        assert len(ready) == 1
        fields = ready[0][1]
        assert agent.proc is not None and fields["MAINPID"] == str(agent.proc.pid)
        assert fields["STATUS"].split(":")[0] in ("ok", "degraded"), fields
        assert "2 collectors" in fields["STATUS"]
        status, health = answers[0]
        assert status == 200, f"READY came before /metrics answered: {health}"
        checks = health["checks"]
        assert isinstance(checks, dict)
        assert "buffer" in checks and checks["buffer"]["status"] != "failing", checks.get("buffer")
        # No watchdog was asked for: no pings.
        assert not manager.received("WATCHDOG")
    finally:
        code = agent.stop()
    assert code == 0, agent.describe()
    stopping = wait_until(lambda: manager.received("STOPPING", "1"), timeout=5,
                          message="STOPPING=1 after SIGTERM")
    assert stopping[0][0] >= ready[0][0]


def test_watchdog_pings_while_the_scheduler_turns_and_stop_when_it_is_wedged(
        tmp_path: Path) -> None:
    # An abstract socket name this time (systemd uses both forms).
    manager = ServiceManager(f"@totem-agent-test-{uuid.uuid4().hex}")
    config = tmp_path / "agent.toml"
    # Collectors every 5 s: slower than the ping period, so the pings prove the
    # loop turns on its own heartbeat, not because a collector happened to run.
    config.write_text(agent_config(tmp_path / "state", interval="5s",
                                   only=["loadavg", "meminfo"]))
    agent = AgentProcess(config, env={"NOTIFY_SOCKET": manager.address,
                                      "WATCHDOG_USEC": "1000000"})
    agent.argv = [sys.executable, "-m", "tests.integration.wedged_agent", *agent.argv[1:]]
    agent.env["PYTHONPATH"] = str(REPO)
    try:
        agent.start()
        ready_at = wait_until(lambda: manager.received("READY", "1"), timeout=15,
                              message="READY=1")[0][0]
        # WATCHDOG_USEC=1s: a ping every 0.5 s while the scheduler turns.
        pings = wait_until(lambda: [p for p in manager.received("WATCHDOG", "1", after=ready_at)
                                    if p][4:], timeout=10, message="five watchdog pings")
        assert pings
        assert agent.proc is not None
        os.kill(agent.proc.pid, signal.SIGUSR1)
        wait_until(lambda: any("wedged" in line for line in agent.log_lines()), timeout=5,
                   message="the wedge to take the scheduler lock")
        stuck = wait_until(lambda: [m for m in manager.received("STATUS")
                                    if "stuck" in m[1]["STATUS"]], timeout=5,
                           message="STATUS saying the scheduler is stuck")
        stuck_at = stuck[0][0]
        # Observe for three ping periods: not one more ping may come.
        deadline = stuck_at + 1.5
        while time.monotonic() < deadline:
            assert not manager.received("WATCHDOG", after=stuck_at), \
                "the agent kept feeding the watchdog with its scheduler wedged"
            time.sleep(0.1)
        # The process itself is alive and serving: only the scheduler is stuck.
        assert agent.proc.poll() is None
        assert agent.get("/api/v1/openapi.json").status == 200
    finally:
        agent.stop()
        manager.close()
