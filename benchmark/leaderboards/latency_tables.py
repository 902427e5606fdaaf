"""Latency tables: every host record with its accuracy gate, the records timed on devices, and the
reported CPU latencies; the cells they share (the gate's verdict, detection's post-processing)."""

from __future__ import annotations

from typing import Any

from benchmark.leaderboards.baselines import METRIC_LABELS, Reported
from benchmark.leaderboards.cells import PIXEL1, Table, fmt_num, timed_model_label
from benchmark.leaderboards.hosts import machine_label
from benchmark.leaderboards.provenance import device_source, latency_source, reported_source
from benchmark.leaderboards.store import record_name


def accuracy_cell(accuracy: dict[str, Any] | None) -> str:
    """The runtime's accuracy gate against eager fp32 (issue 6), or '–' for eager itself."""
    if not accuracy:
        return "–"
    if accuracy.get("note"):
        return str(accuracy["note"])
    if accuracy.get("basis") == "reference":
        return f"{accuracy.get('metric', '?')} {fmt_num(accuracy.get('value'))} (the fp32 reference)"
    parts = [
        f"{accuracy.get('metric', '?')} {fmt_num(accuracy.get('value'))} vs {fmt_num(accuracy.get('reference'))}"
    ]
    if isinstance(accuracy.get("ratio"), int | float):
        parts.append(f"ratio {accuracy['ratio']:.3f}")
    if isinstance(accuracy.get("agreement"), int | float):
        parts.append(f"agree {accuracy['agreement']:.1f}%")
    text = ", ".join(parts)
    verdict = accuracy.get("verdict")  # records before the judging gate carry only ``flagged``
    if verdict in ("fail", "not judged"):
        return f"{text} {verdict.upper()}" + (f" ({accuracy['reason']})" if accuracy.get("reason") else "")
    return text + (" FLAGGED" if accuracy.get("flagged") and verdict is None else "")


def postprocess_cell(value: Any) -> str:
    """Detection's box decoding + NMS and end-to-end p50 (ms), timed apart from the network."""
    if not isinstance(value, dict):
        return "–"
    parts = []
    for key, label in (("decode_nms", "decode+NMS"), ("end_to_end", "end to end")):
        stats = value.get(key)
        if isinstance(stats, dict) and isinstance(stats.get("p50_ms"), int | float):
            parts.append(f"{label} {stats['p50_ms']:.2f}")
    return ", ".join(parts) or "–"


def gated_on_synthetic(record: dict[str, Any]) -> bool:
    """The accuracy gate ran on the embedded generated data (its verdict says nothing of real images)."""
    return bool(record.get("accuracy")) and "synthetic" in str(record.get("input") or "")


def latency_table(latency: list[dict[str, Any]]) -> Table:
    columns = ("model", "task", "host", "runtime", "precision", "layout", "threads", "batch", "p50 (ms)", "p90 (ms)",
               "mean ± std (ms)", "min (ms)", "runs", "tier", "init (ms)", "post-process p50 (ms)", "accuracy vs eager fp32",
               "peak memory (MB)", "source")  # fmt: skip
    rows = []
    for record in latency:
        rows.append((
            timed_model_label(record),
            record["task"],
            machine_label(record),
            record["runtime"],
            record["precision"],
            str(record.get("layout") or "–"),
            str(record["threads"]),
            str(record["batch_size"]),
            fmt_num(record["p50_ms"]),
            fmt_num(record["p90_ms"]),
            f"{fmt_num(record['mean_ms'])} ± {fmt_num(record['std_ms'])}",
            fmt_num(record["min_ms"]),
            str(record["runs"]),
            str(record.get("tier") or "–"),
            fmt_num(record.get("init_ms"), 0),
            postprocess_cell(record.get("postprocess")),
            accuracy_cell(record.get("accuracy")) + (" [synthetic]" if gated_on_synthetic(record) else ""),
            fmt_num(record.get("peak_memory_mb"), 1),
            latency_source(record),
        ))  # fmt: skip
    return Table("latency_measured", columns, tuple(rows), tuple(record_name(r) for r in latency))


def is_device_record(record: dict[str, Any]) -> bool:
    """Timed on another machine by ``bench latency --device`` (its ``target`` block); such rows have
    tables of their own, never mixed with the host's."""
    return bool(record.get("target"))


