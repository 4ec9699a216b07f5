"""The SQLite store-and-forward log of totem-agent (`totem_agent.buffer`).

Every collection cycle is appended, with its timestamp, to one SQLite database;
each destination (a remote_write endpoint) reads from its own cursor and
settles what its far end answered. Format: `schema`; value encodings: `codec`;
guarantees and their costs: docs/buffer.md.

API::

    buf = Buffer.open(path, max_size_bytes=256 << 20, max_age_seconds=7 * 86400,
                      clock=time.time)              # None = unbounded
    buf.append(timestamp_ms, [(name, {"label": "v"}, 1.0), ...]) -> int
        # samples stored; 0 when the disk is full (counted in lost_cycles{disk_full})
    buf.append_cycle(timestamp_ms, keys, values) -> int
        # the same, keyed by the caller: keys[i] = (name, sorted label pairs), distinct;
        # the same keys tuple as the previous cycle skips every series lookup
    buf.register_destination("central", from_oldest=True) -> bool   # idempotent
    buf.remove_destination("central")
    batch = buf.read("central", max_samples=10_000)  # Batch | None
        # whole cycles after the cursor, oldest first; batch.series: one
        # SeriesSamples(name, labels, timestamps, values) per series, in time order
    buf.ack("central", batch)                        # far end took it all: sent
    buf.drop("central", batch, reason="rejected")    # far end refused it all
    buf.commit("central", batch, dropped={"too_old": 12})   # the rest is sent
    buf.stats() -> BufferStats                       # totals + DestinationStats per destination
    buf.scan(since_ms, until_ms)                     # every buffered row, for export
    buf.checkpoint(); buf.close()

Modules: `store` (Buffer: open, destinations, read, settle, stats), `writer`
(append, disk-full accounting, maintenance after each append), `maintenance`
(seal, evict, delete, garbage), `codec` (value encodings), `rows` (log rows,
layouts, assembling batches), `schema` (tables, PRAGMAs, format version),
`stats`, `model` (the dataclasses handed out).

Invariant, per destination, persisted across restarts:
`sent + pending + dropped == appended` (dropped by reason: the shipper's
reasons, plus `size` and `age` for eviction).
"""

from totem_agent.buffer.model import (
    DISK_FULL,
    EVICTED_AGE,
    EVICTED_SIZE,
    Batch,
    BufferStats,
    DestinationStats,
    SeriesSamples,
    StaleBatchError,
    UnknownDestinationError,
)
from totem_agent.buffer.schema import FORMAT_VERSION, BufferFormatError
from totem_agent.buffer.store import DEFAULT_CHUNK_CYCLES, Buffer
from totem_agent.buffer.writer import is_disk_full

__all__ = [
    "DEFAULT_CHUNK_CYCLES",
    "DISK_FULL",
    "EVICTED_AGE",
    "EVICTED_SIZE",
    "FORMAT_VERSION",
    "Batch",
    "Buffer",
    "BufferFormatError",
    "BufferStats",
    "DestinationStats",
    "SeriesSamples",
    "StaleBatchError",
    "UnknownDestinationError",
    "is_disk_full",
]
