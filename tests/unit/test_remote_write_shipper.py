"""The shipper against a real HTTP receiver on loopback (tests/remote_write_fake.py)
and a real buffer: what it sends, how it retries, bisects, counts, stops, and reports."""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.exposition import generate_latest

from tests.integration.servers import make_tls_files
from tests.remote_write_fake import HANG, Labels, fake_receiver
from tests.support import free_port, wait_until
from totem_agent import __version__
from totem_agent.buffer import Buffer, SeriesSamples
from totem_agent.outputs import remote_write_pipeline
from totem_agent.outputs.remote_write import (
    RemoteWrite,
    Shipper,
    families,
    open_remote_write,
    split,
)
from totem_agent.outputs.remote_write_client import Destination
from totem_agent.outputs.remote_write_proto import write_request_body

SERIES = [("node_load1", {"instance": "k1", "job": "totem"}),
          ("totem_queue_length", {"instance": "k1", "job": "totem", "service": "a"}),
          ("totem_queue_length", {"instance": "k1", "job": "totem", "service": "b"})]


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[Buffer]:
    with Buffer.open(tmp_path / "buffer.sqlite") as buf:
        yield buf


def now_ms() -> int:
    return int(time.time() * 1000)


def fill(buffer: Buffer, cycles: int, start_ms: int | None = None, step_ms: int = 15_000
         ) -> list[int]:
    """Append `cycles` cycles of SERIES (from 10 minutes ago by default); value = cycle
    index + series index / 10."""
    start_ms = now_ms() - 600_000 if start_ms is None else start_ms
    stamps = []
    for c in range(cycles):
        ts = start_ms + c * step_ms
        buffer.append(ts, [(name, labels, c + i / 10) for i, (name, labels) in enumerate(SERIES)])
        stamps.append(ts)
    return stamps


def destination(url: str, **kwargs: object) -> Destination:
    settings: dict[str, object] = {"name": "central", "url": url, "min_backoff": 0.01,
                                   "max_backoff": 0.05, "timeout": 5.0}
    settings.update(kwargs)
    return Destination.from_settings(settings)


def shipper_for(buffer: Buffer, dest: Destination) -> Shipper:
    buffer.register_destination(dest.name, from_oldest=True)
    return Shipper(buffer, dest)


def body_of(buffer: Buffer) -> bytes:
    batch = buffer.read("central", 100)
    assert batch is not None
    return write_request_body(batch.series)


def drain(shipper: Shipper) -> int:
    batches = 0
    while shipper.ship_once():
        batches += 1
    return batches


def metric(source: RemoteWrite | Shipper, name: str, **labels: str) -> float | None:
    shippers = [source] if isinstance(source, Shipper) else source.shippers
    for family in families(shippers):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


# -- what is sent ---------------------------------------------------------------

def test_headers_grouping_order_and_original_timestamps(buffer: Buffer) -> None:
    stamps = fill(buffer, 8)
    with fake_receiver() as rx:
        shipper = shipper_for(buffer, destination(rx.url, username="kiosk", password="s3cret",
                                                  headers={"X-Scope-OrgID": "stores"},
                                                  max_samples_per_send=12))
        assert drain(shipper) == 2  # 8 cycles of 3 samples, 12 per request
    first = rx.received[0]
    assert first.headers["Content-Encoding"] == "snappy"
    assert first.headers["Content-Type"] == "application/x-protobuf"
    assert first.headers["X-Prometheus-Remote-Write-Version"] == "0.1.0"
    assert first.headers["User-Agent"] == f"totem-agent/{__version__}"
    assert first.headers["Authorization"] == "Basic a2lvc2s6czNjcmV0"  # kiosk:s3cret
    assert first.headers["X-Scope-OrgID"] == "stores"
    # One TimeSeries per series per request, its samples oldest first.
    assert len(first.series) == 3
    for _, samples in first.series:
        assert [t for t, _ in samples] == stamps[:4]
    stored = rx.stored_by_series()
    load: Labels = (("__name__", "node_load1"), ("instance", "k1"), ("job", "totem"))
    assert stored[load] == [(t, float(c)) for c, t in enumerate(stamps)]
    assert sum(len(v) for v in stored.values()) == 24
    dest = buffer.stats().destinations["central"]
    assert (dest.sent_samples, dest.pending_samples, dest.dropped_total) == (24, 0, 0)
    assert metric(shipper, "totem_agent_remote_write_requests_total", code="204") == 2
    assert metric(shipper, "totem_agent_remote_write_last_success_timestamp_seconds")


