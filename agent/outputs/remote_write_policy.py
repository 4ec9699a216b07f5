"""What to do with a remote_write answer: pure functions and small state, no I/O.

- `classify(status, body)`: sent, retry (the far end is unwell: 5xx, 429, no
  answer, or it refuses *us*: 401/403/404), or refused for good (the far end
  refuses the *data*), with a reason for the count: `too_old`,
  `out_of_order`, `out_of_bounds`, `duplicate`, `too_far_in_future`,
  `too_large`, else `rejected`.
- `Backoff`: capped exponential backoff with jitter, honouring `Retry-After`.
- `ClockSkew`: the kiosk's clock against the far end's, from HTTP `Date`.

Reference for the answers of real receivers: ../shared/research/components.md §4.
Prometheus 2.42 answers **500** "too old sample" for a batch holding a sample
older than its out-of-order window: a 5xx that no retry can ever fix, so the
body decides, not the status alone.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

SENT = "sent"
RETRY = "retry"
REFUSED = "refused"

REJECTED = "rejected"  # the generic reason for a refused sample

# Pieces of the far end's message that say which samples it refuses and why
# (Prometheus' storage errors, Mimir/Cortex error ids, VictoriaMetrics), first match wins.
_REASONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("out_of_order", ("out of order sample", "out-of-order", "sample-out-of-order")),
    ("too_old", ("too old sample", "too-old", "timestamp-too-old", "too old")),
    ("too_far_in_future", ("too far in the future", "too-far-in-future", "in the future")),
    ("out_of_bounds", ("out of bounds",)),
    ("duplicate", ("duplicate sample", "duplicate-sample", "new value for timestamp")),
)
# Refusals of who we are, not of the data: keeping the data and retrying (slowly)
# lets a technician fix the password or URL without losing the outage's history.
_REFUSES_US = frozenset({401, 403, 404, 407})


@dataclass(frozen=True)
class Verdict:
    """`action` is SENT, RETRY or REFUSED; `reason` says why a REFUSED batch is refused.

    `per_sample`: the refusal names samples (too old, out of order, ...), so
    splitting the batch gets the others in. A refusal that does not (a 400 with
    an unknown message) drops the whole payload, as remote_write 1.0 says.
    """

    action: str
    reason: str = ""
    per_sample: bool = False


def sample_reason(body: str) -> str | None:
    """The reason a far end's message gives for refusing samples, or None."""
    lowered = body.lower()
    for reason, needles in _REASONS:
        if any(needle in lowered for needle in needles):
            return reason
    return None


def classify(status: int | None, body: str = "") -> Verdict:
    """The verdict on one answer; `status` None means no answer (connection, timeout)."""
    if status is None:
        return Verdict(RETRY)
    if 200 <= status < 300:
        return Verdict(SENT)
    reason = sample_reason(body)
    if status == 413:
        return Verdict(REFUSED, "too_large", per_sample=True)
    if status == 429 or status in _REFUSES_US:
        return Verdict(RETRY)
    if status >= 500:
        # Prometheus 2.42: 500 "too old sample" for the whole batch; retrying never helps.
        return Verdict(REFUSED, reason, per_sample=True) if reason else Verdict(RETRY)
    if 400 <= status < 500:
        return Verdict(REFUSED, reason or REJECTED, per_sample=reason is not None)
    return Verdict(RETRY)  # 1xx/3xx: not a remote_write answer; try again later


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def parse_http_date(value: str | None) -> float | None:
    """Unix time of an HTTP `Date` header, or None."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() if when.tzinfo is not None else None


class Backoff:
    """Waits between retries of one payload: min * 2^n, capped at max, with jitter.

    Each wait is drawn uniformly from [cap/2, cap] ("equal jitter"), so many kiosks
    coming back after a store-wide outage spread out yet still back off. A
    `Retry-After` from the far end is honoured as given (at least `minimum`), up to
    `max_retry_after` (an hour-long Retry-After from a misconfigured proxy must not
    park the queue).
    """

    def __init__(self, minimum: float, maximum: float, *, max_retry_after: float = 300.0,
                 rng: Callable[[], float] = random.random) -> None:
        if minimum <= 0 or maximum < minimum:
            raise ValueError(f"backoff needs 0 < min <= max, got {minimum}, {maximum}")
        self.minimum = minimum
        self.maximum = maximum
        self.max_retry_after = max(max_retry_after, maximum)
        self.rng = rng
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    def cap(self, failures: int) -> float:
        """The longest wait after `failures` failures in a row (before jitter)."""
        return min(self.maximum, self.minimum * 2.0 ** min(max(failures - 1, 0), 62))

    def next_wait(self, retry_after: float | None = None) -> float:
        """Count one more failure; the seconds to wait before the next try."""
        self.failures += 1
        if retry_after is not None:  # never below min: "Retry-After: 0" must not spin
            return min(max(retry_after, self.minimum), self.max_retry_after)
        cap = self.cap(self.failures)
        return cap / 2 + self.rng() * cap / 2


class ClockSkew:
    """How far the kiosk's clock is ahead of the far end's (negative: behind), in seconds.

    Each answer's `Date` (one-second resolution, truncated) was written by the far
    end somewhere between our send and receive; we take the middle of both
    intervals. The median of the last `window` answers shrugs off one slow answer.
    """

    def __init__(self, window: int = 15) -> None:
        self._samples: deque[float] = deque(maxlen=window)

    def observe(self, date_header: str | None, sent_at: float, received_at: float) -> None:
        server = parse_http_date(date_header)
        if server is None:
            return
        local = (sent_at + received_at) / 2
        self._samples.append(local - (server + 0.5))

    @property
    def seconds(self) -> float | None:
        if not self._samples:
            return None
        # By hand: the statistics module costs 0.5 MB of RSS (decimal, fractions).
        ordered = sorted(self._samples)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def describe_skew(skew: float, destination: str) -> str:
    """A technician's sentence about a clock `skew` seconds ahead of `destination`'s."""
    amount = abs(skew)
    if amount >= 5400:
        size = f"{amount / 3600:.1f} hours"
    elif amount >= 90:
        size = f"{amount / 60:.0f} minutes"
    else:
        size = f"{amount:.0f} seconds"
    if skew > 0:
        return (f"The kiosk clock is {size} ahead of {destination}; samples would be "
                "rejected as coming from the future: fix the time sync")
    return (f"The kiosk clock is {size} behind {destination}; samples are stored at the "
            "wrong time and may be rejected as too old: fix the time sync")
