"""GET /metrics: the last completed cycle, rendered once and served from a cache.

A scrape never runs a collector. The body is rendered when something changed
since the last render (a collector finished) and kept per format and encoding,
so a burst of scrapes costs a dictionary lookup and a socket write.
Content negotiation (OpenMetrics vs text 0.0.4) and gzip follow prometheus_client
(its choose_encoder and text format, copied in exposition_format).
"""

from __future__ import annotations

import functools
import gzip
import itertools
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.samples import Sample

# Not prometheus_client.exposition: it imports http.server, urllib.request, ssl and
# wsgiref for its own servers (exposition_format says more).
from totem_agent import __version__
from totem_agent import exposition_format as text_exposition
from totem_agent.exposition_format import choose_encoder
from totem_agent.openmetrics_render import OpenMetricsRenderer, TextRenderer
from totem_agent.scheduler import FAILURE_REASONS, Scheduler, add_labels

# Prometheus' legacy character sets: names in them need no escaping at all.
_LEGACY_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LEGACY_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def fast_encoder(encoder: Callable[[Any], bytes], families: list[Metric]) -> Callable[[Any], bytes]:
    """The same bytes, rendered in about half the time, when every name is legacy.

    prometheus_client 0.26's OpenMetrics encoder with escaping=underscores (what
    Prometheus' Accept header gets) rewrites every metric and label name character by
    character, which was half of a render (docs/benchmarks.md). For names already in
    the legacy character set that rewrite changes nothing, and escaping=allow-utf-8
    writes the identical line with str.replace. Any other name keeps the slow path.
    """
    keywords = getattr(encoder, "keywords", {})
    if getattr(encoder, "func", None) is not openmetrics.generate_latest or \
            keywords.get("escaping") != openmetrics.UNDERSCORES:
        return encoder
    metric_names = set()
    label_names: set[str] = set()
    for family in families:
        metric_names.add(family.name)
        for sample in family.samples:
            metric_names.add(sample.name)
            label_names.update(sample.labels)
    if all(_LEGACY_METRIC_NAME.fullmatch(n) for n in metric_names) and \
            all(_LEGACY_LABEL_NAME.fullmatch(n) for n in label_names):
        return functools.partial(openmetrics.generate_latest, escaping=openmetrics.ALLOWUTF8,
                                 version=keywords.get("version", "1.0.0"))
    return encoder


