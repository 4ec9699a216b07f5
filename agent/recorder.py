"""The agent's side of the buffer: append every collection cycle, report the buffer.

Collection and disk are kept apart: the scheduler's lane only signals "a cycle is
complete"; this module's own thread takes the snapshot and appends it, so a slow
fsync on a kiosk's eMMC (or a full disk) never delays a collector or a scrape.
Statistics are read once per append and cached, so /metrics and /health never
query SQLite.

What is appended is what /metrics serves at that moment (system, peripherals,
business, the agent's own series), each sample stamped with the cycle's wall time
and carrying `instance` and `job`, since remote_write has no scraper to add them.

Per cycle the costly part was turning hundreds of samples into the buffer's
series keys. A kiosk reports the same series in the same order cycle after
cycle, so the keys (and what `cycle_samples` would drop or merge) are worked
out once, in a `CycleLayout`, and kept while the snapshot's (name, labels) list
compares equal to the one they were built from: one comparison in C, then the
buffer gets the same keys tuple back and reuses its layout too.
"""

from __future__ import annotations

import itertools
import logging
import math
import operator
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from totem_agent.buffer import Buffer, BufferFormatError, BufferStats
from totem_agent.buffer.model import Labels
from totem_agent.health import DEGRADED, FAILING, OK, Check
from totem_agent.threadnames import name_native_thread

log = logging.getLogger("totem_agent.buffer")

FILE_NAME = "buffer.sqlite"
# The `job` label of buffered series (what a scrape config would name the kiosks).
JOB = "totem"
# Cycles closer together than this fraction of the interval are one cycle: the lane
# goes idle more than once when collectors have different intervals.
MIN_SPACING = 0.5


def buffer_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / FILE_NAME


def open_buffer(state_dir: str | Path, settings: Mapping[str, Any],
                clock: Callable[[], float] = time.time) -> Buffer:
    """Open the agent's buffer; OSError / BufferFormatError / sqlite3.Error on failure."""
    directory = Path(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return Buffer.open(buffer_path(directory),
                       max_size_bytes=int(settings["max_size"]) or None,
                       max_age_seconds=float(settings["max_age"]) or None, clock=clock)


def cycle_samples(families: Iterable[Metric],
                  extra_labels: Mapping[str, str]) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of the snapshot as (name, labels, value), with instance and job.

    `_created` samples are left out: they restate a start time every cycle and
    remote_write receivers store them as ordinary series.
    """
    out: list[tuple[str, dict[str, str], float]] = []
    for family in families:
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = dict(sample.labels)
            for key, value in extra_labels.items():
                labels.setdefault(key, value)
            out.append((sample.name, labels, float(sample.value)))
    return out


# A prometheus_client Sample is a NamedTuple (name, labels, value, ...).
_NAME_LABELS = operator.itemgetter(0, 1)
_NAME = operator.itemgetter(0)
_LABELS = operator.itemgetter(1)
_VALUE = operator.itemgetter(2)
Appended = list[tuple[str, Mapping[str, str], float]]


class CycleLayout:
    """What `cycle_samples` + `Buffer.append` make of a snapshot's (name, labels)
    list, worked out once: the buffer's keys, and which samples give their values.

    `matches()` says whether a new snapshot's samples have exactly that list (and
    the same extra labels): then `values()` is all there is to do for them.
    """

    def __init__(self, raw: Sequence[tuple[str, Mapping[str, str]]],
                 extra_labels: Mapping[str, str]) -> None:
        # Private copies: a source that reused and changed a labels dict in place
        # must not make the next comparison pass.
        self._raw = [(name, dict(labels)) for name, labels in raw]
        # The same list as two (compared per cycle without making a pair per sample).
        self._names_in = [name for name, _ in self._raw]
        self._labels_in = [labels for _, labels in self._raw]
        self._extra = dict(extra_labels)
        last: dict[tuple[str, Labels], int] = {}  # first position, last value wins
        full: dict[tuple[str, Labels], dict[str, str]] = {}
        for i, (name, labels) in enumerate(self._raw):
            if name.endswith("_created"):
                continue
            merged = {**self._extra, **labels}  # the sample's own label wins
            key = (name, tuple(sorted(merged.items())))
            last[key] = i
            full[key] = merged
        self.keys: tuple[tuple[str, Labels], ...] = tuple(last)
        keep = list(last.values())
        self._all = keep == list(range(len(self._raw)))
        self._pick = operator.itemgetter(*keep) if len(keep) > 1 else None
        self._keep = keep
        self.names = [name for name, _ in self.keys]
        # Handed to `on_appended` every cycle, shared: typed read-only, not copied
        # (the keys are built above, so a listener's change could not reach the buffer).
        self.labels: list[Mapping[str, str]] = [full[k] for k in self.keys]
        # For each set of names a listener wants: (name, labels, position) of its samples.
        self._wanted: dict[frozenset[str], list[tuple[str, Mapping[str, str], int]]] = {}

    def matches(self, samples: Sequence[Any], extra_labels: Mapping[str, str]) -> bool:
        """Whether `samples` ((name, labels, value, ...) each) have this layout's names
        and labels, in this order, and the extra labels are the same."""
        return (extra_labels == self._extra and list(map(_NAME, samples)) == self._names_in
                and list(map(_LABELS, samples)) == self._labels_in)

    def values(self, samples: Sequence[Any]) -> list[float]:
        """The kept samples' values, as floats, in `keys` order."""
        values = list(map(float, map(_VALUE, samples)))
        if self._all:
            return values
        if self._pick is not None:
            return list(self._pick(values))
        return [values[i] for i in self._keep]  # one sample kept, or none

    def appended(self, values: Sequence[float], names: frozenset[str] | None) -> Appended:
        """What `on_appended` gets: the samples named in `names` (all when None).

        Which positions those are is worked out once per layout, not per cycle:
        the status page's history wants about a hundred of several hundred samples.
        """
        if names is None:
            return list(zip(self.names, self.labels, values, strict=True))
        wanted = self._wanted.get(names)
        if wanted is None:
            wanted = self._wanted[names] = [
                (name, labels, i)
                for i, (name, labels) in enumerate(zip(self.names, self.labels, strict=True))
                if name in names]
        return [(name, labels, values[i]) for name, labels, i in wanted]


