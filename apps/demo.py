"""`cmlite demo`: the whole toolkit on the embedded default model, offline, in one command.

Regenerates the default model's validation set and a few training images (deterministic), converts the model to
every target and precision, quantizes it to INT8 for every CPU target (calibrated on training frames, never on the
validation set), measures each (and the PyTorch model) with `cmlite bench`'s code (COCO AP on the validation
set, latency in a process of its own), runs the camera app on a short synthetic clip with the fastest INT8 model
(the overlaid clip is written and played in the report), draws a few validation images, prints one table and
writes the report. A second run in the same folder reuses what is up to date (folders converted or quantized
from this model with these settings by this cmlite, the data, the clip).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from cmlite.runtimes.errors import CmliteError
from cmlite.runtimes.target_table import CPU_TARGETS, folder_name
from cmlite.runtimes.target_table import get as target_row

from .table import plural

# the default model's validation split: `cmlite data synth --seed 0 --size 320` (val images depend only on
# the seed, the split and the index, so any --train count gives the same val set)
VAL_SEED, VAL_SIZE = 0, 320
CALIB_FRAMES = 32  # training images the INT8 models are calibrated on
CLIP_FRAMES = 150  # the live clip: 5 s of the moving scene at 30 fps, 640x480


def _by_input(targets) -> list[tuple[list[str], tuple[int, int] | None]]:
    """The targets in two groups: dynamic input, and fixed input made at the val images' frame size (320x320), as
    one converts for a camera's frame size; at the default 4:3 frame (320x448) these square images would be padded
    (-1.0 AP on TFLite)."""
    groups = ([t for t in targets if not target_row(t).fixed_input], None), \
        ([t for t in targets if target_row(t).fixed_input], (VAL_SIZE, VAL_SIZE))
    return [(group, hw) for group, hw in groups if group]


def convert_default(model, models_dir: Path, targets=CPU_TARGETS, precisions=("fp32", "fp16"),
                    log=print) -> list[Path]:
    """The demo's folders: dynamic ONNX Runtime / OpenVINO, TFLite at the val frame; up-to-date ones reused."""
    from cmlite import lite
    from cmlite.converters.convert import convert, up_to_date

    folders = []
    for group, hw in _by_input(targets):
        kept = [models_dir / folder_name(t, p) for t in group for p in precisions]
        if all(up_to_date(f, model, lite.DEFAULT_WEIGHTS, hw) is None for f in kept):  # a second `cmlite demo`
            log(f"  reusing {', '.join(f.name for f in kept)} (converted from this model by this cmlite)")
            folders += kept
        else:
            folders += convert(model, models_dir, group, list(precisions), fixed_hw=hw,
                               source=lite.DEFAULT_WEIGHTS, log=lambda m: log(m), overwrite=True)
    return folders


def quantize_default(model, models_dir: Path, data: Path, calib_count: int, targets=CPU_TARGETS,
                     log=print) -> list[Path]:
    """The demo's INT8 folders: calibrated on `calib_count` training images, the same plan (nothing kept float) on
    every target; ONNX Runtime and OpenVINO dynamic, TFLite at the val frame as its FP32 folder. The FP32 folders
    beside are the twins; up-to-date INT8 folders are reused."""
    from cmlite import lite
    from cmlite.calibration.frames import read_frames
    from cmlite.calibration.quantize import quantize

    frames = read_frames(str(data / "annotations" / "instances_train.json"), calib_count,
                         images_dir=str(data / "train"), progress=False)
    folders = []
    for group, hw in _by_input(targets):
        folders += quantize(model, models_dir, group, frames, keep_float=[], fixed_hw=hw, source=lite.DEFAULT_WEIGHTS,
                            log=log, overwrite=True, fp32_dirs=[models_dir], reuse=True)
    return folders


def live_run(folder: Path, clip: Path, out: Path, threads: int, log=print) -> dict:
    """`cmlite camera --source CLIP --model FOLDER --record OUT`'s own code, headless: the summary it writes. Auto
    first measures its modes on the clip looped (`cmlite camera --tune`) unless it remembers a choice for this
    model and device, so the recorded run runs the chosen mode from its first frame, as a user's second run does."""
    from cmlite import runtimes

    from .camera.loop import CameraOptions, auto_memory, run_camera
    from .camera.sources import open_source

    seg = runtimes.load(folder, threads=threads, maskiou=False)  # as the camera runs by default
    tuning = None
    if auto_memory(seg, [open_source(str(clip))], threads).recall() is None:
        log("  auto: measuring sequential, overlap and throughput on the clip, looped (remembered for later runs)")
        tuning = run_camera(seg, open_source(str(clip)), CameraOptions(window=False, tune=True, loop=True, log=log),
                            threads=threads)
    s = run_camera(seg, open_source(str(clip)), CameraOptions(window=False, record=str(out), log=log), threads=threads)
    return s | {"tuning_frames": tuning["frames"] if tuning else 0}


