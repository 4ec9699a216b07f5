"""The status page's files and its small request parsing (the browser test is
tests/integration/test_status_page.py)."""

from __future__ import annotations

import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from totem_agent.status_page import ASSETS, CSP, asset, parse_hours

ROOT = Path(__file__).resolve().parents[2]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data.strip()


def test_every_asset_ships_as_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "static/*" in pyproject["tool"]["setuptools"]["package-data"]["totem_agent"]
    for name, _ in ASSETS.values():
        assert asset(name), name
        assert (ROOT / "agent" / "static" / name).is_file()


def test_page_fits_its_csp_and_stays_offline() -> None:
    parser = Tags()
    parser.feed(asset("status.html").decode())
    assert parser.script_text == ""  # no inline script or style: CSP forbids them
    for tag, attrs in parser.tags:
        assert "style" not in attrs, f"inline style on <{tag}>"
        assert not any(k.startswith("on") for k in attrs), f"inline handler on <{tag}>"
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not re.match(r"^[a-z]+:", value), f"<{tag} {key}={value}> leaves the agent"
    served = {attrs.get("src") or attrs.get("href") for tag, attrs in parser.tags
              if tag in ("script", "link")}
    assert served <= set(ASSETS)
    for name in ("status.js", "status.css"):
        text = asset(name).decode()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), name
        assert "@import" not in text and "url(" not in text
    assert ".innerHTML" not in asset("status.js").decode()  # agent text goes in as text
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP


def test_parse_hours() -> None:
    assert parse_hours("") == 3.0
    assert parse_hours("hours=12") == 12.0
    assert parse_hours("hours=0.5&x=1") == 0.5
    with pytest.raises(ValueError, match="hours must be a number of hours, not 'abc'"):
        parse_hours("hours=abc")
    with pytest.raises(ValueError, match="between 0 and 168"):
        parse_hours("hours=-1")
