"""Benchmark: totem-agent side by side with node_exporter 1.5, in one run, as ratios.

Not a test (pytest does not collect it): a script run on demand.

    .venv/bin/python tests/bench/bench_node_exporter.py [--scrapes 1000] [--runs 3] [--write-docs]

Each run starts both servers on 127.0.0.1 (the agent on port 0 with a short
collection interval, node_exporter on a free port with its default collectors),
measures them, and stops both. Absolute times on a shared machine drift, so the
results are ratios; each figure is the median of the runs, with the spread.

1. RSS after warm-up (a few agent cycles and 20 scrapes of each server).
2. CPU (utime+stime from /proc/PID/stat, all threads):
   - agent, per 100 collection cycles, nobody scraping: the window holds the
     collectors' lane, the buffer's appends, the scheduler and the HTTP server's
     idle poll, no render; and the same with `[buffer] enabled = false` (a second
     agent at the end of the run), the like-for-like figure;
   - agent, per 100 cycles each followed by one scrape (a fresh render), which is
     what Prometheus costs it when scrape and collection intervals match;
   - node_exporter, per 100 back-to-back scrapes (it collects on every scrape).
   A cycle is one run of every enabled collector: the sum of
   totem_agent_collector_runs_total deltas divided by the number of collectors.
3. /metrics latency p50/p99 over N keep-alive scrapes (http.client), with
   Prometheus' Accept header and with plain text, alternating agent and
   node_exporter request by request so both see the same machine. No gzip asked.
4. "Node Exporter Full" dashboard panels fed by each body.
5. The profile (tests/bench/profile_agent.py): where the agent's time and memory go.
The tables and docs/benchmarks.md are written by tests/bench/bench_report.py.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bench import bench_report, profile_agent  # noqa: E402  (needs the repo root)
from tests.bench.bench_report import percentile  # noqa: E402
from tests.bench.docs_section import replace_section  # noqa: E402

AGENT = REPO / ".venv" / "bin" / "totem-agent"
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or "prometheus-node-exporter"
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,"
                     "application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
PLAIN_ACCEPT = "text/plain"
ACCEPTS = {"prometheus": PROMETHEUS_ACCEPT, "plain": PLAIN_ACCEPT}
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_DEADLINE = 20.0


# -- /proc readings ------------------------------------------------------------------
def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile, RssShmem of a process, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "Threads"):
            out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of the process (children excluded; there are none)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the two servers -----------------------------------------------------------------
@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    log: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_agent(workdir: Path, interval: float, buffer: bool = True) -> Server:
    config = workdir / ("agent.toml" if buffer else "agent-no-buffer.toml")
    config.write_text(f'[agent]\ninterval = "{interval}s"\nstate_dir = "{workdir / "state"}"\n'
                      '[log]\nlevel = "info"\n'
                      + ("" if buffer else "[buffer]\nenabled = false\n"))
    proc = subprocess.Popen([str(AGENT), "run", "--listen", "127.0.0.1:0",
                             "--config", str(config)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    started = threading.Event()
    found: dict[str, str] = {}
    lines: list[str] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            lines.append(line)
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("msg") == "totem-agent started":
                    found["url"] = record["url"]
                    started.set()

    threading.Thread(target=read_stderr, name="agent-stderr", daemon=True).start()
    if not started.wait(START_DEADLINE):
        proc.kill()
        proc.wait()
        raise RuntimeError("the agent did not log 'totem-agent started' within "
                           f"{START_DEADLINE:g}s:\n" + "\n".join(lines[-20:]))
    host, port = found["url"].removeprefix("http://").rsplit(":", 1)
    return Server("agent", proc, host, int(port), lines)


def start_node_exporter(workdir: Path) -> Server:
    port = free_port()
    textfile = workdir / "textfile"
    textfile.mkdir(exist_ok=True)
    proc = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}",
                             f"--collector.textfile.directory={textfile}", "--log.level=warn"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + START_DEADLINE
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError as err:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"node_exporter did not listen on port {port}") from err
            time.sleep(0.02)
    return Server("node_exporter", proc, "127.0.0.1", port)


class Scraper:
    """One keep-alive connection, as Prometheus keeps between scrapes."""

    def __init__(self, server: Server) -> None:
        self.conn = http.client.HTTPConnection(server.host, server.port, timeout=30)

    def get(self, accept: str, path: str = "/metrics") -> tuple[float, str, bytes]:
        """(seconds from request to the last body byte, content type, body)."""
        start = time.perf_counter()
        self.conn.request("GET", path, headers={"Accept": accept})
        response = self.conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - start
        if response.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status}")
        return elapsed, response.getheader("Content-Type", ""), body

    def close(self) -> None:
        self.conn.close()


# -- reading bodies ------------------------------------------------------------------
def sample_names(body: bytes) -> list[str]:
    """The metric name of every sample line (comments and `# EOF` skipped)."""
    names = []
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            names.append(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def agent_runs(body: bytes) -> dict[str, float]:
    runs = {}
    for line in body.decode().splitlines():
        if line.startswith("totem_agent_collector_runs_total{"):
            labels, value = line.rsplit(" ", 1)
            runs[labels.split('collector="', 1)[1].split('"', 1)[0]] = float(value)
    return runs


# -- one run -------------------------------------------------------------------------
def warm_up(agent: Server, ne: Server, a: Scraper, n: Scraper, cycles: int,
            interval: float) -> int:
    """Wait for `cycles` agent cycles, then scrape each server 20 times; collectors count."""
    deadline = time.monotonic() + START_DEADLINE + cycles * interval * 4
    while True:
        runs = agent_runs(a.get(PLAIN_ACCEPT)[2])
        if runs and min(runs.values()) >= cycles:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the agent did not complete {cycles} cycles: {runs}")
        time.sleep(interval / 2)
    for i in range(20):
        accept = PROMETHEUS_ACCEPT if i % 2 else PLAIN_ACCEPT
        a.get(accept)
        n.get(accept)
    return len(runs)


def thread_times(pid: int) -> dict[int, tuple[int, int, str]]:
    """Per thread: (ns on CPU from schedstat, context switches, name), for the breakdown.
    The agent names its threads at the OS level (agent/threadnames.py)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            run_ns = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            # voluntary (waits: I/O, the GIL, a queue) + nonvoluntary (preempted)
            switches = sum(int(line.split()[1]) for line in status.splitlines()
                           if line.split(":")[0].endswith("ctxt_switches"))
            out[int(tid)] = (run_ns, switches, name)
    return out


