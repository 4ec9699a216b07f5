"""Several requests in the air, settled in order: how a running `Shipper` drains.

One request at a time leaves the receiver idle while the agent reads and encodes
the next batch, and the agent idle while the receiver ingests (docs/benchmarks.md,
"Drain after a 24 h outage"). So the shipper's own thread, the *coordinator*:

1. reads the next batches past the ones not settled yet (`Buffer.read(after_seq=)`),
   splits each batch's series into one part per *lane* (always the same lane for a
   series, by its name and labels), encodes and compresses each part and queues it
   on its lane. It keeps doing so while requests are in flight or the far end is
   down, as long as the compressed bodies waiting stay under
   `max_prepared_size`: when the far end answers again, the next requests are
   ready (as vmagent's queue of ready-made blocks).
2. Batches are settled in order (`Buffer.commit`) as soon as every part of the
   oldest one is decided, by the thread that decided it (usually a lane, so the
   next batch goes out without waiting for the coordinator's encoding): the
   cursor only moves over a contiguous run of decided batches.

A lane is a thread with its own keep-alive connection that delivers its parts one
after the other (`Shipper.deliver_part`: retries with backoff, bisection of refused
parts). It starts a part only when its batch is among the `BATCHES_IN_FLIGHT`
oldest not settled (one: the next batch waits, encoded, for the previous one to
settle), so a kill leaves at most that many batches to be sent again. Two in
flight drained no faster in tests/bench/bench_drain.py.
Since a series goes through one lane, its samples reach the receiver in time order
even with requests in parallel: a receiver without an out-of-order window refuses
nothing because of the parallelism. When one lane gets an answer after the far end
was unreachable, the others cut their backoff short.

Memory: the prepared bodies (at most `max_prepared_size`, plus one batch) and the
batch being encoded (read as `PackedColumns`, float64 bytes: about 0.5 MB per
50,000 samples). The series of a batch are not kept once encoded: a lane whose part
is refused reads them again from the buffer (as lists) to bisect them.
"""

from __future__ import annotations

import dataclasses
import functools
import queue
import threading
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from totem_agent.buffer import Batch, SeriesSamples
from totem_agent.outputs.remote_write_client import Client
from totem_agent.outputs.remote_write_proto import compress
from totem_agent.threadnames import name_native_thread

if TYPE_CHECKING:
    from totem_agent.outputs.remote_write_shipper import Shipper

BATCHES_IN_FLIGHT = 1  # sent and not settled: what a kill can make arrive twice
# A batch smaller than this goes out whole, on the first lane: live shipping (a
# cycle or two at a time) stays one request per batch.
SPLIT_FROM = 10_000
LANE_JOIN = 5.0
MAX_REMEMBERED_SERIES = 100_000
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class Stopped(Exception):
    """stop() was called: what is not settled stays pending in the buffer."""


class _Abandoned(Exception):
    """The part belongs to a drain that ended on an error: its batch is read again."""


@dataclass
class InFlight:
    """A batch whose parts are out on the lanes (mutable fields under Pipeline._cond)."""

    batch: Batch  # without its series (kept small while waiting)
    generation: int  # of the drain that read it
    index: int  # in the order read by that drain
    parts: int
    # Sent whole after split batches, or split after a whole one: its series are on
    # other lanes than just before, so it waits until the batches before it are settled.
    barrier: bool = False
    size: int = 0  # bytes of its compressed bodies
    split: bool = False  # its series spread over the lanes (else all on the first)
    bodies: list[tuple[int, bytes]] = field(default_factory=list)  # until queued
    refused: Counter[str] = field(default_factory=Counter)
    error: BaseException | None = None


@dataclass(frozen=True)
class Part:
    """One lane's share of a batch: the request body, and how to get its series back."""

    entry: InFlight
    lane: int
    body: bytes


class Lane:
    """One connection delivering its parts in order, on its own thread."""

    def __init__(self, index: int, client: Client, pipeline: Pipeline, name: str) -> None:
        self.index = index
        self.client = client
        self.parts: queue.Queue[Part | None] = queue.Queue()
        self._pipeline = pipeline
        self.thread = threading.Thread(target=self._run, name=f"remote_write:{name}:{index}",
                                       daemon=True)

    def _run(self) -> None:
        name_native_thread()
        pipeline = self._pipeline
        while True:
            part = self.parts.get()
            if part is None:
                return
            try:
                pipeline.wait_turn(part.entry)
                refused = pipeline.shipper.deliver_part(
                    part.body, self.client, functools.partial(pipeline.series_of, part))
            except _Abandoned:
                continue
            except Stopped as stop:
                pipeline.part_done(part.entry, None, stop)
                return
            except Exception as err:  # reported by the coordinator, which retries later
                pipeline.part_done(part.entry, None, err)
                continue
            pipeline.part_done(part.entry, refused, None)

    def abandon(self) -> None:
        """Forget the parts not started (their batch will be read again)."""
        while True:
            try:
                part = self.parts.get_nowait()
            except queue.Empty:
                return
            if part is None:  # stop() was called: the lane still has to see it
                self.parts.put(None)
                return


