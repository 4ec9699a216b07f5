"""The body of a remote_write request: a `prometheus.WriteRequest`, snappy-compressed.

Hand-written protobuf encoding of the four messages remote_write 1.0 needs
(prompb/remote.proto and types.proto), so the agent needs no protobuf runtime:

    WriteRequest { repeated TimeSeries timeseries = 1; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }

The output is byte-identical to protobuf's own `SerializeToString()` (proto3:
zero-valued scalars and empty strings are left out; tests/unit prove it against
the protobuf runtime). Labels are sorted by name with `__name__` first, as
newer receivers require. Each series' samples go into one TimeSeries, in time
order (one TimeSeries per sample is four times slower to send and receive).
Samples are packed with one `struct` call per series, the timestamps' tags and
varints prepared once per request (the series of a batch share them), a constant
series once per value and request (`_SampleLayout`). Values that come as float64
bytes (the buffer's drain: `PackedColumns`, `PackedValues`) skip floats
altogether: the samples of all the series of a request are written at once into
a template of their fixed bytes, a byte plane at a time (`_SampleLayout.fill`),
and the TimeSeries heads of the same series are kept from batch to batch.

Compression is snappy's *block* format (`cramjam.snappy.compress_raw`): the
framed format (`cramjam.snappy.compress`) is refused by every receiver.
"""

from __future__ import annotations

import array
import math
import struct
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from totem_agent.buffer import SeriesSamples, codec
from totem_agent.buffer.codec import PackedValues
from totem_agent.buffer.model import Labels

_DOUBLE = struct.Struct("<d")
_ZERO_DOUBLE = bytes(8)
# Tags (field number << 3 | wire type).
_TAG_TIMESERIES = b"\x0a"  # WriteRequest.timeseries, length-delimited
_TAG_LABELS = b"\x0a"      # TimeSeries.labels
_TAG_SAMPLES = b"\x12"     # TimeSeries.samples
_TAG_NAME = b"\x0a"        # Label.name
_TAG_VALUE = b"\x12"       # Label.value
_TAG_SAMPLE_VALUE = b"\x09"  # Sample.value, 64-bit
_TAG_TIMESTAMP = b"\x10"   # Sample.timestamp, varint


def varint(n: int) -> bytes:
    """Protobuf base-128 varint; a negative int64 is its 64-bit two's complement."""
    if 0 <= n < _SMALL:
        return _VARINTS[n]
    return _varint(n)


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Lengths of series and samples: looked up rather than computed.
_SMALL = 1 << 14
_VARINTS = [_varint(n) for n in range(_SMALL)]


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def encode_labels(name: str, labels: Iterable[tuple[str, str]]) -> bytes:
    """The TimeSeries.labels fields of one series: `__name__` first, the rest by name."""
    out = []
    for key, value in [("__name__", name), *sorted(labels)]:
        body = b""
        if key:
            body += _field(_TAG_NAME, key.encode("utf-8"))
        if value:
            body += _field(_TAG_VALUE, value.encode("utf-8"))
        out.append(_field(_TAG_LABELS, body))
    return b"".join(out)


def encode_sample(timestamp_ms: int, value: float) -> bytes:
    """One TimeSeries.samples field."""
    packed = _DOUBLE.pack(value)
    body = b""
    if packed != _ZERO_DOUBLE:  # proto3 leaves out 0.0 (but keeps -0.0 and NaN)
        body = _TAG_SAMPLE_VALUE + packed
    if timestamp_ms:
        body += _TAG_TIMESTAMP + varint(timestamp_ms)
    return _TAG_SAMPLES + varint(len(body)) + body


