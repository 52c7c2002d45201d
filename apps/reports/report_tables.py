"""The tables of a benchmark report, as data: Markdown (report.md) and HTML (report.html) render the same ones."""
from __future__ import annotations

from dataclasses import dataclass

from cmlite.runtimes.pipeline import STAGES as PIPELINE_STAGES

from ..table import plural

STAGES = tuple((s, s.replace("graph", "graph ")) for s in PIPELINE_STAGES)  # (key, column name): "graph 1"


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list]
    note: str = ""


def size_text(r: dict) -> str:
    s = r.get("size")
    text = f"{s[0]}/{s[1]}" if s else "default"
    return text + (f" in {r['input_hw'][0]}x{r['input_hw'][1]}" if r.get("input_hw") else "")


def live_mode(live: dict) -> str:
    """The mode a report's live run ran in, and why when auto chose it."""
    auto = live.get("auto") or {}
    if auto.get("chosen"):
        return f"auto: {auto['chosen']}" + (", remembered" if auto.get("remembered") else "") + f", {auto['why']}"
    return str(live.get("running") or live.get("mode"))


def ok_rows(report: dict) -> list[dict]:
    return [r for r in report["results"] if not r.get("error")]


def failed_rows(report: dict) -> list[dict]:
    return [r for r in report["results"] if r.get("error")]


def notes(report: dict) -> list[str]:
    """One line per row that failed, and per model whose AP could not be measured."""
    out = [f"{r['model']} ({plural(r['threads'], 'thread')}): {r['error']}" for r in failed_rows(report)]
    seen = set()
    for r in ok_rows(report):
        if r.get("eval_error") and r["model"] not in seen:
            seen.add(r["model"])
            out.append(f"{r['model']}: AP not measured: {r['eval_error']}")
    return out


def device_rows(device: dict) -> list[tuple[str, str]]:
    """(field, value) pairs that say what the figures were measured on."""
    c = device.get("cpu") or {}
    cores = f"{c.get('usable_cores')} usable of {c.get('logical_cores')}"
    if c.get("cgroup_cpu_limit"):
        cores += f", container limit {c['cgroup_cpu_limit']}"
    pk = device.get("packages") or {}
    packages = ", ".join(f"{k} {v}" for k, v in pk.items() if k not in ("numpy", "pycocotools"))
    rows = [("CPU", f"{c.get('model')} ({c.get('arch')})"), ("INT8/BF16 ISA", " ".join(c.get("isa") or []) or "none"),
            ("cores", cores), ("memory", f"{device.get('memory_gb')} GB"), ("OS", device.get("os")),
            ("Python", device.get("python")), ("packages", packages)]
    j = device.get("jetson")
    if j:
        rows.append(("Jetson", f"{j.get('board')}, L4T {j.get('l4t')}, JetPack {j.get('jetpack')}, "
                               f"power mode {j.get('power_mode')}"))
    for g in device.get("nvidia_gpus") or []:
        rows.append(("GPU", f"{g['name']}, driver {g['driver']}, {g['memory']}, compute {g['compute_capability']}"))
    return rows


def settings_text(report: dict) -> str:
    s, data = report["settings"], report["settings"].get("data")
    return (f"{len(s['images'])} images from {s.get('image_folder')}, {s['warmup']} warm-up + {s['runs']} measured "
            f"rounds per row; {s.get('method')}. fps = 1000 / mean latency; load = from a fresh process to a ready "
            f"model; cold = its first inference." + (f" AP on {data['count']} images of {data['annotations']}."
                                                      if data else ""))


