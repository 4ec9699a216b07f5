"""agent_client: the address, credentials and secret files of the local commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from totem_agent import tray_model
from totem_agent.agent_client import (
    USAGE,
    ClientError,
    build_target,
    credentials,
    read_secret_file,
    url_from_listen,
)


def test_url_from_listen() -> None:
    assert url_from_listen("127.0.0.1:10084") == "http://127.0.0.1:10084"
    assert url_from_listen("0.0.0.0:9", tls=True) == "https://127.0.0.1:9"
    assert url_from_listen("[::]:9") == "http://[::1]:9"
    assert url_from_listen("kiosk.example:9", tls=True) == "https://kiosk.example:9"


def test_credentials_from_env_or_file(tmp_path: Path) -> None:
    assert credentials(None, None, {}) == ("", "")
    env = {"TOTEM_AGENT_USER": "tech", "TOTEM_AGENT_PASSWORD": "s3cret"}
    assert credentials(None, None, env) == ("tech", "s3cret")
    secret = tmp_path / "pass"
    secret.write_text("from-file\r\nignored second line\n")
    assert credentials("other", str(secret), env) == ("other", "from-file")
    for given, env, said in [("tech", {}, "no password"),
                             (None, {"TOTEM_AGENT_PASSWORD": "x"}, "no user")]:
        with pytest.raises(ClientError) as caught:
            credentials(given, None, env)
        assert caught.value.kind == USAGE and said in str(caught.value)


def test_secret_files_are_named_never_shown(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match=r"cannot read the token file .*missing"):
        read_secret_file(str(tmp_path / "missing"), "token")
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(ClientError, match="is empty"):
        read_secret_file(str(empty), "password")


def test_target_checks_its_flags() -> None:
    with pytest.raises(ClientError, match="http:// or https://"):
        build_target("ftp://127.0.0.1:1", None, {})
    with pytest.raises(ClientError, match="--cert-file and --key-file"):
        build_target("https://127.0.0.1:1", None, {}, cert_file="c.pem")
    target = build_target(None, None, {"TOTEM_AGENT_USER": "u",
                                       "TOTEM_AGENT_PASSWORD": "pw"})
    assert target.url == "http://127.0.0.1:10084" and "pw" not in repr(target)
    # The events command never sends the basic-auth login.
    assert build_target(None, None, {"TOTEM_AGENT_USER": "u"}, basic_auth=False).user == ""


def test_tray_says_why_there_is_no_report() -> None:
    url = "https://127.0.0.1:10084"
    why = "the agent asks for a user and password: set TOTEM_AGENT_USER and ..."
    assert tray_model.menu_lines(None, url, why) == [f"Agent not reachable at {url}", why]
    tip = tray_model.tooltip(None, url, why)
    assert tip.startswith(f"Kiosk monitor: agent not reachable at {url} (the agent asks")
    assert len(tip) <= tray_model.TOOLTIP_MAX
