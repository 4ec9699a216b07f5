"""SIGHUP reloads the config of a real `totem-agent run` process.

The test plays systemd's part (ExecReload=/bin/kill -HUP $MAINPID): it rewrites
the config file, sends SIGHUP, and watches /metrics, /health, the log and the
NOTIFY_SOCKET datagrams (RELOADING=1, then READY=1) until the change shows.
"""

from __future__ import annotations

import os
import signal
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.servers import (
    AgentProcess,
    ServerProcess,
    agent_config,
    http_get,
    parse_metrics,
    start_prometheus_receiver,
    start_pushgateway,
)
from tests.integration.test_sdnotify import ServiceManager
from tests.support import wait_until

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")]


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[ServiceManager]:
    server = ServiceManager(str(tmp_path / "notify.sock"))
    yield server
    server.close()


def labels_of(agent: AgentProcess, metric: str) -> list[dict[str, str]]:
    family = parse_metrics(agent.metrics_text()).get(metric)
    return [dict(sample.labels) for sample in family.samples] if family else []


def hup(agent: AgentProcess) -> None:
    assert agent.proc is not None
    os.kill(agent.proc.pid, signal.SIGHUP)


def records(agent: AgentProcess, msg_start: str) -> list[dict[str, Any]]:
    return [r for r in agent.log_records() if str(r.get("msg", "")).startswith(msg_start)]


def test_sighup_applies_a_new_config_and_refuses_a_bad_one(
        tmp_path: Path, manager: ServiceManager) -> None:
    state = tmp_path / "state"
    config = tmp_path / "agent.toml"
    config.write_text(agent_config(state, interval="1s", only=["loadavg"],
                                   extra='[labels]\nstore = "before"\n'))
    agent = AgentProcess(config, env={"NOTIFY_SOCKET": manager.address}).start()
    try:
        first_ready = wait_until(lambda: manager.received("READY", "1"), timeout=15,
                                 message="READY=1")[0][0]
        assert labels_of(agent, "node_load1") == [{"store": "before"}]
        assert "node_memory_MemTotal_bytes" not in parse_metrics(agent.metrics_text())

        # A valid new config: one more collector, another label value, another level.
        config.write_text(agent_config(state, interval="1s", only=["loadavg", "meminfo"],
                                       extra='[labels]\nstore = "after"\n'
                                             '[log]\nlevel = "debug"\n'))
        hup(agent)
        wait_until(lambda: labels_of(agent, "node_memory_MemTotal_bytes") == [{"store": "after"}],
                   timeout=15, message="meminfo's series with the new label on /metrics")
        assert labels_of(agent, "node_load1") == [{"store": "after"}]
        assert agent.health()[1]["labels"] == {"store": "after"}
        reloaded = wait_until(lambda: records(agent, "config reloaded"), timeout=5,
                              message="the 'config reloaded' log line")
        assert reloaded[0]["collectors"] == ["loadavg", "meminfo"]
        # systemd's reload handshake: RELOADING=1, then READY=1 again.
        reloading = wait_until(lambda: manager.received("RELOADING", "1"), timeout=5,
                               message="RELOADING=1")
        assert reloading[0][0] >= first_ready and "MONOTONIC_USEC" in reloading[0][1]
        wait_until(lambda: manager.received("READY", "1", after=reloading[0][0]), timeout=5,
                   message="READY=1 after RELOADING=1")
        # log level debug took effect: debug lines now appear.
        wait_until(lambda: any(r.get("level") == "debug" for r in agent.log_records()),
                   timeout=10, message="a debug log line after [log] level = debug")

        # A bad new config: refused with one line naming the file and the key.
        config.write_text(agent_config(state, interval="1s", only=["loadavg"],
                                       extra='[labels]\n"bad-name" = "x"\nstore = "bad"\n'))
        refused_before = len(manager.received("RELOADING", "1"))
        hup(agent)
        refused = wait_until(lambda: records(agent, "config reload refused"), timeout=10,
                             message="the 'config reload refused' log line")
        assert len(refused) == 1
        line = refused[0]
        assert line["level"] == "error"
        assert str(config) in line["msg"] and "labels.bad-name" in line["msg"], line
        wait_until(lambda: len(manager.received("RELOADING", "1")) > refused_before, timeout=5,
                   message="RELOADING=1 for the refused reload")
        last_reload = manager.received("RELOADING", "1")[-1][0]
        ready = wait_until(lambda: manager.received("READY", "1", after=last_reload),
                           timeout=5, message="READY=1 after the refused reload")
        assert "refused" in ready[0][1]["STATUS"]
        # The previous config goes on: both collectors, the old label, still collecting.
        runs = parse_metrics(agent.metrics_text())["totem_agent_collector_runs"]
        before = {s.labels["collector"]: s.value for s in runs.samples}
        wait_until(lambda: all(
            s.value > before[s.labels["collector"]] for s in
            parse_metrics(agent.metrics_text())["totem_agent_collector_runs"].samples),
            timeout=10, message="both collectors to keep running after the refused reload")
        assert labels_of(agent, "node_load1") == [{"store": "after"}]
        assert labels_of(agent, "node_memory_MemTotal_bytes") == [{"store": "after"}]
        assert agent.proc is not None and agent.proc.poll() is None
    finally:
        code = agent.stop()
    assert code == 0, agent.describe()