class Recorder:
    """Appends a snapshot after each collection cycle, on its own thread."""

    def __init__(self, buffer: Buffer, snapshot: Callable[[], list[Metric]], *,
                 instance: str, interval: float, clock: Callable[[], float] = time.time) -> None:
        self.buffer = buffer
        self.snapshot = snapshot
        self.extra_labels = {"instance": instance, "job": JOB}
        self.min_spacing = interval * MIN_SPACING
        self.clock = clock
        self.last_append: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.appends = 0
        # Told after every append: the buffer's series in /metrics' live part changed.
        self.on_change: Callable[[], None] = lambda: None
        # Told each stored cycle (timestamp ms, samples): the status page's history.
        # The labels are shared from one cycle to the next: read them, never change them.
        # Only the samples named in `on_appended_names` (all of them when None).
        self.on_appended: Callable[[int, Appended], None] = lambda ts, samples: None
        self.on_appended_names: frozenset[str] | None = None
        self._layout: CycleLayout | None = None
        self._stats: BufferStats | None = None
        self._stats_lock = threading.Lock()
        self._cycle = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refresh_stats()

    # -- running -------------------------------------------------------------------
    def cycle_complete(self) -> None:
        """Called by the scheduler's lane when a cycle is complete: never blocks."""
        self._cycle.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="buffer", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 5.0) -> None:
        self._stop.set()
        self._cycle.set()
        if self._thread is not None:
            self._thread.join(wait)

    def close(self) -> None:
        """After stop() and after every shipper stopped: fold the WAL in, close."""
        try:
            self.buffer.checkpoint()
        except Exception as err:  # closing must go on; the WAL is replayed on next open
            log.warning("could not checkpoint the buffer at shutdown: %s", err)
        self.buffer.close()

    def _loop(self) -> None:
        name_native_thread()
        while not self._stop.is_set():
            self._cycle.wait()
            self._cycle.clear()
            if self._stop.is_set():
                return
            now = self.clock()
            if self.last_append is not None and now - self.last_append < self.min_spacing:
                continue
            self.record(now)

    def record(self, now: float | None = None) -> int:
        """Append the current snapshot; returns samples stored (0: lost, see stats)."""
        now = self.clock() if now is None else now
        layout: CycleLayout | None = None
        values: list[float] = []
        stored = 0
        try:
            layout, values = self._prepare(self.snapshot())
            stored = self.buffer.append_cycle(int(now * 1000), layout.keys, values)
        except Exception as err:  # the agent keeps serving /metrics whatever the disk does
            if self.last_error != str(err):
                log.error("could not append to the buffer: %s", err)
            self._failed(str(err), now)
            layout = None
        self.last_append = now
        self.appends += 1
        self._refresh_stats()
        if stored and layout is not None:
            self.last_error = None
            try:
                self.on_appended(int(now * 1000),
                                 layout.appended(values, self.on_appended_names))
            except Exception:  # the charts must never cost the buffer a cycle
                log.exception("after-append work failed")
        elif layout is not None and layout.keys:
            # The buffer counted the cycle as lost (disk full) and logged it once.
            self._failed("the disk is full", now)
        return stored

    def _prepare(self, families: Iterable[Metric]) -> tuple[CycleLayout, list[float]]:
        """This snapshot's layout (the previous one when its series are the same) and values."""
        samples = list(itertools.chain.from_iterable([f.samples for f in families]))
        extra = self.extra_labels  # read once: a reload (SIGHUP) replaces it
        layout = self._layout
        if layout is None or not layout.matches(samples, extra):
            layout = self._layout = CycleLayout(list(map(_NAME_LABELS, samples)), extra)
        return layout, layout.values(samples)

    def _failed(self, message: str, now: float) -> None:
        if self.last_error is None:
            self.last_error_at = now
        self.last_error = message

    def _refresh_stats(self) -> None:
        try:
            stats = self.buffer.stats()
        except Exception as err:
            log.warning("could not read the buffer's statistics: %s", err)
            return
        with self._stats_lock:
            self._stats = stats
        self.on_change()

    def refresh(self) -> BufferStats | None:
        """Read fresh statistics now (after a shipper settled a batch, in tests)."""
        self._refresh_stats()
        return self.stats

    @property
    def stats(self) -> BufferStats | None:
        with self._stats_lock:
            return self._stats

    # -- reporting -----------------------------------------------------------------
    def metrics(self) -> list[Metric]:
        return buffer_families(self.stats, self.clock())

    def health_checks(self) -> list[Check]:
        stats = self.stats
        details: dict[str, Any] = {}
        if stats is not None:
            details = {"bytes_on_disk": stats.bytes_on_disk,
                       "buffered_samples": stats.buffered_samples,
                       "lost_cycles": dict(stats.lost_cycles),
                       "evicted_samples": dict(stats.evicted_samples)}
        if self.last_error is not None:
            lost = stats.lost_cycles.get("disk_full", 0) if stats is not None else 0
            message = (f"the disk is full: new measurements are not being kept "
                       f"({lost} collection cycles lost so far)"
                       if self.last_error == "the disk is full"
                       else f"cannot write measurements to disk: {self.last_error}")
            return [Check(name="buffer", kind="buffer", status=DEGRADED, message=message,
                          since=self.last_error_at, last_error=self.last_error,
                          last_error_at=self.last_error_at, details=details)]
        return [Check(name="buffer", kind="buffer", status=OK, details=details,
                      last_success_at=self.last_append)]


