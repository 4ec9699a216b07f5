"""Pushgateway output: PUT the agent's current snapshot every `interval`.

The group is `/metrics/job/<job>/instance/<instance>` plus the configured
grouping labels (constant labels from `[labels]`, e.g. `store`). PUT replaces
the whole group, so a series the agent stopped exporting disappears from the
gateway too. The body is text format 0.0.4 without timestamps (the gateway
refuses them), rendered by prometheus_client's push_to_gateway.

A gateway that is down or slow never stops collecting or serving: the pusher
has its own thread, a timeout per push, and backs off (doubling the wait, up to
`MAX_BACKOFF_FACTOR` intervals) while failures last; /health shows the output
`degraded`, and totem_agent_push_* count what happened.

TLS (an https:// URL): the gateway's certificate is checked against `ca_file`
(else the system store), a client certificate is sent when `cert_file` is set.
The SSL context is built for each push, so renewed certificate files are picked
up without a restart, and a file that went bad is a counted, reported failure.
"""

from __future__ import annotations

import base64
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.exposition import push_to_gateway
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from totem_agent.health import DEGRADED, OK, PENDING, Check
from totem_agent.options import client_ssl_context
from totem_agent.secrets_policy import redact_url
from totem_agent.threadnames import name_native_thread

log = logging.getLogger("totem_agent.pushgateway")

MAX_BACKOFF_FACTOR = 8


class _Snapshot:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


_REFUSAL_ALERTS = ("CERTIFICATE_REQUIRED", "ALERT_BAD_CERTIFICATE", "ALERT_HANDSHAKE_FAILURE",
                   "ALERT_UNKNOWN_CA")


def explain_tls(reason: str | BaseException, client_cert: bool) -> str | BaseException:
    """A technician's reading of a TLS failure, the library's text kept in it.

    A gateway that refuses the client certificate (or its absence) either sends an
    alert or just closes the connection (an EOF in the handshake), depending on
    timing: both get the same hint."""
    if isinstance(reason, ssl.SSLCertVerificationError):
        return (f"the gateway's TLS certificate is not trusted ({reason.verify_message}): set "
                "[pushgateway] ca_file to the CA that signed it")
    text = str(reason)
    refused = any(alert in text for alert in _REFUSAL_ALERTS)
    if refused or isinstance(reason, (ssl.SSLEOFError, ConnectionResetError)):
        hint = ("check that the gateway trusts [pushgateway] cert_file" if client_cert else
                "if it requires a client certificate, set [pushgateway] cert_file and key_file")
        what = "refused" if refused else "closed"
        return f"the gateway {what} the TLS connection ({text}): {hint}"
    return reason


def grouping_key(instance: str, labels: Mapping[str, str], names: Iterable[str]
                 ) -> dict[str, str]:
    return {"instance": instance, **{name: labels[name] for name in names}}


