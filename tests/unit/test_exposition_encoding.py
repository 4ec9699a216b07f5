"""exposition.fast_encoder and exposition_format: prometheus_client's bytes, or its encoder."""

from __future__ import annotations

import prometheus_client.exposition as prometheus_exposition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric

from totem_agent import exposition_format
from totem_agent.collectors import builtin_collectors, runs_here
from totem_agent.collectors.base import CollectorContext, HostPaths, NoDataError
from totem_agent.exposition import _Families, fast_encoder
from totem_agent.exposition_format import choose_encoder

PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,"
                     "application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def live_families() -> list[Metric]:
    """Every built-in collector on this machine: the names the agent really serves."""
    families: list[Metric] = []
    for cls in builtin_collectors().values():
        if not runs_here(cls):
            continue
        settings = {key: opt.default for key, opt in cls.options.items()}
        try:
            families.extend(cls(CollectorContext(paths=HostPaths()), settings).collect())
        except NoDataError:
            continue
    return families


def awkward_families() -> list[Metric]:
    """Label values that need escaping, an info metric, a counter, a unit."""
    gauge = GaugeMetricFamily("node_test_bytes", 'Help with "quotes" and \\ and\nnewline.',
                              labels=["device", "path"], unit="bytes")
    gauge.add_metric(['sd"a', "C:\\dir\nnext"], 1.5)
    counter = CounterMetricFamily("node_test_events", "Events.", labels=["kind"])
    counter.add_metric(["ünïcode"], 3.0)
    info = InfoMetricFamily("node_test", "Info.", value={"version": "1.0"})
    return [gauge, counter, info]


def test_same_bytes_as_prometheus_client_for_prometheus_accept() -> None:
    encoder, _ = choose_encoder(PROMETHEUS_ACCEPT)
    families = live_families() + awkward_families()
    assert len(families) > 50
    fast = fast_encoder(encoder, families)
    assert fast is not encoder  # the fast path was taken
    assert fast(_Families(families)) == encoder(_Families(families))


def test_a_name_outside_the_legacy_set_keeps_prometheus_clients_encoder() -> None:
    encoder, _ = choose_encoder(PROMETHEUS_ACCEPT)
    odd_metric = GaugeMetricFamily("node.dotted", "Dotted name.", value=1.0)
    odd_label = GaugeMetricFamily("node_ok", "Colon in a label name.", labels=["a:b"])
    odd_label.add_metric(["x"], 1.0)
    leading_digit = GaugeMetricFamily("node_ok2", "Label starts with a digit.", labels=["1x"])
    leading_digit.add_metric(["x"], 1.0)
    for odd in (odd_metric, odd_label, leading_digit):
        assert fast_encoder(encoder, [*awkward_families(), odd]) is encoder


def test_text_format_is_left_alone() -> None:
    encoder, content_type = choose_encoder("text/plain")
    assert content_type.startswith("text/plain")
    assert fast_encoder(encoder, awkward_families()) is encoder


def test_the_caching_renderer_writes_prometheus_clients_bytes() -> None:
    from totem_agent.openmetrics_render import OpenMetricsRenderer

    encoder, _ = choose_encoder(PROMETHEUS_ACCEPT)
    renderer = OpenMetricsRenderer()
    for _ in range(2):  # the second render comes from the prefix cache
        families = live_families() + awkward_families()
        expected = encoder(_Families(families)).removesuffix(b"# EOF\n")
        assert renderer.render(families) == expected


def test_the_caching_renderer_declines_what_it_does_not_handle() -> None:
    from totem_agent.openmetrics_render import OpenMetricsRenderer

    odd = GaugeMetricFamily("node.dotted", "Dotted name.", value=1.0)
    stamped = GaugeMetricFamily("node_stamped", "With a timestamp.")
    stamped.add_metric([], 1.0, timestamp=12.5)
    for family in (odd, stamped):
        assert OpenMetricsRenderer().render([*awkward_families(), family]) is None


