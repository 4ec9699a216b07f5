"""Runs every collector on its interval, each under a deadline.

Collectors run one after another on one worker thread (a "lane"). A thread per
collector isolated them too, but all of them woke at the same tick and handed
the GIL to each other at every file read: three times the CPU of running them
in turn (docs/benchmarks.md). A slow collector must not hold up the others, so
when one run has taken longer than LANE_PATIENCE, the lane is left to it and the
collectors queued behind it move to a fresh lane (one more thread, for as long
as the slow run lasts). At its own deadline a run is reported failed (a dead NFS
mount, a serial port that never answers); while it is still stuck, its later
ticks are skipped and counted rather than piling up threads. A run that finishes
after its deadline is discarded (it was already reported), so a result is never
older than its deadline.

Results land in `CollectorState`; the exposition layer reads them, so a scrape
never runs a collector. `on_change` is told once the lane has finished the runs
queued at a tick (a whole cycle), not after each collector: a scrape in the middle
of a cycle serves the previous complete one instead of rendering a half-new one.
Changes made off the lane (a deadline missed, a late result from an abandoned
lane) are told at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from totem_agent.collectors.base import Collector, CollectorContext, NoDataError
from totem_agent.config import CollectorSettings
from totem_agent.health import FAILING, NOT_APPLICABLE, OK, PENDING, Check
from totem_agent.threadnames import name_native_thread

log = logging.getLogger("totem_agent.scheduler")
# The _Worker whose thread this is, if any: see Scheduler._changed.
_on_lane = threading.local()

# Outcomes of one run. "skipped": the previous run was still stuck at the tick.
RESULT_OK = "ok"
RESULT_NO_DATA = "no_data"
RESULT_ERROR = "error"
RESULT_TIMEOUT = "timeout"
RESULT_SKIPPED = "skipped"
FAILURE_REASONS = (RESULT_ERROR, RESULT_TIMEOUT, RESULT_SKIPPED)
# How long one run may hold the lane before the queue moves to a fresh one. A
# collector reading /proc takes well under 10 ms; 0.1 s is slow, not yet broken.
LANE_PATIENCE = 0.1


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
    running: _Run | None = None
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
        # Called on the lane when it has no more runs queued: a cycle is complete.
        self.on_idle: Callable[[], None] = lambda: None
        self.clock = clock
        # Re-entrant: on_change is called under it (a missed deadline) and may call
        # back into the scheduler (snapshot()).
        self._lock = threading.RLock()
        # Notified under the lock whenever a run ends: run_once() and wait_runs() wait on it.
        self._ran = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # time.monotonic() of the loop's last turn, for the service watchdog (sdnotify);
        # with heartbeat_every set, the loop turns at least that often.
        self.last_heartbeat = time.monotonic()
        self.heartbeat_every: float | None = None
        self.states: dict[str, CollectorState] = {}
        self._change_pending = False
        self._lane = _Worker(self._finished, self._lane_idle)
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
        self._lane.stop()

    def run_once(self) -> None:
        """Run every collector once, respecting deadlines, and wait (for `collect --once`)."""
        with self._lock:
            for state in self.states.values():
                self._tick(state, time.monotonic())
        with self._lock:
            while True:
                # Outcomes are recorded by _finished, or as timeouts here.
                self._check_deadlines(time.monotonic())
                if not any(s.running is not None and not s.deadline_reported
                           for s in self.states.values()):
                    return
                self._ran.wait(0.02)

    def wait_runs(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every run in flight (or queued) to end;
        False if some are still running then (after stop(), before closing collectors)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while any(s.running is not None for s in self.states.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._ran.wait(left)
        return True

    def _loop(self) -> None:
        name_native_thread()
        while not self._stop.is_set():
            with self._lock:
                now = self.last_heartbeat = time.monotonic()
                self._check_deadlines(now)
                for state in self.states.values():
                    if state.collector is not None and now >= state.next_run:
                        self._tick(state, now)
                wait_until = min(
                    [s.next_run for s in self.states.values() if s.collector is not None]
                    + [s.run_started + s.settings.timeout for s in self.states.values()
                       if s.running is not None and s.running.running()
                       and not s.deadline_reported]
                    + ([self._lane.current.run_started + LANE_PATIENCE]
                       if self._lane.current is not None else [])
                    + ([now + self.heartbeat_every] if self.heartbeat_every else []),
                    default=now + 60)
            self._wake.wait(max(wait_until - time.monotonic(), 0.001))
            self._wake.clear()

    def _tick(self, state: CollectorState, now: float) -> None:
        interval = state.settings.interval
        state.next_run = max(state.next_run + interval, now + interval * 0.5)
        if state.collector is None:
            return
        if state.running is not None and not state.running.done():
            if state.running.running():
                self._record_failure(state, RESULT_SKIPPED,
                                     f"still running after {now - state.run_started:.1f}s "
                                     "(previous run never returned)")
            # else: still queued behind a slow collector; that run serves this tick too.
            return
        state.deadline_reported = False
        state.running = run = _Run()
        self._lane.put((state, run))

    def _check_deadlines(self, now: float) -> None:
        for state in self.states.values():
            run = state.running
            if run is None or state.deadline_reported or not run.running():
                continue
            if now - state.run_started >= state.settings.timeout:
                state.deadline_reported = True
                state.duration = now - state.run_started
                self._record_failure(state, RESULT_TIMEOUT,
                                     f"did not finish within its {state.settings.timeout:g}s "
                                     "deadline")
        current = self._lane.current
        if current is not None and (current.deadline_reported
                                    or now - current.run_started >= LANE_PATIENCE):
            # Leave the lane to the slow run; the queue behind it moves on.
            slow, self._lane = self._lane, _Worker(self._finished, self._lane_idle)
            for job in slow.abandon():
                self._lane.put(job)

    def _changed(self) -> None:
        """A result changed: tell on_change now, or when the lane's cycle is done."""
        worker = getattr(_on_lane, "worker", None)
        if worker is not None and not worker.abandoned:
            self._change_pending = True
        else:
            self.on_change()

    def _lane_idle(self) -> None:
        if self._change_pending:
            self._change_pending = False
            self.on_change()
        try:
            self.on_idle()
        except Exception:  # the lane must keep running collectors whatever happens here
            log.exception("after-cycle work failed")

    def _finished(self, state: CollectorState, run: _Run, result: list[Metric],
                  err: BaseException | None) -> None:
        """Called on the lane when a run has returned (`result`) or raised (`err`)."""
        elapsed = time.monotonic() - state.run_started
        with self._lock:
            self._ran.notify_all()
            if state.running is run:
                state.running = None
            if state.deadline_reported:
                log.info("collector finished after its deadline; result discarded",
                         extra={"collector": state.name, "seconds": round(elapsed, 3)})
                return
            state.deadline_reported = True
            state.duration = elapsed
            state.runs += 1
            if err is None:
                state.families = add_labels(result, self.labels)
                self._set_outcome(state, RESULT_OK)
                state.last_success_at = self.clock()
            elif isinstance(err, NoDataError):
                state.families = []
                state.no_data_reason = str(err)
                self._set_outcome(state, RESULT_NO_DATA, str(err))
            else:
                self._record_failure(state, RESULT_ERROR, describe_error(err))
        self._changed()

    def _record_failure(self, state: CollectorState, reason: str, message: str) -> None:
        state.failures[reason] += 1
        state.last_error = message
        state.last_error_at = self.clock()
        state.families = []
        if reason != RESULT_SKIPPED or state.outcome != RESULT_TIMEOUT:
            self._set_outcome(state, reason, message)
        self._changed()

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
        # Collectors that watch devices (printers, PIN pads) add one check per device.
        for state in self.snapshot():
            own = getattr(state.collector, "health_checks", None)
            if own is not None and state.outcome != RESULT_NO_DATA:
                checks.extend(own())
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


