"""POST /api/v1/events: the HTTP side of the events API, its own metrics and health check.

Order of the checks, cheapest first and without reading a body that will be
refused: who may post (loopback or bearer token), Content-Type, Content-Length
against the limit, then the JSON (events.py), then the durable commit
(business.py). The answer is 200 only after the commit.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import CounterMetricFamily, Metric

from totem_agent.business import BusinessMetrics
from totem_agent.business_store import StoreError
from totem_agent.events import EventError, Limits, parse_events
from totem_agent.health import DEGRADED, OK, Check

if TYPE_CHECKING:
    from totem_agent.server import RequestHandler, Response

log = logging.getLogger("totem_agent.events")

# Reasons of totem_agent_events_rejected_total, listed so each series exists from the start.
REJECT_REASONS = ("unauthorized", "forbidden", "unsupported_media_type", "length_required",
                  "too_large", "invalid_body", "invalid_event", "storage_error",
                  "label_value_folded")
_REASON_BY_STATUS = {400: "invalid_body", 401: "unauthorized", 403: "forbidden",
                     411: "length_required", 413: "too_large", 415: "unsupported_media_type",
                     422: "invalid_event", 503: "storage_error"}


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class EventsAPI:
    """The handler, plus what it counts. `business` None: the store could not be opened."""

    def __init__(self, business: BusinessMetrics | None, settings: Mapping[str, Any],
                 store_problem: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.business = business
        self.token = str(settings.get("token") or "")
        # Off: only loopback clients, whatever the server listens on (docs/security.md).
        self.allow_remote = bool(settings.get("allow_remote", False))
        self.max_body = int(settings["max_body_bytes"])
        self.limits = Limits(max_batch=int(settings["max_batch"]),
                             max_future_skew=float(settings["max_future_skew"]),
                             max_age=float(settings["max_age"]))
        self.store_problem = store_problem
        self.clock = clock
        self._lock = threading.Lock()
        self.rejected: Counter[str] = Counter()
        self.accepted = 0
        self.duplicates = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    # -- the handler -----------------------------------------------------------------
    def handle(self, request: RequestHandler) -> Response:
        from totem_agent.server import json_response

        try:
            payload = self._handle(request)
        except EventError as err:
            self._count_rejection(err)
            response = json_response(err.status, err.as_json())
            headers = {}
            if err.status in (401, 403, 411, 413, 415):
                # Refused before the body was read: the connection cannot carry another
                # request, the unread body would be taken for one.
                headers["Connection"] = "close"
            if err.status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="totem-agent events"'
            response.headers = headers or None
            return response
        return json_response(HTTPStatus.OK, payload)

    def _handle(self, request: RequestHandler) -> dict[str, Any]:
        remote_ok = self.allow_remote and bool(self.token)  # config refuses one without the other
        if not remote_ok and not is_loopback(request.client_address[0]):
            raise EventError(403, "forbidden", None, "only clients on this kiosk (loopback) "
                             "may post events; to accept them from the network, set [events] "
                             "allow_remote = true and a token")
        if self.token:
            # Here, not at the top: hmac imports hashlib and OpenSSL's libcrypto (~3.6 MB
            # of RSS), which an agent whose events take no token never needs.
            import hmac

            auth = request.headers.get("Authorization", "")
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                raise EventError(401, "unauthorized", "Authorization",
                                 "a valid 'Authorization: Bearer <token>' header is required")
        content_type = request.headers.get("Content-Type", "")
        if content_type.split(";", 1)[0].strip().lower() != "application/json":
            raise EventError(415, "unsupported media type", "Content-Type",
                             f"expected application/json, got {content_type or 'nothing'!r}")
        length_text = request.headers.get("Content-Length")
        if length_text is None or not length_text.strip().isdigit():
            raise EventError(411, "length required", "Content-Length",
                             "send the body with a Content-Length header")
        length = int(length_text)
        if length > self.max_body:
            raise EventError(413, "body too large", None,
                             f"{length} bytes, the limit is {self.max_body}")
        body = request.rfile.read(length)
        events, batch = parse_events(body, self.clock(), self.limits)
        if self.business is None:
            raise EventError(503, "events cannot be stored", None,
                             self.store_problem or "the business state is not open")
        try:
            result = self.business.record(events)
        except StoreError as err:
            log.error("events not stored", extra={"error": str(err)})
            with self._lock:
                self.last_error, self.last_error_at = str(err), self.clock()
            raise EventError(503, "events cannot be stored", None, str(err)) from None
        with self._lock:
            self.accepted += result.accepted
            self.duplicates += len(result.duplicates)
            self.rejected["label_value_folded"] += result.folded
        out: dict[str, Any] = {"accepted": result.accepted}
        if batch:
            out["duplicates"] = result.duplicates
        else:
            out["duplicate"] = bool(result.duplicates)
        if result.folded:
            out["folded_label_values"] = result.folded
        return out

    def _count_rejection(self, err: EventError) -> None:
        with self._lock:
            self.rejected[_REASON_BY_STATUS.get(err.status, "invalid_event")] += 1

    # -- what it exposes ---------------------------------------------------------------
    def families(self) -> Iterable[Metric]:
        rejected = CounterMetricFamily(
            "totem_agent_events_rejected",
            "Event requests refused, by reason (each answered 4xx/503, nothing applied), and "
            "label values folded into 'other' by the cardinality cap (label_value_folded).",
            labels=["reason"])
        with self._lock:
            for reason in REJECT_REASONS:
                rejected.add_metric([reason], float(self.rejected[reason]))
            accepted = CounterMetricFamily("totem_agent_events_accepted",
                                           "Events applied and stored since the agent started.",
                                           value=float(self.accepted))
            duplicates = CounterMetricFamily("totem_agent_events_duplicate",
                                             "Events acknowledged but not applied again: their "
                                             "id was already seen.", value=float(self.duplicates))
        out: list[Metric] = [accepted, duplicates, rejected]
        if self.business is not None:
            out.extend(self.business.collect())
        return out

    def health_checks(self) -> Iterable[Check]:
        if self.business is None:
            yield Check("events", "events", DEGRADED,
                        f"Events from the kiosk application cannot be stored: "
                        f"{self.store_problem}", last_error=self.store_problem)
            return
        with self._lock:
            recent = self.last_error_at is not None and self.clock() - self.last_error_at < 300
            if recent:
                yield Check("events", "events", DEGRADED, "The last events could not be stored",
                            last_error=self.last_error, last_error_at=self.last_error_at)
            else:
                yield Check("events", "events", OK, "Events are stored",
                            last_error=self.last_error, last_error_at=self.last_error_at)
