"""The leaderboard site: records -> static HTML pages (index, one per task, latency) with a sortable,
filterable table and interactive plotly charts, that open from ``file://`` with no network.

``generate_site(records)`` returns ``{relative path: bytes}`` like ``pages.generate``: the plotly.js
bundle written once (``plotly.min.js``) and pages that reference it, so each page stays small. The
points are the PNGs' (``plots.latency_points``, ``plots.host_label``, the fixed runtime colours) and
the cells use the tables' formatting (tables.py), so the site, the PNGs and the markdown agree. Bytes
are deterministic: no timestamps, fixed plotly div ids, rows in the tables' sort order.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from benchmark.leaderboards.baselines import BASELINES, METRIC_LABELS, Baselines
from benchmark.leaderboards.compare import compare_page, headline_html, summary_html
from benchmark.leaderboards.headline import HeadlineRow, headline_rows
from benchmark.leaderboards.latency_tables import latency_summary_table
from benchmark.leaderboards.plots import (
    REPORTED_COLOUR,
    data_kind,
    host_label,
    latency_points,
    pareto_front,
    runtime_colours,
)
from benchmark.leaderboards.store import TASK_METRICS
from benchmark.leaderboards.tables import (
    PIXEL1,
    TASK_TITLES,
    TASKS,
    accuracy_cell,
    fmt_num,
    gated_on_synthetic,
    latency_source,
    reported_source,
    split_records,
    timed_model_label,
    width_of,
)

SITE_DIR = "site"
PLOTLY_ASSET = "plotly.min.js"
SCREENSHOT = "site-latency.png"  # in leaderboards/plots/, by `bench leaderboard --screenshot`
SCREENSHOT_PREFIX = "site-"  # every screenshot of the site in leaderboards/plots/ starts so
COLUMNS = ("task", "model", "backbone", "width", "resolution", "runtime", "precision", "threads",
           "host or device", "data", "p50 (ms)", "p90 (ms)", "metric (%)", "source")  # fmt: skip
FILTERS = ("task", "runtime", "host or device", "data")
NUMERIC = {"width", "resolution", "threads", "p50 (ms)", "p90 (ms)", "metric (%)"}


# -- points: one per plotted marker, one table row each -------------------------------------------


def latency_command(record: dict[str, Any]) -> str:
    """The ``bench latency`` call that gives this record's settings (rebuilt from its fields)."""
    parts = ["bench latency", f"--task {record['task']}", f"--backbone {record['backbone']}",
             f"--width {width_of(record)}", f"--resolution {record['resolution']}", f"--runtime {record['runtime']}",
             f"--threads {record['threads']}", f"--batch-size {record['batch_size']}"]  # fmt: skip
    if record.get("tier"):
        parts.append(f"--tier {record['tier']}")
    weights = record.get("weights") or {}
    if weights.get("source") == "tflite" and weights.get("file"):
        parts.append(f"--tflite {weights['file']}")
    return " ".join(parts)


def metric_text(task: str, record: dict[str, Any], value: float) -> str:
    """``mAP 23.01 % (95% CI 21.2–24.9)`` from the accuracy record (its CI when it has one)."""
    metric = TASK_METRICS[task]
    ci = (record.get("ci95") or {}).get(metric)
    interval = f"95% CI {fmt_num(ci[0])}–{fmt_num(ci[1])}" if isinstance(ci, list) and len(ci) == 2 else "no CI in the record"
    return f"{METRIC_LABELS[metric]} {fmt_num(value)} % ({interval})"


def latency_row(record: dict[str, Any], metric: str = "–") -> dict[str, str]:
    return {
        "task": record["task"], "model": timed_model_label(record), "backbone": record["backbone"],
        "width": f"{width_of(record)}", "resolution": str(record["resolution"]), "runtime": record["runtime"],
        "precision": record["precision"], "threads": str(record["threads"]), "host or device": host_label(record),
        "data": "synthetic" if gated_on_synthetic(record) or "synthetic" in str(record.get("input") or "") else "real",
        "p50 (ms)": fmt_num(record["p50_ms"]), "p90 (ms)": fmt_num(record["p90_ms"]), "metric (%)": metric,
        "source": latency_source(record),
    }  # fmt: skip


