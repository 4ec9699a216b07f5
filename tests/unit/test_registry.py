"""Walks every built-in collector (node_exporter's registry habit): declarations,
HELP text, valid names, counters named as counters, no family exported twice."""

from __future__ import annotations

import re
import sys

import pytest
from prometheus_client.metrics_core import Metric

from totem_agent.collectors import builtin_collectors, runs_here
from totem_agent.collectors.base import Collector, CollectorContext, HostPaths, NoDataError

NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
COLLECTORS = builtin_collectors()
LINUX_ONLY_HERE = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                     reason="collects this Linux machine")


@pytest.mark.parametrize("cls", COLLECTORS.values(), ids=list(COLLECTORS))
def test_declarations(cls: type[Collector]) -> None:
    assert re.fullmatch(r"[a-z][a-z0-9_]*", cls.name)
    assert cls.description and cls.description[0].islower() is not None
    assert cls.platforms and cls.platforms <= {"linux", "win32"}
    for key, option in cls.options.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", key) and option.help
        assert key not in {"enabled", "interval", "timeout"}


def collect_live(cls: type[Collector]) -> list[Metric]:
    settings = {key: opt.default for key, opt in cls.options.items()}
    try:
        return list(cls(CollectorContext(paths=HostPaths()), settings).collect())
    except NoDataError:
        return []


def check_family(family: Metric) -> None:
    assert NAME_RE.match(family.name), family.name
    assert family.documentation.strip(), f"{family.name} has no HELP"
    assert family.type in {"counter", "gauge", "info", "histogram", "summary", "unknown",
                           "stateset", "gaugehistogram"}
    if family.type == "counter":
        assert not family.name.endswith("_total"), f"{family.name}: name counters without _total"
        assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
    for sample in family.samples:
        assert all(LABEL_RE.match(k) and not k.startswith("__") for k in sample.labels)


@LINUX_ONLY_HERE
def test_live_families_are_well_formed_and_unique() -> None:
    owner: dict[str, str] = {}
    for name, cls in COLLECTORS.items():
        if not runs_here(cls):
            continue
        for family in collect_live(cls):
            check_family(family)
            assert family.name not in owner, \
                f"{family.name} exported by both {owner[family.name]} and {name}"
            owner[family.name] = name
            keys = [(*tuple(sorted(s.labels.items())), ("__name__", s.name))
                    for s in family.samples]
            assert len(keys) == len(set(keys)), f"{family.name} has duplicate series"
