"""How the local commands (`status`, `event`, `tray`) reach the running agent, whatever
protects its server: http or https, which certificate to trust, a client certificate,
and a user and password for basic auth.

Secrets stay out of the command line (where `ps` shows them) and out of every
message: the password comes from TOTEM_AGENT_PASSWORD or a file (--password-file),
the events token from the config, TOTEM_AGENT_EVENTS_TOKEN or --token-file.

With the agent's config (`--config`, or the default file), the address and the
scheme come from its `listen` and `web_config`: when that file turns TLS on, the
agent's own certificate (`tls_server_config.cert_file`) is trusted, by exact match,
so `totem-agent status --config /etc/totem-agent/config.toml` works with a
self-signed certificate or one made for the kiosk's network name. http.client, not
urllib: a proxy from the environment (https_proxy) must never see these requests.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from totem_agent.client_env import CLIENT_ENV as CLIENT_ENV  # re-exported
from totem_agent.client_env import PASSWORD_ENV, USER_ENV

# ClientError.kind
UNREACHABLE, TLS, AUTH, ANSWER, USAGE = "unreachable", "tls", "auth", "answer", "usage"


class ClientError(Exception):
    """The agent could not be asked, in words for a store technician. `kind`: one of
    unreachable, tls, auth (it wants credentials or refused them), answer (it answered
    something that is not what a totem-agent says), usage (a flag or file of ours)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class AgentTarget:
    """Where the agent is and how to talk to it. `pinned_cert`: a PEM file whose first
    certificate must be exactly the one the agent presents (its own cert_file)."""

    url: str
    user: str = ""
    password: str = field(default="", repr=False)
    ca_file: str = ""
    pinned_cert: str = ""
    cert_file: str = ""
    key_file: str = ""

    @property
    def tls(self) -> bool:
        return self.url.lower().startswith("https://")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# -- building the target -------------------------------------------------------------

def url_from_listen(listen: str, tls: bool = False) -> str:
    """The URL a client on this machine uses for the server's `listen` address."""
    from totem_agent.options import parse_listen

    host, port = parse_listen(listen)
    if host in ("0.0.0.0", "::", ""):
        host = "::1" if host == "::" else "127.0.0.1"
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def read_secret_file(path: str, what: str) -> str:
    """The first line of a file holding a password or token (a trailing newline is not
    part of it). Raises ClientError naming the file, never its content."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as err:
        reason = getattr(err, "strerror", None) or type(err).__name__
        raise ClientError(USAGE, f"cannot read the {what} file {path}: {reason}") from None
    line = text.splitlines()[0] if text else ""
    if not line:
        raise ClientError(USAGE, f"the {what} file {path} is empty")
    return line


def credentials(user: str | None, password_file: str | None,
                env: Mapping[str, str]) -> tuple[str, str]:
    """(user, password) from --user / TOTEM_AGENT_USER and --password-file /
    TOTEM_AGENT_PASSWORD; both or neither."""
    name = user or env.get(USER_ENV, "")
    password = (read_secret_file(password_file, "password") if password_file
                else env.get(PASSWORD_ENV, ""))
    if name and not password:
        raise ClientError(USAGE, f"a user ({name!r}) but no password: set {PASSWORD_ENV} "
                          "or give --password-file FILE")
    if password and not name:
        raise ClientError(USAGE, f"a password but no user: set {USER_ENV} or give --user")
    return name, password


def server_certificate(web_config: str) -> str | None:
    """The agent's own certificate file when its web-config turns TLS on, else None."""
    if not web_config:
        return None
    from totem_agent.webconfig import WebConfigError, load_web_config

    try:
        tls = load_web_config(web_config).tls
    except WebConfigError as err:
        raise ClientError(USAGE, f"cannot read the agent's web-config: {err}") from None
    return tls.cert_file if tls is not None else None


def build_target(url: str | None, config: Any | None, env: Mapping[str, str], *,
                 user: str | None = None, password_file: str | None = None,
                 ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, basic_auth: bool = True) -> AgentTarget:
    """The target from the command line, the environment and the agent's config.
    An explicit --url is used as given (trusting --ca-file or the system's CAs);
    without it, the config's listen and web-config decide (its own certificate
    trusted unless --ca-file is given)."""
    pinned = ""
    if url:
        if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
            raise ClientError(USAGE, f"--url must start with http:// or https://, got {url!r}")
    elif config is not None:
        own_cert = server_certificate(str(config.agent.get("web_config") or ""))
        url = url_from_listen(str(config.agent["listen"]), tls=own_cert is not None)
        pinned = "" if ca_file else (own_cert or "")
    else:
        from totem_agent import DEFAULT_PORT

        url = f"http://127.0.0.1:{DEFAULT_PORT}"
    if bool(cert_file) != bool(key_file):
        raise ClientError(USAGE, "a client certificate needs both --cert-file and --key-file")
    name, password = credentials(user, password_file, env) if basic_auth else ("", "")
    return AgentTarget(url=url.rstrip("/"), user=name, password=password,
                       ca_file=ca_file or "", pinned_cert=pinned, cert_file=cert_file or "",
                       key_file=key_file or "")


# -- one request -----------------------------------------------------------------------

