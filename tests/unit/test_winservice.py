"""The Windows service glue (agent/winservice.py) against a fake of its thin Win32
layer (agent/_win32.py): Windows cannot run here, everything above that layer does,
including a real Agent started and stopped the way the Service Control Manager would."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import free_port, wait_until
from totem_agent import winservice
from totem_agent._win32 import Win32

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "installer" / "config.example.toml"


@dataclass
class FakeService:
    display_name: str
    description: str
    command_line: str
    running: bool = False
    failure_actions: tuple[int, list[int]] | None = None


@dataclass
class FakeWin32:
    """The Service Control Manager as a dict; %ProgramData% a temp dir."""

    root: Path
    services: dict[str, FakeService] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    exit_code: int | None = None

    def program_data(self) -> Path:
        return self.root

    def service_exists(self, name: str) -> bool:
        return name in self.services

    def create_service(self, name: str, display_name: str, description: str,
                       command_line: str) -> None:
        assert name not in self.services, "CreateService on an existing service fails"
        self.calls.append("create")
        self.services[name] = FakeService(display_name, description, command_line)

    def update_service(self, name: str, display_name: str, description: str,
                       command_line: str) -> None:
        self.calls.append("update")
        service = self.services[name]
        service.display_name, service.description = display_name, description
        service.command_line = command_line

    def set_failure_actions(self, name: str, reset_seconds: int,
                            restart_delays_ms: list[int]) -> None:
        self.services[name].failure_actions = (reset_seconds, list(restart_delays_ms))

    def start_service(self, name: str) -> None:
        self.calls.append("start")
        self.services[name].running = True

    def stop_service(self, name: str) -> None:
        self.calls.append("stop")
        self.services[name].running = False

    def delete_service(self, name: str) -> None:
        assert not self.services[name].running, "delete a running service: stop it first"
        del self.services[name]

    def run_dispatcher(self, name: str, display_name: str, run: Callable[[], int],
                       request_stop: Callable[[], None]) -> None:
        """What StartServiceCtrlDispatcher does: SvcDoRun on a thread, then a stop."""
        thread = threading.Thread(target=lambda: setattr(self, "exit_code", run()))
        thread.start()
        self.on_running()
        request_stop()
        thread.join(30)
        assert not thread.is_alive(), "the service did not stop when asked"

    on_running: Callable[[], None] = lambda: None


def test_fake_has_the_layer_shape(tmp_path: Path) -> None:
    layer: Win32 = FakeWin32(tmp_path)  # mypy checks the fake against the Protocol
    assert layer.program_data() == tmp_path


def test_install_registers_with_recovery_and_keeps_config_on_reinstall(tmp_path: Path) -> None:
    layer = FakeWin32(tmp_path)
    exe = r"C:\Program Files\totem-agent\totem-agent.exe"
    out = io.StringIO()
    assert winservice.install(layer, exe, EXAMPLE, out) == 0
    service = layer.services["totem-agent"]
    config = tmp_path / "totem-agent" / "config.toml"
    assert service.command_line == f'"{exe}" service run --config "{config}"'
    assert service.running
    assert service.failure_actions == (86_400, [5_000, 5_000, 30_000])
    assert config.read_bytes() == EXAMPLE.read_bytes()
    assert (tmp_path / "totem-agent" / "logs").is_dir()

    config.write_text('[labels]\nstore = "sp-1"\n')
    assert winservice.install(layer, exe, EXAMPLE, io.StringIO()) == 0
    assert layer.calls == ["create", "start", "stop", "update", "start"]
    assert config.read_text() == '[labels]\nstore = "sp-1"\n'
    assert layer.services["totem-agent"].failure_actions is not None


def test_uninstall_keeps_state_unless_purge_and_is_idempotent(tmp_path: Path) -> None:
    layer = FakeWin32(tmp_path)
    winservice.install(layer, "totem-agent.exe", EXAMPLE, io.StringIO())
    (tmp_path / "totem-agent" / "buffer.sqlite").write_bytes(b"kept")
    out = io.StringIO()
    assert winservice.uninstall(layer, purge=False, out=out) == 0
    assert not layer.services
    assert (tmp_path / "totem-agent" / "buffer.sqlite").read_bytes() == b"kept"
    assert "--purge" in out.getvalue()
    assert winservice.uninstall(layer, purge=False, out=io.StringIO()) == 0
    assert winservice.uninstall(layer, purge=True, out=io.StringIO()) == 0
    assert not (tmp_path / "totem-agent").exists()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_service_run_starts_a_real_agent_and_stops_on_request(
        tmp_path: Path, restore_logging: None) -> None:
    from tests.integration.servers import http_get

    layer = FakeWin32(tmp_path / "ProgramData")
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f'[agent]\nlisten = "127.0.0.1:{port}"\nstate_dir = "{tmp_path / "state"}"\n'
                      'interval = "1s"\n')
    seen: list[int] = []

    def scrape_while_running() -> None:
        wait_until(lambda: http_get(f"http://127.0.0.1:{port}/metrics").status == 200,
                   timeout=15, message="/metrics of the service's agent")
        seen.append(200)

    layer.on_running = scrape_while_running
    assert winservice.run_service(layer, str(config), env={}) == 0
    assert seen == [200]
    assert layer.exit_code == 0
    log_file = tmp_path / "ProgramData" / "totem-agent" / "logs" / "agent.log"
    assert "totem-agent stopped" in log_file.read_text()


def test_service_run_refuses_a_bad_config_with_a_failure_exit(
        tmp_path: Path, restore_logging: None) -> None:
    layer = FakeWin32(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text('[agent]\ninterval = "often"\n')
    runner = winservice.ServiceRunner(layer, str(config), env={})
    assert runner.run() == 78  # non-zero: Windows applies the recovery actions
    log_text = (tmp_path / "totem-agent" / "logs" / "agent.log").read_text()
    assert "agent.interval" in log_text
