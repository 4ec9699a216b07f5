"""installer/install.ps1 and uninstall.ps1, checked on Linux without PowerShell.

PSScriptAnalyzer needs pwsh, which neither Debian nor PyPI ships (npm's `pwsh`
package downloads it from GitHub at install time). The tree-sitter PowerShell
grammar (PyPI `tree-sitter-powershell`, with `tree-sitter`) parses the scripts
instead: every syntax error is reported with its line, and one PSScriptAnalyzer
rule that matters here is applied on the parse tree: no aliases
(PSAvoidUsingCmdletAliases; `sc` is Set-Content in PowerShell, not sc.exe).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

tree_sitter = pytest.importorskip(
    "tree_sitter", reason="tree-sitter is not installed: it is in the [test] extra "
    "(scripts/bootstrap-venv test)")
powershell = pytest.importorskip(
    "tree_sitter_powershell", reason="tree-sitter-powershell is not installed: it is in the "
    "[test] extra (scripts/bootstrap-venv test)")

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = [REPO / "installer" / "install.ps1", REPO / "installer" / "uninstall.ps1"]
# Verb-Noun, as every cmdlet and advanced function is named.
CMDLET = re.compile(r"^[A-Z][a-z]+-[A-Za-z0-9]+$")


def parse(source: bytes) -> Any:
    parser = tree_sitter.Parser(tree_sitter.Language(powershell.language()))
    return parser.parse(source)


def walk(node: Any) -> Any:
    yield node
    for child in node.children:
        yield from walk(child)


def problems(source: bytes) -> list[str]:
    """Syntax errors and aliases, each with its line (1-based)."""
    found = []
    for node in walk(parse(source).root_node):
        line = node.start_point[0] + 1
        text = source[node.start_byte:node.end_byte].decode(errors="replace")
        if node.is_error:
            found.append(f"line {line}: syntax error at {text[:40]!r}")
        elif node.is_missing:
            found.append(f"line {line}: missing {node.type!r}")
        elif node.type == "command_name" and not CMDLET.match(text) \
                and not text.lower().endswith(".exe"):
            found.append(f"line {line}: {text!r} is an alias or not a cmdlet name: "
                         "write the full Verb-Noun name")
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_the_installer_scripts_parse_and_use_no_aliases(script: Path) -> None:
    source = script.read_bytes()
    assert problems(source) == [], script.name
    # Not vacuous: the grammar did see the script's commands.
    commands = [n for n in walk(parse(source).root_node) if n.type == "command_name"]
    assert len(commands) >= 10


def test_the_check_catches_a_broken_script_and_an_alias() -> None:
    source = SCRIPTS[0].read_bytes()
    unclosed = source.replace(b"exit 1\n}", b"exit 1\n", 1)
    assert unclosed != source
    assert any("missing" in p or "syntax error" in p for p in problems(unclosed))
    aliased = source.replace(b"Copy-Item -LiteralPath $Binary", b"cp -LiteralPath $Binary")
    assert aliased != source
    assert [p for p in problems(aliased) if "'cp' is an alias" in p]
