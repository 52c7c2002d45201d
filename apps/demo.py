"""`cmlite demo`: the whole toolkit on the embedded default model, offline, in one command.

Regenerates the default model's validation set (deterministic), converts the model to every target and
precision, evaluates each (and the PyTorch model) with COCO AP, draws a few validation images, and
prints one table: target, precision, mask AP, box AP, median latency.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from runtimes.errors import CmliteError

# the default model's validation split: `cmlite data synth --seed 0 --size 320` (val images depend only on
# the seed, the split and the index, so any --train count gives the same val set)
VAL_SEED, VAL_SIZE = 0, 320


def run_demo(out: Path, val_images: int = 200, threads: int = 2, targets=("onnx", "openvino", "tflite"),
             precisions=("fp32", "fp16"), log=print) -> list[dict]:
    import cv2

    import lite
    import runtimes
    from calibration.synth import generate
    from converters.convert import convert

    from .evaluate import evaluate
    from .images import read_bgr
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
    folders = convert(model, out / "models", list(targets), list(precisions), source=lite.DEFAULT_WEIGHTS,
                      log=lambda m: log(m))
    rows, report = [], []
    segs = [("pytorch", "fp32", lite.predictor(model, threads=threads))] + \
           [(runtimes.read_manifest(f).target, runtimes.read_manifest(f).precision, runtimes.load(f, threads=threads))
            for f in folders]
    for target, precision, seg in segs:
        log(f"evaluating {target} {precision} ...")
        m, _ = evaluate(seg, ann, images)
        rows.append([target, precision, m["mask_ap"], m["box_ap"], m["mask_ap50"], m["box_ap50"], m["median_ms"]])
        report.append({"target": target, "precision": precision, "device": seg.device, **m})
    vis = out / "vis"
    vis.mkdir(parents=True, exist_ok=True)
    seg = segs[-1][2]
    for p in sorted(images.iterdir())[:6]:
        cv2.imwrite(str(vis / p.name), draw(read_bgr(p), seg.predict(read_bgr(p)), min_score=0.3))
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(format_table(["target", "precision", "mask AP", "box AP", "mask AP50", "box AP50", "median ms"], rows,
                       floatfmt=".1f"))
    print(f"{len(report[0:1]) and report[0]['images']} validation images, {threads} threads; pictures in {vis}/, "
          f"converted models in {out / 'models'}/, report in {out / 'report.json'}")
    return report


def cmd_demo(args) -> None:
    try:
        run_demo(Path(args.out), args.val_images, args.threads, log=lambda m: print(m, file=sys.stderr))
    except ValueError as e:
        raise CmliteError(str(e)) from None
