"""Value encodings of the buffer: one collection cycle, and a chunk of cycles.

Pure functions over floats and bytes; nothing here knows SQLite or series names.
Every encoding is lossless to the bit (NaN payloads, -0.0 and infinities
included): a value read back is the value appended.

**Cycle** (`encode_cycle`): the cycle's values as little-endian float64,
zlib level 1. Cheap to write, decodable on its own; cycles stay in this form
only until a chunk of them is sealed.

**Chunk** (`encode_chunk`): up to a few hundred consecutive cycles, column by
column (one column per series), zlib-compressed as one blob. Each column is
written the way VictoriaMetrics and Gorilla taught:

* most values a kiosk emits are decimals in disguise: integers (bytes, counts),
  `m / 10**e` (load 0.52, CPU seconds 1210.18) or `m * 10.0**-e` (what Go
  computes for milliseconds: 4504 * 0.001 = 4.5040000000000004). The column
  is turned into the integers `m` when that reproduces every value bit for bit,
  then into differences between consecutive values, stored in the narrowest of
  1, 2, 4 or 8 bytes that holds the largest; a constant column takes no bytes.
* anything else (full-precision floats, NaN, infinities) keeps its float bits,
  XOR-ed with the previous value of the same column (Gorilla).

Multi-byte streams are byte-shuffled (all first bytes, then all second bytes...)
before zlib, which then finds the runs of zero high bytes. A column whose series
was absent from some cycles of the chunk carries a presence bitmap.

Layout of a chunk before zlib (all little-endian):

    u8 codec (1) | u16 cycles | u32 columns
    columns x (u8 method|0x80 if sparse, u8 exponent, u8 width, i64 first)
    presence bitmaps of the sparse columns, ceil(cycles/8) bytes each
    the int8, int16, int32, int64 and XOR streams, in that order
"""

from __future__ import annotations

import array
import functools
import itertools
import math
import operator
import struct
import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

CODEC = 1
INT, DIV, MUL, RAW = 0, 1, 2, 3
SPARSE = 0x80
MAX_EXPONENT = 9
_HEAD = struct.Struct("<BHI")
_COLUMN = struct.Struct("<BBBq")
_DOUBLE = struct.Struct("<d")
_FIRST = struct.Struct("<q")
_TYPECODES = {1: "b", 2: "h", 4: "i", 8: "q"}
_LIMITS = {1: 2**7 - 1, 2: 2**15 - 1, 4: 2**31 - 1, 8: 2**63 - 1}
# |m| stays below this so that every difference fits in an int64.
_MAX_INT = 2**62
_BIG_ENDIAN = sys.byteorder == "big"


class CodecError(ValueError):
    """A blob that this code cannot decode (truncated, or from a newer codec)."""


# A column of one chunk: the indexes of the cycles it is present in (None when
# present in all of them) and its values, one per present cycle.
Column = tuple[list[int] | None, list[float]]
# The same with the values as little-endian float64 bytes (`decode_chunk_packed`).
PackedColumn = tuple[list[int] | None, bytes]


def to_le(arr: array.array[Any]) -> bytes:
    """The array's bytes in little-endian order, whatever the host."""
    if _BIG_ENDIAN:
        arr = array.array(arr.typecode, arr)
        arr.byteswap()
    return arr.tobytes()


def from_le(typecode: str, data: bytes) -> array.array[Any]:
    arr = array.array(typecode)
    arr.frombytes(data)
    if _BIG_ENDIAN:
        arr.byteswap()
    return arr


def _shuffle(data: bytes, width: int) -> bytes:
    if width == 1:
        return data
    return b"".join(data[i::width] for i in range(width))


def _unshuffle(data: bytes, width: int) -> bytes:
    if width == 1:
        return data
    out = bytearray(len(data))
    plane = len(data) // width
    for i in range(width):
        out[i::width] = data[i * plane:(i + 1) * plane]
    return bytes(out)


# -- one cycle ---------------------------------------------------------------

def encode_cycle(values: Sequence[float]) -> bytes:
    return zlib.compress(to_le(array.array("d", values)), 1)


def decode_cycle_packed(blob: bytes) -> bytes:
    """The cycle's values as little-endian float64 bytes (see `PackedValues`)."""
    try:
        raw = zlib.decompress(blob)
    except zlib.error as exc:
        raise CodecError(f"undecodable cycle row: {exc}") from exc
    if len(raw) % 8:
        raise CodecError(f"undecodable cycle row: {len(raw)} bytes of float64")
    return raw


