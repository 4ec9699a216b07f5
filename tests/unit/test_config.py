from __future__ import annotations

from pathlib import Path

import pytest

from totem_agent import DEFAULT_PORT
from totem_agent.config import ConfigError, env_name, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def problems_of(path: Path | None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env or {})
    return caught.value.problems


def test_no_file_gives_defaults_on_loopback(tmp_path: Path) -> None:
    # An empty environment and a default path that does not exist: built-in defaults.
    config = load_config(None, env={}, platform="linux") if not Path(
        "/etc/totem-agent/config.toml").exists() else None
    if config is None:
        pytest.skip("this machine has /etc/totem-agent/config.toml")
    assert config.source == "<built-in defaults>"
    assert config.agent["listen"] == f"127.0.0.1:{DEFAULT_PORT}"
    assert config.agent["interval"] == 15.0
    assert config.log["max_size"] == 10_000_000 and config.log["max_files"] == 5
    assert config.instance  # the host name
    assert any(c.enabled for c in config.collectors.values())


def test_file_values_and_units(tmp_path: Path) -> None:
    path = write(tmp_path, """
[agent]
instance = "kiosk-042"
listen = "127.0.0.1:9999"
interval = "30s"
collector_timeout = "1500ms"

[labels]
store = "sp-0042"
region = "sudeste"

[log]
level = "debug"
max_size = "1MiB"

[collectors.loadavg]
interval = "1m"
""")
    config = load_config(path, env={})
    assert config.source == str(path)
    assert config.instance == "kiosk-042"
    assert config.agent["interval"] == 30.0
    assert config.agent["collector_timeout"] == 1.5
    assert config.labels == {"store": "sp-0042", "region": "sudeste"}
    assert config.log["max_size"] == 1024 * 1024
    loadavg = config.collectors["loadavg"]
    assert loadavg.interval == 60.0 and loadavg.timeout == 1.5


def test_every_problem_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
[agent]
listen = "nonsense"
interval = true
colour = "blue"

[labels]
instance = "x"
"bad-name" = "y"

[collectors.nosuch]
enabled = true

[collectors.loadavg]
enabled = "yes"

[logs]
level = "info"
""")
    problems = problems_of(path)
    text = "\n".join(problems)
    assert all(line.startswith(f"{path}: ") for line in problems), text
    for key in ("agent.listen", "agent.interval", "agent.colour", "labels.instance",
                "labels.bad-name", "collectors.nosuch", "collectors.loadavg.enabled", "[logs]"):
        assert f": {key}" in text, f"{key} not named in:\n{text}"
    assert "unknown key" in text and "unknown collector" in text and "unknown table" in text
    assert len(problems) == 8


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[agent]\nlisten = \n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: not valid TOML") and "line 2" in problem


def test_missing_explicit_file(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path / "absent.toml")
    assert "config file not found" in problem


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\ninterval = "30s"\n[labels]\nstore = "a"\n')
    env = {
        "TOTEM_AGENT_INTERVAL": "5s",
        "TOTEM_AGENT_LABELS_STORE": "b",
        "TOTEM_AGENT_LABELS_REGION": "north",
        "TOTEM_AGENT_COLLECTORS_LOADAVG_ENABLED": "false",
        "TOTEM_AGENT_LOG_FORMAT": "text",
    }
    config = load_config(path, env=env)
    assert config.agent["interval"] == 5.0
    assert config.labels == {"store": "b", "region": "north"}
    assert not config.collectors["loadavg"].enabled
    assert config.log["format"] == "text"


def test_environment_errors_name_the_variable(tmp_path: Path) -> None:
    problems = problems_of(None, env={"TOTEM_AGENT_CONFIG": str(write(tmp_path, "")),
                                      "TOTEM_AGENT_INTERVAL": "soon",
                                      "TOTEM_AGENT_LISTNE": "127.0.0.1:1"})
    text = "\n".join(problems)
    assert "environment TOTEM_AGENT_INTERVAL: agent.interval" in text
    assert "environment TOTEM_AGENT_LISTNE: not a totem-agent setting" in text


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\ninstance = "from-env-file"\n')
    config = load_config(None, env={"TOTEM_AGENT_CONFIG": str(path)})
    assert config.instance == "from-env-file" and config.source == str(path)


def test_cli_override_wins_and_is_validated(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\nlisten = "127.0.0.1:1111"\n')
    config = load_config(path, env={"TOTEM_AGENT_LISTEN": "127.0.0.1:2222"},
                         overrides={"listen": "127.0.0.1:3333"})
    assert config.agent["listen"] == "127.0.0.1:3333"
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={}, overrides={"listen": "3333"})
    assert caught.value.problems[0].startswith("command line: agent.listen")


def test_timeout_longer_than_interval_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\ninterval = "5s"\ncollector_timeout = "10s"\n')
    (problem,) = problems_of(path)
    assert "agent.collector_timeout" in problem and "longer than agent.interval" in problem


def test_collector_for_another_platform_cannot_be_enabled(tmp_path: Path) -> None:
    path = write(tmp_path, "[collectors.loadavg]\nenabled = true\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={}, platform="sunos5")
    assert "does not run on sunos5" in caught.value.problems[0]


@pytest.mark.parametrize(("listen", "ok"), [
    ("127.0.0.1:10084", True), ("[::1]:10084", True), ("0.0.0.0:0", True),
    (":10084", False), ("localhost", False), ("127.0.0.1:70000", False),
])
def test_listen_values(tmp_path: Path, listen: str, ok: bool) -> None:
    path = write(tmp_path, f'[agent]\nlisten = "{listen}"\n')
    if ok:
        load_config(path, env={})
    else:
        assert "agent.listen" in problems_of(path)[0]


def test_env_names() -> None:
    assert env_name("agent", "listen") == "TOTEM_AGENT_LISTEN"
    assert env_name("log", "max_size") == "TOTEM_AGENT_LOG_MAX_SIZE"
    assert env_name("collectors", "enabled", collector="cpu") == \
        "TOTEM_AGENT_COLLECTORS_CPU_ENABLED"
