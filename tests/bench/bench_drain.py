"""Drain benchmark: a 24 h outage shipped to a real receiver, totem-agent beside vmagent.

    .venv/bin/python tests/bench/bench_drain.py [--runs 3] [--cycles 5760] [--series 1000]
        [--outage 12] [--receivers victoria-metrics,prometheus]
        [--max-samples-per-send N] [--also-batch N] [--also-prepared MIB] [--no-profile]
        [--write-docs]

The outage is the simulated day of `tests/bench/buffer_day.py` (1,000 series at
15 s, 5,760 cycles = 5.76 M samples, fixed seed), shifted so that its last
cycle is a minute old (receivers refuse data that is too old). For each
receiver (VictoriaMetrics, and Prometheus 2.42 with
`--web.enable-remote-write-receiver` and `out_of_order_time_window: 7d`) and
each run, both senders face the same outage:

* totem-agent: the buffer is filled beforehand through the Buffer API (once,
  untimed; each run ships a copy of the file). The product's own shipper
  (`RemoteWrite`/`Shipper` of agent/outputs with its default settings: samples
  per request, parallel requests, memory for requests prepared ahead, backoff)
  runs in this process, against the receiver's closed port, for `--outage`
  seconds.
* vmagent (Debian's `victoria-metrics` package): started with
  `-remoteWrite.url` at the closed port and its defaults otherwise; it is fed
  the same samples (remote_write requests of 10 cycles to its own
  /api/v1/write) and waits until its persistent queue holds them all; its
  outage also lasts `--outage` seconds from its first attempt.

Then the receiver starts, and the clock runs from its start (process spawned)
until `sum(count_over_time(NAME[1d]))`, summed over the day's names, answers
every sample (polled every 0.2 s, once the last cycle is visible: the count is
costly for the receiver; VictoriaMetrics with its query cache off and flushed
before each poll). The time to the first
accepted request is reported apart: it is mostly the sender's backoff, which
depends on when the outage ends relative to its retry schedule.

Last, the time of the totem shipper is split (read from the buffer, encode the
WriteRequest, snappy, HTTP round trip including the receiver's work, ack in
the buffer) by running the shipper's steps one after the other with a clock
around each (mirroring `Shipper.ship_once`), then by running the product's
pipeline (the shipper's thread and its lanes) with a CPU clock around each of
its steps, and by cProfile.

`--max-samples-per-send` changes the shipper's batch size; `--also-batch N` times
a second totem configuration with N samples per request beside the default,
`--also-prepared MIB` one with MIB MiB of requests prepared ahead.
With `--write-docs` the report replaces this benchmark's section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bench.buffer_day import (  # noqa: E402
    CYCLES_PER_DAY,
    INTERVAL_MS,
    SERIES,
    START_MS,
    day,
)
from tests.bench.docs_section import replace_section  # noqa: E402  (needs the repo root)
from tests.integration.servers import ServerProcess, http_get  # noqa: E402
from tests.support import free_port, wait_until  # noqa: E402
from totem_agent.buffer import Buffer, SeriesSamples  # noqa: E402
from totem_agent.outputs.remote_write import RemoteWrite  # noqa: E402
from totem_agent.outputs.remote_write_client import Client, Destination  # noqa: E402
from totem_agent.outputs.remote_write_proto import (  # noqa: E402
    WriteRequestEncoder,
    compress,
)

DESTINATION = "bench"
FEED_CYCLES = 10          # cycles per request fed to vmagent (10,000 samples, as totem sends)
POLL = 0.2                # seconds between count queries
RECEIVERS = ("victoria-metrics", "prometheus")
VM_BINARY = "/usr/bin/victoria-metrics"
VMAGENT_BINARY = "/usr/bin/vmagent"


# -- the outage -----------------------------------------------------------------------------

@dataclass
class Outage:
    """The buffered day (a template buffer file) and the same samples as request bodies."""

    buffer_file: Path
    bodies: list[bytes]
    samples: int
    last_ms: int
    names: list[str]
    last_series: int  # series in the last cycle

    @property
    def count_query(self) -> str:
        """Samples of the day: one count_over_time per metric name (Prometheus refuses
        one over several names: without their names the series would collide)."""
        return " + ".join(f"sum(count_over_time({name}[1d]))" for name in self.names)

    @property
    def last_cycle_query(self) -> str:
        """Series whose newest sample is the last cycle's: cheap, unlike the count (one
        term per name, for the same reason)."""
        since = f"{self.last_ms / 1000 - 0.0005:.4f}"
        return " + ".join(f"count(timestamp({name}) >= {since})" for name in self.names)


def shifted_day(cycles: int, series: int, end_ms: int
                ) -> Iterator[tuple[int, list[tuple[str, dict[str, str], float]]]]:
    """buffer_day's day, moved so that its last cycle is at about `end_ms`."""
    shift = end_ms - (START_MS + (cycles - 1) * INTERVAL_MS)
    for ts, samples in day(cycles=cycles, series=series):
        yield ts + shift, samples


