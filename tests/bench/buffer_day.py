"""A deterministic simulated day of a kiosk's metrics, for the buffer benchmark.

1,000 series collected every 15 s for 24 h (5,760 cycles, 5.76 M samples),
from one fixed seed. The mix is modelled on what node_exporter 1.5 and the
business counters expose on a real kiosk. Over 15 s, about three quarters of
node_exporter's 507 series on the reference machine did not change at all;
this day is harsher than that, so the figure it gives is not flattering:

* 45 % constants: sizes, info gauges (1), thresholds; one in ten of them
  steps to a new value a few times a day (a filesystem filling, a config
  reload).
* 30 % counters with irregular increments: byte and packet counters (integer
  increments from a heavy-tailed distribution, idle in some cycles), CPU
  seconds with two decimals, disk time as milliseconds * 0.001 (the float
  noise node_exporter's Go really emits: 4504 * 0.001 = 4.5040000000000004),
  and business event counters that move a few times an hour.
* 25 % wandering gauges: memory in 4 KiB pages, load averages with two
  decimals, temperatures in millidegrees / 1000, small queue lengths, and 4 %
  random full-precision floats (harsher than real scrape durations, which
  have microsecond resolution) that no encoder can shrink much.

`day(cycles)` yields `(timestamp_ms, [(name, labels, value), ...])` per cycle;
the series list and their order are stable from cycle to cycle, as the
scheduler's are.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

SERIES = 1_000
INTERVAL_MS = 15_000
CYCLES_PER_DAY = 24 * 3600 * 1000 // INTERVAL_MS  # 5,760
START_MS = 1_795_000_000_000  # a fixed instant, so runs are comparable
SEED = 20_261_123

Sample = tuple[str, dict[str, str], float]
Step = Callable[[], float]


def _constant(rng: random.Random) -> Step:
    value = rng.choice([1.0, 0.0, 2.0, 4.0, 1500.0, float(rng.randrange(1, 10**11) * 4096),
                        round(rng.uniform(0, 100), 1)])
    steps = rng.random() < 0.1

    def step() -> float:
        nonlocal value
        if steps and rng.random() < 4 / CYCLES_PER_DAY:
            value = float(rng.randrange(1, 10**11) * 4096)
        return value
    return step


def _byte_counter(rng: random.Random) -> Step:
    total = float(rng.randrange(10**6, 10**12))
    idle = rng.uniform(0.0, 0.6)
    scale = 10 ** rng.uniform(2, 6)

    def step() -> float:
        nonlocal total
        if rng.random() >= idle:
            total += float(int(rng.lognormvariate(0, 1.2) * scale))
        return total
    return step


def _cpu_seconds(rng: random.Random) -> Step:
    centis = rng.randrange(10**4, 10**8)
    share = rng.uniform(0.0, 1.0)

    def step() -> float:
        nonlocal centis
        centis += int(1500 * share * rng.uniform(0.8, 1.2))
        return centis / 100
    return step


def _millis_over_1000(rng: random.Random) -> Step:
    millis = rng.randrange(10**3, 10**7)

    def step() -> float:
        nonlocal millis
        if rng.random() < 0.7:
            millis += int(rng.expovariate(1 / 40))
        return millis * 0.001  # as node_exporter's Go computes it, float noise included
    return step


def _event_counter(rng: random.Random) -> Step:
    count = float(rng.randrange(0, 5000))
    rate = rng.uniform(0.001, 0.2)

    def step() -> float:
        nonlocal count
        if rng.random() < rate:
            count += rng.choice([1.0, 1.0, 1.0, 2.0, 3.0])
        return count
    return step


def _memory_gauge(rng: random.Random) -> Step:
    pages = rng.randrange(10**3, 10**7)

    def step() -> float:
        nonlocal pages
        pages = max(0, pages + int(rng.gauss(0, 200)))
        return float(pages * 4096)
    return step


def _load_gauge(rng: random.Random) -> Step:
    load = rng.uniform(0, 2)

    def step() -> float:
        nonlocal load
        load = min(8.0, max(0.0, load + rng.gauss(0, 0.05)))
        return round(load, 2)
    return step


def _temperature(rng: random.Random) -> Step:
    milli = rng.randrange(30_000, 60_000, 1000)

    def step() -> float:
        nonlocal milli
        if rng.random() < 0.3:
            milli += rng.choice([-1000, 1000])
        return milli / 1000
    return step


def _queue_length(rng: random.Random) -> Step:
    length = rng.randrange(0, 5)

    def step() -> float:
        nonlocal length
        length = max(0, length + rng.choice([-1, 0, 0, 0, 1]))
        return float(length)
    return step


def _duration(rng: random.Random) -> Step:
    mean = 10 ** rng.uniform(-5, -2)

    def step() -> float:
        return rng.expovariate(1 / mean)
    return step


# (share of the series, kind, factory), shares add up to 1.
_MIX: list[tuple[float, str, Callable[[random.Random], Step]]] = [
    (0.45, "constant", _constant),
    (0.12, "bytes", _byte_counter),
    (0.08, "cpu_seconds", _cpu_seconds),
    (0.05, "time_seconds", _millis_over_1000),
    (0.05, "events", _event_counter),
    (0.10, "memory_bytes", _memory_gauge),
    (0.04, "load", _load_gauge),
    (0.03, "temperature_celsius", _temperature),
    (0.04, "queue_length", _queue_length),
    (0.04, "duration_seconds", _duration),
]


def day(cycles: int = CYCLES_PER_DAY, series: int = SERIES,
        seed: int = SEED) -> Iterator[tuple[int, list[Sample]]]:
    """Yield `cycles` collection cycles of `series` samples each, deterministically."""
    rng = random.Random(seed)
    keys: list[tuple[str, dict[str, str]]] = []
    steps: list[Step] = []
    counts = [round(share * series) for share, _, _ in _MIX]
    counts[0] += series - sum(counts)  # rounding leftovers are constants
    for count, (_, kind, factory) in zip(counts, _MIX, strict=True):
        for i in range(count):
            keys.append((f"bench_{kind}", {"instance": "kiosk-17", "n": str(i)}))
            steps.append(factory(rng))
    for cycle in range(cycles):
        # The scheduler's clock jitters by a few milliseconds around the interval.
        ts = START_MS + cycle * INTERVAL_MS + int(rng.uniform(0, 30))
        yield ts, [(name, labels, step()) for (name, labels), step in zip(keys, steps, strict=True)]


if __name__ == "__main__":  # a quick look: python -m tests.bench.buffer_day
    for ts, cycle in day(cycles=3, series=SERIES):
        print(ts, [s for s in cycle[::97]])