def target_label(record: dict[str, Any]) -> str:
    """The device as people name it: ``Pixel 7 (Google, gs201)``; the site groups on ``target.model``."""
    target = record.get("target") or {}
    extra = ", ".join(str(target[k]) for k in ("manufacturer", "soc") if target.get(k))
    return f"{target.get('model') or record.get('device') or '?'}" + (f" ({extra})" if extra else "")


def device_latency_table(latency: list[dict[str, Any]]) -> Table:
    """Latency timed on phones and boards, the device as a column."""
    columns = ("device", "abi", "model", "task", "runtime", "precision", "threads", "cpu mask", "delegate (nodes)",
               "p50 (ms)", "mean ± std (ms)", "min (ms)", "runs", "tier", "temp before → after (°C)",
               "accuracy vs eager fp32", "source")  # fmt: skip
    rows = []
    for record in latency:
        target = record["target"]
        delegate = target.get("delegate") or "–"
        if target.get("delegated_nodes") is not None:
            delegate += f" ({target['delegated_nodes']}" + (f"/{target['total_nodes']})" if target.get("total_nodes") else ")")
        if target.get("delegate_fallback"):
            delegate += " FALLBACK to CPU"
        temps = f"{fmt_num(target.get('temp_before_c'), 1)} → {fmt_num(target.get('temp_after_c'), 1)}"
        rows.append((
            target_label(record), str(target.get("abi") or "–"), timed_model_label(record), record["task"],
            record["runtime"], record["precision"], str(record["threads"]), str(target.get("cpu_mask") or "–"), delegate,
            fmt_num(record["p50_ms"]), f"{fmt_num(record['mean_ms'])} ± {fmt_num(record['std_ms'])}",
            fmt_num(record["min_ms"]), str(record["runs"]), str(record.get("tier") or "–"), temps,
            accuracy_cell(record.get("accuracy")) + (" [synthetic]" if gated_on_synthetic(record) else ""),
            device_source(record),
        ))  # fmt: skip
    order = sorted(range(len(rows)), key=lambda i: (rows[i][0], rows[i][2], rows[i][4]))
    names = [record_name(r) for r in latency]
    return Table("latency_devices", columns, tuple(rows[i] for i in order), tuple(names[i] for i in order))


def reported_latency_table(rows: list[Reported]) -> Table:
    columns = ("model", "task", "metric reported", "params", "MAdds", "CPU (ms)", "device", "source")
    out = [
        (row.model, row.task, f"{METRIC_LABELS[row.metric]} {row.value}", row.params or "–", row.madds or "–",
         row.cpu_ms or "–", PIXEL1, reported_source(row))
        for row in rows if row.cpu_ms is not None
    ]  # fmt: skip
    return Table("latency_reported", columns, tuple(out))


INT8_PRECISIONS = ("int8", "uint8")


def latency_summary_table(latency: list[dict[str, Any]]) -> Table:
    """Per host, model and thread count: the fastest fp32 and int8 runtimes (gate not failed), eager, and
    the int8 row's gate. One host per row, so the rows of a host section compare like with like."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in latency:
        key = (machine_label(record), record["task"], timed_model_label(record), record["threads"], record["batch_size"])
        groups.setdefault(key, []).append(record)
    columns = ("host", "model", "task", "threads", "batch", "fastest fp32 p50 (ms)", "fastest int8 p50 (ms)",
               "eager p50 (ms)", "int8 gate vs eager fp32")  # fmt: skip
    rows = []
    for (host, task, model, threads, batch), records in sorted(groups.items()):
        passing = [r for r in records if (r.get("accuracy") or {}).get("verdict") != "fail"]
        fp32 = min((r for r in passing if r["precision"] == "fp32"), key=lambda r: r["p50_ms"], default=None)
        int8 = min((r for r in passing if r["precision"] in INT8_PRECISIONS), key=lambda r: r["p50_ms"], default=None)
        eager = [r for r in records if r["runtime"] == "eager"]
        rows.append((host, model, task, str(threads), str(batch),
                     f"{fmt_num(fp32['p50_ms'])} {fp32['runtime']}" if fp32 else "–",
                     f"{fmt_num(int8['p50_ms'])} {int8['runtime']}" if int8 else "–",
                     fmt_num(max(eager, key=lambda r: str(r["created"]))["p50_ms"]) if eager else "–",
                     (accuracy_cell(int8.get("accuracy")) + (" [synthetic]" if gated_on_synthetic(int8) else ""))
                     if int8 else "–"))  # fmt: skip
    return Table("latency_summary", columns, tuple(rows))
