"""The hand-written WriteRequest encoder is byte-identical to protobuf's; snappy is the
block format."""

from __future__ import annotations

import math
import struct

import cramjam
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.remote_write_fake import WriteRequest, decode
from totem_agent.buffer import SeriesSamples
from totem_agent.buffer.codec import PackedValues
from totem_agent.outputs.remote_write_proto import (
    WriteRequestEncoder,
    compress,
    encode_write_request,
    varint,
    write_request_body,
)


def protobuf_bytes(series: list[SeriesSamples]) -> bytes:
    """What protobuf's runtime serialises for the same series."""
    request = WriteRequest()
    for one in series:
        ts = request.timeseries.add()
        for name, value in [("__name__", one.name), *sorted(one.labels)]:
            label = ts.labels.add()
            label.name, label.value = name, value
        for timestamp, value in zip(one.timestamps, one.values, strict=True):
            sample = ts.samples.add()
            sample.timestamp, sample.value = timestamp, value
    return bytes(request.SerializeToString())


def packed(series: list[SeriesSamples]) -> list[SeriesSamples]:
    """The same series with their values as the buffer's drain hands them out."""
    return [SeriesSamples(one.name, one.labels, one.timestamps,
                          PackedValues(struct.pack(f"<{len(one.values)}d", *one.values)))
            for one in series]


EDGE_VALUES = [0.0, -0.0, 1.0, -1.5, math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308]
EDGE_TIMES = [0, 1, 127, 128, 16383, 16384, 1_700_000_000_000, 2**62, -1, -(2**63)]

label_text = st.text(min_size=0, max_size=12)
series_strategy = st.builds(
    lambda name, labels, samples: SeriesSamples(
        name, tuple(sorted(labels.items())), [t for t, _ in samples], [v for _, v in samples]),
    st.text(min_size=1, max_size=20),
    st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), label_text,
                    max_size=4),
    st.lists(st.tuples(st.one_of(st.sampled_from(EDGE_TIMES),
                                 st.integers(-(2**63), 2**63 - 1)),
                       st.one_of(st.sampled_from(EDGE_VALUES), st.floats())),
             min_size=0, max_size=6))


@settings(max_examples=300, deadline=None)
@given(st.lists(series_strategy, max_size=5))
def test_encoder_is_byte_identical_to_protobuf(series: list[SeriesSamples]) -> None:
    assert encode_write_request(series) == protobuf_bytes(series)
    # The caching encoder too, twice over (second time from its label cache).
    encoder = WriteRequestEncoder()
    assert encoder.encode(series) == protobuf_bytes(series)
    assert encoder.encode(series) == protobuf_bytes(series)
    assert encoder.encode(packed(series)) == protobuf_bytes(series)


def test_edge_values_and_times_are_identical() -> None:
    series = [SeriesSamples("m", (("a", "é ✓"), ("b", "")), [t for t in EDGE_TIMES],
                            [EDGE_VALUES[i % len(EDGE_VALUES)] for i in range(len(EDGE_TIMES))])]
    assert encode_write_request(series) == protobuf_bytes(series)
    assert encode_write_request(packed(series)) == protobuf_bytes(series)


def test_varint_matches_protobuf_for_negative_int64() -> None:
    assert varint(-1) == b"\xff" * 9 + b"\x01"
    assert varint(300) == b"\xac\x02"


def test_labels_sorted_with_name_first_and_samples_grouped_per_series() -> None:
    series = [SeriesSamples("node_load1", (("zone", "z"), ("instance", "k1"), ("job", "totem")),
                            [1000, 2000, 3000], [0.5, 0.25, 0.0])]
    (labels, samples), = decode(write_request_body(series))
    assert [name for name, _ in labels] == ["__name__", "instance", "job", "zone"]
    assert labels[0] == ("__name__", "node_load1")
    assert samples == [(1000, 0.5), (2000, 0.25), (3000, 0.0)]


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="2 timestamps but 1 values"):
        encode_write_request([SeriesSamples("m", (), [1, 2], [1.0])])
    shared = [1, 2]
    with pytest.raises(ValueError, match="2 timestamps but 1 values"):
        encode_write_request(packed([SeriesSamples("m", (), shared, [1.0, 2.0]),
                                     SeriesSamples("n", (), shared, [1.0])]))


def test_snappy_block_format_round_trips_and_is_not_framed() -> None:
    payload = encode_write_request([SeriesSamples("m", (("a", "b"),), list(range(1, 500)),
                                                  [float(i) for i in range(1, 500)])])
    body = compress(payload)
    assert bytes(cramjam.snappy.decompress_raw(body)) == payload
    # The framed format starts with its stream identifier chunk; ours must not.
    framed = bytes(cramjam.snappy.compress(payload))
    assert framed.startswith(b"\xff\x06\x00\x00sNaPpY")
    assert not body.startswith(b"\xff\x06\x00\x00sNaPpY")
    # The block format starts with the uncompressed length as a varint.
    assert body.startswith(varint(len(payload)))
    with pytest.raises(cramjam.DecompressionError):
        cramjam.snappy.decompress(body)  # a framed reader refuses it


def test_negative_zero_and_nan_are_kept() -> None:
    body = encode_write_request([SeriesSamples("m", (), [5, 6, 7], [-0.0, math.nan, 0.0])])
    (_, samples), = decode(compress(body))
    assert struct.pack("<d", samples[0][1]) == struct.pack("<d", -0.0)
    assert math.isnan(samples[1][1])
    assert samples[2] == (7, 0.0)


