"""The web-config file (exporter-toolkit's format): loading, errors, basic auth, reloads;
and the events API's exposure rule. The TLS end to end is in
tests/integration/test_web_security.py."""

from __future__ import annotations

import base64
import json
import logging
import shutil
import ssl
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from tests.integration.servers import TlsFiles, make_tls_files
from totem_agent.config import EVENTS_OPTIONS, ConfigError, load_config
from totem_agent.events_api import EventsAPI
from totem_agent.webconfig import WebConfigError, load_web_config
from totem_agent.websecurity import BasicAuth, WebSecurity

HASH = bcrypt.hashpw(b"right password", bcrypt.gensalt(rounds=4)).decode()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    return caught.value.problems


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_full_file_maps_every_key(tmp_path: Path, tls: TlsFiles) -> None:
    path = write(tmp_path / "web.yml", f"""
tls_server_config:
  cert_file: {tls.server_cert}
  key_file: {tls.server_key}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: {tls.ca}
  client_allowed_sans: [scraper.example]
  min_version: TLS12
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
  prefer_server_cipher_suites: false
  curve_preferences: [X25519]
http_server_config:
  http2: true
  headers:
    X-Frame-Options: deny
    X-Content-Type-Options: nosniff
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  prometheus: {HASH}
rate_limit: {{interval: 1s, burst: 5}}
""")
    web = load_web_config(path)
    assert web.tls is not None
    assert web.tls.verify_mode == ssl.CERT_REQUIRED
    assert web.tls.min_version == ssl.TLSVersion.TLSv1_2
    assert web.tls.ciphers == ("ECDHE-ECDSA-AES128-GCM-SHA256",)  # the TLS 1.3 one: no effect
    assert web.tls.allowed_sans == ("scraper.example",)
    assert web.headers == {"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff",
                           "Strict-Transport-Security": "max-age=31536000"}
    assert web.users == {"prometheus": HASH.encode()}
    assert [key.split(" ")[0] for key in web.ignored] == [
        "rate_limit", "tls_server_config.curve_preferences", "http_server_config.http2"]
    assert HASH not in web.summary()


def test_relative_paths_are_relative_to_the_file(tmp_path: Path, tls: TlsFiles) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    shutil.copy(tls.server_cert, folder / "s.crt")
    shutil.copy(tls.server_key, folder / "s.key")
    web = load_web_config(write(folder / "web.yml",
                                "tls_server_config: {cert_file: s.crt, key_file: s.key}\n"))
    assert web.tls is not None and web.tls.cert_file == str(folder / "s.crt")


def test_empty_file_is_plain_http_without_auth(tmp_path: Path) -> None:
    web = load_web_config(write(tmp_path / "web.yml", ""))
    assert web.tls is None and not web.users and not web.headers


@pytest.mark.parametrize(("body", "key", "words"), [
    ("tls_server_config: {cert_file: /nope.crt, key_file: /nope.key}",
     "tls_server_config.cert_file", "/nope.crt: no such file"),
    ("tls_server_config: {client_auth_type: RequireAnyClientCert, cert_file: CERT, "
     "key_file: KEY}", "tls_server_config.client_auth_type", "not supported"),
    ("tls_server_config: {client_auth_type: Sometimes, cert_file: CERT, key_file: KEY}",
     "tls_server_config.client_auth_type", "unknown value 'Sometimes'"),
    ("tls_server_config: {client_auth_type: RequireAndVerifyClientCert, cert_file: CERT, "
     "key_file: KEY}", "tls_server_config.client_ca_file", "needs client_ca_file"),
    ("tls_server_config: {client_ca_file: CA, cert_file: CERT, key_file: KEY}",
     "tls_server_config.client_ca_file", "without a client_auth_type"),
    ("tls_server_config: {cert_file: CERT}", "tls_server_config.key_file", "missing"),
    ("tls_server_config: {cert_file: CERT, key_file: KEY, min_version: TLS9}",
     "tls_server_config.min_version", "unknown version 'TLS9'"),
    ("tls_server_config: {cert_file: CERT, key_file: KEY, cipher_suites: [RC4]}",
     "tls_server_config.cipher_suites", "unknown cipher suite 'RC4'"),
    ("tls_server_config: {cert_file: CERT, key_file: KEY, client_allowed_sans: [a]}",
     "tls_server_config.client_allowed_sans", "RequireAndVerifyClientCert"),
    ("tls_server_config: {cert: '-----BEGIN', key_file: KEY}", "tls_server_config.cert",
     "inline PEM is not supported"),
    ("tls_server_config: {cert_file: CERT, key_file: CERT}", "tls_server_config.cert_file",
     "cannot load the certificate and its key"),
    ("http_server_config: {headers: {Server: evil}}", "http_server_config.headers.Server",
     "cannot be set"),
    ("http_server_config: {headers: {X-Frame-Options: allow}}",
     "http_server_config.headers.X-Frame-Options", "expected one of deny, sameorigin"),
    ("http_server_config: {http3: true}", "http_server_config.http3", "unknown key"),
    ("basic_auth_users: {alice: plaintext-password}", "basic_auth_users.alice",
     "not a bcrypt hash"),
    ("tls_config: {}", "tls_config", "unknown key"),
])
def test_each_problem_names_the_file_and_key(tmp_path: Path, tls: TlsFiles, body: str, key: str,
                                              words: str) -> None:
    body = (body.replace("CERT", str(tls.server_cert)).replace("KEY", str(tls.server_key))
            .replace("CA,", f"{tls.ca},"))
    path = write(tmp_path / "web.yml", body + "\n")
    problems = problems_of(path)
    assert any(p.startswith(f"{path}: {key}: ") and words in p for p in problems), problems
    assert "plaintext-password" not in " ".join(problems)


