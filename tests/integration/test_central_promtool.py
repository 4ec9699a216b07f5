"""central/ checked by the tools of the Debian packages that will load it: promtool
(rules, rule unit tests, the three Prometheus configs), amtool (the Alertmanager
config and its routing tree) and, where installed, vmalert (the same rules under
VictoriaMetrics)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.central import ALERTMANAGER_CONFIG, PROMETHEUS_DIR, rule_files, rule_test_files
from tests.integration.servers import require_binary

pytestmark = pytest.mark.integration


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def test_promtool_check_rules(promtool: str) -> None:
    done = run(promtool, "check", "rules", *map(str, rule_files()))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", rule_test_files(), ids=lambda p: p.name)
def test_promtool_rule_unit_tests(promtool: str, path: Path) -> None:
    """Each alert firing and quiet (tests/unit/test_central.py checks every alert has
    both cases)."""
    done = run(promtool, "test", "rules", path.name, cwd=path.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_wrong_expectation_fails(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: the same case with the wrong severity is refused."""
    source = PROMETHEUS_DIR / "tests" / "agent.test.yml"
    broken = tmp_path / "rules"
    broken.mkdir()
    shutil.copy(PROMETHEUS_DIR / "rules" / "agent.rules.yml", broken)
    tests = tmp_path / "tests"
    tests.mkdir()
    text = source.read_text().replace("alertname: CollectorFailing, severity: warning",
                                      "alertname: CollectorFailing, severity: critical")
    assert "severity: critical" in text
    (tests / "agent.test.yml").write_text(text)
    done = run(promtool, "test", "rules", "agent.test.yml", cwd=tests)
    assert done.returncode == 1 and "CollectorFailing" in done.stdout + done.stderr


@pytest.mark.parametrize("name", ["prometheus.scrape.yml", "prometheus.pushgateway.yml",
                                  "prometheus.remote-write.yml"])
def test_promtool_check_config(promtool: str, name: str) -> None:
    done = run(promtool, "check", "config", name, cwd=PROMETHEUS_DIR)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 rule files found" in done.stdout


def test_amtool_check_config() -> None:
    amtool = require_binary("amtool")
    done = run(amtool, "check-config", str(ALERTMANAGER_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("labels", "receiver"), [
    (["severity=critical", "alertname=StoreDown", "store=sp-0042"], "pager"),
    (["severity=warning", "alertname=PrinterPaperOut", "store=sp-0042"], "chat"),
    (["severity=info", "alertname=PrinterPaperLow", "store=sp-0042"], "email-digest"),
    (["alertname=Unlabelled", "store=sp-0042"], "chat"),
])
def test_alertmanager_routes_by_severity(labels: list[str], receiver: str) -> None:
    amtool = require_binary("amtool")
    done = run(amtool, "config", "routes", "test",
               f"--config.file={ALERTMANAGER_CONFIG}", *labels)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == receiver


def test_vmalert_accepts_the_rules() -> None:
    """VictoriaMetrics users run the same files with vmalert (docs/central.md)."""
    vmalert = shutil.which("vmalert")
    if vmalert is None:
        pytest.skip("vmalert is not installed (Debian package victoria-metrics)")
    done = run(vmalert, "-dryRun", *(f"-rule={p}" for p in rule_files()))
    assert done.returncode == 0, done.stdout + done.stderr
