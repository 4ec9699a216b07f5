"""udp_queues: bytes queued in UDP socket buffers, from /proc/net/udp and udp6.

As node_exporter's udp_queues: `node_udp_queues{ip="v4"|"v6", queue="rx"|"tx"}`,
the sum over sockets of the tx_queue:rx_queue column. A growing rx queue means a
local service (a kiosk's syslog or metrics receiver) is not reading fast enough.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import NamedTuple

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from totem_agent.collectors.base import Collector, NoDataError

log = logging.getLogger(__name__)


class QueueTotals(NamedTuple):
    tx: int
    rx: int


def parse_udp(text: str) -> QueueTotals:
    """Sum the tx_queue:rx_queue column (hex) of /proc/net/udp or udp6:

         sl  local_address rem_address   st tx_queue rx_queue tr ...
        3561: 0100007F:890A 00000000:0000 07 00000000:000009C0 00:00000000 ...
    """
    lines = text.splitlines()
    if not lines or not lines[0].split() or lines[0].split()[0] != "sl":
        raise ValueError("missing the 'sl local_address ...' header line")
    tx = rx = 0
    for number, line in enumerate(lines[1:], 2):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 5:
            raise ValueError(f"line {number}: too few fields: {line[:80]!r}")
        tx_text, sep, rx_text = parts[4].partition(":")
        try:
            if not sep:
                raise ValueError
            tx += int(tx_text, 16)
            rx += int(rx_text, 16)
        except ValueError:
            raise ValueError(f"line {number}: bad tx_queue:rx_queue {parts[4]!r}") from None
    return QueueTotals(tx=tx, rx=rx)


class UdpQueuesCollector(Collector):
    name = "udp_queues"
    description = "bytes queued in UDP socket buffers (IPv4 and IPv6)"
    platforms = frozenset({"linux"})

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("node_udp_queues",
                                   "Number of allocated memory in the kernel for UDP datagrams "
                                   "in bytes.", labels=["queue", "ip"])
        found = False
        for ip, filename in (("v4", "udp"), ("v6", "udp6")):
            path = self.context.paths.proc("net", filename)
            try:
                text = path.read_text()
            except FileNotFoundError:
                log.debug("udp_queues: no %s (protocol disabled), skipping", path)
                continue
            try:
                totals = parse_udp(text)
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from None
            family.add_metric(["tx", ip], float(totals.tx))
            family.add_metric(["rx", ip], float(totals.rx))
            found = True
        if not found:
            raise NoDataError("neither /proc/net/udp nor udp6 exists")
        return [family]
