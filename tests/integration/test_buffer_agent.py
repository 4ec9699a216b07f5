"""The running agent keeps every cycle in its buffer; `buffer stats|export` read it; a full
disk costs counted cycles, never /metrics (real agent, real promtool, real tmpfs)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.servers import (
    AgentProcess,
    agent_config,
    parse_metrics,
    require_binary,
    run_cli,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration

ONLY = ["loadavg", "meminfo", "cpu", "netdev", "diskstats"]


def metric_value(agent: AgentProcess, name: str, **labels: str) -> float | None:
    for family in parse_metrics(agent.metrics_text()).values():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def start_agent(tmp_path: Path, state_dir: Path, interval: str = "0.3s") -> AgentProcess:
    config = tmp_path / "config.toml"
    config.write_text(agent_config(state_dir, interval=interval, only=ONLY))
    return AgentProcess(config).start()


def test_cycles_land_in_the_buffer_and_export_loads_into_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    state = tmp_path / "state"
    agent = start_agent(tmp_path, state)
    try:
        appended = wait_until(
            lambda: (v := metric_value(agent, "totem_agent_buffer_appended_samples_total"))
            and v > 0 and v, message="samples appended to the buffer")
        assert (state / "buffer.sqlite").exists()
        # While the agent runs: the CLI reads the same buffer beside it.
        stats = run_cli("buffer", "stats", "--config", str(agent.config_path), "--json")
        assert stats.returncode == 0, stats.stderr
        assert '"appended_samples"' in stats.stdout
        _, health = agent.health()
        assert health["checks"]["buffer"]["status"] == "ok"
    finally:
        assert agent.stop() == 0
    export_file = tmp_path / "kiosk.om"
    result = run_cli("buffer", "export", "--config", str(agent.config_path),
                     "--output", str(export_file))
    assert result.returncode == 0, result.stderr
    exported = int(re.search(r"exported ([\d,]+) samples", result.stderr)[1].replace(",", ""))
    assert exported >= appended
    assert 'node_load1{instance="' in export_file.read_text()
    blocks = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics",
                             str(export_file), str(tmp_path / "tsdb")],
                            capture_output=True, text=True, timeout=60)
    assert blocks.returncode == 0, blocks.stderr + blocks.stdout
    loaded = sum(int(line.split()[4]) for line in blocks.stdout.splitlines()[1:] if line.strip())
    assert loaded == exported


def test_buffer_stats_names_a_missing_buffer(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(agent_config(tmp_path / "never-ran"))
    result = run_cli("buffer", "stats", "--config", str(config))
    assert result.returncode == 4
    assert "no buffer at" in result.stderr and "never-ran" in result.stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a size-limited tmpfs (run the suite as root)")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Fill the filesystem to the last byte (unbuffered: no write is left for close())."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 512, 1):
            try:
                while os.write(fd, b"\xa5" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_loses_counted_cycles_and_appending_resumes(small_disk: Path,
                                                                tmp_path: Path) -> None:
    state = small_disk / "state"
    agent = start_agent(tmp_path, state, interval="0.2s")
    try:
        wait_until(lambda: (metric_value(agent, "totem_agent_buffer_appended_samples_total")
                            or 0) > 0, message="first appends")
        filler = fill(small_disk)
        lost = wait_until(
            lambda: (v := metric_value(agent, "totem_agent_buffer_lost_cycles_total",
                                       reason="disk_full")) and v >= 3 and v,
            timeout=30, message=f"cycles counted lost while the disk is full\n{agent.describe()}")
        _, health = agent.health()
        buffer_check = health["checks"]["buffer"]
        assert buffer_check["status"] == "degraded", buffer_check
        assert "disk is full" in buffer_check["message"]
        # Collection and /metrics go on.
        assert metric_value(agent, "node_load1") is not None
        filler.unlink()
        wait_until(lambda: agent.health()[1]["checks"]["buffer"]["status"] == "ok",
                   timeout=30, message="the buffer check to recover once space returns")
        before = metric_value(agent, "totem_agent_buffer_appended_samples_total") or 0
        wait_until(lambda: (metric_value(agent, "totem_agent_buffer_appended_samples_total")
                            or 0) > before, message="appends to resume")
        assert (metric_value(agent, "totem_agent_buffer_lost_cycles_total", reason="disk_full")
                or 0) >= lost
    finally:
        assert agent.stop() == 0
    full_logs = [r for r in agent.log_records() if "disk full" in str(r.get("msg", ""))]
    assert len(full_logs) == 1, full_logs
    check = subprocess.run(["python3", "-c", "import sqlite3,sys; print(sqlite3.connect("
                            "sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])",
                            str(state / "buffer.sqlite")], capture_output=True, text=True)
    assert check.stdout.strip() == "ok", check.stderr
