"""Child processes of the kill -9 test: one appends cycles, one ships and settles.

    python -m tests.unit.buffer.crash_child append PATH SERIES
    python -m tests.unit.buffer.crash_child ship PATH SEED

The appender prints the seq of each cycle on stdout (flushed) once `append`
has returned, so the parent knows which cycles must survive the kill.
"""

from __future__ import annotations

import random
import sys
import time

from totem_agent.buffer import Buffer

from .helpers import cycle, ts_of

CHUNK_CYCLES = 5


def append(path: str, series: int) -> None:
    with Buffer.open(path, chunk_cycles=CHUNK_CYCLES) as buf:
        seq = buf.stats().appended_cycles + 1
        while True:
            if buf.append(ts_of(seq), cycle(seq, series)) != series:
                raise SystemExit(f"append of cycle {seq} stored less than {series} samples")
            sys.stdout.write(f"{seq}\n")
            sys.stdout.flush()
            seq += 1


def ship(path: str, seed: int) -> None:
    rng = random.Random(seed)
    with Buffer.open(path, chunk_cycles=CHUNK_CYCLES) as buf:
        while True:
            batch = buf.read("ship", rng.randrange(1, 400))
            if batch is None:
                time.sleep(0.001)  # nothing pending: wait for the appender
                continue
            choice = rng.random()
            if choice < 0.7:
                buf.ack("ship", batch)
            elif choice < 0.85:
                buf.drop("ship", batch, "rejected")
            else:
                buf.commit("ship", batch, {"too_old": rng.randrange(batch.samples + 1)})


if __name__ == "__main__":
    if sys.argv[1] == "append":
        append(sys.argv[2], int(sys.argv[3]))
    else:
        ship(sys.argv[2], int(sys.argv[3]))
