"""`cmlite bench`: speed, memory and accuracy of models on this device, as a report that merges across devices.

Each row (model x threads x test size) runs in its own spawned process (thread pools of different runtimes in
one process contend: on 2 cores that distorted figures by up to 2.5x, and the demo's PyTorch figure by 10x).
Models load one at a time (load time and the first, cold inference are measured alone); then the parent runs
the rows round by round, one inference per row per round on the same image, so all rows share the machine's
noise. With --data, each (model, size) is evaluated once (COCO mask and box AP, `cmlite eval`'s code).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.pipeline import STAGES, host_cpu_ms
from cmlite.runtimes.target_table import NAMES

from .bench_worker import RowSpec, worker
from ..latency_stats import summarize
from ..model_args import comma_ints
from ..table import format_table, plural



def find_models(models_dir: str | Path) -> list[Path]:
    """The converted model folders (those with a manifest.json) directly inside `models_dir`, sorted."""
    d = Path(models_dir)
    if not d.is_dir():
        raise CmliteError(f"--models-dir {d}: no such folder (give the --out folder of `cmlite convert`)")
    found = sorted(p for p in d.iterdir() if (p / "manifest.json").is_file())
    if not found:
        raise CmliteError(f"--models-dir {d}: no converted model folders in it (folders with a manifest.json, "
                          f"as `cmlite convert --out {d}` writes)")
    return found


def parse_threads(text: str | None) -> list[int]:
    if not text:
        cores = os.cpu_count() or 1
        return sorted({1, cores})
    values = comma_ints(text, "--threads", "1,2,4")
    if not values or min(values) < 1:
        raise CmliteError(f"--threads {text!r}: every thread count must be at least 1")
    return list(dict.fromkeys(values))


def parse_size(text: str) -> tuple[int, int | None]:
    """'320/533' -> (320, 533); '600' -> (600, None: the model's long-side cap)."""
    try:
        parts = [int(v) for v in text.split("/")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 32 or (len(parts) == 2 and parts[1] < parts[0]):
        raise CmliteError(f"--size {text!r}: give SHORT/LONG test sizes in pixels, e.g. 320/533 or 600/1000 "
                          f"(at least 32, long side not below short)")
    return parts[0], (parts[1] if len(parts) == 2 else None)


def plan_rows(models: list[str], weights: list[str], threads: list[int],
              sizes: list[tuple[int, int | None]] | None, maskiou: tuple[bool, ...] = (True,),
              backend: str | None = None) -> list[RowSpec]:
    sources = [("weights", w) for w in weights] + [("model", m) for m in models]
    if not sources:
        raise CmliteError("no models to bench: give --model DIR (repeatable), --models-dir DIR or --weights CKPT")
    return [RowSpec(kind, src, t, size, maskiou=iou, backend=backend if kind == "model" else None)
            for kind, src in sources for iou in maskiou for size in (sizes or [None]) for t in threads]


def _check_runs(runs: int, warmup: int, max_procs: int | None = None) -> None:
    if runs < 1 or warmup < 0:
        raise CmliteError(f"--runs {runs} --warmup {warmup}: give at least 1 run and no negative warm-up")
    if max_procs is not None and max_procs < 1:
        raise CmliteError(f"--max-procs {max_procs}: give at least 1")


def bench_images(paths: list[str], count: int) -> list[Path]:
    """The first `count` images (the rows cycle through them); each one is decoded here first, so a bad file
    stops the run before any model loads."""
    from cmlite.runtimes.images import expand_images, read_bgr

    images = expand_images(paths)[:count]
    if not images:
        raise CmliteError("no images: give --images FILE or FOLDER")
    for p in images:
        read_bgr(p)  # ImageError names the file and the cause
    return images


class _Row:
    """The parent's end of one row's process."""

    def __init__(self, ctx, spec: RowSpec, images: list[Path], timeout: float | None = None):
        self.spec, self.samples, self.info, self.error, self.metrics = spec, [], None, None, None
        self.throughput: dict | None = None
        self.streams: list[dict] | None = None
        self.timeout = timeout  # seconds the process may go without a word (an answer or a tick): then it is hung
        self.timed_out = False
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker, args=(child, spec, [str(p) for p in images]), daemon=True)
        self.proc.start()
        child.close()  # so that a dead worker reads as EOF here

    @property
    def alive(self) -> bool:
        return self.error is None

    def ask(self, *msg, on_tick=None):
        """Send a command and wait for its answer; ticks (progress) go to on_tick. Raises RuntimeError, also when
        the process says nothing for `timeout` seconds (it is killed then: a model that never returns)."""
        try:
            self.conn.send(msg)
            while True:
                if self.timeout and not self.conn.poll(self.timeout):
                    self.proc.kill()
                    self.proc.join(timeout=5)
                    self.timed_out = True
                    raise RuntimeError(f"no answer to {msg[0]!r} in {self.timeout:g} s, so the row's process was "
                                       f"killed (a model that never returns? --row-timeout sets the limit)")
                reply = self.conn.recv()
                if reply[0] == "tick":
                    if on_tick:
                        on_tick()
                    continue
                if reply[0] == "error":
                    raise RuntimeError(reply[1])
                return reply[1]
        except (EOFError, BrokenPipeError, ConnectionResetError):
            self.proc.join(timeout=5)
            raise RuntimeError(f"the row's process died (exit code {self.proc.exitcode})") from None

    def close(self) -> None:
        try:
            self.conn.send(("stop",))
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=5)
        self.conn.close()


