"""The health model behind GET /health, `totem-agent status`, the tray and the status page.

Every part of the agent that can go wrong offers checks (`HealthSource`); the
model gathers them and rolls them up. docs/health.md documents the JSON.

Roll-up: the agent is `failing` when a critical check fails (it can no longer
do its job: nothing is collected, the buffer cannot be written), `degraded`
when any other check is not fine (one collector broken, a backlog), else `ok`.
`pending` (not run yet) and `not_applicable` (nothing to watch) never lower it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from totem_agent import __version__

OK = "ok"
DEGRADED = "degraded"
FAILING = "failing"
PENDING = "pending"
NOT_APPLICABLE = "not_applicable"
CHECK_STATUSES = (OK, DEGRADED, FAILING, PENDING, NOT_APPLICABLE)
OVERALL_STATUSES = (OK, DEGRADED, FAILING)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Check:
    name: str          # "collector:cpu", later "buffer", "remote_write:central", ...
    kind: str          # "collector", "buffer", "output", "peripheral", ...
    status: str
    message: str = ""  # one line for a person: what is wrong, in plain words
    critical: bool = False
    since: float | None = None           # wall time the status last changed
    last_error: str | None = None
    last_error_at: float | None = None
    last_success_at: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": self.status,
            "message": self.message,
            "critical": self.critical,
            "since": iso(self.since),
            "last_error": self.last_error,
            "last_error_at": iso(self.last_error_at),
            "last_success_at": iso(self.last_success_at),
            **({"details": dict(self.details)} if self.details else {}),
        }


class HealthSource(Protocol):
    def health_checks(self) -> Iterable[Check]: ...


def roll_up(checks: Iterable[Check]) -> str:
    status = OK
    for check in checks:
        if check.status == FAILING and check.critical:
            return FAILING
        if check.status in (FAILING, DEGRADED):
            status = DEGRADED
    return status


class HealthModel:
    def __init__(self, instance: str, labels: Mapping[str, str],
                 clock: Callable[[], float] = time.time) -> None:
        self.instance = instance
        self.labels = dict(labels)
        self.clock = clock
        self.started_at = clock()
        self._sources: list[HealthSource] = []

    def add_source(self, source: HealthSource) -> None:
        self._sources.append(source)

    def checks(self) -> list[Check]:
        return [check for source in self._sources for check in source.health_checks()]

    def report(self) -> dict[str, Any]:
        checks = self.checks()
        now = self.clock()
        return {
            "status": roll_up(checks),
            "instance": self.instance,
            "labels": self.labels,
            "version": __version__,
            "started_at": iso(self.started_at),
            "uptime_seconds": round(now - self.started_at, 3),
            "time": iso(now),
            "checks": {check.name: check.as_json() for check in checks},
        }
