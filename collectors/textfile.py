"""textfile: metrics that kiosk software drops as `*.prom` files (node_exporter's textfile).

Every `*.prom` file in `directory` (a glob such as /var/lib/kiosk/*/metrics works
too) is parsed as the Prometheus text format and its families are exported as
they are, plus `node_textfile_mtime_seconds{file}` for each file read and
`node_textfile_scrape_error` (1 if any file could not be read or parsed). A bad
file is logged and skipped; the others are still exported. As node_exporter does,
a file whose samples carry timestamps is refused whole, and families without
HELP get "Metric read from <file>".

Differences from node_exporter 1.5, on purpose:
- families named like the agent's own (`totem_*`, `process_*`, `python_*`,
  `node_textfile_*`) are skipped and logged: a file cannot shadow them;
- a family whose type disagrees with the same family in an earlier file is
  skipped (node_exporter fails the scrape's consistency check instead);
- a counter written without `_total` is exported with `_total` appended
  (prometheus_client's parser follows OpenMetrics there).
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from totem_agent.collectors.base import Collector, CollectorContext, NoDataError
from totem_agent.options import Option

log = logging.getLogger(__name__)

# Names the agent exports itself; a textfile must not be able to shadow them.
RESERVED_PREFIXES = ("totem_", "process_", "python_", "node_textfile_")


def parse_textfile(text: str) -> list[Metric]:
    """Parse one .prom file; ValueError if it is not valid text format or has timestamps."""
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as err:
        raise ValueError(f"not valid Prometheus text format: {err}") from None
    for family in families:
        for sample in family.samples:
            if sample.timestamp is not None:
                raise ValueError(f"{sample.name} has a client-side timestamp, which the "
                                 "textfile collector does not support; skipping the whole file")
    return families


def _fill_missing_labels(family: Metric) -> None:
    """Give every sample the union of the family's label names ("" where absent), as
    node_exporter does, so all series of a family have the same label set."""
    names = {key for sample in family.samples for key in sample.labels}
    family.samples = [s._replace(labels={key: s.labels.get(key, "") for key in sorted(names)})
                      for s in family.samples]


@dataclass
class Merged:
    """The families of all files, merged by name (one family may span several files)."""

    families: dict[str, Metric] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)  # name -> files without HELP
    errors: list[str] = field(default_factory=list)

    def add(self, path: str, families: Iterable[Metric]) -> None:
        for family in families:
            if family.name.startswith(RESERVED_PREFIXES):
                self.errors.append(f"{path}: skipped {family.name}, a name the agent exports "
                                   "itself")
                continue
            existing = self.families.get(family.name)
            if existing is None:
                existing = Metric(family.name, family.documentation, family.type)
                self.families[family.name] = existing
            elif existing.type != family.type:
                self.errors.append(f"{path}: skipped {family.name}, typed {family.type} here "
                                   f"but {existing.type} in an earlier file")
                continue
            if not existing.documentation and family.documentation:
                existing.documentation = family.documentation
            if not family.documentation and path not in self.sources.get(family.name, []):
                self.sources.setdefault(family.name, []).append(path)
            existing.samples.extend(family.samples)

    def result(self) -> list[Metric]:
        for name, family in self.families.items():
            if not family.documentation:
                family.documentation = "Metric read from " + ", ".join(self.sources[name])
            _fill_missing_labels(family)
        return list(self.families.values())


def textfile_paths(directory: str, errors: list[str]) -> list[str]:
    """The .prom files of `directory`, or of every directory it matches as a glob;
    a directory that cannot be listed is added to `errors`."""
    directories = sorted(glob.glob(directory)) or [directory]
    files: list[str] = []
    for folder in directories:
        try:
            names = sorted(os.listdir(folder))
        except OSError as err:
            errors.append(f"cannot list {folder}: {err}")
            continue
        files.extend(os.path.join(folder, name) for name in names if name.endswith(".prom"))
    return files


class TextfileCollector(Collector):
    name = "textfile"
    description = "metrics from *.prom files written by kiosk software"
    platforms = frozenset({"linux"})
    options = {
        "directory": Option("str", "",
                            "Directory (or glob of directories) whose *.prom files are "
                            "exported (node_exporter's --collector.textfile.directory). "
                            "Empty: the collector has nothing to watch."),
    }

    def __init__(self, context: CollectorContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        self._directory: str = settings.get("directory", "")
        self._last_errors: list[str] = []

    def collect(self) -> Iterable[Metric]:
        if not self._directory:
            raise NoDataError("no [collectors.textfile] directory configured")
        errors: list[str] = []
        merged = Merged()
        mtimes: dict[str, float] = {}
        for path in textfile_paths(self._directory, errors):
            try:
                with open(path, encoding="utf-8") as handle:
                    families = parse_textfile(handle.read())
                    # Stat only once parsed, so a file that fails never looks fresh.
                    mtime = os.fstat(handle.fileno()).st_mtime
            except (OSError, UnicodeDecodeError, ValueError) as err:
                errors.append(f"{path}: {err}")
                continue
            merged.add(path, families)
            mtimes[path] = float(int(mtime))  # whole seconds, as node_exporter
        errors.extend(merged.errors)
        # A bad file stays bad for many cycles: log when the set of problems changes.
        if errors != self._last_errors:
            for error in errors:
                log.error("textfile: %s", error)
            if not errors:
                log.info("textfile: all files in %s read again", self._directory)
            self._last_errors = errors
        mtime_family = GaugeMetricFamily("node_textfile_mtime_seconds",
                                         "Unixtime mtime of textfiles successfully read.",
                                         labels=["file"])
        for path in sorted(mtimes):
            mtime_family.add_metric([path], mtimes[path])
        families = merged.result()
        if mtimes:
            families.append(mtime_family)
        families.append(GaugeMetricFamily(
            "node_textfile_scrape_error",
            "1 if there was an error opening or reading a file, 0 otherwise.",
            value=1.0 if errors else 0.0))
        return families
