"""The real `totem-agent` command end to end, as a technician or a service manager runs it.

check-config and run refuse a bad file naming the file and every dotted key
(exit 78); run on a port already taken exits 4 with a sentence, not a
traceback; status exits 0/1/2/3 for ok/degraded/failing/unreachable against
real running agents; the log on stderr is JSON lines.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.servers import AgentProcess, agent_config, run_cli
from tests.support import FIXTURES, free_port, wait_until
from totem_agent.collectors import builtin_collectors

pytestmark = pytest.mark.integration

EX_CONFIG = 78
EXIT_ERROR = 4
OK, DEGRADED, FAILING, UNREACHABLE = 0, 1, 2, 3

# One problem of each kind, each under its dotted key.
BAD_CONFIG = """\
[agent]
colour = "red"            # unknown key
interval = "soon"         # bad value for a duration

[log]
max_files = "five"        # wrong type: a whole number
level = "loud"            # bad value: not a level

[collectors.loadavg]
enabled = "yes"           # wrong type: a boolean
"""
BAD_KEYS = ("agent.colour", "agent.interval", "log.max_files", "log.level",
            "collectors.loadavg.enabled")

StartAgent = Callable[..., AgentProcess]


@pytest.fixture
def bad_config(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(BAD_CONFIG)
    return path


def assert_names_every_problem(stderr: str, path: Path) -> None:
    for key in BAD_KEYS:
        lines = [line for line in stderr.splitlines() if key in line]
        assert lines, f"stderr does not name {key}:\n{stderr}"
        assert any(str(path) in line for line in lines), \
            f"the line about {key} does not name the file {path}:\n{stderr}"
    assert "Traceback" not in stderr, stderr


def test_check_config_names_file_and_each_key(bad_config: Path) -> None:
    result = run_cli("check-config", "--config", str(bad_config))
    assert result.returncode == EX_CONFIG, result
    assert_names_every_problem(result.stderr, bad_config)


def test_run_refuses_the_same_bad_config(bad_config: Path) -> None:
    result = run_cli("run", "--listen", "127.0.0.1:0", "--config", str(bad_config))
    assert result.returncode == EX_CONFIG, result
    assert_names_every_problem(result.stderr, bad_config)


def test_run_on_a_taken_port_exits_4_with_a_readable_message(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(agent_config(tmp_path / "state", only=["loadavg"]))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("run", "--listen", f"127.0.0.1:{port}", "--config", str(config))
    assert result.returncode == EXIT_ERROR, result
    assert f"127.0.0.1:{port}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def status(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("status", "--url", url, "--timeout", "5", *args)


def test_status_ok_against_a_healthy_agent(tmp_path: Path, start_agent: StartAgent) -> None:
    agent = start_agent(agent_config(tmp_path / "state", interval="1s", only=["loadavg"]))
    assert agent.url is not None
    result = status(agent.url)
    assert result.returncode == OK, f"{result}\n{agent.describe()}"
    assert "OK" in result.stdout
    result = status(agent.url, "--json")
    assert result.returncode == OK, result
    report = json.loads(result.stdout)
    assert report["status"] == "ok"
    assert report["checks"]["collector:loadavg"]["status"] == "ok"


def test_status_unreachable_when_nothing_listens() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = status(url)
    assert result.returncode == UNREACHABLE, result
    assert url in result.stderr, result.stderr
    result = status(url, "--json")
    assert result.returncode == UNREACHABLE, result
    assert json.loads(result.stdout)["status"] == "unreachable"


def _procfs_with_garbage_loadavg(root: Path) -> Path:
    """A /proc with a good meminfo (the fixture tree's, else this machine's) and a
    loadavg that is garbage."""
    proc = root / "proc"
    proc.mkdir(parents=True)
    fixture = FIXTURES / "linux" / "proc" / "meminfo"
    shutil.copyfile(fixture if fixture.exists() else Path("/proc/meminfo"), proc / "meminfo")
    (proc / "loadavg").write_text("this is not a load average\n")
    return proc


def test_status_degraded_when_one_collector_fails(tmp_path: Path,
                                                  start_agent: StartAgent) -> None:
    if "meminfo" not in builtin_collectors():
        pytest.skip("needs the meminfo collector as the one that keeps working")
    proc = _procfs_with_garbage_loadavg(tmp_path / "host")
    agent = start_agent(agent_config(tmp_path / "state", interval="0.2s",
                                     only=["loadavg", "meminfo"],
                                     agent={"procfs": str(proc)}))
    assert agent.url is not None
    result = status(agent.url)
    assert result.returncode == DEGRADED, f"{result}\n{agent.describe()}"
    http_status, report = agent.health()
    assert (http_status, report["status"]) == (200, "degraded")
    assert report["checks"]["collector:meminfo"]["status"] == "ok"
    loadavg = report["checks"]["collector:loadavg"]
    assert loadavg["status"] == "failing" and loadavg["last_error"], loadavg
    # The person reading `status` sees which collector fails and why.
    line = next(x for x in result.stdout.splitlines() if "collector:loadavg" in x)
    assert "FAILING" in line and loadavg["last_error"] in line, result.stdout

    # Logged once per change of state, not every cycle: wait for several failed runs.
    def failed_runs() -> float:
        family = agent.metrics()["totem_agent_collector_failures"]
        return sum(s.value for s in family.samples if s.labels["collector"] == "loadavg")

    wait_until(lambda: failed_runs() >= 4, message="four failed loadavg runs")
    records = agent.log_records()
    failures = [r for r in records if r.get("collector") == "loadavg"
                and r["level"] == "warning"]
    assert len(failures) == 1, "\n".join(agent.log_lines())


def test_status_failing_when_every_collector_fails(tmp_path: Path,
                                                   start_agent: StartAgent) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    # loadavg reads procfs/loadavg and has no "nothing to watch" case: a /proc without
    # loadavg is a failure, which makes it the collector for this.
    agent = start_agent(agent_config(
        tmp_path / "state", interval="1s", only=["loadavg"],
        agent={"procfs": str(empty), "sysfs": str(empty), "rootfs": str(empty)}))
    assert agent.url is not None
    result = status(agent.url)
    assert result.returncode == FAILING, f"{result}\n{agent.describe()}"
    http_status, report = agent.health()
    assert (http_status, report["status"]) == (503, "failing")
    result = status(agent.url, "--json")
    assert result.returncode == FAILING
    assert json.loads(result.stdout)["status"] == "failing"


def test_log_is_json_lines_and_sigterm_stops_cleanly(tmp_path: Path,
                                                     start_agent: StartAgent) -> None:
    agent = start_agent(agent_config(tmp_path / "state", interval="1s", only=["loadavg"]))
    assert agent.metrics_text()
    assert agent.stop() == 0, agent.describe()
    records = agent.log_records()
    assert records, "the agent logged nothing"
    for record in records:
        for key in ("ts", "level", "logger", "msg"):
            assert key in record, f"log line without {key!r}: {record}"
    messages = [r["msg"] for r in records]
    assert "totem-agent started" in messages and "totem-agent stopped" in messages, messages
    started = next(r for r in records if r["msg"] == "totem-agent started")
    assert started["url"] == agent.url
