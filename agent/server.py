"""The agent's one HTTP server: GET /metrics, GET /health, GET /.

Routes are a table so later rooms (events API, status page) add theirs without
touching the request plumbing. HTTP/1.1 keep-alive, because Prometheus reuses
its connection between scrapes; requests pipelined on a connection are answered
in order. The protocol (parsing, limits, framing) is agent/httpd.py's, not the
standard library's http.server, which would bring in email, http.client and ssl
(docs/security.md lists what the server accepts).
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from totem_agent import __version__
from totem_agent.exposition import Exposition
from totem_agent.health import FAILING, HealthModel
from totem_agent.httpd import (
    MAX_LINE,
    NO_BODY,
    Body,
    ClientGone,
    Headers,
    ProtocolError,
    body_length,
    http_date,
    keep_alive,
    parse_request_line,
    read_headers,
    reason,
)
from totem_agent.httpmetrics import OTHER_HANDLER, HttpMetrics
from totem_agent.threadnames import name_native_thread
from totem_agent.websecurity import WebSecurity

log = logging.getLogger("totem_agent.server")


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] | None = None


Handler = Callable[["RequestHandler"], Response]


def json_response(status: int, payload: Any) -> Response:
    body = json.dumps(payload, indent=2, ensure_ascii=False).encode() + b"\n"
    return Response(status, body, "application/json; charset=utf-8")


# Open connections served at once, each on its own thread (node_exporter's
# --web.max-requests is 40 requests). A client that trickles its request a byte at a
# time holds its thread for as long as it keeps sending; past this many, new
# connections are closed at once (counted) instead of costing one more thread each.
MAX_CONNECTIONS = 64
# Each read of a connection times out after this long: idle keep-alive connections are
# closed, so clients that go away without closing cannot pile up threads.
IDLE_TIMEOUT = 60.0
# Methods routed; others are answered 501. HEAD is routed as GET.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE"})
SERVER_HEADER = f"Server: totem-agent/{__version__}\r\n"
# Closing a socket with unread input makes the kernel send a reset, which can destroy
# the answer (a 413, a 431) before the client reads it. A connection the server closes
# while the client may still be sending is first shut for writing, then its input read
# and dropped until the client closes too, at most this long and this much (Go's
# net/http and Apache linger the same way).
LINGER_SECONDS = 1.0
LINGER_BYTES = 1 << 20


class AgentHTTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    # Fail loudly when another process already holds the port, rather than sharing it.
    allow_reuse_address = False

    def __init__(self, address: tuple[str, int], routes: dict[tuple[str, str], Handler],
                 http_metrics: HttpMetrics | None = None,
                 web: WebSecurity | None = None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.routes = routes
        self.paths = {path for (_, path) in routes}
        self.http_metrics = http_metrics or HttpMetrics()
        self.web = web  # the web-config file: TLS, basic auth, headers (docs/security.md)
        self.max_connections = MAX_CONNECTIONS
        self.idle_timeout = IDLE_TIMEOUT
        self._open = 0
        self._open_lock = threading.Lock()
        self._full_logged = False
        super().__init__(address, RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            full = self._open >= self.max_connections
            if not full:
                self._open += 1
                self._full_logged = False
        if full:
            self.http_metrics.refused_connections += 1
            if not self._full_logged:  # once per episode, not once per connection
                self._full_logged = True
                log.warning("HTTP server: %d connections already open; closing new ones "
                            "until some end (slow or stuck clients?)", self.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # the thread never started: its slot is free again
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._open_lock:
            self._open -= 1

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        name_native_thread("http")
        super().serve_forever(poll_interval)

    def finish_request(self, request: Any, client_address: Any) -> None:
        name_native_thread("http-conn")
        # Runs in the connection's own thread: a TLS handshake that stalls holds that
        # thread only (HANDSHAKE_TIMEOUT), never the accept loop.
        if self.web is None or not self.web.tls_enabled:
            super().finish_request(request, client_address)
            return
        tls_sock = self.web.handshake(request)
        if tls_sock is None:
            return
        try:
            super().finish_request(tls_sock, client_address)
        finally:
            tls_sock.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver would print to stderr; RequestHandler already deals with the
        # client's own failures (resets, timeouts), so what arrives here is a bug.
        log.exception("HTTP connection failed", extra={"client": str(client_address[0])})

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.web is not None and self.web.tls_enabled else "http"
        return f"{scheme}://{host}:{port}"


class RequestHandler(socketserver.BaseRequestHandler):
    """One connection, its requests answered in turn. Routes get this object:
    `command`, `path` (with its query), `headers`, `rfile` (the body, up to its
    Content-Length) and `client_address` describe the request being answered."""

    server: AgentHTTPServer
    request: socket.socket

    def handle(self) -> None:
        self.command = self.path = self.requestline = ""
        self.headers = Headers()
        self.rfile = NO_BODY
        self.old_client = False  # HTTP/1.0 that asked for keep-alive: it is told so
        self.linger = False  # closed while the client may still send: see LINGER_SECONDS
        sock = self.request
        try:
            sock.settimeout(self.server.idle_timeout)
            # TCP_NODELAY: with Nagle on, a response that leaves in two segments waits for
            # the client's delayed ACK, and a keep-alive scrape took 44 ms instead of
            # 0.2 ms (tests/bench/bench_node_exporter.py, docs/benchmarks.md).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.reader = sock.makefile("rb")
            try:
                while self._serve_one():
                    pass
                if self.linger:
                    self._linger()
            finally:
                self.reader.close()
        except (OSError, ClientGone) as err:  # a reset, a broken pipe, a TLS alert
            log.debug("http connection ended", extra={"client": self.client_address[0],
                                                       "error": str(err)})

    def _serve_one(self) -> bool:
        """Read and answer one request; False when the connection is to be closed."""
        try:
            line = self.reader.readline(MAX_LINE + 1)
            if line == b"\r\n" or line == b"\n":  # RFC 9112 2.2: one may precede a request
                line = self.reader.readline(MAX_LINE + 1)
        except TimeoutError:
            return False  # idle between requests: closed without a word
        if not line:
            return False
        self.command = self.path = ""
        self.requestline = line.rstrip(b"\r\n").decode("latin-1")
        try:
            self.command, self.path, version = parse_request_line(line)
            self.headers = headers = read_headers(self.reader)
            length = body_length(headers)
            expect = headers.get("Expect")
            continue_first = False
            if expect is not None:
                if expect.lower() != "100-continue":
                    raise ProtocolError(HTTPStatus.EXPECTATION_FAILED,
                                        f"cannot meet the expectation {expect!r}")
                continue_first = version >= (1, 1) and length > 0
            if self.command not in METHODS:
                raise ProtocolError(HTTPStatus.NOT_IMPLEMENTED,
                                    f"method {self.command} is not served")
        except ProtocolError as err:
            self._refuse(err.status, err.message)
            return False
        except TimeoutError:
            self._refuse(HTTPStatus.REQUEST_TIMEOUT, "the request did not arrive in time")
            return False
        self.rfile = Body(self.reader, length, self._send_continue if continue_first
                          else None) if length else NO_BODY
        close = not keep_alive(version, headers)
        self.old_client = version < (1, 1)
        if self.command == "HEAD":
            # Routed as GET (same headers, same Content-Length), sent without the body.
            return self._dispatch("GET", close, head_only=True)
        return self._dispatch(self.command, close)

    def _send_continue(self) -> None:
        self.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _dispatch(self, method: str, close: bool, head_only: bool = False) -> bool:
        started = time.perf_counter()
        path = self.path.split("?", 1)[0]
        handler = self.server.routes.get((method, path))
        web = self.server.web
        if web is not None and not web.authorized(method, path,
                                                  self.headers.get("Authorization")):
            response = json_response(HTTPStatus.UNAUTHORIZED,
                                     {"error": "user name and password required"})
            response.headers = {"WWW-Authenticate": 'Basic realm="totem-agent"',
                                "Connection": "close"}
        elif handler is None:
            allowed = [m for (m, p) in self.server.routes if p == path]
            if allowed:
                response = json_response(HTTPStatus.METHOD_NOT_ALLOWED,
                                         {"error": f"{method} is not allowed on {path}"})
                response.headers = {"Allow": ", ".join(allowed)}
            else:
                response = json_response(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})
        else:
            try:
                response = handler(self)
            except ClientGone:
                raise  # nobody to answer
            except Exception:
                log.exception("request failed", extra={"path": path, "method": method})
                response = json_response(HTTPStatus.INTERNAL_SERVER_ERROR,
                                         {"error": "internal error, see the agent's log"})
        # A body the route did not read would be taken for the next request.
        if self.rfile.remaining > 0:
            close = self.linger = True
        close = self._send(response, close, head_only)
        self._observe(path, response.status, started)
        return not close

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request the protocol layer refused, then the connection closes."""
        started = time.perf_counter()
        self.linger = True
        self._send(json_response(status, {"error": message}), True,
                   head_only=self.command == "HEAD")
        self._observe(self.path.split("?", 1)[0], status, started)

    def _linger(self) -> None:
        sock = self.request
        if type(sock) is not socket.socket:
            return  # TLS: a shutdown would end the TLS session first; closed as it is
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_SECONDS
        dropped = 0
        while dropped < LINGER_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                return
            if not data:
                return
            dropped += len(data)

    def _send(self, response: Response, close: bool, head_only: bool) -> bool:
        """Write the response in one piece; True when the connection closes after it."""
        status = int(response.status)
        body = response.body
        head = (f"HTTP/1.1 {status} {reason(status)}\r\n{SERVER_HEADER}"
                f"Date: {http_date()}\r\nContent-Type: {response.content_type}\r\n"
                f"Content-Length: {len(body)}\r\n")
        own = response.headers
        web = self.server.web
        if own or web is not None:
            own = own or {}
            own_names = set()
            for name, value in own.items():
                lower = name.lower()
                if lower == "connection":  # written below, once
                    close = close or value.lower() == "close"
                    continue
                own_names.add(lower)
                head += f"{name}: {value}\r\n"
            if web is not None:
                # The web-config's headers; a route's own (the status page's CSP) win.
                for name, value in web.headers.items():
                    if name.lower() not in own_names:
                        head += f"{name}: {value}\r\n"
        if close:
            head += "Connection: close\r\n"
        elif self.old_client:
            head += "Connection: keep-alive\r\n"  # an HTTP/1.0 client asked for it
        data = (head + "\r\n").encode("latin-1")
        self.request.sendall(data if head_only else data + body)
        if log.isEnabledFor(logging.DEBUG):  # the access log: a scrape every 15 s is not news
            log.debug('http "%s" %d %d', self.requestline, status, len(body),
                      extra={"client": self.client_address[0]})
        return close

    def _observe(self, path: str, status: int, started: float) -> None:
        handler_label = path if path in self.server.paths else OTHER_HANDLER
        self.server.http_metrics.observe(handler_label, status, time.perf_counter() - started)


