from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from tests.support import wait_until
from totem_agent.collectors.base import Collector, CollectorContext, NoDataError
from totem_agent.config import CollectorSettings
from totem_agent.health import FAILING, NOT_APPLICABLE, OK, roll_up
from totem_agent.scheduler import CollectorState, Scheduler


class Fine(Collector):
    name = "fine"
    description = "always works"

    def collect(self) -> Iterable[Metric]:
        return [GaugeMetricFamily("test_value", "A value.", value=1.0)]


class Broken(Collector):
    name = "broken"
    description = "always raises"
    fail = True

    def collect(self) -> Iterable[Metric]:
        if Broken.fail:
            raise ValueError("cannot read /proc/nothing: bad line 3")
        return [GaugeMetricFamily("test_recovered", "Back.", value=1.0)]


class Absent(Collector):
    name = "absent"
    description = "nothing to watch"

    def collect(self) -> Iterable[Metric]:
        raise NoDataError("no such device")


class Hung(Collector):
    name = "hung"
    description = "never returns until released"
    release = threading.Event()

    def collect(self) -> Iterable[Metric]:
        Hung.release.wait(30)
        return [GaugeMetricFamily("test_late", "Late.", value=1.0)]


class CannotStart(Collector):
    name = "cannot_start"
    description = "raises in its constructor"

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any]) -> None:
        raise RuntimeError("driver missing")

    def collect(self) -> Iterable[Metric]:  # pragma: no cover - never built
        return []


def settings(cls: type[Collector], interval: float = 60.0, timeout: float = 5.0) -> \
        CollectorSettings:
    return CollectorSettings(cls.name, cls, True, interval, timeout, {})


@pytest.fixture
def hung_release() -> Iterator[threading.Event]:
    Hung.release.clear()
    yield Hung.release
    Hung.release.set()  # let the daemon thread finish


def test_run_once_records_each_outcome(hung_release: threading.Event) -> None:
    scheduler = Scheduler([settings(Fine), settings(Broken), settings(Absent),
                           settings(Hung, timeout=0.2), settings(CannotStart)],
                          CollectorContext())
    scheduler.run_once()
    states = {s.name: s for s in scheduler.snapshot()}
    assert states["fine"].outcome == "ok" and states["fine"].success
    assert [f.name for f in states["fine"].families] == ["test_value"]
    assert states["broken"].outcome == "error" and not states["broken"].success
    assert states["broken"].last_error == "cannot read /proc/nothing: bad line 3"
    assert states["absent"].outcome == "no_data" and states["absent"].success
    assert states["hung"].outcome == "timeout" and states["hung"].failures["timeout"] == 1
    assert "0.2s deadline" in (states["hung"].last_error or "")
    assert states["cannot_start"].outcome == "error"
    assert "could not start: RuntimeError: driver missing" in (
        states["cannot_start"].last_error or "")
    scheduler.stop(wait=0)


def test_health_checks_from_outcomes(hung_release: threading.Event) -> None:
    scheduler = Scheduler([settings(Fine), settings(Broken), settings(Absent)], CollectorContext())
    scheduler.run_once()
    checks = {c.name: c for c in scheduler.health_checks()}
    assert checks["collector:fine"].status == OK
    assert checks["collector:broken"].status == FAILING
    assert checks["collector:broken"].message == "cannot read /proc/nothing: bad line 3"
    assert checks["collector:absent"].status == NOT_APPLICABLE
    assert checks["collectors"].status == OK
    assert roll_up(checks.values()) == "degraded"


def test_everything_failing_is_critical() -> None:
    scheduler = Scheduler([settings(Broken), settings(CannotStart)], CollectorContext())
    scheduler.run_once()
    checks = {c.name: c for c in scheduler.health_checks()}
    assert checks["collectors"].status == FAILING and checks["collectors"].critical
    assert roll_up(checks.values()) == "failing"


def test_constant_labels_are_added_to_every_sample() -> None:
    scheduler = Scheduler([settings(Fine)], CollectorContext(), labels={"store": "s1"})
    scheduler.run_once()
    (family,) = scheduler.snapshot()[0].families
    assert family.samples[0].labels == {"store": "s1"}


def test_failures_logged_once_per_change(caplog: pytest.LogCaptureFixture) -> None:
    Broken.fail = True
    try:
        scheduler = Scheduler([settings(Broken, interval=0.05)], CollectorContext())
        with caplog.at_level(logging.INFO, logger="totem_agent.scheduler"):
            scheduler.start()
            wait_until(lambda: scheduler.snapshot()[0].failures["error"] >= 5,
                       message="five failed runs")
            Broken.fail = False
            wait_until(lambda: scheduler.snapshot()[0].outcome == "ok", message="recovery")
            scheduler.stop()
    finally:
        Broken.fail = True
    messages = [r.getMessage() for r in caplog.records if r.name == "totem_agent.scheduler"]
    assert sum(m.startswith("collector failed") for m in messages) == 1, messages
    assert messages.count("collector recovered") == 1, messages
    failed = next(r for r in caplog.records if r.getMessage().startswith("collector failed"))
    assert failed.collector == "broken"  # type: ignore[attr-defined]