def run_demo(out: Path, val_images: int = 200, threads: int = 2, targets=CPU_TARGETS, precisions=("fp32", "fp16"),
             runs: int = 10, calib_count: int = CALIB_FRAMES, clip_frames: int = CLIP_FRAMES, log=print) -> dict:
    """Returns the benchmark report (also written to OUT/report/: report.json, report.md, report.html)."""
    import cv2

    from cmlite import lite
    from cmlite import runtimes
    from cmlite.calibration.synth import generate
    from cmlite.calibration.synth_scene import clip_once

    from .reports.bench import bench_images, run_bench
    from .reports.bench_worker import RowSpec
    from cmlite.runtimes.images import read_bgr
    from .reports.report import write_report
    from .table import format_table
    from .visualize import draw

    out = Path(out)
    data = out / "data"
    if not _has_data(data, calib_count, val_images):
        log(f"generating the validation set ({val_images} images) and {calib_count} training images in {data} ...")
        generate(data, calib_count, val_images, VAL_SIZE, VAL_SEED, overwrite=data.exists())
    ann, images = data / "annotations" / "instances_val.json", data / "val"
    model = lite.load_model("default")
    log(f"converting the default model ({model.variant.name}, {len(model.class_names)} classes) ...")
    folders = convert_default(model, out / "models", targets, precisions, log)
    log(f"quantizing it to INT8 for {', '.join(targets)} (calibrated on {calib_count} training images) ...")
    folders += quantize_default(model, out / "models", data, calib_count, targets, log)
    # speed and AP through `cmlite bench`'s code: each model in its own process, interleaved, so no figure
    # here disagrees with `cmlite bench` (models sharing one process distorted the PyTorch latency 10x)
    warmup = 2
    specs = [RowSpec("weights", "default", threads)] + [RowSpec("model", str(f), threads) for f in folders]
    log(f"measuring {plural(len(specs), 'model')}: latency over {plural(runs, 'round')}, AP on the validation "
        f"set ...")
    report = run_bench(specs, bench_images([str(images)], warmup + runs), runs, warmup,
                       data=(str(ann), str(images), None), log=log, command="cmlite demo")
    int8 = [r for r in report["results"] if r["precision"] == "int8" and not r["error"]]
    if int8:
        fastest = min(int8, key=lambda r: r["latency_ms"]["p50"])
        log(f"the camera app on a {clip_frames}-frame synthetic clip with {fastest['model']}, the fastest INT8 "
            f"model ...")
        clip = clip_once(data / "clip.avi", clip_frames)
        s = live_run(Path(fastest["path"]), clip, out / "live.webm", threads, log)
        report["live"] = {"model": fastest["model"], "path": fastest["path"], "clip": s["recording"],
                          "frames": s["frames"], "fps": s["fps_mean"], "latency_ms": s["latency_ms"],
                          "mode": s["mode"], "running": s["running"], "auto": s.get("auto"),
                          "tuning_frames": s["tuning_frames"], "fps_per_second": s["fps_per_second"],
                          "maskiou": s["maskiou"], "threads": threads, "source": s["source"],
                          "stages_ms_p50": s["stages_ms_p50"], "cpu_load": s["cpu_load"]}
    paths = write_report(report, out / "report", log=log)
    vis = out / "vis"
    vis.mkdir(parents=True, exist_ok=True)
    seg = runtimes.load(folders[len(targets) * len(precisions) - 1], threads=threads)
    for p in sorted(images.iterdir())[:6]:
        cv2.imwrite(str(vis / p.name), draw(read_bgr(p), seg.predict(read_bgr(p)), min_score=0.5))  # as the camera
    print(format_table(["target (fixed input)", "precision", "mask AP", "box AP", "mask AP50", "box AP50",
                        "p50 ms", "fps", "MB", "mask AP vs fp32", "speed vs fp32"], demo_rows(report),
                       floatfmt=".1f"))
    n = report["settings"]["data"]["count"]
    live = report.get("live")
    if live:
        print(live_line(live))
    print(f"{plural(n, 'validation image')}; latency: {plural(runs, 'round')}, {plural(threads, 'thread')}, one "
          f"process per model (`cmlite bench`); INT8 calibrated on {calib_count} training images. Pictures in "
          f"{vis}/, models in {out / 'models'}/, report in {paths[2]} (and {paths[1].name}, {paths[0].name})")
    return report


