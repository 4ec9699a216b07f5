"""What the buffer hands out: batches of samples and statistics. No logic here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]

# Reasons the buffer itself uses; a shipper adds its own (`rejected`, `too_old`, ...).
EVICTED_SIZE = "size"
EVICTED_AGE = "age"
DISK_FULL = "disk_full"


class UnknownDestinationError(KeyError):
    """A destination that was never registered (or was removed)."""


class StaleBatchError(ValueError):
    """A batch that does not continue the destination's cursor (read before a re-registration)."""


@dataclass(frozen=True)
class SeriesSamples:
    """One series' samples within a batch, oldest first.

    `labels` are sorted by name and do not include `__name__`. `values` is a list,
    or a `codec.PackedValues` (float64 bytes) from `Buffer.read(..., packed=True)`.
    """

    name: str
    labels: Labels
    timestamps: list[int]
    values: Sequence[float]


@dataclass(frozen=True)
class Batch:
    """Whole cycles `after_seq + 1 .. last_seq` read for one destination.

    Settle it with `Buffer.ack`, `Buffer.drop` or `Buffer.commit`, passing it
    back as it is. `cycle_samples[i]` is the sample count of cycle
    `after_seq + 1 + i` (the buffer needs it if eviction took part of the batch
    while it was in flight).

    Read with `packed=True`, a batch whose series all have a value in every cycle
    (the usual one) comes as `columns` instead, `series` empty.
    """

    destination: str
    after_seq: int
    last_seq: int
    samples: int
    first_ts: int
    last_ts: int
    cycle_samples: tuple[int, ...]
    series: tuple[SeriesSamples, ...]
    columns: PackedColumns | None = None


@dataclass(frozen=True)
class PackedColumns:
    """The series of a batch, each with a value in every cycle, as the remote_write
    encoder takes them fastest: no object per series or per sample.

    `keys[i]` is series i's (name, labels), `values[i]` its values as little-endian
    float64 bytes, one per timestamp. `keys` is the same list object in every batch
    of the same series (a consumer may cache by it); nothing here may be mutated.
    """

    keys: list[tuple[str, Labels]]
    timestamps: list[int]
    values: list[bytes]


@dataclass(frozen=True)
class DestinationStats:
    """Counts of one destination; `sent + pending + dropped == appended` holds exactly.

    `appended` is what was appended while this destination existed, plus what
    was still buffered when it was registered with `from_oldest=True`.
    """

    name: str
    cursor: int
    appended_samples: int
    pending_samples: int
    oldest_pending_ms: int | None
    sent_samples: int
    dropped_samples: dict[str, int]
    last_commit_ms: int | None

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped_samples.values())


@dataclass(frozen=True)
class BufferStats:
    """The buffer as a whole, and each destination."""

    appended_samples: int
    appended_cycles: int
    # Samples in evicted rows, by reason (also counted per destination that had not sent them).
    evicted_samples: dict[str, int]
    # Cycles (and their samples) that could not be appended, by reason (`disk_full`).
    lost_cycles: dict[str, int]
    lost_samples: dict[str, int]
    bytes_on_disk: int  # database + WAL files
    used_bytes: int  # pages in use (the size bound applies to this)
    rows: int
    buffered_samples: int
    oldest_ms: int | None
    newest_ms: int | None
    maintenance_failures: int
    destinations: dict[str, DestinationStats] = field(default_factory=dict)