def unavailable_check(problem: str) -> Check:
    """The `buffer` check when the buffer could not be opened at all."""
    return Check(name="buffer", kind="buffer", status=FAILING,
                 message=f"measurements are not being kept while offline: {problem}",
                 last_error=problem)


def buffer_families(stats: BufferStats | None, now: float) -> list[Metric]:
    """totem_agent_buffer_* from one statistics snapshot."""
    if stats is None:
        return []
    appended = CounterMetricFamily("totem_agent_buffer_appended_samples",
                                   "Samples appended to the buffer (since it was created).",
                                   value=stats.appended_samples)
    on_disk = GaugeMetricFamily("totem_agent_buffer_bytes",
                                "Size of the buffer's files on disk (database and WAL).",
                                value=stats.bytes_on_disk)
    buffered = GaugeMetricFamily("totem_agent_buffer_samples",
                                 "Samples held in the buffer (not yet settled by every "
                                 "destination).", value=stats.buffered_samples)
    lost = CounterMetricFamily("totem_agent_buffer_lost_cycles",
                               "Collection cycles that could not be appended, by reason "
                               "(disk_full).", labels=["reason"])
    lost_samples = CounterMetricFamily("totem_agent_buffer_lost_samples",
                                       "Samples of the cycles that could not be appended, by "
                                       "reason (disk_full).", labels=["reason"])
    for family, counts in ((lost, stats.lost_cycles), (lost_samples, stats.lost_samples)):
        for reason, n in sorted({"disk_full": 0, **counts}.items()):
            family.add_metric([reason], n)
    pending = GaugeMetricFamily("totem_agent_buffer_pending_samples",
                                "Samples buffered that this destination has not settled yet.",
                                labels=["destination"])
    oldest = GaugeMetricFamily("totem_agent_buffer_oldest_pending_age_seconds",
                               "Age of the oldest sample this destination has not settled "
                               "(0 when nothing is pending).", labels=["destination"])
    sent = CounterMetricFamily("totem_agent_buffer_sent_samples",
                               "Samples this destination's far end acknowledged.",
                               labels=["destination"])
    dropped = CounterMetricFamily("totem_agent_buffer_dropped_samples",
                                  "Buffered samples this destination will never get, by "
                                  "reason: size and age (evicted at the buffer's bounds), "
                                  "rejected, too_old, out_of_order, ... (refused by the far "
                                  "end).", labels=["destination", "reason"])
    for name, dest in sorted(stats.destinations.items()):
        pending.add_metric([name], dest.pending_samples)
        age = 0.0
        if dest.oldest_pending_ms is not None and dest.pending_samples:
            age = max(0.0, now - dest.oldest_pending_ms / 1000)
        oldest.add_metric([name], age if math.isfinite(age) else 0.0)
        sent.add_metric([name], dest.sent_samples)
        reasons = dict(dest.dropped_samples)
        for always in ("size", "age", "rejected"):
            reasons.setdefault(always, 0)
        for reason, n in sorted(reasons.items()):
            dropped.add_metric([name, reason], n)
    return [appended, on_disk, buffered, lost, lost_samples, pending, oldest, sent, dropped]


__all__ = ["FILE_NAME", "BufferFormatError", "CycleLayout", "Recorder", "buffer_families",
           "buffer_path", "cycle_samples", "open_buffer", "unavailable_check"]
