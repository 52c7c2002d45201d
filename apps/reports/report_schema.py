"""The benchmark report's schema: what `cmlite bench` writes and `cmlite report` reads and merges.

A report is {"schema": "cmlite-bench", "schema_version": 1, "device": {...}, "settings": {...}, "results": [...]}
(one device). A merged report is {"schema": "cmlite-bench-merged", "schema_version": 1, "reports": [report, ...]}.
Each result (row) has: model (a short unique label), path, kind, variant, target, precision, backend_device,
threads, size [short, long], input_hw, latency_ms {p50, p90, p99, mean, std}, latency_samples_ms, fps
(1000 / mean latency), stages_ms (p50 per stage), load_ms, cold_ms, peak_rss_mb, rss_before_load_mb, size_mb,
detections_per_image, mask_ap, box_ap (+ ap50/ap75, null when not measured), ap_images and error (null when
the row ran).
"""
from __future__ import annotations

import json
from pathlib import Path

from cmlite.runtimes.errors import CmliteError

SCHEMA, MERGED_SCHEMA, SCHEMA_VERSION = "cmlite-bench", "cmlite-bench-merged", 1
RESULT_KEYS = ("model", "target", "precision", "threads", "size", "latency_ms", "fps", "stages_ms", "peak_rss_mb",
               "load_ms", "size_mb", "mask_ap", "box_ap")


def new_report(device: dict, settings: dict, results: list[dict]) -> dict:
    from cmlite.runtimes import __version__

    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "cmlite": __version__, "device": device,
            "settings": settings, "results": results}


def merged(reports: list[dict]) -> dict:
    """One file of several devices' reports. A device name that several reports share (runs on the same machine,
    or machines of the same hostname) gets what tells them apart, when each ran: 'vm, 2026-12-06 21:05 UTC' (a
    '#2' only where that is the same too)."""
    def when(r: dict) -> str:
        return (r.get("settings", {}).get("created") or "")[:16].replace("T", " ") + " UTC"

    names = [r["device"].get("name") or "device" for r in reports]
    labels = [f"{n}, {when(r)}" if names.count(n) > 1 else n for n, r in zip(names, reports)]
    seen: dict[str, int] = {}
    out = []
    for r, label in zip(reports, labels):
        seen[label] = seen.get(label, 0) + 1
        label = label if seen[label] == 1 else f"{label} #{seen[label]}"
        out.append({**r, "device": {**r["device"], "name": label}} if label != r["device"].get("name") else r)
    return {"schema": MERGED_SCHEMA, "schema_version": SCHEMA_VERSION, "reports": out}


def _check_one(r, where: str) -> dict:
    if not isinstance(r, dict) or not all(k in r for k in ("device", "settings", "results")) \
            or not isinstance(r["results"], list):
        raise CmliteError(f"{where}: a cmlite bench report without its device, settings and results: the file is "
                          f"damaged; run `cmlite bench` again")
    for i, row in enumerate(r["results"]):
        missing = [k for k in RESULT_KEYS if k not in row]
        if missing:
            raise CmliteError(f"{where}: result {i + 1} lacks {', '.join(missing)}: the file is damaged or was "
                              f"edited; run `cmlite bench` again")
    return r


def load_reports(path: str | Path) -> list[dict]:
    """The single-device reports in a report file (one, or several for a merged one). One-line errors."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise CmliteError(f"report not found: {path} (the report.json `cmlite bench --out DIR` writes)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CmliteError(f"{path} is not a cmlite bench report (not JSON: {e})") from None
    schema = obj.get("schema") if isinstance(obj, dict) else None
    if schema not in (SCHEMA, MERGED_SCHEMA):
        raise CmliteError(f"{path} is not a cmlite bench report (schema {schema!r}; expected {SCHEMA!r}, as "
                          f"`cmlite bench` writes)")
    version = obj.get("schema_version")
    if version != SCHEMA_VERSION:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        raise CmliteError(f"{path} is a cmlite bench report of schema version {version}; this cmlite "
                          f"({_version()}) reads version {SCHEMA_VERSION}: "
                          + ("upgrade cmlite (pip install -U cmlite)" if newer else
                             "run `cmlite bench` again with this version"))
    if schema == MERGED_SCHEMA:
        if not isinstance(obj.get("reports"), list) or not obj["reports"]:
            raise CmliteError(f"{path}: a merged report with no reports in it; merge again with `cmlite report`")
        return [_check_one(r, f"{path} (report {i + 1})") for i, r in enumerate(obj["reports"])]
    return [_check_one(obj, str(path))]


def _version() -> str:
    from cmlite.runtimes import __version__

    return __version__