def _context(target: AgentTarget) -> tuple[ssl.SSLContext, bytes | None]:
    """The client's TLS context, and the DER of the pinned certificate (if any)."""
    pinned: bytes | None = None
    try:
        if target.pinned_cert:
            pem = Path(target.pinned_cert).read_text(encoding="ascii")
            try:
                pinned = ssl.PEM_cert_to_DER_cert(pem)
            except ValueError:
                raise ClientError(USAGE, f"the agent's certificate {target.pinned_cert} is "
                                  "not a PEM certificate") from None
            # Trust is the exact certificate (compared after the handshake), not a CA
            # nor a host name: the file is the agent's own.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cafile=target.ca_file or None)
        if target.cert_file:
            context.load_cert_chain(target.cert_file, target.key_file)
    except (OSError, ssl.SSLError) as err:
        files = " / ".join(f for f in (target.pinned_cert, target.ca_file, target.cert_file,
                                       target.key_file) if f)
        reason = getattr(err, "strerror", None) or getattr(err, "reason", None) or err
        raise ClientError(USAGE, f"cannot load the certificate files ({files}): "
                          f"{reason}") from None
    return context, pinned


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """https where the server must present exactly one known certificate."""

    def __init__(self, host: str, port: int | None, *, pinned: bytes,
                 **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self.pinned = pinned

    def connect(self) -> None:
        super().connect()
        assert isinstance(self.sock, ssl.SSLSocket)
        if self.sock.getpeercert(binary_form=True) != self.pinned:
            self.sock.close()
            raise ClientError(TLS, "the agent presents a certificate other than its own "
                              "cert_file: is another program on that port? (or give --ca-file)")


def _tls_problem(err: ssl.SSLError, target: AgentTarget) -> ClientError:
    text = f"{err.reason or ''} {err}".upper()
    if isinstance(err, ssl.SSLCertVerificationError):
        return ClientError(TLS, f"the agent's certificate is not trusted "
                           f"({err.verify_message}): give --ca-file with the CA that signed "
                           "it, or --config with the agent's config to trust its own "
                           "certificate")
    if "WRONG_VERSION_NUMBER" in text or "RECORD_LAYER_FAILURE" in text:
        return ClientError(TLS, f"the agent at {target.url} does not speak TLS: use "
                           "http:// (its web-config has no tls_server_config)")
    if "CERTIFICATE_REQUIRED" in text or ("HANDSHAKE_FAILURE" in text and not target.cert_file):
        return ClientError(TLS, "the agent requires a client certificate: give --cert-file "
                           "and --key-file (one signed by its client_ca_file)")
    if "UNKNOWN_CA" in text or "BAD_CERTIFICATE" in text or "CERTIFICATE_UNKNOWN" in text:
        return ClientError(TLS, "the agent refused the client certificate (--cert-file): it "
                           "is not signed by the agent's client_ca_file")
    return ClientError(TLS, f"TLS with the agent at {target.url} failed: {err.reason or err}")


def _auth_problem(answer: Answer, target: AgentTarget, sent: Mapping[str, str]) -> ClientError:
    scheme = answer.headers.get("WWW-Authenticate", "").split(" ", 1)[0].lower()
    if scheme == "bearer":
        if "Authorization" in sent:
            return ClientError(AUTH, "the agent refused the events token: it differs from "
                               "[events] token of the agent's config")
        return ClientError(AUTH, "the agent asks for the events token: give --config with "
                           "the agent's config, or set TOTEM_AGENT_EVENTS_TOKEN, or "
                           "--token-file FILE")
    if target.user:
        return ClientError(AUTH, f"the agent refused the user {target.user!r} and its "
                           f"password: check {USER_ENV} and {PASSWORD_ENV} (or the password "
                           "file) against basic_auth_users of the agent's web-config")
    return ClientError(AUTH, f"the agent asks for a user and password: set {USER_ENV} and "
                       f"{PASSWORD_ENV} (or --user and --password-file FILE) to one of "
                       "basic_auth_users of its web-config (docs/security.md)")


def request(target: AgentTarget, method: str, path: str, timeout: float,
            body: bytes | None = None, headers: Mapping[str, str] | None = None,
            basic_auth: bool = True) -> Answer:
    """One request to the agent; any HTTP status but 401 is an Answer. Raises
    ClientError when the agent cannot be asked, or asks for credentials (401)."""
    parts = urllib.parse.urlsplit(target.url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as err:  # a port that is not a number
        raise ClientError(USAGE, f"not an agent address: {target.url!r} ({err})") from None
    if not host:
        raise ClientError(USAGE, f"not an agent address: {target.url!r}")
    sent = dict(headers or {})
    if basic_auth and target.user and "Authorization" not in sent:
        login = base64.b64encode(f"{target.user}:{target.password}".encode()).decode()
        sent["Authorization"] = f"Basic {login}"
    conn: http.client.HTTPConnection
    if target.tls:
        context, pinned = _context(target)
        if pinned is not None:
            conn = _PinnedHTTPSConnection(host, port, pinned=pinned, timeout=timeout,
                                          context=context)
        else:
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, parts.path.rstrip("/") + path, body=body, headers=sent)
        response = conn.getresponse()
        answer = Answer(response.status, dict(response.headers), response.read())
    except ssl.SSLError as err:
        raise _tls_problem(err, target) from None
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as err:
        hint = "" if target.tls else " (if its web-config turns TLS on, use https://)"
        raise ClientError(UNREACHABLE, f"the agent at {target.url} closed the connection "
                          f"without answering{hint}: {err}") from None
    except (OSError, http.client.HTTPException) as err:
        reason = getattr(err, "strerror", None) or err
        raise ClientError(UNREACHABLE, f"{reason}") from None
    finally:
        conn.close()
    if answer.status == 401:
        raise _auth_problem(answer, target, headers or {})
    return answer

