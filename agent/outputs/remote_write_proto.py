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
series once per value and request (`_SampleLayout`).

Compression is snappy's *block* format (`cramjam.snappy.compress_raw`): the
framed format (`cramjam.snappy.compress`) is refused by every receiver.
"""

from __future__ import annotations

import array
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from totem_agent.buffer import SeriesSamples

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

    __slots__ = ("_constants", "_fixed", "_packer", "_tails", "_zero_bytes", "_zeros")

    def __init__(self, timestamps: Sequence[int]) -> None:
        # A zero timestamp is left out too (proto3), hence the empty tail.
        self._tails = [_TAG_TIMESTAMP + varint(t) if t else b"" for t in timestamps]
        # The bytes between two values (a sample's timestamp, the next one's tags) are
        # one field: fewer arguments for `pack`, which is what its time goes into.
        fixed: list[Any] = []
        between = b""
        for tail in self._tails:
            fixed += [between + _TAG_SAMPLES + bytes((9 + len(tail),)) + _TAG_SAMPLE_VALUE, 0.0]
            between = tail
        fixed.append(between)
        self._packer = struct.Struct("<" + "".join(
            "d" if isinstance(one, float) else f"{len(one)}s" for one in fixed))
        self._fixed = fixed
        self._zeros = b"".join(_TAG_SAMPLES + bytes((len(tail),)) + tail for tail in self._tails)
        self._zero_bytes = bytes(8 * len(self._tails))
        self._constants: dict[float, bytes] = {}

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
        args = self._fixed.copy()
        args[1::2] = values
        return self._packer.pack(*args)


def _sample_with_tail(tail: bytes, value: float) -> bytes:
    packed = _DOUBLE.pack(value)
    if packed == _ZERO_DOUBLE:
        return _TAG_SAMPLES + bytes((len(tail),)) + tail
    return _TAG_SAMPLES + bytes((9 + len(tail),)) + _TAG_SAMPLE_VALUE + packed + tail


class _SampleLayouts:
    """The `_SampleLayout`s of one request, by timestamps. The series of a batch from
    the buffer share one timestamps list object: an identity check finds its layout
    without hashing the timestamps again."""

    def __init__(self) -> None:
        self._layouts: dict[tuple[int, ...], _SampleLayout] = {}
        self._last: tuple[Sequence[int], _SampleLayout] | None = None

    def encode(self, name: str, timestamps: Sequence[int], values: Sequence[float]) -> bytes:
        if len(timestamps) != len(values):
            raise ValueError(f"{name}: {len(timestamps)} timestamps but {len(values)} values")
        last = self._last
        if last is not None and last[0] is timestamps:
            return last[1].encode(values)
        key = tuple(timestamps)
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layouts[key] = _SampleLayout(key)
        self._last = (timestamps, layout)  # holds the list: its id cannot be reused meanwhile
        return layout.encode(values)


def encode_timeseries(name: str, labels: Iterable[tuple[str, str]],
                      timestamps: Sequence[int], values: Sequence[float]) -> bytes:
    """One WriteRequest.timeseries field."""
    return _field(_TAG_TIMESERIES, encode_labels(name, labels) + _SampleLayouts().encode(
        name, timestamps, values))


def encode_write_request(series: Iterable[SeriesSamples]) -> bytes:
    """The serialised WriteRequest of `series` (uncompressed)."""
    return WriteRequestEncoder().encode(series)


class WriteRequestEncoder:
    """`encode_write_request` that remembers each series' encoded labels between
    requests (a shipper sends the same series batch after batch)."""

    def __init__(self, max_series: int = 100_000) -> None:
        self.max_series = max_series
        self._labels: dict[tuple[str, tuple[tuple[str, str], ...]], bytes] = {}

    def encode(self, series: Iterable[SeriesSamples]) -> bytes:
        layouts = _SampleLayouts()
        cache = self._labels
        out: list[bytes] = []
        for one in series:
            key = (one.name, one.labels)
            labels = cache.get(key)
            if labels is None:
                if len(cache) >= self.max_series:
                    cache.clear()
                labels = cache[key] = encode_labels(one.name, one.labels)
            samples = layouts.encode(one.name, one.timestamps, one.values)
            out += (_TAG_TIMESERIES, varint(len(labels) + len(samples)), labels, samples)
        return b"".join(out)


def compress(payload: bytes) -> bytes:
    """Snappy block format, as remote_write requires."""
    import cramjam  # lazy: ~1.5 MB of RSS that agents without remote_write never pay

    return bytes(cramjam.snappy.compress_raw(payload))


def write_request_body(series: Iterable[SeriesSamples]) -> bytes:
    """What is POSTed: the WriteRequest, snappy-compressed."""
    return compress(encode_write_request(series))