def hover_lines(record: dict[str, Any], row: dict[str, str], accuracy: str | None) -> list[str]:
    env = record["environment"]
    lines = [f"<b>{row['model']}</b> · {row['runtime']} ({row['precision']})", f"host/device: {row['host or device']}",
             f"threads {row['threads']}, batch {record['batch_size']}: p50 {row['p50 (ms)']} ms, p90 {row['p90 (ms)']} ms"]  # fmt: skip
    if accuracy:
        lines.append(accuracy)
    lines += [f"gate vs eager fp32: {accuracy_cell(record.get('accuracy'))}", f"commit {env.get('commit', '?')}",
              f"command: {latency_command(record)}"]  # fmt: skip
    return lines


def task_points(task: str, kinds: dict[str, list[dict[str, Any]]], baselines: Baselines) -> list[dict[str, Any]]:
    """A task page's points: measured latency records paired with an accuracy, then the reported rows
    with a CPU latency (the paper's device)."""
    results = [r for r in kinds["result"] if r["task"] == task]
    evaluations = [r for r in kinds["evaluation"] if r["task"] == task]
    points = []
    for point in latency_points(task, results, kinds["latency"], evaluations, baselines):
        record, paired = point["latency"], point["accuracy_record"]
        accuracy = metric_text(task, paired, point["accuracy"])
        row = latency_row(record, fmt_num(point["accuracy"]))
        row["data"] = data_kind(paired["dataset"])
        row["model"] = point["label"]
        where = f"as reported by {paired['reported']}" if paired.get("reported") else f"on {row['data']} data"
        lines = hover_lines(record, row, f"{accuracy}, {where}")
        points.append({"row": row, "x": float(record["p50_ms"]), "y": point["accuracy"], "reported": False,
                       "hover": "<br>".join(html.escape(line, quote=False).replace("&lt;b&gt;", "<b>")
                                            .replace("&lt;/b&gt;", "</b>") for line in lines)})  # fmt: skip
    metric = METRIC_LABELS[TASK_METRICS[task]]
    for reported in baselines.for_task(task):
        if reported.cpu_ms is None or reported.value is None:
            continue
        row = {"task": task, "model": reported.model, "backbone": "–", "width": "–", "resolution": "–",
               "runtime": "reported", "precision": "–", "threads": "1", "host or device": f"{PIXEL1} (reported)",
               "data": "real", "p50 (ms)": fmt_num(float(reported.cpu_ms)), "p90 (ms)": "–",
               "metric (%)": fmt_num(float(reported.value)), "source": reported_source(reported)}  # fmt: skip
        lines = [f"<b>{html.escape(reported.model)}</b> (reported)", f"device: {PIXEL1}, 1 big core",
                 f"latency {row['p50 (ms)']} ms (as printed; no p90)", f"{metric} {row['metric (%)']} % on {reported.dataset} (no CI printed)",
                 html.escape(reported_source(reported))]  # fmt: skip
        points.append({"row": row, "x": float(reported.cpu_ms), "y": float(reported.value), "reported": True,
                       "hover": "<br>".join(lines)})  # fmt: skip
    return points


# -- charts ---------------------------------------------------------------------------------------


def _figure_html(figure, div_id: str) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                          config={"displaylogo": False, "responsive": True})  # fmt: skip