def test_shared_timestamps_constants_and_zeros_are_identical() -> None:
    """The fast paths: series of a batch sharing one timestamps list, constant series
    (packed once per value and request), series at 0.0 throughout, and the cases that
    must not take them (-0.0 among zeros, NaN repeated, a zero timestamp)."""
    shared = [1_700_000_000_000 + 15_000 * i for i in range(5)]
    nan = math.nan
    series = [SeriesSamples("m", (("i", str(i)),), shared, values) for i, values in enumerate([
        [1.0] * 5, [1.0] * 5, [2.5] * 5, [0.0] * 5, [0.0, -0.0, 0.0, 0.0, 0.0],
        [nan] * 5, [0.0, 1.0, 0.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0, 2.0], [-0.0] * 5])]
    series.append(SeriesSamples("z", (), [0, 1, 2], [1.0, 1.0, 1.0]))
    series.append(SeriesSamples("z", (("a", "b"),), [0, 1, 2], [0.0, 0.0, 0.0]))
    encoder = WriteRequestEncoder()
    assert encoder.encode(series) == protobuf_bytes(series)
    assert encoder.encode(series[::-1]) == protobuf_bytes(series[::-1])
    assert encoder.encode(packed(series)) == protobuf_bytes(series)
    assert encoder.encode(packed(series[::-1])) == protobuf_bytes(series[::-1])


def test_packed_values_many_series_at_once_are_identical() -> None:
    """Packed values (the drain's): series without +0.0 are written together, the others
    one by one; eight zero bytes across two values (a denormal, then 1.0) are no +0.0;
    several lists of timestamps in one request, and of different varint lengths."""
    shared = [1_700_000_000_000 + 15_000 * i for i in range(6)]
    other = [1_700_000_000_007 + 15_000 * i for i in range(6)]
    uneven = [100, 200, 16_500, 16_600, 0, 1]
    values = [[1.0] * 6, [float(i) for i in range(1, 7)], [5e-324, 1.0, 5e-324, 2.0, 3.0, 4.0],
              [0.0, 5e-324, 0.0, 1.0, 0.0, 0.0], [0.0] * 6, [-0.0, 1.5, -0.0, 2.5, 0.1, 0.2],
              [math.nan, math.inf, -math.inf, 1e300, -1e-300, 7.0]]
    series = [SeriesSamples("m", (("i", str(i)),), times, one)
              for times in (shared, other, uneven) for i, one in enumerate(values)]
    encoder = WriteRequestEncoder()
    for _ in range(2):  # the second time from the label and layout caches
        assert encoder.encode(packed(series)) == protobuf_bytes(series)
        assert encoder.encode(packed(series[5:])) == protobuf_bytes(series[5:])
    mixed = packed(series[:7]) + series[7:]
    assert encoder.encode(mixed) == protobuf_bytes(series)


def test_columns_are_identical_and_their_heads_follow_the_size() -> None:
    """`encode_columns` (the drain's usual batch): the same bytes as the series one by one,
    with +0.0 among the values, timestamps of varints of different lengths, and the
    same `keys` list again with another number of samples."""
    keys = [("m", (("i", str(i)),)) for i in range(5)] + [("n", ())]
    rows = [[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 2.0], [0.0] * 4, [-0.0, 5e-324, 1.0, 7.5],
            [math.nan, math.inf, 2.0, 2.0], [1e300, 1.0, 1.0, 1.0]]
    encoder = WriteRequestEncoder()
    for times in ([1_700_000_000_000 + 15_000 * i for i in range(4)], [5, 6, 7, 8],
                  [1, 200, 0, 16_400], [9, 10]):
        series = [SeriesSamples(name, labels, times, values[:len(times)])
                  for (name, labels), values in zip(keys, rows, strict=True)]
        raws = [struct.pack(f"<{len(times)}d", *one.values) for one in series]
        assert encoder.encode_columns(keys, times, raws) == protobuf_bytes(series)
    with pytest.raises(ValueError, match="6 series of 2 timestamps"):
        encoder.encode_columns(keys, [1, 2], [bytes(16)] * 5 + [bytes(8)])
    assert encoder.encode_columns([], [1, 2], []) == b""


def test_a_list_changed_between_requests_is_encoded_as_it_is_now() -> None:
    """The encoder keeps layouts between requests; a caller may reuse its lists."""
    times, values = [1_000, 2_000], [1.0, 2.0]
    encoder = WriteRequestEncoder()
    for _ in range(2):
        series = [SeriesSamples("m", (), times, values)]
        assert encoder.encode(series) == protobuf_bytes(series)
        assert encoder.encode(packed(series)) == protobuf_bytes(series)
        times[0] = 1_500


@pytest.mark.parametrize("first_time", [1, 200, 20_000, 3_000_000, 300_000_000, 2**35,
                                        1_795_000_000_000, 2**56, 2**62])
def test_columns_of_every_sample_size_are_identical(first_time: int) -> None:
    """Samples of 12 to 21 bytes (timestamp varints of 1 to 10 bytes): `fill` copies the
    values as 8-byte words at a step that depends on that size; series of 1 to 9
    samples, some with a +0.0 or a tiny value (top byte 0, no +0.0) among them."""
    choices = [1.5, -2.0, 0.1, 1e300, 5e-324, 0.0, -0.0, 7.0]
    for count in (1, 2, 3, 5, 8, 9):
        times = [first_time + i for i in range(count)]
        for nseries in (1, 2, 3, 5):
            keys = [("m", (("n", str(i)),)) for i in range(nseries)]
            values = [[choices[(i * 3 + j * 5 + count) % len(choices)] for j in range(count)]
                      for i in range(nseries)]
            series = [SeriesSamples("m", key[1], times, one)
                      for key, one in zip(keys, values, strict=True)]
            raws = [struct.pack(f"<{count}d", *one) for one in values]
            assert WriteRequestEncoder().encode_columns(keys, times, raws) == \
                protobuf_bytes(series)