def test_stuck_collector_is_skipped_not_piled_up(hung_release: threading.Event) -> None:
    scheduler = Scheduler([settings(Hung, interval=0.05, timeout=0.05), settings(Fine, 0.05)],
                          CollectorContext())
    scheduler.start()

    def by_name(name: str) -> CollectorState:
        return next(s for s in scheduler.snapshot() if s.name == name)

    # Both at once: the stuck one skipped again and again while the other kept running
    # (on a loaded machine the other's third run may come a tick after the third skip).
    wait_until(lambda: by_name("hung").failures["skipped"] >= 3 and by_name("fine").runs >= 3,
               message="skips of the stuck collector and runs of the other")
    state = by_name("hung")
    assert state.failures["timeout"] == 1  # one run started, the rest skipped
    assert state.outcome == "timeout"  # skips while stuck do not flap the outcome
    fine = by_name("fine")
    assert fine.outcome == "ok" and fine.runs >= 3
    hung_release.set()
    scheduler.stop()


def test_late_result_is_discarded(hung_release: threading.Event) -> None:
    scheduler = Scheduler([settings(Hung, timeout=0.05)], CollectorContext())
    scheduler.run_once()
    hung_release.set()
    state = scheduler.snapshot()[0]
    wait_until(lambda: state.running is None, message="the late run to end")
    assert state.outcome == "timeout" and state.families == []
    scheduler.stop()


def test_wait_runs_waits_for_a_stuck_run_only_as_long_as_told(
        hung_release: threading.Event) -> None:
    # What a reload does before closing collectors: a stuck run keeps its collector.
    scheduler = Scheduler([settings(Hung, timeout=0.05), settings(Fine)], CollectorContext())
    scheduler.run_once()
    assert scheduler.wait_runs(0.05) is False
    hung_release.set()
    assert scheduler.wait_runs(10) is True
    assert all(s.running is None for s in scheduler.snapshot())
    scheduler.stop()


def test_nothing_to_watch_says_why() -> None:
    scheduler = Scheduler([settings(Absent)], CollectorContext())
    scheduler.run_once()
    (check, _) = scheduler.health_checks()
    assert check.message == "nothing to watch on this machine (no such device)"


def test_slow_collector_within_its_deadline_does_not_hold_up_the_others(
        hung_release: threading.Event) -> None:
    # Collectors share one lane; a run past LANE_PATIENCE leaves the lane to itself.
    scheduler = Scheduler([settings(Hung, interval=30, timeout=10), settings(Fine, 0.2)],
                          CollectorContext())
    scheduler.start()
    wait_until(lambda: next(s for s in scheduler.snapshot() if s.name == "fine").runs >= 5,
               message="five runs of the fast collector while the slow one runs")
    hung = next(s for s in scheduler.snapshot() if s.name == "hung")
    assert hung.outcome == "pending" and not hung.failures  # slow, not failed
    hung_release.set()
    wait_until(lambda: next(s for s in scheduler.snapshot() if s.name == "hung").outcome == "ok",
               message="the slow collector's result")
    scheduler.stop()


class Second(Fine):
    name = "second"


def test_change_is_told_once_per_cycle_not_once_per_collector(
        hung_release: threading.Event) -> None:
    # A scrape in the middle of a cycle must serve the previous complete cycle: the
    # exposition learns of new results when the lane has run everything queued.
    seen: list[tuple[int, int]] = []
    scheduler = Scheduler([settings(Fine, 0.05), settings(Second, 0.05), settings(Broken, 0.05)],
                          CollectorContext())

    def on_change() -> None:
        states = {s.name: s.runs for s in scheduler.states.values()}
        seen.append((states["fine"], states["second"]))

    scheduler.on_change = on_change
    scheduler.start()
    wait_until(lambda: len(seen) >= 3, message="three completed cycles")
    scheduler.stop()
    # Every notification saw both collectors at the same run count: never half a cycle.
    assert all(fine == second for fine, second in seen), seen


def test_late_result_of_an_abandoned_lane_is_told_at_once(
        hung_release: threading.Event) -> None:
    changes = threading.Event()
    scheduler = Scheduler([settings(Hung, interval=30, timeout=10)], CollectorContext())
    first_lane = scheduler._lane
    scheduler.start()
    wait_until(lambda: first_lane.current is not None, message="the slow run started")
    scheduler._wake.set()  # the loop turns now that a run holds the lane, and times it
    # Past LANE_PATIENCE the lane is left to the slow run; the new lane has nothing
    # queued, so it will never go idle to pass a pending change on.
    wait_until(lambda: scheduler._lane is not first_lane, message="the lane left to the slow run")
    scheduler.on_change = changes.set
    hung_release.set()
    wait_until(changes.is_set, message="on_change for the slow run's result")
    assert next(iter(scheduler.states.values())).outcome == "ok"
    scheduler.stop()