def pareto_chart(title: str, points: list[dict[str, Any]], ylabel: str, colours: dict[str, str], div_id: str) -> str:
    """Accuracy vs p50 latency for one host/device and data kind: one trace per runtime, the front as a line."""
    import plotly.graph_objects as go

    figure = go.Figure()
    front = pareto_front((p["x"], p["y"]) for p in points)
    if len(front) > 1:
        figure.add_trace(go.Scatter(x=[p[0] for p in front], y=[p[1] for p in front], mode="lines", name="Pareto front",
                                    line={"color": "#999999", "shape": "hv", "width": 1}, hoverinfo="skip"))  # fmt: skip
    for runtime in sorted({p["row"]["runtime"] for p in points}):
        members = [p for p in points if p["row"]["runtime"] == runtime]
        reported = runtime == "reported"
        figure.add_trace(go.Scatter(
            x=[p["x"] for p in members], y=[p["y"] for p in members], mode="markers",
            name="reported (paper)" if reported else runtime, hovertext=[p["hover"] for p in members], hoverinfo="text",
            marker={"color": REPORTED_COLOUR if reported else colours[runtime], "size": 10 if reported else 9,
                    "symbol": "diamond-open" if reported else "circle", "line": {"width": 2 if reported else 0}},
        ))  # fmt: skip
    figure.update_layout(title={"text": html.escape(title)}, height=420, margin={"l": 60, "r": 20, "t": 50, "b": 50},
                         xaxis={"title": {"text": "p50 latency (ms, log scale)"}, "type": "log"},
                         yaxis={"title": {"text": ylabel}}, legend={"title": {"text": "runtime"}},
                         template="plotly_white", hoverlabel={"align": "left"})  # fmt: skip
    return _figure_html(figure, div_id)


def latency_chart(host: str, rows: list[tuple[dict[str, Any], dict[str, str]]], colours: dict[str, str], div_id: str) -> str:
    """p50 per model on one host/device, a marker per runtime with a p90 whisker (log ms)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    categories = sorted({f"{r['task']} {row['model']} b{r['batch_size']} t{r['threads']}" for r, row in rows})
    for runtime in sorted({row["runtime"] for _, row in rows}):
        members = [(r, row) for r, row in rows if row["runtime"] == runtime]
        figure.add_trace(go.Scatter(
            x=[float(r["p50_ms"]) for r, _ in members],
            y=[f"{r['task']} {row['model']} b{r['batch_size']} t{r['threads']}" for r, row in members],
            error_x={"type": "data", "symmetric": False, "array": [float(r["p90_ms"]) - float(r["p50_ms"]) for r, _ in members],
                     "arrayminus": [0.0] * len(members), "thickness": 1, "width": 3},
            mode="markers", name=runtime, marker={"color": colours[runtime], "size": 9},
            hovertext=["<br>".join(html.escape(line, quote=False).replace("&lt;b&gt;", "<b>").replace("&lt;/b&gt;", "</b>")
                                   for line in hover_lines(r, row, None)) for r, row in members],
            hoverinfo="text",
        ))  # fmt: skip
    figure.update_layout(title={"text": html.escape(f"p50 latency on {host} (whisker: p90)")},
                         height=max(380, 160 + 26 * len(categories)), margin={"l": 330, "r": 20, "t": 50, "b": 50},
                         xaxis={"title": {"text": "latency (ms, log scale)"}, "type": "log"},
                         yaxis={"title": {"text": "model"}, "categoryorder": "array", "categoryarray": categories[::-1]},
                         legend={"title": {"text": "runtime"}}, template="plotly_white", hoverlabel={"align": "left"})  # fmt: skip
    return _figure_html(figure, div_id)


# -- pages ----------------------------------------------------------------------------------------

STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1400px;color:#222}
nav a{margin-right:1em}table{border-collapse:collapse;font-size:12px;width:100%}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4;cursor:pointer;position:sticky;top:0}th[data-dir=asc]::after{content:" ▲"}
th[data-dir=desc]::after{content:" ▼"}.filters{margin:.8em 0}.filters label{margin-right:1em}
.chart{border:1px solid #eee;margin:.6em 0}.note{color:#555;font-size:13px}"""

