"""os: node_os_info / node_os_version from os-release; fallback, missing, malformed, live."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support import LINUX, collect, linux_paths, samples
from totem_agent.collectors.base import NoDataError
from totem_agent.collectors.os_release import OsCollector, major_minor, parse_os_release

INFO_LABELS = ["build_id", "id", "id_like", "image_id", "image_version", "name", "pretty_name",
               "variant", "variant_id", "version", "version_codename", "version_id"]


def write_release(root: Path, relative: str, text: str) -> Path:
    path = root / "root" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_parse_quoting_comments_and_export() -> None:
    assert parse_os_release(
        "# a comment\n"
        "\n"
        'NAME="Ubuntu"\n'
        "VERSION='22.04.4 LTS (Jammy Jellyfish)'\n"
        "ID=ubuntu   # trailing comment\n"
        "export ID_LIKE=debian\n"
        '  PRETTY_NAME = "Say \\"hi\\" \\\\ \\$HOME"  \n'
        "VARIANT=\n"
        'HOME_URL="https://www.ubuntu.com/#top"\n'
    ) == {
        "NAME": "Ubuntu",
        "VERSION": "22.04.4 LTS (Jammy Jellyfish)",
        "ID": "ubuntu",
        "ID_LIKE": "debian",
        "PRETTY_NAME": 'Say "hi" \\ $HOME',
        "VARIANT": "",
        "HOME_URL": "https://www.ubuntu.com/#top",  # a # inside quotes is not a comment
    }


@pytest.mark.parametrize("text, message", [
    ("NAME=Debian\nbroken line\n", "line 2: missing '='"),
    ('NAME="Debian\n', 'line 1 \\(NAME\\): unmatched "'),
    ("NAME='Debian\n", "line 1 \\(NAME\\): unmatched '"),
    ('NAME="a\\qb"\n', "invalid escape sequence \\\\q"),
    ("1NAME=x\n", "line 1: invalid key '1NAME'"),
    ("=x\n", "line 1: invalid key ''"),
])
def test_parse_rejects_malformed_lines(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_os_release(text)


@pytest.mark.parametrize("version_id, expected", [
    ("12", 12.0), ("22.04", 22.04), ("3.18.4", 3.18), ("9.", 9.0), ("rolling", 0.0), ("", 0.0),
])
def test_major_minor(version_id: str, expected: float) -> None:
    assert major_minor(version_id) == expected


def test_fixture_debian_labels_and_version() -> None:
    families = collect(OsCollector, linux_paths())
    assert {name: f.type for name, f in families.items()} == {
        "node_os_info": "gauge", "node_os_version": "gauge"}
    # tests/fixtures/linux/root/etc/os-release (Debian 12), as node_exporter 1.5 labels it.
    assert samples(families.values()) == {
        ("node_os_info", (
            ("build_id", ""), ("id", "debian"), ("id_like", ""), ("image_id", ""),
            ("image_version", ""), ("name", "Debian GNU/Linux"),
            ("pretty_name", "Debian GNU/Linux 12 (bookworm)"), ("variant", ""),
            ("variant_id", ""), ("version", "12 (bookworm)"), ("version_codename", "bookworm"),
            ("version_id", "12"))): 1.0,
        ("node_os_version", (("id", "debian"), ("id_like", ""),
                             ("name", "Debian GNU/Linux"))): 12.0,
    }


def test_falls_back_to_usr_lib_os_release(tmp_path: Path) -> None:
    write_release(tmp_path, "usr/lib/os-release",
                  'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n')
    got = samples(collect(OsCollector, linux_paths(tmp_path)).values())
    assert got[("node_os_version", (("id", "alpine"), ("id_like", ""),
                                    ("name", "Alpine Linux")))] == 3.19


def test_etc_wins_over_usr_lib(tmp_path: Path) -> None:
    write_release(tmp_path, "etc/os-release", "ID=ubuntu\nVERSION_ID=22.04\nID_LIKE=debian\n")
    write_release(tmp_path, "usr/lib/os-release", "ID=debian\nVERSION_ID=12\n")
    info = collect(OsCollector, linux_paths(tmp_path))["node_os_info"]
    assert [dict(s.labels)["id"] for s in info.samples] == ["ubuntu"]


def test_no_version_number_means_no_version_metric(tmp_path: Path) -> None:
    write_release(tmp_path, "etc/os-release", 'NAME="Arch Linux"\nID=arch\nBUILD_ID=rolling\n')
    families = collect(OsCollector, linux_paths(tmp_path))
    assert set(families) == {"node_os_info"}
    labels = families["node_os_info"].samples[0].labels
    assert sorted(labels) == INFO_LABELS and labels["build_id"] == "rolling"


def test_neither_file_is_nothing_to_watch(tmp_path: Path) -> None:
    (tmp_path / "root" / "etc").mkdir(parents=True)
    with pytest.raises(NoDataError, match="os-release"):
        collect(OsCollector, linux_paths(tmp_path))


def test_malformed_file_names_the_file(tmp_path: Path) -> None:
    text = (LINUX / "root" / "etc" / "os-release").read_text()
    text = text.replace('VERSION_ID="12"', 'VERSION_ID="12')
    path = write_release(tmp_path, "etc/os-release", text)
    with pytest.raises(ValueError, match=f'{path}: line 3 \\(VERSION_ID\\): unmatched "'):
        collect(OsCollector, linux_paths(tmp_path))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this machine's /etc")
def test_live_this_machine() -> None:
    families = collect(OsCollector, settings={})
    labels = families["node_os_info"].samples[0].labels
    assert sorted(labels) == INFO_LABELS
    assert labels["id"] and labels["name"]