def group(cycles: list[tuple[int, list[tuple[str, dict[str, str], float]]]]
          ) -> list[SeriesSamples]:
    """Cycles as one SeriesSamples per series, in time order (as Buffer.read gives them)."""
    by_series: dict[tuple[str, tuple[tuple[str, str], ...]], SeriesSamples] = {}
    for ts, samples in cycles:
        for name, labels, value in samples:
            key = (name, tuple(sorted(labels.items())))
            one = by_series.get(key)
            if one is None:
                one = by_series[key] = SeriesSamples(name, key[1], [], [])
            one.timestamps.append(ts)
            one.values.append(value)
    return list(by_series.values())


def prepare(directory: Path, cycles: int, series: int) -> Outage:
    """Fill the template buffer (Buffer API, one destination that never sent) and encode
    the same cycles as remote_write bodies for vmagent. Untimed."""
    path = directory / "template.sqlite"
    end_ms = int(time.time() * 1000) - 60_000
    encoder = WriteRequestEncoder()
    bodies: list[bytes] = []
    pending: list[tuple[int, list[tuple[str, dict[str, str], float]]]] = []
    samples, last_ms, last_series = 0, 0, 0
    names: set[str] = set()
    with Buffer.open(path) as buf:
        buf.register_destination(DESTINATION)
        for ts, cycle in shifted_day(cycles, series, end_ms):
            buf.append(ts, cycle)
            samples += len(cycle)
            last_ms, last_series = ts, len(cycle)
            if not names:
                names.update(name for name, _, _ in cycle)
            pending.append((ts, cycle))
            if len(pending) == FEED_CYCLES:
                bodies.append(compress(encoder.encode(group(pending))))
                pending = []
        if pending:
            bodies.append(compress(encoder.encode(group(pending))))
        buf.checkpoint()
    return Outage(path, bodies, samples, last_ms, sorted(names), last_series)


def copy_buffer(outage: Outage, directory: Path) -> Path:
    target = directory / "buffer.sqlite"
    shutil.copyfile(outage.buffer_file, target)
    return target


# -- receivers --------------------------------------------------------------------------------

