"""timex: recorded adjtimex(2) readings (unit rules, sync status) and the real syscall."""

from __future__ import annotations

import ctypes
import os
import sys

import pytest

from tests.support import samples
from totem_agent.collectors.base import CollectorContext
from totem_agent.collectors.timex import (
    TimexCollector,
    TimexReading,
    _Timex,
    read_adjtimex,
    timex_families,
)

NODE_EXPORTER_1_5_NAMES = {
    "node_timex_estimated_error_seconds", "node_timex_frequency_adjustment_ratio",
    "node_timex_loop_time_constant", "node_timex_maxerror_seconds", "node_timex_offset_seconds",
    "node_timex_pps_calibration_total", "node_timex_pps_error_total",
    "node_timex_pps_frequency_hertz", "node_timex_pps_jitter_seconds",
    "node_timex_pps_jitter_total", "node_timex_pps_shift_seconds",
    "node_timex_pps_stability_exceeded_total", "node_timex_pps_stability_hertz",
    "node_timex_status", "node_timex_sync_status", "node_timex_tai_offset_seconds",
    "node_timex_tick_seconds",
}
COUNTERS = {"node_timex_pps_calibration", "node_timex_pps_error", "node_timex_pps_jitter",
            "node_timex_pps_stability_exceeded"}

# Recorded on this build machine (no NTP daemon): TIME_ERROR, status = STA_UNSYNC.
# node_exporter 1.5 on the same machine exported exactly the values asserted below.
UNSYNCED = TimexReading(state=5, offset=0, freq=0, maxerror=16000000, esterror=16000000,
                        status=0x40, constant=2, tick=10000, ppsfreq=0, jitter=0, shift=0,
                        stabil=0, jitcnt=0, calcnt=0, errcnt=0, stbcnt=0, tai=0)
# A kiosk synchronised by chrony: TIME_OK, STA_PLL | STA_NANO, so offset and jitter
# are nanoseconds.
CHRONY = TimexReading(state=0, offset=-123456, freq=-1179648, maxerror=12500,
                      esterror=250, status=0x2001, constant=6, tick=10000, ppsfreq=655360,
                      jitter=2500, shift=2, stabil=131072, jitcnt=3, calcnt=40, errcnt=1,
                      stbcnt=2, tai=37)
# ntpd without the nano bit: offset and jitter in microseconds.
NTPD_MICRO = TimexReading(state=0, offset=1500, freq=0, maxerror=20000, esterror=1000,
                          status=0x0001, constant=7, tick=10000, ppsfreq=0, jitter=250,
                          shift=0, stabil=0, jitcnt=0, calcnt=0, errcnt=0, stbcnt=0, tai=0)


def values(reading: TimexReading) -> dict[str, float]:
    return {name: value for (name, _), value in samples(timex_families(reading)).items()}


def test_names_and_types_are_node_exporter_1_5s() -> None:
    families = timex_families(UNSYNCED)
    assert {s.name for f in families for s in f.samples} == NODE_EXPORTER_1_5_NAMES
    assert {f.name for f in families if f.type == "counter"} == COUNTERS
    assert all(f.type == "gauge" for f in families if f.name not in COUNTERS)


def test_unsynchronised_clock_as_node_exporter_reported_it() -> None:
    got = values(UNSYNCED)
    assert got["node_timex_sync_status"] == 0  # TIME_ERROR
    assert got["node_timex_status"] == 64
    assert got["node_timex_maxerror_seconds"] == 16
    assert got["node_timex_estimated_error_seconds"] == 16
    assert got["node_timex_tick_seconds"] == 0.01
    assert got["node_timex_loop_time_constant"] == 2
    assert got["node_timex_frequency_adjustment_ratio"] == 1
    assert got["node_timex_offset_seconds"] == 0


