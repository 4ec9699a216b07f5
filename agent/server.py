"""The agent's one HTTP server: GET /metrics, GET /health, GET /.

Routes are a table so later rooms (events API, status page) add theirs without
touching the request plumbing. HTTP/1.1 keep-alive, because Prometheus reuses
its connection between scrapes.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from totem_agent import __version__
from totem_agent.exposition import Exposition
from totem_agent.health import FAILING, HealthModel
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


class AgentHTTPServer(ThreadingHTTPServer):
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

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.web is not None and self.web.tls_enabled else "http"
        return f"{scheme}://{host}:{port}"


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"totem-agent/{__version__}"
    server: AgentHTTPServer
    # Idle keep-alive connections are closed after this long, so clients that go
    # away without closing cannot pile up threads.
    timeout = 60
    # TCP_NODELAY: headers and body go out in two writes; with Nagle on, the body
    # waits for the client's delayed ACK, and a keep-alive scrape took 44 ms instead
    # of 0.2 ms (tests/bench/bench_node_exporter.py, docs/benchmarks.md).
    disable_nagle_algorithm = True

    def _dispatch(self, method: str, head_only: bool = False) -> None:
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
            except Exception:
                log.exception("request failed", extra={"path": path, "method": method})
                response = json_response(HTTPStatus.INTERNAL_SERVER_ERROR,
                                         {"error": "internal error, see the agent's log"})
        self._send(response, head_only=head_only)
        handler_label = path if path in self.server.paths else OTHER_HANDLER
        self.server.http_metrics.observe(handler_label, response.status,
                                         time.perf_counter() - started)

    def _send(self, response: Response, head_only: bool = False) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        own = response.headers or {}
        for name, value in own.items():
            self.send_header(name, value)
        if self.server.web is not None:
            # The web-config's headers; a route's own (the status page's CSP) win.
            own_names = {name.lower() for name in own}
            for name, value in self.server.web.headers.items():
                if name.lower() not in own_names:
                    self.send_header(name, value)
        self.end_headers()
        if not head_only:
            self.wfile.write(response.body)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        # Routed as GET (same headers, same Content-Length), sent without the body.
        self._dispatch("GET", head_only=True)

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        # Access logs at debug: a scrape every 15 s is not news.
        log.debug("http %s", format % args, extra={"client": self.client_address[0]})


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
