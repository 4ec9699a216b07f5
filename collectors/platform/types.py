"""Result types shared by the platform modules and the collectors.

Imports nothing of the package (psutil's _common.py habit), so both sides can
use it without a cycle. Units are the base units the metrics use: seconds and
bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class LoadAverage(NamedTuple):
    load1: float
    load5: float
    load15: float


@dataclass(frozen=True)
class CpuTimes:
    """Seconds one CPU spent in each mode since boot (node_cpu_seconds_total)."""

    cpu: str
    user: float
    nice: float
    system: float
    idle: float
    iowait: float
    irq: float
    softirq: float
    steal: float
    guest: float
    guest_nice: float
