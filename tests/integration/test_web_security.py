"""The agent behind its web-config file, with real parts: a real Prometheus scrapes it
over TLS with a client certificate and basic auth; Python's ssl client tries without
a certificate; promtool checks the same file; certificates are replaced on disk.
Secrets planted in the config never show in the log, /health, /metrics or check-config.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from tests.integration.servers import (
    AgentProcess,
    HttpResult,
    ServerProcess,
    TlsFiles,
    agent_config,
    http_get,
    make_tls_files,
    require_binary,
    run_cli,
    start_prometheus,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration

USER, PASSWORD = "prometheus", "scrape-pass-1"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class SecureAgent(AgentProcess):
    """The agent over https, every request with the test's client certificate and login."""

    def __init__(self, config_path: Path, context: ssl.SSLContext,
                 headers: dict[str, str], **kwargs: Any) -> None:
        super().__init__(config_path, **kwargs)
        self.context = context
        self.headers = headers

    def get(self, path: str, **kwargs: Any) -> HttpResult:
        kwargs.setdefault("context", self.context)
        kwargs.setdefault("headers", self.headers)
        return super().get(path, **kwargs)


def write_web_config(path: Path, tls: TlsFiles, client_auth: str = "RequireAndVerifyClientCert",
                     users: bool = True) -> Path:
    lines = ["tls_server_config:",
             f"  cert_file: {json.dumps(str(tls.server_cert))}",
             f"  key_file: {json.dumps(str(tls.server_key))}"]
    if client_auth != "NoClientCert":
        lines += [f"  client_auth_type: {client_auth}",
                  f"  client_ca_file: {json.dumps(str(tls.ca))}"]
    lines += ["http_server_config:", "  headers:", "    X-Frame-Options: deny",
              "    X-Content-Type-Options: nosniff"]
    if users:
        lines += ["basic_auth_users:", f"  {USER}: {json.dumps(HASH)}"]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def secure_agent(tmp_path_factory: pytest.TempPathFactory, tls: TlsFiles
                 ) -> Iterator[SecureAgent]:
    workdir = tmp_path_factory.mktemp("secure-agent")
    web = write_web_config(workdir / "web.yml", tls)
    config = workdir / "config.toml"
    config.write_text(agent_config(workdir / "state", interval="1s", only=["loadavg"]))
    agent = SecureAgent(config, tls.client_context(), basic(USER, PASSWORD),
                        args=["--web-config", str(web)]).start()
    yield agent
    agent.stop()


