"""The kiosk fleet's Grafana dashboards, as code (the Grafana Foundation SDK).

    .venv/bin/python central/grafana/build.py           # rewrite dashboards/*.json
    .venv/bin/python central/grafana/build.py --check   # exit 1 if a committed file differs

The JSON files in dashboards/ are committed so a Grafana install can load them
without Python (provisioning/); tests/unit/test_central_grafana.py fails when they
no longer match this code, and tests/integration/test_central_queries.py runs every
query against a real Prometheus fed by a real agent.

Every query selects `job="totem"` and the dashboard variables `$store` and
`$instance` (multi-value regexes: "All" is `.*`). Metric names: docs/metrics.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import (
    bargauge,
    dashboard,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "dashboards"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

FLEET = 'job="totem",store=~"$store"'
KIOSK = 'job="totem",store=~"$store",instance=~"$instance"'
EVENTS = KIOSK + ',handler="/api/v1/events"'
# Real disks only: node_exporter's usual exclusions for pseudo and read-only media.
DISKS = KIOSK + ',fstype!~"tmpfs|ramfs|squashfs|overlay|devtmpfs|iso9660"'

# Panels whose queries may rightly return nothing, and why (shown in the panel's
# description and allowed by the query test). Keyed by (dashboard uid, panel title).
MAY_BE_EMPTY: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False


def _targets(queries: Sequence[Query], table_format: bool = False) -> list[Builder[Any]]:
    out: list[Builder[Any]] = []
    for index, query in enumerate(queries):
        target = prometheus.Dataquery().expr(query.expr).ref_id(chr(ord("A") + index))
        if query.legend:
            target = target.legend_format(query.legend)
        if query.instant or table_format:
            target = target.instant()
        if table_format:
            target = target.format(pm.PromQueryFormat.TABLE)
        out.append(target)
    return out


def _thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (dashboard.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
            .steps([dm.Threshold(value=value, color=color) for value, color in steps]))


def _legend() -> common_builders.VizLegendOptions:
    return (common_builders.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM).show_legend(True))


class Board:
    """One dashboard under construction: panels get ids and their 'may be empty' notes."""

    def __init__(self, uid: str, title: str, description: str, variables: Sequence[str]
                 ) -> None:
        self.uid = uid
        self.next_id = 1
        self.builder = (
            dashboard.Dashboard(title).uid(uid).description(description)
            .tags(["totem", "kiosk"]).refresh("1m").time("now-6h", "now")
            .timezone("browser").editable()
            .tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .with_variable(dashboard.DatasourceVariable("datasource").label("Data source")
                           .type("prometheus")))
        if "store" in variables:
            self.builder = self.builder.with_variable(_variable(
                "store", "Store", 'label_values(totem_agent_build_info{job="totem"}, store)'))
        if "instance" in variables:
            self.builder = self.builder.with_variable(_variable(
                "instance", "Kiosk",
                'label_values(totem_agent_build_info{job="totem",store=~"$store"}, instance)'))

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def _describe(self, title: str, description: str, empty: str | None) -> str:
        if empty is None:
            return description
        MAY_BE_EMPTY[(self.uid, title)] = empty
        return f"{description} Empty when {empty}."

    def row(self, title: str) -> None:
        self.builder = self.builder.with_row(dashboard.Row(title).id(self._id()))

    def timeseries(self, title: str, description: str, queries: Sequence[Query], *,
                   unit: str = "short", width: int = 12, height: int = 8,
                   empty: str | None = None, stacked: bool = False,
                   minimum: float | None = None) -> None:
        panel = (timeseries.Panel().id(self._id()).title(title)
                 .description(self._describe(title, description, empty))
                 .datasource(DATASOURCE).targets(_targets(queries)).unit(unit)
                 .span(width).height(height).legend(_legend()).fill_opacity(10)
                 .line_width(1).show_points(common.VisibilityMode.NEVER))
        if stacked:
            panel = panel.stacking(common_builders.StackingConfig()
                                   .mode(common.StackingMode.NORMAL)).fill_opacity(40)
        if minimum is not None:
            panel = panel.min(minimum)
        self.builder = self.builder.with_panel(panel)

    def stat(self, title: str, description: str, queries: Sequence[Query], *,
             unit: str = "short", width: int = 6, height: int = 4,
             thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),),
             mappings: dict[str, tuple[str, str]] | None = None,
             empty: str | None = None) -> None:
        panel = (stat.Panel().id(self._id()).title(title)
                 .description(self._describe(title, description, empty))
                 .datasource(DATASOURCE)
                 .targets(_targets([Query(q.expr, q.legend, instant=True) for q in queries]))
                 .unit(unit).span(width).height(height).thresholds(_thresholds(*thresholds))
                 .color_mode(common.BigValueColorMode.BACKGROUND)
                 .graph_mode(common.BigValueGraphMode.NONE)
                 .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"])
                                 .values(False)))
        if mappings:
            panel = panel.mappings([dm.ValueMap(options={
                value: dm.ValueMappingResult(text=text, color=color)
                for value, (text, color) in mappings.items()})])
        self.builder = self.builder.with_panel(panel)

    def table(self, title: str, description: str, queries: Sequence[Query], *,
              unit: str = "short", width: int = 12, height: int = 8,
              thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),),
              mappings: dict[str, tuple[str, str]] | None = None,
              empty: str | None = None) -> None:
        panel = (table.Panel().id(self._id()).title(title)
                 .description(self._describe(title, description, empty))
                 .datasource(DATASOURCE).targets(_targets(queries, table_format=True))
                 .unit(unit).span(width).height(height).thresholds(_thresholds(*thresholds))
                 .show_header(True)
                 # One row per series: the labels as columns, the value last; the
                 # queries' Time column says nothing in an instant table.
                 .with_transformation(dm.DataTransformerConfig(
                     id_val="merge", options={}))
                 .with_transformation(dm.DataTransformerConfig(
                     id_val="organize", options={"excludeByName": {"Time": True},
                                                 "renameByName": _value_names(queries)})))
        if mappings:
            panel = panel.mappings([dm.ValueMap(options={
                value: dm.ValueMappingResult(text=text, color=color)
                for value, (text, color) in mappings.items()})])
        self.builder = self.builder.with_panel(panel)

    def bars(self, title: str, description: str, queries: Sequence[Query], *,
             unit: str = "short", width: int = 12, height: int = 8,
             empty: str | None = None) -> None:
        panel = (bargauge.Panel().id(self._id()).title(title)
                 .description(self._describe(title, description, empty))
                 .datasource(DATASOURCE)
                 .targets(_targets([Query(q.expr, q.legend, instant=True) for q in queries]))
                 .unit(unit).span(width).height(height)
                 .orientation(common.VizOrientation.HORIZONTAL)
                 .display_mode(common.BarGaugeDisplayMode.BASIC)
                 .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"])
                                 .values(False)))
        self.builder = self.builder.with_panel(panel)

    def build(self) -> dm.Dashboard:
        return self.builder.build()


def _value_names(queries: Sequence[Query]) -> dict[str, str]:
    """Column titles for the merged table: Grafana names the value column of a single
    query "Value", and of several "Value #A", "Value #B"..."""
    if len(queries) == 1:
        return {"Value": queries[0].legend} if queries[0].legend else {}
    return {f"Value #{chr(ord('A') + i)}": q.legend for i, q in enumerate(queries) if q.legend}


def _variable(name: str, label: str, query: str) -> dashboard.QueryVariable:
    return (dashboard.QueryVariable(name).label(label).query(query).datasource(DATASOURCE)
            .multi(True).include_all(True).all_value(".*")
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"])))


UP_DOWN = {"0": ("down", "red"), "1": ("up", "green")}
YES_NO_BAD = {"0": ("no", "green"), "1": ("yes", "red")}
OK_BAD = {"0": ("down", "red"), "1": ("ok", "green")}


# -- Fleet overview ---------------------------------------------------------------------

def fleet() -> dm.Dashboard:
    board = Board("totem-fleet", "Totem / Fleet overview",
                  "Which kiosks are broken right now: reachability by store, printers, "
                  "PIN pads, unsent history and clocks.", ["store"])
    board.row("Kiosks")
    board.stat("Kiosks reporting", "Kiosks with a current sample, whichever way they "
               "report (a pushed kiosk counts while the Pushgateway holds its last push: "
               "see Kiosks not pushing).",
               [Query(f"count(count by (store, instance) (totem_agent_build_info{{{FLEET}}}))"
                      " or vector(0)")], width=4)
    board.stat("Kiosks up", "Scraped kiosks whose agent answered the last scrape.",
               [Query(f"count(up{{{FLEET}}} == 1) or vector(0)")], width=4)
    board.stat("Kiosks down", "Scraped kiosks Prometheus cannot reach.",
               [Query(f"count(up{{{FLEET}}} == 0) or vector(0)")], width=4,
               thresholds=((None, "green"), (1, "red")))
    board.stat("Kiosks not pushing", "Kiosks behind a Pushgateway whose last push is older "
               "than 10 minutes.",
               [Query(f"count(time() - push_time_seconds{{{FLEET}}} > 600) or vector(0)")],
               width=4, thresholds=((None, "green"), (1, "red")))
    board.stat("Stores with every kiosk down", "Stores where no scraped kiosk answers "
               "(StoreDown: the store's link or power).",
               [Query(f"count(count by (store) (up{{{FLEET}}} == 0) "
                      f"== count by (store) (up{{{FLEET}}})) or vector(0)")], width=4,
               thresholds=((None, "green"), (1, "red")))
    board.stat("Alerts firing", "Alerts of central/prometheus/rules firing now (needs the "
               "rules loaded in this Prometheus).",
               [Query('count(ALERTS{alertstate="firing",store=~"$store"}) or vector(0)')],
               width=4, thresholds=((None, "green"), (1, "orange")))
    board.table("Kiosks down", "KioskDown alerts firing, whichever way the kiosk reports "
                "(via: scrape, pushgateway, remote_write).",
                [Query('ALERTS{alertname="KioskDown",alertstate="firing",'
                       'store=~"$store"}')],
                empty="no kiosk is down")
    board.table("Kiosks up and down by store", "Per store: scraped kiosks answering (up) "
                "and not answering (down).",
                [Query(f"sum by (store) (up{{{FLEET}}})", "up"),
                 Query(f"count by (store) (up{{{FLEET}}}) - sum by (store) (up{{{FLEET}}})",
                       "down")])
    board.timeseries("Kiosks up by store", "Scraped kiosks answering, per store.",
                     [Query(f"sum by (store) (up{{{FLEET}}})", "{{store}}")], minimum=0)

    board.row("Peripherals")
    board.table("Printers with paper problems", "Receipt printers out of paper (2) or "
                "with the roll near its end (1).",
                [Query(f"(2 * (totem_printer_paper_out{{{FLEET}}} == 1)) "
                       f"or (totem_printer_paper_near_end{{{FLEET}}} == 1)")],
                mappings={"1": ("paper low", "orange"), "2": ("paper out", "red")},
                empty="every printer has paper (or none is configured)")
    board.table("Printers offline or cover open", "Receipt printers that report "
                "themselves offline (0 = offline) or that did not answer the agent.",
                [Query(f"totem_printer_online{{{FLEET}}} == 0"),
                 Query(f"totem_printer_status_probe_success{{{FLEET}}} == 0"),
                 Query(f"totem_printer_cover_open{{{FLEET}}} == 1")],
                empty="every printer is online with its cover closed (or none is "
                      "configured)")
    board.table("Payment devices down", "PIN pads whose USB device or serial port is "
                "gone (PaymentDeviceDown).",
                [Query(f"(totem_payment_device_usb_present{{{FLEET}}} == 0) "
                       f"or (totem_payment_device_port_present{{{FLEET}}} == 0)")],
                empty="every PIN pad is present (or none is configured)")

    board.row("Unsent history and clocks")
    board.bars("Oldest unsent sample", "Kiosks whose buffer holds the oldest samples not "
               "yet accepted by a remote_write destination (BufferBacklog after 30 min).",
               [Query(f"topk(10, max by (store, instance) "
                      f"(totem_agent_buffer_oldest_pending_age_seconds{{{FLEET}}}))",
                      "{{store}} / {{instance}}")],
               unit="s", empty="no kiosk ships over remote_write")
    board.bars("Samples waiting to be sent", "Samples buffered per kiosk, all "
               "destinations together.",
               [Query(f"topk(10, sum by (store, instance) "
                      f"(totem_agent_buffer_pending_samples{{{FLEET}}}))",
                      "{{store}} / {{instance}}")],
               empty="no kiosk ships over remote_write")
    board.stat("Clocks not synchronised", "Kiosks whose kernel says the clock is not "
               "synchronised (ClockUnsynchronised).",
               [Query(f"count(node_timex_sync_status{{{FLEET}}} == 0) or vector(0)")],
               thresholds=((None, "green"), (1, "orange")))
    board.timeseries("Clock skew against destinations", "The kiosk's clock minus the "
                     "destination's (from its HTTP Date header); beyond ±10 min "
                     "Prometheus refuses the samples.",
                     [Query(f"max by (store, instance, destination) "
                            f"(totem_agent_clock_skew_seconds{{{FLEET}}})",
                            "{{store}} / {{instance}} → {{destination}}")],
                     unit="s", width=9, empty="no kiosk ships over remote_write")
    board.timeseries("Kernel clock offset", "Offset of the kernel clock from its NTP "
                     "reference (adjtimex).",
                     [Query(f"max by (store, instance) (node_timex_offset_seconds{{{FLEET}}})",
                            "{{store}} / {{instance}}")], unit="s", width=9)
    return board.build()


# -- Kiosk detail -----------------------------------------------------------------------

def kiosk() -> dm.Dashboard:
    board = Board("totem-kiosk", "Totem / Kiosk detail",
                  "One kiosk (or a few): the machine, its peripherals and the agent itself.",
                  ["store", "instance"])
    board.row("System")
    board.stat("Uptime", "Time since the kiosk booted.",
               [Query(f"time() - node_boot_time_seconds{{{KIOSK}}}", "{{instance}}")],
               unit="s")
    board.stat("Memory used", "Share of memory not available to new programs.",
               [Query(f"1 - node_memory_MemAvailable_bytes{{{KIOSK}}} "
                      f"/ node_memory_MemTotal_bytes{{{KIOSK}}}", "{{instance}}")],
               unit="percentunit", thresholds=((None, "green"), (0.8, "orange"),
                                               (0.9, "red")))
    board.stat("Fullest disk", "Share used of the kiosk's fullest real filesystem.",
               [Query(f"max by (instance) (1 - node_filesystem_avail_bytes{{{DISKS}}} "
                      f"/ node_filesystem_size_bytes{{{DISKS}}})", "{{instance}}")],
               unit="percentunit", thresholds=((None, "green"), (0.9, "orange"),
                                               (0.95, "red")))
    board.stat("Clock synchronised", "Kernel clock synchronised to NTP.",
               [Query(f"node_timex_sync_status{{{KIOSK}}}", "{{instance}}")],
               mappings={"0": ("no", "red"), "1": ("yes", "green")})
    board.timeseries("CPU busy", "Share of CPU time not idle, all CPUs together.",
                     [Query(f"1 - avg by (instance) (rate(node_cpu_seconds_total"
                            f"{{{KIOSK},mode=\"idle\"}}[$__rate_interval]))", "{{instance}}")],
                     unit="percentunit", minimum=0)
    board.timeseries("Load average", "Runnable and uninterruptible tasks (1, 5, 15 min).",
                     [Query(f"node_load1{{{KIOSK}}}", "{{instance}} 1m"),
                      Query(f"node_load5{{{KIOSK}}}", "{{instance}} 5m"),
                      Query(f"node_load15{{{KIOSK}}}", "{{instance}} 15m")], minimum=0)
    board.timeseries("Memory", "Used (total minus available) and total.",
                     [Query(f"node_memory_MemTotal_bytes{{{KIOSK}}} "
                            f"- node_memory_MemAvailable_bytes{{{KIOSK}}}", "{{instance}} used"),
                      Query(f"node_memory_MemTotal_bytes{{{KIOSK}}}", "{{instance}} total")],
                     unit="bytes", minimum=0)
    board.timeseries("Disk space used", "Per real filesystem.",
                     [Query(f"1 - node_filesystem_avail_bytes{{{DISKS}}} "
                            f"/ node_filesystem_size_bytes{{{DISKS}}}",
                            "{{instance}} {{mountpoint}}")], unit="percentunit", minimum=0)
    board.timeseries("Network traffic", "Bytes per second received (+) and sent (below zero).",
                     [Query(f"sum by (instance, device) (rate(node_network_receive_bytes_total"
                            f"{{{KIOSK},device!=\"lo\"}}[$__rate_interval]))",
                            "{{instance}} {{device}} in"),
                      Query(f"-sum by (instance, device) (rate(node_network_transmit_bytes_total"
                            f"{{{KIOSK},device!=\"lo\"}}[$__rate_interval]))",
                            "{{instance}} {{device}} out")], unit="Bps")
    board.timeseries("Disk I/O", "Bytes per second read (+) and written (below zero).",
                     [Query(f"sum by (instance) (rate(node_disk_read_bytes_total{{{KIOSK}}}"
                            f"[$__rate_interval]))", "{{instance}} read"),
                      Query(f"-sum by (instance) (rate(node_disk_written_bytes_total{{{KIOSK}}}"
                            f"[$__rate_interval]))", "{{instance}} written")], unit="Bps")
    board.timeseries("Temperatures", "Hardware sensors (hwmon).",
                     [Query(f"node_hwmon_temp_celsius{{{KIOSK}}}",
                            "{{instance}} {{chip}} {{sensor}}")], unit="celsius",
                     empty="the machine has no temperature sensors (virtual machines)")

    board.row("Peripherals")
    board.table("Receipt printer", "The printer's own status: 1 = yes.",
                [Query(f"totem_printer_online{{{KIOSK}}}", "online"),
                 Query(f"totem_printer_paper_near_end{{{KIOSK}}}", "paper low"),
                 Query(f"totem_printer_paper_out{{{KIOSK}}}", "paper out"),
                 Query(f"totem_printer_cover_open{{{KIOSK}}}", "cover open")],
                empty="no printer is configured, or its status could not be read")
    board.timeseries("Printer answering", "1 when the last status request got a valid "
                     "answer.",
                     [Query(f"totem_printer_status_probe_success{{{KIOSK}}}",
                            "{{instance}} {{printer}} ({{source}})")], minimum=0,
                     empty="no printer is configured")
    board.table("Payment device", "PIN pad present on USB, its port node present, and "
                "the port held by a program such as the TEF client (1 = yes).",
                [Query(f"totem_payment_device_usb_present{{{KIOSK}}}", "usb"),
                 Query(f"totem_payment_device_port_present{{{KIOSK}}}", "port"),
                 Query(f"totem_payment_device_port_held{{{KIOSK}}}", "port held")],
                empty="no PIN pad is configured")
    board.table("Displays, USB devices, processes", "Screens connected, configured USB "
                "devices present, kiosk processes running (1 = yes).",
                [Query(f"totem_display_connected{{{KIOSK}}}", "display"),
                 Query(f"totem_usb_device_present{{{KIOSK}}}", "usb"),
                 Query(f"totem_process_up{{{KIOSK}}}", "process")],
                empty="the machine has no DRM display and no USB device or process is "
                      "configured")

    board.row("Agent")
    board.table("Collectors", "1 = the collector's last run succeeded.",
                [Query(f"totem_agent_collector_success{{{KIOSK}}}")],
                mappings=OK_BAD, thresholds=((None, "red"), (1, "green")))
    board.timeseries("Agent memory", "Resident memory of the agent process.",
                     [Query(f"process_resident_memory_bytes{{{KIOSK}}}", "{{instance}} RSS")],
                     unit="bytes", width=6, minimum=0)
    board.timeseries("Agent CPU", "CPU seconds per second used by the agent.",
                     [Query(f"rate(process_cpu_seconds_total{{{KIOSK}}}[$__rate_interval])",
                            "{{instance}}")], unit="percentunit", width=6, minimum=0)
    board.timeseries("Buffer", "Samples waiting per destination, and the age of the "
                     "oldest.",
                     [Query(f"totem_agent_buffer_pending_samples{{{KIOSK}}}",
                            "{{instance}} → {{destination}} pending"),
                      Query(f"totem_agent_buffer_oldest_pending_age_seconds{{{KIOSK}}}",
                            "{{instance}} → {{destination}} oldest (s)")],
                     empty="the kiosk has no remote_write destination")
    board.timeseries("Buffer size on disk", "Bytes the buffer's SQLite files take.",
                     [Query(f"totem_agent_buffer_bytes{{{KIOSK}}}", "{{instance}}")],
                     unit="bytes", minimum=0)
    board.timeseries("remote_write requests", "Requests per second by answer (code).",
                     [Query(f"sum by (instance, destination, code) "
                            f"(rate(totem_agent_remote_write_requests_total{{{KIOSK}}}"
                            f"[$__rate_interval]))",
                            "{{instance}} → {{destination}} {{code}}")], unit="reqps",
                     empty="the kiosk has no remote_write destination")
    board.timeseries("Samples dropped", "Samples that will never arrive, by reason, per "
                     "hour.",
                     [Query(f"sum by (instance, destination, reason) "
                            f"(increase(totem_agent_buffer_dropped_samples_total{{{KIOSK}}}"
                            f"[1h]))", "{{instance}} → {{destination}} {{reason}}")],
                     empty="nothing was ever dropped")
    return board.build()


# -- Business ---------------------------------------------------------------------------

def business() -> dm.Dashboard:
    board = Board("totem-business", "Totem / Business",
                  "What the kiosks did for customers: tickets, waits, queues, payments, "
                  "services (from the kiosk application's events).", ["store", "instance"])
    board.row("Tickets and queues")
    board.stat("Tickets created", "In the selected time range.",
               [Query(f"sum(increase(totem_ticket_created_total{{{KIOSK}}}[$__range]))")],
               empty="no ticket was created in the time range")
    board.stat("Tickets completed", "In the selected time range.",
               [Query(f"sum(increase(totem_ticket_completed_total{{{KIOSK}}}[$__range]))")],
               empty="no ticket was completed in the time range")
    board.stat("People waiting", "Sum of the queues the kiosks report now.",
               [Query(f"sum(totem_queue_length{{{KIOSK}}})")],
               thresholds=((None, "green"), (10, "orange"), (20, "red")),
               empty="no kiosk application reports its queue")
    board.stat("Payments approved", "Share approved in the selected time range.",
               [Query(f"sum(increase(totem_payment_processed_total{{{KIOSK},status=\"approved\"}}"
                      f"[$__range])) / sum(increase(totem_payment_processed_total{{{KIOSK}}}"
                      f"[$__range]))")],
               unit="percentunit", thresholds=((None, "red"), (0.75, "orange"),
                                               (0.9, "green")),
               empty="no payment was made in the time range")
    board.timeseries("Tickets per hour", "Created and completed, by service.",
                     [Query(f"sum by (service) (increase(totem_ticket_created_total{{{KIOSK}}}"
                            f"[1h]))", "{{service}} created"),
                      Query(f"sum by (service) (increase(totem_ticket_completed_total"
                            f"{{{KIOSK}}}[1h]))", "{{service}} completed")], minimum=0)
    board.timeseries("Wait time", "Median and 95th percentile wait of completed tickets.",
                     [Query(f"histogram_quantile(0.5, sum by (le) (rate("
                            f"totem_ticket_wait_time_seconds_bucket{{{KIOSK}}}"
                            f"[$__rate_interval])))", "p50"),
                      Query(f"histogram_quantile(0.95, sum by (le) (rate("
                            f"totem_ticket_wait_time_seconds_bucket{{{KIOSK}}}"
                            f"[$__rate_interval])))", "p95")], unit="s", minimum=0)
    board.timeseries("Queue length", "People waiting, as the kiosk application reports.",
                     [Query(f"sum by (store, service) (totem_queue_length{{{KIOSK}}})",
                            "{{store}} {{service}}")], minimum=0)
    board.row("Payments and services")
    board.timeseries("Payments per hour", "By method and status.",
                     [Query(f"sum by (method, status) (increase("
                            f"totem_payment_processed_total{{{KIOSK}}}[1h]))",
                            "{{method}} {{status}}")], minimum=0, stacked=True)
    board.table("Payments by method and status", "In the selected time range.",
                [Query(f"sum by (method, status) (increase("
                       f"totem_payment_processed_total{{{KIOSK}}}[$__range]))")])
    board.timeseries("Amount paid per hour", "Sum of the amounts of payments that "
                     "carried one, by method.",
                     [Query(f"sum by (method) (increase(totem_payment_amount_sum{{{KIOSK}}}"
                            f"[1h]))", "{{method}}")], minimum=0)
    board.bars("Top 5 services", "Most used kiosk services in the selected time range.",
               [Query(f"topk(5, sum by (service) (increase(totem_service_usage_total"
                      f"{{{KIOSK}}}[$__range])))", "{{service}}")])
    board.timeseries("Application errors per hour", "Errors the kiosk application "
                     "reported, by type.",
                     [Query(f"sum by (type) (increase(totem_errors_total{{{KIOSK}}}[1h]))",
                            "{{type}}")], minimum=0)
    return board.build()


# -- Performance ------------------------------------------------------------------------

def performance() -> dm.Dashboard:
    board = Board("totem-performance", "Totem / Performance",
                  "The events API the kiosk application calls, its objectives, and the "
                  "agent's collectors.", ["store", "instance"])
    board.row("Events API")
    board.timeseries("Events API latency", "POST /api/v1/events, from dispatch to the last "
                     "byte (the event is on disk by then). Objective: p95 under 500 ms.",
                     [Query(f"histogram_quantile({q}, sum by (le) (rate("
                            f"http_request_duration_seconds_bucket{{{EVENTS}}}"
                            f"[$__rate_interval])))", f"p{label}")
                      for q, label in (("0.5", "50"), ("0.95", "95"), ("0.99", "99"))],
                     unit="s", minimum=0)
    board.timeseries("Events API error rate", "Share of POST /api/v1/events answered "
                     "with a 5xx (the agent could not store the event). Objective: 0.1%.",
                     [Query(f"(sum by (instance) (rate(http_requests_total{{{EVENTS},"
                            f"code=~\"5..\"}}[$__rate_interval])) or 0 * sum by (instance) "
                            f"(rate(http_requests_total{{{EVENTS}}}[$__rate_interval]))) "
                            f"/ sum by (instance) "
                            f"(rate(http_requests_total{{{EVENTS}}}[$__rate_interval]))",
                            "{{instance}}")], unit="percentunit", minimum=0)
    board.timeseries("Error budget burn (1 h)", "Events API: share of calls failing and "
                     "slower than 500 ms over the last hour, against their objectives "
                     "(rules/slo.rules.yml).",
                     [Query(f"totem_slo:events_api_errors:ratio_rate1h{{{KIOSK}}} / 0.001",
                            "{{instance}} errors (x budget)"),
                      Query(f"totem_slo:events_api_slow:ratio_rate1h{{{KIOSK}}} / 0.05",
                            "{{instance}} slow (x budget)")], minimum=0)
    board.timeseries("Requests by route and answer", "Every route of the agent's HTTP "
                     "server.",
                     [Query(f"sum by (handler, code) (rate(http_requests_total{{{KIOSK}}}"
                            f"[$__rate_interval]))", "{{handler}} {{code}}")],
                     unit="reqps", minimum=0)
    board.timeseries("Events accepted and rejected", "Events per second; rejections by "
                     "reason.",
                     [Query(f"sum(rate(totem_agent_events_accepted_total{{{KIOSK}}}"
                            f"[$__rate_interval]))", "accepted"),
                      Query(f"sum by (reason) (rate(totem_agent_events_rejected_total"
                            f"{{{KIOSK}}}[$__rate_interval]))", "rejected: {{reason}}")],
                     minimum=0)
    board.row("Collectors")
    board.timeseries("Collector durations", "Wall time of each collector's last run "
                     "(a run at its deadline timed out).",
                     [Query(f"max by (collector) (totem_agent_collector_duration_seconds"
                            f"{{{KIOSK}}})", "{{collector}}")], unit="s", minimum=0)
    board.timeseries("Collector failures per hour", "Failed runs by collector and reason "
                     "(error, timeout, skipped).",
                     [Query(f"sum by (collector, reason) (increase("
                            f"totem_agent_collector_failures_total{{{KIOSK}}}[1h]))",
                            "{{collector}} {{reason}}")], minimum=0,
                     empty="no collector has failed since the agents started")
    board.timeseries("remote_write request duration (p95)", "Time to send one batch, per "
                     "destination.",
                     [Query(f"histogram_quantile(0.95, sum by (le, destination) (rate("
                            f"totem_agent_remote_write_request_duration_seconds_bucket"
                            f"{{{KIOSK}}}[$__rate_interval])))", "{{destination}}")],
                     unit="s", empty="no kiosk has sent a remote_write batch")
    return board.build()


BUILDERS: dict[str, Callable[[], dm.Dashboard]] = {
    "fleet-overview.json": fleet,
    "kiosk-detail.json": kiosk,
    "business.json": business,
    "performance.json": performance,
}


def render(board: dm.Dashboard) -> str:
    return json.dumps(board, cls=JSONEncoder, indent=2, sort_keys=True,
                      ensure_ascii=False) + "\n"


def build_all() -> dict[str, str]:
    """{file name: JSON text} of every dashboard."""
    MAY_BE_EMPTY.clear()
    return {name: render(build()) for name, build in BUILDERS.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed files instead of writing them")
    args = parser.parse_args(argv)
    stale = []
    for name, text in build_all().items():
        path = OUT_DIR / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run: .venv/bin/python central/grafana/build.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
