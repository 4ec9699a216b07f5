"""The kiosk's business metrics: validated events in, durable counters and histograms out.

Names, types, labels and buckets are DESIGN.md's "Names users see" (the
operations team's dashboards use them). `record()` applies a request's events
as one unit: it computes the new state of every touched series, commits it to
business.sqlite, and only then makes it visible, so what /metrics shows is
always what is on disk, and the events API answers 2xx only after the commit.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from totem_agent.business_store import BusinessStore, LabelKey, SeriesState
from totem_agent.events import Event

OTHER = "other"
WAIT_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0)
AMOUNT_BUCKETS = (10.0, 50.0, 100.0, 500.0, 1000.0)


@dataclass(frozen=True)
class Family:
    kind: str                 # counter, gauge, histogram
    help: str
    buckets: tuple[float, ...] = ()


FAMILIES: dict[str, Family] = {
    "totem_ticket_created": Family("counter", "Tickets issued, by service."),
    "totem_ticket_completed": Family("counter", "Tickets served to the end, by service."),
    "totem_ticket_wait_time_seconds": Family(
        "histogram", "Time from ticket to service, of completed tickets.", WAIT_BUCKETS),
    "totem_queue_length": Family("gauge", "People waiting, as last reported by the kiosk "
                                 "application (per service when it says which)."),
    "totem_payment_processed": Family("counter", "Payments processed, by status and method."),
    "totem_payment_amount": Family("histogram", "Amount of each payment that carried one "
                                   "(every status), in the store's currency.", AMOUNT_BUCKETS),
    "totem_service_usage": Family("counter", "Uses of a kiosk service, by outcome."),
    "totem_errors": Family("counter", "Errors the kiosk application reported, by type."),
    "totem_payment_device_last_successful_transaction_timestamp_seconds": Family(
        "gauge", "When the PIN pad last took an approved payment (payment events naming "
        "a device)."),
    "totem_payment_device_errors": Family("counter", "Payment errors by PIN pad and error "
                                          "code (payment events with error_code)."),
}
# Payment statuses that mean the PIN pad did its job.
SUCCESSFUL_PAYMENT = frozenset({"approved", "ok", "success", "succeeded"})


def effects(event: Event, labels: Mapping[str, str], now: float | None = None
            ) -> list[tuple[str, LabelKey, float]]:
    """(family, label key, value) updates one event makes: +value on a counter, an
    observation on a histogram, the value of a gauge. `labels`: after folding; `now`:
    the time of an event that carries no timestamp."""
    def key(*names: str) -> LabelKey:
        return tuple(sorted((n, labels[n]) for n in names if n in labels))

    v = event.values
    match event.type:
        case "ticket_created":
            return [("totem_ticket_created", key("service"), 1.0)]
        case "ticket_completed":
            return [("totem_ticket_completed", key("service"), 1.0),
                    ("totem_ticket_wait_time_seconds", key("service"), v["wait_seconds"])]
        case "queue_length":
            return [("totem_queue_length", key("service"), v["length"])]
        case "payment":
            out = [("totem_payment_processed", key("status", "method"), 1.0)]
            if "amount" in v:
                out.append(("totem_payment_amount", key("method"), v["amount"]))
            if "device" in labels:
                when = event.timestamp if event.timestamp is not None else now
                if labels.get("status") in SUCCESSFUL_PAYMENT and when is not None:
                    out.append(("totem_payment_device_last_successful_transaction_"
                                "timestamp_seconds", key("device"), when))
                if "code" in labels:
                    out.append(("totem_payment_device_errors", key("device", "code"), 1.0))
            return out
        case "service_usage":
            return [("totem_service_usage", key("service", "status"), 1.0)]
        case "error":
            return [("totem_errors", key("type"), 1.0)]
    raise ValueError(f"no metrics for event type {event.type!r}")


def _apply(state: SeriesState, family: Family, value: float, when: float) -> None:
    if family.kind == "counter":
        state.value += value
    elif family.kind == "gauge":
        # An event that happened before the value we hold is news from the past.
        if state.updated is None or when >= state.updated:
            state.value = value
            state.updated = when
    else:
        if not state.buckets:
            state.buckets = [0.0] * (len(family.buckets) + 1)
        index = next((i for i, le in enumerate(family.buckets) if value <= le),
                     len(family.buckets))
        state.buckets[index] += 1
        state.sum += value
        state.count += 1


@dataclass(frozen=True)
class RecordResult:
    accepted: int
    duplicates: list[int]          # indexes of events whose id was already seen
    folded: int                    # label values folded into "other"


class BusinessMetrics:
    """Current business state, restored from and committed to a BusinessStore."""

    def __init__(self, store: BusinessStore, max_label_values: int = 50,
                 id_window: float = 86400.0, max_ids: int = 10_000,
                 clock: Callable[[], float] = time.time,
                 on_change: Callable[[], None] | None = None) -> None:
        self.store = store
        self.max_label_values = max_label_values
        self.id_window = id_window
        self.max_ids = max_ids
        self.clock = clock
        self.on_change = on_change
        self._lock = threading.Lock()
        restored = store.load(clock() - id_window, max_ids)
        self._series = restored.series
        self._label_values = restored.label_values
        self._seen: OrderedDict[str, float] = OrderedDict(restored.seen_ids)
        self.folded_total = 0

    # -- writing -------------------------------------------------------------------
    def _fold(self, labels: Mapping[str, str], admitted: dict[str, set[str]]
              ) -> tuple[dict[str, str], int]:
        out: dict[str, str] = {}
        folded = 0
        for name, value in labels.items():
            known = self._label_values.get(name, set())
            pending = admitted.setdefault(name, set())
            if value == OTHER or value in known or value in pending:
                out[name] = value
            elif len(known) + len(pending) < self.max_label_values:
                pending.add(value)
                out[name] = value
            else:
                out[name] = OTHER
                folded += 1
        return out, folded

    def record(self, events: Iterable[Event]) -> RecordResult:
        """Apply the events as one durable unit; raises StoreError with nothing applied."""
        with self._lock:
            now = self.clock()
            changed: dict[tuple[str, LabelKey], SeriesState] = {}
            admitted: dict[str, set[str]] = {}
            new_ids: list[tuple[str, float]] = []
            duplicates: list[int] = []
            accepted = folded = 0
            for event in events:
                seen_at = None if event.id is None else self._seen.get(event.id)
                if seen_at is not None and seen_at >= now - self.id_window:
                    duplicates.append(event.index)
                    continue
                labels, n = self._fold(event.labels, admitted)
                folded += n
                for name, key, value in effects(event, labels, now):
                    family = FAMILIES[name]
                    state = changed.get((name, key))
                    if state is None:
                        current = self._series.get((name, key))
                        state = current.copy() if current else SeriesState(family.kind)
                        changed[(name, key)] = state
                    # An event without a timestamp happened now.
                    when = event.timestamp if event.timestamp is not None else now
                    _apply(state, family, value, when)
                if event.id is not None:
                    new_ids.append((event.id, now))
                accepted += 1
            expired = self._expired(now, len(new_ids))
            if changed or new_ids:
                self.store.commit(changed, [(label, value) for label, values in admitted.items()
                                            for value in values], new_ids, expired)
            # Committed: now, and only now, visible.
            self._series.update(changed)
            for label, values in admitted.items():
                self._label_values.setdefault(label, set()).update(values)
            for event_id in expired:
                self._seen.pop(event_id, None)
            self._seen.update(new_ids)
            self.folded_total += folded
        if changed and self.on_change is not None:
            self.on_change()
        return RecordResult(accepted, duplicates, folded)

    def _expired(self, now: float, incoming: int) -> list[str]:
        """Seen ids to forget: older than the window, or the oldest beyond max_ids."""
        out: list[str] = []
        excess = len(self._seen) + incoming - self.max_ids
        for event_id, seen_at in self._seen.items():
            if seen_at < now - self.id_window or len(out) < excess:
                out.append(event_id)
            else:
                break
        return out

    # -- reading -------------------------------------------------------------------
    def value(self, family: str, **labels: str) -> SeriesState | None:
        with self._lock:
            state = self._series.get((family, tuple(sorted(labels.items()))))
            return state.copy() if state else None

    def collect(self) -> list[Metric]:
        with self._lock:
            series = sorted(((k, s.copy()) for k, s in self._series.items()),
                            key=lambda item: item[0])
        out: dict[str, Metric] = {}
        for (name, key), state in series:
            family = FAMILIES.get(name)
            if family is None:  # written by a newer agent: not ours to show
                continue
            metric = out.get(name)
            if metric is None:
                metric = out[name] = Metric(name, family.help, family.kind)
            labels = dict(key)
            if family.kind == "counter":
                metric.add_sample(name + "_total", labels, state.value)
            elif family.kind == "gauge":
                metric.add_sample(name, labels, state.value)
            else:
                cumulative = 0.0
                bounds = [*family.buckets, float("inf")]
                for le, count in zip(bounds, state.buckets, strict=False):
                    cumulative += count
                    metric.add_sample(name + "_bucket", {**labels, "le": floatToGoString(le)},
                                      cumulative)
                metric.add_sample(name + "_count", labels, state.count)
                metric.add_sample(name + "_sum", labels, state.sum)
        return list(out.values())