def more_types() -> list[Metric]:
    """Types text 0.0.4 renames (unknown -> untyped, stateset -> gauge, ...), and a
    counter with a `_created` sample, which that format moves to a family of its own."""
    from prometheus_client.core import (
        GaugeHistogramMetricFamily,
        HistogramMetricFamily,
        StateSetMetricFamily,
        SummaryMetricFamily,
        UnknownMetricFamily,
    )

    hist = HistogramMetricFamily("node_test_seconds", "A histogram.", labels=["op"])
    hist.add_metric(["read"], buckets=[("0.1", 1.0), ("+Inf", 3.0)], sum_value=0.7)
    summary = SummaryMetricFamily("node_test_summary", "A summary.", count_value=2,
                                  sum_value=1.0)
    state = StateSetMetricFamily("node_test_state", "A stateset.", value={"a": True, "b": False})
    gauge_hist = GaugeHistogramMetricFamily("node_test_gh", "A gauge histogram.",
                                            buckets=[("+Inf", 2.0)], gsum_value=1.0)
    unknown = UnknownMetricFamily("node_test_unknown", "Unknown.", value=4.0)
    return [hist, summary, state, gauge_hist, unknown]


def test_the_text_renderer_writes_prometheus_clients_bytes() -> None:
    from prometheus_client.exposition import generate_latest

    from totem_agent.openmetrics_render import TextRenderer

    renderer = TextRenderer()
    families = live_families() + awkward_families()
    plain = [f for f in more_types() if f.type != "gaugehistogram"]  # _gsum: declined
    for _ in range(2):  # the second render comes from the prefix cache
        assert renderer.render(families + plain) == generate_latest(
            _Families(families + plain))
    created = CounterMetricFamily("node_test_created_things", "Has _created.", created=1.0,
                                  value=2.0)
    for declined in (created, next(f for f in more_types() if f.type == "gaugehistogram")):
        assert TextRenderer().render([*awkward_families(), declined]) is None


# Accept headers: Prometheus' own, the escaping and version variants, and odd ones.
ACCEPT_HEADERS = [
    PROMETHEUS_ACCEPT, "", "*/*", "text/plain", "text/plain;version=0.0.4",
    "text/plain; version=1.0.0", "text/plain;version=1.0.0;escaping=allow-utf-8",
    "text/plain;version=1.0.0;escaping=dots", "text/plain;version=1.0.0;escaping=values",
    "text/plain;version=1.0.0;escaping=bogus", "application/openmetrics-text",
    "application/openmetrics-text;version=0.0.1", "application/openmetrics-text; version=1.0.0",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    "application/openmetrics-text;version=1.0.0;escaping=underscores;escaping=dots",
    "application/openmetrics-text;version=2.0.0;escaping=values",
    "application/json, text/html;q=0.9", "text/plain;version=0.0.4,application/openmetrics-text",
    "application/openmetrics-text;escaping=dots,text/plain;version=1.0.0",
]


def odd_names() -> list[Metric]:
    """Names outside the legacy set, where every escaping writes something else."""
    dotted = GaugeMetricFamily("node.dotted", "Dotted name.", labels=["a.b"])
    dotted.add_metric(["x"], 1.0)
    stamped = CounterMetricFamily("node_stamped", "With a timestamp.", labels=["k"], created=2.0)
    stamped.add_metric(["v"], 3.0, timestamp=12.5)
    return [dotted, stamped]


def test_content_negotiation_is_prometheus_clients() -> None:
    """exposition_format.choose_encoder (the agent's copy, without the imports of
    prometheus_client.exposition): the same content type and the same bytes."""
    families = _Families(live_families() + awkward_families() + more_types() + odd_names())
    for accept in ACCEPT_HEADERS:
        ours, our_type = choose_encoder(accept)
        theirs, their_type = prometheus_exposition.choose_encoder(accept)
        assert our_type == their_type, accept
        assert ours(families) == theirs(families), accept


def test_the_text_format_is_prometheus_clients() -> None:
    families = _Families(live_families() + awkward_families() + more_types() + odd_names())
    for escaping in ("underscores", "dots", "values", "allow-utf-8"):
        assert exposition_format.generate_latest(families, escaping) == \
            prometheus_exposition.generate_latest(families, escaping), escaping
