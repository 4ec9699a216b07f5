"""remote_write output: the shippers of every `[[remote_write]]` destination.

`open_remote_write(config.remote_write, buffer, ...)` is what the Agent calls:
it registers each destination in the buffer (from its oldest sample), forgets
destinations the config no longer names, and returns a `RemoteWrite` whose
`start`/`stop`, `metrics` (for SelfMetrics extra) and `health_checks` (for
HealthModel.add_source) the Agent wires in. One `Shipper` thread per
destination does the work (`remote_write_shipper`); the wire format is
`remote_write_proto`, the answers' handling `remote_write_policy`, HTTP
`remote_write_client`, the config `remote_write_config`. docs/remote_write.md
is the user's side of all this.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from totem_agent.buffer import Buffer, BufferStats
from totem_agent.health import Check
from totem_agent.outputs.remote_write_client import Destination
from totem_agent.outputs.remote_write_shipper import (
    DURATION_BUCKETS,
    IDLE_WAIT,
    Shipper,
    sample_count,
    split,
)

log = logging.getLogger("totem_agent.remote_write")

__all__ = ["RemoteWrite", "Shipper", "families", "forget_stale_destinations",
           "open_remote_write", "sample_count", "split"]


class RemoteWrite:
    """The shippers of every `[[remote_write]]` destination over one buffer.

    Registers each destination in the buffer (from its oldest sample, so a new
    destination gets the history still buffered). `metrics` and `health_checks`
    are what the Agent hands to SelfMetrics(extra=...) and HealthModel.add_source.
    """

    def __init__(self, buffer: Buffer, destinations: Iterable[Destination], *,
                 stats: Callable[[], BufferStats | None] | None = None,
                 clock: Callable[[], float] = time.time, idle_wait: float = IDLE_WAIT,
                 on_settled: Callable[[], object] | None = None) -> None:
        self.buffer = buffer
        self._stats = stats or buffer.stats
        self.shippers = []
        for destination in destinations:
            buffer.register_destination(destination.name, from_oldest=True)
            self.shippers.append(Shipper(buffer, destination, clock=clock,
                                         idle_wait=idle_wait, on_settled=on_settled))

    def start(self) -> None:
        for shipper in self.shippers:
            shipper.start()

    def notify(self) -> None:
        for shipper in self.shippers:
            shipper.notify()

    def stop(self, wait: float = 5.0) -> None:
        """Stop every shipper (each cuts its request short); call before closing the buffer."""
        for shipper in self.shippers:
            shipper.begin_stop()
        deadline = time.monotonic() + wait
        for shipper in self.shippers:
            shipper.stop(max(0.1, deadline - time.monotonic()))

    def health_checks(self) -> list[Check]:
        try:
            stats = self._stats()
        except Exception as err:  # /health must answer even when the buffer does not
            log.warning("remote_write: cannot read the buffer's statistics: %s", err)
            stats = None
        return [shipper.health_check(stats) for shipper in self.shippers]

    def metrics(self) -> list[Metric]:
        return families(self.shippers)


def families(shippers: Iterable[Shipper]) -> list[Metric]:
    """totem_agent_remote_write_* and totem_agent_clock_skew_seconds of `shippers`."""
    requests = CounterMetricFamily(
        "totem_agent_remote_write_requests", "remote_write requests by destination and "
        "HTTP status code (timeout, error: no answer).", labels=["destination", "code"])
    retries = CounterMetricFamily(
        "totem_agent_remote_write_retries", "Requests resent after a failure "
        "(5xx, 429, no answer).", labels=["destination"])
    bisections = CounterMetricFamily(
        "totem_agent_remote_write_bisections", "Refused payloads split in halves to "
        "deliver what the far end accepts.", labels=["destination"])
    sent_bytes = CounterMetricFamily(
        "totem_agent_remote_write_sent_bytes", "Compressed request bodies of "
        "answered requests (retries included).", labels=["destination"])
    duration = HistogramMetricFamily(
        "totem_agent_remote_write_request_duration_seconds", "Wall time of remote_write "
        "requests, answered or not.", labels=["destination"])
    last_success = GaugeMetricFamily(
        "totem_agent_remote_write_last_success_timestamp_seconds", "Unix time of the "
        "last request the far end accepted (2xx).", labels=["destination"])
    skew = GaugeMetricFamily(
        "totem_agent_clock_skew_seconds", "How far the kiosk's clock is ahead of the "
        "destination's (HTTP Date of its answers; negative: behind).",
        labels=["destination"])
    failures = GaugeMetricFamily(
        "totem_agent_remote_write_consecutive_failures", "Requests failed in a row "
        "(0 after a success).", labels=["destination"])
    for shipper in shippers:
        name = shipper.name
        with shipper._lock:
            for code, n in sorted(shipper.requests.items()):
                requests.add_metric([name, code], n)
            retries.add_metric([name], shipper.retries)
            bisections.add_metric([name], shipper.bisections)
            sent_bytes.add_metric([name], shipper.sent_bytes)
            cumulative, buckets = 0, []
            for le, n in zip((*DURATION_BUCKETS, float("inf")), shipper.bucket_counts,
                             strict=True):
                cumulative += n
                buckets.append(("+Inf" if le == float("inf") else repr(le), cumulative))
            duration.add_metric([name], buckets, shipper.duration_sum)
            if shipper.last_success_at is not None:
                last_success.add_metric([name], shipper.last_success_at)
            failures.add_metric([name], shipper.consecutive_failures)
            if shipper.skew.seconds is not None:
                skew.add_metric([name], shipper.skew.seconds)
    return [requests, retries, bisections, sent_bytes, duration, last_success, skew,
            failures]


def open_remote_write(settings: Sequence[Mapping[str, Any]], buffer: Buffer | None,
                      stats: Callable[[], BufferStats | None] | None = None,
                      on_settled: Callable[[], object] | None = None) -> RemoteWrite | None:
    """The shippers of the config's `[[remote_write]]` tables, or None when there are
    none or they cannot run (no buffer: said in the log; the buffer check says why).

    Destinations the buffer knows but the config no longer names (renamed or removed)
    are forgotten, so their cursors do not pin the buffer's data until eviction."""
    if buffer is None:
        if settings:
            log.error("remote_write disabled: the buffer it sends from is not available")
        return None
    try:
        destinations = [Destination.from_settings(one) for one in settings]
        group = RemoteWrite(buffer, destinations, stats=stats, on_settled=on_settled)
        forget_stale_destinations(buffer, {d.name for d in destinations})
    except Exception as err:  # the buffer failed: the agent still collects and serves
        log.error("remote_write disabled: cannot register its destinations in the buffer: "
                  "%s", err)
        return None
    return group if destinations else None


def forget_stale_destinations(buffer: Buffer, configured: set[str]) -> list[str]:
    """Remove the buffer's destinations not in `configured`; their names."""
    stale = [name for name in buffer.destinations() if name not in configured]
    if not stale:
        return []
    pending = buffer.stats().destinations
    for name in stale:
        left = pending[name].pending_samples if name in pending else 0
        log.warning("remote_write: forgetting destination %r, no longer in the config (%d "
                    "samples it had not sent are no longer kept for it)", name, left)
        buffer.remove_destination(name)
    return stale
