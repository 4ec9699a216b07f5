"""The status page (GET /) in headless Chromium against a running agent.

Debian's /usr/bin/chromium driven by Playwright's Python package (never
`playwright install`). The agent's receipt printer is the pty fake with its roll
out (tests/fakes/escpos_printer.py), so the page must say "paper out"; the agent
collects every 0.5 s so the history charts have points within seconds. Every
request the page makes is recorded and must stay on the agent's loopback
address; CSP violations would show as console errors, which must not happen.
Screenshots go to tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.escpos_printer import FakeEscposPrinter, printer_toml
from tests.integration.servers import AgentProcess, agent_config
from tests.support import wait_until

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None:
        pytest.skip("chromium is not installed (sudo apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Recorder:
    """Every request and console error of one page; non-loopback requests are aborted."""

    def __init__(self, page: Any, origin: str) -> None:
        self.urls: list[str] = []
        self.errors: list[str] = []
        self.origin = origin

        def route(route: Any) -> None:
            url = route.request.url
            self.urls.append(url)
            if url.startswith(origin + "/"):
                route.continue_()
            else:
                route.abort()

        page.route("**/*", route)
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))


def history_points(agent: AgentProcess, chart: str) -> int:
    report = agent.get("/api/v1/history?hours=1").json()
    return sum(len(s["points"]) for c in report["charts"] if c["id"] == chart
               for s in c["series"])


def test_status_page_in_chromium(tmp_path: Path, browser: Any,
                                 start_agent: Callable[..., AgentProcess]) -> None:
    printer = FakeEscposPrinter("epson", paper_out=True)
    try:
        config = agent_config(tmp_path / "state", interval="0.5s",
                              only=["cpu", "meminfo", "filesystem", "printer"],
                              collectors={"printer": {"enabled": True, "interval": "1s",
                                                      "timeout": "1s"}},
                              extra="[labels]\nstore = \"sp-0042\"\n")
        agent = start_agent(config + printer_toml(port=printer.port, dialect="epson"))
        wait_until(lambda: history_points(agent, "cpu") >= 4, timeout=20,
                   message="four CPU points in the history JSON")
        head = agent.get("/")
        assert head.status == 200
        csp = head.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "http" not in csp
        assert head.headers["X-Content-Type-Options"] == "nosniff"

        assert agent.url is not None
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        seen = Recorder(page, agent.url)
        page.goto(agent.url + "/")
        page.wait_for_selector('#overall[data-state="degraded"]', timeout=15_000)
        assert page.inner_text("#overall-words") == "Degraded: needs attention"
        line = page.wait_for_selector('li[data-check="printer:receipt"]')
        assert line.get_attribute("data-status") == "degraded"
        text = line.inner_text()
        assert "Printer receipt" in text and "Receipt printer: paper out" in text
        assert "Degraded for" in text  # since when
        assert "paper out" in page.inner_text("#overall-detail")
        assert page.inner_text("#id-labels") == "sp-0042"
        assert page.inner_text("#id-version") == head.headers["Server"].split()[0].split("/")[1]

        svg = page.wait_for_selector('figure[data-chart="cpu"] svg[data-points]',
                                     timeout=20_000)
        assert int(svg.get_attribute("data-points") or 0) > 1
        path = page.query_selector('figure[data-chart="cpu"] svg path[data-points]')
        assert path is not None and (path.get_attribute("d") or "").count("L") >= 1
        desc = page.text_content('figure[data-chart="memory"] svg desc') or ""
        assert desc.startswith("Memory used over the last 3 h: now ")
        assert page.get_attribute('figure[data-chart="memory"] svg', "role") == "img"

        # Keyboard: the range buttons and the charts are reachable with Tab.
        reached = set()
        for _ in range(12):
            page.keyboard.press("Tab")
            reached.add(page.evaluate(
                "document.activeElement.getAttribute('data-chart') || "
                "document.activeElement.getAttribute('data-hours') || ''"))
        assert {"1", "3", "12", "cpu"} <= reached

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "status_page.png"
        page.screenshot(path=str(shot), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=str(ARTIFACTS / "status_page_phone.png"), full_page=True)
        print(f"screenshots: {shot} and status_page_phone.png")

        # Auto-refresh, without reloading: the paper is replaced, then the agent stops.
        printer.set_state(paper_out=False)
        page.wait_for_selector('li[data-check="printer:receipt"][data-status="ok"]',
                               timeout=15_000)
        page.wait_for_selector('#overall[data-state="ok"]', timeout=15_000)
        agent.stop()
        page.wait_for_selector('#overall[data-state="unreachable"]', timeout=15_000)
        assert page.inner_text("#overall-words") == "Agent not reachable"

        assert seen.urls, "the page made no request at all"
        outside = [u for u in seen.urls if not u.startswith(agent.url + "/")]
        assert outside == [], f"requests left the agent's loopback address: {outside}"
        assert all(u.startswith("http://127.0.0.1:") for u in seen.urls)
        # Failed fetches to the stopped agent are expected; nothing else may complain
        # (a CSP violation is reported as a console error).
        complaints = [e for e in seen.errors if "ERR_CONNECTION_REFUSED" not in e
                      and "Failed to load resource" not in e]
        assert complaints == []
        page.close()
    finally:
        printer.close()


def test_without_a_buffer_the_charts_say_no_history_yet(
        tmp_path: Path, browser: Any, start_agent: Callable[..., AgentProcess]) -> None:
    config = agent_config(tmp_path / "state", interval="0.5s", only=["meminfo"],
                          extra="[buffer]\nenabled = false\n")
    agent = start_agent(config)
    history = agent.get("/api/v1/history").json()
    assert history["available"] is False and history["reason"].startswith("no history yet")
    assert agent.get("/api/v1/history?hours=abc").status == 400
    page = browser.new_page()
    seen = Recorder(page, str(agent.url))
    page.goto(f"{agent.url}/")
    page.wait_for_selector('#overall[data-state="ok"]', timeout=15_000)
    page.wait_for_function(
        "document.getElementById('history-note').textContent.startsWith('no history yet')",
        timeout=15_000)
    assert page.query_selector_all("#charts svg") == []
    assert seen.errors == []
    page.close()
