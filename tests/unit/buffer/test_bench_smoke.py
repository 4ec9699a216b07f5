"""The benchmark's generator is deterministic and its script runs (on a small day)."""

from __future__ import annotations

from pathlib import Path

from tests.bench import bench_buffer, buffer_day


def test_the_day_is_deterministic() -> None:
    first = list(buffer_day.day(cycles=3))
    assert first == list(buffer_day.day(cycles=3))
    assert [len(samples) for _, samples in first] == [buffer_day.SERIES] * 3
    assert len({(n, tuple(sorted(lab.items()))) for n, lab, _ in first[0][1]}) == buffer_day.SERIES
    assert first[1][0] - first[0][0] in range(15_000 - 30, 15_000 + 30)


def test_the_bench_runs_on_a_small_day(tmp_path: Path) -> None:
    result = bench_buffer.run(cycles=130, series=50, chunk_cycles=60, directory=tmp_path)
    assert result["samples"] == 6500
    assert 0 < result["bytes_per_sample"] < 20
    assert "bytes per sample on disk" in bench_buffer.markdown(result, "cmd")