def test_bearer_token_from_a_file(buffer: Buffer, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    fill(buffer, 1)
    with fake_receiver() as rx:
        drain(shipper_for(buffer, destination(rx.url, bearer_token_file=str(token))))
    assert rx.received[0].headers["Authorization"] == "Bearer t0ken"


# -- retries ------------------------------------------------------------------------

def test_503_is_retried_until_accepted(buffer: Buffer) -> None:
    fill(buffer, 2)
    with fake_receiver(script=[(503, "unavailable", {}), (503, "unavailable", {})]) as rx:
        shipper = shipper_for(buffer, destination(rx.url))
        drain(shipper)
    assert rx.answers == [503, 503, 204]
    assert len(rx.stored) == 6
    assert metric(shipper, "totem_agent_remote_write_retries_total") == 2
    assert metric(shipper, "totem_agent_remote_write_requests_total", code="503") == 2
    assert buffer.stats().destinations["central"].sent_samples == 6


def test_429_honours_retry_after(buffer: Buffer) -> None:
    fill(buffer, 1)
    with fake_receiver(script=[(429, "too many requests", {"Retry-After": "1"})]) as rx:
        drain(shipper_for(buffer, destination(rx.url, max_backoff=0.05)))
    assert rx.answers == [429, 204]
    # max_backoff is 50 ms: only Retry-After explains a wait of a second.
    assert rx.received[1].at - rx.received[0].at >= 0.95


def test_a_hanging_connection_times_out_and_is_retried(buffer: Buffer) -> None:
    fill(buffer, 1)
    with fake_receiver(script=[HANG]) as rx:
        shipper = shipper_for(buffer, destination(rx.url, timeout=0.3))
        drain(shipper)
    assert rx.answers == [0, 204]
    assert len(rx.stored) == 3
    assert metric(shipper, "totem_agent_remote_write_requests_total", code="timeout") == 1


# -- refusals ----------------------------------------------------------------------

def test_400_drops_the_batch_logs_once_and_the_queue_moves_on(
        buffer: Buffer, caplog: pytest.LogCaptureFixture) -> None:
    fill(buffer, 6)
    refusal = (400, "bad request: label value 12345 is invalid", {})
    with fake_receiver(script=[refusal, (400, "bad request: label value 678 is invalid", {})]
                       ) as rx, caplog.at_level(logging.WARNING, "totem_agent.remote_write"):
        shipper = shipper_for(buffer, destination(rx.url, max_samples_per_send=6))
        drain(shipper)
    assert rx.answers == [400, 400, 204]  # not bisected: the message names no sample
    dest = buffer.stats().destinations["central"]
    assert dest.dropped_samples == {"rejected": 12}
    assert dest.sent_samples == 6 and dest.pending_samples == 0
    logged = [r for r in caplog.records if "label value" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]  # same message, once


def test_mixed_batch_refused_whole_is_bisected(buffer: Buffer) -> None:
    """Prometheus 2.42: one sample older than the out-of-order window makes the whole
    request fail with 500 "too old sample"; what it would accept must still get in."""
    now = now_ms()
    old_cutoff = now - 3_600_000
    old = fill(buffer, 5, start_ms=now - 7_200_000, step_ms=60_000)  # 2 h old: refused
    new = fill(buffer, 7, start_ms=now - 300_000, step_ms=15_000)   # 5 min old: fine

    def too_old(labels: Labels, timestamp: int, value: float) -> tuple[int, str] | None:
        return (500, "too old sample") if timestamp < old_cutoff else None

    with fake_receiver(rule=too_old) as rx:
        shipper = shipper_for(buffer, destination(rx.url))
        assert drain(shipper) == 1  # one batch of 36 samples
    stored_times = sorted({s.timestamp for s in rx.stored})
    assert stored_times == new
    assert len(rx.stored) == 7 * 3
    dest = buffer.stats().destinations["central"]
    assert dest.dropped_samples == {"too_old": 5 * 3}
    assert dest.sent_samples == 7 * 3 and dest.pending_samples == 0
    assert set(rx.answers) == {500, 204}
    assert len(rx.answers) <= 2 * 36  # bisection, not one request per sample forever
    assert metric(shipper, "totem_agent_remote_write_bisections_total")
    assert len(old) == 5
    check = shipper.health_check(buffer.stats())
    assert check.status == "ok"
    assert "15 samples refused by it since the agent started (too_old 15)" in check.message


def test_split_halves_by_samples_then_within_a_series() -> None:
    a = SeriesSamples("a", (), [1, 2, 3, 4], [1.0] * 4)
    b = SeriesSamples("b", (), [1], [1.0])
    c = SeriesSamples("c", (), [1, 2, 3], [1.0] * 3)
    first, second = split([a, b, c])
    assert [s.name for s in first] == ["a"] and [s.name for s in second] == ["b", "c"]
    older, newer = split([a])
    assert older[0].timestamps == [1, 2] and newer[0].timestamps == [3, 4]
    one, two = split([SeriesSamples("x", (), [7, 8], [0.0, 1.0])])
    assert one[0].timestamps == [7] and two[0].timestamps == [8]


# -- health, skew, metrics --------------------------------------------------------------

def test_clock_skew_is_measured_and_turns_health_degraded(buffer: Buffer) -> None:
    fill(buffer, 1)
    with fake_receiver(clock_offset=-725.0) as rx:  # the far end is ~12 minutes behind us
        shipper = shipper_for(buffer, destination(rx.url))
        drain(shipper)
    skew = metric(shipper, "totem_agent_clock_skew_seconds", destination="central")
    assert skew == pytest.approx(725.0, abs=2.0)
    check = shipper.health_check(buffer.stats())
    assert check.name == "remote_write:central" and check.kind == "output"
    assert check.status == "degraded"
    assert check.message.startswith("The kiosk clock is 12 minutes ahead of central")
    assert "fix the time sync" in check.message


def test_health_ok_after_sending_and_pending_before(buffer: Buffer) -> None:
    fill(buffer, 1)
    with fake_receiver() as rx:
        shipper = shipper_for(buffer, destination(rx.url))
        assert shipper.health_check(buffer.stats()).status == "pending"
        drain(shipper)
    check = shipper.health_check(buffer.stats())
    assert check.status == "ok", check.message
    assert check.details["pending_samples"] == 0


def test_unreachable_and_backlog_degrade_health_with_plain_words(buffer: Buffer) -> None:
    fill(buffer, 2, start_ms=now_ms() - 3_600_000)  # an hour old, never sent
    url = f"http://127.0.0.1:{free_port()}/api/v1/write"  # nothing listens there
    shipper = shipper_for(buffer, destination(url, backlog_warning=900.0))
    for _ in range(3):
        answer = shipper._post(body_of(buffer))
        assert answer.status is None
    check = shipper.health_check(buffer.stats())
    assert check.status == "degraded"
    assert "3 requests to central (127.0.0.1:" in check.message
    assert "refused the connection" in check.message
    assert "6 samples are waiting to be sent to central; the oldest was taken 60 minutes ago" \
        in check.message
    assert metric(shipper, "totem_agent_remote_write_requests_total", code="error") == 3


def test_metrics_render_as_valid_exposition(buffer: Buffer) -> None:
    fill(buffer, 3)
    with fake_receiver() as rx:
        group = RemoteWrite(buffer, [destination(rx.url)])
        drain(group.shippers[0])

    class Families:
        def collect(self) -> list:  # type: ignore[type-arg]
            return group.metrics()

    text = generate_latest(Families()).decode()  # type: ignore[arg-type]
    assert 'totem_agent_remote_write_request_duration_seconds_bucket{destination="central",' \
           'le="+Inf"} 1.0' in text
    assert 'totem_agent_remote_write_requests_total{code="204",destination="central"} 1.0' \
        in text
    assert 'totem_agent_remote_write_retries_total{destination="central"} 0.0' in text


# -- threads: stop, independence ------------------------------------------------------

def test_stop_cuts_a_long_backoff_and_leaves_the_batch_pending(buffer: Buffer) -> None:
    fill(buffer, 2)
    url = f"http://127.0.0.1:{free_port()}/api/v1/write"
    group = RemoteWrite(buffer, [destination(url, min_backoff=60.0, max_backoff=60.0)])
    group.start()
    wait_until(lambda: (metric(group, "totem_agent_remote_write_retries_total") or 0) >= 1,
               message="a first failed request")
    started = time.monotonic()
    group.stop(wait=10.0)
    assert time.monotonic() - started < 5.0  # not the 60 s backoff
    assert not group.shippers[0]._thread.is_alive()  # type: ignore[union-attr]
    assert buffer.stats().destinations["central"].pending_samples == 6


@pytest.mark.parametrize("parallel", [1, 2])
def test_stop_cuts_a_hanging_request(buffer: Buffer, parallel: int,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_write_pipeline, "SPLIT_FROM", 1)  # split even 6 samples
    fill(buffer, 2)
    with fake_receiver(script=[HANG]) as rx:
        group = RemoteWrite(buffer, [destination(rx.url, timeout=60.0,
                                                 parallel_requests=parallel)])
        group.start()
        # With two lanes (SERIES spread over both) the other part of the batch is
        # answered: the batch is still not settled while one of its parts hangs.
        pipeline = group.shippers[0].pipeline
        lanes = {pipeline.lane_of(SeriesSamples(name, tuple(sorted(labels.items())), [], []))
                 for name, labels in SERIES}
        assert len(lanes) == parallel
        wait_until(lambda: sorted(rx.answers) == [0, 204][:parallel],
                   message="the request to hang")
        started = time.monotonic()
        group.stop(wait=10.0)
        assert time.monotonic() - started < 5.0  # not the 60 s timeout
        for lane in pipeline.lanes:
            assert not lane.thread.is_alive()
    assert buffer.stats().destinations["central"].pending_samples == 6
    assert len(rx.stored) < 6 if parallel > 1 else rx.stored == []


def test_two_destinations_have_independent_cursors(buffer: Buffer) -> None:
    fill(buffer, 4)
    down = f"http://127.0.0.1:{free_port()}/api/v1/write"
    with fake_receiver() as rx:
        group = RemoteWrite(buffer, [destination(rx.url, name="up"),
                                     destination(down, name="down", max_backoff=0.2)],
                            idle_wait=0.05)
        group.start()
        try:
            wait_until(lambda: buffer.stats().destinations["up"].pending_samples == 0,
                       message="the reachable destination to drain")
            fill(buffer, 2, start_ms=now_ms())
            wait_until(lambda: len(rx.stored) == 18, message="the new cycles to arrive")
        finally:
            group.stop()
    stats = buffer.stats().destinations
    assert stats["up"].sent_samples == 18 and stats["up"].pending_samples == 0
    assert stats["down"].sent_samples == 0 and stats["down"].pending_samples == 18
    checks = {c.name: c.status for c in group.health_checks()}
    assert checks["remote_write:up"] == "ok"


def test_notify_and_on_settled(buffer: Buffer) -> None:
    settled = threading.Event()
    with fake_receiver() as rx:
        group = RemoteWrite(buffer, [destination(rx.url)], idle_wait=60.0,
                            on_settled=settled.set)
        group.start()
        try:
            fill(buffer, 1)
            group.notify()  # without it the shipper would sleep for a minute
            wait_until(settled.is_set, message="on_settled after the batch")
        finally:
            group.stop()
    assert len(rx.stored) == 3


def test_tls_with_the_ca_file_and_a_plain_error_without(buffer: Buffer, tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(str(tls.server_cert), str(tls.server_key))
    fill(buffer, 1)
    with fake_receiver(tls=server_side) as rx:
        untrusted = shipper_for(buffer, destination(rx.url))
        answer = untrusted._post(body_of(buffer))
        assert answer.status is None
        assert "TLS certificate of 127.0.0.1" in answer.error
        assert "set ca_file of [[remote_write]] central" in answer.error
        trusted = shipper_for(buffer, destination(rx.url, ca_file=str(tls.ca)))
        assert drain(trusted) == 1
    assert len(rx.stored) == 3


def test_destinations_no_longer_configured_are_forgotten(buffer: Buffer) -> None:
    buffer.register_destination("old-name")
    fill(buffer, 2)
    group = open_remote_write([{"name": "central", "url": "http://127.0.0.1:9/api/v1/write"}],
                              buffer)
    assert group is not None
    assert buffer.destinations() == ["central"]
    # The new name starts from the oldest sample still buffered.
    assert buffer.stats().destinations["central"].pending_samples == 6
    assert open_remote_write([], buffer) is None
    assert buffer.destinations() == []


def test_refusals_of_the_kiosk_are_retried_and_explained(buffer: Buffer) -> None:
    fill(buffer, 1)
    script = [(401, "Unauthorized", {}), (404, "404 page not found", {}),
              (301, "", {"Location": "https://vm.example.com/api/v1/write"})]
    with fake_receiver(script=list(script)) as rx:
        shipper = shipper_for(buffer, destination(rx.url))
        errors = []
        for _ in script:
            answer = shipper._post(body_of(buffer))
            errors.append(answer.describe())
        check = shipper.health_check(buffer.stats())
        drain(shipper)  # the receiver accepts from now on: nothing was dropped
    assert "check username and password" in errors[0]
    assert "--web.enable-remote-write-receiver" in errors[1]
    assert "redirects to https://vm.example.com/api/v1/write: set url" in errors[2]
    assert check.status == "degraded" and "3 requests to central" in check.message
    assert buffer.stats().destinations["central"].sent_samples == 3
