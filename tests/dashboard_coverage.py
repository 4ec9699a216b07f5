"""Which panels of the "Node Exporter Full" dashboard (grafana.com 1860) a /metrics page feeds.

The yardstick of the Foundation issue: `fixtures/node_exporter_full_panels.json`
lists, for each panel, its row, its title and the metric names its queries read
(copied from ../shared/data; CI has no shared folder). A panel is fed when every
name it reads is exposed. Names are SAMPLE names, because that is what a query
reads: a counter counts by its `_total` sample, a histogram by `_bucket`.

Used by tests/integration/test_dashboard_panels.py and by the benchmark, which
reports the counts beside node_exporter's. From the command line:

    .venv/bin/python -m tests.dashboard_coverage http://127.0.0.1:10084/metrics [URL ...]
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

PANELS_FILE = Path(__file__).parent / "fixtures" / "node_exporter_full_panels.json"
# The rows the issue names: the agent must feed every panel in them that node_exporter feeds.
QUICK_BASIC_ROWS = ("Quick CPU / Mem / Disk", "Basic CPU / Mem / Net / Disk")


@dataclass(frozen=True)
class Panel:
    row: str
    title: str
    metrics: frozenset[str]

    @property
    def key(self) -> str:
        return f"{self.row} / {self.title}"

    def missing(self, exposed: set[str]) -> list[str]:
        return sorted(self.metrics - exposed)

    def is_fed(self, exposed: set[str]) -> bool:
        return self.metrics <= exposed


@dataclass(frozen=True)
class Coverage:
    fed: tuple[Panel, ...]
    unfed: tuple[Panel, ...]
    exposed: frozenset[str]

    @property
    def total(self) -> int:
        return len(self.fed) + len(self.unfed)

    def fed_keys(self, rows: Iterable[str] | None = None) -> set[str]:
        wanted = set(rows) if rows is not None else None
        return {p.key for p in self.fed if wanted is None or p.row in wanted}

    def report(self, who: str) -> str:
        """`who` fed N of M panels, then one line per unfed panel with what it misses."""
        lines = [f"{who}: fed {len(self.fed)} of {self.total} panels"]
        for panel in self.unfed:
            lines.append(f"  unfed: {panel.key}  (missing: "
                         f"{', '.join(panel.missing(set(self.exposed)))})")
        return "\n".join(lines)


def load_panels(path: Path = PANELS_FILE) -> list[Panel]:
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    return [Panel(item["row"], item["panel"], frozenset(item["metrics"])) for item in raw]


def exposed_sample_names(text: str) -> set[str]:
    """Every sample name on a text-format (0.0.4) /metrics page."""
    return {sample.name for family in text_string_to_metric_families(text)
            for sample in family.samples}


def coverage(panels: Sequence[Panel], exposed: set[str]) -> Coverage:
    fed = tuple(p for p in panels if p.is_fed(exposed))
    unfed = tuple(p for p in panels if not p.is_fed(exposed))
    return Coverage(fed, unfed, frozenset(exposed))


def coverage_of_text(text: str, panels: Sequence[Panel] | None = None) -> Coverage:
    return coverage(panels if panels is not None else load_panels(), exposed_sample_names(text))


def main(argv: Sequence[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 64
    panels = load_panels()
    for url in argv:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode("utf-8")
        print(coverage_of_text(text, panels).report(url))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
