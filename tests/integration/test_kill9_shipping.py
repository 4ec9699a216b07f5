"""kill -9 loop: a real agent ships to a real VictoriaMetrics and is killed at random
moments; the buffer never needs repair and no appended sample is lost.

The agent (interval 0.25 s, five collectors, one `[[remote_write]]` destination) is
started on the same state_dir again and again and killed with SIGKILL after a
random delay (seeded RNG). The receiver goes down for three agent lives out of
six, so a backlog builds, and comes back in the middle of a life: the shipper is
then backing off, retries, and drains the backlog. Those kills land on purpose
while the drain is under way (as soon as VictoriaMetrics has taken a first write
request, plus a random few milliseconds); the others land wherever the random
delay falls: appending, sealing a chunk, sending, acknowledging, idle.

After each kill: `PRAGMA integrity_check` is "ok", and the buffer's counters
add up (sent + pending + dropped == appended, nothing dropped, nothing going
backwards). At the end the receiver is up, the agent drains to zero pending and
stops; then every sample the buffer counts as sent is in VictoriaMetrics: the
distinct (series, timestamp) pairs it exports equal `sent` (those of cycles still
pending at the stop aside), and no cycle is missing (node_load1, in every cycle,
has every stored cycle's timestamp).

VictoriaMetrics runs *without* `-dedup.minScrapeInterval`, so a batch sent twice
is stored twice and the duplicates can be counted (exported samples minus
distinct ones). A duplicate is a batch the receiver took but whose
acknowledgement the kill (or the receiver's stop) cut short; the test checks
there are at most BATCHES_IN_FLIGHT (1: the last unacknowledged batch) such
batches per kill and per receiver stop.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import signal
import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.servers import (
    AgentProcess,
    ServerProcess,
    agent_config,
    http_get,
    parse_metrics,
    require_binary,
)
from tests.support import free_port, wait_until
from totem_agent.buffer import Buffer, DestinationStats
from totem_agent.outputs.remote_write_pipeline import BATCHES_IN_FLIGHT

pytestmark = pytest.mark.integration

SEED = 20261123
KILLS = 36
ROUNDS_PER_PHASE = 3          # agent lives with the receiver up, then as many down
DESTINATION = "vm"
MAX_SAMPLES_PER_SEND = 1      # one cycle per request: a backlog takes many requests to drain
COLLECTORS = ["loadavg", "meminfo", "cpu", "netdev", "diskstats"]


@dataclass
class KillRecord:
    round: int
    receiver_up: bool
    pending: int          # for the destination, read from the file after the kill
    sent: int             # samples acknowledged during this life
    mid_drain: bool       # killed on purpose while a backlog was being sent


def start_victoria_metrics(workdir: Path, port: int) -> ServerProcess:
    binary = require_binary("victoria-metrics")
    argv = [binary, f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={workdir / 'vm-data'}", "-retentionPeriod=100y",
            "-search.latencyOffset=0s", "-loggerLevel=ERROR"]
    return ServerProcess("victoria-metrics", argv, workdir, f"http://127.0.0.1:{port}",
                         "/health").start()


def vm_write_requests(vm: ServerProcess) -> float:
    """Remote-write requests this VictoriaMetrics process has taken since it started."""
    text = http_get(vm.url + "/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("vm_http_requests_total") and 'path="/api/v1/write"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def destination_stats(path: Path) -> tuple[DestinationStats, int]:
    """The destination's counters and the buffer's appended cycles, from the file."""
    with Buffer.open(path, readonly=True) as buf:
        stats = buf.stats()
    return stats.destinations[DESTINATION], stats.appended_cycles


def pending_now(agent: AgentProcess) -> float | None:
    family = parse_metrics(agent.metrics_text()).get("totem_agent_buffer_pending_samples")
    if family is None:
        return None
    for sample in family.samples:
        if sample.labels.get("destination") == DESTINATION:
            return float(sample.value)
    return None


def exported(vm: ServerProcess) -> dict[tuple[tuple[str, str], ...], list[int]]:
    """Every stored sample's timestamp, per series (duplicates kept)."""
    assert http_get(vm.url + "/internal/force_flush").status == 200
    result = http_get(vm.url + '/api/v1/export?match[]={job="totem"}', timeout=60)
    assert result.status == 200, result.text
    series: dict[tuple[tuple[str, str], ...], list[int]] = defaultdict(list)
    for line in result.text.splitlines():
        if line.strip():
            record = json.loads(line)
            series[tuple(sorted(record["metric"].items()))].extend(record["timestamps"])
    return series


