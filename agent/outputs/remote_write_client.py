"""One remote_write destination's settings and its HTTP client (no retry logic here).

The client keeps one keep-alive connection (a drain after an outage sends
thousands of requests; a TLS handshake each would cost more than the encoding)
and turns every outcome into an `Answer`: an HTTP status with the far end's
message, or no status and a plain-language error. It never raises for the
network, so the shipper has one thing to decide on.

Credentials and certificates are read when a connection is opened (the
password or token file on every request), so renewed files are picked up
without a restart.
"""

from __future__ import annotations

import base64
import http.client
import logging
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from totem_agent import __version__
from totem_agent.options import client_ssl_context

log = logging.getLogger("totem_agent.remote_write")

PROTOCOL_VERSION = "0.1.0"
USER_AGENT = f"totem-agent/{__version__}"
MAX_MESSAGE = 64 * 1024  # of the far end's answer body kept (messages are short)


@dataclass(frozen=True)
class Destination:
    """The settings of one `[[remote_write]]` table (see docs/config.md)."""

    name: str
    url: str
    timeout: float = 30.0
    username: str = ""
    password: str = ""
    password_file: str = ""
    bearer_token: str = ""
    bearer_token_file: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    max_samples_per_send: int = 50_000
    parallel_requests: int = 4
    max_prepared_size: int = 8 * 1024 * 1024
    min_backoff: float = 0.25
    max_backoff: float = 5.0
    backlog_warning: float = 900.0
    clock_skew_warning: float = 300.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Destination:
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in settings.items() if key in known})

    @property
    def host(self) -> str:
        """host[:port] of the URL, without any user:password@ (it goes into /health)."""
        parts = urllib.parse.urlsplit(self.url)
        host = parts.hostname or ""
        try:
            port = parts.port
        except ValueError:
            port = None
        return f"{host}:{port}" if port else host


@dataclass(frozen=True)
class Answer:
    """What one POST came to. `status` None: no HTTP answer (see `error`)."""

    status: int | None
    message: str = ""
    error: str = ""
    retry_after: str | None = None
    date: str | None = None
    location: str | None = None  # of a redirect (remote_write does not follow them)
    sent_at: float = 0.0
    received_at: float = 0.0
    duration: float = 0.0  # monotonic seconds, for the histogram

    @property
    def code(self) -> str:
        """The `code` label of totem_agent_remote_write_requests_total."""
        if self.status is not None:
            return str(self.status)
        return "timeout" if "timed out" in self.error else "error"

    def describe(self) -> str:
        if self.status is None:
            return self.error
        text = " ".join(self.message.split())[:300]
        described = f"HTTP {self.status}" + (f": {text}" if text else "")
        hint = _HINTS.get(self.status)
        if self.location and 300 <= self.status < 400:
            hint = f"the receiver redirects to {self.location}: set url to that address"
        return f"{described} ({hint})" if hint else described


_HINTS = {
    401: "the receiver does not accept the credentials: check username and password "
         "(or bearer_token)",
    403: "the receiver refuses this kiosk: check its credentials and permissions",
    404: "nothing receives remote_write at this URL: check url (Prometheus needs "
         "--web.enable-remote-write-receiver)",
    407: "a proxy wants credentials",
}


