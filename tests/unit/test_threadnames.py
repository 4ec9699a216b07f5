"""agent/threadnames.py: the kernel sees the agent's threads under their Python names."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from totem_agent.threadnames import name_native_thread


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl names are Linux only")
def test_a_thread_shows_its_name_in_proc() -> None:
    seen: list[str] = []

    def body() -> None:
        name_native_thread()
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text())

    thread = threading.Thread(target=body, name="remote_write:central:0")
    thread.start()
    thread.join(5)
    assert seen == ["remote_write:ce\n"]  # the kernel keeps 15 bytes
