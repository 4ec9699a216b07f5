"""The agent's own HTTP server, measured: requests by handler and code, and their duration.

`handler` is the route's path (`/metrics`, `/api/v1/events`, ...) or `other` for a
path the agent does not serve, so a scanner probing random URLs cannot grow the
series without bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

# prometheus_client's default buckets: from a cached scrape (~1 ms) to a slow commit.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
OTHER_HANDLER = "other"


class HttpMetrics:
    def __init__(self, on_change: Callable[[str], None] | None = None) -> None:
        # Called after each observation with the handler (to invalidate a cache).
        self.on_change = on_change
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = {}
        # handler -> (per-bucket counts, last is +Inf; sum; count)
        self._durations: dict[str, tuple[list[int], float, int]] = {}
        self.refused_connections = 0  # over the server's connection limit (agent/server.py)

    def observe(self, handler: str, code: int, seconds: float) -> None:
        index = next((i for i, le in enumerate(BUCKETS) if seconds <= le), len(BUCKETS))
        with self._lock:
            key = (handler, str(code))
            self._requests[key] = self._requests.get(key, 0) + 1
            buckets, total, count = self._durations.get(handler) or ([0] * (len(BUCKETS) + 1),
                                                                     0.0, 0)
            buckets[index] += 1
            self._durations[handler] = (buckets, total + seconds, count + 1)
        if self.on_change is not None:
            self.on_change(handler)

    def families(self) -> Iterable[Metric]:
        requests = CounterMetricFamily("http_requests", "Requests the agent's HTTP server "
                                       "answered, by handler and status code.",
                                       labels=["handler", "code"])
        durations = HistogramMetricFamily("http_request_duration_seconds",
                                          "Time to answer a request, from dispatch to the "
                                          "last byte written.", labels=["handler"])
        with self._lock:
            for (handler, code), n in sorted(self._requests.items()):
                requests.add_metric([handler, code], float(n))
            for handler, (buckets, total, _count) in sorted(self._durations.items()):
                cumulative, out = 0, []
                for le, n in zip([*BUCKETS, float("inf")], buckets, strict=True):
                    cumulative += n
                    out.append((floatToGoString(le), float(cumulative)))
                durations.add_metric([handler], out, total)
        refused = CounterMetricFamily(
            "totem_agent_http_connections_refused", "Connections the agent's HTTP server "
            "closed at once because it already had its maximum open (slow or stuck clients).",
            value=float(self.refused_connections))
        return [requests, durations, refused]
