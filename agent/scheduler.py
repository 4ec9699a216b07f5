"""Runs every collector on its interval, each under a deadline, in its own thread.

Each collector owns a one-thread executor: a collector that hangs (a dead NFS
mount, a serial port that never answers) holds only its own thread. At the
deadline the run is reported failed; while it is still stuck, later ticks are
skipped and counted rather than piling up threads. A run that finishes after
its deadline is discarded (it was already reported), so a result is never
older than its deadline.

Results land in `CollectorState`; the exposition layer reads them, so a scrape
never runs a collector.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from totem_agent.collectors.base import Collector, CollectorContext, NoDataError
from totem_agent.config import CollectorSettings
from totem_agent.health import FAILING, NOT_APPLICABLE, OK, PENDING, Check

log = logging.getLogger("totem_agent.scheduler")

# Outcomes of one run. "skipped": the previous run was still stuck at the tick.
RESULT_OK = "ok"
RESULT_NO_DATA = "no_data"
RESULT_ERROR = "error"
RESULT_TIMEOUT = "timeout"
RESULT_SKIPPED = "skipped"
FAILURE_REASONS = (RESULT_ERROR, RESULT_TIMEOUT, RESULT_SKIPPED)


@dataclass
class CollectorState:
    settings: CollectorSettings
    collector: Collector | None
    families: list[Metric] = field(default_factory=list)
    outcome: str = "pending"
    since: float | None = None           # wall time the outcome last changed
    duration: float = 0.0
    last_error: str | None = None
    no_data_reason: str = ""             # why there is nothing to watch, for people
    last_error_at: float | None = None
    last_success_at: float | None = None
    failures: Counter[str] = field(default_factory=Counter)
    runs: int = 0
    # Scheduling, touched only under the scheduler's lock.
    next_run: float = 0.0
    running: Future[list[Metric]] | None = None
    run_started: float = 0.0
    deadline_reported: bool = False

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def success(self) -> bool:
        return self.outcome in (RESULT_OK, RESULT_NO_DATA)


def add_labels(families: Iterable[Metric], labels: Mapping[str, str]) -> list[Metric]:
    """Copy families with constant labels added to every sample (a sample's own label wins)."""
    if not labels:
        return list(families)
    out = []
    for family in families:
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        copy.samples = [s._replace(labels={**labels, **s.labels}) for s in family.samples]
        out.append(copy)
    return out


def describe_error(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text if isinstance(err, (OSError, ValueError)) else f"{type(err).__name__}: {text}"


class Scheduler:
    def __init__(self, settings: Iterable[CollectorSettings], context: CollectorContext,
                 labels: Mapping[str, str] | None = None,
                 on_change: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.labels = dict(labels or {})
        self.on_change = on_change or (lambda: None)
        self.clock = clock
        # Re-entrant: a future that is already done runs its callback at once, in the
        # thread that added it, which holds this lock.
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.states: dict[str, CollectorState] = {}
        self._workers: dict[str, _Worker] = {}
        for item in settings:
            self.states[item.name] = self._build(item, context)

    def _build(self, item: CollectorSettings, context: CollectorContext) -> CollectorState:
        try:
            collector: Collector | None = item.cls(context, item.options)
            state = CollectorState(item, collector)
        except Exception as err:  # a broken collector must not stop the agent
            state = CollectorState(item, None)
            self._record_failure(state, RESULT_ERROR, f"could not start: {describe_error(err)}")
            return state
        self._workers[item.name] = _Worker(f"collector-{item.name}")
        return state

    # -- running -----------------------------------------------------------------
    def start(self) -> None:
        now = time.monotonic()
        for state in self.states.values():
            state.next_run = now
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(wait)
        for worker in self._workers.values():
            worker.stop()

    def run_once(self) -> None:
        """Run every collector once, respecting deadlines, and wait (for `collect --once`)."""
        with self._lock:
            for state in self.states.values():
                self._tick(state, time.monotonic())
        for state in self.states.values():
            future = state.running
            if future is None:
                continue
            remaining = state.run_started + state.settings.timeout - time.monotonic()
            # Outcomes are recorded by the done callback, or as timeouts just below.
            futures.wait([future], timeout=max(remaining, 0))
        with self._lock:
            self._check_deadlines(time.monotonic())

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                now = time.monotonic()
                self._check_deadlines(now)
                for state in self.states.values():
                    if state.collector is not None and now >= state.next_run:
                        self._tick(state, now)
                wait_until = min(
                    [s.next_run for s in self.states.values() if s.collector is not None]
                    + [s.run_started + s.settings.timeout for s in self.states.values()
                       if s.running is not None and not s.deadline_reported],
                    default=now + 60)
            self._wake.wait(max(wait_until - time.monotonic(), 0.001))
            self._wake.clear()

    def _tick(self, state: CollectorState, now: float) -> None:
        interval = state.settings.interval
        state.next_run = max(state.next_run + interval, now + interval * 0.5)
        if state.collector is None:
            return
        if state.running is not None and not state.running.done():
            self._record_failure(state, RESULT_SKIPPED,
                                 f"still running after {now - state.run_started:.1f}s "
                                 "(previous run never returned)")
            return
        state.run_started = now
        state.deadline_reported = False
        collector = state.collector
        future = self._workers[state.name].submit(collector)
        state.running = future
        future.add_done_callback(functools.partial(self._finished, state, started=now))

    def _check_deadlines(self, now: float) -> None:
        for state in self.states.values():
            future = state.running
            if future is None or state.deadline_reported or future.done():
                continue
            if now - state.run_started >= state.settings.timeout:
                state.deadline_reported = True
                state.duration = now - state.run_started
                self._record_failure(state, RESULT_TIMEOUT,
                                     f"did not finish within its {state.settings.timeout:g}s "
                                     "deadline")

    def _finished(self, state: CollectorState, future: Future[list[Metric]], *,
                  started: float) -> None:
        elapsed = time.monotonic() - started
        with self._lock:
            if state.running is future:
                state.running = None
            if state.deadline_reported or future.cancelled():
                log.info("collector finished after its deadline; result discarded",
                         extra={"collector": state.name, "seconds": round(elapsed, 3)})
                return
            state.deadline_reported = True
            state.duration = elapsed
            state.runs += 1
            err = future.exception()
            if err is None:
                state.families = add_labels(future.result(), self.labels)
                self._set_outcome(state, RESULT_OK)
                state.last_success_at = self.clock()
            elif isinstance(err, NoDataError):
                state.families = []
                state.no_data_reason = str(err)
                self._set_outcome(state, RESULT_NO_DATA, str(err))
            else:
                self._record_failure(state, RESULT_ERROR, describe_error(err))
        self.on_change()

    def _record_failure(self, state: CollectorState, reason: str, message: str) -> None:
        state.failures[reason] += 1
        state.last_error = message
        state.last_error_at = self.clock()
        state.families = []
        if reason != RESULT_SKIPPED or state.outcome != RESULT_TIMEOUT:
            self._set_outcome(state, reason, message)
        self.on_change()

    def _set_outcome(self, state: CollectorState, outcome: str, message: str = "") -> None:
        """Log once per change of outcome, not every cycle."""
        if outcome == state.outcome:
            return
        previous, state.outcome, state.since = state.outcome, outcome, self.clock()
        extra = {"collector": state.name, "outcome": outcome, "previous": previous}
        if outcome == RESULT_OK:
            if previous != "pending":
                log.info("collector recovered", extra=extra)
        elif outcome == RESULT_NO_DATA:
            log.debug("collector has nothing to watch here: %s", message, extra=extra)
        else:
            log.warning("collector failed: %s", message, extra=extra)

    # -- reading -----------------------------------------------------------------
    def snapshot(self) -> list[CollectorState]:
        with self._lock:
            return list(self.states.values())

    def health_checks(self) -> list[Check]:
        checks = []
        for state in self.snapshot():
            status = {RESULT_OK: OK, RESULT_NO_DATA: NOT_APPLICABLE, "pending": PENDING}.get(
                state.outcome, FAILING)
            if status == NOT_APPLICABLE:
                message = nothing_to_watch(state)
            else:
                message = {OK: "", PENDING: "not run yet"}.get(status) or (state.last_error or "")
            checks.append(Check(
                name=f"collector:{state.name}", kind="collector", status=status,
                message=message, since=state.since, last_error=state.last_error,
                last_error_at=state.last_error_at, last_success_at=state.last_success_at,
                details={"duration_seconds": round(state.duration, 6)}))
        ran = [c for c in checks if c.status != PENDING]
        if ran and all(c.status == FAILING for c in ran):
            checks.append(Check(name="collectors", kind="agent", status=FAILING, critical=True,
                                message="every collector is failing: nothing is being measured"))
        else:
            checks.append(Check(name="collectors", kind="agent",
                                status=OK if ran else PENDING, critical=True))
        return checks


def nothing_to_watch(state: CollectorState) -> str:
    reason = f" ({state.no_data_reason})" if state.no_data_reason else ""
    return f"nothing to watch on this machine{reason}"


class _Worker:
    """One daemon thread running one collector's runs in turn.

    Not a ThreadPoolExecutor: its threads are joined at interpreter exit, so one
    collector stuck in a read would keep the agent from ever stopping.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Collector, Future[list[Metric]]] | None] = \
            queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, collector: Collector) -> Future[list[Metric]]:
        future: Future[list[Metric]] = Future()
        self._jobs.put((collector, future))
        return future

    def stop(self) -> None:
        self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            collector, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(list(collector.collect()))
            except BaseException as err:  # reported through the future, never lost
                future.set_exception(err)
