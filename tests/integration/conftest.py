"""Fixtures for the integration tests: real servers on loopback, started and stopped here.

Servers the tests only read (node_exporter, the agent watching this machine) are
session-scoped, so the suite starts each once. Informational findings (families
node_exporter has and the agent lacks, dashboard counts) are printed in an
"integration report" section at the end of the run rather than failing it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.servers import (
    AgentProcess,
    ServerProcess,
    agent_config,
    require_binary,
    start_node_exporter,
)
from totem_agent.collectors import builtin_collectors

_REPORT = pytest.StashKey[list[str]]()

# A textfile both exporters read: node_exporter through --collector.textfile.directory,
# the agent through its textfile collector's directory option.
TEXTFILE_PROBE = """\
# HELP node_totem_textfile_probe A metric written for the integration tests.
# TYPE node_totem_textfile_probe gauge
node_totem_textfile_probe{source="integration"} 42
"""


def textfile_settings(directory: Path) -> dict[str, dict[str, Any]]:
    """[collectors.textfile] pointing at `directory`, whatever the option is called."""
    cls = builtin_collectors().get("textfile")
    if cls is None:
        return {}
    for key, option in cls.options.items():
        if "dir" in key or "path" in key:
            value: Any = [str(directory)] if option.kind == "str_list" else str(directory)
            return {"textfile": {"enabled": True, key: value}}
    return {}


@pytest.fixture(scope="session")
def integration_report(request: pytest.FixtureRequest) -> list[str]:
    """Lines printed after the run (information, not failures)."""
    return request.config.stash.setdefault(_REPORT, [])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    lines = config.stash.get(_REPORT, [])
    if lines:
        terminalreporter.section("integration report")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_binary("promtool")


@pytest.fixture(scope="session")
def textfile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("textfile")
    (directory / "totem_probe.prom").write_text(TEXTFILE_PROBE)
    return directory


@pytest.fixture(scope="session")
def node_exporter(tmp_path_factory: pytest.TempPathFactory,
                  textfile_dir: Path) -> Iterator[ServerProcess]:
    server = start_node_exporter(tmp_path_factory.mktemp("node_exporter"), textfile_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def system_agent(tmp_path_factory: pytest.TempPathFactory,
                 textfile_dir: Path) -> Iterator[AgentProcess]:
    """The agent watching this machine with its default collectors, every 2 s (so a
    parity test finds a fresh cycle quickly), reading the same textfile dir as node_exporter."""
    workdir = tmp_path_factory.mktemp("agent")
    config = workdir / "agent.toml"
    config.write_text(agent_config(workdir / "state", interval="2s",
                                   collectors=textfile_settings(textfile_dir)))
    agent = AgentProcess(config).start()
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    """Factory: start_agent(config_text, **AgentProcess/start kwargs); all stopped at teardown."""
    started: list[AgentProcess] = []

    def start(config_text: str, wait_collectors: bool = True, **kwargs: Any) -> AgentProcess:
        path = tmp_path / f"agent{len(started)}.toml"
        path.write_text(config_text)
        agent = AgentProcess(path, **kwargs)
        started.append(agent)
        return agent.start(wait_collectors=wait_collectors)

    yield start
    for agent in started:
        agent.stop()
