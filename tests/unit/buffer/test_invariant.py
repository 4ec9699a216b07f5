"""Randomized, with a fixed seed: sent + pending + dropped == appended, exactly, always.

A model keeps every cycle appended. Random operations (append with changing
series sets and awkward values, read, ack, drop, partial commit, settle after
eviction took part of the batch, register and remove destinations, clock jumps
past the age bound, a tight size bound, restarts with another chunk size) run
against a real buffer file; after each one the invariant must hold for every
destination, and every batch read must be exactly what the model says those
cycles held. At the end every destination drains, and what it was told was
evicted must match the cycles it never received.
"""

from __future__ import annotations

import math
import random
import struct
from pathlib import Path

import pytest

from totem_agent.buffer import Batch, Buffer

from .helpers import assert_invariant, integrity

Key = tuple[str, tuple[tuple[str, str], ...]]
POOL: list[Key] = [(f"metric_{i % 5}", (("dev", f"d{i}"), ("kiosk", "k7"))) for i in range(30)]
SHIPPER_REASONS = ["rejected", "too_old", "out_of_order"]
AWKWARD = [math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1e300]


class Model:
    def __init__(self) -> None:
        self.cycles: dict[int, tuple[int, dict[Key, float]]] = {}
        self.settled: dict[str, int] = {}  # the cursor as this test knows it
        self.sent: dict[str, int] = {}
        self.dropped: dict[str, dict[str, int]] = {}
        self.evicted: dict[str, int] = {}

    def samples(self, first: int, last: int) -> int:
        return sum(len(self.cycles[s][1]) for s in range(first, last + 1))


def bits(v: float) -> bytes:
    return struct.pack("<d", v)


def check_batch(batch: Batch, model: Model) -> None:
    want: dict[Key, list[tuple[int, bytes]]] = {}
    for seq in range(batch.after_seq + 1, batch.last_seq + 1):
        ts, values = model.cycles[seq]
        for key, v in values.items():
            want.setdefault(key, []).append((ts, bits(v)))
    got = {(s.name, s.labels): [(t, bits(v)) for t, v in zip(s.timestamps, s.values, strict=True)]
           for s in batch.series}
    assert got == want
    assert batch.samples == model.samples(batch.after_seq + 1, batch.last_seq)
    assert list(batch.cycle_samples) == [len(model.cycles[s][1])
                                         for s in range(batch.after_seq + 1, batch.last_seq + 1)]


def settle(buf: Buffer, model: Model, batch: Batch, rng: random.Random) -> None:
    dest = batch.destination
    cursor = buf.stats().destinations[dest].cursor
    choice = rng.random()
    drops: dict[str, int] = {}
    if choice < 0.15:
        drops = {rng.choice(SHIPPER_REASONS): batch.samples}
    elif choice < 0.3:
        left = batch.samples
        for reason in rng.sample(SHIPPER_REASONS, 2):
            n = rng.randrange(0, left + 1)
            drops[reason] = n
            left -= n
    buf.commit(dest, batch, drops)
    if cursor >= batch.last_seq:
        return  # all of it was evicted in flight (and counted then)
    # What eviction took while the batch was in flight was counted as dropped then;
    # the buffer takes it off the sent count first, then off the drops in name order.
    overlap = sum(batch.cycle_samples[:max(cursor - batch.after_seq, 0)])
    model.evicted[dest] += overlap
    sent = batch.samples - sum(drops.values())
    for bucket in ["sent", *sorted(drops)]:
        have = sent if bucket == "sent" else drops[bucket]
        take = min(overlap, have)
        overlap -= take
        if bucket == "sent":
            sent -= take
        else:
            drops[bucket] -= take
    model.sent[dest] += sent
    for reason, n in drops.items():
        model.dropped[dest][reason] = model.dropped[dest].get(reason, 0) + n
    model.settled[dest] = batch.last_seq


def observe_read(batch: Batch, model: Model) -> None:
    dest = batch.destination
    assert batch.after_seq >= model.settled[dest], "a destination went back over settled cycles"
    if batch.after_seq > model.settled[dest]:  # cycles it will never see: evicted
        model.evicted[dest] += model.samples(model.settled[dest] + 1, batch.after_seq)
        model.settled[dest] = batch.after_seq


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_operations_keep_the_invariant(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "b.db"
    now = [1_795_000_000.0]
    max_size, max_age = 60_000, 3600

    def reopen() -> Buffer:
        return Buffer.open(path, max_size, max_age, clock=lambda: now[0],
                           chunk_cycles=rng.choice([1, 2, 5, 16]))

    buf = reopen()
    model = Model()
    in_flight: list[Batch] = []
    next_seq = 1

    def register(name: str) -> None:
        if buf.register_destination(name, from_oldest=rng.random() < 0.7):
            st = buf.stats().destinations[name]
            model.settled[name] = st.cursor
            model.sent[name], model.dropped[name], model.evicted[name] = 0, {}, 0

    register("central")
    for _ in range(1500):
        op = rng.random()
        if op < 0.45:
            keys = rng.sample(POOL, rng.randrange(1, len(POOL) + 1))
            values = {k: (rng.choice(AWKWARD) if rng.random() < 0.05 else
                          float(rng.randrange(1000)) if rng.random() < 0.5 else
                          rng.uniform(-1e9, 1e9)) for k in keys}
            ts = int(now[0] * 1000)
            samples = [(n, dict(lab), v) for (n, lab), v in values.items()]
            assert buf.append(ts, samples) == len(keys)
            model.cycles[next_seq] = (ts, values)
            next_seq += 1
            now[0] += 15
        elif op < 0.65 and model.settled:
            dest = rng.choice(sorted(model.settled))
            batch = buf.read(dest, rng.randrange(1, 300))
            if batch is not None:
                check_batch(batch, model)
                observe_read(batch, model)
                in_flight.append(batch)
        elif op < 0.85 and in_flight:
            batch = in_flight.pop(rng.randrange(len(in_flight)))
            if batch.destination in model.settled and batch.after_seq == model.settled[
                    batch.destination]:
                settle(buf, model, batch, rng)
        elif op < 0.88:
            register(rng.choice(["central", "store", "backup"]))
        elif op < 0.89 and len(model.settled) > 1:
            name = rng.choice(sorted(model.settled))
            buf.remove_destination(name)
            del model.settled[name]
        elif op < 0.92:
            now[0] += rng.uniform(0, 2 * max_age)  # an outage of the agent itself
        elif op < 0.95:
            buf.close()
            buf = reopen()
        assert_invariant(buf.stats())
        assert buf.stats().maintenance_failures == 0

    stats = buf.stats()
    assert stats.evicted_samples.get("size", 0) > 0 and stats.evicted_samples.get("age", 0) > 0
    for dest in sorted(model.settled):
        while (batch := buf.read(dest, 500)) is not None:
            check_batch(batch, model)
            observe_read(batch, model)
            settle(buf, model, batch, random.Random(0))
        if model.settled[dest] < next_seq - 1:  # evicted after its last read
            model.evicted[dest] += model.samples(model.settled[dest] + 1, next_seq - 1)
        final = buf.stats().destinations[dest]
        assert final.pending_samples == 0
        assert final.sent_samples == model.sent[dest]
        shipper = {r: n for r, n in final.dropped_samples.items() if r not in ("size", "age")}
        assert shipper == {r: n for r, n in model.dropped[dest].items() if n}
        assert final.dropped_samples.get("size", 0) + final.dropped_samples.get("age", 0) == \
            model.evicted[dest]
    buf.close()
    assert integrity(path) == "ok"