def _read_secret(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").strip()


class Client:
    """POSTs remote_write bodies to one destination. One thread uses it; `abort()`
    may be called from another to cut a request short (at shutdown)."""

    def __init__(self, destination: Destination, clock: Callable[[], float] = time.time) -> None:
        self.destination = destination
        self.clock = clock
        parts = urllib.parse.urlsplit(destination.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{destination.url!r} is not an http:// or https:// URL")
        self.https = parts.scheme == "https"
        self.hostname = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._aborted = False

    # -- requests --------------------------------------------------------------
    def headers(self) -> dict[str, str]:
        """The request's headers (the spec's four, auth, then the configured extras)."""
        dest = self.destination
        headers = {
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": PROTOCOL_VERSION,
            "User-Agent": USER_AGENT,
        }
        token = dest.bearer_token or (_read_secret(dest.bearer_token_file)
                                      if dest.bearer_token_file else "")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif dest.username:
            password = dest.password or (_read_secret(dest.password_file)
                                         if dest.password_file else "")
            pair = base64.b64encode(f"{dest.username}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {pair}"
        headers.update(dest.headers)
        return headers

    def post(self, body: bytes) -> Answer:
        """One POST of a compressed WriteRequest; never raises for network trouble."""
        sent_at = self.clock()
        started = time.monotonic()
        try:
            headers = self.headers()
        except OSError as err:
            return Answer(None, error=f"cannot read a credentials file: {err}",
                          sent_at=sent_at, received_at=sent_at)
        try:
            try:
                status, message, reply = self._exchange(body, headers)
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                if self._aborted:
                    raise
                # A kept-alive connection the far end had closed: once more on a new one.
                self._close()
                status, message, reply = self._exchange(body, headers)
        except (OSError, http.client.HTTPException) as err:
            self._close()
            return Answer(None, error=self.explain(err), sent_at=sent_at,
                          received_at=self.clock(), duration=time.monotonic() - started)
        return Answer(status, message, retry_after=reply.getheader("Retry-After"),
                      date=reply.getheader("Date"), location=reply.getheader("Location"),
                      sent_at=sent_at, received_at=self.clock(),
                      duration=time.monotonic() - started)

    def _exchange(self, body: bytes, headers: Mapping[str, str]
                  ) -> tuple[int, str, http.client.HTTPResponse]:
        if self._aborted:
            raise ConnectionAbortedError("the agent is stopping")
        conn = self._connection()
        conn.request("POST", self.path, body=body, headers=dict(headers))
        reply = conn.getresponse()
        data = reply.read()
        if reply.will_close:
            self._close()
        return reply.status, data[:MAX_MESSAGE].decode("utf-8", "replace"), reply

    def _connection(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._conn is None:
                if self.https:
                    self._conn = http.client.HTTPSConnection(
                        self.hostname, self.port, timeout=self.destination.timeout,
                        context=self.ssl_context())
                else:
                    self._conn = http.client.HTTPConnection(
                        self.hostname, self.port, timeout=self.destination.timeout)
            return self._conn

    def ssl_context(self) -> ssl.SSLContext:
        dest = self.destination
        return client_ssl_context(f"[[remote_write]] {dest.name}", dest.ca_file,
                                  dest.insecure_skip_verify, dest.cert_file, dest.key_file)

    def explain(self, err: BaseException) -> str:
        """A technician's sentence for a request that got no HTTP answer."""
        dest = self.destination
        target = f"{self.hostname}:{self.port}"
        if isinstance(err, ssl.SSLCertVerificationError):
            return (f"the TLS certificate of {target} is not trusted ({err.verify_message}): "
                    f"set ca_file of [[remote_write]] {dest.name} to the CA that signed it")
        if isinstance(err, TimeoutError | socket.timeout):
            return f"{target} did not answer within {dest.timeout:g}s (timed out)"
        if isinstance(err, ConnectionRefusedError):
            return f"{target} refused the connection (is the receiver running?)"
        if isinstance(err, socket.gaierror):
            return f"cannot resolve {self.hostname} ({err.strerror})"
        return f"{target}: {type(err).__name__}: {err}"

    # -- shutdown ---------------------------------------------------------------
    def _close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def abort(self) -> None:
        """Cut an in-flight request short (from another thread), for good: the client
        is being stopped."""
        with self._lock:
            self._aborted = True
            conn = self._conn
        sock = getattr(conn, "sock", None) if conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as err:  # closed meanwhile: nothing left to cut
                log.debug("remote_write %s: abort: %s", self.destination.name, err)

    def close(self) -> None:
        self._close()
