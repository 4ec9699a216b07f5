"""A fake of the thin layer the Windows platform module uses: psutil's functions,
in psutil's own Windows namedtuple shapes (psutil/_ntuples.py, Windows branch), so
`WindowsSource(psutil_module=FakePsutil())` runs the real Windows code on Linux.
The numbers are hand-written to look like a 2-CPU, 8 GB Windows 10 kiosk a few
hours after boot, each distinct so a field read from the wrong place shows.

Add to it what other Windows paths need; keep the shapes psutil's.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

# psutil's Windows shapes (field names and order matter: the code reads them by name).
scputimes = namedtuple("scputimes", ["user", "system", "idle", "interrupt", "dpc"])
scpustats = namedtuple("scpustats", ["ctx_switches", "interrupts", "soft_interrupts", "syscalls"])
svmem = namedtuple("svmem", ["total", "available", "percent", "used", "free"])
sswap = namedtuple("sswap", ["total", "used", "free", "percent", "sin", "sout"])
uname_result = namedtuple("uname_result", ["system", "node", "release", "version", "machine"])

PER_CPU_TIMES = [
    scputimes(user=1520.34375, system=987.125, idle=40213.6875, interrupt=35.515625,
              dpc=12.28125),
    scputimes(user=1398.0625, system=802.5, idle=40520.4375, interrupt=21.03125,
              dpc=8.984375),
]
CPU_STATS = scpustats(ctx_switches=187654321, interrupts=98765432, soft_interrupts=0,
                      syscalls=456789012)
BOOT_TIME = 1795400000.4812
VIRTUAL_MEMORY = svmem(total=8469987328, available=5147426816, percent=39.2,
                       used=3322560512, free=5147426816)
SWAP_MEMORY = sswap(total=1342177280, used=134217728, free=1207959552, percent=10.0,
                    sin=0, sout=0)
WINDOWS_UNAME = uname_result(system="Windows", node="KIOSK-0042", release="10",
                             version="10.0.19045", machine="AMD64")


class FakePsutil:
    """The psutil functions WindowsSource calls, answering with the recorded values."""

    def cpu_times(self, percpu: bool = False) -> Any:
        if not percpu:
            raise AssertionError("WindowsSource should ask for per-CPU times")
        return list(PER_CPU_TIMES)

    def cpu_stats(self) -> scpustats:
        return CPU_STATS

    def boot_time(self) -> float:
        return BOOT_TIME

    def virtual_memory(self) -> svmem:
        return VIRTUAL_MEMORY

    def swap_memory(self) -> sswap:
        return SWAP_MEMORY

    def getloadavg(self) -> tuple[float, float, float]:
        return (0.12, 0.25, 0.3)

