"""The "Node Exporter Full" dashboard (grafana.com 1860) as the yardstick: the agent must
feed every Quick/Basic panel node_exporter feeds here, and at least 90 % of
node_exporter's overall count, both counted in the same run."""

from __future__ import annotations

import math

import pytest

from tests.dashboard_coverage import QUICK_BASIC_ROWS, coverage_of_text, load_panels
from tests.integration.servers import AgentProcess, ServerProcess, http_get

pytestmark = pytest.mark.integration

OVERALL_SHARE = 0.9


def test_agent_feeds_the_dashboard(system_agent: AgentProcess, node_exporter: ServerProcess,
                                   integration_report: list[str]) -> None:
    panels = load_panels()
    ours = coverage_of_text(system_agent.metrics_text(), panels)
    theirs = coverage_of_text(http_get(node_exporter.url + "/metrics").text, panels)
    report = ours.report("agent") + "\n" + theirs.report("node_exporter")
    integration_report.append("Node Exporter Full panels:")
    integration_report.extend("  " + line for line in report.splitlines())

    lacking = sorted(theirs.fed_keys(QUICK_BASIC_ROWS) - ours.fed_keys(QUICK_BASIC_ROWS))
    needed = math.ceil(OVERALL_SHARE * len(theirs.fed))
    problems = [f"Quick/Basic panel node_exporter feeds and the agent does not: {key}"
                for key in lacking]
    if len(ours.fed) < needed:
        problems.append(f"the agent feeds {len(ours.fed)} panels, node_exporter "
                        f"{len(theirs.fed)}: at least {needed} needed "
                        f"({OVERALL_SHARE:.0%})")
    if problems:
        pytest.fail("\n".join(problems) + "\n" + report, pytrace=False)


def test_panel_list_is_the_issues_yardstick() -> None:
    """The copy in tests/fixtures is the 122-panel list the issue counts against."""
    panels = load_panels()
    assert len(panels) == 122
    assert sum(p.row in QUICK_BASIC_ROWS for p in panels) == 15
    assert all(p.metrics for p in panels)
