"""The benchmark report as one self-contained HTML page (report.html): tables and inline SVG plots, no external
files, scripts or fonts, so it can be mailed or attached to a CI run."""
from __future__ import annotations

import html

from .report_tables import Table, comparison_tables, device_tables, live_mode, notes
from ..table import number

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1400px;
       padding: 0 16px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin-top: 20px; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; } th { background: #f4f4f4; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
p.note { color: #555; font-size: 13px; margin: 2px 0 12px; }
figure { margin: 16px 0; } figure svg { width: 100%; height: auto; }
figcaption { color: #555; font-size: 13px; }
video { width: 100%; max-width: 960px; background: #000; display: block; }
.err { color: #b00020; }
.scroll { overflow-x: auto; max-width: 100%; }
@media (max-width: 760px) {  /* a phone: tables and plots keep their size and scroll sideways in their own box */
  body { margin: 8px auto; padding: 0 8px; }
  figure { overflow-x: auto; } figure svg { width: 720px; max-width: none; }
}
"""


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "<td class=n>–</td>"
    if isinstance(v, float):
        return f"<td class=n>{number(v, '.1f')}</td>"
    if isinstance(v, int):
        return f"<td class=n>{v}</td>"
    return f"<td>{html.escape(str(v))}</td>"


def _table(t: Table, tag: str = "h3") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in r) + "</tr>" for r in t.rows)
    note = f"<p class=note>{html.escape(t.note)}</p>" if t.note else ""
    return (f"<{tag}>{html.escape(t.title)}</{tag}><div class=scroll><table><tr>{head}</tr>{body}</table></div>"
            f"{note}")


def _live(live: dict, video: str | None, level: str = "h2") -> str:
    """The camera app's run on a clip (`cmlite demo`): the overlaid clip and what it measured."""
    lat = live.get("latency_ms") or {}
    stages = ", ".join(f"{k} {v:.1f}" for k, v in (live.get("stages_ms_p50") or {}).items() if v is not None)
    facts = (f"{live['fps']:.1f} fps with {html.escape(live['model'])} ({html.escape(live_mode(live))}, "
             f"MaskIoU {'on' if live.get('maskiou') else 'off'}, {live.get('threads')} threads) on "
             f"{live.get('frames')} frames of {html.escape(str(live.get('source')))}; latency p50 {lat.get('p50')} / "
             f"p90 {lat.get('p90')} ms; stages p50 (ms): {html.escape(stages)}")
    player = (f'<video id="live-clip" controls muted loop playsinline preload="auto" src="{video}"></video>'
              if video else "<p class=note>the clip is not beside this report any more</p>")
    return f"<{level}>Live: the camera app on a clip</{level}><figure>{player}<figcaption>{facts}</figcaption></figure>"


def html_report(reports: list[dict], plots: list[tuple[str, str, str]] | None, missing_plots: str = "",
                videos: list[str | None] | None = None) -> str:
    """plots: (id, caption, svg) from report_plots.all_plots; None with missing_plots saying why there are none.
    videos: each report's live clip as a data: URI (a report with a `live` run: the demo's), or None."""
    videos = videos or [None] * len(reports)
    single = len(reports) == 1
    title = f"cmlite bench: {reports[0]['device']['name']}" if single else f"cmlite bench: {len(reports)} devices"
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8>"
             f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    if single:  # what it ran on first, the live clip if any, then the plots, then the tables
        tables = device_tables(reports[0])
        parts.append(_table(tables[0], "h2"))
        if reports[0].get("live"):
            parts.append(_live(reports[0]["live"], videos[0]))
    else:  # the devices side by side first
        parts += [_table(t, "h2") for t in comparison_tables(reports)]
    parts.append("<h2>Plots</h2>")
    if plots:
        parts += [f'<figure id="plot-{pid}">{svg}<figcaption>{html.escape(cap)}</figcaption></figure>'
                  for pid, cap, svg in plots]
    else:
        parts.append(f"<p class=note>{html.escape(missing_plots or 'no rows ran, so there is nothing to plot')}</p>")
    for rep, video in zip(reports, videos):
        if single:
            parts += [_table(t, "h2") for t in tables[1:]]
        else:
            parts.append(f"<h2>{html.escape(rep['device']['name'])}</h2>")
            if rep.get("live"):  # a merged report keeps each device's live clip
                parts.append(_live(rep["live"], video, "h3"))
            parts += [_table(t) for t in device_tables(rep)]
        problems = notes(rep)
        if problems:
            parts.append("<h3>Rows that failed or were not evaluated</h3><ul>"
                         + "".join(f"<li class=err>{html.escape(n)}</li>" for n in problems) + "</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