def decode_cycle(blob: bytes) -> list[float]:
    return unpack_values(decode_cycle_packed(blob))


# -- a chunk of cycles ---------------------------------------------------------

def _rebuild(method: int, exponent: int, ints: Iterable[int]) -> list[float]:
    # map over bound methods: the same operations as `m / p` and `m * q` (so the
    # same bits), without a Python-level loop.
    if method == INT:
        return list(map(float, ints))
    if method == DIV:
        return list(map((10**exponent).__rtruediv__, ints))
    return list(map((10.0**-exponent).__rmul__, ints))


def _one(method: int, exponent: int, m: int) -> float:
    """`_rebuild` of a single integer."""
    if method == INT:
        return float(m)
    if method == DIV:
        return m / 10**exponent
    return m * 10.0**-exponent


def _as_decimal(values: list[float], native: bytes) -> tuple[int, int, list[int]] | None:
    """(method, exponent, integers) that rebuild `values` bit for bit, or None.

    `native` is `values` as float64 in the host's byte order (what is compared).
    """
    if not all(map(math.isfinite, values)):
        return None
    biggest = max(map(abs, values))
    # A few values rule out most candidates before the whole column is converted
    # (the first alone did not: a column starting at 0 passed every exponent).
    probes = [values[0], values[len(values) // 2], values[-1]]
    for exponent in range(MAX_EXPONENT + 1):
        scale = 10**exponent
        if biggest * scale >= _MAX_INT:
            return None
        # map over C functions: the same `round(v * scale)` without a Python loop
        # (float(scale) is exact, so `v * scale` and `v * float(scale)` are one product).
        scaled = float(scale).__rmul__
        probe_ints = list(map(round, map(scaled, probes)))
        ints: list[int] | None = None
        for method in ((INT,) if exponent == 0 else (DIV, MUL)):
            if _rebuild(method, exponent, probe_ints) != probes:
                continue
            if ints is None:
                ints = list(map(round, map(scaled, values)))
            if array.array("d", _rebuild(method, exponent, ints)).tobytes() == native:
                return method, exponent, ints
    return None


def _width(deltas: Sequence[int]) -> int:
    if not deltas:
        return 0
    biggest = max(max(deltas), -min(deltas))
    if biggest == 0:
        return 0
    for width in (1, 2, 4, 8):
        if biggest <= _LIMITS[width]:
            return width
    raise AssertionError("differences are bounded by _MAX_INT")


def encode_chunk(columns: Sequence[Column], cycles: int, level: int = 6) -> bytes:
    """Encode `cycles` cycles given column by column (see the module docstring)."""
    if not 0 < cycles < 2**16:
        raise ValueError(f"a chunk holds 1..65535 cycles, not {cycles}")
    table = bytearray(_HEAD.pack(CODEC, cycles, len(columns)))
    bitmaps = bytearray()
    streams: dict[int, list[int]] = {1: [], 2: [], 4: [], 8: []}
    xors: list[int] = []
    constants: dict[bytes, tuple[int, int, list[int]] | None] = {}
    for present, values in columns:
        if not values:
            raise ValueError("a column needs at least one value")
        flag = 0
        if present is not None:
            if len(present) != len(values):
                raise ValueError("a sparse column needs one cycle index per value")
            flag = SPARSE
            bits = bytearray((cycles + 7) // 8)
            for index in present:
                bits[index >> 3] |= 1 << (index & 7)
            bitmaps += bits
        native = array.array("d", values).tobytes()
        head = native[:8]
        if native == head * len(values):
            # A constant (most of a kiosk's columns: sizes, limits, info series) is
            # decided on its one value, once per distinct value in the chunk; its
            # differences are all 0: width 0, nothing in the streams.
            if head not in constants:
                constants[head] = _as_decimal(values[:1], head)
            decimal = constants[head]
            if decimal is not None:
                table += _COLUMN.pack(decimal[0] | flag, decimal[1], 0, decimal[2][0])
                continue
        else:
            decimal = _as_decimal(values, native)
        if decimal is None:
            words = from_le("q", to_le(array.array("d", values))).tolist()
            table += _COLUMN.pack(RAW | flag, 0, 8, words[0])
            xors.extend(map(operator.xor, words[1:], words))
            continue
        method, exponent, ints = decimal
        deltas = list(map(operator.sub, ints[1:], ints))
        width = _width(deltas)
        table += _COLUMN.pack(method | flag, exponent, width, ints[0])
        if width:
            streams[width].extend(deltas)
    parts = [bytes(table), bytes(bitmaps)]
    for width in (1, 2, 4, 8):
        parts.append(_shuffle(to_le(array.array(_TYPECODES[width], streams[width])), width))
    parts.append(_shuffle(to_le(array.array("q", xors)), 8))
    return zlib.compress(b"".join(parts), level)


def decode_chunk(blob: bytes) -> tuple[int, list[Column]]:
    """(cycles, columns) of a chunk written by `encode_chunk`."""
    cycles, columns = decode_chunk_packed(blob)
    return cycles, [(present, unpack_values(raw)) for present, raw in columns]


def decode_chunk_packed(blob: bytes) -> tuple[int, list[PackedColumn]]:
    """`decode_chunk` with each column's values as little-endian float64 bytes: the
    values are rebuilt straight into `struct.pack`, no list of floats kept (the
    form the buffer caches and remote_write sends)."""
    try:
        data = zlib.decompress(blob)
        codec, cycles, ncols = _HEAD.unpack_from(data, 0)
    except (zlib.error, struct.error) as exc:
        raise CodecError(f"undecodable chunk: {exc}") from exc
    if codec != CODEC:
        raise CodecError(f"chunk codec {codec} is not known to this version (knows {CODEC})")
    offset = _HEAD.size
    end = offset + ncols * _COLUMN.size
    if len(data) < end or cycles == 0:
        raise CodecError("chunk is shorter than its column table")
    table_bytes = data[offset:end]
    table = list(_COLUMN.iter_unpack(table_bytes))
    # The flags and widths of all columns as bytes (strided slices): counted at C speed.
    all_flags = table_bytes[0::_COLUMN.size]
    offset, presents = _presences(data, end, table, cycles, all_flags.isascii())
    needed = {1: 0, 2: 0, 4: 0, 8: 0}  # values in each stream of differences
    xor_count = 0
    if presents is None:  # every column in every cycle: count the kinds, not the columns
        # A RAW column's width (8) is not a stream's: mark it out of the counted ones.
        widths = bytes(map(operator.or_, table_bytes[2::_COLUMN.size],
                           all_flags.translate(_RAW_MARK)))
        xor_count = all_flags.count(RAW) * (cycles - 1)
        for width in needed:
            needed[width] = widths.count(width) * (cycles - 1)
    else:
        for (flags, _exponent, width, _first), present in zip(table, presents, strict=True):
            count = cycles if present is None else len(present)
            if flags & ~SPARSE == RAW:
                xor_count += count - 1
            elif width in needed:
                needed[width] += count - 1
    streams: dict[int, Iterator[int]] = {}
    for width in (1, 2, 4, 8):
        size = needed[width] * width
        raw = _unshuffle(data[offset:offset + size], width)
        if len(raw) != size:
            raise CodecError("chunk is shorter than its column table says")
        streams[width] = iter(from_le(_TYPECODES[width], raw))
        offset += size
    if offset + xor_count * 8 != len(data):
        raise CodecError("chunk streams do not match its column table")
    xors = _unshuffle(data[offset:], 8)  # little-endian words, whatever the host
    xor_pos = 0
    # A column whose first integer is below its width's limit keeps every integer
    # within 2**53 (the first plus 65,534 differences at most): each is then exact as
    # a float, so adding them as floats gives float(m) bit for bit, and `m / 10**e`
    # and `m * 10.0**-e` are the same operations on the same numbers. Floats add
    # faster than Python ints and `struct.pack` takes them faster; beyond the limit
    # (or 8-byte differences) the integers stay ints.
    exact = {1: _FLOAT_EXACT - (cycles - 1) * 2**7, 2: _FLOAT_EXACT - (cycles - 1) * 2**15,
             4: _FLOAT_EXACT - (cycles - 1) * 2**31, 8: -1}
    accumulate, islice, repeat = itertools.accumulate, itertools.islice, itertools.repeat
    truediv, mul = operator.truediv, operator.mul
    columns: list[PackedColumn] = []
    constants: dict[tuple[int, int, int, int], bytes] = {}
    count = cycles
    pack_d = _packer("d", cycles).pack
    present = None
    for index, (flags, exponent, width, first) in enumerate(table):
        if presents is not None:
            present = presents[index]
            count = cycles if present is None else len(present)
            pack_d = _packer("d", count).pack
        method = flags & ~SPARSE
        if method == RAW:
            end = xor_pos + 8 * (count - 1)
            raw = _xor_scan(_FIRST.pack(first) + xors[xor_pos:end], count)
            xor_pos = end
        elif method > RAW:
            raise CodecError(f"unknown column method {method}")
        elif not width:  # a constant: one value, repeated (the same few across columns)
            key = (method, exponent, first, count)
            known = constants.get(key)
            if known is None:
                known = constants[key] = _DOUBLE.pack(_one(method, exponent, first)) * count
            raw = known
        else:
            stream = streams.get(width)
            if stream is None:
                raise CodecError(f"unknown column width {width}")
            limit = exact[width]
            if -limit < first < limit and exponent <= _FLOAT_POW10_MAX:
                ints = accumulate(islice(stream, count - 1), initial=float(first))
                scale: int | float = _FLOAT_POW10[exponent]
            else:
                ints = accumulate(islice(stream, count - 1), initial=first)
                scale = 10**exponent
            # struct.pack makes of an int the float that float() gives.
            if method == INT:
                raw = pack_d(*ints)
            elif method == DIV:
                raw = pack_d(*map(truediv, ints, repeat(scale)))
            else:
                raw = pack_d(*map(mul, ints, repeat(10.0**-exponent)))
        columns.append((present, raw))
    return cycles, columns


def _presences(data: bytes, offset: int, table: list[tuple[int, int, int, int]],
               cycles: int, dense: bool) -> tuple[int, list[list[int] | None] | None]:
    """(offset past the presence bitmaps, each column's cycle indexes or None when in
    every cycle); None for all of them when no column is sparse (`dense`, the usual)."""
    if dense:
        return offset, None
    bitmap_size = (cycles + 7) // 8
    presents: list[list[int] | None] = []
    for flags, _exponent, _width, _first in table:
        if not flags & SPARSE:
            presents.append(None)
            continue
        bits = data[offset:offset + bitmap_size]
        offset += bitmap_size
        if len(bits) != bitmap_size:
            raise CodecError("chunk is shorter than its presence bitmaps")
        indexes = [i for i in range(cycles) if bits[i >> 3] >> (i & 7) & 1]
        if not indexes:
            raise CodecError("a sparse column present in no cycle")
        presents.append(indexes)
    return offset, presents


# Flags (all below SPARSE) -> 0x40 for a RAW column, 0 otherwise.
_RAW_MARK = bytes(0x40 if flags == RAW else 0 for flags in range(256))
_FLOAT_EXACT = 2**53  # every integer up to this is a float exactly
# 10**e as a float: exact up to 10**22, and `x / 10**e` is then `x / float(10**e)`.
_FLOAT_POW10_MAX = 22
_FLOAT_POW10 = tuple(float(10**e) for e in range(_FLOAT_POW10_MAX + 1))


def _xor_scan(words: bytes, count: int) -> bytes:
    """Each of `count` little-endian 64-bit words XOR-ed with all those before it: on
    one Python int, a doubling shift at a time (log2(count) steps, not one per word)."""
    scan = int.from_bytes(words, "little")
    shift = 64
    while shift < 64 * count:
        scan ^= scan << shift
        shift <<= 1
    return (scan & ((1 << 64 * count) - 1)).to_bytes(8 * count, "little")


@functools.lru_cache(maxsize=64)
def _packer(typecode: str, count: int) -> struct.Struct:
    return struct.Struct(f"<{count}{typecode}")


# -- values as float64 bytes ---------------------------------------------------------

def unpack_values(raw: bytes) -> list[float]:
    """The floats of little-endian float64 bytes."""
    return from_le("d", raw).tolist()


class PackedValues(Sequence[float]):
    """A series' values kept as little-endian float64 bytes (`raw`), as the buffer
    decodes them: the remote_write encoder copies them into its request without
    making a Python float of each. Reads as a sequence of floats (each access
    unpacks); compares equal to the list of the same floats."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        if len(raw) % 8:
            raise ValueError(f"{len(raw)} bytes are not a whole number of float64")
        self.raw = raw

    def __len__(self) -> int:
        return len(self.raw) >> 3

    @overload
    def __getitem__(self, index: int) -> float: ...

    @overload
    def __getitem__(self, index: slice) -> list[float]: ...

    def __getitem__(self, index: int | slice) -> float | list[float]:
        if isinstance(index, slice):
            return self.tolist()[index]
        position = range(len(self))[index]  # IndexError and negative indexes as a list's
        value: float = _DOUBLE.unpack_from(self.raw, 8 * position)[0]
        return value

    def tolist(self) -> list[float]:
        return unpack_values(self.raw)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedValues):
            return self.raw == other.raw
        if isinstance(other, list):
            return self.tolist() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like a list: mutable neighbours compare equal

    def __repr__(self) -> str:
        return f"PackedValues({self.tolist()!r})"
