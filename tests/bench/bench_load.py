"""Load benchmark: the real agent under events and scrapes for minutes, with slow clients.

Not a test (pytest does not collect it): a script run on demand.

    .venv/bin/python tests/bench/bench_load.py [--duration 180] [--interval 1s]
        [--single-rate 100] [--batch-rate 5] [--batch-size 100] [--scrape-rate 10]
        [--slow-clients 5] [--write-docs]

Two real agents start (`totem-agent run --listen 127.0.0.1:0`, fresh state_dir
each, default collectors at `--interval`): the loaded one, and an idle twin that
nobody posts to or scrapes, the peer its memory is compared with (the history of
the status page and the allocator settle over time whether or not there is load).
A client subprocess of this script then loads the first for `--duration` seconds,
each stream on its own keep-alive http.client connection, paced (a stream that
falls behind skips, never bursts, so the traffic stays bounded):

  single events at --single-rate/s, batches of --batch-size at --batch-rate/s,
  GET /metrics at --scrape-rate/s, and every 15 s one batch one event over
  [events] max_batch (1000): the documented 413, on a fresh connection.

Meanwhile this process opens --slow-clients plain-HTTP connections that send a
GET /health request one byte a second (the headers padded so the request ends a
few seconds before the load does) and reads their answers at the end; it samples
the VmRSS of both agents every 10 s, and reads each agent's
totem_agent_collector_runs_total before and after.

Reported: requests by stream and status code (anything but 200, and 413 for the
over-limit probes, is an error), latency p50/p99 per stream, events accepted by
the agent vs sent, RSS of both agents over time, collector runs vs wall time /
interval, the slow clients' answers, the load average.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.bench_events import Agent, mixed_event, parse_duration, scrape
from tests.bench.docs_section import replace_section

MAX_BATCH = 1000  # [events] max_batch's default: one more is a 413
PROBE_EVERY = 15.0
RSS_EVERY = 10.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in 0..100."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


# -- the client (a second process) -------------------------------------------------------

class Stream:
    """One paced stream of requests on its own keep-alive connection."""

    def __init__(self, name: str, address: tuple[str, int], rate: float,
                 make: Any, deadline: float, expect: int = 200) -> None:
        self.name, self.address, self.rate, self.make = name, address, rate, make
        self.expect = expect  # the answer that is not an error; its latency is kept
        self.deadline = deadline
        self.codes: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.skipped = 0
        self.events = 0  # events in requests answered 200

    def run(self) -> None:
        conn = http.client.HTTPConnection(*self.address, timeout=30)
        step, next_at, i = 1.0 / self.rate, time.monotonic(), 0
        while True:
            now = time.monotonic()
            if now >= self.deadline:
                break
            if next_at > now:
                time.sleep(min(next_at - now, self.deadline - now))
                continue
            behind = int((now - next_at) / step)
            if behind:  # fell behind: drop the missed slots, do not burst
                self.skipped += behind
                next_at += behind * step
            next_at += step
            method, path, body, events = self.make(i)
            i += 1
            started = time.perf_counter()
            try:
                headers = {"Content-Type": "application/json"} if body else {}
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                self.codes[str(response.status)] += 1
                if response.status == self.expect:
                    self.latencies.append(elapsed)
                    self.events += events
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException) as err:
                self.codes[f"error: {type(err).__name__}"] += 1
                conn.close()
        conn.close()

    def result(self) -> dict[str, Any]:
        lat = self.latencies or [0.0]
        return {"codes": dict(self.codes), "skipped": self.skipped, "events": self.events,
                "requests": sum(self.codes.values()),
                "p50_ms": percentile(lat, 50) * 1000, "p99_ms": percentile(lat, 99) * 1000,
                "max_ms": max(lat) * 1000}


def client(url: str, args: argparse.Namespace) -> dict[str, Any]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    address = (host, int(port))
    deadline = time.monotonic() + args.duration
    size = args.batch_size

    def single(i: int) -> tuple[str, str, bytes, int]:
        body = {"type": "ticket_created", "service": "caixa", "id": f"s-{i}"}
        return "POST", "/api/v1/events", json.dumps(body).encode(), 1

    def batch(i: int) -> tuple[str, str, bytes, int]:
        body = [mixed_event(i * size + k, "b") for k in range(size)]
        return "POST", "/api/v1/events", json.dumps(body).encode(), size

    def metrics(i: int) -> tuple[str, str, None, int]:
        return "GET", "/metrics", None, 0

    def over_limit(i: int) -> tuple[str, str, bytes, int]:
        body = [mixed_event(k, f"o{i}") for k in range(MAX_BATCH + 1)]
        return "POST", "/api/v1/events", json.dumps(body).encode(), 0

    streams = [Stream("single", address, args.single_rate, single, deadline),
               Stream("batch", address, args.batch_rate, batch, deadline),
               Stream("scrape", address, args.scrape_rate, metrics, deadline),
               Stream("over_limit", address, 1 / PROBE_EVERY, over_limit, deadline,
                      expect=413)]
    threads = [threading.Thread(target=s.run, name=s.name) for s in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {s.name: s.result() for s in streams}


# -- this process: agents, RSS, slow clients ------------------------------------------------

def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SystemExit(f"no VmRSS for {pid}")


def slow_client(address: tuple[str, int], seconds: float, out: dict[str, Any]) -> None:
    """GET /health sent one byte a second (faster only when `seconds` is too short for
    the bare request), over about `seconds`; the answer's status."""
    head = b"GET /health HTTP/1.1\r\nHost: bench\r\nX-Slow: "
    tail = b"\r\nConnection: close\r\n\r\n"
    request = head + b"a" * max(1, int(seconds) - len(head) - len(tail)) + tail
    pause = min(1.0, seconds / len(request))
    started = time.monotonic()
    try:
        with socket.create_connection(address, timeout=30) as sock:
            for i in range(len(request)):
                sock.sendall(request[i:i + 1])
                time.sleep(pause)
            answer = sock.recv(64)
        out["status"] = answer.split(b" ", 2)[1].decode() if answer else "no answer"
    except OSError as err:
        out["status"] = f"error: {type(err).__name__}: {err}"
    out["bytes"], out["seconds"] = len(request), time.monotonic() - started
    out["bytes_per_s"] = 1 / pause