def test_yaml_errors_give_the_position_without_quoting_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "web.yml", f"basic_auth_users:\n  alice: {HASH}\n   bob: [\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: not valid YAML: line ")
    assert HASH not in problem


def test_basic_auth_checks_and_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)  # websecurity imports it when needed
    auth = BasicAuth({"prometheus": HASH.encode()})
    assert auth.check(basic("prometheus", "right password"))
    assert auth.check(basic("prometheus", "right password"))
    assert len(calls) == 1, "a repeated scrape must not pay bcrypt again"
    assert not auth.check(basic("prometheus", "wrong"))
    assert not auth.check(basic("mallory", "right password"))  # unknown user: dummy hash
    assert not auth.check(None)
    assert not auth.check("Basic !!!not-base64")
    assert not auth.check("Bearer abc")
    assert not auth.check("Basic " + base64.b64encode(b"no-colon").decode())


def test_go_style_2y_hashes_are_accepted() -> None:
    hashed = HASH.replace("$2b$", "$2y$", 1).encode()
    assert BasicAuth({"u": hashed}).check(basic("u", "right password"))


def test_reload_picks_up_new_users_and_keeps_old_on_bad_file(
        tmp_path: Path, tls: TlsFiles, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "web.yml", f"tls_server_config: {{cert_file: {tls.server_cert}, "
                 f"key_file: {tls.server_key}}}\nbasic_auth_users: {{a: {HASH}}}\n")
    web = WebSecurity(path)
    assert web.authorized("GET", "/metrics", basic("a", "right password"))
    write(path, f"tls_server_config: {{cert_file: {tls.server_cert}, "
          f"key_file: {tls.server_key}}}\nbasic_auth_users: {{b: {HASH}}}\n")
    assert web.authorized("GET", "/metrics", basic("b", "right password"))
    assert not web.authorized("GET", "/metrics", basic("a", "right password"))
    with caplog.at_level(logging.ERROR, logger="totem_agent.webconfig"):
        write(path, "tls_server_config: {cert_file: /gone.crt, key_file: /gone.key}\n")
        for _ in range(3):
            assert web.authorized("GET", "/metrics", basic("b", "right password"))
    assert len(caplog.records) == 1, "a bad file is logged once, not per request"
    assert web.tls_enabled


def test_events_route_is_left_to_its_own_auth(tmp_path: Path) -> None:
    web = WebSecurity(write(tmp_path / "web.yml", f"basic_auth_users: {{a: {HASH}}}\n"))
    assert web.authorized("POST", "/api/v1/events", None)
    assert not web.authorized("GET", "/health", None)


# -- the events API's exposure rule -----------------------------------------------------

class _Request:
    """The two things EventsAPI reads before the body: who is asking, and the headers.
    A client on another machine cannot exist on this loopback-only test machine."""

    def __init__(self, client: str, headers: dict[str, str]) -> None:
        self.client_address = (client, 40000)
        self.headers = headers


def _events(**settings: Any) -> EventsAPI:
    values = {key: opt.default for key, opt in EVENTS_OPTIONS.items()}
    values.update(settings)
    return EventsAPI(None, values, store_problem="test: no store")


@pytest.mark.parametrize("settings", [{}, {"token": "t0ken"},
                                      {"allow_remote": True}])  # no token: stays closed
def test_remote_clients_are_refused_unless_opened(settings: dict[str, Any]) -> None:
    response = _events(**settings).handle(_Request("192.0.2.7", {}))  # type: ignore[arg-type]
    assert response.status == 403
    body = json.loads(response.body)
    assert "allow_remote" in json.dumps(body)


def test_opened_events_api_requires_the_token() -> None:
    api = _events(allow_remote=True, token="t0ken")
    refused = api.handle(_Request("192.0.2.7", {}))  # type: ignore[arg-type]
    assert refused.status == 401
    # With the token the request goes on to the body checks (here: no Content-Type).
    passed = api.handle(_Request("192.0.2.7", {"Authorization": "Bearer t0ken"}))  # type: ignore[arg-type]
    assert passed.status == 415


def test_allow_remote_without_token_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "[events]\nallow_remote = true\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert any(p.startswith(f"{path}: events.allow_remote: ") and "token" in p
               for p in caught.value.problems)


def test_web_config_key_and_env(tmp_path: Path, tls: TlsFiles) -> None:
    bad = write(tmp_path / "web.yml", "basic_auth_users: {alice: nope}\n")
    path = write(tmp_path / "c.toml", f"[agent]\nweb_config = {json.dumps(str(bad))}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.problems == [
        f"{path}: agent.web_config: {bad}: basic_auth_users.alice: not a bcrypt hash (the "
        "value is not shown; make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')"]
    good = write(tmp_path / "good.yml", f"basic_auth_users: {{alice: {HASH}}}\n")
    config = load_config(write(tmp_path / "e.toml", ""),
                         env={"TOTEM_AGENT_WEB_CONFIG": str(good)})
    assert config.agent["web_config"] == str(good)
