"""`totem-agent run` whose collector scheduler can be wedged on purpose (tests only).

SIGUSR1 starts a thread that takes the real scheduler's lock and never gives it
back: the scheduler's own loop then blocks at its next turn, exactly as it would
behind a deadlocked callback, while the HTTP server and every other thread run
on. The service watchdog (agent/sdnotify.py) must notice and stop its pings.

    python -m tests.integration.wedged_agent run --config FILE ...
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from totem_agent import cli
from totem_agent.scheduler import Scheduler

_started: list[Scheduler] = []
_original_start = Scheduler.start


def _recording_start(self: Scheduler) -> None:
    _started.append(self)
    _original_start(self)


def _hold_locks_forever() -> None:
    for scheduler in _started:
        scheduler._lock.acquire()
    print("wedged: holding the scheduler lock", file=sys.stderr, flush=True)
    threading.Event().wait()


def _wedge(signum: int, frame: FrameType | None) -> None:
    threading.Thread(target=_hold_locks_forever, name="wedge", daemon=True).start()


if __name__ == "__main__":
    Scheduler.start = _recording_start  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, _wedge)
    sys.exit(cli.main(sys.argv[1:]))
