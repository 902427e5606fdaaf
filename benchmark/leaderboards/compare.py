"""The site's headline tables and its compare view.

Each task page opens with the task's headline table (``headline.py``: one row per model), every row
with a stable id (``<page>.html#<row id>``, the same id as in the markdown page). ``compare.html``
puts two to five models of one task side by side: one column per model, one row per headline column.
The choice lives in the address (``compare.html#classification:id1,id2``), so a comparison can be
linked to; the page is static, its data embedded, and it works offline from ``file://``.
"""

from __future__ import annotations

import html
import json

from benchmark.leaderboards.cells import TASK_TITLES, Table
from benchmark.leaderboards.headline import COLUMNS, HeadlineRow

MAX_COMPARED = 5
RECORDS_URL = "../records"  # the site lives in leaderboards/site/, the records in leaderboards/records/


def notes_html(row: HeadlineRow) -> str:
    """The row's sources as a small list, each with a link to its record."""
    items = []
    for note in row.notes:
        link = f' <a href="{RECORDS_URL}/{html.escape(note.record)}">record</a>' if note.record else ""
        items.append(f"<li>{html.escape(note.text)}{link}</li>")
    return f"<details><summary>{len(row.notes)} sources</summary><ul>{''.join(items)}</ul></details>" if items else "–"


def headline_html(task: str, rows: list[HeadlineRow]) -> str:
    """The task's headline table; each row has its id and a link to itself and to the compare view."""
    head = "".join(f"<th>{html.escape(column)}</th>" for column in COLUMNS)
    body = []
    for row in rows:
        model = (f'<a class="anchor" href="#{row.anchor}" title="link to this row">¶</a> {html.escape(row.cells[0])}'
                 f' <a class="cmp" href="compare.html#{task}:{row.anchor}">compare</a>')  # fmt: skip
        cells = [model, *(html.escape(cell) for cell in row.cells[1:-1]), notes_html(row)]
        body.append(f'<tr id="{row.anchor}">' + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return (f'<h2>Headline</h2><table id="headline"><thead><tr>{head}</tr></thead><tbody>\n'
            + "\n".join(body) + "\n</tbody></table>")  # fmt: skip


def summary_html(table: Table) -> str:
    """The latency page's headline: per host and model, the fastest fp32 and int8 runtimes."""
    head = "".join(f"<th>{html.escape(column)}</th>" for column in table.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in table.rows)
    return (f'<h2>Headline: the fastest runtimes per host</h2><table id="headline"><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table>")  # fmt: skip


def compare_data(headlines: dict[str, list[HeadlineRow]]) -> str:
    """The headline rows of every task as JSON for the compare page (``</`` escaped for a script tag)."""
    data = {
        task: [{"id": row.anchor, "cells": list(row.cells[:-1]), "sources": len(row.notes)} for row in rows]
        for task, rows in headlines.items()
    }
    return json.dumps({"columns": list(COLUMNS[:-1]), "tasks": data}, sort_keys=True).replace("</", "<\\/")


COMPARE_SCRIPT = """(function(){
var data=JSON.parse(document.getElementById('compare-data').textContent);
var taskSelect=document.getElementById('task');var list=document.getElementById('models');
var out=document.getElementById('comparison');var message=document.getElementById('message');var MAX=__MAX__;
Object.keys(data.tasks).forEach(function(t){var o=document.createElement('option');o.value=t;o.textContent=t;taskSelect.appendChild(o);});
function chosen(){return Array.prototype.filter.call(list.querySelectorAll('input'),function(i){return i.checked;}).map(function(i){return i.value;});}
function render(){var task=taskSelect.value;var ids=chosen();var rows=data.tasks[task];
history.replaceState(null,'','#'+task+':'+ids.join(','));
Array.prototype.forEach.call(list.querySelectorAll('input'),function(i){i.disabled=!i.checked&&ids.length>=MAX;});
out.innerHTML='';if(ids.length<2){message.textContent='Pick 2 to '+MAX+' models.';return;}
message.textContent=ids.length+' models side by side.';
var picked=ids.map(function(id){return rows.filter(function(r){return r.id===id;})[0];});
var head=document.createElement('tr');head.appendChild(document.createElement('th'));
picked.forEach(function(r){var th=document.createElement('th');var a=document.createElement('a');
a.href=task+'.html#'+r.id;a.textContent=r.cells[0];th.appendChild(a);head.appendChild(th);});out.appendChild(head);
data.columns.slice(1).forEach(function(column,k){var tr=document.createElement('tr');var th=document.createElement('th');
th.textContent=column;tr.appendChild(th);picked.forEach(function(r){var td=document.createElement('td');
td.textContent=r.cells[k+1];tr.appendChild(td);});out.appendChild(tr);});}
function fill(task,ids){taskSelect.value=task;list.innerHTML='';data.tasks[task].forEach(function(r){
var label=document.createElement('label');var box=document.createElement('input');box.type='checkbox';box.value=r.id;
box.checked=ids.indexOf(r.id)>=0;box.addEventListener('change',render);label.appendChild(box);
label.appendChild(document.createTextNode(' '+r.cells[0]));list.appendChild(label);});render();}
taskSelect.addEventListener('change',function(){fill(taskSelect.value,[]);});
var hash=decodeURIComponent(location.hash.slice(1)).split(':');var task=data.tasks[hash[0]]?hash[0]:Object.keys(data.tasks)[0];
var ids=hash.length>1&&hash[1]?hash[1].split(',').slice(0,MAX):[];fill(task,ids);})();""".replace("__MAX__", str(MAX_COMPARED))

COMPARE_STYLE = """#models{columns:3;font-size:13px;margin:.6em 0}#models label{display:block}
#comparison th{background:#f4f4f4;cursor:default;position:static}#comparison td,#comparison th{min-width:10em}"""


def compare_page(headlines: dict[str, list[HeadlineRow]], nav: str, style: str) -> str:
    """The compare view: pick a task, then two to five of its models."""
    tasks = ", ".join(html.escape(TASK_TITLES.get(task, task)) for task in headlines)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Compare models</title>
<!-- Generated by `bench leaderboard` from leaderboards/records/; do not edit. -->
<style>{style}{COMPARE_STYLE}</style></head>
<body><nav>{nav}</nav><h1>Compare models</h1>
<p class="note">The headline numbers of two to {MAX_COMPARED} models of one task ({tasks}) side by side. The
address keeps the choice, so a comparison can be linked to. Sources: each model's row on its task page.</p>
<label>task <select id="task"></select></label><div id="models"></div>
<p id="message"></p><table id="comparison"></table>
<script type="application/json" id="compare-data">{compare_data(headlines)}</script>
<script>{COMPARE_SCRIPT}</script></body></html>
"""
