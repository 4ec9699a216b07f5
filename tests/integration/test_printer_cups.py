"""The printer collector's CUPS source against a real cupsd, read through our IPP code.

A private cupsd (own ServerRoot, loopback port) with a test backend that writes
the `STATE:` lines of a control file on stderr and exits with its status, the
way a vendor backend reports paper out (../shared/research/peripherals.md §5.5).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.servers import require_binary, terminate
from tests.support import free_port, samples, wait_until
from totem_agent.collectors.base import CollectorContext
from totem_agent.collectors.printer.collector import PrinterCollector
from totem_agent.health import DEGRADED, OK

pytestmark = pytest.mark.integration

BACKEND = """#!/bin/sh
# Lists itself without arguments; a job writes the control file's lines (after the
# first, the exit status) to stderr, as a vendor backend reports sensors.
if [ $# -eq 0 ]; then echo 'direct kiosktest "Unknown" "Kiosk test printer"'; exit 0; fi
CONTROL="$(dirname "$0")/../../control"
cat > /dev/null
tail -n +2 "$CONTROL" | while IFS= read -r line; do
  case "$line" in
    "sleep "*) sleep "${line#sleep }" ;;
    *) echo "$line" >&2 ;;
  esac
done
exit "$(head -n 1 "$CONTROL")"
"""


class Cups:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.server = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def setup(self) -> None:
        b = self.base
        for sub in ("etc", "spool/tmp", "cache", "state", "log", "bin/backend"):
            (b / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("filter", "daemon", "notifier", "monitor", "driver", "cgi-bin"):
            if Path("/usr/lib/cups", sub).exists():
                (b / "bin" / sub).symlink_to(Path("/usr/lib/cups", sub))
        backend = b / "bin/backend/kiosktest"
        backend.write_text(BACKEND)
        backend.chmod(0o755)  # 0755: runs as User, not root
        self.control(0)
        (b / "etc/cupsd.conf").write_text(
            f"Listen {self.server}\nBrowsing No\nBrowseLocalProtocols none\nWebInterface No\n"
            "DefaultAuthType None\nLogLevel info\n"
            "<Location />\n  Order allow,deny\n  Allow 127.0.0.1\n</Location>\n"
            "<Policy default>\n  <Limit All>\n    Order deny,allow\n  </Limit>\n</Policy>\n")
        user_lines = "User lp\nGroup lp\nSystemGroup root\n" if os.geteuid() == 0 else ""
        (b / "etc/cups-files.conf").write_text(
            f"ServerRoot {b}/etc\nRequestRoot {b}/spool\nTempDir {b}/spool/tmp\n"
            f"CacheDir {b}/cache\nStateDir {b}/state\nServerBin {b}/bin\n"
            f"DataDir /usr/share/cups\nAccessLog {b}/log/access_log\n"
            f"ErrorLog {b}/log/error_log\nPageLog {b}/log/page_log\n"
            f"Printcap {b}/etc/printcap\nFileDevice Yes\nSandboxing relaxed\n{user_lines}")
        if os.geteuid() == 0:
            # cupsd drops to lp for backends and its spool: they must be able to write.
            os.chmod(b, 0o755)
            for sub in ("spool", "cache", "state", "log", "etc"):
                for root, dirs, files in os.walk(b / sub):
                    for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                        shutil.chown(name, group="lp")
                        os.chmod(name, os.stat(name).st_mode | 0o070)

    def control(self, exit_code: int, *lines: str) -> None:
        path = self.base / "control"
        path.write_text("\n".join([str(exit_code), *lines]) + "\n")
        path.chmod(0o644)

    def start(self) -> None:
        cupsd = require_binary("cupsd")
        self.proc = subprocess.Popen([cupsd, "-f", "-c", str(self.base / "etc/cupsd.conf"),
                                      "-s", str(self.base / "etc/cups-files.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(lambda: b"scheduler is running" in self.run("lpstat", "-r").stdout,
                   timeout=10,
                   message="cupsd to answer")

    def run(self, tool: str, *args: str, stdin: bytes | None = None
            ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([require_binary(tool), "-h", self.server, *args],
                              input=stdin, capture_output=True, timeout=10)

    def must(self, tool: str, *args: str, stdin: bytes | None = None) -> None:
        result = self.run(tool, *args, stdin=stdin)
        assert result.returncode == 0, (tool, args, result.stderr.decode())

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None


@pytest.fixture
def cups() -> Iterator[Cups]:
    require_binary("cupsd", "lpadmin", "lp", "cupsenable", "cupsreject", "cancel")
    # Not under pytest's tmp_path: its parents are 0700, and the backend runs as lp.
    base = Path(tempfile.mkdtemp(prefix="totem-cups-"))
    base.chmod(0o755)
    server = Cups(base)
    try:
        server.setup()
        server.start()
        server.must("lpadmin", "-p", "office", "-E", "-v", "kiosktest:/", "-m", "raw")
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def make(uri: str) -> PrinterCollector:
    return PrinterCollector(CollectorContext(), {"printers": (
        {"name": "office", "source": "cups", "uri": uri, "timeout": 2.0},)})


def scrape(collector: PrinterCollector) -> tuple[dict[Any, float], str, str]:
    series = samples(collector.collect())
    check = collector.health_checks()[0]
    return series, check.status, check.message


OFFICE = (("printer", "office"),)


def reasons(series: dict[Any, float]) -> set[tuple[str, str]]:
    return {(dict(k[1])["reason"], dict(k[1])["severity"]) for k in series
            if k[0] == "totem_printer_cups_state_reason"}


def state(series: dict[Any, float]) -> str:
    return next(dict(k[1])["state"] for k, v in series.items()
                if k[0] == "totem_printer_cups_state" and v == 1.0)


def test_cups_queue_states_reasons_and_recovery(cups: Cups) -> None:
    collector = make(f"ipp://{cups.server}/printers/office")
    series, status, message = scrape(collector)
    assert (status, message) == (OK, "Printer office: ok")
    assert state(series) == "idle"
    assert series[("totem_printer_cups_up", (("server", cups.server),))] == 1.0
    assert series[("totem_printer_cups_accepting_jobs", OFFICE)] == 1.0
    assert series[("totem_printer_cups_queued_jobs", OFFICE)] == 0.0
    assert reasons(series) == set()
    # CUPS cannot see paper: with no reason, the paper series are absent, not 0.
    assert ("totem_printer_paper_out", OFFICE) not in series
    assert ("totem_printer_online", OFFICE) not in series

    # The backend reports paper out and stops the queue (exit 4).
    cups.control(4, "STATE: +media-empty-error", "ERROR: Paper out")
    cups.must("lp", "-d", "office", stdin=b"receipt\n")
    wait_until(lambda: scrape(collector)[1] == DEGRADED, message="the queue to stop")
    series, status, message = scrape(collector)
    assert state(series) == "stopped"
    assert reasons(series) == {("media-empty", "error"), ("paused", "error")}
    assert series[("totem_printer_paper_out", OFFICE)] == 1.0
    assert message == "Printer office: paper out; stopped in CUPS (Paper out)"
    changed = series[("totem_printer_cups_state_change_timestamp_seconds", OFFICE)]
    assert changed > 1.7e9

    # Re-enabled, the queue is idle but the reason is sticky until a job clears it.
    cups.control(0, "STATE: -media-empty-error", "STATE: +cover-open-report",
                 "STATE: +media-low-warning")
    cups.must("cupsenable", "office")
    wait_until(lambda: state(scrape(collector)[0]) != "stopped", message="enabled queue")
    series, status, message = scrape(collector)
    if ("media-empty", "error") in reasons(series):
        assert message.startswith("Printer office: paper out")
    # The queued job runs now and its backend clears paper out, reports cover and low paper.
    wait_until(lambda: reasons(scrape(collector)[0]) == {("cover-open", "report"),
                                                         ("media-low", "warning")},
               message="the next job's STATE: lines")
    series, status, message = scrape(collector)
    assert (status, message) == (DEGRADED, "Printer office: cover open; paper running low")
    assert series[("totem_printer_paper_near_end", OFFICE)] == 1.0
    assert ("totem_printer_paper_out", OFFICE) not in series

    cups.must("cupsreject", "office")
    series, status, message = scrape(collector)
    assert series[("totem_printer_cups_accepting_jobs", OFFICE)] == 0.0
    assert "not accepting jobs" in message


def test_missing_queue_and_stopped_server(cups: Cups) -> None:
    collector = make(f"ipp://{cups.server}/printers/nope")
    series, status, message = scrape(collector)
    assert status == DEGRADED
    assert message == (f"Printer office: cannot be reached (the print server at {cups.server} "
                       "has no queue /printers/nope)")
    assert series[("totem_printer_cups_up", (("server", cups.server),))] == 1.0
    cups.stop()
    series, status, message = scrape(collector)
    assert series[("totem_printer_cups_up", (("server", cups.server),))] == 0.0
    assert message.startswith(f"Printer office: cannot be reached (cannot reach the print "
                              f"server at {cups.server}")
    assert series[("totem_printer_status_probe_failures_total",
                   (*OFFICE, ("reason", "io_error"), ("source", "cups")))] == 2.0


def test_offline_printer_while_the_backend_waits(cups: Cups) -> None:
    """A backend waiting for an unplugged printer: processing, offline-report."""
    collector = make(f"ipp://{cups.server}/printers/office")
    cups.control(0, "STATE: +offline-report", "INFO: Waiting for printer to become available.",
                 "sleep 30")
    cups.must("lp", "-d", "office", stdin=b"receipt\n")
    wait_until(lambda: ("offline", "report") in reasons(scrape(collector)[0]),
               message="offline-report from the backend")
    series, status, message = scrape(collector)
    assert state(series) == "processing"
    assert series[("totem_printer_online", OFFICE)] == 0.0
    assert series[("totem_printer_cups_queued_jobs", OFFICE)] == 1.0
    assert (status, message) == (DEGRADED, "Printer office: offline")
    cups.must("cancel", "-a", "office")
    wait_until(lambda: scrape(collector)[1:] == (OK, "Printer office: ok"),
               message="the queue back to idle once the job is cancelled")