def _labels(rows: list[_Row]) -> list[str]:
    """Short unique names: 'onnx-fp32'; with several variants 'V-19-eSE onnx-fp32'; clashes add the folder.
    A row that did not load is named by its path as given."""
    variants = {r.info["variant"] for r in rows if r.info}
    names = []
    for r in rows:
        base = f"{r.info['target']}-{r.info['precision']}" if r.info else r.spec.source
        base += "" if r.spec.maskiou else " -maskiou"
        names.append(f"{r.info['variant']} {base}" if r.info and len(variants) > 1 else base)
    clash = [bool(r.info) and any(n == names[i] and o.info and o.spec.source != r.spec.source
                                  for n, o in zip(names, rows)) for i, r in enumerate(rows)]
    for i, r in enumerate(rows):  # the same name for different loaded sources: every one of them says its folder
        if clash[i]:
            p = Path(r.info["path"])
            names[i] = f"{names[i]} ({p.parent.name}/{p.name})"
    return names


def _result(row: _Row, label: str) -> dict:
    spec, info = row.spec, row.info or {}
    totals = [s["total"] for s in row.samples]
    lat = summarize(totals)
    m = row.metrics or {}
    out = {"model": label, "path": info.get("path", spec.source), "kind": spec.kind, "maskiou": spec.maskiou,
           "variant": info.get("variant"), "target": info.get("target"), "precision": info.get("precision"),
           "backend_device": info.get("device"), "threads": spec.threads,
           "size": info.get("size") or (list(spec.size) if spec.size else None), "input_hw": info.get("input_hw"),
           "latency_ms": lat, "latency_samples_ms": [round(t, 3) for t in totals],
           "fps": round(1e3 / lat["mean"], 3) if lat["mean"] else None,
           "stages_ms": {s: summarize(x["stages"][s] for x in row.samples)["p50"] for s in STAGES
                         if row.samples and s in row.samples[0]["stages"]},
           # the CPU of cmlite's own stages (the thread that ran each; the graphs' CPU is the runtime's)
           "stages_cpu_ms": {s: summarize(x["cpu"][s] for x in row.samples)["p50"] for s in STAGES
                             if row.samples and s in row.samples[0].get("cpu", {})},
           "host_cpu_ms": summarize(host_cpu_ms(x["cpu"]) for x in row.samples)["p50"]
           if row.samples and "cpu" in row.samples[0] else None,
           "load_ms": info.get("load_ms"), "cold_ms": info.get("cold_ms"),
           "peak_rss_mb": max((s["peak_rss_mb"] or 0 for s in row.samples), default=None) or None,
           "rss_before_load_mb": info.get("rss_before_load_mb"), "size_mb": info.get("size_mb"),
           "detections_per_image": round(sum(s["instances"] for s in row.samples) / len(row.samples), 3)
           if row.samples else None}
    for k in ("mask_ap", "box_ap", "mask_ap50", "box_ap50", "mask_ap75", "box_ap75"):
        out[k] = None if m.get(k) is None else round(m[k], 3)
    out["ap_images"] = m.get("images")
    st = out["stages_ms"]
    out["graph_bound_fps"] = round(1e3 / (st["graph1"] + st["graph2"]), 3) if "graph1" in st and "graph2" in st \
        else None
    out["throughput"] = row.throughput
    out["streams"] = row.streams
    out["eval_error"] = m.get("eval_error")  # AP not measured (e.g. a model of other classes than the data's)
    out["error"] = row.error
    out["timed_out"] = row.timed_out
    return out


