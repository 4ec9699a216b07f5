"""Benchmark of the events API: events/s and latency with durability on, from a second process.

Not a test (pytest does not collect it): a script run on demand.

    .venv/bin/python tests/bench/bench_events.py [--singles 5000] [--batches 500]
        [--batch-size 100] [--interval 1s] [--runs 3] [--write-docs]
    .venv/bin/python tests/bench/bench_events.py --profile [--singles 3000]

Each run starts the real agent (`totem-agent run --listen 127.0.0.1:0`) with a
fresh state_dir, its default collectors at `--interval` and the default
`[events] synchronous = "full"` (each 2xx after an fsynced commit), and waits
for every collector to report. A client subprocess of this script then posts
over one keep-alive http.client connection on loopback:

  (a) `--singles` single events, each with its own id, one request at a time;
  (b) `--batches` batches of `--batch-size` events with ids (ticket_completed,
      payment, service_usage mixed), one request at a time.

Latency is per request (send to end of the response body); events/s is events
over the phase's wall time. Meanwhile the collectors must keep their interval:
totem_agent_collector_runs_total and ..._last_success_timestamp_seconds are read
before and after the load; each collector's runs over the load's wall time,
against wall time / interval, and its last success at most two intervals old
at the end, with totem_agent_collector_success all 1. The agent's own
totem_agent_events_accepted_total must equal the events sent (nothing lost,
nothing double-counted). Each figure is the median of the runs.

--profile: no subprocess agent; the events handler runs in this process on a
server, the one keep-alive connection served in the profiled thread
under cProfile, the client in a subprocess, collectors off. Prints the top
functions by cumulative and own time.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import http.client
import json
import platform
import pstats
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / ".venv" / "bin" / "totem-agent"
DOCS = REPO / "docs" / "benchmarks.md"
TARGET_SINGLE_RATE = 1000.0
TARGET_SINGLE_P99_MS = 20.0
TARGET_BATCH_RATE = 20000.0


# -- the client (a second process) -------------------------------------------------------

def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _post(conn: http.client.HTTPConnection, body: bytes) -> float:
    started = time.perf_counter()
    conn.request("POST", "/api/v1/events", body=body,
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    answer = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise SystemExit(f"POST answered {response.status}: {answer[:300]!r}")
    return elapsed


def _phase(conn: http.client.HTTPConnection, bodies: list[bytes], per_request: int
           ) -> dict[str, float]:
    latencies = []
    started = time.perf_counter()
    for body in bodies:
        latencies.append(_post(conn, body))
    wall = time.perf_counter() - started
    return {"requests": len(bodies), "events": len(bodies) * per_request, "wall_s": wall,
            "events_per_s": len(bodies) * per_request / wall,
            "p50_ms": _percentile(latencies, 0.50) * 1000,
            "p99_ms": _percentile(latencies, 0.99) * 1000,
            "max_ms": max(latencies) * 1000}


def mixed_event(i: int, tag: str) -> dict[str, Any]:
    """One of three event types by i, with an id: what a kiosk app posts in a day."""
    kind = i % 3
    if kind == 0:
        return {"type": "ticket_completed", "service": "caixa", "wait_seconds": i % 700,
                "id": f"{tag}-{i}"}
    if kind == 1:
        return {"type": "payment", "status": "approved", "method": "pix",
                "amount": float(i % 900) + 0.5, "id": f"{tag}-{i}"}
    return {"type": "service_usage", "service": "segunda_via", "status": "ok",
            "id": f"{tag}-{i}"}


def client(url: str, singles: int, batches: int, batch_size: int, tag: str) -> dict[str, Any]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    # Warm-up: the connection, the handler's first imports and SQLite pages.
    for i in range(20):
        _post(conn, json.dumps({"type": "ticket_created", "service": "caixa",
                                "id": f"{tag}-warm-{i}"}).encode())
    single_bodies = [json.dumps({"type": "ticket_created", "service": "caixa",
                                 "id": f"{tag}-s-{i}"}).encode() for i in range(singles)]
    batch_bodies = [json.dumps([mixed_event(b * batch_size + i, f"{tag}-b")
                                for i in range(batch_size)]).encode() for b in range(batches)]
    out: dict[str, Any] = {"warmup_events": 20}
    out["single"] = _phase(conn, single_bodies, 1) if singles else None
    out["batch"] = _phase(conn, batch_bodies, batch_size) if batches else None
    conn.close()
    return out


def run_client(url: str, args: argparse.Namespace, tag: str) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--client", url, "--singles", str(args.singles),
            "--batches", str(args.batches), "--batch-size", str(args.batch_size), "--tag", tag]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=args.max_seconds)
    if done.returncode != 0:
        raise SystemExit(f"client failed ({done.returncode}):\n{done.stderr}")
    return dict(json.loads(done.stdout))


# -- the agent ------------------------------------------------------------------------------

class Agent:
    def __init__(self, workdir: Path, interval: str) -> None:
        config = workdir / "config.toml"
        config.write_text(f'[agent]\ninterval = "{interval}"\n'
                          f'state_dir = "{workdir / "state"}"\ninstance = "bench"\n')
        self.proc = subprocess.Popen([str(AGENT), "run", "--listen", "127.0.0.1:0",
                                      "--config", str(config)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.url: str | None = None
        self.lines: list[str] = []
        self._found = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._found.wait(30) or self.url is None:
            self.stop()
            raise SystemExit("agent did not start:\n" + "\n".join(self.lines[-20:]))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            if self.url is None:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("msg") == "totem-agent started":
                    self.url = str(record["url"])
                    self._found.set()
        self._found.set()

    def get(self, path: str) -> tuple[int, str]:
        assert self.url is not None
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def wait_collectors(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, body = self.get("/health")
            checks = json.loads(body)["checks"].values()
            if all(c["status"] != "pending" for c in checks if c["kind"] == "collector"):
                return
            time.sleep(0.2)
        raise SystemExit("collectors still pending after 60 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def scrape(agent: Agent) -> dict[str, dict[str, float]]:
    """{family sample name: {collector or '': value}} for the figures this bench reads."""
    from prometheus_client.parser import text_string_to_metric_families

    _, text = agent.get("/metrics")
    wanted = {"totem_agent_collector_runs_total", "totem_agent_collector_success",
              "totem_agent_collector_last_success_timestamp_seconds",
              "totem_agent_events_accepted_total"}
    out: dict[str, dict[str, float]] = {name: {} for name in wanted}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in wanted and s.labels.get("result", "success") == "success":
                out[s.name][s.labels.get("collector", "")] = s.value
    return out


def parse_duration(text: str) -> float:
    return float(text[:-2]) / 1000 if text.endswith("ms") else float(text.rstrip("s"))


def one_run(args: argparse.Namespace, number: int) -> dict[str, Any]:
    interval = parse_duration(args.interval)
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        agent = Agent(Path(tmp), args.interval)
        try:
            agent.wait_collectors()
            before, t0 = scrape(agent), time.time()
            result = run_client(agent.url or "", args, f"run{number}")
            after, t1 = scrape(agent), time.time()
        finally:
            agent.stop()
    elapsed = t1 - t0
    runs_before = before["totem_agent_collector_runs_total"]
    runs_after = after["totem_agent_collector_runs_total"]
    cycles = {c: runs_after[c] - runs_before.get(c, 0) for c in runs_after}
    ages = {c: t1 - v for c, v in
            after["totem_agent_collector_last_success_timestamp_seconds"].items()}
    result["collectors"] = {
        "count": len(cycles), "elapsed_s": elapsed, "expected_runs": elapsed / interval,
        "min_runs": min(cycles.values()), "max_runs": max(cycles.values()),
        "max_last_success_age_s": max(ages.values()),
        "all_success": all(v == 1 for v in after["totem_agent_collector_success"].values()),
        "failed": sorted(c for c, v in after["totem_agent_collector_success"].items() if v != 1),
    }
    sent = 20 + args.singles + args.batches * args.batch_size
    accepted = after["totem_agent_events_accepted_total"][""]
    result["accepted_total"] = accepted
    if accepted != sent:
        raise SystemExit(f"run {number}: agent accepted {accepted:g} events, {sent} were sent")
    return result


# -- the profile ----------------------------------------------------------------------------

def profile(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO))
    from totem_agent.config import load_config
    from totem_agent.events_api import EventsAPI
    from totem_agent.httpmetrics import HttpMetrics
    from totem_agent.runtime import open_business
    from totem_agent.server import AgentHTTPServer

    with tempfile.TemporaryDirectory(prefix="bench-events-prof-") as tmp:
        config_path = Path(tmp) / "config.toml"
        config_path.write_text(f'[agent]\nstate_dir = "{tmp}/state"\n')
        config = load_config(config_path, env={})
        business, problem = open_business(config)
        api = EventsAPI(business, config.events, store_problem=problem)
        server = AgentHTTPServer(("127.0.0.1", 0), {("POST", "/api/v1/events"): api.handle},
                                 HttpMetrics())
        argv = [sys.executable, __file__, "--client", server.url, "--singles",
                str(args.singles), "--batches", str(args.batches), "--batch-size",
                str(args.batch_size), "--tag", "prof"]
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        profiler = cProfile.Profile()
        profiler.enable()
        # One keep-alive connection, served in this thread (not the server's worker
        # thread, which cProfile would not follow): all of its requests.
        sock, address = server.get_request()
        server.finish_request(sock, address)
        server.shutdown_request(sock)
        profiler.disable()
        out, _ = child.communicate(timeout=args.max_seconds)
        server.server_close()
        print(json.dumps(json.loads(out), indent=1))
        stats = pstats.Stats(profiler).strip_dirs()
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(20)


# -- report ---------------------------------------------------------------------------------

def median(runs: list[dict[str, Any]], *path: str) -> float:
    values = []
    for r in runs:
        v: Any = r
        for p in path:
            v = v[p]
        values.append(float(v))
    return statistics.median(values)


def spread(runs: list[dict[str, Any]], *path: str) -> str:
    values = []
    for r in runs:
        v: Any = r
        for p in path:
            v = v[p]
        values.append(float(v))
    return f"{min(values):,.1f}-{max(values):,.1f}"


def markdown(runs: list[dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    s_rate, s_p50 = median(runs, "single", "events_per_s"), median(runs, "single", "p50_ms")
    s_p99, b_rate = median(runs, "single", "p99_ms"), median(runs, "batch", "events_per_s")
    b_p50, b_p99 = median(runs, "batch", "p50_ms"), median(runs, "batch", "p99_ms")
    col = [r["collectors"] for r in runs]
    interval = parse_duration(args.interval)
    fresh = all(c["all_success"] and c["max_last_success_age_s"] <= 2 * interval for c in col)
    sqlite_version = sqlite3.sqlite_version
    lines = [
        "", "## Events API", "",
        f"Command: `{command}` ({len(runs)} runs, median; range in brackets). Each run "
        "starts the real agent (`totem-agent run --listen 127.0.0.1:0`, fresh state_dir, "
        f"default collectors at `interval = \"{args.interval}\"`, default "
        "`[events] synchronous = \"full\"`: every 2xx after an fsynced WAL commit) and posts "
        "from a second process over one keep-alive `http.client` connection on loopback, one "
        f"request at a time: {args.singles:,} single events with ids, then {args.batches:,} "
        f"batches of {args.batch_size} events with ids (ticket_completed, payment, "
        "service_usage mixed). Latency is per request, send to end of the response.", "",
        "| figure | measured | target | |", "| --- | --- | --- | --- |",
        f"| single events/s | {s_rate:,.0f} ({spread(runs, 'single', 'events_per_s')}) "
        f"| >= {TARGET_SINGLE_RATE:,.0f} | {verdict(s_rate >= TARGET_SINGLE_RATE)} |",
        f"| single event latency p50 | {s_p50:.2f} ms ({spread(runs, 'single', 'p50_ms')}) "
        "| | |",
        f"| single event latency p99 | {s_p99:.2f} ms ({spread(runs, 'single', 'p99_ms')}) "
        f"| <= {TARGET_SINGLE_P99_MS:g} ms | {verdict(s_p99 <= TARGET_SINGLE_P99_MS)} |",
        f"| batched events/s (batches of {args.batch_size}) | {b_rate:,.0f} "
        f"({spread(runs, 'batch', 'events_per_s')}) | >= {TARGET_BATCH_RATE:,.0f} "
        f"| {verdict(b_rate >= TARGET_BATCH_RATE)} |",
        f"| batch latency p50 / p99 | {b_p50:.2f} / {b_p99:.2f} ms | | |",
        f"| collectors during the load: runs per collector vs wall time / interval "
        f"| {min(c['min_runs'] for c in col):g}-{max(c['max_runs'] for c in col):g} runs "
        f"over {min(c['elapsed_s'] for c in col):.1f}-{max(c['elapsed_s'] for c in col):.1f} "
        f"s (expected {min(c['expected_runs'] for c in col):.1f}-"
        f"{max(c['expected_runs'] for c in col):.1f}) | keep the interval "
        f"| {verdict(all(c['min_runs'] >= int(c['expected_runs']) - 1 for c in col))} |",
        f"| oldest last success at the end / all collector_success = 1 "
        f"| {max(c['max_last_success_age_s'] for c in col):.2f} s / "
        f"{'yes' if all(c['all_success'] for c in col) else 'no: ' + str(col)} "
        f"| <= 2 intervals / yes "
        f"| {verdict(fresh)} |",
        "",
        f"Every run checks `totem_agent_events_accepted_total` equals the events sent. Machine: "
        f"{platform.node()}, the 2-core development VM ({platform.processor() or 'x86_64'}, "
        f"{platform.system()} {platform.release()}), Python {platform.python_version()}, "
        f"SQLite {sqlite_version}, other work running beside it; {datetime.date.today()}. "
        "The client process shares the two cores with the agent.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="bench", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        print(json.dumps(client(args.client, args.singles, args.batches, args.batch_size,
                                args.tag)))
        return 0
    if args.profile:
        profile(args)
        return 0
    runs = []
    for number in range(args.runs):
        result = one_run(args, number)
        runs.append(result)
        print(json.dumps(result), file=sys.stderr)
    command = ".venv/bin/python tests/bench/bench_events.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]) if a != "--write-docs")
    text = markdown(runs, args, command)
    print(text)
    if args.write_docs:
        with open(DOCS, "a", encoding="utf-8") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
