"""central/ read for the tests: alert and recording rules, promtool unit tests,
dashboards (their panel queries and template variables), runbooks, and the metric
names all that PromQL reads.

Used by tests/unit/test_central.py (static checks) and by the integration tests that
run the rules and queries against real Prometheus, Alertmanager and the agent.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CENTRAL = REPO / "central"
PROMETHEUS_DIR = CENTRAL / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
ALERTMANAGER_CONFIG = CENTRAL / "alertmanager" / "alertmanager.yml"
GRAFANA_DIR = CENTRAL / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
RUNBOOKS_DIR = REPO / "docs" / "runbooks"
# Where every alert's runbook_url points (docs/central.md says how to change it).
RUNBOOK_BASE = "https://github.com/totem-agent/totem-agent/blob/main/docs/runbooks/"
SEVERITIES = ("critical", "warning", "info")

# Names the rules and dashboards read that no agent exports: who makes them.
EXTERNAL_NAMES = {
    "up": "Prometheus, for every scrape target",
    "push_time_seconds": "the Pushgateway, for every pushed group",
    "ALERTS": "Prometheus, for every pending or firing alert",
}


@dataclass(frozen=True)
class Rule:
    file: Path
    group: str
    kind: str  # "alert" or "record"
    name: str
    expr: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    for_: str = ""

    def where(self) -> str:
        return f"{self.file.relative_to(REPO)}: group {self.group}: {self.kind} {self.name}"


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.rules.yml"))


@cache
def load_rules() -> tuple[Rule, ...]:
    rules = []
    for path in rule_files():
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in doc["groups"]:
            for raw in group["rules"]:
                kind = "alert" if "alert" in raw else "record"
                rules.append(Rule(path, group["name"], kind, raw[kind], str(raw["expr"]),
                                  dict(raw.get("labels") or {}),
                                  dict(raw.get("annotations") or {}), str(raw.get("for", ""))))
    return tuple(rules)


def alerts() -> list[Rule]:
    return [r for r in load_rules() if r.kind == "alert"]


def alert_names() -> list[str]:
    return sorted({r.name for r in alerts()})


def recorded_names() -> set[str]:
    return {r.name for r in load_rules() if r.kind == "record"}


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*.test.yml"))


@dataclass(frozen=True)
class AlertCase:
    file: Path
    alertname: str
    eval_time: str
    expected: tuple[Mapping[str, str], ...]  # exp_labels of each expected alert


def alert_cases() -> list[AlertCase]:
    cases = []
    for path in rule_test_files():
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for test in doc.get("tests", []):
            for case in test.get("alert_rule_test", []):
                cases.append(AlertCase(path, case["alertname"], str(case["eval_time"]),
                                       tuple(dict(a.get("exp_labels") or {})
                                             for a in case.get("exp_alerts") or [])))
    return cases


# -- dashboards --------------------------------------------------------------------------

@cache
def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # uid
    panel: str      # title
    ref: str
    expr: str
    instant: bool

    def where(self) -> str:
        return f"dashboard {self.dashboard}, panel {self.panel!r}, query {self.ref}"


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])  # collapsed rows hold theirs


def panel_queries() -> list[PanelQuery]:
    out = []
    for board in load_dashboards().values():
        for panel in _panels(board.get("panels") or []):
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    out.append(PanelQuery(board["uid"], panel["title"],
                                          target.get("refId", ""), target["expr"],
                                          bool(target.get("instant"))))
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, variable name, query) of every query variable."""
    out = []
    for board in load_dashboards().values():
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                query = variable["query"]
                if isinstance(query, dict):
                    query = query.get("query", "")
                out.append((board["uid"], variable["name"], str(query)))
    return out


def substitute(expr: str, rate_interval: str = "1m", time_range: str = "10m") -> str:
    """A panel's PromQL as Grafana sends it with every variable at "All"."""
    return (expr.replace("$__rate_interval", rate_interval)
            .replace("$__interval", rate_interval)
            .replace("$__range", time_range)
            .replace("$store", ".*")
            .replace("$instance", ".*"))


LABEL_VALUES = re.compile(r"^label_values\(\s*(?P<match>.+?)\s*,\s*(?P<label>\w+)\s*\)$")


def load_build_module() -> ModuleType:
    """central/grafana/build.py, imported from its path (it is not a package)."""
    path = GRAFANA_DIR / "build.py"
    spec = importlib.util.spec_from_file_location("totem_central_grafana_build", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


# -- metric names in PromQL --------------------------------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
             "unless", "bool", "offset", "inf", "nan", "atan2"}


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (not functions, labels or keywords)."""
    text = _STRINGS.sub('""', expr)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def referenced_names() -> dict[str, list[str]]:
    """{metric name: where it is read} over every rule and panel, recording rules'
    own outputs left out."""
    recorded = recorded_names()
    out: dict[str, list[str]] = {}
    for rule in load_rules():
        for name in metric_names(rule.expr) - recorded:
            out.setdefault(name, []).append(rule.where())
    for query in panel_queries():
        for name in metric_names(query.expr) - recorded:
            out.setdefault(name, []).append(query.where())
    for board, variable, query_text in variable_queries():
        match = LABEL_VALUES.match(query_text)
        for name in metric_names(match.group("match") if match else query_text):
            out.setdefault(name, []).append(f"dashboard {board}, variable {variable}")
    return out