def live_line(live: dict) -> str:
    """The demo's live figure: frames over seconds of the recorded run, the mode auto chose and why."""
    auto, per = live.get("auto") or {}, live.get("fps_per_second")
    chosen = (f"auto chose {auto['chosen']}" + (" (remembered)" if auto.get("remembered") else
                                                 f" after {plural(live.get('tuning_frames') or 0, 'trial frame')}")
              + f": {auto['why']}") if auto.get("chosen") else live.get("mode")
    return (f"live: {live['fps']:.1f} fps on {live['model']} ({plural(live['frames'], 'frame')} of a 640x480 "
            f"synthetic clip over the seconds they took" + (f", {per['min']:.1f}-{per['max']:.1f} over each second"
                                                            if per else "")
            + f"; latency p50 {live['latency_ms']['p50']:.0f} ms; {chosen}) -> {live['clip']}")


def _has_data(data: Path, n_train: int, n_val: int) -> bool:
    try:
        counts = [len(json.loads((data / "annotations" / f"instances_{s}.json").read_text())["images"])
                  for s in ("train", "val")]
    except (OSError, ValueError, KeyError):
        return False
    return counts == [n_train, n_val]


def demo_rows(report: dict) -> list[list]:
    """The demo's table: each row's AP and speed, and against its FP32 twin (same target and input) the mask AP
    difference and the speed-up of p50, both from this one run."""
    rows = report["results"]
    fp32 = {(r["target"], tuple(r.get("input_hw") or ())): r for r in rows if r["precision"] == "fp32"}
    out = []
    for r in rows:
        if r["error"]:
            out.append([r["model"], r["precision"], *([None] * 4), r["error"], None, None, "", ""])
            continue
        twin = fp32.get((r["target"], tuple(r.get("input_hw") or ())))
        vs = twin is not None and r is not twin and None not in (twin.get("mask_ap"), r.get("mask_ap"))
        out.append([r["target"] + (f" {r['input_hw'][0]}x{r['input_hw'][1]}" if r.get("input_hw") else ""),
                    r["precision"], r["mask_ap"], r["box_ap"], r["mask_ap50"], r["box_ap50"], r["latency_ms"]["p50"],
                    r["fps"], r["size_mb"], f"{round(r['mask_ap'] - twin['mask_ap'], 1) + 0.0:+.1f}" if vs else "",
                    f"{twin['latency_ms']['p50'] / r['latency_ms']['p50']:.2f}x" if vs else ""])
    return out


def cmd_demo(args) -> None:
    from .model_args import need_torch

    need_torch("cmlite demo (it converts the default model)", extra="all")
    from cmlite.converters.folders import check_dir_path

    check_dir_path(args.out)
    for flag, v in (("--val-images", args.val_images), ("--calib-count", args.calib_count),
                    ("--clip-frames", args.clip_frames)):
        if v < 1:
            raise CmliteError(f"{flag} {v}: give at least 1")
    run_demo(Path(args.out), args.val_images, args.threads, calib_count=args.calib_count,
             clip_frames=args.clip_frames, log=lambda m: print(m, file=sys.stderr))


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="the whole toolkit on the embedded default model (convert, quantize, eval, "
                                    "camera, report)",
                       description="Converts the embedded default model to every target and precision, quantizes "
                                   "it to INT8 for every CPU target, measures and evaluates each on its validation "
                                   "set, runs the camera app on a synthetic clip with the fastest INT8 model and "
                                   "prints one table; the report plays the clip.")
    p.add_argument("--out", default="out", help="output folder (default out/)")
    p.add_argument("--val-images", type=int, default=200, help="validation images (default 200)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("--calib-count", type=int, default=32, help="training images INT8 is calibrated on (default 32)")
    p.add_argument("--clip-frames", type=int, default=CLIP_FRAMES,
                   help=f"frames of the live clip (default {CLIP_FRAMES})")
    p.set_defaults(func=cmd_demo)
