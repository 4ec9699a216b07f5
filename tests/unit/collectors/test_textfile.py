"""textfile: *.prom files as node_exporter 1.5's textfile collector exports them (checked
by hand against the real one: merged families, filled labels, HELP for files without,
whole-second mtimes, full paths), bad files skipped, names the agent owns protected."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.support import collect, samples
from totem_agent.collectors.base import CollectorContext, NoDataError
from totem_agent.collectors.textfile import TextfileCollector, parse_textfile

GOOD = ('# HELP kiosk_paper_low Paper is low.\n# TYPE kiosk_paper_low gauge\n'
        'kiosk_paper_low{printer="p1"} 1\n'
        '# TYPE kiosk_jobs_total counter\nkiosk_jobs_total 5\n')
MTIME = 1_700_000_000.75


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    os.utime(path, (MTIME, MTIME))
    return path


def run(directory: Path | str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return samples(collect(TextfileCollector, None, {"directory": str(directory)}).values())


def test_parse_refuses_timestamps_and_bad_syntax() -> None:
    assert [f.name for f in parse_textfile(GOOD)] == ["kiosk_paper_low", "kiosk_jobs"]
    with pytest.raises(ValueError, match="client-side timestamp"):
        parse_textfile("kiosk_ts 1 1700000000000\n")
    with pytest.raises(ValueError, match="not valid Prometheus text format"):
        parse_textfile("this is { not valid\n")


def test_good_file_is_exported_with_its_mtime(tmp_path: Path) -> None:
    path = write(tmp_path, "kiosk.prom", GOOD)
    write(tmp_path, "notes.txt", "ignored 1\n")  # only *.prom files are read
    families = collect(TextfileCollector, None, {"directory": str(tmp_path)})
    assert families["kiosk_paper_low"].type == "gauge"
    assert families["kiosk_paper_low"].documentation == "Paper is low."
    assert families["kiosk_jobs"].type == "counter"
    assert families["kiosk_jobs"].documentation == f"Metric read from {path}"
    assert samples(families.values()) == {
        ("kiosk_paper_low", (("printer", "p1"),)): 1.0,
        ("kiosk_jobs_total", ()): 5.0,
        ("node_textfile_mtime_seconds", (("file", str(path)),)): 1_700_000_000.0,
        ("node_textfile_scrape_error", ()): 0.0,
    }
    assert "ignored" not in families


def test_a_bad_file_is_skipped_and_flagged_the_rest_exported(tmp_path: Path) -> None:
    good = write(tmp_path, "a.prom", GOOD)
    write(tmp_path, "bad.prom", "this is { not valid\n")
    write(tmp_path, "ts.prom", "kiosk_ts 1 1700000000000\n")
    got = run(tmp_path)
    assert got[("node_textfile_scrape_error", ())] == 1.0
    assert got[("kiosk_paper_low", (("printer", "p1"),))] == 1.0
    mtimes = {dict(labels)["file"] for name, labels in got
              if name == "node_textfile_mtime_seconds"}
    assert mtimes == {str(good)}
    assert not any(name == "kiosk_ts" for name, _ in got)


def test_families_merge_across_files_and_missing_labels_are_empty(tmp_path: Path) -> None:
    a = write(tmp_path, "a.prom", 'kiosk_other{x="1"} 2\n')
    b = write(tmp_path, "b.prom", 'kiosk_other 3\n')
    families = collect(TextfileCollector, None, {"directory": str(tmp_path)})
    assert families["kiosk_other"].documentation == f"Metric read from {a}, {b}"
    got = samples(families.values())
    assert got[("kiosk_other", (("x", "1"),))] == 2.0
    assert got[("kiosk_other", (("x", ""),))] == 3.0


def test_type_conflict_across_files_skips_the_later_family(tmp_path: Path) -> None:
    write(tmp_path, "a.prom", GOOD)
    write(tmp_path, "b.prom", 'kiosk_paper_low{printer="p2"} 0\nkiosk_fine 1\n')
    got = run(tmp_path)
    assert got[("node_textfile_scrape_error", ())] == 1.0
    assert ("kiosk_paper_low", (("printer", "p2"),)) not in got
    assert got[("kiosk_fine", ())] == 1.0


def test_names_the_agent_exports_cannot_be_shadowed(tmp_path: Path) -> None:
    write(tmp_path, "a.prom", "totem_agent_collector_success 1\nprocess_open_fds 3\n"
                              "node_textfile_scrape_error 0\nkiosk_ok 1\n")
    got = run(tmp_path)
    assert got[("node_textfile_scrape_error", ())] == 1.0
    assert {name for name, _ in got} == {"kiosk_ok", "node_textfile_mtime_seconds",
                                         "node_textfile_scrape_error"}


def test_glob_of_directories(tmp_path: Path) -> None:
    write(tmp_path / "app1", "m.prom", "kiosk_a 1\n")
    write(tmp_path / "app2", "m.prom", "kiosk_b 2\n")
    got = run(tmp_path / "app*")
    assert got[("kiosk_a", ())] == 1.0 and got[("kiosk_b", ())] == 2.0
    assert got[("node_textfile_scrape_error", ())] == 0.0


def test_missing_directory_is_an_error_not_silence(tmp_path: Path) -> None:
    got = run(tmp_path / "nowhere")
    assert got == {("node_textfile_scrape_error", ()): 1.0}


def test_no_directory_configured_is_no_data() -> None:
    with pytest.raises(NoDataError, match=r"no \[collectors\.textfile\] directory"):
        collect(TextfileCollector)


def test_problems_are_logged_when_they_change_not_every_cycle(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = write(tmp_path, "bad.prom", "this is { not valid\n")
    collector = TextfileCollector(CollectorContext(), {"directory": str(tmp_path)})
    with caplog.at_level(logging.INFO, logger="totem_agent.collectors.textfile"):
        collector.collect()
        collector.collect()
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and str(bad) in errors[0].getMessage()
        bad.write_text("kiosk_fixed 1\n")
        collector.collect()
    assert any("read again" in r.getMessage() for r in caplog.records)


def test_live_default_settings_have_nothing_to_watch() -> None:
    settings = {key: option.default for key, option in TextfileCollector.options.items()}
    with pytest.raises(NoDataError):
        TextfileCollector(CollectorContext(), settings).collect()
