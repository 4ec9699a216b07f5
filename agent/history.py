"""History for the status page's charts, read from the buffer.

The buffer keeps every collection cycle (the whole /metrics snapshot) with its
timestamp. This module turns the few series a person at the kiosk cares about
into chart points: CPU busy %, memory used %, disk used %, the backlog per
remote_write destination, events per minute and collector failures per minute
(the last two are rates of counters, reset-aware).

Reading the buffer decodes every series of a row (about 3 ms a cycle), so the
running agent does not read it back: the recorder hands the wanted samples of each
cycle it appends (picked by their positions, worked out once per series layout) to
`History.observe`, which sums them into chart values (tens of microseconds). The
buffer is read only for what came before the agent started observing (the first
page load after a restart asks for hours the agent was not running to see), and
when no recorder feeds the history (`History.refresh`). Points are kept in memory,
so rows that a destination has sent and the buffer has deleted stay on the charts.
What a chart gets is downsampled to at most `MAX_POINTS` buckets.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from totem_agent.buffer.model import SeriesSamples

log = logging.getLogger("totem_agent.history")

MAX_POINTS = 240
MAX_HOURS = 12.0
# Read at start: decoding a cycle of ~600 series takes ~3 ms, so 3 h at 15 s ~2 s.
BACKFILL_HOURS = 3.0
# observe() drops points older than keep_hours this often (ms).
PRUNE_EVERY_MS = 60_000
# A counter rate over a longer gap (the agent was stopped) says nothing useful.
MAX_RATE_GAP_MS = 10 * 60 * 1000


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    unit: str
    max: float | None  # fixed top of the y axis (percentages), None: from the data


CHARTS = (
    Chart("cpu", "CPU busy", "%", 100.0),
    Chart("memory", "Memory used", "%", 100.0),
    Chart("disk", "Disk used", "%", 100.0),
    Chart("backlog", "Samples waiting to be sent", "samples", None),
    Chart("events", "Kiosk events per minute", "per minute", None),
    Chart("failures", "Collector failures per minute", "per minute", None),
)

WANTED = frozenset({
    "node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes",
    "node_filesystem_avail_bytes", "node_filesystem_size_bytes",
    "totem_agent_buffer_pending_samples", "totem_agent_events_accepted_total",
    "totem_agent_collector_failures_total",
})


class ScanSource(Protocol):
    def scan(self, since_ms: int | None = None,
             until_ms: int | None = None) -> Iterator[tuple[SeriesSamples, ...]]: ...


@dataclass
class _Cycle:
    """The wanted values of one collection cycle, summed where a chart sums."""

    cpu_idle: float = 0.0
    cpu_total: float = 0.0
    cpu_seen: bool = False
    mem_available: float | None = None
    mem_total: float | None = None
    disks: dict[str, tuple[float, float]] = field(default_factory=dict)  # mount: (avail, size)
    pending: dict[str, float] = field(default_factory=dict)
    events: float | None = None
    failures: float | None = None


def pivot(rows: Iterable[tuple[SeriesSamples, ...]]) -> dict[int, _Cycle]:
    """Cycles by timestamp (ms) from buffer rows, keeping only the wanted series."""
    cycles: dict[int, _Cycle] = {}
    avail: dict[tuple[int, str], float] = {}
    for row in rows:
        for series in row:
            if series.name not in WANTED:
                continue
            labels = dict(series.labels)
            for ts, value in zip(series.timestamps, series.values, strict=True):
                cycle = cycles.get(ts)
                if cycle is None:
                    cycle = cycles[ts] = _Cycle()
                _add(cycle, series.name, labels, value, ts, avail)
    return dict(sorted(cycles.items()))


def _add(cycle: _Cycle, name: str, labels: Mapping[str, str], value: float, ts: int,
         avail: dict[tuple[int, str], float]) -> None:
    # The most frequent first: 4 reasons per collector, 8 modes per CPU.
    if name == "totem_agent_collector_failures_total":
        cycle.failures = (cycle.failures or 0.0) + value
    elif name == "node_cpu_seconds_total":
        cycle.cpu_seen = True
        cycle.cpu_total += value
        if labels.get("mode") == "idle":
            cycle.cpu_idle += value
    elif name == "node_memory_MemAvailable_bytes":
        cycle.mem_available = value
    elif name == "node_memory_MemTotal_bytes":
        cycle.mem_total = value
    elif name in ("node_filesystem_avail_bytes", "node_filesystem_size_bytes"):
        mount = labels.get("mountpoint", "")
        if name == "node_filesystem_avail_bytes":
            avail[(ts, mount)] = value
            size = cycle.disks.get(mount, (0.0, 0.0))[1]
            cycle.disks[mount] = (value, size)
        else:
            cycle.disks[mount] = (avail.get((ts, mount), cycle.disks.get(mount, (0.0, 0.0))[0]),
                                  value)
    elif name == "totem_agent_buffer_pending_samples":
        dest = labels.get("destination", "")
        cycle.pending[dest] = cycle.pending.get(dest, 0.0) + value
    elif name == "totem_agent_events_accepted_total":
        cycle.events = (cycle.events or 0.0) + value


def disk_mount(mounts: Iterable[tuple[str, float]]) -> str | None:
    """The disk to chart: `/` when it is measured, else the largest filesystem."""
    best: tuple[float, str] | None = None
    for mount, size in mounts:
        if mount == "/":
            return mount
        if size > 0 and (best is None or size > best[0]):
            best = (size, mount)
    return None if best is None else best[1]


def _increase(previous: float, current: float) -> float:
    # A counter that went down was reset (the agent restarted): it counted from 0.
    return current - previous if current >= previous else current


@dataclass
class _Previous:
    ts: int | None = None
    cpu: tuple[float, float] | None = None
    events: float | None = None
    failures: float | None = None


Points = dict[str, dict[str, list[tuple[int, float]]]]  # chart id -> series -> points


def derive(cycles: dict[int, _Cycle], previous: _Previous, points: Points) -> None:
    """Append each cycle's chart values to `points`; `previous` carries counter state."""
    for ts, cycle in cycles.items():
        gap = None if previous.ts is None else ts - previous.ts
        rate_ok = gap is not None and 0 < gap <= MAX_RATE_GAP_MS
        if cycle.cpu_seen:
            now_cpu = (cycle.cpu_idle, cycle.cpu_total)
            if rate_ok and previous.cpu is not None:
                total = _increase(previous.cpu[1], now_cpu[1])
                idle = _increase(previous.cpu[0], now_cpu[0])
                if total > 0:
                    busy = min(max(100.0 * (1.0 - idle / total), 0.0), 100.0)
                    _put(points, "cpu", "busy", ts, busy)
            previous.cpu = now_cpu
        if cycle.mem_available is not None and cycle.mem_total:
            _put(points, "memory", "used", ts, 100.0 * (1.0 - cycle.mem_available
                                                        / cycle.mem_total))
        mount = disk_mount((m, size) for m, (_, size) in cycle.disks.items())
        if mount is not None:
            free, size = cycle.disks[mount]
            if size > 0:
                _put(points, "disk", mount, ts, 100.0 * (1.0 - free / size))
        for dest, pending in sorted(cycle.pending.items()):
            _put(points, "backlog", dest, ts, pending)
        for attr, chart in (("events", "events"), ("failures", "failures")):
            value = getattr(cycle, attr)
            if value is None:
                continue
            before = getattr(previous, attr)
            if rate_ok and before is not None and gap:
                _put(points, chart, "total", ts, _increase(before, value) * 60_000.0 / gap)
            setattr(previous, attr, value)
        previous.ts = ts