def receiver(kind: str, workdir: Path, port: int) -> ServerProcess:
    """A receiver on `port`, not started; data in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    if kind == "victoria-metrics":
        argv = [VM_BINARY, f"-httpListenAddr=127.0.0.1:{port}",
                f"-storageDataPath={workdir / 'data'}", "-retentionPeriod=100y",
                "-search.latencyOffset=0s", "-search.disableCache", "-loggerLevel=ERROR"]
        return ServerProcess("victoria-metrics", argv, workdir, url, "/health")
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit("prometheus is not installed (Debian package prometheus)")
    config = workdir / "prometheus.yml"
    config.write_text("global: {scrape_interval: 15s}\n"
                      "storage:\n  tsdb:\n    out_of_order_time_window: 7d\n")
    argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--web.enable-remote-write-receiver",
            "--log.level=warn"]
    return ServerProcess("prometheus", argv, workdir, url, "/-/ready")


class QueryError(RuntimeError):
    """The receiver refused the count query this time."""


def flush(server: ServerProcess) -> None:
    """VictoriaMetrics makes what it took searchable a few seconds later on its own;
    /internal/force_flush before querying, so the figure is when the samples reached
    its storage (Prometheus' head answers at once)."""
    if server.name == "victoria-metrics":
        http_get(server.url + "/internal/force_flush", timeout=30)


def instant_value(server: ServerProcess, outage: Outage, promql: str) -> int:
    """The single value of an instant query at the day's end (0 when empty)."""
    query = urllib.parse.urlencode({"query": promql,
                                    "time": f"{outage.last_ms / 1000 + 0.001:.3f}",
                                    "nocache": "1"})
    result = http_get(f"{server.url}/api/v1/query?{query}", timeout=30)
    if result.status != 200:
        # Prometheus 2.42 now and then answers 422 "cannot populate chunk ... not found"
        # while it maps head chunks to disk under the query: ask again at the next poll.
        raise QueryError(f"{server.name}: the query answered {result.status}: "
                         f"{result.text[:500]}")
    found = result.json()["data"]["result"]
    return int(float(found[0]["value"][1])) if found else 0


def stored_samples(server: ServerProcess, outage: Outage) -> int:
    """Samples of the day the receiver answers for."""
    flush(server)
    return instant_value(server, outage, outage.count_query)


def all_stored(server: ServerProcess, outage: Outage) -> bool:
    """Every sample of the day is queryable. The count reads every sample (measured
    here: up to 0.9 s of Prometheus' time per poll during a drain, taken from the
    ingestion), so it runs only once the last cycle is visible, for both senders alike."""
    flush(server)
    return (instant_value(server, outage, outage.last_cycle_query) >= outage.last_series
            and instant_value(server, outage, outage.count_query) >= outage.samples)


@dataclass
class Timing:
    sender: str
    receiver: str
    total_s: float           # receiver start -> every sample queryable
    first_accept_s: float    # receiver start -> first request accepted (mostly backoff)
    samples: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sending_s(self) -> float:
        return self.total_s - self.first_accept_s


def time_drain(server: ServerProcess, outage: Outage, accepted: Callable[[], bool]) -> Timing:
    """Start the receiver; seconds to the first accepted request and to the last sample."""
    t0 = time.monotonic()
    server.start(timeout=60)
    first: float | None = None
    deadline = t0 + 600
    problem = ""
    while time.monotonic() < deadline:
        if first is None and accepted():
            first = time.monotonic() - t0
        if first is not None:
            try:
                if all_stored(server, outage):
                    total = time.monotonic() - t0
                    return Timing("", server.name, total, first, outage.samples)
            except QueryError as err:
                problem = f" (last query error: {err})"
        time.sleep(POLL)
    raise RuntimeError(f"{server.name} did not get every sample within 600 s{problem}")


# -- the two senders --------------------------------------------------------------------------

Overrides = dict[str, Any]  # Destination settings other than the product's defaults


def destination(url: str, overrides: Overrides | None = None) -> Destination:
    """The shipper's settings: the product's defaults, or others to compare."""
    return Destination(name=DESTINATION, url=url, **(overrides or {}))


def run_totem(kind: str, outage: Outage, directory: Path, outage_s: float,
              overrides: Overrides | None = None) -> Timing:
    port = free_port()
    server = receiver(kind, directory / "receiver", port)
    buf = Buffer.open(copy_buffer(outage, directory))
    settings = destination(f"http://127.0.0.1:{port}/api/v1/write", overrides)
    shippers = RemoteWrite(buf, [settings])
    shipper = shippers.shippers[0]
    try:
        shippers.start()
        wait_until(lambda: shipper.retries > 0, timeout=30, message="the shipper to back off")
        time.sleep(outage_s)  # the outage itself (the experiment), not a synchronisation
        timing = time_drain(server, outage, lambda: shipper.last_success_at is not None)
        timing.sender = "totem-agent"
        stats = buf.stats().destinations[DESTINATION]
        timing.extra = {"requests": dict(shipper.requests), "retries": shipper.retries,
                        "pending_after": stats.pending_samples, "sent": stats.sent_samples}
        return timing
    finally:
        shippers.stop()
        buf.close()
        server.stop()


def vmagent_metrics(url: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in http_get(url + "/metrics").text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name_labels, value = line.rsplit(" ", 1)
        name = name_labels.split("{", 1)[0]
        if name.startswith(("vmagent_", "vm_persistentqueue")):
            key = name
            if name == "vmagent_remotewrite_requests_total":
                code = re.search(r'status_code="(\d)', name_labels)
                key = f"{name}:{code[1] if code else '?'}"
            totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def feed(url: str, bodies: list[bytes]) -> None:
    headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
               "X-Prometheus-Remote-Write-Version": "0.1.0"}
    for body in bodies:
        request = urllib.request.Request(url + "/api/v1/write", data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as answer:
            if answer.status // 100 != 2:
                raise RuntimeError(f"vmagent answered {answer.status}")


def run_vmagent(kind: str, outage: Outage, directory: Path, outage_s: float,
                overrides: Overrides | None = None) -> Timing:
    port, agent_port = free_port(), free_port()
    server = receiver(kind, directory / "receiver", port)
    queue = directory / "vmagent-queue"
    argv = [VMAGENT_BINARY, f"-httpListenAddr=127.0.0.1:{agent_port}",
            f"-remoteWrite.url=http://127.0.0.1:{port}/api/v1/write",
            f"-remoteWrite.tmpDataPath={queue}", "-loggerLevel=ERROR"]
    vmagent = ServerProcess("vmagent", argv, directory, f"http://127.0.0.1:{agent_port}",
                            "/health").start()
    try:
        began = time.monotonic()
        feed(vmagent.url, outage.bodies)

        def queued() -> bool:
            m = vmagent_metrics(vmagent.url)
            return m.get("vmagent_remotewrite_rows_pushed_after_relabel_total", 0) >= outage.samples
        wait_until(queued, timeout=120, interval=0.2, message="vmagent to queue every sample")
        # Everything queued (in memory up to 400 blocks, the rest on disk): what its queue
        # holds stops changing over more than its 1 s flush interval.
        last = [-1.0]

        def settled() -> bool:
            m = vmagent_metrics(vmagent.url)
            now = m["vm_persistentqueue_bytes_pending"] + 1e-9 * m[
                "vmagent_remotewrite_pending_inmemory_blocks"]
            same, last[0] = now == last[0], now
            return same
        wait_until(settled, timeout=60, interval=1.5, message="vmagent's queue to settle")
        queued_bytes = last[0]
        time.sleep(max(0.0, outage_s - (time.monotonic() - began)))  # the same outage
        timing = time_drain(server, outage, lambda: vmagent_metrics(vmagent.url).get(
            "vmagent_remotewrite_requests_total:2", 0) > 0)
        timing.sender = "vmagent"
        timing.extra = {"queued_bytes": queued_bytes}
        return timing
    finally:
        vmagent.stop()
        server.stop()


# -- where the totem shipper's time goes ------------------------------------------------------

def profile_totem(kind: str, outage: Outage, directory: Path,
                  overrides: Overrides | None = None) -> dict[str, Any]:
    """Drain a copy of the buffer with the shipper's steps timed one by one, then again
    under cProfile; the receiver is up from the start."""
    split: dict[str, float] = {"read": 0.0, "encode": 0.0, "compress": 0.0, "http": 0.0,
                               "ack": 0.0}
    port = free_port()
    server = receiver(kind, directory / "receiver", port).start(timeout=60)
    try:
        buf = Buffer.open(copy_buffer(outage, directory))
        settings = destination(f"{server.url}/api/v1/write", overrides)
        client, encoder = Client(settings), WriteRequestEncoder()
        t_start = time.perf_counter()
        while True:
            t = time.perf_counter()
            batch = buf.read(DESTINATION, max_samples=settings.max_samples_per_send)
            split["read"] += time.perf_counter() - t
            if batch is None:
                break
            t = time.perf_counter()
            payload = encoder.encode(batch.series)
            split["encode"] += time.perf_counter() - t
            t = time.perf_counter()
            body = compress(payload)
            split["compress"] += time.perf_counter() - t
            t = time.perf_counter()
            answer = client.post(body)
            split["http"] += time.perf_counter() - t
            if answer.status is None or answer.status // 100 != 2:
                raise RuntimeError(f"{kind}: {answer.describe()}")
            t = time.perf_counter()
            buf.ack(DESTINATION, batch)
            split["ack"] += time.perf_counter() - t
        wall = time.perf_counter() - t_start
        client.close()
        buf.close()
    finally:
        server.stop()
    shutil.rmtree(directory / "receiver", ignore_errors=True)
    # cProfile of the product's own loop (Shipper.ship_once), receiver up.
    port = free_port()
    server = receiver(kind, directory / "receiver", port).start(timeout=60)
    try:
        buf = Buffer.open(copy_buffer(outage, directory))
        shippers = RemoteWrite(buf, [destination(f"{server.url}/api/v1/write",
                                                 overrides)])
        profiler = cProfile.Profile()
        profiler.enable()
        while shippers.shippers[0].ship_once():
            pass
        profiler.disable()
        buf.close()
    finally:
        server.stop()
    pipeline = profile_pipeline(kind, outage, directory, overrides)
    stats = pstats.Stats(profiler)
    top = []
    for (filename, line, func), (_cc, _nc, tottime, cumtime, _callers) in sorted(
            stats.stats.items(), key=lambda item: -item[1][2])[:10]:  # type: ignore[attr-defined]
        where = (f"{Path(filename).parent.name}/{Path(filename).name}:{line}"
                 if filename != "~" else "built-in")
        top.append((f"{func} ({where})", tottime, cumtime))
    return {"split": split, "wall": wall, "samples": outage.samples, "top": top,
            "receiver": kind, "pipeline": pipeline}


def profile_pipeline(kind: str, outage: Outage, directory: Path,
                     overrides: Overrides | None = None) -> dict[str, float]:
    """The running shipper (its thread and lanes) draining a copy of the buffer into a
    receiver up from the start: wall time, and each step's CPU time (thread clock)."""
    cpu = {"read": 0.0, "prepare": 0.0, "settle": 0.0, "coordinator": 0.0, "lanes": 0.0}
    lock = threading.Lock()

    def clocked(key: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            began = time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                with lock:
                    cpu[key] += time.thread_time() - began
        return run

    work = directory / "pipeline"
    work.mkdir()
    server = receiver(kind, work / "receiver", free_port()).start(timeout=60)
    buf = Buffer.open(copy_buffer(outage, work))
    try:
        shippers = RemoteWrite(buf, [destination(f"{server.url}/api/v1/write",
                                                 overrides)])
        shipper = shippers.shippers[0]
        pipeline = shipper.pipeline
        # Instrumentation of this one object: the clocks wrap the product's own steps.
        shipper.read = clocked("read", shipper.read)  # type: ignore[method-assign]
        shipper.settle = clocked("settle", shipper.settle)  # type: ignore[method-assign]
        shipper.deliver_part = clocked("lanes", shipper.deliver_part)  # type: ignore[method-assign]
        pipeline._submit = clocked("prepare", pipeline._submit)  # type: ignore[method-assign]
        pipeline.drain = clocked("coordinator", pipeline.drain)  # type: ignore[method-assign]
        began = time.monotonic()
        shippers.start()
        wait_until(lambda: buf.stats().destinations[DESTINATION].pending_samples == 0,
                   timeout=600, interval=0.2, message="the pipeline to drain")
        wall = time.monotonic() - began
        shippers.stop()
    finally:
        buf.close()
        server.stop()
    with lock:
        return {"wall": wall, **cpu}


# -- the report -------------------------------------------------------------------------------

def outage_rate(samples: int, seconds: float) -> str:
    return f"{samples / seconds / 1e6:.2f} M samples/s"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_range(values: list[float]) -> str:
    return f"{median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0] if Path("/proc/loadavg").exists() \
        else "?"


def versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        except OSError:
            return "?"
        text = (done.stdout or done.stderr).strip().splitlines()
        return text[0] if text else "?"
    package = first_line(["dpkg-query", "-W", "-f", "${Version}\\n", "victoria-metrics"])
    return {"victoria-metrics": f"victoria-metrics and vmagent {package} (Debian)",
            "prometheus": first_line(["prometheus", "--version"])}


def report(args: argparse.Namespace, timings: list[Timing], profile: dict[str, Any] | None,
           loads: list[str], command: str) -> str:
    batch = (f"{args.max_samples_per_send:,}" if args.max_samples_per_send
             else f"defaults: {Destination.max_samples_per_send:,}")
    lines = [
        "## Drain after a 24 h outage: totem-agent beside vmagent",
        "",
        f"Written by `{command}`; do not edit by hand. Outage: the simulated day of "
        f"`tests/bench/buffer_day.py` ({args.series:,} series at 15 s, {args.cycles:,} cycles "
        f"= {args.series * args.cycles:,} samples), shifted to end a minute ago. Each sender "
        f"faces the receiver's closed port for {args.outage:g} s, then the receiver starts; "
        "timed from the receiver's start (process spawned) to "
        "`sum(count_over_time(NAME[1d]))` summed over the day's metric names answering "
        f"every sample (polled every {POLL:g} s once the last cycle is visible: the count "
        "reads every sample, which costs the receiver). "
        "totem-agent: the product's `RemoteWrite` shipper in-process over a buffer filled "
        f"beforehand (batches of {batch} samples, each split by series over "
        f"{Destination.parallel_requests} requests in parallel, up to "
        f"{Destination.max_prepared_size // 2**20} MiB of requests prepared ahead, backoff "
        f"{Destination.min_backoff:g} s doubling to {Destination.max_backoff:g} s). "
        "vmagent: its defaults, fed the same samples, queue filled before the "
        "receiver starts. VictoriaMetrics gets `/internal/force_flush` before each count (it "
        "makes new samples searchable seconds later on its own). "
        f"{args.runs} runs per pair, median (range).",
        "",
        "| receiver | sender | drain time | of which until the first accepted request "
        "(backoff) | from the first accepted request | samples/s (whole drain) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    verdicts = []
    for kind in args.receivers:
        medians: dict[str, tuple[float, float]] = {}
        for sender, _, _ in senders(args):
            runs = [t for t in timings if t.receiver == kind and t.sender == sender]
            if not runs:
                continue
            totals = [t.total_s for t in runs]
            firsts = [t.first_accept_s for t in runs]
            sends = [t.sending_s for t in runs]
            rate = runs[0].samples / median(totals)
            medians[sender] = (median(totals), median(sends))
            lines.append(f"| {kind} | {sender} | {fmt_range(totals)} | {fmt_range(firsts)} | "
                         f"{fmt_range(sends)} | {rate / 1e6:.2f} M |")
        for sender, (total, sending) in medians.items():
            if sender.startswith("totem-agent") and "vmagent" in medians:
                ratio = total / medians["vmagent"][0]
                send_ratio = sending / medians["vmagent"][1]
                verdicts.append(
                    f"| {kind} | {sender} | **{ratio:.2f}** | "
                    f"{'met' if ratio <= 1 else 'NOT met'} | {send_ratio:.2f} |")
    lines += ["", "| receiver | sender | ratio to vmagent, drain time (target <= 1) | target | "
              "ratio from the first accepted request |", "| --- | --- | --- | --- | --- |",
              *verdicts, ""]
    if profile is not None:
        split, wall = profile["split"], profile["wall"]
        lines += [
            f"Where the totem shipper's time goes ({profile['receiver']} up from the start, "
            f"the shipper's steps one after the other with a clock around each, one thread): "
            f"{profile['samples']:,} samples in {wall:.2f} s = "
            f"{profile['samples'] / wall / 1e6:.2f} M samples/s.",
            "",
            "| step | seconds | share |",
            "| --- | --- | --- |",
        ]
        names = {"read": "read from the buffer (`Buffer.read`: decode, group per series)",
                 "encode": "encode the WriteRequest (`WriteRequestEncoder.encode`)",
                 "compress": "snappy (`cramjam.snappy.compress_raw`)",
                 "http": "HTTP round trip (`Client.post`, includes the receiver's ingestion)",
                 "ack": "acknowledge in the buffer (`Buffer.ack`: cursor, delete, fsync)"}
        for key, label in names.items():
            lines.append(f"| {label} | {split[key]:.2f} | {100 * split[key] / wall:.0f} % |")
        own = split["read"] + split["encode"] + split["compress"] + split["ack"]
        lines += ["", f"One thing at a time, the shipper's own work (read, encode, compress, "
                  f"ack: {100 * own / wall:.0f} %, Python on one core) and the wait for the "
                  f"receiver ({100 * split['http'] / wall:.0f} %) add up."]
        pipe = profile.get("pipeline")
        if pipe:
            lines += [
                "", f"The running shipper overlaps them (`remote_write_pipeline`): its thread "
                f"reads, encodes and compresses the next batches while its "
                f"{Destination.parallel_requests} lanes post the previous ones, each on its "
                f"own connection. The same drain through it: {pipe['wall']:.2f} s "
                f"({outage_rate(profile['samples'], pipe['wall'])}), CPU time by step "
                "(thread clocks):", "",
                "| step | CPU seconds |", "| --- | --- |",
                f"| read from the buffer | {pipe['read']:.2f} |",
                f"| split per lane, encode, compress | {pipe['prepare']:.2f} |",
                f"| settle in the buffer | {pipe['settle']:.2f} |",
                f"| the shipper's thread, all told | {pipe['coordinator']:.2f} |",
                f"| the lanes (HTTP) | {pipe['lanes']:.2f} |", "",
                "The shipper's thread is the critical path: its CPU time is most of the "
                "drain's wall time, on a machine whose two CPUs it shares with the receiver. "
                "vmagent keeps 4 requests in flight (`-remoteWrite.queues`, 2 per CPU) from a "
                "queue of ready-made compressed blocks: it has no decoding or encoding left "
                "to do when the receiver comes back."]
        lines += ["", "cProfile of `Shipper.ship_once` draining the same buffer (top functions "
                  "by own time; cProfile inflates Python-level code):", "",
                  "| function | own s | cumulative s |", "| --- | --- | --- |"]
        for name, tottime, cumtime in profile["top"]:
            lines.append(f"| `{name}` | {tottime:.2f} | {cumtime:.2f} |")
        lines.append("")
    v = versions()
    lines += [f"Machine: {os.cpu_count()} CPUs, load average (1 min) at the start of each "
              f"run: {', '.join(loads)}; {v['victoria-metrics']}, "
              f"{v['prometheus']}; {time.strftime('%Y-%m-%d', time.gmtime())}. The sender, "
              "the receiver and the count queries share the CPUs.", ""]
    return "\n".join(lines)


def base_overrides(args: argparse.Namespace) -> Overrides:
    return {"max_samples_per_send": args.max_samples_per_send} \
        if args.max_samples_per_send else {}


def senders(args: argparse.Namespace
            ) -> list[tuple[str, Callable[..., Timing], Overrides | None]]:
    """(label, run function, settings) of each sender to time."""
    base = base_overrides(args)
    chosen: list[tuple[str, Callable[..., Timing], Overrides | None]] = [
        ("totem-agent", run_totem, base), ("vmagent", run_vmagent, None)]
    if args.also_batch:
        chosen.append((f"totem-agent, {args.also_batch:,} samples per request", run_totem,
                       {**base, "max_samples_per_send": args.also_batch}))
    if args.also_prepared is not None:
        chosen.append((f"totem-agent, {args.also_prepared:g} MiB prepared ahead", run_totem,
                       {**base, "max_prepared_size": int(args.also_prepared * 2**20)}))
    return chosen


def run(args: argparse.Namespace, directory: Path,
        log: Callable[[str], None] = lambda _: None) -> tuple[list[Timing], dict[str, Any] | None,
                                                           list[str]]:
    outage = prepare(directory, args.cycles, args.series)
    log(f"buffer filled: {outage.samples:,} samples, {len(outage.bodies)} bodies for vmagent")
    timings: list[Timing] = []
    loads: list[str] = []
    for index in range(args.runs):
        for kind in args.receivers:
            for position, (sender, func, overrides) in enumerate(senders(args)):
                work = directory / f"{kind}-{position}-{index}"
                work.mkdir()
                loads.append(load())
                timing = func(kind, outage, work, args.outage, overrides)
                timing.sender = sender
                log(f"{kind} {sender} run {index}: {timing.total_s:.2f} s "
                    f"(first accepted {timing.first_accept_s:.2f} s) {json.dumps(timing.extra)}")
                timings.append(timing)
                shutil.rmtree(work, ignore_errors=True)
    profile = None
    if args.profile:
        work = directory / "profile"
        work.mkdir()
        profile = profile_totem(args.receivers[0], outage, work, base_overrides(args))
        log(f"profile: {json.dumps(profile['split'])} wall {profile['wall']:.2f}")
    return timings, profile, loads


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=CYCLES_PER_DAY)
    parser.add_argument("--series", type=int, default=SERIES)
    parser.add_argument("--outage", type=float, default=12.0,
                        help="seconds each sender faces the closed port before the receiver "
                        "starts (default 12: totem's backoff has reached its 5 s cap)")
    parser.add_argument("--receivers", default=",".join(RECEIVERS),
                        type=lambda text: [r for r in text.split(",") if r])
    parser.add_argument("--max-samples-per-send", type=int,
                        help="the shipper's batch size (default: the product's default)")
    parser.add_argument("--also-batch", type=int, metavar="N",
                        help="also time the totem shipper with N samples per request")
    parser.add_argument("--also-prepared", type=float, metavar="MIB",
                        help="also time the totem shipper with MIB MiB of requests prepared "
                        "ahead (max_prepared_size)")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temp dir)")
    parser.add_argument("--write-docs", action="store_true",
                        help="replace this benchmark's section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    for kind in args.receivers:
        if kind not in RECEIVERS:
            parser.error(f"--receivers: {kind!r} is not one of {', '.join(RECEIVERS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join([".venv/bin/python tests/bench/bench_drain.py", *given])

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        timings, profile, loads = run(args, Path(tempfile.mkdtemp(dir=args.dir)), log)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
            timings, profile, loads = run(args, Path(tmp), log)
    text = report(args, timings, profile, loads, command)
    print(text)
    if args.write_docs:
        replace_section("bench_drain.py", text, demote_headings=True)
        print("wrote its section of docs/benchmarks.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
