"""Rows of the log: their fields, layouts, and turning decoded rows into series.

Pure helpers shared by the store and its maintenance; the only SQL here reads
series and layouts, which are immutable once written (ids are never reused).
"""

from __future__ import annotations

import array
import bisect
import hashlib
import itertools
import json
import sqlite3
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from totem_agent.buffer import codec
from totem_agent.buffer.model import Labels, SeriesSamples

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
    return hashlib.blake2b(raw, digest_size=16).digest(), zlib.compress(deltas, 6)


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


def decode_columns(kind: int, data: bytes) -> list[codec.Column]:
    if kind == CYCLE:
        return [(None, [value]) for value in codec.decode_cycle(data)]
    return codec.decode_chunk(data)[1]


class Assembler:
    """Gathers the cycles of several rows into one list of samples per series.

    A series present in every cycle gathered (the usual case) gets the batch's
    timestamps list itself, shared with the other such series: consumers must not
    mutate a `SeriesSamples`' lists (the remote_write encoder recognises the shared
    list and encodes its timestamps once per request).
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        # (layout, columns, timestamps of the cycles taken, first and end cycle index)
        self._parts: list[tuple[list[int], Sequence[codec.Column], list[int], int, int]] = []

    def add(self, row: LogRow, columns: Sequence[codec.Column], lo: int, hi: int) -> None:
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

    def result(self) -> tuple[SeriesSamples, ...]:
        parts = self._parts
        if parts and all(part[0] is parts[0][0] for part in parts) and not any(
                present for part in parts for present, _ in part[1]):
            return self._dense(parts)
        times = parts[0][2] if len(parts) == 1 else [t for part in parts for t in part[2]]
        # sid -> [timestamps, values]; timestamps None while the series has every
        # cycle so far (its timestamps are then times[:len(values)]).
        gathered: dict[int, list[Any]] = {}
        offset = 0
        for layout, columns, part_times, a, b in parts:
            for sid, (present, values) in zip(layout, columns, strict=True):
                acc = gathered.get(sid)
                if present is None:
                    if acc is None and offset == 0:
                        gathered[sid] = [None, values[a:b]]
                        continue
                    if acc is not None and acc[0] is None and len(acc[1]) == offset:
                        acc[1] += values[a:b]
                        continue
                    ts, vs = part_times, values[a:b]
                else:
                    i, j = bisect.bisect_left(present, a), bisect.bisect_left(present, b)
                    if i == j:
                        continue
                    ts, vs = [part_times[k - a] for k in present[i:j]], values[i:j]
                if acc is None:
                    gathered[sid] = [list(ts), vs]
                    continue
                if acc[0] is None:
                    acc[0] = times[:len(acc[1])]
                acc[0] += ts
                acc[1] += vs
            offset += b - a
        names = self._catalog.series
        total = len(times)
        out = []
        for sid, (ts, vs) in gathered.items():
            if ts is None:
                ts = times if len(vs) == total else times[:len(vs)]
            name, labels = names[sid]
            out.append(SeriesSamples(name, labels, ts, vs))
        return tuple(out)

    def _dense(self, parts: list[tuple[list[int], Sequence[codec.Column], list[int], int, int]]
               ) -> tuple[SeriesSamples, ...]:
        """`result` when every part has the same series, each in every cycle (the usual
        batch): no bookkeeping per series, one shared timestamps list."""
        names = self._catalog.series
        layout = parts[0][0]
        if len(parts) == 1:
            _, columns, times, a, b = parts[0]
            return tuple([SeriesSamples(*names[sid], times, values[a:b])
                          for sid, (_, values) in zip(layout, columns, strict=True)])
        times = [t for part in parts for t in part[2]]
        if len(parts) == 2:  # a batch across two chunks: the usual case while draining
            (_, one, _, a1, b1), (_, two, _, a2, b2) = parts
            return tuple([SeriesSamples(*names[sid], times, v1[a1:b1] + v2[a2:b2])
                          for sid, (_, v1), (_, v2) in zip(layout, one, two, strict=True)])
        out = []
        for i, sid in enumerate(layout):
            values = []
            for _, columns, _, a, b in parts:
                values += columns[i][1][a:b]
            out.append(SeriesSamples(*names[sid], times, values))
        return tuple(out)