def _key(spec: RowSpec) -> tuple:
    """Rows of one model at one size share their AP (thread counts do not change the detections)."""
    return spec.kind, spec.source, spec.size, spec.maskiou


ROW_TIMEOUT_S = 300.0  # default --row-timeout: long enough for a first inference of V-19 FP32 on a Pi 5
THROUGHPUT_MODES = ("sequential", "overlap", "throughput")
THROUGHPUT_ROUNDS = 2


def _rounds(rows: list[_Row], bar, asks: list[tuple], what: str, log, label) -> dict[int, dict[tuple, list[dict]]]:
    """THROUGHPUT_ROUNDS rounds, in each every row answering every command of `asks` (rows and commands
    interleaved, so all share the machine's noise): row index -> command -> its answers. A row that fails one
    keeps the error (named by label(command)) and is left out of the rest."""
    got: dict[int, dict[tuple, list[dict]]] = {}
    for i in range(THROUGHPUT_ROUNDS):
        bar.set_postfix_str(f"{what} {i + 1}/{THROUGHPUT_ROUNDS}")
        for ask in asks:
            for k, r in enumerate(rows):
                if not r.alive:
                    continue
                try:
                    got.setdefault(k, {}).setdefault(ask, []).append(r.ask(*ask))
                except RuntimeError as e:
                    r.error = f"{label(ask)} failed: {e}"
                    log(f"{r.spec.source} ({plural(r.spec.threads, 'thread')}): {r.error}")
                bar.update(1)
    return {k: v for k, v in got.items() if rows[k].alive}


def _throughput(rows: list[_Row], bar, count: int, log) -> None:
    """Each row streams `count` images in each mode, THROUGHPUT_ROUNDS times interleaved (row.throughput: mode ->
    {images_per_s: the median round, rounds: each round's, latency_ms} or {skipped: why})."""
    import statistics

    got = _rounds(rows, bar, [("throughput", mode, count) for mode in THROUGHPUT_MODES], "throughput", log,
                  lambda ask: f"throughput ({ask[1]})")
    for k, answers in got.items():
        rows[k].throughput = {}
        for ask, v in answers.items():
            done = [x for x in v if x.get("images_per_s")]
            rows[k].throughput[ask[1]] = {"images_per_s": statistics.median(x["images_per_s"] for x in done),
                                          "rounds": [x["images_per_s"] for x in done],
                                          "latency_ms": statistics.median(x["latency_ms"] for x in done)} \
                if done else v[0]


STREAM_MODES = ("sequential", "throughput")  # the latency mode, and lanes (runtimes/modes/throughput.py)