class Pusher:
    def __init__(self, settings: Mapping[str, Any], instance: str, labels: Mapping[str, str],
                 families: Callable[[], list[Metric]],
                 clock: Callable[[], float] = time.time) -> None:
        self.url = str(settings["url"])
        self.job = str(settings["job"])
        self.interval = float(settings["interval"])
        self.timeout = float(settings["timeout"])
        self.username = str(settings.get("username") or "")
        self.password = str(settings.get("password") or "")
        self.ca_file = str(settings.get("ca_file") or "")
        self.cert_file = str(settings.get("cert_file") or "")
        self.key_file = str(settings.get("key_file") or "")
        self.insecure_skip_verify = bool(settings.get("insecure_skip_verify"))
        self.shown_url = redact_url(self.url)  # for logs and /health: no password in it
        if self.insecure_skip_verify:
            log.warning("[pushgateway] insecure_skip_verify is on: the gateway's certificate "
                        "is not checked; anyone on the path can read and alter the pushes",
                        extra={"url": self.shown_url})
        self.grouping = grouping_key(instance, labels, settings["grouping"])
        self.families = families
        self.clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pushes = {"success": 0, "failure": 0}
        self.consecutive_failures = 0
        self.last_success_at: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_duration = 0.0

    def ssl_context(self) -> ssl.SSLContext:
        """The context of an https:// push; raises ssl.SSLError naming the file."""
        return client_ssl_context("[pushgateway]", self.ca_file, self.insecure_skip_verify,
                                  self.cert_file, self.key_file)

    def _handler(self, url: str, method: str, timeout: float | None,
                 headers: list[tuple[str, str]], data: bytes) -> Callable[[], None]:
        def handle() -> None:
            request = urllib.request.Request(url, data=data, method=method)
            for name, value in headers:
                request.add_header(name, value)
            if self.username:
                token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
                request.add_header("Authorization", f"Basic {token}")
            handlers: list[urllib.request.BaseHandler] = []
            if url.lower().startswith("https://"):
                handlers.append(urllib.request.HTTPSHandler(context=self.ssl_context()))
            try:
                with urllib.request.build_opener(*handlers).open(request, timeout=timeout):
                    pass
            except urllib.error.HTTPError:
                raise
            except urllib.error.URLError as err:
                reason = err.reason
                if handlers:
                    reason = explain_tls(reason, bool(self.cert_file))
                raise urllib.error.URLError(reason) from err
            except (ssl.SSLError, ConnectionResetError) as err:
                # What the gateway does after the handshake (TLS 1.3: refusing the client
                # certificate) surfaces at the response, outside URLError.
                if not handlers:
                    raise
                raise urllib.error.URLError(explain_tls(err, bool(self.cert_file))) from err

        return handle

    def push_once(self) -> None:
        """One PUT of the current snapshot; raises (with the gateway's answer) on failure."""
        started = time.perf_counter()
        try:
            push_to_gateway(self.url, self.job, _Snapshot(self.families()),
                            grouping_key=self.grouping, timeout=self.timeout,
                            handler=self._handler)
        except Exception as err:
            with self._lock:
                self.pushes["failure"] += 1
                self.consecutive_failures += 1
                self.last_error, self.last_error_at = f"{type(err).__name__}: {err}", self.clock()
                self.last_duration = time.perf_counter() - started
            raise
        with self._lock:
            self.pushes["success"] += 1
            self.consecutive_failures = 0
            self.last_success_at = self.clock()
            self.last_duration = time.perf_counter() - started

    def next_wait(self) -> float:
        with self._lock:
            factor = min(2 ** self.consecutive_failures, MAX_BACKOFF_FACTOR)
        return self.interval * factor

    def _run(self) -> None:
        name_native_thread()
        while True:
            try:
                self.push_once()
            except Exception as err:
                log.warning("push to the Pushgateway failed", extra={
                    "url": self.shown_url, "error": str(err), "retry_in": self.next_wait()})
            if self._stop.wait(self.next_wait()):
                return

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pushgateway", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(wait)

    # -- what it exposes -----------------------------------------------------------
    def metrics(self) -> list[Metric]:
        with self._lock:
            pushes = CounterMetricFamily("totem_agent_push_requests", "Pushes to the "
                                         "Pushgateway, by result.", labels=["result"])
            for result, n in self.pushes.items():
                pushes.add_metric([result], float(n))
            out: list[Metric] = [pushes]
            out.append(GaugeMetricFamily("totem_agent_push_duration_seconds",
                                         "Wall time of the last push.",
                                         value=self.last_duration))
            out.append(GaugeMetricFamily("totem_agent_push_consecutive_failures",
                                         "Failed pushes since the last success.",
                                         value=float(self.consecutive_failures)))
            if self.last_success_at is not None:
                out.append(GaugeMetricFamily("totem_agent_push_last_success_timestamp_seconds",
                                             "Unix time of the last successful push.",
                                             value=self.last_success_at))
        return out

    def health_checks(self) -> Iterable[Check]:
        with self._lock:
            if self.consecutive_failures:
                status, message = DEGRADED, (f"{self.consecutive_failures} push(es) to "
                                             f"{self.shown_url} failed in a row")
            elif self.last_success_at is None:
                status, message = PENDING, "No push yet"
            else:
                status, message = OK, f"Pushing to {self.shown_url}"
            yield Check("output:pushgateway", "output", status, message,
                        last_error=self.last_error, last_error_at=self.last_error_at,
                        last_success_at=self.last_success_at)