def _address(agent: AgentProcess) -> tuple[str, int]:
    assert agent.url is not None
    parts = urllib.parse.urlsplit(agent.url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def query(prometheus: ServerProcess, promql: str) -> list[dict[str, Any]]:
    result = http_get(f"{prometheus.url}/api/v1/query?"
                      + urllib.parse.urlencode({"query": promql}))
    assert result.status == 200, f"{promql}: HTTP {result.status} {result.text}"
    return list(result.json()["data"]["result"])


def test_prometheus_scrapes_over_tls_with_basic_auth(secure_agent: SecureAgent, tls: TlsFiles,
                                                     tmp_path: Path) -> None:
    assert secure_agent.url is not None and secure_agent.url.startswith("https://")
    host, port = _address(secure_agent)
    tls_config = {"ca_file": str(tls.ca), "cert_file": str(tls.client_cert),
                  "key_file": str(tls.client_key)}
    prometheus = start_prometheus(
        tmp_path, {"agent": f"{host}:{port}", "agent-wrong-password": f"{host}:{port}"},
        job_options={
            "agent": {"scheme": "https", "tls_config": tls_config,
                      "basic_auth": {"username": USER, "password": PASSWORD}},
            "agent-wrong-password": {"scheme": "https", "tls_config": tls_config,
                                     "basic_auth": {"username": USER, "password": "wrong"}}})
    try:
        def up() -> dict[str, str] | None:
            values = {r["metric"]["job"]: r["value"][1] for r in query(prometheus, "up")}
            return values if len(values) == 2 else None

        values = wait_until(up, timeout=30, message="Prometheus to scrape both jobs")
        assert values == {"agent": "1", "agent-wrong-password": "0"}, values
        loadavg = query(prometheus, 'node_load1{job="agent"}')
        assert len(loadavg) == 1, "the agent's metrics reached Prometheus over TLS"
    finally:
        prometheus.stop()
    # What the wrong password got: 401 with a Basic challenge.
    refused = secure_agent.get("/metrics", headers=basic(USER, "wrong"))
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    assert secure_agent.get("/health", headers={}).status == 401
    # The web-config's headers are on every answer.
    scraped = secure_agent.get("/metrics")
    assert scraped.status == 200
    assert scraped.headers["X-Frame-Options"] == "deny"
    assert scraped.headers["X-Content-Type-Options"] == "nosniff"


def test_status_page_is_behind_auth_with_a_strict_csp(secure_agent: SecureAgent) -> None:
    assert secure_agent.get("/", headers={}).status == 401
    page = secure_agent.get("/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    directives = {part.split()[0]: part.split()[1:]
                  for part in policy.split(";") if part.strip()}
    assert directives.get("default-src") == ["'none'"], policy
    sources = {source for values in directives.values() for source in values}
    # Same origin or nothing: no host, scheme (https:, data:), wildcard or inline code.
    assert sources <= {"'self'", "'none'"}, f"external or inline sources in {policy!r}"
    assert directives.get("frame-ancestors") == ["'none'"], policy


def _handshake_without_certificate(host: str, port: int, ca: Path) -> str:
    """What a client without a certificate gets: the TLS error, or (TLS 1.3, where the
    server refuses after the client's side is done) the error on the first read."""
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection((host, port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=host) as conn:
                conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                data = conn.recv(1024)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as err:
            return f"refused: {err}"
    return f"answered: {data!r}" if data else "refused: connection closed, no answer"


def test_handshake_fails_without_client_certificate(secure_agent: SecureAgent,
                                                    tls: TlsFiles) -> None:
    host, port = _address(secure_agent)
    outcome = _handshake_without_certificate(host, port, tls.ca)
    assert outcome.startswith("refused"), outcome
    # A client certificate from another CA is refused too.
    other = make_tls_files(Path(str(tls.ca.parent) + "-other"))
    context = ssl.create_default_context(cafile=str(tls.ca))
    context.load_cert_chain(str(other.client_cert), str(other.client_key))
    result = "answered"
    try:
        http_get(f"{secure_agent.url}/metrics", context=context, headers=secure_agent.headers)
    except OSError as err:  # URLError / SSLError
        result = f"refused: {err}"
    assert result.startswith("refused"), result
    assert secure_agent.get("/metrics").status == 200


def test_stalled_handshake_does_not_block_other_clients(secure_agent: SecureAgent) -> None:
    host, port = _address(secure_agent)
    stalled = [socket.create_connection((host, port), timeout=5) for _ in range(3)]
    try:
        stalled[0].sendall(b"\x16\x03\x01")  # the start of a ClientHello, never finished
        assert secure_agent.get("/metrics").status == 200
    finally:
        for sock in stalled:
            sock.close()


def test_events_api_keeps_its_own_auth_over_tls(secure_agent: SecureAgent) -> None:
    import urllib.request

    body = json.dumps({"type": "ticket_created", "service": "general"}).encode()
    request = urllib.request.Request(f"{secure_agent.url}/api/v1/events", data=body,
                                     method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5, context=secure_agent.context) as answer:
        assert answer.status == 200  # loopback, no token configured: no basic auth asked


def test_promtool_accepts_the_file_the_agent_loads(secure_agent: SecureAgent, tls: TlsFiles,
                                                   tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    good = write_web_config(tmp_path / "web.yml", tls)
    done = subprocess.run([promtool, "check", "web-config", str(good)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    checked = run_cli("check-config", "--quiet", "--config", str(secure_agent.config_path),
                      env={"TOTEM_AGENT_WEB_CONFIG": str(good)})
    assert checked.returncode == 0, checked.stderr
    # A file both refuse: an unknown key.
    bad = tmp_path / "bad.yml"
    bad.write_text(good.read_text() + "tls_config: {}\n")
    done = subprocess.run([promtool, "check", "web-config", str(bad)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode != 0
    checked = run_cli("check-config", "--config", str(secure_agent.config_path),
                      env={"TOTEM_AGENT_WEB_CONFIG": str(bad)})
    assert checked.returncode == 78
    assert f"agent.web_config: {bad}: tls_config: unknown key" in checked.stderr


def _served_cert(host: str, port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=5) as raw, \
            context.wrap_socket(raw) as conn:
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_replaced_certificate_is_served_to_new_connections(tmp_path: Path,
                                                           tls: TlsFiles) -> None:
    own = tmp_path / "certs"
    own.mkdir()
    for name in ("server.crt", "server.key"):
        shutil.copy(tls.ca.parent / name, own / name)
    files = TlsFiles(tls.ca, own / "server.crt", own / "server.key", tls.client_cert,
                     tls.client_key)
    web = write_web_config(tmp_path / "web.yml", files, client_auth="NoClientCert",
                           users=False)
    config = tmp_path / "config.toml"
    config.write_text(agent_config(tmp_path / "state", interval="1s", only=["loadavg"]))
    agent = SecureAgent(config, ssl.create_default_context(cafile=str(tls.ca)), {},
                        args=["--web-config", str(web)]).start()
    try:
        host, port = _address(agent)
        renewed = make_tls_files(tmp_path / "renewed")
        assert _served_cert(host, port) == ssl.PEM_cert_to_DER_cert(files.server_cert.read_text())
        # A bad certificate first (the key of another one): the old one stays in service.
        shutil.copy(renewed.server_cert, files.server_cert)
        assert agent.get("/metrics").status == 200
        shutil.copy(renewed.server_key, files.server_key)
        new_der = ssl.PEM_cert_to_DER_cert(renewed.server_cert.read_text())
        wait_until(lambda: _served_cert(host, port) == new_der, timeout=10,
                   message="the renewed certificate on a new connection")
        renewed_client = ssl.create_default_context(cafile=str(renewed.ca))
        assert http_get(f"{agent.url}/metrics", context=renewed_client).status == 200
        errors = [r for r in agent.log_records() if r.get("level") == "error"]
        assert len(errors) <= 1, errors  # the half-replaced pair, logged once at most
    finally:
        agent.stop()


PLANTED = {"token": "PLANTED-events-token-7c1", "push_password": "PLANTED-push-pw-93b",
           "url_password": "PLANTED-url-pw-4d2"}


def test_planted_secrets_never_show(tmp_path: Path, tls: TlsFiles) -> None:
    web = write_web_config(tmp_path / "web.yml", tls, client_auth="NoClientCert")
    config = tmp_path / "config.toml"
    config.write_text(agent_config(tmp_path / "state", interval="1s", only=["loadavg"],
                                   agent={"web_config": str(web)}) +
                      f'\n[events]\ntoken = "{PLANTED["token"]}"\n'
                      "\n[pushgateway]\n"
                      f'url = "http://u:{PLANTED["url_password"]}@127.0.0.1:9"\n'
                      'interval = "1s"\nusername = "pushuser"\n'
                      f'password = "{PLANTED["push_password"]}"\n')
    config.chmod(0o644)
    agent = SecureAgent(config, ssl.create_default_context(cafile=str(tls.ca)),
                        basic(USER, PASSWORD)).start()
    try:
        wait_until(lambda: "failed" in agent.get("/health").text, timeout=15,
                   message="a failed push in /health")
        # A wrong token posted: its error message must not echo what was sent.
        import urllib.error
        import urllib.request
        request = urllib.request.Request(
            f"{agent.url}/api/v1/events", method="POST", data=b"{}",
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {PLANTED['token']}x"})
        try:
            urllib.request.urlopen(request, timeout=5, context=agent.context)
        except urllib.error.HTTPError as err:
            refused = err.read().decode()
            assert err.code == 401
        outputs = {"/health": agent.get("/health").text, "/metrics": agent.metrics_text(),
                   "events 401": refused}
    finally:
        agent.stop()
    outputs["log"] = "\n".join(agent.log_lines())
    checked = run_cli("check-config", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    outputs["check-config"] = checked.stdout + checked.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[events]\ntoken = 12345\n[pushgateway]\n"
                      f'password = ["{PLANTED["push_password"]}"]\n')
    failed = run_cli("check-config", "--config", str(broken))
    assert failed.returncode == 78
    outputs["check-config error"] = failed.stdout + failed.stderr
    for where, text in outputs.items():
        for name, secret in [*PLANTED.items(), ("basic-auth hash", HASH), ("12345", "12345")]:
            assert secret not in text, f"{name} shows in {where}"
    assert "(set)" in outputs["check-config"]
    # The config file holds the token and others may read it: check-config says so.
    assert f"{config} holds a token or password and other users may read it" in checked.stderr
    os.chmod(config, 0o600)
    assert "other users may read" not in run_cli("check-config", "--quiet", "--config",
                                                 str(config)).stderr
