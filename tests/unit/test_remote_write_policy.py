"""Answer classification, backoff with jitter and Retry-After, clock skew from Date."""

from __future__ import annotations

from email.utils import formatdate

import pytest

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


@pytest.mark.parametrize(("status", "body", "verdict"), [
    (200, "", Verdict(SENT)),
    (204, "", Verdict(SENT)),
    # Prometheus 2.42 with an out-of-order window: a whole batch, 500, never retryable.
    (500, "too old sample", Verdict(REFUSED, "too_old", per_sample=True)),
    (500, "out of order sample", Verdict(REFUSED, "out_of_order", per_sample=True)),
    (500, "internal error: disk full", Verdict(RETRY)),
    (502, "<html>Bad Gateway</html>", Verdict(RETRY)),
    (503, "", Verdict(RETRY)),
    (429, "slow down", Verdict(RETRY)),
    # Prometheus 2.42 without the window, and other receivers' wordings.
    (400, "out of bounds", Verdict(REFUSED, "out_of_bounds", per_sample=True)),
    (400, "duplicate sample for timestamp", Verdict(REFUSED, "duplicate", per_sample=True)),
    (400, "err-mimir-sample-out-of-order", Verdict(REFUSED, "out_of_order", per_sample=True)),
    (400, "sample timestamp too far in the future",
     Verdict(REFUSED, "too_far_in_future", per_sample=True)),
    (413, "request entity too large", Verdict(REFUSED, "too_large", per_sample=True)),
    # A refusal that names no sample: the payload is dropped whole.
    (400, "snappy: corrupt input", Verdict(REFUSED, "rejected")),
    (422, "", Verdict(REFUSED, "rejected")),
    # Refusals of us, not of the data: kept and retried.
    (401, "Unauthorized", Verdict(RETRY)),
    (403, "", Verdict(RETRY)),
    (404, "404 page not found", Verdict(RETRY)),
    (None, "", Verdict(RETRY)),
])
def test_classify(status: int | None, body: str, verdict: Verdict) -> None:
    assert classify(status, body) == verdict


def test_retry_after_seconds_and_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == pytest.approx(30.0)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now) == 0.0  # in the past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("", now) is None


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    low = Backoff(0.25, 5.0, rng=lambda: 0.0)
    high = Backoff(0.25, 5.0, rng=lambda: 0.999999)
    caps = [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    for cap in caps:
        assert low.next_wait() == pytest.approx(cap / 2)
        assert high.next_wait() == pytest.approx(cap, rel=1e-5)
    after_many = Backoff(0.25, 5.0)
    for _ in range(10_000):  # no overflow, stays within [max/2, max]
        wait = after_many.next_wait()
    assert 2.5 <= wait <= 5.0
    after_many.reset()
    assert after_many.next_wait() <= 0.25


def test_backoff_honours_retry_after_up_to_its_limit() -> None:
    backoff = Backoff(0.25, 5.0, max_retry_after=300.0, rng=lambda: 0.0)
    assert backoff.next_wait(retry_after=42.0) == 42.0  # longer than max_backoff: honoured
    assert backoff.next_wait(retry_after=0.0) == 0.25  # at least min_backoff: no spinning
    assert backoff.next_wait(retry_after=86_400.0) == 300.0  # a day: capped
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


def test_clock_skew_from_date_headers() -> None:
    skew = ClockSkew()
    assert skew.seconds is None
    local = 1_700_000_000.0
    # The far end's clock is 12 minutes behind ours; its Date truncates to the second.
    for i in range(5):
        sent = local + i * 10
        skew.observe(formatdate(sent - 720 + 0.2, usegmt=True), sent, sent + 0.4)
    assert skew.seconds == pytest.approx(720.0, abs=1.0)
    # One slow answer (a Date written 30 s after we sent) does not move the median much.
    skew.observe(formatdate(local + 100 - 720 + 30, usegmt=True), local + 100, local + 131)
    assert skew.seconds == pytest.approx(720.0, abs=1.0)
    skew.observe("not a date", local, local)
    skew.observe(None, local, local)
    assert skew.seconds == pytest.approx(720.0, abs=1.0)


def test_skew_sentences_for_a_technician() -> None:
    ahead = describe_skew(725.0, "central (vm.example:8428)")
    assert ahead.startswith("The kiosk clock is 12 minutes ahead of central (vm.example:8428)")
    assert "rejected" in ahead and "fix the time sync" in ahead
    behind = describe_skew(-3 * 3600.0, "central")
    assert "3.0 hours behind central" in behind and "fix the time sync" in behind
    assert "40 seconds ahead" in describe_skew(40.0, "x")