def collector_runs(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]],
                   elapsed: float, interval: float) -> dict[str, Any]:
    runs_b, runs_a = before["totem_agent_collector_runs_total"], \
        after["totem_agent_collector_runs_total"]
    cycles = {c: runs_a[c] - runs_b.get(c, 0) for c in runs_a}
    return {"count": len(cycles), "elapsed_s": elapsed, "expected": elapsed / interval,
            "min": min(cycles.values()), "max": max(cycles.values()),
            "failed": sorted(c for c, v in after["totem_agent_collector_success"].items()
                             if v != 1)}


def one_run(args: argparse.Namespace) -> dict[str, Any]:
    interval = parse_duration(args.interval)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        (Path(tmp) / "loaded").mkdir()
        (Path(tmp) / "idle").mkdir()
        loaded = Agent(Path(tmp) / "loaded", args.interval)
        idle = Agent(Path(tmp) / "idle", args.interval)
        try:
            loaded.wait_collectors()
            idle.wait_collectors()
            assert loaded.url is not None
            host, port = loaded.url.removeprefix("http://").rsplit(":", 1)
            load_start = os.getloadavg()
            before = {"loaded": scrape(loaded), "idle": scrape(idle)}
            t0 = time.time()
            rss: list[dict[str, float]] = [{"t": 0.0, "loaded": rss_kib(loaded.proc.pid),
                                            "idle": rss_kib(idle.proc.pid)}]
            argv = [sys.executable, __file__, "--client", loaded.url, *client_argv(args)]
            child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            slow: list[dict[str, Any]] = [{} for _ in range(args.slow_clients)]
            slow_threads = [threading.Thread(target=slow_client, daemon=True, args=(
                (host, int(port)), args.duration - 10, out)) for out in slow]
            for thread in slow_threads:
                thread.start()
            while True:
                try:
                    out, _ = child.communicate(timeout=RSS_EVERY)
                    break
                except subprocess.TimeoutExpired:
                    rss.append({"t": time.time() - t0, "loaded": rss_kib(loaded.proc.pid),
                                "idle": rss_kib(idle.proc.pid)})
            rss.append({"t": time.time() - t0, "loaded": rss_kib(loaded.proc.pid),
                        "idle": rss_kib(idle.proc.pid)})
            if child.returncode != 0:
                raise SystemExit(f"client failed ({child.returncode})")
            streams = json.loads(out)
            t1 = time.time()
            after = {"loaded": scrape(loaded), "idle": scrape(idle)}
            for thread in slow_threads:
                thread.join(30)
            load_end = os.getloadavg()
        finally:
            loaded.stop()
            idle.stop()
    sent = streams["single"]["events"] + streams["batch"]["events"]
    accepted = after["loaded"]["totem_agent_events_accepted_total"][""]
    return {"streams": streams, "slow": slow, "rss_kib": rss, "events_sent_ok": sent,
            "events_accepted": accepted, "loadavg": [load_start, load_end],
            "collectors": {name: collector_runs(before[name], after[name], t1 - t0, interval)
                           for name in ("loaded", "idle")}}