def device_tables(report: dict) -> list[Table]:
    ok = ok_rows(report)
    lat = [[r["model"], r["target"], r["precision"], r["threads"], size_text(r), r["latency_ms"]["p50"],
            r["latency_ms"]["p90"], r["latency_ms"]["p99"], r["latency_ms"]["mean"], r["latency_ms"]["std"], r["fps"],
            r.get("cold_ms"), r.get("load_ms")] for r in ok]
    stages = [[r["model"], r["threads"], size_text(r), *(r["stages_ms"].get(k) for k, _ in STAGES),
               r["latency_ms"]["p50"]] for r in ok]
    res = [[r["model"], r["threads"], size_text(r), r["peak_rss_mb"], r.get("rss_before_load_mb"), r["size_mb"],
            r.get("detections_per_image"), r.get("mask_ap"), r.get("box_ap"), r.get("mask_ap50"), r.get("box_ap50")]
           for r in ok]
    tables = [Table("Device", ["what", "measured on"], [list(kv) for kv in device_rows(report["device"])],
                    settings_text(report)),
            Table("Latency (ms) and throughput", ["model", "target", "precision", "threads", "size", "p50", "p90",
                                                  "p99", "mean", "std", "fps", "cold ms", "load ms"], lat),
            Table("Per stage, p50 ms", ["model", "threads", "size", *(n for _, n in STAGES), "end to end"], stages),
            Table("Memory, size and accuracy", ["model", "threads", "size", "peak RSS MB", "RSS before load MB",
                                                "file MB", "detections / image", "mask AP", "box AP", "mask AP50",
                                                "box AP50"], res)]
    extra = [t for t in (throughput_table(report), streams_table(report), against_fp32_table(report)) if t]
    return tables[:3] + extra + tables[3:]


def against_fp32_table(report: dict) -> Table | None:
    """Each FP16/BF16/INT8 row against the FP32 row of its target, input, threads and size in the same run: the AP it
    gives up and the speed it gains (None when no row has such a twin)."""
    ok = ok_rows(report)

    def key(r):
        return r["target"], tuple(r.get("input_hw") or ()), r["threads"], size_text(r), r.get("maskiou", True)

    fp32 = {key(r): r for r in ok if r["precision"] == "fp32"}
    rows = []
    for r in ok:
        twin = fp32.get(key(r))
        if r["precision"] == "fp32" or twin is None:
            continue
        d = (lambda k: None if r.get(k) is None or twin.get(k) is None else round(r[k] - twin[k], 2))
        rows.append([r["model"], r["threads"], size_text(r), d("mask_ap"), d("box_ap"),
                     f"{twin['latency_ms']['p50'] / r['latency_ms']['p50']:.2f}x",
                     f"{twin['size_mb'] / r['size_mb']:.1f}x smaller" if r.get("size_mb") else None])
    if not rows:
        return None
    return Table("Against FP32", ["model", "threads", "size", "mask AP - FP32", "box AP - FP32", "p50 speed-up",
                                  "file"], rows,
                 "Each row against the FP32 row of the same target, input, threads and size, measured in this run.")


def throughput_table(report: dict) -> Table | None:
    """Images per second of a stream in each mode, with the rounds' spread, against the graphs' bound (None if not
    measured)."""
    rows = []
    for r in ok_rows(report):
        t, bound = r.get("throughput"), r.get("graph_bound_fps")
        if not t:
            continue

        def cell(x):
            if not x or not x.get("images_per_s"):
                return "no lanes" if x and x.get("skipped") else None
            rounds = x.get("rounds") or [x["images_per_s"]]
            pct = f" ({100 * x['images_per_s'] / bound:.0f}%)" if bound else ""
            return f"{x['images_per_s']:.1f} {min(rounds):.1f}-{max(rounds):.1f}{pct}"
        ran = {m: x for m, x in t.items() if x.get("images_per_s")}
        best = max(ran, key=lambda m: ran[m]["images_per_s"], default=None)
        seq = ran.get("sequential", {}).get("images_per_s")
        gain = f"{ran[best]['images_per_s'] / seq:.2f}x" if best and seq else None
        rows.append([r["model"], r["threads"], size_text(r), bound, cell(t.get("sequential")), cell(t.get("overlap")),
                     cell(t.get("throughput")), best, gain, ran.get("sequential", {}).get("latency_ms"),
                     ran[best]["latency_ms"] if best else None])
    if not rows:
        return None
    n = report["settings"].get("throughput_images")
    return Table("Throughput: images per second of a stream (median, the rounds' range, % of the graph bound)",
                 ["model", "threads", "size", "graph bound", "sequential", "overlap", "throughput", "fastest",
                  "fastest / sequential", "latency seq ms", "latency fastest ms"], rows,
                 f"Each row streams {n} of the bench images per mode (runtimes/modes/), twice, interleaved: images "
                 f"over the seconds from the first result to the last. The graph bound is 1000 / (graph 1 p50 + "
                 f"graph 2 p50) of the latency rounds, where each graph ran alone with all the row's threads. "
                 f"Latency: from taking an image to its result, the median.")


