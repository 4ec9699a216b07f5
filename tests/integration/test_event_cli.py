"""`totem-agent event` and `totem-agent push`, the real command against real servers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.servers import (
    AgentProcess,
    agent_config,
    http_get,
    parse_metrics,
    run_cli,
    start_pushgateway,
)
from tests.support import free_port

pytestmark = pytest.mark.integration


def test_event_command_records_refuses_and_explains(
        tmp_path: Path, start_agent: Callable[..., AgentProcess]) -> None:
    text = agent_config(tmp_path / "state", only=["loadavg"],
                        extra='[events]\ntoken = "tok-123"\n')
    agent = start_agent(text, wait_collectors=False)
    assert agent.url is not None
    config = agent.config_path
    ok = run_cli("event", "payment", "--config", str(config), "--url", agent.url,
                 "--status", "approved", "--method", "pix", "--amount", "12.50", "--id", "p-1")
    assert (ok.returncode, ok.stdout.strip()) == (0, "recorded: payment"), ok.stderr
    again = run_cli("event", "payment", "--config", str(config), "--url", agent.url,
                    "--status", "approved", "--method", "pix", "--amount", "12.50", "--id", "p-1")
    assert again.returncode == 0 and "already recorded" in again.stdout
    bad = run_cli("event", "payment", "--config", str(config), "--url", agent.url,
                  "--status", "approved", "--method", "pix", "--amount", "-3")
    assert bad.returncode == 64
    assert "refused" in bad.stderr and "event.amount" in bad.stderr and "negative" in bad.stderr
    family = parse_metrics(agent.metrics_text())["totem_payment_amount"]
    assert {s.name: s.value for s in family.samples}["totem_payment_amount_sum"] == 12.5
    # Without the token from the config, the agent refuses: 77, and what to set.
    no_token = run_cli("event", "error", "--url", agent.url, "--error-type", "printer")
    assert no_token.returncode == 77, no_token.stderr
    assert "asks for the events token" in no_token.stderr
    assert "TOTEM_AGENT_EVENTS_TOKEN" in no_token.stderr
    assert "Traceback" not in no_token.stderr
    # The token from a file (or the environment) instead of the config.
    token_file = tmp_path / "token"
    token_file.write_text("tok-123\n")
    from_file = run_cli("event", "error", "--url", agent.url, "--error-type", "printer",
                        "--token-file", str(token_file))
    assert from_file.returncode == 0, from_file.stderr
    from_env = run_cli("event", "error", "--url", agent.url, "--error-type", "printer",
                       env={"TOTEM_AGENT_EVENTS_TOKEN": "tok-123"})
    assert from_env.returncode == 0, from_env.stderr
    token_file.write_text("not-the-token\n")
    wrong = run_cli("event", "error", "--url", agent.url, "--error-type", "printer",
                    "--token-file", str(token_file))
    assert wrong.returncode == 77 and "refused the events token" in wrong.stderr
    assert "not-the-token" not in wrong.stderr
    down = run_cli("event", "error", "--url", f"http://127.0.0.1:{free_port()}",
                   "--error-type", "printer")
    assert down.returncode == 3 and "cannot reach the agent" in down.stderr


def test_push_command(tmp_path: Path) -> None:
    (tmp_path / "pgw").mkdir()
    gateway = start_pushgateway(tmp_path / "pgw")
    try:
        config = tmp_path / "agent.toml"
        config.write_text(agent_config(tmp_path / "state", only=["loadavg"],
                                       agent={"instance": "kiosk-cli"}))
        result = run_cli("push", "--config", str(config),
                         env={"PROMETHEUS_PUSH_GATEWAY": gateway.url})
        assert result.returncode == 0, result.stderr
        assert "metrics/job/totem/instance/kiosk-cli" in result.stdout
        families = parse_metrics(http_get(gateway.url + "/metrics").text)
        [sample] = [s for s in families["node_load1"].samples]
        assert sample.labels["instance"] == "kiosk-cli" and sample.labels["job"] == "totem"
    finally:
        gateway.stop()
    result = run_cli("push", "--config", str(config),
                     env={"PROMETHEUS_PUSH_GATEWAY": gateway.url})
    assert result.returncode == 3 and "failed" in result.stderr
    unset = run_cli("push", "--config", str(config), env={"PROMETHEUS_PUSH_GATEWAY": ""})
    assert unset.returncode == 78 and "no Pushgateway configured" in unset.stderr
