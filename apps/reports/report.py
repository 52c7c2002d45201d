"""`cmlite report`: merge the `cmlite bench` reports of several devices into one comparison, devices side by side
and the same plots across devices.

Also the writer `cmlite bench` uses for its own report (report.json, report.md, report.html, each written whole or
not at all)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..atomic import write_json_atomic, write_text_atomic
from .report_schema import load_reports, merged

PLOTS_MISSING = ("report.html has tables but no plots: matplotlib is not installed (pip install 'cmlite[report]', "
                 "or run `cmlite report` on report.json where it is)")


def _plots(reports: list[dict]):
    try:
        import matplotlib  # noqa: F401  (only whether it imports)
    except ImportError:
        return None
    from .report_plots import all_plots

    return all_plots(reports)


def _video(report: dict) -> str | None:
    """The live clip of a report that has one (`cmlite demo`: report["live"]["clip"]), as a data: URI, so that
    report.html stays one self-contained file; None when there is none or the file is gone."""
    import base64

    clip = (report.get("live") or {}).get("clip")
    if not clip or not Path(clip).is_file():
        return None
    mime = {".webm": "video/webm", ".mp4": "video/mp4"}.get(Path(clip).suffix.lower())
    return f"data:{mime};base64,{base64.b64encode(Path(clip).read_bytes()).decode()}" if mime else None


def write_report(report: dict, out: Path, log=lambda m: print(m, file=sys.stderr)) -> list[Path]:
    """report: one device's (`cmlite bench`) or a merged one. Writes report.json, report.md, report.html."""
    from .report_html import html_report
    from .report_md import markdown_report

    reports = report["reports"] if "reports" in report else [report]
    from cmlite.converters.folders import check_dir_path

    out = check_dir_path(out)
    plots = _plots(reports)
    if plots is None:
        log(f"cmlite: {PLOTS_MISSING}")
    paths = [out / "report.json", out / "report.md", out / "report.html"]
    write_json_atomic(paths[0], report, indent=1)
    write_text_atomic(paths[1], markdown_report(reports))
    write_text_atomic(paths[2], html_report(reports, plots, PLOTS_MISSING, videos=[_video(r) for r in reports]))
    return paths


def unique_reports(paths: list[str], log=lambda m: print(m, file=sys.stderr)) -> list[dict]:
    """The reports in the files, each once: the same report given twice (the same file, or a copy of it) is merged
    once, with a warning (before, it became devices "vm" and "vm #2" without a word)."""
    import json

    seen: dict[str, str] = {}
    out = []
    for path in paths:
        for r in load_reports(path):
            key = json.dumps(r, sort_keys=True)
            if key in seen:
                log(f"cmlite: warning: {path} repeats the report of {r['device'].get('name')} already read from "
                    f"{seen[key]}: it is merged once")
                continue
            seen[key] = str(path)
            out.append(r)
    return out


def cmd_report(args) -> None:
    from cmlite.runtimes.errors import CmliteError

    reports = unique_reports(args.reports)
    if not reports:
        raise CmliteError("no reports to merge")
    report = merged(reports) if len(reports) > 1 else reports[0]
    paths = write_report(report, Path(args.out))
    names = ", ".join(r["device"]["name"] for r in (report["reports"] if len(reports) > 1 else reports))
    print(f"{len(reports)} device report{'s' if len(reports) > 1 else ''} ({names}): wrote "
          + ", ".join(map(str, paths)))


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="merge `cmlite bench` reports of several devices into one comparison",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("reports", nargs="+", metavar="REPORT", help="report.json files or the folders holding them")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the merged report")
    p.set_defaults(func=cmd_report)
