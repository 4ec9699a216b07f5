"""Stat calls on mount points that cannot hang the filesystem collector.

A statfs() on a dead NFS or SMB mount blocks in the kernel, uninterruptibly and
for as long as the server is gone. node_exporter runs each statfs in its own
goroutine, waits `--collector.filesystem.mount-timeout` (5s) for it, marks the
mount stuck (`node_filesystem_device_error` 1) if it does not come back, and
skips a stuck mount on later scrapes until its old call finally returns. This
is the same, with daemon threads: a call that never returns holds one thread
(never the collector, and never the agent's exit), and nothing else.

Platform-neutral: Linux passes os.statvfs, Windows psutil.disk_usage.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

log = logging.getLogger("totem_agent.collectors.filesystem")

T = TypeVar("T")

# As node_exporter's hidden --collector.filesystem.stat-workers: how many stat
# calls run at once. Each batch waits at most one timeout.
STAT_WORKERS = 4

TIMED_OUT = "statfs did not return within the mount timeout"

# Filesystems whose statfs can block: served over the network, by a user-space
# process (FUSE), or mounted on first access (autofs). A local filesystem answers
# statfs from its superblock in memory, so it is called directly: handing each
# call to a thread cost more than everything else the filesystem collector does.
MAY_HANG_FSTYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "davfs", "afs",
    "ncpfs", "coda", "lustre", "gpfs", "ocfs2", "gfs2", "autofs", "sshfs", "virtiofs",
})


def may_hang(fstype: str) -> bool:
    """Whether a statfs on this filesystem type needs the guard's timeout."""
    return fstype in MAY_HANG_FSTYPES or fstype.startswith(("fuse", "nfs"))
STILL_STUCK = "an earlier statfs on this mount has not returned yet"


class _DaemonWorkers:
    """Daemon threads that run jobs; a thread stuck in a job is simply not reused.

    Each job submitted is given a thread of its own at once: an idle one if
    there is one, else a new one. So a job never waits behind a stuck call, and
    the number of threads stays at the most ever busy at once (at most
    STAT_WORKERS plus one per mount that is stuck).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._started = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            spawn = self._idle == 0
            if spawn:
                self._started += 1
                number = self._started
            else:
                self._idle -= 1  # reserved for this job
        if spawn:
            threading.Thread(target=self._serve, name=f"{self._name}-{number}",
                             daemon=True).start()
        self._jobs.put(job)

    @property
    def threads(self) -> int:
        return self._started

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            job()
            with self._lock:
                self._idle += 1


class MountGuard(Generic[T]):
    """Runs `stat(path)` for many mount points, each within a timeout.

    `run()` returns, per path, the stat result or the error as a string. A path
    whose call timed out is "stuck": later runs answer STILL_STUCK for it
    without calling stat again, until the old call returns (then it is
    measured again from the next run). Keep one guard for the life of the
    collector: the stuck set is its memory.
    """

    def __init__(self, stat: Callable[[str], T], workers: int = STAT_WORKERS) -> None:
        self._stat = stat
        self._batch = max(1, workers)
        self._workers = _DaemonWorkers("statfs")
        self._lock = threading.Lock()
        self._stuck: set[str] = set()

    @property
    def stuck(self) -> frozenset[str]:
        """Paths whose stat call has not returned yet (for tests and /health)."""
        with self._lock:
            return frozenset(self._stuck)

    @property
    def threads(self) -> int:
        return self._workers.threads

    def run(self, paths: Iterable[str], timeout: float) -> dict[str, T | str]:
        outcomes: dict[str, T | str] = {}
        todo: list[str] = []
        for path in dict.fromkeys(paths):  # each path once, in order
            if path in self.stuck:
                outcomes[path] = STILL_STUCK
            else:
                todo.append(path)
        for start in range(0, len(todo), self._batch):
            batch = [(path, self._start(path)) for path in todo[start:start + self._batch]]
            deadline = time.monotonic() + timeout
            for path, future in batch:
                outcomes[path] = self._wait(path, future, deadline)
        return outcomes

    def _start(self, path: str) -> Future[T]:
        future: Future[T] = Future()

        def job() -> None:
            deliver: Callable[[], None]
            try:
                value = self._stat(path)
            except Exception as err:  # handed to the waiting collector, never lost
                deliver = functools.partial(future.set_exception, err)
            else:
                deliver = functools.partial(future.set_result, value)
            with self._lock:
                if path in self._stuck:
                    # The collector gave up on this call; it has come back now, so
                    # the mount is measured again from the next run.
                    self._stuck.discard(path)
                    log.info("mount point responds again; monitoring resumes",
                             extra={"mountpoint": path})
                    return
                deliver()

        self._workers.submit(job)
        return future

    def _wait(self, path: str, future: Future[T], deadline: float) -> T | str:
        try:
            return future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except FutureTimeout:
            pass
        except Exception as err:
            return describe_stat_error(err)
        # Decide under the lock the job takes to deliver, so a call that returns
        # just now is either used here or knows it was given up on: never both.
        with self._lock:
            if not future.done():
                self._stuck.add(path)
                log.warning("mount point did not answer statfs in time; it is skipped "
                            "until it does", extra={"mountpoint": path})
                return TIMED_OUT
        error = future.exception()
        return describe_stat_error(error) if error is not None else future.result()


def describe_stat_error(err: BaseException) -> str:
    """The same words for a statfs error whether it ran guarded or not."""
    return str(err) or type(err).__name__