SCRIPT = """(function(){
var table=document.getElementById('records');var body=table.tBodies[0];
var selects=document.querySelectorAll('select[data-column]');var search=document.getElementById('search');
function apply(){var shown=0;Array.prototype.forEach.call(body.rows,function(row){var ok=true;
selects.forEach(function(s){if(s.value&&row.cells[+s.dataset.column].textContent!==s.value)ok=false;});
if(search.value&&row.textContent.toLowerCase().indexOf(search.value.toLowerCase())<0)ok=false;
row.hidden=!ok;if(ok)shown++;});document.getElementById('shown').textContent=shown;}
selects.forEach(function(s){s.addEventListener('change',apply);});search.addEventListener('input',apply);
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){th.addEventListener('click',function(){
var dir=th.dataset.dir==='asc'?'desc':'asc';Array.prototype.forEach.call(table.tHead.rows[0].cells,function(c){delete c.dataset.dir;});
th.dataset.dir=dir;var numeric=th.dataset.numeric==='1';var rows=Array.prototype.slice.call(body.rows);
rows.sort(function(a,b){var x=a.cells[i].textContent,y=b.cells[i].textContent;
var r=numeric?((parseFloat(x)||-Infinity)-(parseFloat(y)||-Infinity)):x.localeCompare(y);return dir==='asc'?r:-r;});
rows.forEach(function(r){body.appendChild(r);});});});apply();})();"""


def nav_links() -> str:
    return " ".join(f'<a href="{name}.html">{html.escape(TASK_TITLES.get(name, name.title()))}</a>'
                    for name in ("index", *TASKS, "latency", "compare"))  # fmt: skip


def page(title: str, intro: str, charts: list[str], rows: list[dict[str, str]], top: str = "") -> str:
    links = nav_links()
    filters = []
    for column in FILTERS:
        index = COLUMNS.index(column)
        values = sorted({row[column] for row in rows})
        options = "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in values)
        filters.append(f'<label>{column} <select data-column="{index}"><option value="">all</option>{options}</select></label>')
    head = "".join(f'<th data-numeric="{int(c in NUMERIC)}">{html.escape(c)}</th>' for c in COLUMNS)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(row[c])}</td>" for c in COLUMNS) + "</tr>" for row in rows)
    chart_html = "\n".join(f'<div class="chart">{chart}</div>' for chart in charts) or "<p>No records to plot yet.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<!-- Generated by `bench leaderboard` from leaderboards/records/; do not edit. -->
