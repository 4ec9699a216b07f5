"""The report half of bench_node_exporter.py: figures to tables, docs/benchmarks.md text.

Kept apart so the measuring script reads in one sitting. Nothing here starts a
process except `machine()`, which asks node_exporter and the venv's Python their
versions.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or "prometheus-node-exporter"
PANELS_FALLBACK = Path("/work/shared/data/node_exporter_full_panels.json")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 1,000 is the 990th smallest)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def count_panels(names: set[str]) -> tuple[dict[str, int], str]:
    """Panels fed, all rows and the Quick/Basic rows: tests/dashboard_coverage.py if present."""
    try:
        from tests import dashboard_coverage as dc
    except ImportError:  # built before that module existed: the same rule, written small
        raw = json.loads(PANELS_FALLBACK.read_text())
        quick_rows = {"Quick CPU / Mem / Disk", "Basic CPU / Mem / Net / Disk"}
        fed = [p for p in raw if set(p["metrics"]) <= names]
        return ({"fed": len(fed), "total": len(raw),
                 "quick_fed": sum(1 for p in fed if p["row"] in quick_rows),
                 "quick_total": sum(1 for p in raw if p["row"] in quick_rows)},
                f"{PANELS_FALLBACK}, counted by this script")
    panels = dc.load_panels()
    cov = dc.coverage(panels, names)
    return ({"fed": len(cov.fed), "total": cov.total,
             "quick_fed": len(cov.fed_keys(dc.QUICK_BASIC_ROWS)),
             "quick_total": sum(1 for p in panels if p.row in dc.QUICK_BASIC_ROWS)},
            f"{dc.PANELS_FILE.relative_to(REPO)}, counted by tests/dashboard_coverage.py")


# -- summary -------------------------------------------------------------------------
@dataclass
class Row:
    figure: str
    agent: list[float]
    node_exporter: list[float]
    unit: str
    target: float | None = None   # agent / node_exporter must be <= target
    note: str = ""

    @property
    def ratios(self) -> list[float]:
        return [a / n for a, n in zip(self.agent, self.node_exporter, strict=True) if n]

    def verdict(self) -> str:
        if self.target is None:
            return ""
        return "met" if statistics.median(self.ratios) <= self.target else "MISSED"


def rows(results: list[dict[str, Any]]) -> list[Row]:
    def each(get: Callable[[dict[str, Any]], float]) -> list[float]:
        return [get(r) for r in results]

    mb = 1 / 1024
    prom, plain = "prometheus", "plain"
    return [
        Row("RSS after warm-up", each(lambda r: r["rss"]["agent"]["VmRSS"] * mb),
            each(lambda r: r["rss"]["node_exporter"]["VmRSS"] * mb), "MB", 1.5,
            "VmRSS after 3 agent cycles and 20 scrapes of each"),
        Row("RSS at the end of the run", each(lambda r: r["rss_end"]["agent"]["VmRSS"] * mb),
            each(lambda r: r["rss_end"]["node_exporter"]["VmRSS"] * mb), "MB", None,
            "after every window below"),
        Row("CPU per 100 cycles (agent, unscraped) vs per 100 scrapes (node_exporter, one "
            "per interval)", each(lambda r: r["cpu_idle"]["per100"] * 1000),
            each(lambda r: r["cpu_idle"]["ne_per100"] * 1000), "ms", 1.0,
            "agent: collection and the buffer's append (defaults); node_exporter: collect + "
            "render, scraped at the agent's interval in the same window"),
        Row("CPU per 100 cycles, buffer off (agent, unscraped) vs per 100 scrapes "
            "(node_exporter, one per interval)",
            each(lambda r: r["cpu_idle_no_buffer"]["per100"] * 1000),
            each(lambda r: r["cpu_idle"]["ne_per100"] * 1000), "ms", 1.0,
            "like for like: node_exporter keeps no history; `[buffer] enabled = false`"),
        Row("CPU per 100 cycles (agent, unscraped) vs per 100 back-to-back scrapes",
            each(lambda r: r["cpu_idle"]["per100"] * 1000),
            each(lambda r: r["latency"][prom]["node_exporter"]["cpu_per100"] * 1000), "ms",
            None, "node_exporter over the latency loop: hot caches, cheaper per scrape"),
        Row("CPU per 100 cycles, each followed by one scrape (agent) vs per 100 scrapes "
            "(node_exporter, one per interval)", each(lambda r: r["cpu_scraped"]["per100"] * 1000),
            each(lambda r: r["cpu_idle"]["ne_per100"] * 1000), "ms", None,
            "agent: collection + one fresh render per cycle, as at equal intervals"),
        Row("/metrics p50, Prometheus Accept", each(lambda r: r["latency"][prom]["agent"]["p50"]
                                                    * 1000),
            each(lambda r: r["latency"][prom]["node_exporter"]["p50"] * 1000), "ms"),
        Row("/metrics p99, Prometheus Accept", each(lambda r: r["latency"][prom]["agent"]["p99"]
                                                    * 1000),
            each(lambda r: r["latency"][prom]["node_exporter"]["p99"] * 1000), "ms", 0.2,
            "back-to-back scrapes; the agent's collectors keep running meanwhile"),
        Row("/metrics p50, text/plain", each(lambda r: r["latency"][plain]["agent"]["p50"] * 1000),
            each(lambda r: r["latency"][plain]["node_exporter"]["p50"] * 1000), "ms"),
        Row("/metrics p99, text/plain", each(lambda r: r["latency"][plain]["agent"]["p99"] * 1000),
            each(lambda r: r["latency"][plain]["node_exporter"]["p99"] * 1000), "ms", 0.2),
        Row("/metrics p99 of scrapes that find a new cycle (agent) vs node_exporter p99",
            each(lambda r: percentile(r["cpu_scraped"]["latencies"], 99) * 1000),
            each(lambda r: r["latency"][prom]["node_exporter"]["p99"] * 1000), "ms", None,
            "each agent scrape renders anew: what Prometheus sees at equal intervals"),
        Row("samples per scrape (Prometheus Accept)",
            each(lambda r: r["bodies"]["agent/prometheus"]["samples"]),
            each(lambda r: r["bodies"]["node_exporter/prometheus"]["samples"]), ""),
        Row("samples per scrape (text/plain)",
            each(lambda r: r["bodies"]["agent/plain"]["samples"]),
            each(lambda r: r["bodies"]["node_exporter/plain"]["samples"]), ""),
        Row("body bytes (Prometheus Accept)",
            each(lambda r: r["bodies"]["agent/prometheus"]["bytes"]),
            each(lambda r: r["bodies"]["node_exporter/prometheus"]["bytes"]), "B"),
    ]


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def spread(values: list[float]) -> str:
    med = statistics.median(values)
    if len(values) < 2 or min(values) == max(values):
        return fmt(med)
    return f"{fmt(med)} ({fmt(min(values))} to {fmt(max(values))})"


def table(rows_: list[Row]) -> list[str]:
    out = ["| figure | agent | node_exporter | ratio | target | result |",
           "|---|---:|---:|---:|---:|---|"]
    for row in rows_:
        unit = f" {row.unit}" if row.unit else ""
        target = f"<= {row.target:g}x" if row.target is not None else ""
        out.append(f"| {row.figure} | {spread(row.agent)}{unit} | "
                   f"{spread(row.node_exporter)}{unit} | {spread(row.ratios)}x | {target} | "
                   f"{row.verdict()} |")
    return out


def coverage_lines(results: list[dict[str, Any]]) -> list[str]:
    names = results[-1]["names"]
    got = {server: count_panels(set(names[server])) for server in ("agent", "node_exporter")}
    a, n = got["agent"][0], got["node_exporter"][0]
    # node_* only: go_*, process_*, promhttp_* and node_scrape_* describe node_exporter itself.
    missing = sorted(name for name in set(names["node_exporter"]) - set(names["agent"])
                     if name.startswith("node_") and not name.startswith(("node_scrape_",
                                                                          "node_exporter_")))
    families = sorted({name.removesuffix("_total") for name in missing})
    return [f"Panels of \"Node Exporter Full\" fed (a panel is fed when every name it reads "
            f"is exposed as a sample name; {got['agent'][1]}):", "",
            "| panels fed | agent | node_exporter |", "|---|---:|---:|",
            f"| all rows | {a['fed']} of {a['total']} | {n['fed']} of {n['total']} |",
            f"| \"Quick\" and \"Basic\" rows | {a['quick_fed']} of {a['quick_total']} | "
            f"{n['quick_fed']} of {n['quick_total']} |", "",
            "node_* sample names node_exporter exposes here and the agent does not: "
            f"{len(missing)} "
            f"({', '.join(f'`{f}`' for f in families[:40])}"
            f"{', ...' if len(families) > 40 else ''})."]


def summary_lines(results: list[dict[str, Any]], prof: dict[str, Any] | None) -> list[str]:
    """Where the time and memory go, in figures taken from this run."""
    idle = sorted((r["cpu_idle"] for r in results), key=lambda w: w["per100"])[len(results) // 2]
    threads = idle["threads"]
    lane = threads.get("collectors", [0.0, 0.0])
    buffer = threads.get("buffer", [0.0, 0.0])
    out = ["## Where the time and memory go (summary)", ""]
    if prof is not None:
        t, steps = prof["time"], {s["step"]: s for s in prof["memory"]["steps"]}
        out += [
            f"- CPU: the collectors' own work is {t['collect_cpu_ms']:.1f} ms per cycle when "
            f"called one after another in one thread. The running agent spends "
            f"{idle['per100'] / 100 * 1000:.1f} ms per cycle: {lane[0]:.1f} ms on the "
            f"collectors' lane (the collectors in turn on one thread, {lane[1]:.0f} context "
            f"switches per cycle: each file read releases the GIL), {buffer[0]:.1f} ms "
            "appending the cycle to the buffer (its own thread; node_exporter keeps no "
            "history, so the row without the buffer is the like-for-like one), the rest "
            "in the scheduler and the HTTP server's idle poll.",
            f"- Render: a new cycle renders {t['render_bytes']} bytes of OpenMetrics for "
            f"{t['render_ms']:.1f} ms CPU, once, on the collectors' lane as the cycle "
            "completes (in the format the last scrape asked for, and only while scrapes "
            "keep coming); a scrape is served the finished body from the cache for "
            f"{t['render_cached_us']:.0f} µs, and one that arrives during that render gets "
            "the previous cycle's body rather than wait.",
        ]
        def rss(prefix: str) -> float:
            return float(next(v["VmRSS"] for k, v in steps.items() if k.startswith(prefix))) / 1024

        with contextlib.suppress(StopIteration):  # the step list changed: no sentence
            base, stdlib = rss("interpreter"), rss("stdlib the server")
            prom = rss("prometheus_client's submodules")
            last = list(steps.values())[-1]["VmRSS"] / 1024
            out.append(
                f"- Memory: the interpreter alone is {base:.1f} MB; with the stdlib the HTTP "
                f"server needs (socketserver, logging; the server parses HTTP itself, so "
                f"http.server, http.client, email and ssl are never imported) {stdlib:.1f} MB; "
                f"the prometheus_client modules the agent uses add {prom - stdlib:.1f} MB (its "
                "package __init__, which imports every submodule and with them http.server, "
                "urllib.request, hashlib and inspect, does not run: "
                "agent/_prometheus_client_lazy.py); the agent's own modules, sqlite3, its "
                f"threads and state the rest, to {last:.1f} MB in-process.")
            ne_mb = statistics.median(r["rss"]["node_exporter"]["VmRSS"] for r in results) / 1024
            out.append(
                f"- The RSS target (1.5 x node_exporter's {ne_mb:.1f} MB = {1.5 * ne_mb:.1f} MB) "
                f"leaves {1.5 * ne_mb - prom:.1f} MB for everything of the agent's own: the "
                f"interpreter, the stdlib the server needs and prometheus_client take "
                f"{prom:.1f} MB ({prom / ne_mb:.2f} x) before any of it is imported. What is "
                "imported only for some kiosks is imported when first needed (ssl and "
                "hashlib for TLS and logins, pyserial, PyYAML and bcrypt for a web-config, "
                "cramjam and http.client for remote_write, urllib for the Pushgateway, the "
                "rotating log file handler); tests/integration/test_import_footprint.py "
                "keeps it so.")
    return [*out, ""]


def thread_lines(results: list[dict[str, Any]]) -> list[str]:
    """The running agent's CPU per cycle by thread group (median run), from schedstat."""
    idle = sorted((r["cpu_idle"] for r in results), key=lambda w: w["per100"])[len(results) // 2]
    out = ["### Where the running agent's CPU goes, by thread", "",
           "The unscraped window of the median run, per cycle, from "
           "/proc/PID/task/*/schedstat (ns) and the context-switch counts in "
           "/proc/PID/task/*/status, by the names the agent gives its threads "
           "(`top -H` shows the same).", "",
           "| threads | CPU ms per cycle | context switches per cycle |", "|---|---:|---:|"]
    for name, (ms, switches) in sorted(idle["threads"].items(), key=lambda kv: -kv[1][0]):
        out.append(f"| {name} | {ms:.2f} | {switches:.0f} |")
    total = sum(ms for ms, _ in idle["threads"].values())
    out += [f"| all | {total:.2f} | {sum(sw for _, sw in idle['threads'].values()):.0f} |", ""]
    return out


def profile_lines(prof: dict[str, Any]) -> list[str]:
    t, m = prof["time"], prof["memory"]
    n = t["cycles"]
    out = [f"### Where the time goes ({n} cycles in-process, collectors called in one thread)", "",
           f"One cycle of the {len(t['collectors'])} enabled collectors costs "
           f"{t['collect_cpu_ms']:.2f} ms CPU called directly; through "
           f"`Scheduler.run_once()` (the collectors' lane thread, futures, locks) it costs "
           f"{t['scheduler_cpu_ms']:.2f} ms CPU ({t['scheduler_wall_ms']:.2f} ms wall) per "
           "cycle (this in-process figure varies widely from run to run; the by-thread "
           "table above is the running agent's). Rendering /metrics anew "
           f"({t['render_bytes']} bytes, OpenMetrics) costs "
           f"{t['render_ms']:.2f} ms CPU; a cached scrape body {t['render_cached_us']:.0f} µs.",
           "", "Per collector (mean per cycle):", "",
           "| collector | outcome | CPU ms | wall ms |", "|---|---|---:|---:|"]
    out += [f"| {r['name']} | {r['outcome']} | {r['cpu_ms']:.3f} | {r['wall_ms']:.3f} |"
            for r in t["collectors"]]
    out += ["", "Own time by area (cProfile, share of the cycle's own time):", "",
            "| area | share | ms per cycle |", "|---|---:|---:|"]
    out += [f"| {r['area']} | {r['share']:.0%} | {r['own_ms']:.3f} |" for r in t["areas"]]
    out += ["", "Top functions by cumulative time per cycle (cProfile; its overhead inflates "
            "absolute times, compare them with each other):", "",
            "| function | calls/cycle | cumulative ms | own ms |", "|---|---:|---:|---:|"]
    out += [f"| `{r['function']}` | {r['calls_per_cycle']:.0f} | {r['cum_ms']:.3f} | "
            f"{r['own_ms']:.3f} |" for r in t["top"]]
    out += ["", "The render of a scrape that finds a new cycle (cProfile, per render):", "",
            "| function | cumulative ms | own ms |", "|---|---:|---:|"]
    out += [f"| `{r['function']}` | {r['cum_ms']:.3f} | {r['own_ms']:.3f} |"
            for r in t["render_top"][:10]]
    steps = m["steps"]
    out += ["", "### Where the memory goes", "",
            "RSS of a fresh interpreter after each step of what `totem-agent run` does "
            "(RssAnon: heap and stacks; RssFile: mapped files, the interpreter and its "
            "shared libraries, shared with other Python processes):", "",
            "| step | VmRSS MB | + MB | RssAnon MB | RssFile MB | Python heap MB |",
            "|---|---:|---:|---:|---:|---:|"]
    prev = 0
    for st in steps:
        heap = "" if st.get("traced") is None else f"{st['traced'] / 1024:.1f}"
        out.append(f"| {st['step']} | {st['VmRSS'] / 1024:.1f} | "
                   f"{(st['VmRSS'] - prev) / 1024:+.1f} | {st['RssAnon'] / 1024:.1f} | "
                   f"{st['RssFile'] / 1024:.1f} | {heap} |")
        prev = st["VmRSS"]
    out += ["", "Python heap: what tracemalloc counts as still allocated after the step, in a "
            "second interpreter run under tracemalloc (module code objects, classes, "
            "dicts); the rest of RssAnon is the interpreter's own state, arenas' free space, "
            "thread stacks and C libraries' heaps."]
    out += ["", f"Imports (`python -X importtime`, {m['import_total_ms']:.0f} ms in all; "
            "top-level modules and their direct imports, by cumulative time):", "",
            "| module | cumulative ms | self ms |", "|---|---:|---:|"]
    out += [f"| {'&nbsp;&nbsp;' * r['depth']}`{r['module']}` | {r['cum_ms']:.1f} | "
            f"{r['self_ms']:.1f} |" for r in m["imports_top"]]
    return out


def machine() -> dict[str, str]:
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    ne = subprocess.run([NODE_EXPORTER, "--version"], capture_output=True, text=True,
                        timeout=10)
    agent_py = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c",
                               "import sys, prometheus_client as p, importlib.metadata as m;"
                               "print(sys.version.split()[0], m.version('prometheus_client'))"],
                              capture_output=True, text=True, timeout=30).stdout.split()
    return {"cpus": str(os.cpu_count()), "cpu model": model,
            "kernel": f"{platform.system()} {platform.release()}",
            "python": agent_py[0] if agent_py else "?",
            "prometheus_client": agent_py[1] if len(agent_py) > 1 else "?",
            "node_exporter": (ne.stdout or ne.stderr).splitlines()[0]}


