"""The benchmark report as Markdown (report.md), and the table `cmlite bench` prints."""
from __future__ import annotations

from .report_tables import (STAGES, Table, comparison_tables, device_tables, live_mode, notes, ok_rows,
                            size_text)
from ..table import format_table, markdown_table


def speed_table(report: dict) -> str:
    """The plain-text table printed at the end of `cmlite bench`."""
    ok = ok_rows(report)
    ap = any(r.get("mask_ap") is not None for r in ok)  # no column of blanks when no AP was measured (no --data)
    rows = [[r["model"], r["threads"], size_text(r), r["latency_ms"]["p50"], r["latency_ms"]["p90"], r["fps"],
             *(r["stages_ms"].get(k) for k, _ in STAGES), r.get("host_cpu_ms"), r["peak_rss_mb"],
             *(["" if r.get("mask_ap") is None else f"{r['mask_ap']:.1f}"] if ap else [])] for r in ok]
    return format_table(["model", "threads", "size", "p50 ms", "p90 ms", "fps", *(n for _, n in STAGES),
                         "host CPU ms", "peak MB", *(["mask AP"] if ap else [])], rows, floatfmt=".1f")


def _tables(tables: list[Table], level: str) -> list[str]:
    out = []
    for t in tables:
        out += [f"{level} {t.title}", "", markdown_table(t.headers, t.rows), ""] + ([t.note, ""] if t.note else [])
    return out


def _device(report: dict, level: str) -> list[str]:
    out = _tables(device_tables(report), level)
    problems = notes(report)
    if problems:
        out += [f"{level} Rows that failed or were not evaluated", ""] + [f"- {n}" for n in problems] + [""]
    return out


def _live(live: dict, level: str = "##") -> list[str]:
    lat = live.get("latency_ms") or {}
    return [f"{level} Live: the camera app on a clip", "",
            f"{live['fps']:.1f} fps with {live['model']} ({live_mode(live)}, {live.get('threads')} threads) on "
            f"{live.get('frames')} frames of {live.get('source')}; latency p50 {lat.get('p50')} / p90 {lat.get('p90')} "
            f"ms; the overlaid clip: {live.get('clip')}", ""]


def markdown_report(reports: list[dict]) -> str:
    if len(reports) == 1:
        live = _live(reports[0]["live"]) if reports[0].get("live") else []
        return "\n".join([f"# cmlite bench: {reports[0]['device']['name']}", ""] + live + _device(reports[0], "##"))
    parts = [f"# cmlite bench: {len(reports)} devices", ""] + _tables(comparison_tables(reports), "##")
    for rep in reports:
        live = _live(rep["live"], "###") if rep.get("live") else []  # a merged report keeps each device's
        parts += [f"## {rep['device']['name']}", ""] + live + _device(rep, "###")
    return "\n".join(parts)
