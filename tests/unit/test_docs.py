"""The docs stay true: every config key and every exported metric is documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_registry import collect_live
from totem_agent.collectors import builtin_collectors, runs_here

ROOT = Path(__file__).resolve().parents[2]


def test_config_reference_is_current() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_config_doc.py"),
                             "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="collects this Linux machine")
def test_every_exported_family_is_in_metrics_md() -> None:
    """Names in backticks count; `<Field>` in a name stands for any field."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    documented = set(re.findall(r"`([a-zA-Z_:][a-zA-Z0-9_:]*)`", text))
    # A family of fields may be documented as a pattern: `node_memory_<Field>_bytes`.
    patterns = [re.compile("^" + re.sub(r"<[^>]+>", "[A-Za-z0-9_()]+", p) + "$")
                for p in re.findall(r"`([a-zA-Z_:][a-zA-Z0-9_:]*<[^`]+)`", text)]
    missing = []
    for name, cls in builtin_collectors().items():
        if not runs_here(cls):
            continue
        for family in collect_live(cls):
            sample_names = {s.name for s in family.samples}
            if (family.name not in documented and not sample_names & documented
                    and not any(p.match(family.name) for p in patterns)):
                missing.append(f"{name}: {family.name}")
    assert not missing, "not in docs/metrics.md:\n" + "\n".join(missing)
