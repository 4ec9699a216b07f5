"""[events] and [pushgateway] in the config, and the pusher's backoff."""

from __future__ import annotations

from pathlib import Path

import pytest

from totem_agent.config import ConfigError, load_config
from totem_agent.pushgateway import MAX_BACKOFF_FACTOR, Pusher


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_events_defaults_and_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, '[events]\nmax_label_values = 10\nmax_age = "2d"\n')
    config = load_config(path, env={"TOTEM_AGENT_EVENTS_TOKEN": "tok"})
    assert config.events["max_label_values"] == 10
    assert config.events["max_age"] == 2 * 86400
    assert config.events["token"] == "tok"
    assert config.events["synchronous"] == "full"
    assert config.events["max_body_bytes"] == 1024 * 1024


def test_events_bad_values_name_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[events]\nmax_label_values = 0\nsynchronous = "off"\ncolour = 1\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    text = "\n".join(info.value.problems)
    assert "events.max_label_values" in text and "events.synchronous" in text
    assert "events.colour: unknown key" in text


def test_pushgateway_url_from_the_operations_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    assert load_config(path, env={}).pushgateway["url"] == ""
    env = {"PROMETHEUS_PUSH_GATEWAY": "http://pgw:9091"}
    assert load_config(path, env=env).pushgateway["url"] == "http://pgw:9091"
    env["TOTEM_AGENT_PUSHGATEWAY_URL"] = "http://ours:9091"
    assert load_config(path, env=env).pushgateway["url"] == "http://ours:9091"
    path = write(tmp_path, '[pushgateway]\nurl = "http://file:9091"\n')
    assert load_config(path, env={"PROMETHEUS_PUSH_GATEWAY": "http://pgw:9091"}
                       ).pushgateway["url"] == "http://file:9091"


def test_grouping_must_name_constant_labels(tmp_path: Path) -> None:
    path = write(tmp_path, '[labels]\nstore = "s1"\n[pushgateway]\ngrouping = ["store"]\n')
    assert load_config(path, env={}).pushgateway["grouping"] == ("store",)
    path = write(tmp_path, '[pushgateway]\ngrouping = ["store"]\n')
    with pytest.raises(ConfigError, match=r"pushgateway\.grouping: 'store' is not a constant"):
        load_config(path, env={})


def test_backoff_doubles_while_failing_and_resets(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    settings = {"url": "http://127.0.0.1:9", "job": "totem", "interval": 10.0, "timeout": 1.0,
                "grouping": (), "username": "", "password": ""}
    pusher = Pusher(settings, "kiosk-1", {}, lambda: [])
    assert pusher.next_wait() == 10.0
    waits = []
    for _ in range(5):
        with pytest.raises(OSError):
            pusher.push_once()
        waits.append(pusher.next_wait())
    assert waits == [20.0, 40.0, 80.0, 10.0 * MAX_BACKOFF_FACTOR, 10.0 * MAX_BACKOFF_FACTOR]
    [check] = pusher.health_checks()
    assert check.status == "degraded" and "Connection refused" in (check.last_error or "")
    assert pusher.grouping == {"instance": "kiosk-1"}
