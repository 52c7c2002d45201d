"""`cmlite pick`'s choice and what it writes: the rule, the deploy folder, pick.json, pick.html, the table."""
from __future__ import annotations

import html
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from cmlite.runtimes.errors import CmliteError

from ..table import format_table, number

TIE = 0.02  # a lead under 2% of the fastest's fps is a tie whatever the rounds' spread
RULE = ("the fastest candidate by live fps (frames over seconds, median of the rounds) whose mask AP is at most the "
        "budget below the FP32 reference (the checkpoint in PyTorch on the same val set); a candidate whose fps "
        "trails the fastest's by less than either one's spread over the rounds (or 2%) is tied with it, and ties "
        "go to the smaller peak memory, then the lower latency")


@dataclass
class Choice:
    winner: object | None  # the Candidate, or None when nothing is within the budget
    reasons: dict[str, str]  # candidate name -> why it was chosen or why it lost
    closest: object | None  # nothing within budget: the candidate with the smallest AP drop


def choose(cands: list, ref_ap: float, budget: float) -> Choice:
    ok = [c for c in cands if c.error is None and c.skipped is None and c.figures.get("fps")]
    for c in ok:
        c.figures["mask_ap_drop"] = round(ref_ap - c.figures["mask_ap"], 2)
    within = [c for c in ok if c.figures["mask_ap_drop"] <= budget + 1e-9]
    reasons = {c.name: f"failed: {c.error}" for c in cands if c.error}
    reasons |= {c.name: f"skipped: {c.skipped}" for c in cands if c.skipped}
    reasons |= {c.name: "failed: no live fps" for c in cands if c.name not in reasons and c not in ok}
    for c in ok:
        if c not in within:
            reasons[c.name] = f"over budget: mask AP {c.figures['mask_ap_drop']:.1f} below the reference " \
                              f"(budget {budget})"
    if not within:
        closest = min(ok, key=lambda c: c.figures["mask_ap_drop"]) if ok else None
        return Choice(None, reasons, closest)
    top = max(within, key=lambda c: c.figures["fps"])

    def tie(c) -> bool:
        lead = top.figures["fps"] - c.figures["fps"]
        return lead <= max(top.figures.get("fps_spread") or 0.0, c.figures.get("fps_spread") or 0.0,
                           TIE * top.figures["fps"])

    tied = [c for c in within if tie(c)]
    winner = min(tied, key=lambda c: (c.figures.get("peak_rss_mb") or float("inf"),
                                      c.figures.get("latency_p50_ms") or float("inf"), -c.figures["fps"]))
    for c in within:
        if c is winner:
            reasons[c.name] = "chosen: the fastest within the budget" + (
                f" (tied with {', '.join(t.name for t in tied if t is not c)} within the rounds' spread: the "
                f"smaller peak memory, then the lower latency)" if len(tied) > 1 else "")
        elif c in tied:
            reasons[c.name] = f"tied on speed ({c.figures['fps']} fps, within the rounds' spread), more peak memory " \
                              f"or latency ({_memory_latency(c)} against {_memory_latency(winner)})"
        else:
            reasons[c.name] = f"slower: {c.figures['fps']:.1f} fps against {winner.figures['fps']:.1f}"
    return Choice(winner, reasons, None)


def _memory_latency(c) -> str:
    f = c.figures
    mem, lat = f.get("peak_rss_mb"), f.get("latency_p50_ms")
    return f"{'?' if mem is None else f'{mem:.0f}'} MB, p50 {'?' if lat is None else f'{lat:.0f}'} ms"


def rows(cands: list, choice: Choice) -> list[list]:
    out = []
    for c in sorted(cands, key=lambda c: -(c.figures.get("fps") or 0)):
        f = c.figures
        spread = f"{min(f['fps_rounds']):.1f}-{max(f['fps_rounds']):.1f}" if f.get("fps_rounds") else None
        out.append([("* " if c is choice.winner else "") + c.name, f.get("fps"), spread, f.get("latency_p50_ms"),
                    f.get("latency_p90_ms"), f.get("mask_ap"), f.get("mask_ap_drop"), f.get("box_ap"),
                    f.get("peak_rss_mb"), choice.reasons.get(c.name, "")])
    return out


HEADERS = ["candidate", "live fps", "rounds", "p50 ms", "p90 ms", "mask AP", "AP drop", "box AP", "peak MB",
           "verdict"]


def to_json(cands: list, choice: Choice, ref: dict, settings: dict, device: dict) -> dict:
    return {"schema": "cmlite.pick/1", "rule": RULE, "settings": settings, "device": device,
            "reference": {"what": "the checkpoint in PyTorch, FP32", "mask_ap": ref["mask_ap"],
                          "box_ap": ref["box_ap"], "peak_rss_mb": ref.get("peak_rss_mb")},
            "winner": choice.winner.name if choice.winner else None,
            "closest": choice.closest.name if choice.closest else None,
            "candidates": [{"name": c.name, "target": c.target, "precision": c.precision, "folder": str(c.folder),
                            "made": c.made or None, "error": c.error, "skipped": c.skipped, **c.figures,
                            "verdict": choice.reasons.get(c.name)} for c in cands]}


