"""Rows of the log: their fields, layouts, and turning decoded rows into series.

Pure helpers shared by the store and its maintenance; the only SQL here reads
series and layouts, which are immutable once written (ids are never reused).
"""

from __future__ import annotations

import array
import bisect
import itertools
import json
import operator
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from totem_agent.buffer import codec
from totem_agent.buffer.model import Labels, PackedColumns, SeriesSamples

try:
    # CPython's BLAKE2, the very class hashlib.blake2b is (hashlib never takes BLAKE2
    # from OpenSSL), so the digests are identical. `import hashlib` would also load
    # _hashlib and with it OpenSSL's libcrypto (~3.6 MB of RSS) for nothing here.
    from _blake2 import blake2b
except ImportError:  # an interpreter built without _blake2
    from hashlib import blake2b

CYCLE, CHUNK = 0, 1

# The columns every query on `log` selects, in `LogRow` order (data last, so
# that SQLite reads a big blob's overflow pages only when asked for it).
ROW_COLUMNS = "first_seq, last_seq, first_ts, last_ts, samples, kind, layout_id, timestamps, counts"


@dataclass(frozen=True)
class LogRow:
    first_seq: int
    last_seq: int
    first_ts: int
    last_ts: int
    samples: int
    kind: int
    layout_id: int
    timestamps_blob: bytes | None
    counts_blob: bytes | None

    def timestamps(self) -> list[int]:
        if self.kind == CYCLE or self.timestamps_blob is None:
            return [self.first_ts]
        return codec.from_le("q", self.timestamps_blob).tolist()

    def counts(self) -> list[int]:
        if self.kind == CYCLE or self.counts_blob is None:
            return [self.samples]
        return codec.from_le("i", self.counts_blob).tolist()

    def samples_after(self, seq: int) -> int:
        """Samples of this row's cycles after `seq`."""
        if seq < self.first_seq:
            return self.samples
        if seq >= self.last_seq:
            return 0
        return sum(self.counts()[seq - self.first_seq + 1:])

    def timestamp_of(self, seq: int) -> int:
        return self.timestamps()[seq - self.first_seq]


def int_array(typecode: str, values: Iterable[int]) -> bytes:
    return codec.to_le(array.array(typecode, values))


def encode_layout(series_ids: Sequence[int]) -> tuple[bytes, bytes]:
    """(digest, blob) of an ordered list of series ids."""
    raw = int_array("q", series_ids)
    deltas = int_array("q", [series_ids[0], *map(int.__sub__, series_ids[1:], series_ids)])
    return blake2b(raw, digest_size=16).digest(), zlib.compress(deltas, 6)


def decode_layout(blob: bytes) -> list[int]:
    return list(itertools.accumulate(codec.from_le("q", zlib.decompress(blob)).tolist()))


