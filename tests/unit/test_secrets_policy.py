"""check-config's secrets policy: files holding secrets readable by others, settings that
lower security on purpose, and no secret in what it prints."""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path

import pytest

from tests.integration.servers import TlsFiles, make_tls_files
from totem_agent.cli import main
from totem_agent.config import PUSHGATEWAY_OPTIONS, load_config
from totem_agent.pushgateway import Pusher
from totem_agent.secrets_policy import check_config_warnings, redact_secrets, redact_url


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def check_config(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["check-config", "--config", str(path)], env={}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_secret_files_readable_by_others_are_warned(tmp_path: Path, tls: TlsFiles) -> None:
    key = tmp_path / "server.key"
    shutil.copy(tls.server_key, key)
    cert = tmp_path / "server.crt"
    shutil.copy(tls.server_cert, cert)
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config: {{cert_file: {cert}, key_file: {key}}}\n")
    push_key = tmp_path / "push.key"
    shutil.copy(tls.client_key, push_key)
    config = tmp_path / "config.toml"
    config.write_text(f'[agent]\nweb_config = "{web}"\n[pushgateway]\n'
                      f'url = "https://gw:9091"\ncert_file = "{tls.client_cert}"\n'
                      f'key_file = "{push_key}"\n')
    for path in (key, web, push_key, config):
        path.chmod(0o644)
    code, _, err = check_config(config)
    assert code == 0
    for path, what in ((web, "agent.web_config"),
                       (key, "agent.web_config: tls_server_config.key_file"),
                       (push_key, "pushgateway.key_file")):
        assert f"warning: {path} ({what}" in err, err
    assert str(config) not in err  # it holds no token or password
    for path in (key, web, push_key):
        path.chmod(0o600)
    assert "other users may read" not in check_config(config)[2]


def test_config_file_with_a_token_is_warned_by_mode(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[events]\ntoken = "s3cret-token"\n')
    config.chmod(0o640)
    code, out, err = check_config(config)
    assert code == 0 and "s3cret-token" not in out + err
    assert f"{config} holds a token or password and other users may read it (mode 640)" in err
    config.chmod(0o600)
    assert "holds a token" not in check_config(config)[2]


def test_lowered_security_is_warned(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[agent]\nlisten = "0.0.0.0:10084"\n[pushgateway]\n'
                      'url = "https://gw:9091"\ninsecure_skip_verify = true\n')
    config.chmod(0o600)
    warnings = check_config_warnings(load_config(config, env={}))
    assert any(w.startswith("agent.listen 0.0.0.0:10084 serves /metrics and /health to the "
                            "network without TLS or basic auth") for w in warnings), warnings
    assert any(w.startswith("pushgateway.insecure_skip_verify is on") for w in warnings)


def test_skip_verify_is_logged_once_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    settings = {key: opt.default for key, opt in PUSHGATEWAY_OPTIONS.items()}
    settings.update(url="https://gw.invalid:9091", insecure_skip_verify=True)
    with caplog.at_level(logging.WARNING, logger="totem_agent.pushgateway"):
        pusher = Pusher(settings, "kiosk-1", {}, list)
        for _ in range(3):
            pusher.ssl_context()
    warned = [r for r in caplog.records if "insecure_skip_verify" in r.getMessage()]
    assert len(warned) == 1


def test_redaction() -> None:
    assert redact_url("https://u:pw@gw:9091/x") == "https://u:***@gw:9091/x"
    assert redact_url("https://gw:9091/x") == "https://gw:9091/x"
    printed = json.dumps(redact_secrets({"remote_write": [{"url": "http://a:b@h", "password":
                                                           "p4ss", "bearer_token": ""}]}))
    assert "p4ss" not in printed and ":b@" not in printed and '"(set)"' in printed
