"""netstat: protocol counters from /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6.

As node_exporter's netstat collector: every field is `node_netstat_<Protocol>_<Field>`
(e.g. `node_netstat_Tcp_InSegs`), exported only if it matches the `fields` regex,
and typed untyped, as node_exporter 1.5 declares them (most are counters, some such
as Tcp_CurrEstab are gauges, and the kernel does not say which).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.metrics_core import Metric, UnknownMetricFamily

from totem_agent.collectors._filters import regex_option
from totem_agent.collectors.base import Collector, CollectorContext, read_text

DEFAULT_FIELDS = (
    r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)"
    r"|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)"
    r"|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)"
    r"|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$"
)

# {protocol: {field: value}}
NetStats = dict[str, dict[str, float]]


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: invalid value {text!r}") from None


def parse_netstat(text: str) -> NetStats:
    """Parse /proc/net/netstat or /proc/net/snmp: pairs of lines, names then values:

        Tcp: RtoAlgorithm RtoMin ... InSegs OutSegs
        Tcp: 1 200 ... 3495 1868
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) % 2:
        raise ValueError(f"odd number of lines ({len(lines)}): a header has no value line")
    stats: NetStats = {}
    for i in range(0, len(lines), 2):
        names, values = lines[i].split(), lines[i + 1].split()
        protocol = names[0].rstrip(":")
        if values[0].rstrip(":") != protocol:
            raise ValueError(f"line {i + 2}: values for {values[0]!r} follow the {names[0]!r} "
                             "header")
        if len(names) != len(values):
            raise ValueError(f"line {i + 1}: {protocol} has {len(names) - 1} names but "
                             f"{len(values) - 1} values")
        stats[protocol] = {name: _number(value, f"line {i + 2} ({protocol}{name})")
                           for name, value in zip(names[1:], values[1:], strict=True)}
    return stats


def parse_snmp6(text: str) -> NetStats:
    """Parse /proc/net/snmp6: one "Ip6InReceives  128" per line; the protocol is the
    name up to and including its first "6" (Ip6, Icmp6, Udp6, UdpLite6)."""
    stats: NetStats = {}
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if len(parts) < 2:
            continue
        six = parts[0].find("6")
        if six == -1:
            continue  # not a per-protocol field
        protocol, name = parts[0][:six + 1], parts[0][six + 1:]
        stats.setdefault(protocol, {})[name] = _number(parts[1], f"line {number}")
    return stats


def netstat_families(stats: NetStats, fields: re.Pattern[str],
                     wanted: dict[str, bool] | None = None) -> list[Metric]:
    """`wanted`: the regex's verdict per key, kept between cycles (the kernel's ~300
    field names do not change, and searching them all was a third of a cycle)."""
    families: list[Metric] = []
    wanted = {} if wanted is None else wanted
    for protocol in sorted(stats):
        for name, value in sorted(stats[protocol].items()):
            key = f"{protocol}_{name}"
            keep = wanted.get(key)
            if keep is None:
                keep = wanted[key] = fields.search(key) is not None
            if keep:
                families.append(UnknownMetricFamily(f"node_netstat_{key}",
                                                    f"Statistic {protocol}{name}.", value=value))
    return families


class NetstatCollector(Collector):
    name = "netstat"
    description = "TCP, UDP, IP and ICMP protocol counters from /proc/net/{netstat,snmp,snmp6}"
    platforms = frozenset({"linux"})
    options = {
        "fields": regex_option(
            DEFAULT_FIELDS,
            "Regular expression of the <Protocol>_<Field> names to export "
            "(node_exporter's --collector.netstat.fields)."),
    }

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self._fields = re.compile(settings.get("fields", DEFAULT_FIELDS))
        self._wanted: dict[str, bool] = {}

    def collect(self) -> Iterable[Metric]:
        stats: NetStats = {}
        for source in ("netstat", "snmp"):
            path = self.context.paths.proc("net", source)
            try:
                stats.update(parse_netstat(read_text(path)))
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from None
        path = self.context.paths.proc("net", "snmp6")
        # With IPv6 disabled (ipv6.disable=1) there is no snmp6, by design.
        if path.exists():
            try:
                stats.update(parse_snmp6(read_text(path)))
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from None
        return netstat_families(stats, self._fields, self._wanted)