def test_restart_only_keys_are_named_and_the_server_stays(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(agent_config(tmp_path / "state", interval="1s", only=["loadavg"]))
    agent = AgentProcess(config).start()
    try:
        url = agent.url
        config.write_text(agent_config(tmp_path / "elsewhere", interval="1s", only=["loadavg"],
                                       agent={"instance": "kiosk-renamed"}))
        hup(agent)
        warned = wait_until(lambda: records(agent, "config reload:"), timeout=10,
                            message="the warning naming the keys that need a restart")
        assert warned[0]["restart_needed"] == ["agent.state_dir"], warned
        assert "restart" in warned[0]["msg"]
        # The rest applied (instance), on the same server, the buffer where it was.
        wait_until(lambda: agent.health()[1]["instance"] == "kiosk-renamed", timeout=10,
                   message="the new instance in /health")
        assert agent.url == url and http_get(f"{url}/metrics").status == 200
        assert (tmp_path / "state" / "buffer.sqlite").exists()
        assert not (tmp_path / "elsewhere").exists()
    finally:
        code = agent.stop()
    assert code == 0, agent.describe()


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[ServerProcess]:
    workdir = tmp_path / "pushgateway"
    workdir.mkdir()
    server = start_pushgateway(workdir)
    yield server
    server.stop()


def test_reload_adds_an_output(tmp_path: Path, pushgateway: ServerProcess) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(agent_config(tmp_path / "state", interval="1s", only=["loadavg"],
                                   agent={"instance": "kiosk-7"}))
    agent = AgentProcess(config).start()
    try:
        assert "output:pushgateway" not in agent.health()[1]["checks"]
        config.write_text(agent_config(
            tmp_path / "state", interval="1s", only=["loadavg"], agent={"instance": "kiosk-7"},
            extra=f'[pushgateway]\nurl = "{pushgateway.url}"\ninterval = "1s"\n'))
        hup(agent)

        def pushed() -> bool:
            gateway = parse_metrics(http_get(pushgateway.url + "/metrics").text)
            family = gateway.get("node_load1")
            return bool(family) and any(s.labels.get("instance") == "kiosk-7"
                                        for s in family.samples)

        wait_until(pushed, timeout=15, message="the agent's group on the Pushgateway")
        assert agent.health()[1]["checks"]["output:pushgateway"]["status"] == "ok"
    finally:
        code = agent.stop()
    assert code == 0, agent.describe()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ServerProcess]:
    workdir = tmp_path / "receiver"
    workdir.mkdir()
    server = start_prometheus_receiver(workdir)
    yield server
    server.stop()


