"""Each benchmark owns one marked section of docs/benchmarks.md and rewrites only it.

The markers are HTML comments (`<!-- NAME: start -->` ... `<!-- NAME: end -->`), so
the sections of the other benchmarks and any prose around them stay as they are.
"""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS_DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: start -->", f"<!-- {name}: end -->"


def replace_section(name: str, text: str, *, demote_headings: bool = False,
                    doc: Path = BENCHMARKS_DOC) -> None:
    """Put `text` between NAME's markers (appended at the end the first time).
    `demote_headings`: one more `#` on each heading, for a report written as a page."""
    start, end = markers(name)
    if demote_headings:
        text = re.sub(r"^(#+) ", r"#\1 ", text, flags=re.M)
    section = start + "\n" + text.strip("\n") + "\n" + end
    current = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    if start in current and end in current:
        head, rest = current.split(start, 1)
        current = head + section + rest.split(end, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(current, encoding="utf-8")
