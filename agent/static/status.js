/* totem-agent status page: polls /health and /api/v1/history and draws the page.
   No library, no network beyond this agent; every text from the agent goes in
   through textContent (never innerHTML). Charts are plain inline SVG. */
"use strict";

(function () {
  var HEALTH_EVERY_MS = 5000;
  var HISTORY_EVERY_MS = 15000;
  var SVG = "http://www.w3.org/2000/svg";
  var W = 600, H = 220, LEFT = 56, RIGHT = 12, TOP = 12, BOTTOM = 28;
  var LINE_STYLES = [["#0b57d0", ""], ["#8a3ffc", "8 4"], ["#b35c00", "2 4"],
                     ["#00796b", "12 4 2 4"]];

  var OVERALL = {
    ok: {symbol: "✓", words: "OK: all good", cls: "state-ok"},
    degraded: {symbol: "!", words: "Degraded: needs attention", cls: "state-degraded"},
    failing: {symbol: "✕", words: "Failing: monitoring is not working",
              cls: "state-failing"},
    unreachable: {symbol: "?", words: "Agent not reachable", cls: "state-unreachable"}
  };
  var CHECK_WORDS = {ok: "OK", degraded: "Degraded", failing: "Failing",
                     pending: "Starting", not_applicable: "Not used"};
  var CHECK_ORDER = {failing: 0, degraded: 1, pending: 2, ok: 3, not_applicable: 4};
  var KIND_NAMES = {collector: "Collector", printer: "Printer",
                    payment: "Payment terminal", process: "Program",
                    remote_write: "Sending to", output: "Output"};
  var PLAIN_NAMES = {collectors: "All collectors", buffer: "Offline buffer",
                     events: "Kiosk events", display: "Display", pushgateway: "Pushgateway",
                     clock: "Clock"};

  var hours = 3;
  var chartFigures = {};

  function $(id) { return document.getElementById(id); }

  function text(el, value) { el.textContent = value == null ? "" : String(value); }

  function el(tag, cls, content) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (content != null) { text(node, content); }
    return node;
  }

  function svg(tag, attrs, content) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (content != null) { node.textContent = String(content); }
    return node;
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600),
        m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    if (d) { return d + " d " + h + " h"; }
    if (h) { return h + " h " + m + " min"; }
    if (m) { return m + " min " + s + " s"; }
    return s + " s";
  }

  function clock(iso) {
    if (!iso) { return ""; }
    var date = new Date(iso);
    if (isNaN(date.getTime())) { return iso; }
    var sameDay = date.toDateString() === new Date().toDateString();
    return sameDay ? date.toLocaleTimeString() : date.toLocaleString();
  }

  function since(iso, now) {
    if (!iso) { return ""; }
    var ago = (now - new Date(iso).getTime()) / 1000;
    return "for " + duration(ago) + " (since " + clock(iso) + ")";
  }

  function checkTitle(name) {
    if (PLAIN_NAMES[name]) { return PLAIN_NAMES[name]; }
    var at = name.indexOf(":");
    if (at > 0) {
      var kind = name.slice(0, at), rest = name.slice(at + 1);
      return (KIND_NAMES[kind] || kind) + " " + rest;
    }
    return name;
  }

  /* ---- health ------------------------------------------------------------------ */

  function renderOverall(report, error) {
    var state = report ? report.status : "unreachable";
    var look = OVERALL[state] || OVERALL.unreachable;
    var header = $("overall");
    header.className = "overall " + look.cls;
    header.setAttribute("data-state", state);
    text($("overall-symbol"), look.symbol);
    text($("overall-words"), look.words);
    document.title = look.words + " – totem-agent";
    if (!report) {
      text($("overall-detail"), "The page cannot reach the agent (" + error +
           "). Is the totem-agent service running?");
      return;
    }
    var problems = Object.keys(report.checks || {}).filter(function (n) {
      var s = report.checks[n].status;
      return s === "failing" || s === "degraded";
    });
    if (!problems.length) {
      text($("overall-detail"), "Every check is fine.");
    } else {
      var first = report.checks[problems[0]];
      // A check's message is already a sentence for a person ("Receipt printer: paper out").
      var what = first.message || (checkTitle(problems[0]) + ": " +
                                   (first.last_error || CHECK_WORDS[first.status]));
      text($("overall-detail"), (problems.length === 1 ? "1 problem: " :
           problems.length + " problems, first: ") + what);
    }
  }

  function renderIdentity(report) {
    text($("id-instance"), report.instance);
    var labels = report.labels || {};
    var parts = Object.keys(labels).map(function (k) {
      return k === "store" ? labels[k] : k + " " + labels[k];
    });
    text($("id-labels"), parts.length ? parts.join(", ") : "not set");
    text($("id-version"), report.version);
    text($("id-uptime"), duration(report.uptime_seconds || 0));
    text($("id-time"), clock(report.time));
  }

  function renderChecks(report) {
    var list = $("checks");
    var checks = report.checks || {};
    var now = report.time ? new Date(report.time).getTime() : Date.now();
    var names = Object.keys(checks).sort(function (a, b) {
      var oa = CHECK_ORDER[checks[a].status], ob = CHECK_ORDER[checks[b].status];
      return (oa === undefined ? 9 : oa) - (ob === undefined ? 9 : ob) || (a < b ? -1 : 1);
    });
    var counts = {};
    var items = names.map(function (name) {
      var check = checks[name];
      counts[check.status] = (counts[check.status] || 0) + 1;
      var bad = check.status === "failing" || check.status === "degraded";
      var item = el("li", "check " + (bad ? "problem" : "quiet"));
      item.setAttribute("data-check", name);
      item.setAttribute("data-status", check.status);
      item.appendChild(el("span", "badge " + check.status,
                          CHECK_WORDS[check.status] || check.status));
      item.appendChild(el("span", "name", checkTitle(name)));
      var message = check.message || (bad ? check.last_error : "");
      if (message) { item.appendChild(el("span", "message", message)); }
      var meta = [];
      if (bad && check.since) { meta.push(CHECK_WORDS[check.status] + " " + since(check.since, now)); }
      if (check.last_error && check.last_error !== message) {
        meta.push("Last error" + (check.last_error_at ? " at " + clock(check.last_error_at) : "") +
                  ": " + check.last_error);
      }
      if (meta.length) { item.appendChild(el("span", "meta", meta.join(". "))); }
      return item;
    });
    list.replaceChildren.apply(list, items);
    var summary = Object.keys(CHECK_WORDS).filter(function (s) { return counts[s]; })
      .map(function (s) { return counts[s] + " " + CHECK_WORDS[s].toLowerCase(); });
    text($("checks-summary"), names.length + " checks: " + summary.join(", ") + ".");
  }

  function pollHealth() {
    fetch("/health", {cache: "no-store", headers: {Accept: "application/json"}})
      .then(function (response) {
        // 503 means failing and still carries the report.
        if (response.status !== 200 && response.status !== 503) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (report) {
        renderOverall(report);
        renderIdentity(report);
        renderChecks(report);
        text($("updated"), new Date().toLocaleTimeString());
      })
      .catch(function (error) { renderOverall(null, error.message || String(error)); })
      .then(function () { setTimeout(pollHealth, HEALTH_EVERY_MS); });
  }

  /* ---- history charts ------------------------------------------------------------ */

  function formatValue(value, unit) {
    var rounded = Math.abs(value) >= 100 ? Math.round(value) :
      Math.round(value * 10) / 10;
    return unit === "%" ? rounded + " %" : rounded + " " + unit;
  }

  function chartFigure(chart) {
    var figure = chartFigures[chart.id];
    if (!figure) {
      figure = el("figure", "chart");
      figure.setAttribute("tabindex", "0");
      figure.setAttribute("data-chart", chart.id);
      var caption = el("figcaption");
      caption.appendChild(el("span", "title", chart.title));
      caption.appendChild(el("span", "latest"));
      figure.appendChild(caption);
      chartFigures[chart.id] = figure;
      $("charts").appendChild(figure);
    }
    return figure;
  }

  function drawChart(chart, data) {
    var figure = chartFigure(chart);
    var old = figure.querySelector("svg, .empty");
    if (old) { figure.removeChild(old); }
    var latest = figure.querySelector(".latest");
    var series = chart.series || [];
    if (!series.length) {
      text(latest, "");
      figure.setAttribute("aria-label", chart.title + ": no history yet");
      figure.appendChild(el("p", "empty", "No history yet"));
      return;
    }
    var all = [];
    series.forEach(function (s) { s.points.forEach(function (p) { all.push(p[1]); }); });
    var lo = Math.min.apply(null, all), hi = Math.max.apply(null, all);
    var top = chart.max != null ? chart.max : Math.max(1, hi * 1.15);
    var x0 = data.from, x1 = data.to;
    function x(t) { return LEFT + (t - x0) / (x1 - x0) * (W - LEFT - RIGHT); }
    function y(v) { return TOP + (1 - Math.min(v, top) / top) * (H - TOP - BOTTOM); }

    var id = "chart-" + chart.id;
    var root = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img",
                           "aria-labelledby": id + "-title " + id + "-desc",
                           preserveAspectRatio: "none"});
    var lastValues = series.map(function (s) {
      return (series.length > 1 ? s.name + " " : "") +
        formatValue(s.points[s.points.length - 1][1], chart.unit);
    });
    var desc = chart.title + " over the last " + data.hours + " h: now " +
      lastValues.join(", ") + "; lowest " + formatValue(lo, chart.unit) + ", highest " +
      formatValue(hi, chart.unit) + ".";
    root.appendChild(svg("title", {id: id + "-title"}, chart.title));
    root.appendChild(svg("desc", {id: id + "-desc"}, desc));
    [0, 0.5, 1].forEach(function (f) {
      var yy = y(top * f);
      root.appendChild(svg("line", {x1: LEFT, x2: W - RIGHT, y1: yy, y2: yy,
                                    stroke: "#c8c8c8", "stroke-width": 1}));
      root.appendChild(svg("text", {x: LEFT - 6, y: yy + 5, "text-anchor": "end",
                                    "font-size": 14, fill: "#333"},
                           formatValue(top * f, chart.unit === "%" ? "%" : "").trim()));
    });
    root.appendChild(svg("text", {x: LEFT, y: H - 8, "font-size": 14, fill: "#333"},
                         clock(new Date(x0).toISOString())));
    root.appendChild(svg("text", {x: W - RIGHT, y: H - 8, "font-size": 14, fill: "#333",
                                  "text-anchor": "end"}, "now"));
    var total = 0;
    series.forEach(function (s, i) {
      var style = LINE_STYLES[i % LINE_STYLES.length];
      var d = "", prev = null, gap = Math.max(s.step_ms || 0, 1) * 3;
      s.points.forEach(function (p) {
        d += (prev === null || p[0] - prev > gap ? "M" : "L") +
          x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1) + " ";
        prev = p[0];
      });
      var path = svg("path", {d: d.trim(), fill: "none", stroke: style[0], "stroke-width": 3,
                              "stroke-linejoin": "round", "data-series": s.name,
                              "data-points": s.points.length});
      if (style[1]) { path.setAttribute("stroke-dasharray", style[1]); }
      root.appendChild(path);
      var last = s.points[s.points.length - 1];
      root.appendChild(svg("circle", {cx: x(last[0]).toFixed(1), cy: y(last[1]).toFixed(1), r: 5,
                                      fill: style[0]}));
      total += s.points.length;
      if (series.length > 1) {
        root.appendChild(svg("text", {x: LEFT + 8, y: TOP + 16 + 16 * i, "font-size": 14,
                                      fill: style[0]}, s.name));
      }
    });
    root.setAttribute("data-points", total);
    figure.removeAttribute("aria-label");
    text(latest, "now " + lastValues.join(", "));
    figure.appendChild(root);
  }

  function renderHistory(data) {
    var note = $("history-note");
    if (!data.available || !data.charts.length) {
      text(note, data.reason || "No history yet.");
      (data.charts || []).forEach(function (c) { drawChart(c, data); });
      return;
    }
    text(note, data.reason ? data.reason : "The last " + data.hours + " h, from the agent's " +
         "buffer; updated every " + HISTORY_EVERY_MS / 1000 + " s.");
    data.charts.forEach(function (c) { drawChart(c, data); });
  }

  var historyTimer = null;
  function pollHistory() {
    clearTimeout(historyTimer);
    fetch("/api/v1/history?hours=" + hours, {cache: "no-store"})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(renderHistory)
      .catch(function (error) {
        text($("history-note"), "No history yet: " + (error.message || error));
      })
      .then(function () { historyTimer = setTimeout(pollHistory, HISTORY_EVERY_MS); });
  }

  function setupHours() {
    Array.prototype.forEach.call(document.querySelectorAll(".hours button"), function (b) {
      b.addEventListener("click", function () {
        hours = Number(b.getAttribute("data-hours"));
        Array.prototype.forEach.call(document.querySelectorAll(".hours button"), function (o) {
          o.setAttribute("aria-pressed", o === b ? "true" : "false");
        });
        pollHistory();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupHours();
    pollHealth();
    pollHistory();
  });
})();
