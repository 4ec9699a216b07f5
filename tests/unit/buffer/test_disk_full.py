"""A full disk loses cycles, counted and logged once, never the database; appends resume."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from totem_agent.buffer import Buffer

from .helpers import assert_invariant, integrity, ts_of

SERIES = 300


def noisy_cycle(seq: int) -> list[tuple[str, dict[str, str], float]]:
    """Values that do not compress, so a small filesystem fills quickly."""
    return [("noise", {"i": str(i)}, (seq * 2654435761 + i * 40503) % 1000003 / 7.0)
            for i in range(SERIES)]


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records
               if r.name == "totem_agent.buffer" and r.levelno >= logging.WARNING
               and text in r.getMessage())


def run_until_full(buf: Buffer, start: int, limit: int = 400) -> tuple[int, int, int]:
    """Append until a cycle is lost, then a few more; (next seq, stored, lost)."""
    stored = lost = 0
    seq = start
    while seq < start + limit and lost < 5:
        if buf.append(ts_of(seq), noisy_cycle(seq)) == SERIES:
            stored += 1
        else:
            lost += 1
        seq += 1
    return seq, stored, lost


def test_sqlite_full_is_a_counted_lost_cycle(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """SQLITE_FULL from the page limit: the same error a full disk gives, without root."""
    caplog.set_level(logging.INFO, logger="totem_agent.buffer")
    path = tmp_path / "b.db"
    buf = Buffer.open(path, chunk_cycles=4)
    buf.register_destination("d")
    pages = buf._conn.execute("PRAGMA page_count").fetchone()[0]
    buf._conn.execute(f"PRAGMA max_page_count = {pages + 40}")
    seq, stored, lost = run_until_full(buf, 1)
    assert lost == 5 and stored > 0
    assert buf.stats().lost_cycles == {"disk_full": 5}
    assert buf.stats().lost_samples == {"disk_full": 5 * SERIES}
    assert warnings(caplog, "disk full") == 1  # once per episode, not per cycle
    assert_invariant(buf.stats())
    # Space returns: the next append goes in, and the loss is persisted with it.
    buf._conn.execute("PRAGMA max_page_count = 1000000")
    assert buf.append(ts_of(seq), noisy_cycle(seq)) == SERIES
    assert warnings(caplog, "appending again") == 1
    buf.close()
    assert integrity(path) == "ok"
    with Buffer.open(path) as again:
        stats = again.stats()
        assert stats.lost_cycles == {"disk_full": 5}
        assert stats.appended_cycles == stored + 1
        assert stats.destinations["d"].pending_samples == (stored + 1) * SERIES
        assert_invariant(stats)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a 2 MB tmpfs to fill needs root")
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs not permitted here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        # A failed test may leave the buffer open: detach lazily rather than leave a mount.
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem says ENOSPC; returns it."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as out:
        for block in (65536, 4096, 512, 1):
            try:
                while True:
                    out.write(b"\xff" * block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


def test_enospc_on_a_full_filesystem(small_fs: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="totem_agent.buffer")
    path = small_fs / "b.db"
    buf = Buffer.open(path, chunk_cycles=4)
    buf.register_destination("d")
    for seq in range(1, 4):
        assert buf.append(ts_of(seq), noisy_cycle(seq)) == SERIES
    filler = fill(small_fs)
    seq, _, lost = run_until_full(buf, 4)
    assert lost == 5, "the filesystem never filled"
    assert buf.stats().lost_cycles == {"disk_full": 5}
    assert warnings(caplog, "disk full") == 1
    assert_invariant(buf.stats())
    filler.unlink()  # space returns
    assert buf.append(ts_of(seq), noisy_cycle(seq)) == SERIES
    assert warnings(caplog, "appending again") == 1
    # A second episode is logged again, once.
    filler = fill(small_fs)
    seq, _, lost2 = run_until_full(buf, seq + 1)
    assert lost2 == 5
    assert warnings(caplog, "disk full") == 2
    filler.unlink()
    assert buf.append(ts_of(seq), noisy_cycle(seq)) == SERIES
    assert buf.stats().maintenance_failures == 0
    buf.close()
    assert integrity(path) == "ok"
    with Buffer.open(path) as again:
        stats = again.stats()
        assert stats.lost_cycles == {"disk_full": 10}
        assert stats.maintenance_failures == 0
        assert_invariant(stats)
        assert stats.destinations["d"].pending_samples == stats.appended_cycles * SERIES


def test_ids_of_a_failed_append_are_not_reused_wrongly(tmp_path: Path) -> None:
    """A rolled-back append must not leave layout (or series) ids in the writer's caches:
    SQLite hands the same ids to the next insert."""
    from .helpers import drain

    buf = Buffer.open(tmp_path / "b.db")
    buf.register_destination("d")
    series = [("s", {"i": str(i)}) for i in range(1000)]
    forward = [(n, lab, i * 0.123456789) for i, (n, lab) in enumerate(series)]
    backward = forward[::-1]  # same series, a new layout
    odd = forward[1::2]  # another new layout
    assert buf.append(ts_of(1), forward) == 1000
    pages = buf._conn.execute("PRAGMA page_count").fetchone()[0]
    buf._conn.execute(f"PRAGMA max_page_count = {pages}")
    # The small layout row fits in a page; the cycle's values need new pages: rolled back.
    assert buf.append(ts_of(2), backward) == 0
    buf._conn.execute("PRAGMA max_page_count = 1000000")
    assert buf.append(ts_of(3), odd) == 500  # takes the layout id the failed append had
    assert buf.append(ts_of(4), backward) == 1000
    got = {(dict(labels)["i"], t): v for _, labels, t, v in drain(buf, "d", 10_000)}
    want = {(lab["i"], ts): v for ts, cyc in ((ts_of(1), forward), (ts_of(3), odd),
                                              (ts_of(4), backward)) for _, lab, v in cyc}
    assert got == want
    buf.close()
