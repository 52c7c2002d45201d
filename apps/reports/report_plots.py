"""The plots of a benchmark report (matplotlib, as inline SVG): one column per device, axes shared, so a merged
report shows the same plot across devices side by side.

- stages: stacked per-stage latency (p50) per row
- distribution: box plots of every measured latency per row
- threads: fps against thread count, one line per model and size (bars when one thread count was run)
- front: mask AP against latency p50 (each model at its fastest thread count), every point named, the
  speed/accuracy front drawn over them, at least MIN_AP_SPAN of AP on the axis (so noise does not look large)

The figures are drawn 12 inches wide and the page scales them to its full width.
"""
from __future__ import annotations

import io

from .report_tables import STAGES, ok_rows, row_key

STAGE_COLORS = ("#8c8c8c", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")
WIDTH = 12.0  # inches, one device; the page draws every plot at its full width
MIN_AP_SPAN = 2.0  # AP points: a smaller span would show 0.2 AP of noise as a cliff


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "cmlite", "font.size": 9,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def to_svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    pyplot().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _row_keys(reports: list[dict]) -> list[tuple]:
    """The rows of every device in one order (first seen), so bars line up across the device columns."""
    return list(dict.fromkeys(row_key(r) for rep in reports for r in ok_rows(rep)))


def _label(key: tuple, keys: list[tuple]) -> str:
    model, threads, size = key
    parts = [model]
    if len({k[1] for k in keys}) > 1:
        parts.append(f"{threads} thr")
    if len({k[2] for k in keys}) > 1:
        parts.append(size)
    return " · ".join(parts)


def _columns(plt, reports, height, sharex=False, sharey=False):
    n = len(reports)
    fig, axes = plt.subplots(1, n, figsize=(max(WIDTH, min(5.5 * n, 18)), height), squeeze=False,
                             sharex=sharex, sharey=sharey, layout="constrained")
    for ax, rep in zip(axes[0], reports):
        ax.set_title(rep["device"]["name"], fontsize=10)
    return fig, axes[0]


def stages_plot(reports: list[dict]) -> str:
    plt = pyplot()
    keys = _row_keys(reports)
    fig, axes = _columns(plt, reports, 1.2 + 0.32 * len(keys), sharex=True, sharey=True)
    ys = range(len(keys))
    for ax, rep in zip(axes, reports):
        by_key = {row_key(r): r for r in ok_rows(rep)}
        left = [0.0] * len(keys)
        for (stage, name), color in zip(STAGES, STAGE_COLORS):
            vals = [(by_key[k]["stages_ms"].get(stage) or 0.0) if k in by_key else 0.0 for k in keys]
            ax.barh(ys, vals, left=left, color=color, label=name, height=0.7)
            left = [a + b for a, b in zip(left, vals)]
        ax.set_xlabel("ms (p50 per stage)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(list(ys), [_label(k, keys) for k in keys])
    axes[0].invert_yaxis()
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=len(STAGES), fontsize=8,
               frameon=False)  # below the plot: inside, it sat on the longest bar
    fig.suptitle("Latency per stage", fontsize=11)
    return to_svg(fig)


def distribution_plot(reports: list[dict]) -> str:
    plt = pyplot()
    keys = _row_keys(reports)
    fig, axes = _columns(plt, reports, 1.2 + 0.32 * len(keys), sharex=True, sharey=True)
    for ax, rep in zip(axes, reports):
        by_key = {row_key(r): r for r in ok_rows(rep)}
        data = [by_key[k]["latency_samples_ms"] if k in by_key else [] for k in keys]
        pos = [i for i, d in enumerate(data) if d]
        ax.boxplot([data[i] for i in pos], positions=pos, orientation="horizontal", widths=0.6, whis=(1, 99),
                   flierprops={"markersize": 3}, medianprops={"color": "#d62728"})
        ax.set_xlabel("end-to-end latency, ms (box: p25-p75, whiskers: p1-p99)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(keys)), [_label(k, keys) for k in keys])
    axes[0].set_ylim(len(keys) - 0.5, -0.5)
    fig.suptitle("Latency distribution", fontsize=11)
    return to_svg(fig)


def threads_plot(reports: list[dict]) -> str:
    plt = pyplot()
    if len({r["threads"] for rep in reports for r in ok_rows(rep)}) == 1:
        return _fps_bars(plt, reports)  # one thread count: a line plot would be one column of dots
    lines = list(dict.fromkeys((r["model"], tuple(r["size"] or ())) for rep in reports for r in ok_rows(rep)))
    fig, axes = _columns(plt, reports, max(3.4, 0.2 * len(lines)), sharey=True)
    colors = plt.get_cmap("tab20").colors  # 20 distinct colours, then other line styles and markers
    styles = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]
    many_sizes = len({s for _, s in lines}) > 1
    for ax, rep in zip(axes, reports):
        for i, (model, size) in enumerate(lines):
            pts = sorted((r["threads"], r["fps"]) for r in ok_rows(rep)
                         if r["model"] == model and tuple(r["size"] or ()) == size)
            if pts:
                label = model + (f" {size[0]}/{size[1]}" if many_sizes and size else "")
                ls, marker = styles[(i // len(colors)) % len(styles)]
                ax.plot(*zip(*pts), marker=marker, linestyle=ls, color=colors[i % len(colors)], label=label)
        ts = sorted({r["threads"] for r in ok_rows(rep)})
        ax.set_xticks(ts)
        ax.set_xlabel("threads")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fps (1000 / mean latency)")
    top = max(r["fps"] for rep in reports for r in ok_rows(rep))
    axes[0].set_ylim(0, top * 1.12)  # room above the fastest point's marker
    handles = {}  # every model of every device: a model one device lacks is still named
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    axes[-1].legend(list(handles.values()), list(handles), fontsize=8, frameon=False, loc="upper left",
                    bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("Throughput against threads", fontsize=11)
    return to_svg(fig)


def _fps_bars(plt, reports: list[dict]) -> str:
    keys = _row_keys(reports)
    threads = next(r["threads"] for rep in reports for r in ok_rows(rep))
    fig, axes = _columns(plt, reports, 1.2 + 0.32 * len(keys), sharex=True, sharey=True)
    ys = range(len(keys))
    for ax, rep in zip(axes, reports):
        by_key = {row_key(r): r for r in ok_rows(rep)}
        vals = [by_key[k]["fps"] if k in by_key else 0.0 for k in keys]
        bars = ax.barh(ys, vals, color="#1f77b4", height=0.7)
        ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
        ax.set_xlabel(f"fps (1000 / mean latency) at {threads} thread{'s' if threads != 1 else ''}")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(list(ys), [_label(k, keys) for k in keys])
    axes[0].invert_yaxis()
    fig.suptitle("Throughput (one thread count measured)", fontsize=11)
    return to_svg(fig)


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The speed/accuracy front of (latency, AP) points: those no other point beats on both, by latency."""
    front, best = [], float("-inf")
    for lat, ap in sorted(points, key=lambda p: (p[0], -p[1])):
        if ap > best:
            front.append((lat, ap))
            best = ap
    return front


def has_ap(reports: list[dict]) -> bool:
    return any(r.get("mask_ap") is not None for rep in reports for r in ok_rows(rep))


LOG_SPAN = 8.0  # latencies further apart than this factor are drawn on a log axis


def latency_scale(latencies: list[float]) -> str:
    """A log axis where one slow row (PyTorch FP32, 1.1 s beside INT8 rows of 15-60 ms) would squeeze the rest
    into its first tenth, their names piled up; linear otherwise."""
    return "log" if latencies and min(latencies) > 0 and max(latencies) / min(latencies) > LOG_SPAN else "linear"


def front_plot(reports: list[dict]) -> str:
    plt = pyplot()
    fig, axes = _columns(plt, reports, 4.2, sharex=True, sharey=True)
    scale = latency_scale([r["latency_ms"]["p50"] for rep in reports for r in ok_rows(rep)
                           if r.get("mask_ap") is not None])
    aps = []
    for ax, rep in zip(axes, reports):
        best: dict[tuple, dict] = {}  # each model and size at its fastest thread count
        for r in ok_rows(rep):
            if r.get("mask_ap") is None:
                continue
            k = (r["model"], tuple(r["size"] or ()))
            if k not in best or r["latency_ms"]["p50"] < best[k]["latency_ms"]["p50"]:
                best[k] = r
        pts = [(r["latency_ms"]["p50"], r["mask_ap"]) for r in best.values()]
        aps += [ap for _, ap in pts]
        front = pareto(pts)
        if len(front) > 1:  # under the points, thick enough to see between them
            ax.step(*zip(*front), where="post", color="#d62728", linewidth=2.2, alpha=0.8, zorder=2,
                    label="speed/accuracy front")
            ax.legend(fontsize=8, frameon=False, loc="lower right")
        if pts:
            on_front = [p in front for p in pts]
            ax.scatter(*zip(*pts), c=["#d62728" if f else "#1f77b4" for f in on_front], zorder=3, s=24)
        named = sorted(best.values(), key=lambda r: r["latency_ms"]["p50"])
        ax._cmlite_labels = [(f"{r['model']} ({r['threads']} thr)", (r["latency_ms"]["p50"], r["mask_ap"]))
                             for r in named]  # every point named, once the limits are set (below)
        ax.set_xlabel("latency p50, ms (fastest thread count)" + (", log scale" if scale == "log" else ""))
        ax.set_xscale(scale)
        if scale == "log":  # ticks in plain ms (10, 20, 50, ...), not powers of ten
            from matplotlib.ticker import LogLocator, ScalarFormatter

            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.grid(alpha=0.3)
    if aps:  # at least MIN_AP_SPAN of AP, centred on the points, with room for the names
        lo, hi = min(aps), max(aps)
        pad = max(MIN_AP_SPAN - (hi - lo), 0.0) / 2 + 0.25
        axes[0].set_ylim(lo - pad, hi + pad)
        from matplotlib.ticker import FormatStrFormatter

        axes[0].yaxis.set_major_formatter(FormatStrFormatter("%.1f"))
    axes[0].set_ylabel("mask AP")
    fig.suptitle("Speed / accuracy", fontsize=11)
    for ax in axes:
        place_labels(ax, getattr(ax, "_cmlite_labels", []))
    return to_svg(fig)


# where a point's name may go, in points from it: right, left, above, below, then the diagonals further out
CANDIDATES = ((5, 4), (5, -10), (-5, 4), (-5, -10), (0, 9), (0, -15), (8, 16), (8, -22), (-8, 16), (-8, -22),
              (12, 28), (12, -34), (-12, 28), (-12, -34))


def place_labels(ax, labels: list[tuple[str, tuple[float, float]]]) -> list:
    """Name each point at the first candidate position whose drawn box overlaps no name placed before it, no
    point and stays inside the axes (the first candidate when none is free). -> the annotations."""
    fig = ax.figure
    fig.canvas.draw()  # the limits and the layout are final: boxes in display units are what the page shows
    renderer = fig.canvas.get_renderer()
    points = [ax.transData.transform(xy) for _, xy in labels]
    area = ax.get_window_extent(renderer)
    placed, out = [], []
    for text, xy in labels:
        chosen = None
        for dx, dy in CANDIDATES:
            ha = "right" if dx < 0 else "center" if dx == 0 else "left"
            a = ax.annotate(text, xy, xytext=(dx, dy), textcoords="offset points", fontsize=7, ha=ha)
            box = a.get_window_extent(renderer).expanded(1.04, 1.1)
            free = (not any(box.overlaps(b) for b in placed)
                    and not any(box.contains(*p) for p in points)
                    and area.contains(box.x0, box.y0) and area.contains(box.x1, box.y1))
            if free:
                chosen = (a, box)
                break
            a.remove()
        if chosen is None:
            dx, dy = CANDIDATES[0]
            a = ax.annotate(text, xy, xytext=(dx, dy), textcoords="offset points", fontsize=7)
            chosen = (a, a.get_window_extent(renderer))
        placed.append(chosen[1])
        out.append(chosen[0])
    return out


def has_streams(reports: list[dict]) -> bool:
    return any(r.get("streams") for rep in reports for r in ok_rows(rep))


def streams_plot(reports: list[dict]) -> str:
    """Total images per second against the number of streams, one colour per row: solid the throughput mode,
    dashed the latency mode; one column per device, the legend below."""
    plt = pyplot()
    fig, axes = _columns(plt, reports, 3.6, sharey=True)
    colors = plt.get_cmap("tab10").colors
    rows = list(dict.fromkeys((r["model"], r["threads"]) for rep in reports for r in ok_rows(rep) if r.get("streams")))
    for ax, rep in zip(axes, reports):
        for r in ok_rows(rep):
            if not r.get("streams"):  # not measured in this device's report
                continue
            color = colors[rows.index((r["model"], r["threads"])) % len(colors)]
            for mode, style in (("throughput", "-o"), ("sequential", "--s")):
                pts = sorted((e["streams"], e["images_per_s"]) for e in r["streams"]
                             if e["mode_asked"] == mode and e.get("images_per_s"))
                if pts:
                    ax.plot(*zip(*pts), style, ms=3, color=color)
        ax.set_xlabel("streams")
        ax.set_xticks(sorted({e["streams"] for r in ok_rows(rep) for e in r.get("streams") or []}))
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("images / s, all streams")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[i % len(colors)], lw=2) for i in range(len(rows))]
    labels = [f"{m} ({t} thr)" for m, t in rows]
    handles += [Line2D([], [], color="0.3", ls="-", marker="o", ms=3), Line2D([], [], color="0.3", ls="--", marker="s",
                                                                             ms=3)]
    labels += ["throughput mode", "latency mode"]
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False)
    return to_svg(fig)


def all_plots(reports: list[dict]) -> list[tuple[str, str, str]]:
    """(id, caption, svg) of every plot the reports have data for."""
    if not any(ok_rows(rep) for rep in reports):
        return []
    out = [("stages", "End-to-end latency split into its stages (p50 of each), per model, thread count and size.",
            stages_plot(reports)),
           ("distribution", "Every measured end-to-end latency per row: box p25-p75 with the median in red, "
                            "whiskers p1-p99.", distribution_plot(reports)),
           ("threads", "fps (1000 / mean latency) against the thread count.", threads_plot(reports))]
    if has_streams(reports):
        out.append(("streams", "Images per second of all streams together against the number of streams: solid the "
                               "throughput mode, dashed the latency mode.", streams_plot(reports)))
    if has_ap(reports):
        out.append(("front", "Mask AP against latency p50; the red steps join the models no other beats on both.",
                    front_plot(reports)))
    return out
