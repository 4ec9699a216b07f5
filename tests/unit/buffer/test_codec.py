"""The value encodings: lossless to the bit, compact where values allow it."""

from __future__ import annotations

import math
import random
import struct
import zlib

import pytest

from totem_agent.buffer import codec


def bits(values: list[float]) -> list[int]:
    return [struct.unpack("<q", struct.pack("<d", v))[0] for v in values]


def roundtrip(columns: list[codec.Column], cycles: int) -> list[codec.Column]:
    got_cycles, got = codec.decode_chunk(codec.encode_chunk(columns, cycles))
    assert got_cycles == cycles
    assert [p for p, _ in got] == [p for p, _ in columns]
    assert [bits(v) for _, v in got] == [bits(v) for _, v in columns]
    return got


SPECIALS = [0.0, -0.0, math.inf, -math.inf, math.nan,
            struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0],  # stale marker
            5e-324, 1.7976931348623157e308, -1.0, 2.0**62, 2.0**63, 1e300, 0.1 + 0.2]


def test_cycle_roundtrip_is_bit_exact() -> None:
    values = [*SPECIALS, 1.5, 12345.67]
    assert bits(codec.decode_cycle(codec.encode_cycle(values))) == bits(values)


def test_chunk_roundtrip_special_values() -> None:
    columns: list[codec.Column] = [(None, [v] * 5) for v in SPECIALS]
    columns.append((None, SPECIALS[:5]))
    columns.append((None, [-0.0, 0.0, -0.0, 0.0, 1.0]))
    roundtrip(columns, 5)


@pytest.mark.parametrize("values, method", [
    ([float(i * 4096) for i in range(10)], codec.INT),
    ([1210.18, 1224.98, 1239.01, 1253.5], codec.DIV),
    ([4504 * 0.001, 4520 * 0.001, 4536 * 0.001], codec.MUL),  # Go's ms * 0.001
    ([0.52, 0.48, 0.5], codec.DIV),
    ([2.3567e-05, 8.119e-06], codec.DIV),
    ([random.Random(1).random() for _ in range(8)], codec.RAW),
    ([1.0, math.nan, 2.0], codec.RAW),
    ([0.0, -0.0], codec.RAW),  # -0.0 is not the integer 0
])
def test_column_methods(values: list[float], method: int) -> None:
    roundtrip([(None, values)], len(values))
    data = zlib.decompress(codec.encode_chunk([(None, values)], len(values)))
    assert data[7] & ~codec.SPARSE == method


def test_constant_columns_take_almost_nothing() -> None:
    columns: list[codec.Column] = [(None, [float(i)] * 240) for i in range(1000)]
    blob = codec.encode_chunk(columns, 240)
    assert len(blob) / 240_000 < 0.05
    roundtrip(columns, 240)


def test_deltas_pick_each_width() -> None:
    for step in (1, 200, 70_000, 2**40):
        values = [float(i * step) for i in range(6)]
        roundtrip([(None, values)], 6)
        data = zlib.decompress(codec.encode_chunk([(None, values)], 6))
        width = data[9]
        assert width == {1: 1, 200: 2, 70_000: 4, 2**40: 8}[step]


def test_sparse_columns() -> None:
    columns: list[codec.Column] = [
        (None, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]),
        ([0, 3, 8], [1.5, 2.5, 3.5]),
        ([4], [math.nan]),
        ([1, 2, 5, 6, 7], [random.Random(2).random() for _ in range(5)]),
    ]
    roundtrip(columns, 9)


def test_random_columns_roundtrip() -> None:
    rng = random.Random(7)
    for _ in range(50):
        cycles = rng.randrange(1, 70)
        columns: list[codec.Column] = []
        for _ in range(rng.randrange(1, 20)):
            kind = rng.randrange(5)
            present = None
            count = cycles
            if rng.random() < 0.3:
                present = sorted(rng.sample(range(cycles), rng.randrange(1, cycles + 1)))
                count = len(present)
            if kind == 0:
                values = [float(rng.randrange(-10**15, 10**15)) for _ in range(count)]
            elif kind == 1:
                scale = 10**rng.randrange(1, 9)
                values = [rng.randrange(-10**8, 10**8) / scale for _ in range(count)]
            elif kind == 2:
                values = [rng.choice(SPECIALS) for _ in range(count)]
            elif kind == 3:
                values = [rng.uniform(-1e6, 1e6) for _ in range(count)]
            else:
                values = [rng.randrange(10**6) * 0.001 for _ in range(count)]
            columns.append((present, values))
        roundtrip(columns, cycles)


