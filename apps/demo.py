"""`cmlite demo`: the whole toolkit on the embedded default model, offline, in one command.

Regenerates the default model's validation set (deterministic), converts the model to every target and
precision (a second run in the same folder reuses the folders converted from this model by this cmlite),
measures each (and the PyTorch model) with `cmlite bench`'s code (COCO AP on the validation set, latency in a
process of its own), draws a few validation images, prints one table and writes the report.
"""
from __future__ import annotations

import sys
from pathlib import Path

from runtimes.errors import CmliteError

# the default model's validation split: `cmlite data synth --seed 0 --size 320` (val images depend only on
# the seed, the split and the index, so any --train count gives the same val set)
VAL_SEED, VAL_SIZE = 0, 320


def _up_to_date(folder: Path, fixed_hw) -> bool:
    """A folder converted from the embedded default by this cmlite, with its input size, files intact."""
    import lite
    import runtimes
    from runtimes import __version__
    from runtimes.manifest import sha256

    try:
        m = runtimes.read_manifest(folder)
        m.verify_files(folder)
    except CmliteError:
        return False
    p = m.provenance
    return (m.fixed_hw == (tuple(fixed_hw) if fixed_hw else None) and p.get("source_sha256") == sha256(
        lite.DEFAULT_WEIGHTS) and (p.get("tools") or {}).get("cmlite") == __version__)


def convert_default(model, models_dir: Path, targets=("onnx", "openvino", "tflite"), precisions=("fp32", "fp16"),
                    log=print) -> list[Path]:
    """The demo's folders: dynamic ONNX Runtime / OpenVINO, TFLite at the val frame; up-to-date ones reused."""
    import lite
    from converters.convert import convert

    # TFLite graphs have a fixed input: made at the val images' frame size (320x320), as one converts for a
    # camera's frame size; at the default 4:3 frame (320x448) these square images would be padded (-1.0 AP)
    dynamic = [t for t in targets if t != "tflite"]
    folders = []
    for group, hw in ((dynamic, None), (["tflite"] if "tflite" in targets else [], (VAL_SIZE, VAL_SIZE))):
        if not group:
            continue
        kept = [models_dir / f"{t}-{p}" for t in group for p in precisions]
        if all(_up_to_date(f, hw) for f in kept):  # a second `cmlite demo` in the same folder
            log(f"  reusing {', '.join(f.name for f in kept)} (converted from this model by this cmlite)")
            folders += kept
        else:
            folders += convert(model, models_dir, group, list(precisions), fixed_hw=hw,
                               source=lite.DEFAULT_WEIGHTS, log=lambda m: log(m))
    return folders


def run_demo(out: Path, val_images: int = 200, threads: int = 2, targets=("onnx", "openvino", "tflite"),
             precisions=("fp32", "fp16"), runs: int = 10, log=print) -> dict:
    """Returns the benchmark report (also written to OUT/report/: report.json, report.md, report.html)."""
    import cv2

    import lite
    import runtimes
    from calibration.synth import generate

    from .bench import bench_images, run_bench
    from .bench_worker import RowSpec
    from .images import read_bgr
    from .report import write_report
    from .table import format_table
    from .visualize import draw

    out = Path(out)
    data = out / "data"
    if not (data / "annotations" / "instances_val.json").is_file():
        log(f"generating the validation set ({val_images} images) in {data} ...")
        generate(data, 0, val_images, VAL_SIZE, VAL_SEED, overwrite=data.exists())
    ann, images = data / "annotations" / "instances_val.json", data / "val"
    model = lite.load_model("default")
    log(f"converting the default model ({model.variant.name}, {len(model.class_names)} classes) ...")
    folders = convert_default(model, out / "models", targets, precisions, log)
    # speed and AP through `cmlite bench`'s code: each model in its own process, interleaved, so no figure
    # here disagrees with `cmlite bench` (models sharing one process distorted the PyTorch latency 10x)
    warmup = 2
    specs = [RowSpec("weights", "default", threads)] + [RowSpec("model", str(f), threads) for f in folders]
    log(f"measuring {len(specs)} models: latency over {runs} rounds, AP on the validation set ...")
    report = run_bench(specs, bench_images([str(images)], warmup + runs), runs, warmup,
                       data=(str(ann), str(images), None), log=log, command="cmlite demo")
    paths = write_report(report, out / "report", log=log)
    vis = out / "vis"
    vis.mkdir(parents=True, exist_ok=True)
    seg = runtimes.load(folders[-1], threads=threads)
    for p in sorted(images.iterdir())[:6]:
        cv2.imwrite(str(vis / p.name), draw(read_bgr(p), seg.predict(read_bgr(p)), min_score=0.5))  # as the camera
    rows = [[r["target"] + (f" {r['input_hw'][0]}x{r['input_hw'][1]}" if r.get("input_hw") else ""),
             r["precision"], r["mask_ap"], r["box_ap"], r["mask_ap50"], r["box_ap50"],
             r["latency_ms"]["p50"] if not r["error"] else r["error"], r["fps"], r["size_mb"]]
            for r in report["results"]]
    print(format_table(["target (fixed input)", "precision", "mask AP", "box AP", "mask AP50", "box AP50",
                        "p50 ms", "fps", "MB"], rows, floatfmt=".1f"))
    n = report["settings"]["data"]["count"]
    print(f"{n} validation images; latency: {runs} rounds, {threads} threads, one process per model "
          f"(`cmlite bench`). Pictures in {vis}/, converted models in {out / 'models'}/, report in {paths[2]} "
          f"(and {paths[1].name}, {paths[0].name})")
    return report


def cmd_demo(args) -> None:
    from .model_args import need_torch

    need_torch("cmlite demo (it converts the default model)", extra="all")
    from converters.folders import check_dir_path

    check_dir_path(args.out)
    try:
        run_demo(Path(args.out), args.val_images, args.threads, log=lambda m: print(m, file=sys.stderr))
    except ValueError as e:
        raise CmliteError(str(e)) from None
