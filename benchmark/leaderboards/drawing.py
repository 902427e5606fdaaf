"""Drawing the leaderboard plots: one deterministic matplotlib renderer for the specs plots.py builds.

Plots are drawn with matplotlib's Agg backend under fixed rc settings (DejaVu Sans, fixed size and
dpi) with no software/date metadata. Each PNG carries the SHA-256 of the plotted data in a text
chunk, so ``--check`` can tell a plot drawn from other data from one drawn from the same data by
another matplotlib/freetype version.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import struct
from collections.abc import Iterable
from typing import Any

PNG_HASH_KEY = "leaderboard-data-sha256"
# Bumped when the drawing code changes, so a plot redrawn differently counts as changed.
PLOT_STYLE_VERSION = "2"
REPORTED_COLOUR = "#777777"


def pareto_front(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both latency (lower) and accuracy (higher), by latency."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "legend.fontsize": 6.5,
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "path.simplify": False,
    "svg.hashsalt": "leaderboard",
}
# Series that are not runtimes (reported sources, datasets): Tol's muted scheme, in order.
_PALETTE = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499"]


def spec_digest(spec: dict[str, Any]) -> str:
    text = json.dumps({"style": PLOT_STYLE_VERSION, "spec": spec}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def render(spec: dict[str, Any]) -> bytes:
    """Draw a plot spec to PNG bytes, the same bytes for the same spec on one installation.

    Drawing is the slow part of a regeneration, and a spec fully determines its bytes, so
    results are memoised by the spec (``render_cached.cache_clear()`` forgets them).
    """
    return render_cached(json.dumps(spec, sort_keys=True))


@functools.lru_cache(maxsize=64)
def render_cached(spec_json: str) -> bytes:
    spec = json.loads(spec_json)
    import matplotlib
    import matplotlib.style
    from cycler import cycler
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context():
        # Defaults first, so a user's matplotlibrc cannot change the bytes.
        matplotlib.style.use("default")
        matplotlib.rcParams.update(_RC)
        matplotlib.rcParams["axes.prop_cycle"] = cycler(color=_PALETTE)
        panels = spec["panels"]
        if spec["kind"] == "barh":
            heights = [0.9 + 0.16 * len(p["categories"]) * max(1, len(p["groups"])) ** 0.5 for p in panels] or [2.0]
            figure = Figure(figsize=(11, min(1.0 + sum(heights), 60)), dpi=100)
            _draw_barh(figure, spec, heights)
        elif spec["kind"] == "pareto":
            figure = Figure(figsize=(12, 1.0 + 4.2 * max(1, len(panels))), dpi=100)
            _draw_pareto(figure, spec)
        else:
            figure = Figure(figsize=(12, 1.0 + 4.2 * max(1, len(panels))), dpi=100)
            _draw_scatter(figure, spec)
        FigureCanvasAgg(figure)
        buffer = io.BytesIO()
        figure.savefig(
            buffer, format="png", dpi=100, metadata={"Software": None, PNG_HASH_KEY: spec_digest(spec)}
        )
    return buffer.getvalue()


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _spread_labels(ax, texts: list) -> None:
    """Move point labels apart with leader lines (adjustText), so no two overlap."""
    if len(texts) < 2:
        return
    from adjustText import adjust_text

    adjust_text(texts, ax=ax, arrowprops={"arrowstyle": "-", "color": "#888888", "lw": 0.4})


def _log_x(ax) -> None:
    """A log latency/MAdds axis with plain numbers (2, 5, 10, 20 ...) and no crowded minor labels."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _key(ax, lines: list[str]) -> None:
    """The numbered key beside a panel, outside its data, in the figure's right-hand strip that the
    layout keeps free (``_beside``)."""
    text = ax.text(1.02, 1.0, "\n".join(lines), transform=ax.transAxes, va="top", ha="left", fontsize=6,
                   family="DejaVu Sans Mono")  # fmt: skip
    text.set_in_layout(False)


def _legend_beside(ax, width: int = 72) -> None:
    """The panel's legend below its key, in the same right-hand strip; a label longer than the strip
    is cut with an ellipsis (the tables beside the plot name each source in full)."""
    handles, labels = ax.get_legend_handles_labels()
    labels = [label if len(label) <= width else label[: width - 1] + "…" for label in labels]
    ax.legend(handles, labels, loc="lower left", bbox_to_anchor=(1.02, 0.0), fontsize=6, frameon=False,
              borderaxespad=0).set_in_layout(False)  # fmt: skip


def _beside(figure) -> None:
    """Lay the panels out in the left 62 % of the figure; keys and legends take the strip on the right.
    They stay out of the layout's sums: a long key would otherwise leave no width for the panels and
    matplotlib would give up on the layout (the "Tight layout not applied" warning)."""
    figure.tight_layout(rect=(0, 0, 0.62, 0.97))