def test_sta_nano_makes_offset_and_jitter_nanoseconds() -> None:
    got = values(CHRONY)
    assert got["node_timex_sync_status"] == 1
    assert got["node_timex_offset_seconds"] == pytest.approx(-0.000123456)
    assert got["node_timex_pps_jitter_seconds"] == pytest.approx(2.5e-6)
    # maxerror, esterror and tick stay microseconds whatever STA_NANO says.
    assert got["node_timex_maxerror_seconds"] == pytest.approx(0.0125)
    assert got["node_timex_estimated_error_seconds"] == pytest.approx(0.00025)
    assert got["node_timex_tick_seconds"] == pytest.approx(0.01)
    # freq, ppsfreq and stabil are ppm << 16: -18 ppm, +10 ppm, 2 ppm.
    assert got["node_timex_frequency_adjustment_ratio"] == pytest.approx(1 - 18e-6)
    assert got["node_timex_pps_frequency_hertz"] == pytest.approx(10e-6)
    assert got["node_timex_pps_stability_hertz"] == pytest.approx(2e-6)
    assert got["node_timex_pps_shift_seconds"] == 2
    assert got["node_timex_pps_jitter_total"] == 3
    assert got["node_timex_pps_calibration_total"] == 40
    assert got["node_timex_pps_error_total"] == 1
    assert got["node_timex_pps_stability_exceeded_total"] == 2
    assert got["node_timex_tai_offset_seconds"] == 37
    assert got["node_timex_status"] == 0x2001


def test_without_sta_nano_offset_and_jitter_are_microseconds() -> None:
    got = values(NTPD_MICRO)
    assert got["node_timex_offset_seconds"] == pytest.approx(0.0015)
    assert got["node_timex_pps_jitter_seconds"] == pytest.approx(0.00025)


@pytest.mark.parametrize("state, synced", [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 0)])
def test_only_time_error_means_unsynchronised(state: int, synced: int) -> None:
    reading = TimexReading(**{**CHRONY.__dict__, "state": state})
    assert values(reading)["node_timex_sync_status"] == synced


def test_collector_calls_the_injected_syscall_each_time() -> None:
    readings = iter([UNSYNCED, CHRONY])
    collector = TimexCollector(CollectorContext(), {}, adjtimex=lambda: next(readings))
    first = values_of(collector)
    second = values_of(collector)
    assert (first["node_timex_sync_status"], second["node_timex_sync_status"]) == (0, 1)


def values_of(collector: TimexCollector) -> dict[str, float]:
    return {name: v for (name, _), v in samples(collector.collect()).items()}


def test_syscall_failure_propagates() -> None:
    def broken() -> TimexReading:
        raise OSError(1, "adjtimex failed: Operation not permitted")

    with pytest.raises(OSError, match="adjtimex failed"):
        TimexCollector(CollectorContext(), {}, adjtimex=broken).collect()


@pytest.mark.skipif(not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_long) != 8,
                    reason="glibc struct timex on 64-bit Linux")
def test_struct_layout_is_glibcs() -> None:
    # sizeof and offsetof printed by gcc for <sys/timex.h> on x86_64 glibc.
    assert ctypes.sizeof(_Timex) == 208
    assert (_Timex.shift.offset, _Timex.tick.offset, _Timex.tai.offset) == (112, 88, 160)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is Linux's")
def test_live_syscall_reads_this_kernel() -> None:
    reading = read_adjtimex()
    assert 0 <= reading.state <= 5
    # tick sits deep in the struct: a wrong layout would not give 1/USER_HZ seconds.
    got = values(reading)
    assert got["node_timex_tick_seconds"] == pytest.approx(1 / os.sysconf("SC_CLK_TCK"))
    assert 0 <= got["node_timex_maxerror_seconds"] <= 16  # the kernel caps it at 16 s
    assert got["node_timex_sync_status"] in (0, 1)
    live = values_of(TimexCollector(CollectorContext(), {}))
    assert set(live) == NODE_EXPORTER_1_5_NAMES
