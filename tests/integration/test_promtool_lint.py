"""`promtool check metrics` on the agent's /metrics and on node_exporter's, in one test.

node_exporter's own names draw lint that is kept for compatibility (camelCase
node_memory_* and node_netstat_* fields, `_bits` entropy names). The agent may
draw those same classes of lint, on node_* names only; nothing on a name of its
own (totem_agent_*, process_*, ...), and no new class.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

import pytest

from tests.integration.servers import AgentProcess, ServerProcess, http_get

pytestmark = pytest.mark.integration

LINT_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*) (?P<problem>.+)$")


@dataclass(frozen=True)
class Lint:
    returncode: int
    findings: frozenset[tuple[str, str]]   # (metric name, problem)
    output: str

    @property
    def classes(self) -> set[str]:
        return {problem for _, problem in self.findings}


def lint(promtool: str, text: str) -> Lint:
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=30)
    output = proc.stdout + proc.stderr
    findings = set()
    for line in output.splitlines():
        match = LINT_LINE.match(line.strip())
        # promtool exits 3 for lint findings, 1 when it cannot parse the page at all
        assert match and proc.returncode in (0, 3), \
            f"promtool could not check the page (exit {proc.returncode}): {line}\n{output}"
        findings.add((match["name"], match["problem"]))
    assert proc.returncode == (3 if findings else 0), output
    return Lint(proc.returncode, frozenset(findings), output)


def test_agent_lint_is_within_node_exporters(promtool: str, system_agent: AgentProcess,
                                              node_exporter: ServerProcess) -> None:
    ours = lint(promtool, system_agent.metrics_text())
    theirs = lint(promtool, http_get(node_exporter.url + "/metrics").text)
    exporter_names = {name for name, _ in theirs.findings}
    problems = []
    for name, problem in sorted(ours.findings):
        if not name.startswith("node_"):
            problems.append(f"{name}: {problem} (a name of ours must lint clean)")
        elif problem not in theirs.classes:
            problems.append(f"{name}: {problem} (node_exporter's names draw no such lint)")
    # A name both expose may draw only what it draws in node_exporter.
    shared = {name for name, _ in ours.findings} & exporter_names
    for name, problem in sorted(ours.findings):
        if name in shared and (name, problem) not in theirs.findings:
            problems.append(f"{name}: {problem} (node_exporter's {name} does not draw it)")
    if problems:
        pytest.fail("promtool lint beyond node_exporter's:\n  " + "\n  ".join(problems)
                    + f"\n--- promtool on the agent:\n{ours.output}"
                    + f"\n--- promtool on node_exporter:\n{theirs.output}", pytrace=False)