def _draw_pareto(figure, spec: dict[str, Any]) -> None:
    """Accuracy vs latency per panel: points coloured by runtime and numbered (the key on the right
    says which model each number is), the Pareto front as a grey step line, log latency axis."""
    figure.suptitle(spec["title"])
    panels = spec["panels"]
    if not panels:
        _empty(figure.subplots(), spec["empty"])
        return
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    colours = spec["colours"]
    for ax, panel in zip(axes, panels, strict=True):
        ax.set_title(panel["title"], loc="left")
        ax.set_xlabel(panel["xlabel"] + ", log scale")
        ax.set_ylabel(panel["ylabel"])
        _log_x(ax)
        ax.grid(True, linewidth=0.4, alpha=0.5)
        front = pareto_front((x, y) for x, y, _, _ in panel["points"])
        if len(front) > 1:
            ax.plot([p[0] for p in front], [p[1] for p in front], drawstyle="steps-post", color="#999999",
                    linewidth=1, zorder=1, label="Pareto front")  # fmt: skip
        texts, key, seen = [], [], set()
        for number_, (x, y, name, runtime) in enumerate(panel["points"], start=1):
            reported = runtime == "reported"
            colour = REPORTED_COLOUR if reported else colours[runtime]
            label = None if runtime in seen else ("reported (paper)" if reported else runtime)
            seen.add(runtime)
            ax.scatter([x], [y], color=colour, marker="D" if reported else "o", s=22, zorder=3, label=label)
            texts.append(ax.text(x, y, str(number_), fontsize=6, color=colour))
            key.append(f"{number_:>2} {name}" + ("" if reported else f" [{runtime}]"))
        _spread_labels(ax, texts)
        _legend_beside(ax)
        _key(ax, key[:40] + ([f"... {len(key) - 40} more"] if len(key) > 40 else []))
    _beside(figure)


def _draw_scatter(figure, spec: dict[str, Any]) -> None:
    """Accuracy vs MAdds, one panel per data source (reported, then each measured dataset), the
    same axis scale in every panel; legends and the numbered key outside the data."""
    figure.suptitle(spec["title"])
    panels = spec["panels"]
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        ax.set_title(panel["title"], loc="left")
        ax.set_xlabel(panel["xlabel"] + (", log scale" if panel["xlog"] else ""))
        ax.set_ylabel(panel["ylabel"])
        ax.grid(True, linewidth=0.4, alpha=0.5)
        drawn = [s for s in panel["series"] if s["x"]]
        if not drawn:
            _empty(ax, panel["empty"])
            continue
        if panel["xlog"]:
            _log_x(ax)
        texts, key = [], []
        for index, item in enumerate(drawn):
            color = _PALETTE[index % len(_PALETTE)]
            style = "-" if item["line"] else "none"
            ax.plot(item["x"], item["y"], linestyle=style, marker=item["marker"], color=color, label=item["label"],
                    markersize=4, linewidth=1)  # fmt: skip
            for x, y, name in zip(item["x"], item["y"], item["names"], strict=True):
                if name:
                    key.append(f"{len(key) + 1:>2} {name}")
                    texts.append(ax.text(x, y, str(len(key)), fontsize=6, color=color))
        _spread_labels(ax, texts)
        _legend_beside(ax)
        if key:
            _key(ax, key[:40] + ([f"... {len(key) - 40} more"] if len(key) > 40 else []))
    _beside(figure)


def _draw_barh(figure, spec: dict[str, Any], heights: list[float]) -> None:
    figure.suptitle(spec["title"])
    panels = spec["panels"]
    if not panels:
        _empty(figure.subplots(), spec["empty"])
        return
    axes = figure.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    colours = spec["colours"]
    for ax, panel in zip(axes, panels, strict=True):
        categories, groups = panel["categories"], panel["groups"]
        ax.set_title(panel["title"], loc="left")
        bar = 0.8 / max(1, len(groups))
        for index, group in enumerate(groups):
            ys, widths, errors = [], [], []
            for position, (p50, p90) in enumerate(zip(group["values"], group["p90"], strict=True)):
                if p50 is None:
                    continue
                ys.append(position + (index - (len(groups) - 1) / 2) * bar)
                widths.append(p50)
                errors.append(max(0.0, p90 - p50))
            ax.barh(ys, widths, height=bar, xerr=[[0.0] * len(errors), errors], label=group["label"],
                    color=colours[group["label"]], error_kw={"elinewidth": 0.6, "capsize": 1.5})  # fmt: skip
        ax.set_yticks(range(len(categories)))
        ax.set_yticklabels(categories, fontsize=6.5)
        ax.invert_yaxis()
        _log_x(ax)
        ax.set_xlabel(spec["xlabel"])
        ax.grid(True, axis="x", linewidth=0.4, alpha=0.5)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=6.5, frameon=False, borderaxespad=0)
    figure.tight_layout()


def png_data_digest(data: bytes) -> str | None:
    """The plotted-data digest stored in a PNG's text chunk by ``render``, or None."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    offset = 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"tEXt" and b"\0" in body:
            key, value = body.split(b"\0", 1)
            if key.decode("latin-1") == PNG_HASH_KEY:
                return value.decode("latin-1")
        if kind == b"IEND":
            break
        offset += 12 + length
    return None