def test_kill9_while_appending_and_shipping_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    port = free_port()
    state = tmp_path / "state"
    buffer_file = state / "buffer.sqlite"
    config = tmp_path / "agent.toml"
    config.write_text(agent_config(state, interval="0.25s", only=COLLECTORS, extra=f"""
[[remote_write]]
name = "{DESTINATION}"
url = "http://127.0.0.1:{port}/api/v1/write"
timeout = "2s"
min_backoff = "0.05s"
max_backoff = "0.5s"
max_samples_per_send = {MAX_SAMPLES_PER_SEND}
"""))
    vm: ServerProcess | None = start_victoria_metrics(tmp_path, port)
    receiver_stops = 0
    records: list[KillRecord] = []
    previous: DestinationStats | None = None
    agent: AgentProcess | None = None
    try:
        for round_ in range(KILLS):
            want_up = (round_ // ROUNDS_PER_PHASE) % 2 == 0
            toggles = (vm is not None) != want_up
            agent = AgentProcess(config).start(wait_collectors=False)
            time.sleep(rng.uniform(0.05, 1.0))  # the experiment: a random moment, not a wait
            mid_drain = False
            if toggles and want_up:
                vm = start_victoria_metrics(tmp_path, port)
                # Land the kill inside the drain of the backlog built while it was down.
                wait_until(functools.partial(vm_write_requests, vm), timeout=10, interval=0.005,
                           message="the agent's first write request after the outage")
                # A drain of this backlog takes tens of ms: land within its first few.
                time.sleep(rng.uniform(0.0, 0.004))
                mid_drain = True
            elif toggles and vm is not None:
                vm.stop()  # a request may be in flight: the agent retries it
                vm, receiver_stops = None, receiver_stops + 1
                time.sleep(rng.uniform(0.0, 0.5))
            assert agent.proc is not None
            agent.proc.send_signal(signal.SIGKILL)
            agent.proc.wait(10)
            agent.stop()  # joins its log reader

            check = integrity(buffer_file)
            assert check == "ok", f"round {round_}: integrity_check says {check!r}"
            dest, _ = destination_stats(buffer_file)
            assert dest.dropped_total == 0, f"round {round_}: dropped {dest.dropped_samples}"
            assert dest.sent_samples + dest.pending_samples == dest.appended_samples
            sent_before = previous.sent_samples if previous is not None else 0
            if previous is not None:
                assert dest.appended_samples >= previous.appended_samples
                assert dest.sent_samples >= sent_before
            previous = dest
            records.append(KillRecord(round_, vm is not None, dest.pending_samples,
                                      dest.sent_samples - sent_before, mid_drain))

        # The end: receiver up, the agent drains everything, then stops cleanly.
        if vm is None:
            vm = start_victoria_metrics(tmp_path, port)
        last = agent = AgentProcess(config).start(wait_collectors=False)
        wait_until(lambda: pending_now(last) == 0, timeout=30, interval=0.02,
                   message=f"{DESTINATION} pending samples to reach 0")
        agent = None
        assert last.stop() == 0, last.describe()
        assert integrity(buffer_file) == "ok"
        final, appended_cycles = destination_stats(buffer_file)
        assert final.dropped_total == 0, final.dropped_samples
        assert final.sent_samples + final.pending_samples == final.appended_samples

        # The stop may cut a request the receiver took: those cycles are still pending.
        cut = final.oldest_pending_ms if final.pending_samples else None
        view: dict[str, Any] = {}

        def everything_acknowledged_is_stored() -> bool:
            # force_flush leaves the last few hundred ms unsearchable now and then: poll.
            stored = exported(vm)
            distinct = {key: set(stamps) for key, stamps in stored.items()}
            per_cycle = Counter(ts for stamps in distinct.values() for ts in stamps)
            view.update(stored=stored, distinct=distinct, per_cycle=per_cycle,
                        acked=sum(n for ts, n in per_cycle.items() if cut is None or ts < cut))
            return bool(view["acked"] >= final.sent_samples)

        with contextlib.suppress(AssertionError):  # the assertions below say what is missing
            wait_until(everything_acknowledged_is_stored, timeout=15, interval=0.5)
        distinct, per_cycle, acked = view["distinct"], view["per_cycle"], view["acked"]
        total = sum(len(stamps) for stamps in view["stored"].values())
        duplicates = total - sum(len(stamps) for stamps in distinct.values())
        beyond = sum(n for ts, n in per_cycle.items() if cut is not None and ts >= cut)
        summary = (f"{KILLS} kills ({sum(r.mid_drain for r in records)} mid-drain, "
                   f"{sum(not r.receiver_up for r in records)} with the receiver down), "
                   f"{receiver_stops} receiver stops; appended {final.appended_samples}, "
                   f"sent {final.sent_samples}, pending {final.pending_samples}; stored "
                   f"{total}, distinct {acked} + {beyond} pending, duplicates {duplicates}")
        print(summary)
        print("kills:", ", ".join(f"{r.round}:{'up' if r.receiver_up else 'down'}"
                                  f"{'/mid-drain' if r.mid_drain else ''} sent {r.sent} "
                                  f"pending {r.pending}" for r in records))
        # Nothing lost: every sample acknowledged is stored, and nothing else is.
        assert acked == final.sent_samples, summary
        assert beyond <= final.pending_samples, summary
        # Whole cycles: node_load1 is in every cycle, so it has every cycle's timestamp.
        load1 = [stamps for key, stamps in distinct.items()
                 if dict(key)["__name__"] == "node_load1"]
        assert len(load1) == 1 and load1[0] == set(per_cycle), "a cycle lacks node_load1"
        assert len(per_cycle) <= appended_cycles
        # Duplicates: at most the batches sent and not settled at each kill and each
        # receiver stop (BATCHES_IN_FLIGHT, whatever parallel_requests is).
        batch_cap = max(MAX_SAMPLES_PER_SEND, max(per_cycle.values()))
        assert duplicates <= (KILLS + receiver_stops) * BATCHES_IN_FLIGHT * batch_cap, summary
        # Whether a kill landed inside a drain (sent some, some still pending) depends on
        # timing the test cannot control on a busy machine; it is reported, not asserted
        # (the kills that do land there are held to every assertion above).
        landed = sum(r.mid_drain and r.sent > 0 and r.pending > 0 for r in records)
        print(f"kills that landed mid-drain: {landed}; {summary}")
    finally:
        if agent is not None:
            agent.stop()
        if vm is not None:
            vm.stop()