def metrics_handler(exposition: Exposition) -> Handler:
    def handle(request: RequestHandler) -> Response:
        body, content_type, gzipped = exposition.render(
            request.headers.get("Accept"), request.headers.get("Accept-Encoding"))
        headers = {"Content-Encoding": "gzip"} if gzipped else None
        return Response(HTTPStatus.OK, body, content_type, headers)
    return handle


def health_handler(model: HealthModel) -> Handler:
    def handle(request: RequestHandler) -> Response:
        report = model.report()
        status = HTTPStatus.SERVICE_UNAVAILABLE if report["status"] == FAILING else HTTPStatus.OK
        return json_response(status, report)
    return handle


_INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>totem-agent</title></head>
<body><h1>totem-agent {version}</h1>
<ul><li><a href="/metrics">/metrics</a>: metrics for Prometheus</li>
<li><a href="/health">/health</a>: health, as JSON</li>
<li><a href="/api/v1/openapi.json">/api/v1/openapi.json</a>: the events API
(POST /api/v1/events), as OpenAPI</li></ul></body></html>
"""


def index_handler(request: RequestHandler) -> Response:
    return Response(HTTPStatus.OK, _INDEX.format(version=__version__).encode(),
                    "text/html; charset=utf-8")


def build_routes(exposition: Exposition, model: HealthModel,
                 extra: Mapping[tuple[str, str], Handler] | None = None
                 ) -> dict[tuple[str, str], Handler]:
    """The route table; `extra`: routes of other rooms (the events API, ...)."""
    return {
        ("GET", "/metrics"): metrics_handler(exposition),
        ("GET", "/health"): health_handler(model),
        ("GET", "/"): index_handler,
        **(extra or {}),
    }