def _streams(rows: list[_Row], bar, counts: tuple[int, ...], images: int, log) -> None:
    """Each row runs N streams of `images` images each, for every N in counts and each of STREAM_MODES; the round
    with the median total is kept (row.streams: one entry per N and mode)."""
    asks = [("streams", n, mode, images) for n in counts for mode in STREAM_MODES]
    for k, answers in _rounds(rows, bar, asks, "streams", log, lambda ask: f"{ask[1]} streams ({ask[2]})").items():
        rows[k].streams = []
        for (_, n, mode, _), tries in answers.items():
            done = sorted((t for t in tries if t.get("images_per_s")), key=lambda t: t["images_per_s"])
            rows[k].streams.append({"streams": n, "mode_asked": mode, **(done[len(done) // 2] if done else tries[0])})


def _run_batch(rows: list[_Row], bar, warmup: int, runs: int, data, eval_images: int, metrics: dict, log,
               throughput: int = 0, streams: tuple[int, ...] = ()) -> None:
    """Load the rows one at a time, run them round by round, stream them for throughput, evaluate the (model,
    size) pairs not yet evaluated (in the row with the most threads); metrics: key -> metrics, filled in."""
    for r in rows:  # one at a time: load time and the cold inference are measured alone
        bar.set_postfix_str(f"loading {Path(r.spec.source).name} ({r.spec.threads} thr)")
        try:
            r.info = r.ask("load")
        except RuntimeError as e:
            r.error = f"load failed: {e}"
            log(f"{r.spec.source}: {r.error}")
        bar.update(1 + (warmup + runs) * (not r.alive))
    for i in range(warmup + runs):
        bar.set_postfix_str(f"round {i + 1}/{warmup + runs}")
        for r in rows:
            if not r.alive:
                continue
            try:
                sample = r.ask("run", i)
                if i >= warmup:
                    r.samples.append(sample)
                bar.update(1)
            except RuntimeError as e:
                r.error, r.samples = f"inference failed in round {i + 1}: {e}", []
                log(f"{r.spec.source} ({plural(r.spec.threads, 'thread')}): {r.error}")
                bar.update(warmup + runs - i)
    if throughput:
        _throughput(rows, bar, throughput, log)
    if streams:
        _streams(rows, bar, streams, throughput or 48, log)
    if not data:
        return
    evaluators: dict[tuple, _Row] = {}
    for r in rows:
        k = _key(r.spec)
        if r.alive and k not in metrics and (k not in evaluators or r.spec.threads > evaluators[k].spec.threads):
            evaluators[k] = r
    for k, r in evaluators.items():
        bar.set_postfix_str(f"eval {Path(r.spec.source).name}")
        done = [0]

        def tick():
            done[0] += 1
            bar.update(1)
        try:
            metrics[k] = r.ask("eval", str(data[0]), str(data[1]), data[2], on_tick=tick)
        except RuntimeError as e:
            metrics[k] = {"eval_error": str(e)}
            log(f"{r.spec.source}: evaluation failed: {e}")
        bar.update(eval_images - done[0])


def run_bench(specs: list[RowSpec], images: list[Path], runs: int = 20, warmup: int = 3,
              data: tuple[str, str, int | None] | None = None, device_name: str | None = None,
              progress: bool = True, log=None, command: str | None = None, max_procs: int | None = None,
              throughput: int = 0, row_timeout: float | None = ROW_TIMEOUT_S, streams: tuple[int, ...] = ()) -> dict:
    """Run the rows and return the report (the dict `report.json` holds). log: where a failing row is told
    as it happens (default: above the progress bar). max_procs: at most this many row processes at once (the
    rows run in consecutive batches, interleaved within each; for devices short of memory). throughput: images
    per stream when measuring each row's images per second, sequential and overlapped (0: not measured).
    row_timeout: seconds a row's process may go without answering (a load with its first inference, one run,
    one streamed or evaluated image) before it is killed and reported (None: wait for ever). streams: stream counts
    to run in the latency and the throughput mode, `throughput` images each (48 when 0)."""
    from cmlite.runtimes.progress import progress_bar

    from ..device_info import fingerprint
    from .report_schema import new_report

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    _check_runs(runs, warmup, max_procs)
    eval_images = 0
    if data:
        from cmlite.calibration.coco_eval import load_coco

        ann, image_dir, limit = data
        coco = load_coco(ann)
        if not Path(image_dir).is_dir():
            raise CmliteError(f"--data-images {image_dir}: no such folder (the images {ann} names)")
        eval_images = min(len(coco.getImgIds()), limit or sys.maxsize)
    device = fingerprint(device_name)
    ctx = mp.get_context("spawn")
    step = max_procs or len(specs)
    n_keys = len({_key(s) for s in specs})
    passes = THROUGHPUT_ROUNDS * (len(THROUGHPUT_MODES) * bool(throughput) + len(STREAM_MODES) * len(streams))
    bar = progress_bar(total=len(specs) * (1 + warmup + runs + passes) + eval_images * n_keys, desc="bench", unit="step",
               disable=not progress, file=sys.stderr)
    done_rows: list[_Row] = []
    metrics: dict[tuple, dict] = {}
    try:
        for b in range(0, len(specs), step):
            rows = []
            try:
                rows = [_Row(ctx, s, images, row_timeout) for s in specs[b:b + step]]
                _run_batch(rows, bar, warmup, runs, data, eval_images, metrics, log, throughput, streams)
            finally:
                for r in rows:
                    r.close()
            done_rows += rows
    finally:
        bar.close()
    for r in done_rows:
        if r.alive:
            r.metrics = metrics.get(_key(r.spec))
    labels = _labels(done_rows)
    settings = {"images": [p.name for p in images], "image_folder": str(Path(images[0]).parent),
                "runs": runs, "warmup": warmup, "threads": sorted({s.threads for s in specs}),
                "throughput_images": throughput, "row_timeout_s": row_timeout, "streams": list(streams),
                "sizes": list(dict.fromkeys(f"{s.size[0]}/{s.size[1] or 'model'}" for s in specs if s.size))
                or ["model default"],
                "data": {"annotations": str(data[0]), "images": str(data[1]), "count": eval_images} if data else None,
                "method": "one process per row; models loaded one at a time; rows interleaved round by round"
                          + (f", in batches of {step} processes" if step < len(specs) else ""),
                "command": command, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return new_report(device, settings, [_result(r, n) for r, n in zip(done_rows, labels)])


def parse_streams(text: str) -> tuple[int, ...]:
    counts = tuple(comma_ints(text, "--streams", "1,2,4,8"))
    if not counts or min(counts) < 1 or max(counts) > 64:
        raise CmliteError(f"--streams {text!r}: give a comma list of stream counts from 1 to 64, e.g. 1,2,4,8")
    return counts


def cmd_bench(args) -> int:
    from cmlite.converters.folders import check_dir_path

    from .report import write_report

    check_dir_path(args.out)
    if args.row_timeout < 0:
        raise CmliteError(f"--row-timeout {args.row_timeout}: give seconds (0 to wait for ever)")
    if args.throughput < 0:
        raise CmliteError(f"--throughput {args.throughput}: give a number of images (0 to leave it out)")
    if args.data_limit is not None and args.data_limit < 1:
        raise CmliteError(f"--data-limit {args.data_limit}: give at least 1 image (or leave it out for all)")
    threads = parse_threads(args.threads)
    streams = parse_streams(args.streams) if args.streams else ()
    _check_runs(args.runs, args.warmup, args.max_procs)
    sizes = [parse_size(s) for s in args.size] if args.size else None
    models = list(args.model or [])
    for d in args.models_dir or []:
        models += [str(p) for p in find_models(d)]
    specs = plan_rows(models, list(args.weights or []), threads, sizes,
                      {"on": (True,), "off": (False,), "both": (True, False)}[args.maskiou], args.backend)
    if args.weights:
        from ..model_args import need_torch

        need_torch("--weights", model_hint=True)
    if bool(args.data) != bool(args.data_images):
        raise CmliteError("--data and --data-images go together: the COCO annotations and the folder of its images")
    images = bench_images(args.images, args.warmup + args.runs)
    data = (args.data, args.data_images, args.data_limit) if args.data else None
    n_models = len(specs) // len(threads) // len(sizes or [None])
    print(f"bench: {plural(len(specs), 'row')} ({plural(n_models, 'model')} x {plural(len(threads), 'thread count')} "
          f"x {plural(len(sizes or [None]), 'size')}), {args.warmup} + {plural(args.runs, 'round')} on "
          f"{plural(len(images), 'image')}{', AP on ' + args.data if data else ''}", file=sys.stderr)
    report = run_bench(specs, images, args.runs, args.warmup, data, args.device_name,
                       command="cmlite " + " ".join(sys.argv[1:]), max_procs=args.max_procs,
                       throughput=args.throughput, row_timeout=args.row_timeout or None, streams=streams)
    paths = write_report(report, Path(args.out))
    from .report_md import speed_table
    from .report_tables import streams_table, throughput_table

    print(speed_table(report))
    for t in (throughput_table(report), streams_table(report)):  # --throughput, --streams
        if t is not None:
            print(f"\n{t.title}\n{format_table(t.headers, t.rows, floatfmt='.1f')}\n{t.note}")
    print("wrote " + ", ".join(str(p) for p in paths))
    failed = [r for r in report["results"] if r["error"]]
    for r in failed:
        print(f"cmlite: {r['model']} ({plural(r['threads'], 'thread')}): {r['error']}", file=sys.stderr)
    return 1 if failed else 0


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="speed, memory and accuracy of models on this device, as a report",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", metavar="DIR", help="a converted model folder (repeat for more)")
    p.add_argument("--models-dir", action="append", metavar="DIR",
                   help="every converted model folder in DIR (`cmlite convert --out`; repeatable)")
    p.add_argument("--weights", action="append", metavar="CKPT",
                   help="a checkpoint run in PyTorch ('default': the embedded default model; repeatable)")
    p.add_argument("--images", nargs="+", required=True, metavar="PATH",
                   help="image files or folders; the rows cycle through the first --warmup + --runs of them")
    p.add_argument("--threads", help="comma list of thread counts (default: 1 and all cores)")
    p.add_argument("--backend", choices=NAMES,
                   help="the runtime for every --model folder (default: each folder's own target); onnx runs "
                        "TensorRT folders' ONNX graphs in ONNX Runtime, off the device")
    p.add_argument("--maskiou", choices=("on", "off", "both"), default="on",
                   help="run graph 2 with the MaskIoU head, without it (mask score = box score), or rows of each "
                        "(default on)")
    p.add_argument("--size", action="append", metavar="S/M",
                   help="test size, short/long side, e.g. 320/533 (repeatable; default: each model's own)")
    p.add_argument("--runs", type=int, default=20, help="measured inferences per row (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="inferences per row before measuring (default 3)")
    p.add_argument("--throughput", type=int, default=48, metavar="N",
                   help="also stream N images per row, sequentially and overlapped (`--mode` of predict/camera), "
                        "for images per second against the graphs' bound (default 48; 0: not measured)")
    p.add_argument("--streams", metavar="N,N",
                   help="also run N streams at once per row (comma list, e.g. 1,2,4,8), in the latency mode and in "
                        "the throughput mode (lanes), --throughput images each: total images per second, each "
                        "stream's, and latency p50/p90/p99")
    p.add_argument("--data", metavar="ANN", help="COCO annotations: also measure mask and box AP")
    p.add_argument("--data-images", metavar="DIR", help="the folder of the images --data names")
    p.add_argument("--data-limit", type=int, metavar="N", help="evaluate only the first N images of --data")
    p.add_argument("--max-procs", type=int, metavar="N",
                   help="at most N row processes at once (default: all rows, interleaved together); for devices "
                        "short of memory")
    p.add_argument("--row-timeout", type=float, default=ROW_TIMEOUT_S, metavar="S",
                   help=f"kill a row whose process says nothing for S seconds (a load with its first inference, "
                        f"one run, one streamed or evaluated image) and report it; the other rows go on "
                        f"(default {ROW_TIMEOUT_S:g}; 0: wait for ever)")
    p.add_argument("--device-name", help="the device's name in reports (default: the host name)")
    p.add_argument("--out", required=True, metavar="DIR", help="report folder: report.json, report.md, report.html")
    p.set_defaults(func=cmd_bench)
