"""Benchmark of the single-file binary: build time, size, start time.

Not a test (pytest does not collect it): a script run on demand.

    .venv/bin/python tests/bench/bench_binary.py [--runs 10] [--binary dist/totem-agent]
        [--write-docs]

Builds with installer/build-binary.sh into a temp dir (unless --binary is given),
then measures, each `--runs` times, the median and worst of:
  * `totem-agent version`: wall time from exec to exit (a onefile binary unpacks
    itself into a temp dir at every start, so this is its fixed start cost);
  * `totem-agent run --listen 127.0.0.1:PORT` with the default collectors: wall
    time from exec until GET /metrics first answers 200 (polled every 10 ms),
    then SIGTERM and wait.
--write-docs replaces this script's own section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bench.docs_section import replace_section  # noqa: E402  (needs the repo root)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build(directory: Path) -> tuple[Path, float]:
    began = time.perf_counter()
    subprocess.run([str(REPO / "installer" / "build-binary.sh"), "--dist", str(directory / "dist"),
                    "--work", str(directory / "work")], check=True, stdout=subprocess.DEVNULL)
    return directory / "dist" / "totem-agent", time.perf_counter() - began


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TOTEM_AGENT_")}


def time_version(binary: Path) -> float:
    began = time.perf_counter()
    subprocess.run([str(binary), "version"], check=True, stdout=subprocess.DEVNULL, env=env())
    return time.perf_counter() - began


def time_run(binary: Path, state: Path) -> float:
    port = free_port()
    began = time.perf_counter()
    proc = subprocess.Popen([str(binary), "run", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**env(), "TOTEM_AGENT_STATE_DIR": str(state)})
    try:
        deadline = began + 30
        while time.perf_counter() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - began
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"the agent exited with {proc.returncode}")
            time.sleep(0.01)
        raise RuntimeError("/metrics did not answer within 30 s")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--binary", type=Path)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-binary-"))
    try:
        build_seconds = None
        binary = args.binary
        if binary is None:
            binary, build_seconds = build(work)
        size = binary.stat().st_size
        time_version(binary)  # warm the page cache: every later start is alike
        versions = [time_version(binary) for _ in range(args.runs)]
        runs = [time_run(binary, work / f"state{i}") for i in range(args.runs)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = ("`.venv/bin/python tests/bench/bench_binary.py --runs "
               f"{args.runs}{' --binary ' + str(args.binary) if args.binary else ''}"
               " --write-docs`")
    lines = [
        "## Single-file binary (PyInstaller --onefile)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by {command} on {platform.machine()} "
        f"Linux {platform.release()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the end "
        f"(other work on the machine slows every figure); {args.runs} runs each, median "
        "(worst).",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| binary size | {size:,} bytes ({size / 2**20:.1f} MiB) |",
    ]
    if build_seconds is not None:
        lines.append(f"| build time (installer/build-binary.sh) | {build_seconds:.1f} s |")
    lines += [
        f"| `totem-agent version`, exec to exit | {statistics.median(versions):.3f} s "
        f"({max(versions):.3f} s) |",
        f"| `totem-agent run`, exec to first 200 from /metrics | "
        f"{statistics.median(runs):.3f} s ({max(runs):.3f} s) |",
        "",
        "A onefile binary unpacks itself into a temporary directory at each start; that "
        "is most of the `version` time. The service starts once per boot, so this is "
        "paid once; `status` and `event` calls from scripts pay it each time.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        replace_section("bench_binary.py", text)
        print("wrote its section of docs/benchmarks.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
