#!/usr/bin/env python3
"""Regenerate tests/fixtures/node_exporter-1.5/linux.prom: what the real node_exporter
1.5 exports for the checked-in fixture tree tests/fixtures/linux.

    .venv/bin/python scripts/gen_node_exporter_golden.py

Needs Debian's prometheus-node-exporter (1.5) installed. It is started on a free
loopback port with --path.procfs/--path.sysfs pointed at the fixture tree and only
the collectors listed below enabled; its /metrics, minus its own build and scrape
series, becomes the golden file. The unit tests (tests/unit/collectors/golden.py)
check that our collectors export the same families, types, label sets and values
for the same files. Rerun after changing the fixture tree.

Not covered: timex (reads the running kernel through a syscall, not a file) and
textfile (its labels carry absolute paths and file mtimes); their tests pin
node_exporter's behaviour with literals instead. filesystem: statfs reads the disk
the checkout is on, whose free space moves; its tests check labels and values
against statvfs at test time.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "linux"
GOLDEN = ROOT / "tests" / "fixtures" / "node_exporter-1.5" / "linux.prom"
COLLECTORS = ["conntrack", "entropy", "filefd", "hwmon", "netstat", "pressure", "sockstat",
              "udp_queues", "vmstat",
              "arp", "diskstats", "netclass", "netdev", "softnet"]
DROP = re.compile(r"^(# (HELP|TYPE) )?(node_exporter_build_info|node_scrape_collector_\w+)\b")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(url: str, deadline: float) -> str:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main() -> int:
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        print("prometheus-node-exporter is not installed (apt-get install "
              "prometheus-node-exporter)", file=sys.stderr)
        return 1
    version = subprocess.run([binary, "--version"], capture_output=True, text=True)
    if "version 1.5." not in version.stdout + version.stderr:
        print(f"{binary} is not node_exporter 1.5:\n{version.stdout}{version.stderr}",
              file=sys.stderr)
        return 1
    port = free_port()
    args = [binary, f"--web.listen-address=127.0.0.1:{port}",
            f"--path.procfs={FIXTURE / 'proc'}", f"--path.sysfs={FIXTURE / 'sys'}",
            f"--path.rootfs={FIXTURE / 'root'}", "--collector.disable-defaults",
            f"--path.udev.data={FIXTURE / 'root' / 'run' / 'udev' / 'data'}",
            # netlink would read this machine's kernel, not the fixture's /proc/net/dev.
            "--no-collector.netdev.netlink",
            # Debian's package patches the default to ^lo$; upstream 1.5 excludes none.
            "--collector.netdev.device-exclude=",
            *(f"--collector.{name}" for name in COLLECTORS)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        text = scrape(f"http://127.0.0.1:{port}/metrics", time.monotonic() + 10)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    failed = re.findall(r'node_scrape_collector_success\{collector="(\w+)"\} 0', text)
    if failed:
        print(f"collectors failed on the fixture tree: {failed}\n{stderr.decode()}",
              file=sys.stderr)
        return 1
    lines = [line for line in text.splitlines()
             if line.startswith(("node_", "# HELP node_", "# TYPE node_"))
             and not DROP.match(line)]
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text("\n".join(lines) + "\n")
    print(f"wrote {GOLDEN.relative_to(ROOT)} ({sum(not x.startswith('#') for x in lines)} "
          "series)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