def thread_groups(pid: int, before: dict[int, tuple[int, int, str]],
                  after: dict[int, tuple[int, int, str]]) -> dict[str, list[float]]:
    """CPU seconds and context switches per thread name: "collectors" (the lane, and any
    lane left to a slow run), "buffer" (the recorder's appends), "scheduler", "http" and
    "http-conn" (scrapes), the main thread under the process' own name."""
    groups: dict[str, list[float]] = {}
    for tid, (ns1, sw1, name) in after.items():
        ns0, sw0, _ = before.get(tid, (0, 0, name))
        label = "main" if tid == pid else name
        acc = groups.setdefault(label, [0.0, 0.0])
        acc[0] += (ns1 - ns0) / 1e9
        acc[1] += sw1 - sw0
    return groups


def agent_cpu_window(agent: Server, a: Scraper, ne: Server, n: Scraper, cycles: int,
                     interval: float, scrape_agent: bool) -> dict[str, Any]:
    """CPU over about `cycles` collection cycles, scraping one server once per interval.

    scrape_agent False: node_exporter is scraped (its CPU per spaced scrape) and the
    agent only collects. True: the agent is scraped, each scrape rendering a new cycle.
    """
    runs0 = agent_runs(a.get(PLAIN_ACCEPT)[2])
    cpu0, ne0 = cpu_seconds(agent.pid), cpu_seconds(ne.pid)
    threads0 = thread_times(agent.pid)
    wall0 = time.monotonic()
    latencies = []
    end = wall0 + cycles * interval
    # Half an interval after the agent's ticks, so an agent scrape finds a finished cycle.
    next_scrape = wall0 + interval / 2
    while next_scrape < end:
        time.sleep(max(next_scrape - time.monotonic(), 0))
        latencies.append(a.get(PROMETHEUS_ACCEPT)[0] if scrape_agent
                         else n.get(PROMETHEUS_ACCEPT)[0])
        next_scrape += interval
    time.sleep(max(end - time.monotonic(), 0))
    cpu1, ne1 = cpu_seconds(agent.pid), cpu_seconds(ne.pid)
    threads1 = thread_times(agent.pid)
    wall = time.monotonic() - wall0
    runs1 = agent_runs(a.get(PLAIN_ACCEPT)[2])
    deltas = [runs1[name] - runs0.get(name, 0.0) for name in runs1]
    done = sum(deltas) / len(deltas)
    return {"cpu": cpu1 - cpu0, "cycles": done, "min_runs": min(deltas), "wall": wall,
            "per100": (cpu1 - cpu0) / done * 100, "scrapes": len(latencies),
            "latencies": latencies,
            "ne_per100": (ne1 - ne0) / len(latencies) * 100 if not scrape_agent else None,
            "threads": {name: [sec / done * 1000, sw / done] for name, (sec, sw)
                        in thread_groups(agent.pid, threads0, threads1).items()}}


