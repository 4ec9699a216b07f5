"""The remote_write shipper: one thread per destination, from the buffer to the far end.

Each `Shipper` loops: read the next batch from its own cursor
(`Buffer.read`), encode it (each series' samples in one TimeSeries, original
timestamps, oldest first), POST it, and settle it with what the far end did:

- 2xx: `ack` (sent).
- 5xx, 429, no answer (refused connection, timeout), 401/403/404/407: retry the same
  payload with capped exponential backoff and jitter, honouring Retry-After.
  Nothing is dropped for the far end being down or refusing our credentials;
  /health says what it answers.
- A refusal of the data: a 4xx, or a 5xx whose message names the samples
  (Prometheus 2.42 answers 500 "too old sample" and rolls back the whole batch).
  When the message names samples (too old, out of order, duplicate, ...) the
  payload is bisected (series, then samples, in halves) and each half resent, so
  whatever the far end accepts gets in and only the refused samples are
  counted as dropped, by reason. Any other 4xx drops the payload as `rejected`.
  The far end's message is logged once per distinct message.

Settlement happens only after the whole batch is decided: stopping mid-way
leaves it pending, to be read again after a restart. `stop()` cuts the requests
in flight and any backoff short.

`ship_once()` does all this for one batch, one request at a time (tests and the
benchmark's profile use it). The shipper's thread drains through
`remote_write_pipeline.Pipeline` instead: `parallel_requests` connections
(lanes), each series always on the same lane, the next batches read and encoded
while requests are in flight, batches settled in order; a kill or stop then
leaves at most `BATCHES_IN_FLIGHT` batches to be sent twice.

`remote_write.RemoteWrite` groups the shippers of a config and exposes their
metrics. docs/remote_write.md is the user's side of all this.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from totem_agent.buffer import Batch, Buffer, BufferStats, SeriesSamples
from totem_agent.health import DEGRADED, OK, PENDING, Check
from totem_agent.outputs.remote_write_client import Answer, Client, Destination
from totem_agent.outputs.remote_write_pipeline import Pipeline, Stopped
from totem_agent.outputs.remote_write_policy import (
    REFUSED,
    RETRY,
    SENT,
    Backoff,
    ClockSkew,
    Verdict,
    classify,
    describe_skew,
    parse_retry_after,
)
from totem_agent.outputs.remote_write_proto import WriteRequestEncoder, compress
from totem_agent.secrets_policy import redact_url
from totem_agent.threadnames import name_native_thread

log = logging.getLogger("totem_agent.remote_write")

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
FAILURES_FOR_DEGRADED = 3  # requests failing in a row before /health says so
IDLE_WAIT = 1.0            # seconds between looks at an empty queue (notify() wakes earlier)
SETTLED_EVERY = 1.0        # most often on_settled is called while a backlog drains
MAX_LOGGED_MESSAGES = 1000


def sample_count(series: Iterable[SeriesSamples]) -> int:
    return sum(len(one.timestamps) for one in series)


def split(series: Sequence[SeriesSamples]) -> tuple[list[SeriesSamples], list[SeriesSamples]]:
    """Two halves by sample count: whole series while there are several, else the one
    series' samples (older half first). Each half holds at least one sample."""
    if len(series) > 1:
        half = sample_count(series) / 2
        taken = 0
        cut = 1
        for i, one in enumerate(series[:-1]):
            taken += len(one.timestamps)
            cut = i + 1
            if taken >= half:
                break
        return list(series[:cut]), list(series[cut:])
    (one,) = series
    k = len(one.timestamps) // 2
    return ([SeriesSamples(one.name, one.labels, one.timestamps[:k], one.values[:k])],
            [SeriesSamples(one.name, one.labels, one.timestamps[k:], one.values[k:])])


def _message_key(status: int | None, message: str) -> str:
    # Numbers (timestamps, counts) vary between otherwise identical messages.
    return f"{status} {re.sub(r'[0-9]+', '#', ' '.join(message.split()))[:200]}"


