"""Parity with the real node_exporter 1.5 (Debian's prometheus-node-exporter), side by side.

Both watch this machine; each test compares one property of every node_* family
both expose: type, label names, label sets, values. Scrapes are taken back to
back, the agent's right after one of its collection cycles (it serves the last
completed cycle; node_exporter reads at scrape time), so counters agree within
a small tolerance. Families only one side has are reported in the
"integration report" section, not failed, except those the Foundation issue
requires (REQUIRED below).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pytest
from prometheus_client.metrics_core import Metric

from tests.integration.servers import (
    AgentProcess,
    ServerProcess,
    http_get,
    parse_metrics,
    wait_fresh_cycle,
)

pytestmark = pytest.mark.integration

# node_exporter's metrics about itself (build, per-collector scrape results): the
# agent reports on itself as totem_agent_*, so these are neither compared nor missed.
EXPORTER_OWN = re.compile(r"^node_(exporter|scrape)_")

# Sample names the agent must expose whenever node_exporter exposes them here: the
# collectors the Foundation issue names. "Where present" (pressure, conntrack, ...)
# follows from node_exporter: if the kernel has it, node_exporter shows it.
REQUIRED = {
    "cpu": r"node_cpu_seconds_total",
    "loadavg": r"node_load(1|5|15)",
    "meminfo": r"node_memory_\w+",
    "filesystem": r"node_filesystem_(size_bytes|avail_bytes|free_bytes|files|files_free"
                  r"|readonly|device_error)",
    "diskstats": r"node_disk_\w+",
    "netdev": r"node_network_(receive|transmit)_\w+_total",
    "boot time": r"node_boot_time_seconds",
    "time": r"node_time_seconds",
    "uname": r"node_uname_info",
    "pressure": r"node_pressure_\w+",
    "timex": r"node_timex_\w+",
    "netstat": r"node_netstat_\w+",
    "sockstat": r"node_sockstat_\w+",
    "vmstat": r"node_vmstat_\w+",
    "filefd": r"node_filefd_\w+",
    "entropy": r"node_entropy_\w+",
    "conntrack": r"node_nf_conntrack_\w+",
}

# Families whose set of label values legitimately differs between two scrapes a
# moment apart; their label NAMES are still compared, their label sets are not.
VOLATILE_LABEL_SETS = {
    "node_arp_entries": "a device is listed only while it has neighbour entries, which expire",
    "node_tcp_connection_states": "one series per TCP state present at that instant",
    "node_processes_state": "one series per process state present at that instant",
}

# Values that do not change while the machine runs: equal, within the given
# absolute tolerance (seconds for the boot time: node_exporter reads /proc/stat's
# whole-second btime).
STATIC = {
    "node_boot_time_seconds": 1.0,
    "node_memory_MemTotal_bytes": 0.0,
    "node_memory_SwapTotal_bytes": 0.0,
    "node_memory_VmallocTotal_bytes": 0.0,
    "node_memory_Hugepagesize_bytes": 0.0,
    "node_memory_HugePages_Total": 0.0,
    "node_filesystem_size_bytes": 0.0,
    "node_filesystem_files": 0.0,
    "node_filesystem_readonly": 0.0,
    "node_filesystem_device_error": 0.0,
    "node_uname_info": 0.0,
    "node_os_info": 0.0,
    "node_os_version": 0.0,
    "node_disk_info": 0.0,
    "node_network_info": 0.0,
    "node_network_mtu_bytes": 0.0,
    "node_network_speed_bytes": 0.0,
    "node_network_iface_id": 0.0,
    "node_network_iface_link": 0.0,
    "node_network_iface_link_mode": 0.0,
    "node_network_flags": 0.0,
    "node_network_protocol_type": 0.0,
    "node_network_address_assign_type": 0.0,
    "node_network_name_assign_type": 0.0,
    "node_network_device_id": 0.0,
    "node_network_net_dev_group": 0.0,
    "node_network_transmit_queue_length": 0.0,
    "node_network_carrier": 0.0,
    "node_network_dormant": 0.0,
    "node_network_up": 0.0,
    "node_entropy_pool_size_bits": 0.0,
    "node_filefd_maximum": 0.0,
    "node_nf_conntrack_entries_limit": 0.0,
    "node_time_zone_offset_seconds": 0.0,
    "node_time_clocksource_available_info": 0.0,
    "node_time_clocksource_current_info": 0.0,
    "node_timex_tick_seconds": 0.0,
    "node_timex_sync_status": 0.0,
    "node_selinux_enabled": 0.0,
    "node_textfile_scrape_error": 0.0,
    "node_totem_textfile_probe": 0.0,
}
# Clocks read at collection time (the agent's snapshot is at most ~0.5 s old).
CLOCKS = {"node_time_seconds": 2.0}


def counter_tolerance(sample_name: str, largest: float) -> float:
    """How far two back-to-back readings of a counter may be apart."""
    if sample_name in ("node_cpu_seconds_total", "node_cpu_guest_seconds_total"):
        return 1.0  # per cpu and mode: at most 1 s of CPU time per second of skew
    if sample_name.endswith("_seconds_total"):
        return 1.0 + 0.05 * largest
    # bytes, packets, events: within 5 %, plus a little for counters that idle near 0
    return max(10.0, 0.05 * largest)


def gauge_tolerance(sample_name: str, largest: float) -> float:
    """Loose bound for changing gauges: catches a wrong unit (kB for bytes, ms for s),
    not the normal movement of free memory or load between two scrapes."""
    if sample_name.endswith(("_bytes", "_memory")):
        floor = 64.0 * 1024 * 1024
    elif sample_name.endswith("_mem"):
        floor = 64.0 * 1024 * 1024 / 4096  # sockstat's TCP_mem / UDP_mem count pages
    else:
        floor = 16.0
    return max(floor, 0.5 * largest)


LabelSet = tuple[tuple[str, str], ...]


@dataclass
class Pair:
    agent: dict[str, Metric]
    node_exporter: dict[str, Metric]

    @property
    def common(self) -> list[str]:
        return sorted(name for name in self.agent.keys() & self.node_exporter.keys()
                      if not EXPORTER_OWN.match(name))


def node_families(families: dict[str, Metric]) -> dict[str, Metric]:
    return {name: f for name, f in families.items() if name.startswith("node_")}


def series(family: Metric) -> list[tuple[str, LabelSet, float]]:
    return [(s.name, tuple(sorted(s.labels.items())), s.value) for s in family.samples
            if not s.name.endswith("_created")]


def label_names(family: Metric) -> set[tuple[str, ...]]:
    return {tuple(name for name, _ in labels) for _, labels, _ in series(family)}


def label_sets(family: Metric) -> set[tuple[str, LabelSet]]:
    return {(name, labels) for name, labels, _ in series(family)}


def values(family: Metric) -> dict[tuple[str, LabelSet], float]:
    return {(name, labels): value for name, labels, value in series(family)}


def sample_types(families: Iterable[Metric]) -> dict[str, tuple[str, str]]:
    """sample name -> (family name, type)."""
    return {s.name: (f.name, f.type) for f in families for s in f.samples}


def exposed_name(family: Metric) -> str:
    """The name a query uses: the parser drops a counter family's `_total`."""
    return family.name + "_total" if family.type == "counter" else family.name


