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
import itertools
import math
import operator
import struct
import sys
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

CODEC = 1
INT, DIV, MUL, RAW = 0, 1, 2, 3
SPARSE = 0x80
MAX_EXPONENT = 9
_HEAD = struct.Struct("<BHI")
_COLUMN = struct.Struct("<BBBq")
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


def decode_cycle(blob: bytes) -> list[float]:
    try:
        return from_le("d", zlib.decompress(blob)).tolist()
    except (zlib.error, ValueError) as exc:
        raise CodecError(f"undecodable cycle row: {exc}") from exc


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


def _as_decimal(values: list[float]) -> tuple[int, int, list[int]] | None:
    """(method, exponent, integers) that rebuild `values` bit for bit, or None."""
    if not all(map(math.isfinite, values)):
        return None
    biggest = max(map(abs, values))
    original = array.array("d", values).tobytes()
    for exponent in range(MAX_EXPONENT + 1):
        scale = 10**exponent
        if biggest * scale >= _MAX_INT:
            return None
        first = round(values[0] * scale)
        ints: list[int] | None = None
        for method in ((INT,) if exponent == 0 else (DIV, MUL)):
            # The first value alone rules out most candidates before any list is built.
            if _rebuild(method, exponent, [first]) != values[:1]:
                continue
            if ints is None:
                ints = [round(v * scale) for v in values]
            if array.array("d", _rebuild(method, exponent, ints)).tobytes() == original:
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
        decimal = _as_decimal(values)
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
    table = list(_COLUMN.iter_unpack(data[offset:end]))
    offset = end
    bitmap_size = (cycles + 7) // 8
    presents: list[list[int] | None] = []
    needed = {1: 0, 2: 0, 4: 0, 8: 0}
    xor_count = 0
    for flags, _exponent, width, _first in table:
        if flags & SPARSE:
            bits = data[offset:offset + bitmap_size]
            offset += bitmap_size
            if len(bits) != bitmap_size:
                raise CodecError("chunk is shorter than its presence bitmaps")
            indexes = [i for i in range(cycles) if bits[i >> 3] >> (i & 7) & 1]
            if not indexes:
                raise CodecError("a sparse column present in no cycle")
            presents.append(indexes)
            count = len(indexes)
        else:
            presents.append(None)
            count = cycles
        if flags & ~SPARSE == RAW:
            xor_count += count - 1
        elif width:
            needed[width] += count - 1
    streams: dict[int, list[int]] = {}
    for width in (1, 2, 4, 8):
        size = needed[width] * width
        raw = _unshuffle(data[offset:offset + size], width)
        if len(raw) != size:
            raise CodecError("chunk is shorter than its column table says")
        streams[width] = from_le(_TYPECODES[width], raw).tolist()
        offset += size
    if offset + xor_count * 8 != len(data):
        raise CodecError("chunk streams do not match its column table")
    xor_stream = from_le("q", _unshuffle(data[offset:], 8)).tolist()
    if len(xor_stream) != xor_count:
        raise CodecError("chunk streams do not match its column table")
    positions = {1: 0, 2: 0, 4: 0, 8: 0}
    xor_pos = 0
    columns: list[Column] = []
    for (flags, exponent, width, first), present in zip(table, presents, strict=True):
        count = cycles if present is None else len(present)
        method = flags & ~SPARSE
        if method == RAW:
            words = list(itertools.accumulate(xor_stream[xor_pos:xor_pos + count - 1],
                                              operator.xor, initial=first))
            xor_pos += count - 1
            values = from_le("d", to_le(array.array("q", words))).tolist()
        elif method in (INT, DIV, MUL):
            if width == 0:  # a constant: one float object, repeated
                values = [_one(method, exponent, first)] * count
            else:
                pos = positions[width]
                deltas = streams[width][pos:pos + count - 1]
                positions[width] = pos + count - 1
                values = _rebuild(method, exponent,
                                  itertools.accumulate(deltas, initial=first))
        else:
            raise CodecError(f"unknown column method {method}")
        columns.append((present, values))
    return cycles, columns
