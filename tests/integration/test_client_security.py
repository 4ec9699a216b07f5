"""The local clients (`status`, `event`, the tray's poll) against a real agent whose
server is protected by its web-config: TLS, a required client certificate, basic
auth, an events token. With the right credentials they work; without, they say in
words what to set and exit with the documented code, never a traceback; the password
shows nowhere. Also: the agent's plain-HTTP server is not blocked by clients that
trickle their request one byte at a time, and `status | head` gets no traceback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.servers import (
    AGENT_EXE,
    AgentProcess,
    TlsFiles,
    agent_config,
    clean_env,
    make_tls_files,
    run_cli,
)
from tests.integration.test_web_security import (
    PASSWORD,
    USER,
    SecureAgent,
    basic,
    write_web_config,
)
from tests.support import free_port, wait_until
from totem_agent.agent_client import build_target
from totem_agent.config import load_config
from totem_agent.tray import Tray

pytestmark = pytest.mark.integration

TOKEN = "events-token-5f1"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("client-tls"))


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, tls: TlsFiles) -> Iterator[SecureAgent]:
    """TLS with a required client certificate, basic auth and an events token, all
    named by the config file, so `--config` alone tells a client where and how."""
    workdir = tmp_path_factory.mktemp("client-agent")
    web = write_web_config(workdir / "web.yml", tls)
    listen = f"127.0.0.1:{free_port()}"
    config = workdir / "config.toml"
    config.write_text(agent_config(workdir / "state", interval="1s", only=["loadavg"],
                                   agent={"listen": listen, "web_config": str(web)})
                      + f'\n[events]\ntoken = "{TOKEN}"\n')
    config.chmod(0o600)
    started = SecureAgent(config, tls.client_context(), basic(USER, PASSWORD),
                          listen=listen).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "agent.pass"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


def client_cert(tls: TlsFiles) -> list[str]:
    return ["--cert-file", str(tls.client_cert), "--key-file", str(tls.client_key)]


def no_secret_in(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text and TOKEN not in text, text
        assert "Traceback" not in text, text


def test_status_with_the_config_and_credentials(agent: SecureAgent, tls: TlsFiles,
                                                password_file: Path) -> None:
    config = str(agent.config_path)
    # Address, https and the agent's own certificate from the config; the login from the
    # environment.
    ok = run_cli("status", "--config", config, *client_cert(tls),
                 env={"TOTEM_AGENT_USER": USER, "TOTEM_AGENT_PASSWORD": PASSWORD})
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0].endswith(": OK"), ok.stdout
    # The password from a file; --url with the CA instead of the config.
    assert agent.url is not None
    by_url = run_cli("status", "--json", "--url", agent.url, "--ca-file", str(tls.ca),
                     "--user", USER, "--password-file", str(password_file), *client_cert(tls))
    assert by_url.returncode == 0, by_url.stderr
    assert json.loads(by_url.stdout)["status"] == "ok"
    no_secret_in(ok.stdout, ok.stderr, by_url.stdout, by_url.stderr)


def test_status_says_what_is_missing(agent: SecureAgent, tls: TlsFiles,
                                     tmp_path: Path) -> None:
    config = str(agent.config_path)
    login = {"TOTEM_AGENT_USER": USER, "TOTEM_AGENT_PASSWORD": PASSWORD}
    outcomes = {
        "no login": run_cli("status", "--config", config, *client_cert(tls)),
        "wrong password": run_cli("status", "--config", config, *client_cert(tls),
                                  env={**login, "TOTEM_AGENT_PASSWORD": "wrong-pass"}),
        "no client certificate": run_cli("status", "--config", config, env=login),
        "plain http": run_cli("status", "--url", str(agent.url).replace("https", "http"),
                              *client_cert(tls), env=login),
        "system CAs": run_cli("status", "--url", str(agent.url), *client_cert(tls),
                              env=login),
    }
    expected = {
        "no login": "the agent asks for a user and password: set TOTEM_AGENT_USER and "
                    "TOTEM_AGENT_PASSWORD",
        "wrong password": f"the agent refused the user {USER!r} and its password",
        "no client certificate": "the agent requires a client certificate: give --cert-file",
        "plain http": "closed the connection without answering (if its web-config turns TLS "
                      "on, use https://)",
        "system CAs": "the agent's certificate is not trusted",
    }
    for case, done in outcomes.items():
        assert done.returncode == 3, f"{case}: {done.returncode} {done.stderr}"
        assert expected[case] in done.stderr, f"{case}: {done.stderr}"
        no_secret_in(done.stdout, done.stderr)
    as_json = run_cli("status", "--json", "--config", config, *client_cert(tls))
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout)["problem"] == "auth"
    # Mistakes of our own side: 64, naming what to fix.
    half = run_cli("status", "--config", config, env={"TOTEM_AGENT_USER": USER})
    assert half.returncode == 64 and "TOTEM_AGENT_PASSWORD" in half.stderr
    missing = run_cli("status", "--config", config, "--user", USER,
                      "--password-file", str(tmp_path / "nope"))
    assert missing.returncode == 64 and "cannot read the password file" in missing.stderr


def test_tray_poll_with_and_without_credentials(agent: SecureAgent, tls: TlsFiles) -> None:
    config = load_config(str(agent.config_path), env={})
    login = {"TOTEM_AGENT_USER": USER, "TOTEM_AGENT_PASSWORD": PASSWORD}
    target = build_target(None, config, login, cert_file=str(tls.client_cert),
                          key_file=str(tls.client_key))
    assert target.url == agent.url and target.pinned_cert == str(tls.server_cert)
    assert PASSWORD not in repr(target)
    tray = Tray(target, timeout=5)
    assert tray.poll() == "ok", tray.error
    anonymous = Tray(build_target(None, config, {}, cert_file=str(tls.client_cert),
                                  key_file=str(tls.client_key)), timeout=5)
    assert anonymous.poll() == "unreachable"
    assert anonymous.error is not None and "asks for a user and password" in anonymous.error
    assert "asks for a user and password" in anonymous.menu_entries()[1].text
    assert "TOTEM_AGENT_USER" in anonymous.diagnostics()


def test_event_over_tls_with_the_token(agent: SecureAgent, tls: TlsFiles,
                                       tmp_path: Path) -> None:
    config = str(agent.config_path)
    # The token and the address from the config; no basic auth on the events API.
    ok = run_cli("event", "ticket_created", "--service", "general", "--config", config,
                 *client_cert(tls))
    assert (ok.returncode, ok.stdout.strip()) == (0, "recorded: ticket_created"), ok.stderr
    other = tmp_path / "other.toml"
    other.write_text(agent_config(tmp_path / "state", agent={
        "listen": load_config(config, env={}).agent["listen"],
        "web_config": load_config(config, env={}).agent["web_config"]}))
    refused = run_cli("event", "ticket_created", "--service", "general", "--config",
                      str(other), *client_cert(tls))
    assert refused.returncode == 77, refused.stderr
    assert "asks for the events token" in refused.stderr
    no_secret_in(ok.stdout, ok.stderr, refused.stdout, refused.stderr)


def test_status_into_a_closed_pipe_exits_quietly(agent: SecureAgent, tls: TlsFiles) -> None:
    """`totem-agent status | head -0`: the reader is gone before the report is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader left before anything was written
    env = clean_env({"TOTEM_AGENT_USER": USER, "TOTEM_AGENT_PASSWORD": PASSWORD})
    try:
        done = subprocess.run([str(AGENT_EXE), "status", "--config", str(agent.config_path),
                               *client_cert(tls)], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, env=env, timeout=30, stdin=subprocess.DEVNULL)
    finally:
        os.close(write_end)
    assert done.returncode == 1, done.stderr
    assert done.stderr == "", done.stderr


def _trickle(sock: socket.socket, data: bytes) -> None:
    for i in range(len(data)):
        sock.sendall(data[i:i + 1])


def test_slow_clients_do_not_block_plain_http(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(agent_config(tmp_path / "state", interval="1s", only=["loadavg"]))
    plain = AgentProcess(config).start()
    try:
        assert plain.url is not None
        parts = urllib.parse.urlsplit(plain.url)
        address = (str(parts.hostname), int(parts.port or 0))
        slow = [socket.create_connection(address, timeout=5) for _ in range(20)]
        try:
            # Each has sent part of its request line and headers, and stalls there.
            for sock in slow:
                _trickle(sock, b"GET /metrics HTTP/1.1\r\nHost: x")
            status = wait_until(lambda: plain.get("/health", timeout=2).status, timeout=20,
                                message="/health to answer while 20 clients trickle")
            assert status == 200
            assert plain.get("/metrics", timeout=5).status == 200
            # The slow ones are still served once they finish their request.
            _trickle(slow[0], b"\r\n\r\n")
            assert slow[0].recv(12).startswith(b"HTTP/1.")
        finally:
            for sock in slow:
                sock.close()
    finally:
        plain.stop()