def plot_svg(cands: list, choice: Choice, ref_ap: float, budget: float) -> str | None:
    """Live fps against mask AP, the budget line and the winner marked; None without matplotlib."""
    try:
        from .report_plots import pyplot, to_svg, pareto, place_labels
        plt = pyplot()
    except ImportError:
        return None
    ok = [c for c in cands if c.figures.get("fps") and c.figures.get("mask_ap") is not None]
    fig, ax = plt.subplots(figsize=(9, 4.8))
    pts = [(-c.figures["fps"], c.figures["mask_ap"]) for c in ok]  # the front: faster (more fps) and more AP
    front = sorted((-x, y) for x, y in pareto(pts))
    if len(front) > 1:
        ax.plot(*zip(*front), color="#d62728", linewidth=2, alpha=0.5, label="speed/AP front (none beats them "
                                                                            "on both)")
    ax.scatter([c.figures["fps"] for c in ok], [c.figures["mask_ap"] for c in ok], s=28, color="#1f77b4", zorder=3)
    if choice.winner is not None:
        w = choice.winner.figures
        ax.scatter([w["fps"]], [w["mask_ap"]], s=220, marker="*", color="#2ca02c", zorder=4,
                   label=f"chosen: {choice.winner.name}")
    ax.axhline(ref_ap - budget, color="#ff7f0e", linestyle="--",
               label=f"budget: FP32 reference {ref_ap:.1f} - {budget}")
    ax.axhline(ref_ap, color="#8c8c8c", linestyle=":", label="FP32 reference (PyTorch)")
    ax.set_xlabel("live fps (camera app, median of the rounds)")
    ax.set_ylabel("mask AP")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    place_labels(ax, [(c.name, (c.figures["fps"], c.figures["mask_ap"])) for c in ok])
    return to_svg(fig)


NO_PLOT = '<p>(no plot: pip install "cmlite[report]")</p>'


def page(data: dict, table: list[list], svg: str | None) -> str:
    def cell(v):
        return html.escape("" if v is None else number(v, ".1f") if isinstance(v, float) else str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in table)
    s = data["settings"]
    winner = data["winner"] or f"none within the budget (closest: {data['closest']})"
    return (f"<!doctype html><meta charset=utf-8><title>cmlite pick</title>"
            f"<style>body{{font:14px sans-serif;margin:2em}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd;"
            f"text-align:left}}</style><h1>cmlite pick: {html.escape(winner)}</h1>"
            f"<p>{html.escape(data['device'].get('cpu', ''))}; budget {s['max_ap_drop']} mask AP below the FP32 "
            f"reference ({data['reference']['mask_ap']:.1f}); live on {html.escape(str(s['source']))}, {s['frames']} "
            f"frames x {s['rounds']} rounds, mode {s['mode']}, threads {s['threads'] or 'all'}.</p>"
            f"<p>Rule: {html.escape(data['rule'])}.</p>{svg or NO_PLOT}"
            f"<table><tr>{head}</tr>{body}</table>")


def write_deploy(out: Path, cands: list, choice: Choice, ref: dict, settings: dict) -> int:
    """Print the table; write OUT (the chosen folder, pick.json, pick.html) beside under a hidden name and swap it
    in whole. Nothing within the budget: pick.json and pick.html only, and one line (status 2)."""
    from ..device_info import cpu_line

    table = rows(cands, choice)
    print(format_table(HEADERS, table, floatfmt=".1f"))
    data = to_json(cands, choice, ref, settings, {"cpu": cpu_line()})
    out = Path(out)
    stage = out.with_name(f".{out.name}.partial")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        if choice.winner is not None:
            shutil.copytree(choice.winner.folder, stage / choice.winner.name)
        (stage / "pick.json").write_text(json.dumps(data, indent=2) + "\n")
        (stage / "pick.html").write_text(page(data, table, plot_svg(cands, choice, ref["mask_ap"],
                                                                   settings["max_ap_drop"])))
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if out.exists():
            out.rename(old)
        stage.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if choice.winner is None:
        c = choice.closest
        closest = (f"; the closest: {c.name}, mask AP {-c.figures['mask_ap_drop'] + 0.0:+.1f} against it, "
                   f"{c.figures['fps']:.1f} fps"
                   if c else "; no candidate ran")
        raise CmliteError(f"no candidate is within {settings['max_ap_drop']} mask AP of the FP32 reference "
                          f"({ref['mask_ap']:.1f}){closest}: raise --max-ap-drop, or see {out / 'pick.html'}")
    w = choice.winner
    print(f"chosen: {w.name} ({w.figures['fps']:.1f} fps live, mask AP {w.figures['mask_ap']:.1f}, "
          f"{-w.figures['mask_ap_drop'] + 0.0:+.1f} against the reference {ref['mask_ap']:.1f}) -> {out / w.name}; "
          f"why each other lost: {out / 'pick.json'}, the plot: {out / 'pick.html'}")
    threads = f" --threads {settings['threads']}" if settings.get("threads") else ""
    print(f"run it: cmlite camera --model {out / w.name}{threads} --mode {settings['mode']}", file=sys.stdout)
    return 0