def _put(points: Points, chart: str, series: str, ts: int, value: float) -> None:
    points.setdefault(chart, {}).setdefault(series, []).append((ts, value))


def downsample(points: list[tuple[int, float]], since_ms: int, until_ms: int,
               buckets: int = MAX_POINTS) -> tuple[list[list[float]], int]:
    """The points in [since_ms, until_ms), at most `buckets` of them, and their spacing.

    Up to `buckets` points are returned as they are; beyond, each time bucket
    gives one point [mean time in ms, mean value]. Empty buckets are left out;
    the spacing (ms, the median gap or the bucket width) lets a chart break its
    line over a gap.
    """
    inside = [(ts, value) for ts, value in points if since_ms <= ts < until_ms]
    if len(inside) <= buckets:
        gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(inside))
        step = gaps[len(gaps) // 2] if gaps else 0
        return [[ts, round(value, 4)] for ts, value in inside], step
    width = max((until_ms - since_ms) / buckets, 1.0)
    sums: dict[int, list[float]] = {}
    for ts, value in inside:
        slot = sums.setdefault(int((ts - since_ms) / width), [0.0, 0.0, 0.0])
        slot[0] += ts
        slot[1] += value
        slot[2] += 1
    return ([[round(t / n), round(v / n, 4)] for _, (t, v, n) in sorted(sums.items())],
            int(width))


class History:
    """Chart points kept in memory, filled from a buffer; safe to share between threads."""

    def __init__(self, buffer: Callable[[], ScanSource | None], *,
                 keep_hours: float = MAX_HOURS, backfill_hours: float = BACKFILL_HOURS,
                 clock: Callable[[], float] = time.time,
                 min_refresh_seconds: float = 1.0) -> None:
        self._buffer = buffer
        self.keep_ms = int(keep_hours * 3_600_000)
        self.backfill_ms = int(min(backfill_hours, keep_hours) * 3_600_000)
        self.clock = clock
        self.min_refresh = min_refresh_seconds
        self._lock = threading.Lock()
        self._points: Points = {}
        self._previous = _Previous()
        self._covered_from: int | None = None
        self._refreshed_at: float | None = None
        self.last_error: str | None = None
        self._observing = False  # fed by observe(): the buffer is read only for older
        self._pruned_at = 0

    def observe(self, timestamp_ms: int, samples: Iterable[tuple[str, Mapping[str, str],
                                                                  float]]) -> None:
        """One cycle just appended to the buffer, as (name, labels, value) samples.

        Samples of other series are ignored; the recorder hands only the `WANTED` ones
        (`Recorder.on_appended_names`), a hundred or so of several hundred.
        """
        cycle = _Cycle()
        avail: dict[tuple[int, str], float] = {}
        for name, labels, value in samples:
            if name in WANTED:
                _add(cycle, name, labels, value, timestamp_ms, avail)
        with self._lock:
            if self._previous.ts is not None and timestamp_ms <= self._previous.ts:
                return
            if self._covered_from is None:
                self._covered_from = timestamp_ms
            self._observing = True
            derive({timestamp_ms: cycle}, self._previous, self._points)
            if timestamp_ms - self._pruned_at >= PRUNE_EVERY_MS:
                self._pruned_at = timestamp_ms
                self._prune(timestamp_ms - self.keep_ms)

    def refresh(self, since_ms: int | None = None) -> None:
        """Read the cycles not seen yet; `since_ms`: a window start the caller needs
        (older than what is kept: read again from there, at most `keep_hours` back)."""
        source = self._buffer()
        if source is None:
            return
        with self._lock:
            now = self.clock()
            now_ms = int(now * 1000)
            start = max(since_ms if since_ms is not None else now_ms - self.backfill_ms,
                        now_ms - self.keep_ms)
            try:
                covered = self._covered_from
                if since_ms is not None and covered is not None and start < covered:
                    self._read_older(source, start)
                if self._observing or (
                        self._covered_from is not None and self._refreshed_at is not None
                        and now - self._refreshed_at < self.min_refresh):
                    return
                self._read_newer(source, start)
            except Exception as err:  # a busy or damaged buffer: keep what we have
                if str(err) != self.last_error:
                    log.warning("status page history: cannot read the buffer: %s", err)
                self.last_error = str(err)
                return
            self.last_error = None
            self._prune(now_ms - self.keep_ms)
            self._refreshed_at = now

    def _read_newer(self, source: ScanSource, start: int) -> None:
        if self._covered_from is None:
            self._covered_from = start
        scan_from = (self._previous.ts + 1 if self._previous.ts is not None
                     else self._covered_from)
        cycles = pivot(source.scan(since_ms=scan_from))
        if self._previous.ts is not None:
            cycles = {ts: c for ts, c in cycles.items() if ts > self._previous.ts}
        derive(cycles, self._previous, self._points)

    def _read_older(self, source: ScanSource, start: int) -> None:
        """Prepend [start, covered_from): points kept in memory stay (their rows may be
        gone from the buffer, shipped and deleted)."""
        assert self._covered_from is not None
        older: Points = {}
        derive(pivot(source.scan(since_ms=start, until_ms=self._covered_from)), _Previous(),
               older)
        for chart, series in older.items():
            for name, pts in series.items():
                kept = self._points.setdefault(chart, {}).get(name, [])
                self._points[chart][name] = pts + kept
        self._covered_from = start

    def _prune(self, oldest_ms: int) -> None:
        for series in self._points.values():
            for name, pts in series.items():
                if pts and pts[0][0] < oldest_ms:
                    series[name] = [p for p in pts if p[0] >= oldest_ms]
        self._covered_from = max(self._covered_from or oldest_ms, oldest_ms)

    def report(self, hours: float) -> dict[str, Any]:
        """The JSON of GET /api/v1/history: every chart, downsampled."""
        hours = min(max(hours, 0.05), self.keep_ms / 3_600_000)
        now_ms = int(self.clock() * 1000)
        since_ms, until_ms = now_ms - int(hours * 3_600_000), now_ms + 1
        if self._buffer() is None:
            return {"available": False, "hours": hours, "from": since_ms, "to": until_ms,
                    "reason": "no history yet: the buffer is off or could not be opened",
                    "charts": []}
        self.refresh(since_ms)
        with self._lock:
            charts = []
            for chart in CHARTS:
                series = []
                for name, pts in sorted(self._points.get(chart.id, {}).items()):
                    sampled, step = downsample(pts, since_ms, until_ms)
                    series.append({"name": name, "step_ms": step, "points": sampled})
                charts.append({"id": chart.id, "title": chart.title, "unit": chart.unit,
                               "max": chart.max,
                               "series": [s for s in series if s["points"]]})
        reason = None
        if not any(c["series"] for c in charts):
            reason = "no history yet: the agent keeps a point per collection cycle"
        if self.last_error:
            reason = f"history could not be read: {self.last_error}"
        return {"available": reason is None or any(c["series"] for c in charts),
                "hours": hours, "from": since_ms, "to": until_ms,
                "reason": reason, "charts": charts}
