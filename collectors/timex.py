"""timex: the kernel clock discipline from adjtimex(2), as node_exporter's timex.

Buffered samples carry the kiosk's timestamps and Prometheus rejects samples
too far in the future, so `node_timex_sync_status` (is the kernel clock
synchronised?) and `node_timex_offset_seconds` are alerted on.

The syscall is injected: the collector takes a function returning the raw
`struct timex` fields (`TimexReading`), so tests feed recorded readings. The
real one, `read_adjtimex`, calls adjtimex with modes = 0 (read only: nothing is
changed, no privilege needed) through ctypes.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from totem_agent.collectors.base import Collector, CollectorContext

TIME_ERROR = 5  # adjtimex's return value when the clock is not synchronised
STA_NANO = 0x2000  # status bit: offset and jitter are in nanoseconds, else microseconds
NANOSECONDS = 1_000_000_000.0
MICROSECONDS = 1_000_000.0
# freq, ppsfreq and stabil are in ppm with a 16-bit fractional part (adjtimex(2) NOTES).
PPM16FRAC = 1_000_000.0 * 65536.0


@dataclass(frozen=True)
class TimexReading:
    """adjtimex's return value (clock state) and the raw struct timex fields used."""

    state: int
    offset: int
    freq: int
    maxerror: int
    esterror: int
    status: int
    constant: int
    tick: int
    ppsfreq: int
    jitter: int
    shift: int
    stabil: int
    jitcnt: int
    calcnt: int
    errcnt: int
    stbcnt: int
    tai: int


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """glibc's struct timex (<sys/timex.h>); ctypes adds the same alignment padding."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


def read_adjtimex() -> TimexReading:
    """Call adjtimex(2) with modes = 0 and return what the kernel reports."""
    # CDLL(None): the symbols already loaded in this process, libc among them
    # (also inside a PyInstaller bundle, where libc's file name is not ours to guess).
    libc = ctypes.CDLL(None, use_errno=True)
    buf = _Timex()  # zero-initialised: modes = 0 reads without adjusting anything
    state = libc.adjtimex(ctypes.byref(buf))
    if state == -1:
        code = ctypes.get_errno()
        raise OSError(code, f"adjtimex failed: {os.strerror(code)}")
    return TimexReading(
        state=state, offset=buf.offset, freq=buf.freq, maxerror=buf.maxerror,
        esterror=buf.esterror, status=buf.status, constant=buf.constant, tick=buf.tick,
        ppsfreq=buf.ppsfreq, jitter=buf.jitter, shift=buf.shift, stabil=buf.stabil,
        jitcnt=buf.jitcnt, calcnt=buf.calcnt, errcnt=buf.errcnt, stbcnt=buf.stbcnt, tai=buf.tai,
    )


def timex_families(r: TimexReading) -> list[Metric]:
    """node_exporter 1.5's node_timex_* families from one reading (units as it converts)."""
    # offset and jitter follow the STA_NANO unit; maxerror, esterror and tick are
    # always microseconds.
    divisor = NANOSECONDS if r.status & STA_NANO else MICROSECONDS

    def gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, help_text, value=value)

    def counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
        return CounterMetricFamily(name, help_text, value=value)

    return [
        gauge("node_timex_sync_status",
              "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
              0.0 if r.state == TIME_ERROR else 1.0),
        gauge("node_timex_offset_seconds",
              "Time offset in between local system and reference clock.", r.offset / divisor),
        gauge("node_timex_frequency_adjustment_ratio", "Local clock frequency adjustment.",
              1 + r.freq / PPM16FRAC),
        gauge("node_timex_maxerror_seconds", "Maximum error in seconds.",
              r.maxerror / MICROSECONDS),
        gauge("node_timex_estimated_error_seconds", "Estimated error in seconds.",
              r.esterror / MICROSECONDS),
        gauge("node_timex_status", "Value of the status array bits.", float(r.status)),
        gauge("node_timex_loop_time_constant", "Phase-locked loop time constant.",
              float(r.constant)),
        gauge("node_timex_tick_seconds", "Seconds between clock ticks.", r.tick / MICROSECONDS),
        gauge("node_timex_pps_frequency_hertz", "Pulse per second frequency.",
              r.ppsfreq / PPM16FRAC),
        gauge("node_timex_pps_jitter_seconds", "Pulse per second jitter.", r.jitter / divisor),
        # node_exporter exports the raw shift (log2 of the PPS interval in seconds).
        gauge("node_timex_pps_shift_seconds", "Pulse per second interval duration.",
              float(r.shift)),
        gauge("node_timex_pps_stability_hertz",
              "Pulse per second stability, average of recent frequency changes.",
              r.stabil / PPM16FRAC),
        counter("node_timex_pps_jitter",
                "Pulse per second count of jitter limit exceeded events.", float(r.jitcnt)),
        counter("node_timex_pps_calibration",
                "Pulse per second count of calibration intervals.", float(r.calcnt)),
        counter("node_timex_pps_error", "Pulse per second count of calibration errors.",
                float(r.errcnt)),
        counter("node_timex_pps_stability_exceeded",
                "Pulse per second count of stability limit exceeded events.", float(r.stbcnt)),
        gauge("node_timex_tai_offset_seconds", "International Atomic Time (TAI) offset.",
              float(r.tai)),
    ]


class TimexCollector(Collector):
    name = "timex"
    description = "kernel clock synchronisation state and offset (adjtimex)"
    platforms = frozenset({"linux"})

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any],
                 adjtimex: Callable[[], TimexReading] = read_adjtimex) -> None:
        super().__init__(context, settings)
        self._adjtimex = adjtimex

    def collect(self) -> Iterable[Metric]:
        return timex_families(self._adjtimex())