class _SampleLayout:
    """How to encode the samples of a series taken at given timestamps, fast.

    The series of one batch share their cycles' timestamps, so per request each
    distinct list of timestamps gets a `struct.Struct` holding every tag, length and
    timestamp varint as fixed fields, and a series' values drop into its odd slots:
    about five times faster than joining the samples one by one. A constant series
    is packed once per value and request (many series sit at 1, or 0.0: error
    counters); only a series mixing zeros and other values, or holding -0.0, goes
    sample by sample (proto3 leaves a 0.0 value out, but keeps -0.0).
    """

    __slots__ = ("_block", "_constants", "_fixed", "_packer", "_strides", "_tails", "_zero_bytes",
                 "_zeros", "record")

    def __init__(self, timestamps: Sequence[int]) -> None:
        # A zero timestamp is left out too (proto3), hence the empty tail.
        self._tails = [_TAG_TIMESTAMP + varint(t) if t else b"" for t in timestamps]
        # `_pack`'s struct: made on first use (the drain's packed values never need it).
        self._packer: struct.Struct | None = None
        self._fixed: list[Any] = []
        self._zeros = b"".join(_TAG_SAMPLES + bytes((len(tail),)) + tail for tail in self._tails)
        self._zero_bytes = bytes(8 * len(self._tails))
        self._constants: dict[float, bytes] = {}
        # Every sample the same size (its timestamp's varint as long as the others', the
        # usual case): `fill` writes the values of many series at once, 8 slice
        # assignments in all. 0 when the sizes differ.
        sizes = {len(tail) for tail in self._tails}
        self.record = 11 + sizes.pop() if len(sizes) == 1 and 0 not in sizes else 0
        # For `fill`: per sample `first` of every `period`-th one, the byte `start` from
        # which its value is a whole 8-byte word, and the step between those words.
        period = 8 // math.gcd(self.record, 8) if self.record else 0
        self._strides = [(first, (self.record * first + 3) % 8, self.record * period // 8, period)
                         for first in range(period)]
        self._block = b"".join(_TAG_SAMPLES + bytes((9 + len(tail),)) + _TAG_SAMPLE_VALUE
                               + _ZERO_DOUBLE + tail for tail in self._tails)

    def encode(self, values: Sequence[float]) -> bytes:
        if 0.0 not in values:  # -0.0 == 0.0: both take the paths below
            if values and values[-1] == values[0] and values.count(values[0]) == len(values):
                # A constant (an info gauge at 1, a size): other series of the request
                # often hold the same value. Equal and non-zero means the same bits.
                done = self._constants.get(values[0])
                if done is None:
                    done = self._constants[values[0]] = self._pack(values)
                return done
            return self._pack(values)
        if array.array("d", values).tobytes() == self._zero_bytes:  # +0.0 throughout
            return self._zeros
        return b"".join(_sample_with_tail(tail, value)
                        for tail, value in zip(self._tails, values, strict=True))

    def _pack(self, values: Sequence[float]) -> bytes:
        if self._packer is None:
            # The bytes between two values (a sample's timestamp, the next one's tags) are
            # one field: fewer arguments for `pack`, which is what its time goes into.
            fixed: list[Any] = []
            between = b""
            for tail in self._tails:
                fixed += [between + _TAG_SAMPLES + bytes((9 + len(tail),)) + _TAG_SAMPLE_VALUE,
                          0.0]
                between = tail
            fixed.append(between)
            self._fixed = fixed
            self._packer = struct.Struct("<" + "".join(
                "d" if isinstance(one, float) else f"{len(one)}s" for one in fixed))
        args = self._fixed.copy()
        args[1::2] = values
        return self._packer.pack(*args)

    def fill(self, values: bytes) -> memoryview:
        """The samples of several series (`values`: theirs, one after the other, as
        little-endian float64, none +0.0) one after the other; `record` must be set.
        The samples' fixed bytes are copied from a template, the values' bytes
        dropped into it a byte plane at a time: no Python per sample."""
        samples = len(values) >> 3
        out = bytearray(self._block) * (samples // len(self._tails))
        view = memoryview(out)
        # The value of sample i sits at byte record * i + 3 (after its tags and length).
        # Seen as 8-byte words from the right starting byte, the values of every
        # `period`-th sample are whole words at a fixed step: `period` strided copies
        # of 8-byte items (4 for the usual 18-byte sample), not 8 of single bytes.
        words = memoryview(values).cast("Q")
        for first, start, step, period in self._strides:
            if first < samples:
                aligned = view[start:start + ((len(out) - start) & ~7)].cast("Q")
                index = (self.record * first + 3 - start) >> 3
                aligned[index:index + step * ((samples - first - 1) // period) + 1:step] = \
                    words[first::period]
        return view

    def encode_packed(self, raw: bytes) -> bytes | memoryview:
        """`encode` of little-endian float64 bytes, +0.0 among them or not."""
        if raw == self._zero_bytes:
            return self._zeros
        if not self.record:
            return self.encode(codec.unpack_values(raw))
        full = self.fill(raw)
        # Cut the +0.0 samples out of `full` and put them in without their value.
        record = self.record
        pieces: list[bytes | memoryview] = []
        start = 0
        for i, word in enumerate(memoryview(raw).cast("q")):
            if not word:
                pieces += (full[start * record:i * record],
                           _TAG_SAMPLES + bytes((len(self._tails[i]),)) + self._tails[i])
                start = i + 1
        if not pieces:  # no +0.0 after all (a denormal next to eight zero bytes)
            return full
        pieces.append(full[start * record:])
        return b"".join(pieces)


def _sample_with_tail(tail: bytes, value: float) -> bytes:
    packed = _DOUBLE.pack(value)
    if packed == _ZERO_DOUBLE:
        return _TAG_SAMPLES + bytes((len(tail),)) + tail
    return _TAG_SAMPLES + bytes((9 + len(tail),)) + _TAG_SAMPLE_VALUE + packed + tail


class _SampleLayouts:
    """`_SampleLayout`s by timestamps. The series of a batch from the buffer share one
    timestamps list object: an identity check finds its layout without hashing the
    timestamps again. A `WriteRequestEncoder` keeps the last few between requests
    (the parts of one batch, one per lane, share its timestamps)."""

    def __init__(self, keep: int = 0) -> None:
        self._keep = keep  # 0: unbounded (one request)
        self._layouts: dict[tuple[int, ...], _SampleLayout] = {}
        self._last: tuple[Sequence[int], _SampleLayout] | None = None
        self._lock = threading.Lock()  # lanes encode too (a refused part is bisected)

    def encode(self, name: str, timestamps: Sequence[int], values: Sequence[float]) -> bytes:
        return self.get(name, timestamps, len(values)).encode(values)

    def forget_last(self) -> None:
        """At the start of a request: a list seen before may have been changed since
        (found again by its contents, then)."""
        self._last = None

    def get(self, name: str, timestamps: Sequence[int], count: int) -> _SampleLayout:
        """The layout for `timestamps`, checked against the series' `count` of values."""
        if len(timestamps) != count:
            raise ValueError(f"{name}: {len(timestamps)} timestamps but {count} values")
        last = self._last
        if last is not None and last[0] is timestamps:
            return last[1]
        key = tuple(timestamps)
        with self._lock:
            layout = self._layouts.get(key)
            if layout is None:
                layout = self._layouts[key] = _SampleLayout(key)
                if self._keep and len(self._layouts) > self._keep:
                    del self._layouts[next(iter(self._layouts))]
        self._last = (timestamps, layout)  # holds the list: its id cannot be reused meanwhile
        return layout


def encode_timeseries(name: str, labels: Iterable[tuple[str, str]],
                      timestamps: Sequence[int], values: Sequence[float]) -> bytes:
    """One WriteRequest.timeseries field."""
    return _field(_TAG_TIMESERIES, encode_labels(name, labels) + _SampleLayouts().encode(
        name, timestamps, values))


def encode_write_request(series: Iterable[SeriesSamples]) -> bytes:
    """The serialised WriteRequest of `series` (uncompressed)."""
    return WriteRequestEncoder().encode(series)


_NO_HEAD = (-1, b"")


class WriteRequestEncoder:
    """`encode_write_request` that remembers each series' encoded labels between
    requests (a shipper sends the same series batch after batch), and the layouts
    of the last few lists of timestamps."""

    def __init__(self, max_series: int = 100_000) -> None:
        self.max_series = max_series
        # (name, labels) -> [its Label fields, (a size of its samples, the TimeSeries'
        # tag, length and labels for that size)]: batch after batch, the same size.
        self._labels: dict[tuple[str, tuple[tuple[str, str], ...]], list[Any]] = {}
        self._layouts = _SampleLayouts(keep=4)
        # id(keys) -> (keys, size, heads, labels): see `_heads`.
        self._heads_of: dict[int, tuple[Sequence[tuple[str, Labels]], int, list[bytes],
                                        list[bytes]]] = {}

    def encode(self, series: Iterable[SeriesSamples]) -> bytes:
        layouts = self._layouts
        layouts.forget_last()
        cache = self._labels
        out: list[bytes | memoryview] = []
        # Series with `PackedValues`: their samples are written together per layout
        # by `fill`, and take their places in `out` afterwards (those with a +0.0,
        # which proto3 leaves out, are then encoded one by one). layout -> (their
        # values, their places in `out`, their label cache entries)
        fills: dict[_SampleLayout, tuple[list[bytes], list[int], list[list[Any]]]] = {}
        # The layout of the series before (most often the next one's too).
        timestamps: Sequence[int] | None = None
        layout: _SampleLayout | None = None
        raws: list[bytes] = []
        places: list[int] = []
        entries: list[list[Any]] = []
        nbytes = size = 0
        for one in series:
            key = (one.name, one.labels)
            known = cache.get(key)
            if known is None:
                if len(cache) >= self.max_series:
                    cache.clear()
                known = cache[key] = [encode_labels(one.name, one.labels), _NO_HEAD]
            values = one.values
            if type(values) is PackedValues:
                raw = values.raw
                if one.timestamps is not timestamps or len(raw) != nbytes or layout is None:
                    layout = layouts.get(one.name, one.timestamps, len(raw) >> 3)
                    timestamps, nbytes = one.timestamps, len(raw)
                    raws, places, entries = fills.setdefault(layout, ([], [], []))
                    size = layout.record * (nbytes >> 3)
                if size:
                    head = known[1]
                    if head[0] != size:  # one assignment: lanes bisecting encode too
                        head = known[1] = (size, _TAG_TIMESERIES + varint(len(known[0]) + size)
                                           + known[0])
                    out.append(head[1])
                    places.append(len(out))
                    out.append(b"")
                    raws.append(raw)
                    entries.append(known)
                    continue
                samples: bytes | memoryview = layout.encode_packed(raw)
            else:
                samples = layouts.encode(one.name, one.timestamps, values)
            labels = known[0]
            out += (_TAG_TIMESERIES, varint(len(labels) + len(samples)), labels, samples)
        for filled, (raws, places, entries) in fills.items():
            if places:
                self._place(filled, raws, places, [entry[0] for entry in entries], out)
        return b"".join(out)

    def encode_columns(self, keys: Sequence[tuple[str, Labels]], timestamps: Sequence[int],
                       values: Sequence[bytes]) -> bytes:
        """`encode` of series given as columns (`buffer.PackedColumns`, or a part of
        one): `keys[i]` (name, labels), `values[i]` little-endian float64 bytes, one per
        timestamp. Pass the same `keys` list again for the same series (and never
        change it): their TimeSeries heads are then taken as they are."""
        if not keys:
            return b""
        nbytes = 8 * len(timestamps)
        if len(keys) != len(values) or set(map(len, values)) != {nbytes}:
            raise ValueError(f"{len(keys)} series of {len(timestamps)} timestamps but "
                             f"{len(values)} values of {sorted(set(map(len, values)))} bytes")
        self._layouts.forget_last()
        layout = self._layouts.get(keys[0][0], timestamps, len(timestamps))
        if not layout.record:  # timestamps' varints of different lengths: one by one
            return self.encode([SeriesSamples(name, labels, list(timestamps), PackedValues(raw))
                                for (name, labels), raw in zip(keys, values, strict=True)])
        size = layout.record * len(timestamps)
        heads, labels = self._heads(keys, size)
        out: list[bytes | memoryview] = [b""] * (2 * len(keys))
        out[0::2] = heads
        self._place(layout, values, range(1, len(out), 2), labels, out)
        return b"".join(out)

    def _heads(self, keys: Sequence[tuple[str, Labels]], size: int
               ) -> tuple[list[bytes], list[bytes]]:
        """Each series' TimeSeries tag, length and labels for samples of `size` bytes, and
        its labels alone; remembered for the last few `keys` lists (by identity)."""
        known = self._heads_of.get(id(keys))
        if known is not None and known[0] is keys and known[1] == size:
            return known[2], known[3]
        labels = []
        cache = self._labels
        for key in keys:
            entry = cache.get(key)
            if entry is None:
                if len(cache) >= self.max_series:
                    cache.clear()
                entry = cache[key] = [encode_labels(*key), _NO_HEAD]
            labels.append(entry[0])
        heads = [_TAG_TIMESERIES + varint(len(one) + size) + one for one in labels]
        if len(self._heads_of) >= 16:
            self._heads_of.clear()
        self._heads_of[id(keys)] = (keys, size, heads, labels)  # holds keys: id not reused
        return heads, labels

    @staticmethod
    def _place(layout: _SampleLayout, raws: Sequence[bytes], places: Sequence[int],
               labels: Sequence[bytes], out: list[bytes | memoryview]) -> None:
        """Write the samples of series of the same layout together, into their places
        in `out` (their TimeSeries heads just before, for samples of `layout.record`
        bytes each; `labels`: their Label fields, for those that need another head)."""
        values = b"".join(raws)
        blocks = layout.fill(values)
        size = len(blocks) // len(places)
        for start, place in zip(range(0, len(blocks), size), places, strict=True):
            out[place] = blocks[start:start + size]
        # A +0.0 sends its series the exact way. Its top byte is 0, which only +0.0
        # and positive values below 2**-1007 have: candidates are found in the values' top
        # bytes (one in eight, and hardly ever 0) at memchr speed, then checked.
        count = len(values) // (8 * len(places))  # values per series
        tops = values[7::8]
        at = tops.find(0)
        while at >= 0:
            k = at // count
            samples = layout.encode_packed(raws[k])
            out[places[k] - 1] = (_TAG_TIMESERIES + varint(len(labels[k]) + len(samples))
                                  + labels[k])
            out[places[k]] = samples
            at = tops.find(0, (k + 1) * count)


def compress(payload: bytes) -> bytes:
    """Snappy block format, as remote_write requires."""
    import cramjam  # lazy: ~1.5 MB of RSS that agents without remote_write never pay

    return bytes(cramjam.snappy.compress_raw(payload))


def write_request_body(series: Iterable[SeriesSamples]) -> bytes:
    """What is POSTed: the WriteRequest, snappy-compressed."""
    return compress(encode_write_request(series))