class _Run:
    """One run of a collector, queued or in flight: what a concurrent.futures.Future
    told the scheduler (running? done?) without its condition variable, taken several
    times per run (docs/benchmarks.md). Set only by the lane; plain attribute writes,
    read under the scheduler's lock."""

    __slots__ = ("_done", "_started")

    def __init__(self) -> None:
        self._started = False
        self._done = False

    def running(self) -> bool:
        return self._started and not self._done

    def done(self) -> bool:
        return self._done


_Job = tuple[CollectorState, _Run]
_OnDone = Callable[[CollectorState, _Run, list[Metric], "BaseException | None"], None]


class _Worker:
    """A daemon thread running collectors' runs in turn.

    Not a ThreadPoolExecutor: its threads are joined at interpreter exit, so one
    collector stuck in a read would keep the agent from ever stopping.
    """

    def __init__(self, on_done: _OnDone, on_idle: Callable[[], None]) -> None:
        self._on_done = on_done
        self._on_idle = on_idle
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.current: CollectorState | None = None
        self.abandoned = False
        self._thread = threading.Thread(target=self._serve, name="collectors", daemon=True)
        self._thread.start()

    def put(self, job: _Job) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        self._jobs.put(None)

    def abandon(self) -> list[_Job]:
        """Give up on this lane (its current run is stuck): return the queued jobs.
        The thread ends by itself if the stuck run ever returns."""
        self.abandoned = True
        jobs: list[_Job] = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                # If the thread got past its abandoned check just now, this ends it.
                self._jobs.put(None)
                return jobs
            if job is not None:
                jobs.append(job)

    def _serve(self) -> None:
        _on_lane.worker = self
        name_native_thread()
        while not self.abandoned and (job := self._jobs.get()) is not None:
            state, run = job
            # Set before the run reads as running: the deadline counts from here.
            state.run_started = time.monotonic()
            run._started = True
            self.current = state
            result: list[Metric] = []
            error: BaseException | None = None
            try:
                result = list(state.collector.collect()) if state.collector else []
            except BaseException as err:  # reported as the run's outcome, never lost
                error = err
            finally:
                self.current = None
            run._done = True
            try:
                self._on_done(state, run, result, error)
            except Exception:  # the lane must keep running collectors whatever happens here
                log.exception("recording a collector's run failed")
            if self._jobs.empty():
                self._on_idle()
