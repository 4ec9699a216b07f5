"""[pushgateway] TLS keys: validation at load time, and what the pusher does with them.

The handshakes themselves are tested against a real Pushgateway in
tests/integration/test_pushgateway_tls.py.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from totem_agent.config import ConfigError, load_config
from totem_agent.pushgateway import Pusher


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    return "\n".join(info.value.problems)


def test_defaults_verify_with_the_system_store(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), env={})
    assert config.pushgateway["ca_file"] == ""
    assert config.pushgateway["cert_file"] == config.pushgateway["key_file"] == ""
    assert config.pushgateway["insecure_skip_verify"] is False


def test_files_are_read_from_the_file_and_the_environment(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("PEM\n")
    path = write(tmp_path, '[pushgateway]\nurl = "https://pgw:9091"\n'
                           f'ca_file = "{tmp_path / "ca.pem"}"\n')
    env = {"TOTEM_AGENT_PUSHGATEWAY_CERT_FILE": str(tmp_path / "client.pem"),
           "TOTEM_AGENT_PUSHGATEWAY_KEY_FILE": str(tmp_path / "client.key"),
           "TOTEM_AGENT_PUSHGATEWAY_INSECURE_SKIP_VERIFY": "true"}
    settings = load_config(path, env=env).pushgateway
    assert settings["ca_file"] == str(tmp_path / "ca.pem")
    assert settings["cert_file"] == str(tmp_path / "client.pem")
    assert settings["key_file"] == str(tmp_path / "client.key")
    assert settings["insecure_skip_verify"] is True


def test_a_missing_or_non_file_path_names_key_and_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ca.pem"
    path = write(tmp_path, f'[pushgateway]\nurl = "https://pgw:9091"\nca_file = "{missing}"\n'
                           f'cert_file = "{tmp_path}"\nkey_file = "{tmp_path}"\n')
    text = problems(path)
    assert f"pushgateway.ca_file: {missing}: no such file" in text
    assert f"pushgateway.cert_file: {tmp_path}: not a file" in text
    text = problems(write(tmp_path, '[pushgateway]\nurl = "https://pgw:9091"\n'),
                    env={"TOTEM_AGENT_PUSHGATEWAY_CA_FILE": str(missing)})
    assert f"environment TOTEM_AGENT_PUSHGATEWAY_CA_FILE: pushgateway.ca_file: {missing}" in text


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    (tmp_path / "client.pem").write_text("PEM\n")
    path = write(tmp_path, '[pushgateway]\nurl = "https://pgw:9091"\n'
                           f'cert_file = "{tmp_path / "client.pem"}"\n')
    assert "pushgateway.key_file: pushgateway.cert_file is set" in problems(path)
    path = write(tmp_path, '[pushgateway]\nurl = "https://pgw:9091"\n'
                           f'key_file = "{tmp_path / "client.pem"}"\n')
    assert "pushgateway.cert_file: pushgateway.key_file is set" in problems(path)


def test_tls_settings_with_a_plain_http_url_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[pushgateway]\nurl = "http://pgw:9091"\ninsecure_skip_verify = true\n')
    assert "pushgateway.insecure_skip_verify: TLS settings need an https:// url" \
        in problems(path)


def settings(**tls: object) -> dict[str, object]:
    # Port 9 on loopback: nothing listens there.
    return {"url": "https://127.0.0.1:9", "job": "totem", "interval": 10.0, "timeout": 1.0,
            "grouping": (), "username": "", "password": "", **tls}


def test_insecure_skip_verify_turns_verification_off() -> None:
    context = Pusher(settings(insecure_skip_verify=True), "k", {}, lambda: []).ssl_context()
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
    context = Pusher(settings(), "k", {}, lambda: []).ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_a_ca_file_that_went_bad_is_a_counted_failure_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    pusher = Pusher(settings(ca_file=str(bad)), "k", {}, lambda: [])
    with pytest.raises(ssl.SSLError, match=f"ca_file {bad}"):
        pusher.push_once()
    assert pusher.pushes == {"success": 0, "failure": 1}
    assert pusher.last_error is not None and str(bad) in pusher.last_error
