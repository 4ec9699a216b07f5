"""`totem-agent buffer stats|export`: look into the kiosk's buffer without the agent's help.

Both open the buffer read-only, so they work while the agent runs (SQLite's WAL
lets a reader in beside the writer) and on a disk taken out of a dead kiosk.
`export --format openmetrics` writes what `promtool tsdb create-blocks-from
openmetrics` loads, so a technician can salvage the history by hand.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from totem_agent.buffer import Buffer, BufferFormatError, BufferStats, SeriesSamples
from totem_agent.recorder import buffer_path

FORMATS = ("openmetrics", "jsonl")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ExportError(ValueError):
    """A --since/--until a person typed that is not a time."""


def parse_when(text: str, now: float) -> int:
    """A time in ms: RFC 3339 / ISO 8601 (`2026-11-23T10:00:00Z`, `2026-11-23`), Unix
    seconds, or a duration ago (`90m`, `24h`, `7d`)."""
    value = text.strip()
    relative = _RELATIVE.match(value)
    if relative:
        return int((now - float(relative.group(1)) * _UNIT_SECONDS[relative.group(2)]) * 1000)
    try:
        return int(float(value) * 1000)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ExportError(f"{text!r} is not a time: use 2026-11-23T10:00:00Z, a Unix time, "
                          "or a duration ago such as 24h or 7d") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def _age(ms: int | None, now: float) -> str:
    if ms is None:
        return "-"
    seconds = max(0.0, now - ms / 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def open_readonly(state_dir: str) -> Buffer:
    path = buffer_path(state_dir)
    if not path.exists():
        raise FileNotFoundError(f"no buffer at {path} (has the agent run with this "
                                "[agent] state_dir?)")
    return Buffer.open(path, readonly=True)


def stats_document(stats: BufferStats, path: Path, now: float) -> dict[str, Any]:
    return {
        "path": str(path),
        "bytes_on_disk": stats.bytes_on_disk,
        "appended_samples": stats.appended_samples,
        "appended_cycles": stats.appended_cycles,
        "buffered_samples": stats.buffered_samples,
        "oldest": _iso(stats.oldest_ms),
        "newest": _iso(stats.newest_ms),
        "lost_cycles": dict(stats.lost_cycles),
        "lost_samples": dict(stats.lost_samples),
        "evicted_samples": dict(stats.evicted_samples),
        "destinations": {
            name: {"pending_samples": d.pending_samples,
                   "oldest_pending": _iso(d.oldest_pending_ms) if d.pending_samples else None,
                   "oldest_pending_age_seconds": (
                       round(max(0.0, now - d.oldest_pending_ms / 1000), 3)
                       if d.pending_samples and d.oldest_pending_ms is not None else 0),
                   "sent_samples": d.sent_samples,
                   "dropped_samples": dict(d.dropped_samples),
                   "last_success": _iso(d.last_commit_ms)}
            for name, d in stats.destinations.items()},
    }


def print_stats(stats: BufferStats, path: Path, now: float, out: TextIO) -> None:
    mb = stats.bytes_on_disk / 1e6
    print(f"buffer {path}: {mb:.1f} MB on disk, {stats.buffered_samples:,} samples held "
          f"({_iso(stats.oldest_ms)} .. {_iso(stats.newest_ms)})", file=out)
    lost = stats.lost_cycles.get("disk_full", 0)
    if lost:
        print(f"  {lost:,} collection cycles lost because the disk was full", file=out)
    for reason, n in sorted(stats.evicted_samples.items()):
        print(f"  {n:,} samples evicted at the {reason} bound", file=out)
    if not stats.destinations:
        print("no remote_write destinations: the buffer only keeps history", file=out)
        return
    print(f"{'destination':<20} {'pending':>12} {'oldest':>8} {'sent':>14} {'dropped':>10} "
          "last success", file=out)
    for name, d in sorted(stats.destinations.items()):
        oldest = _age(d.oldest_pending_ms, now) if d.pending_samples else "-"
        print(f"{name:<20} {d.pending_samples:>12,} {oldest:>8} {d.sent_samples:>14,} "
              f"{d.dropped_total:>10,} {_iso(d.last_commit_ms)}", file=out)
        for reason, n in sorted(d.dropped_samples.items()):
            print(f"{'':<20}   dropped {n:,} ({reason})", file=out)


# -- export ---------------------------------------------------------------------

def _om_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _om_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def openmetrics_lines(series: SeriesSamples) -> Iterator[str]:
    labels = ",".join(f'{k}="{_om_escape(v)}"' for k, v in series.labels)
    head = f"{series.name}{{{labels}}}" if labels else series.name
    for ts, value in zip(series.timestamps, series.values, strict=True):
        yield f"{head} {_om_value(value)} {ts / 1000:.3f}\n"


def jsonl_lines(series: SeriesSamples) -> Iterator[str]:
    labels = dict(series.labels)
    for ts, value in zip(series.timestamps, series.values, strict=True):
        shown: float | str = value if math.isfinite(value) else _om_value(value)
        yield json.dumps({"name": series.name, "labels": labels, "timestamp_ms": ts,
                          "value": shown}, separators=(",", ":")) + "\n"


class _Progress:
    """A one-line progress bar on a terminal; nothing when stderr is a pipe or file."""

    def __init__(self, total: int, err: TextIO) -> None:
        self.total = max(total, 1)
        self.err = err
        self.enabled = err.isatty()
        self.last_draw = 0.0

    def update(self, done: int, samples: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        share = min(done / self.total, 1.0)
        bar = "#" * int(share * 30)
        self.err.write(f"\rexporting [{bar:<30}] {share:4.0%} {samples:,} samples")
        if final:
            self.err.write("\n")
        self.err.flush()


def export(buffer: Buffer, since_ms: int | None, until_ms: int | None, fmt: str,
           out: TextIO, err: TextIO) -> int:
    """Write every buffered sample in [since, until); returns the sample count."""
    lines = openmetrics_lines if fmt == "openmetrics" else jsonl_lines
    progress = _Progress(buffer.stats().rows, err)
    written = rows = 0
    for row in buffer.scan(since_ms, until_ms):
        rows += 1
        for series in row:
            for line in lines(series):
                out.write(line)
            written += len(series.timestamps)
        progress.update(rows, written)
    if fmt == "openmetrics":
        out.write("# EOF\n")
    progress.update(rows, written, final=True)
    return written


def run_buffer_command(args: Any, state_dir: str, out: TextIO, err: TextIO) -> int:
    """`buffer stats` / `buffer export`; returns an exit status (0 ok, 4 cannot read)."""
    now = time.time()
    try:
        buffer = open_readonly(state_dir)
    except (OSError, sqlite3.Error, BufferFormatError) as problem:
        print(f"totem-agent: cannot open the buffer: {problem}", file=err)
        return 4
    try:
        if args.buffer_command == "stats":
            stats = buffer.stats()
            if args.json:
                print(json.dumps(stats_document(stats, buffer.path, now), indent=2), file=out)
            else:
                print_stats(stats, buffer.path, now, out)
            return 0
        try:
            since = parse_when(args.since, now) if args.since else None
            until = parse_when(args.until, now) if args.until else None
        except ExportError as problem:
            print(f"totem-agent: {problem}", file=err)
            return 64
        if args.output and args.output != "-":
            with open(args.output, "w", encoding="utf-8", newline="\n") as fh:
                count = export(buffer, since, until, args.format, fh, err)
            print(f"exported {count:,} samples to {args.output}", file=err)
        else:
            try:
                export(buffer, since, until, args.format, out, err)
            except BrokenPipeError:
                # `... | head`: the reader has what it wanted. Point stdout at devnull so
                # the interpreter's final flush does not complain again (Python docs' recipe).
                devnull = os.open(os.devnull, os.O_WRONLY)
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(devnull, out.fileno())
        return 0
    finally:
        buffer.close()