def report(args: argparse.Namespace, results: list[dict[str, Any]],
           prof: dict[str, Any] | None, command: str) -> str:
    info = machine()
    first = results[0]
    out = ["# Benchmark: totem-agent beside node_exporter", "",
           "Written by `tests/bench/bench_node_exporter.py --write-docs`; do not edit by hand.",
           "", f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
           f"- command: `{command}`"]
    out += [f"- {key}: {value}" for key, value in info.items()]
    out += [f"- agent: {first['collectors']} collectors enabled by default, "
            f"`[agent] interval = \"{args.interval}s\"`; node_exporter: its default collectors, "
            "an empty textfile directory",
            f"- {len(results)} runs, each starting both servers afresh; every figure is the "
            "median of the runs, (min to max) in brackets; a ratio is agent / node_exporter, "
            "taken per run", "", "## Results", ""]
    out += table(rows(results))
    out += ["", "How each figure is taken:", "",
            "- RSS: VmRSS from /proc/PID/status.",
            f"- CPU: utime+stime of all threads from /proc/PID/stat (10 ms ticks). Agent: a "
            f"{args.cycles} x {args.interval}s window ({args.cycles} intended cycles); the "
            "window holds the collectors' lane, the buffer's appends, the scheduler and the "
            "HTTP server's 0.5 s idle poll and nothing is subtracted; cycles completed = sum "
            "of `totem_agent_collector_runs_total` deltas ÷ collectors. \"buffer off\": the "
            "same window on a second agent started with `[buffer] enabled = false` at the end "
            "of the run, beside a fresh node_exporter. The \"each followed by one scrape\" "
            "window adds one scrape per interval, half an interval after the tick, so each "
            "renders a new cycle. node_exporter: CPU per scrape when scraped once per "
            "interval in the agent's unscraped window, and over the "
            f"{args.scrapes} back-to-back Prometheus-Accept scrapes of the latency loop.",
            f"- Latency: {args.scrapes} scrapes of each server per Accept header over one "
            "keep-alive `http.client` connection each, alternating agent and node_exporter "
            "request by request; time from sending the request to the body's last byte, "
            "nearest-rank percentiles. No gzip requested. The Python client's own time is in "
            "both figures, which pulls ratios toward 1.",
            f"- Content types: agent {first['bodies']['agent/prometheus']['content_type']!r}, "
            f"node_exporter {first['bodies']['node_exporter/prometheus']['content_type']!r} "
            "for Prometheus' Accept header."]
    windows = [(r["cpu_idle"]["cycles"], r["cpu_idle"]["min_runs"], r["cpu_idle"]["wall"])
               for r in results]
    out += ["- Agent cycles completed per window: "
            + ", ".join(f"{c:.1f} (slowest collector {m:.0f}) in {w:.1f} s"
                        for c, m, w in windows) + "."]
    problems = sorted({line for r in results for line in r["agent_log_problems"]})
    if problems:
        out += ["", "Agent warnings during the runs (first of each):", "", "```"]
        out += [*problems[:10], "```"]
    out += ["", *summary_lines(results, prof)]
    out += ["## Dashboard coverage", "", *coverage_lines(results)]
    out += ["", "## Profile", "", *thread_lines(results)]
    if prof is not None:
        out += ["", *profile_lines(prof)]
    return "\n".join(out) + "\n"