def test_reload_adds_then_removes_a_remote_write_destination(
        tmp_path: Path, receiver: ServerProcess) -> None:
    config = tmp_path / "agent.toml"
    plain = agent_config(tmp_path / "state", interval="1s", only=["loadavg"],
                         agent={"instance": "kiosk-rw"})
    config.write_text(plain)
    agent = AgentProcess(config).start()
    try:
        config.write_text(plain + f'[[remote_write]]\nname = "central"\n'
                                  f'url = "{receiver.url}/api/v1/write"\n')
        hup(agent)

        def received() -> bool:
            query = urllib.parse.urlencode({"query": 'node_load1{instance="kiosk-rw"}'})
            result = http_get(f"{receiver.url}/api/v1/query?{query}").json()
            return bool(result["data"]["result"])

        wait_until(received, timeout=20, message="the agent's samples in the receiver")
        assert agent.health()[1]["checks"]["remote_write:central"]["status"] == "ok"
        # Removed from the config: its shipper stops and the buffer forgets it.
        config.write_text(plain)
        hup(agent)
        wait_until(lambda: records(agent, "remote_write: forgetting destination 'central'"),
                   timeout=10, message="the log line forgetting the removed destination")
        wait_until(lambda: "remote_write:central" not in agent.health()[1]["checks"],
                   timeout=10, message="the removed destination to leave /health")
        # The buffer's per-destination series go with the next append's statistics.
        wait_until(lambda: 'destination="central"' not in agent.metrics_text(), timeout=10,
                   message="the removed destination's series to leave /metrics")
    finally:
        code = agent.stop()
    assert code == 0, agent.describe()


def test_reload_renames_a_printer_that_keeps_its_port_open(tmp_path: Path) -> None:
    """A printer in ASB mode holds its serial port (an exclusive lock) between polls;
    the reloaded collector must get the port, not find it 'in use by another program'."""
    from tests.fakes.escpos_printer import FakeEscposPrinter, printer_toml

    fake = FakeEscposPrinter("epson")
    config = tmp_path / "agent.toml"
    base = agent_config(tmp_path / "state", interval="0.5s", only=["printer"],
                        collectors={"printer": {"enabled": True}})
    config.write_text(base + printer_toml("receipt", port=fake.port, dialect="epson",
                                          mode="asb"))
    agent = AgentProcess(config).start()
    try:
        wait_until(lambda: agent.health()[1]["checks"]["printer:receipt"]["status"] == "ok",
                   timeout=10, message="the printer check ok before the reload")
        config.write_text(base + printer_toml("caixa", port=fake.port, dialect="epson",
                                              mode="asb"))
        hup(agent)
        seen: list[dict[str, Any]] = []

        def renamed_ok() -> bool:
            check = agent.health()[1]["checks"].get("printer:caixa")
            if check is not None and check["status"] != "pending":
                seen.append(check)
            return bool(seen) and seen[-1]["status"] == "ok"

        wait_until(renamed_ok, timeout=10, message="the renamed printer's check")
        assert [c["message"] for c in seen if c["status"] != "ok"] == [], \
            "the reloaded collector found the port still held by the old one"
        assert "printer:receipt" not in agent.health()[1]["checks"]
    finally:
        code = agent.stop()
        fake.close()
    assert code == 0, agent.describe()


def test_the_watchdog_follows_the_new_scheduler(tmp_path: Path,
                                               manager: ServiceManager) -> None:
    """A reload replaces the scheduler whose loop feeds the watchdog: the pings must go
    on from the new one (systemd would otherwise kill a healthy agent)."""
    config = tmp_path / "agent.toml"
    config.write_text(agent_config(tmp_path / "state", interval="5s", only=["loadavg"]))
    agent = AgentProcess(config, env={"NOTIFY_SOCKET": manager.address,
                                      "WATCHDOG_USEC": "1000000"}).start()
    try:
        wait_until(lambda: manager.received("READY", "1"), timeout=15, message="READY=1")
        config.write_text(agent_config(tmp_path / "state", interval="5s",
                                       only=["loadavg", "meminfo"]))
        hup(agent)
        reloading = wait_until(lambda: manager.received("RELOADING", "1"), timeout=10,
                               message="RELOADING=1")
        ready = wait_until(lambda: manager.received("READY", "1", after=reloading[0][0]),
                           timeout=10, message="READY=1 after the reload")
        # WATCHDOG_USEC=1s: a ping every 0.5 s; the old scheduler no longer turns.
        wait_until(lambda: len(manager.received("WATCHDOG", "1", after=ready[0][0])) >= 6,
                   timeout=10, message="six watchdog pings after the reload")
        assert not [m for m in manager.received("STATUS") if "stuck" in m[1]["STATUS"]]
    finally:
        code = agent.stop()
    assert code == 0, agent.describe()