def latency_loop(agent: Server, ne: Server, a: Scraper, n: Scraper, scrapes: int,
                 accept: str) -> dict[str, Any]:
    """`scrapes` scrapes of each, alternating; latencies and CPU of each over the loop."""
    lat: dict[str, list[float]] = {"agent": [], "node_exporter": []}
    cpu0 = {"agent": cpu_seconds(agent.pid), "node_exporter": cpu_seconds(ne.pid)}
    ctype: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for i in range(scrapes):
        # Alternate who goes first, so neither always runs right after the other.
        order = (("agent", a), ("node_exporter", n)) if i % 2 else \
            (("node_exporter", n), ("agent", a))
        for name, scraper in order:
            seconds, ctype[name], body = scraper.get(accept)
            lat[name].append(seconds)
            sizes[name] = len(body)
    cpu1 = {"agent": cpu_seconds(agent.pid), "node_exporter": cpu_seconds(ne.pid)}
    return {name: {"p50": percentile(lat[name], 50), "p99": percentile(lat[name], 99),
                   "max": max(lat[name]), "content_type": ctype[name], "bytes": sizes[name],
                   "cpu_per100": (cpu1[name] - cpu0[name]) / scrapes * 100}
            for name in lat}


def one_run(args: argparse.Namespace, run: int) -> dict[str, Any]:
    result: dict[str, Any] = {"run": run}
    with tempfile.TemporaryDirectory(prefix="totem-bench-") as tmp:
        workdir = Path(tmp)
        agent = start_agent(workdir, args.interval)
        ne = start_node_exporter(workdir)
        a, n = Scraper(agent), Scraper(ne)
        try:
            result["collectors"] = warm_up(agent, ne, a, n, 3, args.interval)
            result["rss"] = {"agent": memory_kb(agent.pid), "node_exporter": memory_kb(ne.pid)}
            bodies = {}
            for label, accept in ACCEPTS.items():
                for server, scraper in (("agent", a), ("node_exporter", n)):
                    _, ctype, body = scraper.get(accept)
                    bodies[(server, label)] = (ctype, body)
            result["bodies"] = {
                f"{server}/{label}": {"content_type": ctype, "bytes": len(body),
                                      "samples": len(sample_names(body))}
                for (server, label), (ctype, body) in bodies.items()}
            result["names"] = {server: sorted(set(sample_names(bodies[(server, "plain")][1])))
                               for server in ("agent", "node_exporter")}
            result["cpu_idle"] = agent_cpu_window(agent, a, ne, n, args.cycles, args.interval,
                                                  scrape_agent=False)
            result["cpu_scraped"] = agent_cpu_window(agent, a, ne, n, args.cycles,
                                                     args.interval, scrape_agent=True)
            result["latency"] = {label: latency_loop(agent, ne, a, n, args.scrapes, accept)
                                 for label, accept in ACCEPTS.items()}
            result["rss_end"] = {"agent": memory_kb(agent.pid),
                                 "node_exporter": memory_kb(ne.pid)}
        finally:
            a.close()
            n.close()
            agent.stop()
            ne.stop()
        # The like-for-like figure: node_exporter keeps no history, so the agent again
        # with its buffer off (a fresh pair of servers, the same window).
        agent = start_agent(workdir, args.interval, buffer=False)
        ne2 = start_node_exporter(workdir)
        a2, n2 = Scraper(agent), Scraper(ne2)
        try:
            warm_up(agent, ne2, a2, n2, 3, args.interval)
            result["cpu_idle_no_buffer"] = agent_cpu_window(agent, a2, ne2, n2, args.cycles,
                                                            args.interval, scrape_agent=False)
        finally:
            a2.close()
            n2.close()
            agent.stop()
            ne2.stop()
        problems = [line for line in agent.log if '"level": "warning"' in line
                    or '"level": "error"' in line]
        result["agent_log_problems"] = problems[:10]
        result["agent_exit"] = agent.proc.returncode
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scrapes", type=int, default=1000, help="scrapes per latency loop")
    parser.add_argument("--runs", type=int, default=3, help="runs; figures are medians")
    parser.add_argument("--cycles", type=int, default=100,
                        help="agent collection cycles per CPU window")
    parser.add_argument("--interval", type=float, default=0.5,
                        help="the agent's collection interval in seconds")
    parser.add_argument("--no-profile", action="store_true", help="skip the profile")
    parser.add_argument("--write-docs", action="store_true", help="write docs/benchmarks.md")
    parser.add_argument("--json", metavar="FILE", help="also dump the raw results here")
    args = parser.parse_args(argv)
    command = " ".join([".venv/bin/python", "tests/bench/bench_node_exporter.py",
                        *(argv if argv is not None else sys.argv[1:])])
    results = []
    for run in range(1, args.runs + 1):
        print(f"run {run}/{args.runs} ...", file=sys.stderr, flush=True)
        results.append(one_run(args, run))
    prof = None
    if not args.no_profile:
        print("profile ...", file=sys.stderr, flush=True)
        prof = {"time": profile_agent.profile_cycles(args.cycles),
                "memory": profile_agent.memory_steps()}
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "profile": prof}, indent=1))
    text = bench_report.report(args, results, prof, command)
    print(text)
    if args.write_docs:
        replace_section("bench_node_exporter.py", text, demote_headings=True)
        print("wrote its section of docs/benchmarks.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