def fail(problems: list[str], what: str) -> None:
    if problems:
        pytest.fail(f"{len(problems)} {what}:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def pair(system_agent: AgentProcess, node_exporter: ServerProcess) -> Pair:
    agent_text = wait_fresh_cycle(system_agent)
    exporter = http_get(node_exporter.url + "/metrics")
    assert exporter.status == 200, node_exporter.describe()
    return Pair(node_families(parse_metrics(agent_text)),
                node_families(parse_metrics(exporter.text)))


def test_agent_exposes_node_families(pair: Pair) -> None:
    assert pair.common, "the agent exposes no node_* family that node_exporter also has"


def test_required_families_present(pair: Pair) -> None:
    agent_names = set(sample_types(pair.agent.values()))
    exporter_names = set(sample_types(pair.node_exporter.values()))
    problems = []
    for collector, pattern in REQUIRED.items():
        wanted = {n for n in exporter_names if re.fullmatch(pattern, n)}
        missing = sorted(wanted - agent_names)
        if missing:
            problems.append(f"{collector}: missing {', '.join(missing)}")
    fail(problems, "required node_exporter collectors incomplete in the agent")


def test_same_type(pair: Pair) -> None:
    problems = [f"{name}: agent {pair.agent[name].type}, node_exporter "
                f"{pair.node_exporter[name].type}"
                for name in pair.common if pair.agent[name].type != pair.node_exporter[name].type]
    fail(problems, "families typed differently from node_exporter")


def test_no_sample_under_another_type(pair: Pair) -> None:
    """Also catches a family named differently for its type, e.g. a gauge
    `node_forks_total` where node_exporter has the counter `node_forks` (sample
    `node_forks_total`): same sample name, different family and type."""
    ours = sample_types(pair.agent.values())
    theirs = sample_types(pair.node_exporter.values())
    problems = [f"{sample}: agent family {ours[sample][0]} ({ours[sample][1]}), node_exporter "
                f"family {theirs[sample][0]} ({theirs[sample][1]})"
                for sample in sorted(ours.keys() & theirs.keys())
                if ours[sample] != theirs[sample]]
    fail(problems, "samples exposed under a different family or type than node_exporter's")


def test_same_label_names(pair: Pair) -> None:
    problems = []
    for name in pair.common:
        ours, theirs = label_names(pair.agent[name]), label_names(pair.node_exporter[name])
        if ours != theirs:
            problems.append(f"{name}: agent {sorted(ours)}, node_exporter {sorted(theirs)}")
    fail(problems, "families with other label names than node_exporter's")


def test_same_label_sets(pair: Pair) -> None:
    problems = []
    for name in pair.common:
        if name in VOLATILE_LABEL_SETS:
            continue
        ours, theirs = label_sets(pair.agent[name]), label_sets(pair.node_exporter[name])
        if ours != theirs:
            only_ours = sorted(ours - theirs)[:5]
            only_theirs = sorted(theirs - ours)[:5]
            problems.append(f"{name}: only in the agent {only_ours}; "
                            f"only in node_exporter {only_theirs}")
    fail(problems, "families whose series differ from node_exporter's")


def _compare(pair: Pair, names: Iterable[str],
             tolerance: float | Callable[[str, float], float]) -> list[str]:
    problems = []
    for name in names:
        ours, theirs = values(pair.agent[name]), values(pair.node_exporter[name])
        for key in sorted(ours.keys() & theirs.keys()):
            a, b = ours[key], theirs[key]
            if math.isnan(a) and math.isnan(b):
                continue
            largest = max(abs(a), abs(b))
            allowed = tolerance(key[0], largest) if callable(tolerance) else tolerance
            if not abs(a - b) <= allowed:
                labels = ",".join(f'{k}="{v}"' for k, v in key[1])
                problems.append(f"{key[0]}{{{labels}}}: agent {a!r}, node_exporter {b!r} "
                                f"(allowed difference {allowed:g})")
    return problems


def test_static_values_equal(pair: Pair) -> None:
    problems = []
    for name, allowed in {**STATIC, **CLOCKS}.items():
        if name in pair.common:
            problems += _compare(pair, [name], allowed)
    fail(problems, "static values differ from node_exporter's")


def test_counters_close(pair: Pair) -> None:
    # node_exporter types most /proc/net/netstat and /proc/vmstat fields "untyped";
    # they are counters (or near-constant), so they get the counter tolerance too.
    names = [n for n in pair.common if pair.node_exporter[n].type in ("counter", "unknown")
             and n not in STATIC]
    fail(_compare(pair, names, counter_tolerance), "counters too far from node_exporter's")


# Instantaneous counts of runnable/blocked tasks swing by tens between two reads
# when anything else runs (the test suite itself, a benchmark): no unit to check.
RUN_QUEUE_GAUGES = frozenset({"node_procs_running", "node_procs_blocked"})


def test_gauges_plausible(pair: Pair) -> None:
    names = [n for n in pair.common if pair.node_exporter[n].type == "gauge"
             and n not in STATIC and n not in CLOCKS and n not in RUN_QUEUE_GAUGES]
    fail(_compare(pair, names, gauge_tolerance),
         "gauges far from node_exporter's (a wrong unit or scale?)")


def test_report_differences(pair: Pair, integration_report: list[str]) -> None:
    """Information, not a failure: which node_exporter families the agent lacks here."""
    missing = sorted(exposed_name(pair.node_exporter[n])
                     for n in pair.node_exporter.keys() - pair.agent.keys()
                     if not EXPORTER_OWN.match(n))
    extra = sorted(exposed_name(pair.agent[n])
                   for n in pair.agent.keys() - pair.node_exporter.keys())
    by_prefix: dict[str, list[str]] = {}
    for name in missing:
        by_prefix.setdefault("_".join(name.split("_")[:2]), []).append(name)
    integration_report.append(
        f"node_exporter parity: {len(pair.common)} node_* families in common; node_exporter "
        f"has {len(missing)} the agent lacks, the agent has {len(extra)} node_exporter "
        "lacks here")
    for prefix, names in sorted(by_prefix.items()):
        integration_report.append(f"  agent lacks {prefix}_* ({len(names)}): "
                                  + ", ".join(n[len(prefix) + 1:] for n in names))
    if extra:
        integration_report.append(f"  agent only: {', '.join(extra)}")
    for name, reason in VOLATILE_LABEL_SETS.items():
        if name in pair.common:
            integration_report.append(f"  label sets of {name} not compared: {reason}")