class _Families:
    """Adapter: prometheus_client's encoders only need an object with collect()."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class SelfMetrics:
    """totem_agent_* about the agent and its collectors, plus process_*."""

    def __init__(self, scheduler: Scheduler, labels: Mapping[str, str],
                 extra: Iterable[Callable[[], Iterable[Metric]]] = ()) -> None:
        self.scheduler = scheduler
        self.labels = dict(labels)
        self.started = time.time()
        self.extra = list(extra)
        # registry=None: we render these families ourselves, nothing global.
        self._process = ProcessCollector(registry=None)

    def collect(self) -> list[Metric]:
        # Samples built directly, constant labels included (what add_metric and then
        # add_labels made, in the same order): ~220 samples every cycle, where add_metric's
        # dict(zip()) and add_labels' copy of each sample cost a quarter of a millisecond.
        const = self.labels
        success: list[Sample] = []
        duration: list[Sample] = []
        runs: list[Sample] = []
        failures: list[Sample] = []
        last_ok: list[Sample] = []
        for state in self.scheduler.snapshot():
            if state.outcome == "pending":
                continue
            name = state.name
            labels = {**const, "collector": name}
            success.append(Sample("totem_agent_collector_success", labels,
                                  1.0 if state.success else 0.0))
            duration.append(Sample("totem_agent_collector_duration_seconds", labels,
                                   state.duration))
            runs.append(Sample("totem_agent_collector_runs_total", labels, float(state.runs)))
            counts = state.failures
            for reason in FAILURE_REASONS:
                failures.append(Sample("totem_agent_collector_failures_total",
                                       {**const, "collector": name, "reason": reason},
                                       float(counts[reason])))
            if state.last_success_at is not None:
                last_ok.append(Sample("totem_agent_collector_last_success_timestamp_seconds",
                                      labels, state.last_success_at))
        families = [
            _family("totem_agent_collector_success", "gauge",
                    "1 if the collector's last run succeeded (or had nothing to watch), 0 if "
                    "it failed or missed its deadline.", success),
            _family("totem_agent_collector_duration_seconds", "gauge",
                    "Wall time of the collector's last run.", duration),
            _family("totem_agent_collector_runs", "counter",
                    "Collector runs that completed (successfully or not) before their "
                    "deadline.", runs),
            _family("totem_agent_collector_failures", "counter",
                    "Collector runs that failed, by reason: error (raised), timeout (missed "
                    "its deadline), skipped (previous run still stuck).", failures),
            _family("totem_agent_collector_last_success_timestamp_seconds", "gauge",
                    "Unix time of the collector's last successful run.", last_ok),
            _family("totem_agent_build", "info", "Version of the running agent.",
                    [Sample("totem_agent_build_info",
                            {**const, "version": __version__,
                             "python_version": sys.version.split()[0]}, 1)]),
            _family("totem_agent_start_time_seconds", "gauge", "Unix time the agent started.",
                    [Sample("totem_agent_start_time_seconds", dict(const), self.started)]),
        ]
        families.extend(add_labels(self._process.collect(), const))
        return families

    def live(self) -> list[Metric]:
        """The small families that change between cycles (events, HTTP, push)."""
        families: list[Metric] = []
        for source in self.extra:
            families.extend(source())
        return add_labels(families, self.labels)


def _family(name: str, kind: str, documentation: str, samples: list[Sample]) -> Metric:
    family = Metric(name, documentation, kind)
    family.samples = samples
    return family


_EOF = b"# EOF\n"


def _fast_format(encoder: Callable[[Any], bytes]) -> str | None:
    """"openmetrics" (1.0.0) or "text" (0.0.4) when the encoder's escaping leaves
    legacy names as they are, so the cached-prefix renderers give the same bytes."""
    if encoder is text_exposition.generate_latest:  # its default escaping: underscores
        return "text"
    keywords = getattr(encoder, "keywords", {})
    if keywords.get("escaping") not in (openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8):
        return None
    func = getattr(encoder, "func", None)
    if func is openmetrics.generate_latest and keywords.get("version", "1.0.0") == "1.0.0":
        return "openmetrics"
    if func is text_exposition.generate_latest:
        return "text"
    return None


class Exposition:
    """The body is two parts, each rendered only when it changed: what the last
    collection cycle saw (hundreds of samples; re-rendered once per cycle, by warm()
    as the cycle completes) and the live tail (business, HTTP and push counters, a
    few dozen samples, which any event or request changes)."""

    def __init__(self, scheduler: Scheduler, self_metrics: SelfMetrics) -> None:
        self.scheduler = scheduler
        self.self_metrics = self_metrics
        self._lock = threading.Lock()
        # Lock-free counters: invalidate() runs under the scheduler's lock, and
        # render() takes the scheduler's lock under ours; a shared lock would deadlock.
        self._counter = itertools.count(1)
        self._generation = 0         # of the collected part
        self._live_generation = 0    # of the live tail
        # (part, content type) -> (generation, bytes without OpenMetrics' "# EOF")
        self._parts: dict[tuple[str, str], tuple[int, bytes]] = {}
        # One per part and format: each caches the prefixes of its own series.
        self._fast: dict[tuple[str, str], OpenMetricsRenderer] = {
            (part, kind): renderer()
            for part in ("collected", "live")
            for kind, renderer in (("openmetrics", OpenMetricsRenderer), ("text", TextRenderer))}
        # (content type, gzip) -> ((generation, live generation), body)
        self._bodies: dict[tuple[str, bool], tuple[tuple[int, int], bytes]] = {}
        # The headers of the latest scrape: what warm() renders ahead of the next one,
        # as long as scrapes keep coming (an unscraped agent renders nothing).
        self._last_scrape: tuple[str | None, str | None] | None = None
        self._scraped_since_warm = False
        # (generation, families) of the collected part: a scraped cycle is read twice,
        # by warm() on the lane and by the buffer's snapshot, and SelfMetrics.collect()
        # reads /proc for process_*: once per cycle is enough (the render is cached
        # per generation too).
        self._collected: tuple[int, list[Metric]] | None = None

    def invalidate(self) -> None:
        """A collector finished: the collected part is rendered anew."""
        self._generation = next(self._counter)

    def invalidate_live(self) -> None:
        """An event or a request changed a live counter: only the tail is rendered anew."""
        self._live_generation = next(self._counter)

    def warm(self) -> None:
        """Render what the latest scraper asked for, now, off the scrape's path.

        Called when a collection cycle has finished (the collectors' lane is idle),
        so the next scrape is a cache hit even when scrape and collection intervals
        are equal and every scrape would otherwise find a new cycle.
        """
        if self._last_scrape is not None and self._scraped_since_warm:
            self._scraped_since_warm = False
            self.render(*self._last_scrape, scrape=False)

    def collected_families(self) -> list[Metric]:
        """What the last cycle collected and the agent's own families (callers do not
        change the list: it is shared until the next invalidate())."""
        generation = self._generation
        cached = self._collected
        if cached is not None and cached[0] == generation:
            return cached[1]
        out: list[Metric] = []
        for state in self.scheduler.snapshot():
            out.extend(state.families)
        out.extend(self.self_metrics.collect())
        self._collected = (generation, out)
        return out

    def families(self) -> list[Metric]:
        return self.collected_families() + self.self_metrics.live()

    def _part(self, part: str, generation: int, content_type: str,
              encoder: Callable[[Any], bytes]) -> bytes:
        cached = self._parts.get((part, content_type))
        if cached is not None and cached[0] == generation:
            return cached[1]
        families = (self.collected_families() if part == "collected"
                    else self.self_metrics.live())
        text = None
        kind = _fast_format(encoder)
        if kind is not None:
            text = self._fast[(part, kind)].render(families)
        if text is None:
            text = fast_encoder(encoder, families)(_Families(families))
        text = text.removesuffix(_EOF)
        self._parts[(part, content_type)] = (generation, text)
        return text

    def render(self, accept: str | None, accept_encoding: str | None,
               scrape: bool = True) -> tuple[bytes, str, bool]:
        """(body, content type, gzipped) for a scrape with these request headers."""
        if scrape:
            self._last_scrape = (accept, accept_encoding)
            self._scraped_since_warm = True
        encoder, content_type = choose_encoder(accept or "")
        use_gzip = "gzip" in (accept_encoding or "")
        cached = self._bodies.get((content_type, use_gzip))
        if cached is not None and cached[0] == (self._generation, self._live_generation):
            return cached[1], content_type, use_gzip
        if not self._lock.acquire(blocking=not (scrape and cached is not None)):
            # warm() is rendering the new cycle on the collectors' lane right now: this
            # scrape gets the previous body (one cycle older) instead of waiting for it.
            assert cached is not None
            return cached[1], content_type, use_gzip
        try:
            generations = (self._generation, self._live_generation)
            cached = self._bodies.get((content_type, use_gzip))
            if cached is not None and cached[0] == generations:
                return cached[1], content_type, use_gzip
            body = (self._part("collected", generations[0], content_type, encoder)
                    + self._part("live", generations[1], content_type, encoder))
            if content_type.startswith("application/openmetrics-text"):
                body += _EOF
            if use_gzip:
                # Level 1: a third of level 6's CPU on a kiosk, for a body 14 % larger
                # (8.8 KB instead of 7.7 KB for 48 KB of text) on the store's network.
                body = gzip.compress(body, compresslevel=1, mtime=0)
            self._bodies[(content_type, use_gzip)] = (generations, body)
        finally:
            self._lock.release()
        return body, content_type, use_gzip
