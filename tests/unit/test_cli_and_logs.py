from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from totem_agent.cli import ExitStatus, build_parser, main
from totem_agent.logs import REDACTED, setup_logging


def run(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env or {}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_version() -> None:
    code, out, _ = run(["version"])
    assert code == ExitStatus.OK and out.startswith("totem-agent 0.1.0 (Python 3.")


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "check-config", "collect", "status", "version"):
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args([command, "--help"])
        assert exited.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: totem-agent {command}")


def test_usage_error_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["frobnicate"], env={})
    assert exited.value.code == ExitStatus.USAGE
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_check_config_valid_prints_effective_settings(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text('[agent]\ninstance = "kiosk-7"\n')
    code, out, _ = run(["check-config", "--config", str(path)])
    assert code == ExitStatus.OK
    assert out.startswith(f"config OK: {path}")
    effective = json.loads(out.split("\n", 1)[1])
    assert effective["agent"]["instance"] == "kiosk-7"
    assert run(["check-config", "-q", "--config", str(path)])[1] == ""


def test_check_config_invalid(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text('[agent]\ninterval = "often"\n[log]\nlevel = "loud"\n')
    code, out, err = run(["check-config", "--config", str(path)])
    assert code == ExitStatus.BAD_CONFIG and out == ""
    assert "2 problem(s)" in err
    assert f"{path}: agent.interval: expected a duration" in err
    assert f"{path}: log.level: expected one of debug, info, warning, error, got 'loud'" in err


def test_run_refuses_bad_config_before_starting(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text("[agent]\nlisten = 5\n")
    code, _, err = run(["run", "--config", str(path)])
    assert code == ExitStatus.BAD_CONFIG and f"{path}: agent.listen" in err


def test_collect_once_unknown_collector() -> None:
    code, _, err = run(["collect", "--once", "--collector", "nope"])
    assert code == ExitStatus.USAGE and "unknown collector(s): nope" in err


def test_collect_once_prints_exposition() -> None:
    code, out, _ = run(["collect", "--once", "--collector", "loadavg"])
    assert code == ExitStatus.OK
    assert "# TYPE node_load1 gauge" in out


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_logs_with_context_and_redaction(restore_logging: None) -> None:
    stream = io.StringIO()
    setup_logging({"level": "info", "format": "json"}, stream=stream)
    logging.getLogger("totem_agent.test").info(
        "pushed %d samples", 3, extra={"url": "http://c", "token": "s3cret",
                                       "headers": {"Authorization": "Bearer s3cret"}})
    logging.getLogger("totem_agent.test").debug("not at info level")
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "info" and entry["logger"] == "totem_agent.test"
    assert entry["msg"] == "pushed 3 samples" and entry["url"] == "http://c"
    assert entry["ts"].endswith("Z")
    assert entry["token"] == REDACTED and entry["headers"]["Authorization"] == REDACTED
    assert "s3cret" not in line


def test_rotating_log_file(tmp_path: Path, restore_logging: None) -> None:
    log_file = tmp_path / "agent.log"
    setup_logging({"level": "info", "format": "text", "file": str(log_file),
                   "max_size": 2000, "max_files": 2}, stream=io.StringIO())
    for i in range(100):
        logging.getLogger("totem_agent.test").info("line %d %s", i, "x" * 50)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["agent.log", "agent.log.1", "agent.log.2"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
