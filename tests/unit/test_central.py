"""central/ without servers: every alert is labelled, annotated, has a runbook and
promtool unit tests that show it firing and quiet; the committed dashboards are what
central/grafana/build.py builds; every metric name is documented.

The servers' half (promtool, amtool, a real Prometheus, Alertmanager and agent) is in
tests/integration/test_central_*.py.
"""

from __future__ import annotations

import re

import pytest

from tests import central
from tests.central import (
    EXTERNAL_NAMES,
    RUNBOOK_BASE,
    RUNBOOKS_DIR,
    SEVERITIES,
    alert_cases,
    alert_names,
    alerts,
    load_dashboards,
    metric_names,
    panel_queries,
    referenced_names,
    rule_files,
    rule_test_files,
)

DOCS_METRICS = central.REPO / "docs" / "metrics.md"
RUNBOOK_SECTIONS = ("## What it means", "## Check first", "## Fix", "## Escalate")


def test_central_has_the_issues_alerts() -> None:
    wanted = {"HighErrorRate", "HighLatency", "KioskDown", "HighMemoryUsage", "DiskAlmostFull",
              "HighCPU", "QueueTooLong", "PrinterPaperOut", "PrinterPaperLow",
              "PrinterOffline", "PrinterCoverOpen", "PaymentDeviceDown", "PaymentFailureRate",
              "CollectorFailing", "BufferBacklog", "SamplesDropped", "ClockUnsynchronised",
              "StoreDown", "EventsAPIErrorBudgetBurn", "EventsAPILatencyBudgetBurn"}
    assert wanted <= set(alert_names()), sorted(wanted - set(alert_names()))


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: f"{r.name}-{r.file.stem}")
def test_alert_is_labelled_and_annotated(rule: central.Rule) -> None:
    assert rule.labels.get("severity") in SEVERITIES, (
        f"{rule.where()}: severity must be one of {SEVERITIES}, got {rule.labels.get('severity')}")
    for key in ("summary", "description", "runbook_url"):
        assert rule.annotations.get(key, "").strip(), f"{rule.where()}: no {key} annotation"
    assert rule.annotations["runbook_url"] == f"{RUNBOOK_BASE}{rule.name}.md", rule.where()


@pytest.mark.parametrize("name", alert_names())
def test_runbook_exists_with_its_sections(name: str) -> None:
    path = RUNBOOKS_DIR / f"{name}.md"
    assert path.is_file(), f"alert {name}: runbook_url points to {path}, which does not exist"
    text = path.read_text(encoding="utf-8")
    assert text.startswith(f"# {name}\n"), f"{path}: must start with '# {name}'"
    missing = [s for s in RUNBOOK_SECTIONS if s not in text]
    assert not missing, f"{path}: missing sections {missing}"


def test_no_runbook_without_an_alert() -> None:
    orphans = sorted(p.stem for p in RUNBOOKS_DIR.glob("*.md")
                     if p.stem not in alert_names() and p.name != "README.md")
    assert not orphans, f"runbooks for no alert: {orphans}"


def test_every_rule_file_has_a_promtool_test() -> None:
    loaded = set()
    for path in rule_test_files():
        text = path.read_text(encoding="utf-8")
        loaded |= {f.name for f in rule_files() if f"../rules/{f.name}" in text}
    assert loaded == {f.name for f in rule_files()}


@pytest.mark.parametrize("name", alert_names())
def test_alert_has_firing_and_quiet_unit_tests(name: str) -> None:
    """promtool runs these cases (tests/integration/test_central_promtool.py); here: they
    exist. Each rule of the name (KioskDown has one per way of reporting) must fire
    in some case, recognised by its own static labels."""
    cases = [c for c in alert_cases() if c.alertname == name]
    assert any(not c.expected for c in cases), f"{name}: no promtool case where it is quiet"
    for rule in (r for r in alerts() if r.name == name):
        fired = any(all(expected.get(k) == v for k, v in rule.labels.items())
                    for c in cases for expected in c.expected)
        assert fired, f"{rule.where()} (labels {dict(rule.labels)}): no promtool case fires it"


def test_committed_dashboards_are_what_the_code_builds() -> None:
    built = central.load_build_module().build_all()
    committed = {p.name: p.read_text(encoding="utf-8")
                 for p in central.DASHBOARDS_DIR.glob("*.json")}
    assert set(built) == set(committed)
    stale = [name for name, text in built.items() if committed[name] != text]
    assert not stale, (f"out of date: {stale}; run .venv/bin/python central/grafana/build.py "
                       "and commit the JSON")


def test_dashboards_have_unique_uids_and_the_store_variable() -> None:
    boards = load_dashboards()
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids) == 4
    for name, board in boards.items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert "store" in variables and "datasource" in variables, name
        assert variables["store"]["includeAll"] and variables["store"]["allValue"] == ".*"


def test_every_panel_query_selects_the_kiosks_by_store() -> None:
    for query in panel_queries():
        assert 'store=~"$store"' in query.expr, f"{query.where()}: ignores $store"
        if query.dashboard != "totem-fleet":
            assert 'instance=~"$instance"' in query.expr, f"{query.where()}: ignores $instance"


def _family_candidates(name: str) -> list[str]:
    """A sample name and the family names it may belong to (histogram suffixes)."""
    out = [name]
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            out.append(name[: -len(suffix)])
    return out


def _documented(name: str, docs: str) -> bool:
    documented = set(re.findall(r"`([A-Za-z_:][\w:]*)`", docs))
    if any(c in documented for c in _family_candidates(name)):
        return True
    # node_exporter's generated families are documented by pattern, e.g.
    # `node_memory_<Field>_bytes`: accept a name that fits a documented pattern.
    for pattern in re.findall(r"`(node_[\w<>]*<[\w<>]+>[\w<>]*)`", docs):
        regex = re.sub(r"<\w+>", r"\\w+", pattern)
        if re.fullmatch(regex, name):
            return True
    return False


def test_every_metric_the_central_side_reads_is_documented() -> None:
    """The static half of "no rule reads a metric nobody produces": each name is in
    docs/metrics.md (the running-agent half is in test_central_queries.py)."""
    docs = DOCS_METRICS.read_text(encoding="utf-8")
    missing = {name: where[0] for name, where in referenced_names().items()
               if name not in EXTERNAL_NAMES and not _documented(name, docs)}
    assert not missing, "read by central/ but not in docs/metrics.md:\n" + "\n".join(
        f"  {name} (first read by {where})" for name, where in sorted(missing.items()))


def test_metric_names_reads_selectors_not_functions_or_labels() -> None:
    expr = ('1 - sum by (job, le) (rate(http_request_duration_seconds_bucket{job="totem",'
            'le="0.5"}[5m])) / sum without (code) (rate(x_count[$__rate_interval])) '
            'unless on (job, instance) up{job="totem"} > bool 0 or vector(0) '
            'and totem:errors:rate5m offset 5m')
    assert metric_names(expr) == {"http_request_duration_seconds_bucket", "x_count", "up",
                                  "totem:errors:rate5m"}
