"""The buffer: append cycles, read them per destination, settle, evict, count.

See the package docstring for the API and docs/buffer.md for the guarantees.
One `Buffer` is safe to share between threads (one lock around its single
connection; chunk decoding happens outside the lock). Other processes may open
the same file at the same time (SQLite's locks and a busy timeout); the agent
is the one that appends.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from totem_agent.buffer import codec, maintenance
from totem_agent.buffer.maintenance import add_counter, counter
from totem_agent.buffer.model import (
    Batch,
    BufferStats,
    Labels,
    SeriesSamples,
    StaleBatchError,
    UnknownDestinationError,
)
from totem_agent.buffer.rows import (
    ROW_COLUMNS,
    Assembler,
    Catalog,
    LogRow,
    decode_columns,
    labels_key,
)
from totem_agent.buffer.schema import open_database
from totem_agent.buffer.writer import Writer, transaction

DEFAULT_CHUNK_CYCLES = 60
_CACHE_ROWS = 4

Sample = tuple[str, Mapping[str, str], float]


class Buffer:
    """The store-and-forward log. Open with `Buffer.open(...)`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, max_size_bytes: int | None,
                 max_age_seconds: float | None, clock: Callable[[], float],
                 chunk_cycles: int, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly
        self._conn = conn
        self._clock = clock
        self._lock = threading.RLock()
        self._catalog = Catalog()
        self._decoded: dict[tuple[int, int], list[codec.PackedColumn]] = {}
        self._writer = Writer(conn, path, self._catalog, clock=clock, chunk_cycles=chunk_cycles,
                              max_size_bytes=max_size_bytes, max_age_seconds=max_age_seconds)

    @classmethod
    def open(cls, path: str | os.PathLike[str], max_size_bytes: int | None = None,
             max_age_seconds: float | None = None, *, clock: Callable[[], float] = time.time,
             chunk_cycles: int = DEFAULT_CHUNK_CYCLES, readonly: bool = False) -> Buffer:
        """Open (creating if needed) the buffer at `path`. None means unbounded."""
        if chunk_cycles < 1 or chunk_cycles >= 2**16:
            raise ValueError(f"chunk_cycles must be 1..65535, not {chunk_cycles}")
        if max_size_bytes is not None and max_size_bytes <= 0:
            raise ValueError(f"max_size_bytes must be positive, not {max_size_bytes}")
        if max_age_seconds is not None and max_age_seconds <= 0:
            raise ValueError(f"max_age_seconds must be positive, not {max_age_seconds}")
        file = Path(path)
        conn = open_database(file, readonly=readonly, now_ms=int(clock() * 1000))
        return cls(conn, file, max_size_bytes=max_size_bytes, max_age_seconds=max_age_seconds,
                   clock=clock, chunk_cycles=chunk_cycles, readonly=readonly)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Buffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _writable(self) -> None:
        if self.readonly:
            raise PermissionError(f"{self.path}: buffer opened read-only")

    # -- append ---------------------------------------------------------------

    def append(self, timestamp_ms: int, samples: Iterable[Sample]) -> int:
        """Append one collection cycle; returns the samples stored (0 if the disk is full).

        A series given twice keeps its last value. A full disk (SQLITE_FULL or
        ENOSPC) loses this cycle: counted in `lost_cycles{disk_full}`, logged
        once per episode; any other error is raised.
        """
        self._writable()
        cycle: dict[tuple[str, Labels], float] = {}
        for name, labels, value in samples:
            cycle[(name, labels_key(labels))] = float(value)
        return self.append_cycle(timestamp_ms, tuple(cycle), list(cycle.values()))

    def append_cycle(self, timestamp_ms: int, keys: Sequence[tuple[str, Labels]],
                     values: Sequence[float]) -> int:
        """`append` for a caller that keys its samples itself: `keys[i]` is
        (name, labels sorted by name, as `SeriesSamples.labels`), distinct
        (ValueError otherwise), and `values[i]` its float value.

        Handing back the same `keys` tuple as the previous cycle (when the series
        did not change) spares the buffer looking up any of them.
        """
        self._writable()
        if not keys:
            return 0
        with self._lock:
            return self._writer.append(int(timestamp_ms), keys, values)

    @property
    def maintenance_failures(self) -> int:
        """Maintenance steps (sealing, eviction) that failed other than by a full disk."""
        return self._writer.maintenance_failures

    @property
    def max_size_bytes(self) -> int | None:
        return self._writer.max_size_bytes

    @property
    def max_age_seconds(self) -> float | None:
        return self._writer.max_age_seconds

    @property
    def chunk_cycles(self) -> int:
        return self._writer.chunk_cycles

    def _transaction(self, body: Callable[[], Any]) -> Any:
        return transaction(self._conn, body)

    # -- destinations ---------------------------------------------------------

    def register_destination(self, name: str, *, from_oldest: bool = True) -> bool:
        """Add a destination (True) or leave an existing one as it is (False).

        A new destination answers for what is still buffered (`from_oldest`)
        or only for cycles appended from now on.
        """
        self._writable()
        if not name:
            raise ValueError("a destination needs a name")
        with self._lock:
            return bool(self._transaction(lambda: self._register(name, from_oldest)))

    def _register(self, name: str, from_oldest: bool) -> bool:
        conn = self._conn
        if conn.execute("SELECT 1 FROM destinations WHERE name = ?", (name,)).fetchone():
            return False
        appended = counter(conn, "appended_samples")
        cursor = counter(conn, "appended_cycles")
        pending = 0
        oldest, buffered = conn.execute("SELECT min(first_seq), sum(samples) FROM log").fetchone()
        if from_oldest and oldest is not None:
            cursor, pending = oldest - 1, buffered
        conn.execute("INSERT INTO destinations VALUES (?, ?, ?, ?, NULL)",
                     (name, cursor, appended - pending, self._now_ms()))
        return True

    def remove_destination(self, name: str) -> None:
        """Forget a destination, its cursor and its counters; what only it held may go."""
        self._writable()
        with self._lock:
            def body() -> None:
                self._conn.execute("DELETE FROM destinations WHERE name = ?", (name,))
                self._conn.execute("DELETE FROM counters WHERE destination = ?", (name,))
                maintenance.delete_settled(self._conn)
            self._transaction(body)

    def destinations(self) -> list[str]:
        with self._lock:
            return [n for (n,) in self._conn.execute("SELECT name FROM destinations ORDER BY name")]

    # -- read and settle --------------------------------------------------------

    def read(self, destination: str, max_samples: int, after_seq: int | None = None,
             until_seq: int | None = None, *, packed: bool = False) -> Batch | None:
        """The next whole cycles after the destination's cursor, up to `max_samples`.

        Always at least one cycle (so one cycle larger than `max_samples` still
        goes out). None when nothing is pending. Reading does not move the
        cursor: the same batch comes back until it is settled.

        `after_seq` reads ahead, past batches not settled yet (a shipper with
        requests in flight): the cycles after `after_seq`, or after the cursor if
        that is further (eviction moved it). Such batches settle in order.
        `until_seq` stops at that cycle (to read a batch again).
        `packed` gives the batch as `Batch.columns` (float64 bytes, no object per
        series or sample) when its series have a value in every cycle, else each
        series' values as `codec.PackedValues`: what the remote_write encoder
        copies fastest.
        """
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")  # one snapshot for cursor, rows, layouts and series
            try:
                row = conn.execute("SELECT cursor FROM destinations WHERE name = ?",
                                   (destination,)).fetchone()
                if row is None:
                    raise UnknownDestinationError(destination)
                cursor = int(row[0])
                if after_seq is not None:
                    cursor = max(cursor, after_seq)
                picked, counts = self._pick(cursor, max_samples, until_seq)
                self._catalog.load(conn, {r.layout_id for r, _ in picked})
            finally:
                conn.execute("COMMIT")
        if not picked:
            return None
        last = cursor + len(counts)
        assembler = Assembler(self._catalog)
        times: list[int] = []
        for logrow, data in picked:
            assembler.add(logrow, self._decode(logrow, data), cursor + 1, last)
            times += logrow.timestamps()[max(cursor + 1 - logrow.first_seq, 0):
                                         last - logrow.first_seq + 1]
        columns = assembler.columns() if packed else None
        return Batch(destination, cursor, last, sum(counts), min(times), max(times),
                     tuple(counts), assembler.result(packed) if columns is None else (),
                     columns)

    def _pick(self, cursor: int, max_samples: int, until_seq: int | None = None
              ) -> tuple[list[tuple[LogRow, bytes]], list[int]]:
        picked: list[tuple[LogRow, bytes]] = []
        counts: list[int] = []
        total = 0
        rows = self._conn.execute(f"SELECT {ROW_COLUMNS}, data FROM log WHERE last_seq > ? "
                                  "ORDER BY first_seq", (cursor,))
        try:
            for *fields, data in rows:
                logrow = LogRow(*fields)
                if logrow.first_seq != cursor + len(counts) + 1 and logrow.first_seq > cursor:
                    raise AssertionError(f"buffer log has a gap before seq {logrow.first_seq}")
                taken = False
                for n in logrow.counts()[max(cursor + len(counts) + 1 - logrow.first_seq, 0):]:
                    if (counts and total + n > max_samples) or (
                            until_seq is not None and cursor + len(counts) >= until_seq):
                        break
                    counts.append(n)
                    total += n
                    taken = True
                if taken:
                    picked.append((logrow, data))
                if cursor + len(counts) < logrow.last_seq:
                    break
        finally:
            rows.close()
        return picked, counts

    def _decode(self, row: LogRow, data: bytes) -> list[codec.PackedColumn]:
        # A shipper reads a chunk in several batches: decode it once. Chunks never
        # change and sequence numbers are never reused, so the key is enough.
        key = (row.first_seq, row.last_seq)
        with self._lock:
            columns = self._decoded.get(key)
        if columns is None:
            columns = decode_columns(row.kind, data)
            with self._lock:
                while len(self._decoded) >= _CACHE_ROWS:
                    self._decoded.pop(next(iter(self._decoded)))
                self._decoded[key] = columns
        return columns

    def ack(self, destination: str, batch: Batch) -> None:
        """The far end accepted the whole batch: count it as sent, advance the cursor."""
        self.commit(destination, batch)

    def drop(self, destination: str, batch: Batch, reason: str) -> None:
        """The far end refused the whole batch for good: count it as dropped, advance."""
        self.commit(destination, batch, {reason: batch.samples})

    def commit(self, destination: str, batch: Batch,
               dropped: Mapping[str, int] | None = None) -> None:
        """Settle a batch: `dropped` samples by reason, the rest sent; advance the cursor.

        If eviction took the batch's oldest cycles while it was in flight, those
        were already counted as dropped for this destination; they are taken off
        the sent count first. A batch already settled is ignored.
        """
        self._writable()
        if batch.destination != destination:
            raise ValueError(f"batch was read for {batch.destination!r}, not {destination!r}")
        drops = {reason: int(n) for reason, n in (dropped or {}).items() if n}
        if any(n < 0 for n in drops.values()) or any(not r for r in drops):
            raise ValueError(f"dropped counts must be positive, with a reason: {drops}")
        if sum(drops.values()) > batch.samples:
            raise ValueError(f"dropped {sum(drops.values())} samples of a batch of {batch.samples}")
        with self._lock:
            self._transaction(lambda: self._settle(batch, drops))

    def _settle(self, batch: Batch, drops: dict[str, int]) -> None:
        conn = self._conn
        row = conn.execute("SELECT cursor FROM destinations WHERE name = ?",
                           (batch.destination,)).fetchone()
        if row is None:
            raise UnknownDestinationError(batch.destination)
        cursor = int(row[0])
        if cursor >= batch.last_seq:
            return
        if cursor < batch.after_seq:
            raise StaleBatchError(f"batch starts after cycle {batch.after_seq}, but "
                                  f"{batch.destination!r} is at {cursor}")
        settled = sum(batch.cycle_samples[:cursor - batch.after_seq])
        sent = batch.samples - sum(drops.values())
        for bucket in ("sent", *sorted(drops)):
            have = sent if bucket == "sent" else drops[bucket]
            take = min(settled, have)
            settled -= take
            if bucket == "sent":
                sent -= take
            else:
                drops[bucket] -= take
        add_counter(conn, "sent_samples", sent, batch.destination)
        for reason, n in drops.items():
            add_counter(conn, "dropped_samples", n, batch.destination, reason)
        conn.execute("UPDATE destinations SET cursor = ?, last_commit_ms = ? WHERE name = ?",
                     (batch.last_seq, self._now_ms(), batch.destination))
        maintenance.delete_settled(conn)

    # -- inspection -------------------------------------------------------------

    def stats(self) -> BufferStats:
        """Read in one snapshot; after an append of this buffer's only, without
        querying the counts again (buffer/stats.py, StatsCache)."""
        with self._lock:
            return self._writer.stats()

    def scan(self, since_ms: int | None = None,
             until_ms: int | None = None) -> Iterator[tuple[SeriesSamples, ...]]:
        """Everything buffered, row by row, oldest first (for export); no cursor moves."""
        after = 0
        while True:
            with self._lock:
                self._conn.execute("BEGIN")
                try:
                    found = self._conn.execute(
                        f"SELECT {ROW_COLUMNS}, data FROM log WHERE first_seq > ? "
                        "ORDER BY first_seq LIMIT 1", (after,)).fetchone()
                    if found is None:
                        return
                    logrow = LogRow(*found[:-1])
                    self._catalog.load(self._conn, [logrow.layout_id])
                finally:
                    self._conn.execute("COMMIT")
            after = logrow.first_seq
            if ((since_ms is not None and logrow.last_ts < since_ms)
                    or (until_ms is not None and logrow.first_ts >= until_ms)):
                continue
            assembler = Assembler(self._catalog)
            assembler.add(logrow, decode_columns(logrow.kind, found[-1]), 0, logrow.last_seq)
            picked = (_between(s, since_ms, until_ms) for s in assembler.result())
            yield tuple(s for s in picked if s.timestamps)

    def checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it (shutdown, benchmarks)."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _between(series: SeriesSamples, since_ms: int | None, until_ms: int | None) -> SeriesSamples:
    if since_ms is None and until_ms is None:
        return series
    lo = since_ms if since_ms is not None else -(2**63)
    hi = until_ms if until_ms is not None else 2**63
    keep = [i for i, t in enumerate(series.timestamps) if lo <= t < hi]
    return SeriesSamples(series.name, series.labels, [series.timestamps[i] for i in keep],
                         [series.values[i] for i in keep])