def streams_table(report: dict) -> Table | None:
    """N streams at once per row: total images per second in the latency mode and the throughput mode, the
    slowest stream against the mean and the latency (None if not measured)."""
    rows = []
    for r in ok_rows(report):
        by = {(e["streams"], e["mode_asked"]): e for e in r.get("streams") or []}
        one = (by.get((1, "sequential")) or {}).get("images_per_s")
        for n in sorted({k[0] for k in by}):
            seq, tp = by.get((n, "sequential"), {}), by.get((n, "throughput"), {})
            best = max((e for e in (seq, tp) if e.get("images_per_s")), key=lambda e: e["images_per_s"], default={})
            lat = best.get("latency_ms") or {}
            rows.append([r["model"], r["threads"], n, seq.get("images_per_s"),
                         tp.get("images_per_s") or ("no lanes" if tp.get("skipped") else None),
                         f"{best['images_per_s'] / one:.2f}x" if one and best else None,
                         None if best.get("slowest_of_mean") is None else f"{100 * best['slowest_of_mean']:.0f}%",
                         lat.get("p50"), lat.get("p90"), lat.get("p99")])
    if not rows:
        return None
    n = report["settings"].get("throughput_images") or 48
    return Table("Streams: images per second of N streams at once",
                 ["model", "threads", "streams", "latency mode", "throughput mode", "best / 1 stream latency mode",
                  "slowest stream of mean", "latency p50 ms", "p90", "p99"], rows,
                 f"Each row runs N streams of {n} bench images each, served in turn through one model: the latency "
                 f"mode (sequential) and the throughput mode (lanes of model replicas with the threads split), twice, "
                 f"interleaved; the round with the median total kept. The last four columns are the faster mode's.")


def row_key(r: dict) -> tuple:
    return r["model"], r["threads"], size_text(r)


def _side_by_side(reports: list[dict], title: str, value) -> Table:
    """Rows (model, threads, size) x one column per device of value(result)."""
    keys: dict[tuple, dict] = {}
    for rep in reports:
        for r in ok_rows(rep):
            keys.setdefault(row_key(r), r)
    rows = []
    for key, first in keys.items():
        hits = [next((r for r in ok_rows(rep) if row_key(r) == key), None) for rep in reports]
        rows.append([key[0], first["target"], first["precision"], key[1], key[2],
                     *(value(h) if h else None for h in hits)])
    return Table(title, ["model", "target", "precision", "threads", "size",
                         *(rep["device"]["name"] for rep in reports)], rows)


def comparison_tables(reports: list[dict]) -> list[Table]:
    fields = list(dict.fromkeys(k for rep in reports for k, _ in device_rows(rep["device"])))
    dev = [[f, *(dict(device_rows(rep["device"])).get(f) for rep in reports)] for f in fields]
    out = [Table("Devices", ["", *(rep["device"]["name"] for rep in reports)], dev),
           _side_by_side(reports, "Latency p50 and fps, side by side",
                         lambda r: f"{r['latency_ms']['p50']:.1f} ms / {r['fps']:.1f} fps")]
    if any(r.get("mask_ap") is not None for rep in reports for r in rep["results"]):
        out.append(_side_by_side(reports, "Mask AP / box AP, side by side",
                                 lambda r: None if r.get("mask_ap") is None else f"{r['mask_ap']:.1f} / {r['box_ap']:.1f}"))
    out.append(_side_by_side(reports, "Peak memory (RSS MB), side by side", lambda r: r["peak_rss_mb"]))
    return out