def labels_key(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def labels_json(labels: Labels) -> str:
    return json.dumps(dict(labels), separators=(",", ":"), ensure_ascii=False)


class Catalog:
    """Cached reads of series and layouts (safe to cache: never changed, ids never reused)."""

    def __init__(self) -> None:
        self.layouts: dict[int, list[int]] = {}
        self.series: dict[int, tuple[str, Labels]] = {}
        self._keys: dict[int, list[tuple[str, Labels]]] = {}

    def keys(self, layout_id: int) -> list[tuple[str, Labels]]:
        """(name, labels) of each series of a loaded layout: one list per layout, kept."""
        keys = self._keys.get(layout_id)
        if keys is None:
            keys = self._keys[layout_id] = [self.series[sid] for sid in self.layouts[layout_id]]
        return keys

    def load(self, conn: sqlite3.Connection, layout_ids: Iterable[int],
             series: bool = True) -> None:
        """Fetch what is missing for these layouts. Call inside the read's transaction."""
        wanted = set(layout_ids)
        for layout_id in wanted - self.layouts.keys():
            row = conn.execute("SELECT series_ids FROM layouts WHERE id = ?",
                               (layout_id,)).fetchone()
            if row is None:
                raise LookupError(f"buffer log refers to missing layout {layout_id}")
            self.layouts[layout_id] = decode_layout(row[0])
        if not series:
            return
        missing_series: set[int] = set()
        for layout_id in wanted:
            missing_series.update(self.layouts[layout_id])
        missing_series -= self.series.keys()
        ids = sorted(missing_series)
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            for sid, name, labels in conn.execute(
                    f"SELECT id, name, labels FROM series WHERE id IN ({marks})", part):
                self.series[sid] = (name, tuple(sorted(json.loads(labels).items())))
        if not missing_series <= self.series.keys():
            lost = sorted(missing_series - self.series.keys())[:5]
            raise LookupError(f"buffer layouts refer to missing series {lost}")


def decode_columns(kind: int, data: bytes) -> list[codec.PackedColumn]:
    """The row's columns, values as little-endian float64 bytes (what `Assembler` takes)."""
    if kind == CYCLE:
        raw = codec.decode_cycle_packed(data)
        return [(None, raw[i:i + 8]) for i in range(0, len(raw), 8)]
    return codec.decode_chunk_packed(data)[1]


_PRESENT = operator.itemgetter(0)  # of a column: its presence (None: in every cycle)

# Cycles of a row taken by a batch: (layout, columns, timestamps of the cycles taken,
# first and end cycle index).
_Part = tuple[list[int], Sequence[codec.PackedColumn], list[int], int, int]


class Assembler:
    """Gathers the cycles of several rows into one list of samples per series.

    A series present in every cycle gathered (the usual case) gets the batch's
    timestamps list itself, shared with the other such series: consumers must not
    mutate a `SeriesSamples`' lists (the remote_write encoder recognises the shared
    list and encodes its timestamps once per request).

    Columns come as float64 bytes and are cut as bytes (8 per value); `result`
    makes lists of floats of them, or with `packed` hands the bytes out as
    `codec.PackedValues` (no float object per sample: the drain's path).
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._parts: list[_Part] = []
        self._layout_ids: list[int] = []

    def add(self, row: LogRow, columns: Sequence[codec.PackedColumn], lo: int, hi: int) -> None:
        """Add cycles with lo <= seq <= hi of a decoded row."""
        a = max(lo, row.first_seq) - row.first_seq
        b = min(hi, row.last_seq) - row.first_seq + 1
        if a >= b:
            return
        layout = self._catalog.layouts[row.layout_id]
        if len(layout) != len(columns):
            raise codec.CodecError(f"log row {row.first_seq}: {len(columns)} columns for "
                                   f"a layout of {len(layout)} series")
        self._parts.append((layout, columns, row.timestamps()[a:b], a, b))
        self._layout_ids.append(row.layout_id)

    def columns(self) -> PackedColumns | None:
        """The cycles gathered as `PackedColumns`, if every part has the same series,
        each in every cycle (the usual batch); else None."""
        parts = self._parts
        # map over a C function: a drain's batch has a thousand columns or so.
        if not parts or any(part[0] is not parts[0][0] for part in parts) or any(
                any(map(_PRESENT, part[1])) for part in parts):
            return None
        keys = self._catalog.keys(self._layout_ids[0])
        if len(parts) == 1:
            _, columns, times, a, b = parts[0]
            a, b = 8 * a, 8 * b
            return PackedColumns(keys, times, [raw[a:b] for _, raw in columns])
        times = [t for part in parts for t in part[2]]
        if len(parts) == 2:  # a batch across two chunks: the usual case while draining
            (_, one, _, a1, b1), (_, two, _, a2, b2) = parts
            a1, b1, a2, b2 = 8 * a1, 8 * b1, 8 * a2, 8 * b2
            return PackedColumns(keys, times, [r1[a1:b1] + r2[a2:b2]
                                               for (_, r1), (_, r2) in zip(one, two, strict=True)])
        return PackedColumns(keys, times, [
            b"".join([columns[i][1][8 * a:8 * b] for _, columns, _, a, b in parts])
            for i in range(len(keys))])

    def result(self, packed: bool = False) -> tuple[SeriesSamples, ...]:
        wrap: Callable[[bytes], Sequence[float]] = (
            codec.PackedValues if packed else codec.unpack_values)
        parts = self._parts
        if parts and all(part[0] is parts[0][0] for part in parts) and not any(
                any(map(_PRESENT, part[1])) for part in parts):
            return self._dense(parts, wrap)
        times = parts[0][2] if len(parts) == 1 else [t for part in parts for t in part[2]]
        # sid -> [timestamps, pieces of values (bytes), count]; timestamps None while
        # the series has every cycle so far (its timestamps are then times[:count]).
        gathered: dict[int, list[Any]] = {}
        offset = 0
        for layout, columns, part_times, a, b in parts:
            for sid, (present, raw) in zip(layout, columns, strict=True):
                acc = gathered.get(sid)
                if present is None:
                    piece = raw[8 * a:8 * b]
                    if acc is None and offset == 0:
                        gathered[sid] = [None, [piece], b - a]
                        continue
                    if acc is not None and acc[0] is None and acc[2] == offset:
                        acc[1].append(piece)
                        acc[2] += b - a
                        continue
                    ts = part_times
                else:
                    i, j = bisect.bisect_left(present, a), bisect.bisect_left(present, b)
                    if i == j:
                        continue
                    ts, piece = [part_times[k - a] for k in present[i:j]], raw[8 * i:8 * j]
                if acc is None:
                    gathered[sid] = [list(ts), [piece], len(ts)]
                    continue
                if acc[0] is None:
                    acc[0] = times[:acc[2]]
                acc[0] += ts
                acc[1].append(piece)
                acc[2] += len(ts)
            offset += b - a
        names = self._catalog.series
        total = len(times)
        out = []
        for sid, (ts, pieces, count) in gathered.items():
            if ts is None:
                ts = times if count == total else times[:count]
            name, labels = names[sid]
            out.append(SeriesSamples(name, labels, ts, wrap(b"".join(pieces))))
        return tuple(out)

    def _dense(self, parts: list[_Part], wrap: Callable[[bytes], Sequence[float]]
               ) -> tuple[SeriesSamples, ...]:
        """`result` when every part has the same series, each in every cycle (the usual
        batch): no bookkeeping per series, one shared timestamps list."""
        names = self._catalog.series
        layout = parts[0][0]
        if len(parts) == 1:
            _, columns, times, a, b = parts[0]
            a, b = 8 * a, 8 * b
            return tuple([SeriesSamples(*names[sid], times, wrap(raw[a:b]))
                          for sid, (_, raw) in zip(layout, columns, strict=True)])
        times = [t for part in parts for t in part[2]]
        if len(parts) == 2:  # a batch across two chunks: the usual case while draining
            (_, one, _, a1, b1), (_, two, _, a2, b2) = parts
            a1, b1, a2, b2 = 8 * a1, 8 * b1, 8 * a2, 8 * b2
            return tuple([SeriesSamples(*names[sid], times, wrap(r1[a1:b1] + r2[a2:b2]))
                          for sid, (_, r1), (_, r2) in zip(layout, one, two, strict=True)])
        out = []
        for i, sid in enumerate(layout):
            raw = b"".join([columns[i][1][8 * a:8 * b] for _, columns, _, a, b in parts])
            out.append(SeriesSamples(*names[sid], times, wrap(raw)))
        return tuple(out)