<script src="{PLOTLY_ASSET}" charset="utf-8"></script><style>{STYLE}</style></head>
<body><nav>{links}</nav><h1>{html.escape(title)}</h1><p class="note">{intro}</p>
{top}{chart_html}
<h2>Records (<span id="shown">{len(rows)}</span> of {len(rows)} shown)</h2>
<div class="filters">{"".join(filters)}<label>search <input id="search" type="search"></label></div>
<table id="records"><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table>
<script>{SCRIPT}</script></body></html>
"""


def task_page(task: str, kinds: dict[str, list[dict[str, Any]]], baselines: Baselines,
              headline: list[HeadlineRow]) -> tuple[str, int]:
    points = task_points(task, kinds, baselines)
    colours = runtime_colours(p["row"]["runtime"] for p in points)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for point in points:
        groups.setdefault((point["row"]["host or device"], point["row"]["data"]), []).append(point)
    ylabel = f"{METRIC_LABELS[TASK_METRICS[task]]} (%)"
    charts = [pareto_chart(f"{host}, {kind} data", members, ylabel, colours, f"{task}-chart-{index}")
              for index, ((host, kind), members) in enumerate(sorted(groups.items()))]  # fmt: skip
    intro = ("The headline table: one row per model, each with a link of its own (¶) and to the compare view. "
             "Then accuracy vs p50 latency, one chart per host or device: each point is a latency record paired "
             "with the real-data accuracy of the weights it timed (its runtime's gate, else the evaluation); "
             "hover for the record. Grey line: the Pareto front. Diamonds: reported by the paper on its own "
             "device. A network with no measured accuracy (timed with fresh weights) is plotted in fp32 at the accuracy its source reports, in a chart of its own (its data: reported). Runs on the embedded synthetic data are not plotted here (see the markdown pages' smoke runs).")  # fmt: skip
    return page(f"{TASK_TITLES[task]} leaderboard", html.escape(intro), charts, [p["row"] for p in points],
                headline_html(task, headline) + "<h2>Accuracy vs latency</h2>"), len(points)  # fmt: skip


def latency_page(kinds: dict[str, list[dict[str, Any]]]) -> tuple[str, int]:
    rows = [(record, latency_row(record)) for record in kinds["latency"]]
    colours = runtime_colours(row["runtime"] for _, row in rows)
    hosts: dict[str, list] = {}
    for record, row in rows:
        hosts.setdefault(row["host or device"], []).append((record, row))
    charts = [latency_chart(host, members, colours, f"latency-chart-{index}")
              for index, (host, members) in enumerate(sorted(hosts.items()))]  # fmt: skip
    intro = ("The fastest fp32 and int8 runtimes per host and model, then every latency record, one chart per "
             "host or device (timings of two machines never share an axis), one colour per runtime; hover for the record.")
    summary = latency_summary_table([record for record in kinds["latency"] if not record.get("target")])
    return (page("Latency leaderboard", html.escape(intro), charts, [row for _, row in rows], summary_html(summary)
                 + "<h2>Every record</h2>"), len(rows))  # fmt: skip


def index_page(counts: dict[str, int], kinds: dict[str, list[dict[str, Any]]]) -> str:
    items = "".join(f'<li><a href="{name}.html">{html.escape(TASK_TITLES.get(name, "Latency"))}</a>: '
                    f"{counts[name]} plotted records</li>" for name in (*TASKS, "latency"))  # fmt: skip
    total = sum(len(v) for v in kinds.values())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Mobile vision benchmark leaderboards</title>
<!-- Generated by `bench leaderboard` from leaderboards/records/; do not edit. -->
<style>{STYLE}</style></head><body><h1>Mobile vision benchmark leaderboards</h1>
<p class="note">Generated from {total} records in <code>leaderboards/records/</code> by <code>bench leaderboard</code>
(the same records and code as the markdown tables in <code>leaderboards/</code>). Works offline.</p>
<ul>{items}<li><a href="compare.html">Compare models</a>: two to five models of a task side by side</li></ul></body></html>
"""


def is_screenshot(name: str) -> bool:
    """A PNG taken of the site in a browser (not drawn from the records, so not checked by ``--check``)."""
    return name.startswith(SCREENSHOT_PREFIX) and name.endswith(".png")


def is_site_file(name: str) -> bool:
    """Files ``generate_site`` owns in the site folder (anything else there is left alone)."""
    return "/" not in name and name.endswith((".html", ".js"))


def plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode("utf-8")


def generate_site(records: Sequence[dict[str, Any]], baselines: Baselines = BASELINES) -> dict[str, bytes]:
    """Every site file, as ``{path relative to the site folder: bytes}``."""
    kinds = split_records(records)
    files: dict[str, bytes] = {PLOTLY_ASSET: plotly_js()}
    counts = {}
    headlines = {task: headline_rows(task, kinds, baselines) for task in TASKS}
    for task in TASKS:
        text, counts[task] = task_page(task, kinds, baselines, headlines[task])
        files[f"{task}.html"] = text.encode()
    files["compare.html"] = compare_page(headlines, nav_links(), STYLE).encode()
    text, counts["latency"] = latency_page(kinds)
    files["latency.html"] = text.encode()
    files["index.html"] = index_page(counts, kinds).encode()
    return dict(sorted(files.items()))