def client_argv(args: argparse.Namespace) -> list[str]:
    return ["--duration", str(args.duration), "--single-rate", str(args.single_rate),
            "--batch-rate", str(args.batch_rate), "--batch-size", str(args.batch_size),
            "--scrape-rate", str(args.scrape_rate)]


# -- report ---------------------------------------------------------------------------------

def markdown(r: dict[str, Any], args: argparse.Namespace, command: str) -> str:
    streams, col = r["streams"], r["collectors"]
    rss = r["rss_kib"]
    mb = 1 / 1024
    total = sum(s["requests"] for s in streams.values())
    errors = {name: {c: n for c, n in s["codes"].items()
                     if c != ("413" if name == "over_limit" else "200")}
              for name, s in streams.items()}
    clean = not any(errors.values())
    rows = [f"| {name} | {s['requests']:,} | "
            + ", ".join(f"{c}: {n:,}" for c, n in sorted(s["codes"].items()))
            + f" | {s['p50_ms']:.2f} / {s['p99_ms']:.2f} / {s['max_ms']:.1f} ms"
            + f" | {s['skipped']:,} |"
            for name, s in streams.items()]
    points = [p for i, p in enumerate(rss) if i % 3 == 0]
    if rss[-1]["t"] - points[-1]["t"] > 2:
        points.append(rss[-1])
    growth = {k: (rss[-1][k] - rss[0][k]) * mb for k in ("loaded", "idle")}
    half = [p for p in rss if p["t"] >= rss[-1]["t"] / 2]
    half_growth = {k: (half[-1][k] - half[0][k]) * mb for k in ("loaded", "idle")}
    slow_ok = sum(1 for s in r["slow"] if s.get("status") == "200")
    lc, ic = col["loaded"], col["idle"]
    kept = lc["min"] >= int(lc["expected"]) - 1
    lines = [
        "## Load: events and scrapes for minutes, slow clients", "",
        f"Command: `{command}`. Two real agents (`totem-agent run --listen 127.0.0.1:0`, "
        f"fresh state_dir each, default collectors at `interval = \"{args.interval}\"`): one "
        "loaded, one idle twin as the memory baseline. A second process loads the first for "
        f"{args.duration:g} s, each stream paced on its own keep-alive connection (a stream "
        f"that falls behind skips slots, never bursts): single events at {args.single_rate:g}/s, "
        f"batches of {args.batch_size} at {args.batch_rate:g}/s, `GET /metrics` at "
        f"{args.scrape_rate:g}/s, and every {PROBE_EVERY:g} s a batch of {MAX_BATCH + 1} "
        "events (one over `[events] max_batch`), whose documented answer is 413. Meanwhile "
        f"{args.slow_clients} plain-HTTP connections send `GET /health` one byte a second, "
        "the request ending about 10 s before the load does.", "",
        f"{total:,} requests in {lc['elapsed_s']:.0f} s; "
        + ("no error response, nothing but 200 (and 413 for the over-limit probes)"
           if clean else f"**unexpected answers: {errors}**") + ".", "",
        "| stream | requests | answers | latency p50 / p99 / max (of 200s; 413s for "
        "over_limit) | slots skipped |",
        "| --- | ---: | --- | --- | ---: |", *rows, "",
        f"- Events: {r['events_sent_ok']:,} answered 200, "
        f"`totem_agent_events_accepted_total` {r['events_accepted']:,.0f} "
        + ("(equal)" if r["events_sent_ok"] == r["events_accepted"] else "(**differ**)") + ".",
        f"- Collectors kept their interval: {lc['min']:g}-{lc['max']:g} runs per collector "
        f"({lc['count']} collectors) over {lc['elapsed_s']:.1f} s, expected "
        f"{lc['expected']:.1f}; the idle twin {ic['min']:g}-{ic['max']:g}. "
        + ("Kept." if kept else "**Not kept.**")
        + (f" Failing at the end: {lc['failed']}." if lc["failed"] else ""),
        f"- Slow clients: {slow_ok} of {len(r['slow'])} trickled requests "
        f"({r['slow'][0].get('bytes', 0) if r['slow'] else 0} bytes each, "
        f"{r['slow'][0].get('bytes_per_s', 0) if r['slow'] else 0:.1f} a second) got their "
        "200 at the end, while the streams above were answered with the latencies shown: "
        "each connection holds one server thread, not the accept loop.",
        f"- Load average (1 min) at start / end: {r['loadavg'][0][0]:.2f} / "
        f"{r['loadavg'][1][0]:.2f} (2 cores, the client process and other work beside).", "",
        "RSS (VmRSS, MB) of the loaded agent and of its idle twin:", "",
        "| t (s) | " + " | ".join(f"{p['t']:.0f}" for p in points) + " |",
        "| --- |" + " ---: |" * len(points),
        "| loaded | " + " | ".join(f"{p['loaded'] * mb:.1f}" for p in points) + " |",
        "| idle | " + " | ".join(f"{p['idle'] * mb:.1f}" for p in points) + " |", "",
        f"Growth start to end: loaded {growth['loaded']:+.1f} MB, idle {growth['idle']:+.1f} MB; "
        f"over the second half: loaded {half_growth['loaded']:+.1f} MB, idle "
        f"{half_growth['idle']:+.1f} MB; end ratio loaded / idle "
        f"{rss[-1]['loaded'] / rss[-1]['idle']:.2f}x.", "",
        f"Machine: {platform.node()}, 2-core development VM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC. The client and "
        "the agents share the two cores."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of load")
    parser.add_argument("--interval", default="1s", help="the agents' collector interval")
    parser.add_argument("--single-rate", type=float, default=100.0)
    parser.add_argument("--batch-rate", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--scrape-rate", type=float, default=10.0)
    parser.add_argument("--slow-clients", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        print(json.dumps(client(args.client, args)))
        return 0
    if args.duration < 30:
        parser.error("--duration: at least 30 s (the slow clients need the time)")
    result = one_run(args)
    print(json.dumps(result), file=sys.stderr)
    command = ".venv/bin/python tests/bench/bench_load.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]) if a != "--write-docs")
    text = markdown(result, args, command)
    print(text)
    if args.write_docs:
        replace_section("bench_load.py", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