class Shipper:
    """Ships one destination's cursor of `buffer` to its far end, on its own thread."""

    def __init__(self, buffer: Buffer, destination: Destination, *,
                 clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random, idle_wait: float = IDLE_WAIT,
                 on_settled: Callable[[], object] | None = None) -> None:
        self.buffer = buffer
        # Called after batches were settled (throttled, and when the queue empties), so
        # cached buffer statistics (the recorder's) follow the drain.
        self.on_settled = on_settled
        self.destination = destination
        self.name = destination.name
        self.client = Client(destination, clock)
        # One connection per lane of the pipeline; `client` is the first (ship_once's).
        self.clients = [self.client] + [Client(destination, clock)
                                        for _ in range(destination.parallel_requests - 1)]
        self.pipeline = Pipeline(self, self.clients, destination.max_prepared_size)
        self.encoder = WriteRequestEncoder()
        self.skew = ClockSkew()
        self.clock = clock
        self.rng = rng
        self.idle_wait = idle_wait
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._logged: set[str] = set()
        # Answers so far (under _progress): lanes backing off wake up when another
        # lane gets one (the far end is back), or on stop().
        self._progress = threading.Condition()
        self._answered = 0
        self._unreported = False
        self._reported_at = time.monotonic()
        # What it exposes (under _lock).
        self.requests: Counter[str] = Counter()
        self.retries = 0
        self.bisections = 0
        self.sent_bytes = 0
        self.refused: Counter[str] = Counter()  # samples refused since start, by reason
        self.bucket_counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.last_success_at: float | None = None
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._status: tuple[str, float] | None = None
        if destination.insecure_skip_verify:
            log.warning("remote_write %s: insecure_skip_verify is set: the receiver's TLS "
                        "certificate is not checked, anyone on the path can read and alter "
                        "what is sent", self.name)

    # -- life cycle --------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"remote_write:{self.name}",
                                        daemon=True)
        self._thread.start()

    def begin_stop(self) -> None:
        """Ask the thread to stop (ends the backoff, cuts the requests in flight)."""
        self._stop.set()
        self._wake.set()
        with self._progress:
            self._progress.notify_all()
        for client in self.clients:
            client.abort()
        self.pipeline.wake()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self, wait: float = 5.0) -> None:
        """Stop promptly: the backoff ends, an in-flight request is cut; the batch in
        hand stays pending in the buffer."""
        self.begin_stop()
        if self._thread is not None:
            self._thread.join(wait)
            if self._thread.is_alive():
                log.warning("remote_write %s: the shipper did not stop within %gs", self.name,
                            wait)
        self.pipeline.join(wait)
        for client in self.clients:
            client.close()

    def notify(self) -> None:
        """New data was appended: look at the queue now rather than at the next idle tick."""
        self._wake.set()

    def _run(self) -> None:
        name_native_thread()
        errors = Backoff(self.destination.min_backoff, self.destination.max_backoff, rng=self.rng)
        while not self._stop.is_set():
            self._wake.clear()  # appends from now on wake the next wait
            try:
                self.pipeline.drain()  # until nothing is pending
            except Stopped:
                return
            except Exception as err:  # the buffer failed us: say so, wait, try again
                self._log_once(None, f"cannot read or settle the buffer: {err}", logging.ERROR)
                self._record_error(f"buffer: {err}")
                if self._stop.wait(errors.next_wait()):
                    return
                continue
            errors.reset()
            if self._unreported:
                self._settled()
            self._wake.wait(self.idle_wait)

    def _settled(self) -> None:
        self._unreported, self._reported_at = False, time.monotonic()
        if self.on_settled is None:
            return
        try:
            self.on_settled()
        except Exception as err:  # statistics are a report: shipping goes on without them
            self._log_once(None, f"could not refresh the buffer statistics: {err}",
                           logging.WARNING)

    # -- one batch -----------------------------------------------------------------
    def ship_once(self) -> bool:
        """Read, deliver and settle one batch, in one request on this thread; False when
        nothing is pending.

        Raises Stopped (batch left pending) when stop() is called meanwhile."""
        batch = self.read(None)
        if batch is None:
            return False
        self.settle(batch, self.deliver(list(batch.series)))
        return True

    def read(self, after_seq: int | None, until_seq: int | None = None, *,
             packed: bool = False) -> Batch | None:
        """The next batch after the cursor, or after `after_seq` (reading ahead), up to
        cycle `until_seq` (reading a batch again); `packed` values for the encoder only."""
        return self.buffer.read(self.name, max_samples=self.destination.max_samples_per_send,
                                after_seq=after_seq, until_seq=until_seq, packed=packed)

    def settle(self, batch: Batch, refused: Counter[str]) -> None:
        """Count the batch in the buffer (sent, or refused by reason) and move the cursor."""
        if refused:
            self.buffer.commit(self.name, batch, dropped=dict(refused))
        else:
            self.buffer.ack(self.name, batch)
        self._unreported = True
        if time.monotonic() - self._reported_at >= SETTLED_EVERY:
            self._settled()

    def deliver_part(self, body: bytes, client: Client,
                     series_of: Callable[[], list[SeriesSamples]]) -> Counter[str]:
        """`deliver` for a pipeline lane: a body encoded beforehand, the lane's
        connection; the series are asked for only if the far end refuses some."""
        return self._deliver(body, client, series_of)

    def deliver(self, series: list[SeriesSamples], body: bytes | None = None,
                client: Client | None = None) -> Counter[str]:
        """Send `series` (encoded as `body` if given) until the far end has decided on
        every sample; the samples it refused, by reason. Retries while it is down;
        raises Stopped on stop()."""
        if body is None:
            body = compress(self.encoder.encode(series))
        return self._deliver(body, client, lambda: series)

    def _deliver(self, body: bytes, client: Client | None,
                 series_of: Callable[[], list[SeriesSamples]]) -> Counter[str]:
        backoff = Backoff(self.destination.min_backoff, self.destination.max_backoff,
                          rng=self.rng)
        while True:
            if self._stop.is_set():
                raise Stopped
            answered = self._answered
            answer = self._post(body, client)
            verdict = classify(answer.status, answer.message)
            if verdict.action == SENT:
                return Counter()
            if verdict.action == REFUSED:
                return self._refused(series_of(), answer, verdict, client)
            if self._stop.is_set():
                raise Stopped
            wait = backoff.next_wait(parse_retry_after(answer.retry_after, self.clock()))
            with self._lock:
                self.retries += 1
            self._back_off(wait, answered, cut_short=answer.status is None)

    def _back_off(self, seconds: float, answered: int, cut_short: bool) -> None:
        """Wait `seconds`; after no answer at all (`cut_short`), only until another lane
        gets one (the far end is back). A far end that answered 5xx or 429 gets its
        whole wait."""
        deadline = time.monotonic() + seconds
        with self._progress:
            while True:
                if self._stop.is_set():
                    raise Stopped
                left = deadline - time.monotonic()
                if left <= 0 or (cut_short and self._answered != answered):
                    return
                self._progress.wait(left)

    def _refused(self, series: list[SeriesSamples], answer: Answer,
                 verdict: Verdict, client: Client | None = None) -> Counter[str]:
        count = sample_count(series)
        if not count:  # evicted from the buffer meanwhile: counted there already
            return Counter()
        if verdict.per_sample and count > 1:
            with self._lock:
                self.bisections += 1
            first, second = split(series)
            return self.deliver(first, client=client) + self.deliver(second, client=client)
        self._log_once(answer.status, f"{self.name} refused {count} sample(s) for good "
                       f"({verdict.reason}), they are dropped and counted; it answered "
                       f"{answer.describe()} (logged once per message)", logging.WARNING)
        with self._lock:
            self.refused[verdict.reason] += count
        return Counter({verdict.reason: count})

    def _post(self, body: bytes, client: Client | None = None) -> Answer:
        answer = (client or self.client).post(body)
        verdict = classify(answer.status, answer.message)
        if verdict.action != RETRY:
            with self._progress:
                self._answered += 1
                self._progress.notify_all()
        first_failure = False
        with self._lock:
            self.skew.observe(answer.date, answer.sent_at, answer.received_at)
            self.requests[answer.code] += 1
            if answer.status is not None:
                self.sent_bytes += len(body)
            self.duration_sum += answer.duration
            index = next((i for i, le in enumerate(DURATION_BUCKETS) if answer.duration <= le),
                         len(DURATION_BUCKETS))
            self.bucket_counts[index] += 1
            if verdict.action == SENT:
                if self.consecutive_failures >= FAILURES_FOR_DEGRADED:
                    log.info("remote_write %s: sending again after %d failed requests",
                             self.name, self.consecutive_failures)
                self.consecutive_failures = 0
                self.last_success_at = answer.received_at
            elif verdict.action == REFUSED:  # it answers: not a failure to reach it
                self.consecutive_failures = 0
            else:
                self.consecutive_failures += 1
                self.last_error, self.last_error_at = answer.describe(), answer.received_at
                first_failure = self.consecutive_failures == 1
        if first_failure:
            log.warning("remote_write %s: request failed, retrying: %s", self.name,
                        answer.describe())
        return answer

    def _record_error(self, text: str) -> None:
        with self._lock:
            self.last_error, self.last_error_at = text, self.clock()

    def _log_once(self, status: int | None, message: str, level: int) -> None:
        key = _message_key(status, message)
        with self._lock:
            if key in self._logged:
                return
            if len(self._logged) >= MAX_LOGGED_MESSAGES:
                self._logged.clear()
            self._logged.add(key)
        log.log(level, "remote_write %s: %s", self.name, message)

    # -- health --------------------------------------------------------------------
    def health_check(self, stats: BufferStats | None = None) -> Check:
        dest = self.destination
        now = self.clock()
        pending, age = 0, 0.0
        own = stats.destinations.get(self.name) if stats is not None else None
        if own is not None and own.pending_samples and own.oldest_pending_ms is not None:
            pending, age = own.pending_samples, max(0.0, now - own.oldest_pending_ms / 1000)
        problems = []
        with self._lock:
            skew = self.skew.seconds
            failures, last_error = self.consecutive_failures, self.last_error
            last_success, last_error_at = self.last_success_at, self.last_error_at
            refused = dict(self.refused)
        if skew is not None and abs(skew) > dest.clock_skew_warning:
            problems.append(describe_skew(skew, f"{self.name} ({dest.host})"))
        if failures >= FAILURES_FOR_DEGRADED:
            problems.append(f"{failures} requests to {self.name} ({dest.host}) failed in a "
                            f"row, the last: {last_error}; measurements are kept and will "
                            "be sent when it answers")
        if pending and age > dest.backlog_warning:
            problems.append(f"{pending} samples are waiting to be sent to {self.name}; the "
                            f"oldest was taken {_duration(age)} ago")
        if problems:
            status, message = DEGRADED, "; ".join(problems)
        elif last_success is None and not refused:
            status, message = PENDING, f"Nothing sent to {self.name} yet"
        else:
            status, message = OK, f"Sending to {self.name} ({dest.host})"
            if refused:
                reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(refused.items()))
                message += (f"; {sum(refused.values())} samples refused by it since the "
                            f"agent started ({reasons})")
        with self._lock:
            if self._status is None or self._status[0] != status:
                self._status = (status, now)
            since = self._status[1]
        details: dict[str, Any] = {"url": redact_url(dest.url), "pending_samples": pending,
                                   "oldest_pending_age_seconds": round(age, 3),
                                   "refused_samples": refused}
        if skew is not None:
            details["clock_skew_seconds"] = round(skew, 3)
        return Check(f"remote_write:{self.name}", "output", status, message, since=since,
                     last_error=last_error, last_error_at=last_error_at,
                     last_success_at=last_success, details=details)


def _duration(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} seconds"
