"""The drain benchmark's code path, end to end on a tiny outage, so it cannot rot.

20 cycles of 50 series, one run, a 0.5 s outage: both senders (the product's
shipper and vmagent) drain into both real receivers, every sample is counted
there, and the report renders. No timing is asserted (benchmarks only report).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench import bench_drain
from tests.bench.docs_section import markers, replace_section
from tests.integration.servers import require_binary

pytestmark = pytest.mark.integration


def test_the_drain_bench_runs_on_a_tiny_outage(tmp_path: Path) -> None:
    for binary in (bench_drain.VM_BINARY, bench_drain.VMAGENT_BINARY):
        if not Path(binary).exists():
            pytest.skip(f"{binary} is missing: install the Debian package victoria-metrics")
    require_binary("prometheus")
    args = bench_drain.parse_args(["--cycles", "20", "--series", "50", "--runs", "1",
                                   "--outage", "0.5"])
    timings, profile, loads = bench_drain.run(args, tmp_path)
    assert {(t.receiver, t.sender) for t in timings} == {
        (receiver, sender) for receiver in bench_drain.RECEIVERS
        for sender in ("totem-agent", "vmagent")}
    assert all(t.samples == 1000 for t in timings)
    assert all(0 <= t.first_accept_s <= t.total_s for t in timings)
    totem = [t for t in timings if t.sender == "totem-agent"]
    assert all(t.extra["pending_after"] == 0 and t.extra["sent"] == 1000 for t in totem)
    assert profile is not None and profile["samples"] == 1000
    assert set(profile["split"]) == {"read", "encode", "compress", "http", "ack"}
    assert profile["pipeline"]["wall"] > 0 and profile["pipeline"]["coordinator"] > 0
    text = bench_drain.report(args, timings, profile, loads, "cmd")
    assert "| victoria-metrics | totem-agent |" in text and "| prometheus | vmagent |" in text
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nbefore\n\n<!-- other: start -->\nkept\n<!-- other: end -->\n")
    replace_section("bench_drain.py", text, demote_headings=True, doc=doc)
    replace_section("bench_drain.py", text, demote_headings=True, doc=doc)  # its own, once
    written = doc.read_text()
    start, _ = markers("bench_drain.py")
    assert written.count(start) == 1 and "kept" in written and "before" in written