def test_corrupt_blobs_raise_codec_error() -> None:
    blob = codec.encode_chunk([(None, [1.0, 2.5, 3.25])], 3)
    data = zlib.decompress(blob)
    with pytest.raises(codec.CodecError):
        codec.decode_chunk(b"not zlib")
    with pytest.raises(codec.CodecError):
        codec.decode_chunk(zlib.compress(data[:-3]))
    with pytest.raises(codec.CodecError, match="codec 9"):
        codec.decode_chunk(zlib.compress(bytes([9]) + data[1:]))
    with pytest.raises(codec.CodecError):
        codec.decode_cycle(b"\x00\x01")


def test_encode_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        codec.encode_chunk([(None, [])], 1)
    with pytest.raises(ValueError):
        codec.encode_chunk([([0, 1], [1.0])], 2)
    with pytest.raises(ValueError):
        codec.encode_chunk([(None, [1.0])], 0)


def reference_method(values: list[float]) -> tuple[int, int]:
    """The (method, exponent) the module docstring defines, searched the slow way:
    the first that rebuilds every value bit for bit, else RAW."""
    if all(math.isfinite(v) for v in values):
        for exponent in range(codec.MAX_EXPONENT + 1):
            scale = 10**exponent
            if max(abs(v) for v in values) * scale >= 2**62:
                break
            ints = [round(v * scale) for v in values]
            for method in ((codec.INT,) if exponent == 0 else (codec.DIV, codec.MUL)):
                if bits([codec._one(method, exponent, m) for m in ints]) == bits(values):
                    return method, exponent
    return codec.RAW, 0


def test_columns_pick_the_first_exact_decimal() -> None:
    # The encoder decides constants on one value and rules candidates out on a few
    # values before converting a column: it must still pick what the slow search picks.
    rng = random.Random(11)
    shapes = [
        lambda n: [rng.choice(SPECIALS)] * n,  # constant, awkward
        lambda n: [rng.randrange(10**6) / 10**rng.randrange(10)] * n,  # constant decimal
        lambda n: [0.0] + [rng.randrange(10**6) / 10**5 for _ in range(n - 1)],  # starts whole
        lambda n: [float(rng.randrange(-10**9, 10**9)) for _ in range(n)],
        lambda n: [rng.randrange(-10**8, 10**8) * 10.0**-rng.randrange(1, 10) for _ in range(n)],
        lambda n: [rng.choice([*SPECIALS, 1.0, 0.25]) for _ in range(n)],
        lambda n: [rng.uniform(-1e6, 1e6) * 10.0**rng.randrange(-300, 300) for _ in range(n)],
        lambda n: [rng.choice([2.0**61, -(2.0**61), 3.0 * 2**60]) for _ in range(n)],
    ]
    for _ in range(300):
        cycles = rng.randrange(1, 70)
        columns: list[codec.Column] = []
        for _ in range(rng.randrange(1, 10)):
            present = None
            if rng.random() < 0.25:
                present = sorted(rng.sample(range(cycles), rng.randrange(1, cycles + 1)))
            columns.append((present, rng.choice(shapes)(cycles if present is None
                                                          else len(present))))
        roundtrip(columns, cycles)
        data = zlib.decompress(codec.encode_chunk(columns, cycles))
        for i, (_, values) in enumerate(columns):
            entry = 7 + 11 * i
            method, exponent = reference_method(values)
            assert (data[entry] & ~codec.SPARSE, data[entry + 1]) == (method, exponent), values
            if method != codec.RAW and len(set(bits(values))) == 1:
                assert data[entry + 2] == 0  # a constant takes no stream bytes


def test_integers_beside_the_float_exact_limit_roundtrip() -> None:
    """Columns whose integers reach 2**53, where the decoder stops adding them as floats
    (beyond, a float cannot hold every integer): bit exact on both sides of the limit,
    as integers, decimals and Go's `m * 0.001`, dense and sparse."""
    rng = random.Random(11)
    columns: list[codec.Column] = []
    for base in (2**53 - 3000, 2**53 - 60 * 128, 2**53 + 2, -(2**53) + 3000, 2**62 - 10**6):
        for step in (1, 100, 40_000, 2**31 - 1):
            ints = [base + rng.randrange(-step, step + 1) * i for i in range(60)]
            columns.append((None, [float(m) for m in ints]))
            columns.append((None, [m / 100 for m in ints]))
            columns.append((None, [m * 0.001 for m in ints]))
            columns.append((list(range(0, 60, 3)), [float(m) for m in ints[::3]]))
    roundtrip(columns, 60)