class Pipeline:
    """The coordinator's side: read ahead, hand parts to the lanes, settle in order."""

    def __init__(self, shipper: Shipper, clients: list[Client], max_prepared_size: int,
                 batches_in_flight: int = BATCHES_IN_FLIGHT) -> None:
        self.shipper = shipper
        self.max_prepared_size = max_prepared_size
        self.batches_in_flight = batches_in_flight
        self._cond = threading.Condition()
        self._generation = 0  # drains so far: parts of an earlier one are not sent
        self._settled = 0  # batches settled by the current drain (their indexes: below)
        # Batches read by the current drain and not settled, oldest first (under _cond).
        self._window: deque[InFlight] = deque()
        # Held while settling: one thread at a time, so batches settle in order.
        self._settling = threading.Lock()
        self.lanes = [Lane(i, client, self, shipper.name) for i, client in enumerate(clients)]
        self._started = False
        self._lanes_of: dict[SeriesKey, int] = {}
        self._column_lanes_of: dict[
            int, tuple[list[SeriesKey], list[tuple[list[int] | None, list[SeriesKey]]]]] = {}

    def start(self) -> None:
        if not self._started:
            self._started = True
            for lane in self.lanes:
                lane.thread.start()

    def wake(self) -> None:
        """stop() was called: the coordinator stops waiting; lanes end their loop."""
        with self._cond:
            self._cond.notify_all()
        for lane in self.lanes:
            lane.parts.put(None)

    def join(self, wait: float = LANE_JOIN) -> None:
        for lane in self.lanes:
            if lane.thread.is_alive():
                lane.thread.join(wait)

    # -- the lanes' side ------------------------------------------------------------
    def wait_turn(self, entry: InFlight) -> None:
        """Block a lane until `entry` is among the batches allowed in flight."""
        with self._cond:
            while True:
                if self.shipper.stopping():
                    raise Stopped
                if entry.generation != self._generation:
                    raise _Abandoned
                if entry.index == self._settled or (
                        not entry.barrier
                        and entry.index < self._settled + self.batches_in_flight):
                    return
                self._cond.wait()

    def part_done(self, entry: InFlight, refused: Counter[str] | None,
                  error: BaseException | None) -> None:
        with self._cond:
            if refused:
                entry.refused += refused
            if error is not None and entry.error is None:
                entry.error = error
            entry.parts -= 1
            self._cond.notify_all()
        if entry.parts == 0:
            self.settle_decided()

    def settle_decided(self) -> None:
        """Settle the oldest batches as long as they are decided, in order. Called by the
        thread that decided one (a lane, as soon as its part is answered: the next
        batch may then go out without waiting for the coordinator) and by the
        coordinator. A batch that failed is left for the coordinator to raise."""
        with self._settling:
            while True:
                with self._cond:
                    if not self._window:
                        return
                    head = self._window[0]
                    if head.parts or head.error is not None \
                            or head.generation != self._generation:
                        return
                try:
                    self.shipper.settle(head.batch, head.refused)
                except Exception as err:  # the buffer: the coordinator raises it
                    with self._cond:
                        head.error = err
                        self._cond.notify_all()
                    return
                with self._cond:
                    self._window.popleft()
                    self._settled = head.index + 1
                    self._cond.notify_all()

    def series_of(self, part: Part) -> list[SeriesSamples]:
        """The series of a part, read again from the buffer (to bisect a refused part).
        Only what is still buffered: eviction may have taken the oldest cycles."""
        batch = part.entry.batch
        again = self.shipper.read(batch.after_seq, until_seq=batch.last_seq)
        if again is None:
            return []
        if not part.entry.split:
            return list(again.series)
        return [one for one in again.series if self.lane_of(one) == part.lane]

    def lane_of(self, series: SeriesSamples) -> int:
        """The lane of a series: the same for its whole life (and from one start of the
        agent to the next: a checksum, not Python's salted hash)."""
        return self.lane_of_key((series.name, series.labels))

    def lane_of_key(self, key: SeriesKey) -> int:
        """`lane_of` the series (name, labels)."""
        if len(self.lanes) == 1:
            return 0
        lane = self._lanes_of.get(key)
        if lane is None:
            if len(self._lanes_of) >= MAX_REMEMBERED_SERIES:
                self._lanes_of.clear()
            lane = zlib.crc32(repr(key).encode()) % len(self.lanes)
            self._lanes_of[key] = lane
        return lane

    # -- the coordinator --------------------------------------------------------------
    def drain(self) -> bool:
        """Ship until nothing is pending; True when a batch was settled.

        Raises Stopped on stop(), or the error a lane or the buffer met (the
        batches not settled stay pending and are read again by the next call)."""
        self.start()
        window = self._window
        after: int | None = None
        with self._cond:
            self._generation += 1
            self._settled = 0
            window.clear()
            self._cond.notify_all()
        try:
            while True:
                self.settle_decided()
                with self._cond:
                    if window and window[0].error is not None:
                        raise window[0].error
                    room = self._room(window)
                    last = window[-1] if window else None
                if self.shipper.stopping():
                    raise Stopped
                if room:
                    # Values as float64 bytes: encoded without a float per sample.
                    batch = self.shipper.read(after, packed=True)
                    if batch is not None:
                        after = batch.last_seq
                        entry = self._submit(batch, last)
                        with self._cond:
                            window.append(entry)
                        self._start(entry)
                        continue
                with self._cond:
                    if not window:
                        return self._settled > 0
                    if room:  # nothing more to read: wait for the oldest batch
                        while window and window[0].parts and not self.shipper.stopping():
                            self._cond.wait()
                    else:  # wait for room (a batch settled) or a decided batch
                        before = len(window)
                        while len(window) == before and window[0].parts \
                                and not self.shipper.stopping():
                            self._cond.wait()
        except BaseException:
            for lane in self.lanes:
                lane.abandon()
            raise

    def _room(self, window: deque[InFlight]) -> bool:
        """Whether to prepare another batch: always while fewer than the batches allowed
        in flight are read; beyond, while the waiting bodies stay under the bound."""
        if len(window) < self.batches_in_flight:
            return True
        waiting = sum(entry.size for entry in list(window)[self.batches_in_flight:])
        return waiting < self.max_prepared_size

    def _submit(self, batch: Batch, previous: InFlight | None) -> InFlight:
        split = len(self.lanes) > 1 and batch.samples >= SPLIT_FROM
        encoder = self.shipper.encoder
        columns = batch.columns
        if columns is not None:  # the usual batch: no object per series to go through
            lanes = self._column_lanes(columns.keys) if split else [(None, columns.keys)]
            values = columns.values
            parts = [(i, compress(encoder.encode_columns(
                keys, columns.timestamps, values if indexes is None else
                list(map(values.__getitem__, indexes))))) for i, (indexes, keys) in enumerate(lanes)
                if keys]
        else:
            groups: list[list[SeriesSamples]] = [[] for _ in self.lanes]
            if split:
                lanes_of = self._lanes_of  # lane_of, its usual case inlined: once per series
                for one in batch.series:
                    lane = lanes_of.get((one.name, one.labels))
                    groups[self.lane_of(one) if lane is None else lane].append(one)
            else:
                groups[0] = list(batch.series)
            parts = [(i, compress(encoder.encode(group))) for i, group in enumerate(groups)
                     if group]
        index = previous.index + 1 if previous else self._settled
        barrier = previous is not None and previous.split != split
        entry = InFlight(dataclasses.replace(batch, series=(), columns=None),
                         generation=self._generation,
                         index=index, parts=len(parts),
                         size=sum(len(body) for _, body in parts), split=split,
                         barrier=barrier)
        entry.bodies = parts
        return entry

    def _column_lanes(self, keys: list[SeriesKey]
                      ) -> list[tuple[list[int] | None, list[SeriesKey]]]:
        """Per lane, the indexes in `keys` of its series and their keys; remembered for
        the last few `keys` lists (a drain's batches share one: see PackedColumns)."""
        known = self._column_lanes_of.get(id(keys))
        if known is not None and known[0] is keys:
            return known[1]
        lanes: list[tuple[list[int] | None, list[SeriesKey]]] = [([], []) for _ in self.lanes]
        for index, key in enumerate(keys):
            indexes, lane_keys = lanes[self.lane_of_key(key)]
            assert indexes is not None
            indexes.append(index)
            lane_keys.append(key)
        if len(self._column_lanes_of) >= 16:
            self._column_lanes_of.clear()
        self._column_lanes_of[id(keys)] = (keys, lanes)  # holds keys: its id is not reused
        return lanes

    def _start(self, entry: InFlight) -> None:
        """Queue a batch's parts on their lanes (once it is in the window)."""
        for i, body in entry.bodies:
            self.lanes[i].parts.put(Part(entry, i, body))
        entry.bodies = []
