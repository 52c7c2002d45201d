"""The `cmlite` command."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from runtimes.errors import CmliteError

from .atomic import check_file_path, write_json_atomic
from .model_args import add_mode_arg, add_runtime_args, load_model, need_torch, config_overrides, parse_hw, segmenter
from .table import plural


def cmd_convert(args) -> None:
    need_torch("cmlite convert", extra="convert")
    from converters.folders import check_dir_path

    check_dir_path(args.out)
    from converters.convert import convert, plan

    fixed = parse_hw(args.input_size)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    plan(targets, precisions)  # fail on a bad target before loading anything
    model = load_model(args.weights)
    overrides = config_overrides(args)
    overrides.pop("score_thresh", None)
    if overrides:
        model.config = model.config.with_(**overrides)
    t0 = time.perf_counter()
    import lite

    folders = convert(model, args.out, targets, precisions, fixed_hw=fixed, source=lite.resolve_weights(args.weights),
                      log=lambda m: print(m, file=sys.stderr), overwrite=args.overwrite)
    from runtimes.manifest import read_manifest

    from .table import format_table

    rows = []
    for f in folders:
        m = read_manifest(f)
        size = m.size_bytes(f)
        hw = "x".join(map(str, m.fixed_hw)) if m.fixed_hw else "dynamic"
        rows.append([f.name, m.target, m.precision, hw, f"{size / 2**20:.1f} MB", str(f)])
    print(format_table(["model", "target", "precision", "input", "size", "folder"], rows))
    print(f"converted {plural(len(folders), 'model')} in {time.perf_counter() - t0:.0f} s")


def cmd_parity(args) -> int:
    import runtimes

    from .images import read_bgr
    from .parity import compare
    from .predict import check_images
    from .table import format_table

    images = check_images(args.images)
    check_file_path(args.json, "--json")
    need_torch("cmlite parity (the PyTorch model is its reference)")
    import lite

    loaded, problems = [], []
    for path in images:  # a bad image or model is reported and skipped; the others are compared
        try:
            loaded.append((path, read_bgr(path)))
        except CmliteError as e:
            problems.append(f"{path}: skipped: {e}")
            print(f"cmlite: {problems[-1]}", file=sys.stderr)
    if not loaded:
        raise CmliteError(f"none of the {len(images)} images could be read")
    maskiou = args.maskiou == "on"  # both sides alike: off compares graph 2 without the MaskIoU head
    reference = lite.predictor(load_model(args.weights), threads=args.threads, maskiou=maskiou,
                               **config_overrides(args))
    report, rows = [], []
    for folder in args.model:
        try:
            seg = runtimes.load(folder, threads=args.threads, maskiou=maskiou, backend=args.backend,
                                **config_overrides(args))
        except CmliteError as e:
            problems.append(f"{folder}: skipped: {e}")
            print(f"cmlite: {problems[-1]}", file=sys.stderr)
            continue
        for path, img in loaded:
            res = compare(reference, seg, img, seg.manifest.precision)
            s = res.summary()
            report.append({"model": str(folder), "image": str(path), **s,
                           "stages": [{"stage": n, "error": e, "ok": ok} for n, e, ok in res.stages],
                           "instances_detail": [vars(m) for m in res.matches]})
            rows.append([Path(folder).name, path.name, f"{s['matched']}/{s['ref_instances']} ({s['instances']})",
                         s["min_box_iou"], s["min_mask_iou"], s["median_mask_iou"], s["max_abs_score_diff"],
                         s["first_divergence"], s["verdict"]])
            if args.stages:
                hw = "x".join(map(str, res.input_hw))
                print(f"{Path(folder).name} on {path.name} ({seg.manifest.precision} tolerances, input {hw}):")
                print(format_table(["stage", "error", "ok"], [[n, e, "yes" if ok else "NO"] for n, e, ok in res.stages],
                                   floatfmt=".2e"))
    print(format_table(["model", "image", "matched (got)", "min box IoU", "min mask IoU", "median mask IoU",
                        "max |dscore|", "first divergence", "verdict"], rows, floatfmt=".4f"))
    failed = [f"{Path(r['model']).name} on {Path(r['image']).name}" for r in report if r["verdict"] != "PASS"]
    if report:
        print(f"{len(report) - len(failed)} of {len(report)} model-image pairs PASS"
              + (f"; FAIL: {', '.join(failed)}" if failed else ""))
    if args.json and report:
        write_json_atomic(Path(args.json), report)
        print(f"wrote {args.json}")
    if problems:
        print(f"cmlite: {len(problems)} input(s) skipped (above); the others were compared", file=sys.stderr)
    return 1 if problems or failed else 0


def cmd_eval(args) -> None:
    from .evaluate import evaluate
    from .table import format_table

    check_file_path(args.json, "--json")
    seg = segmenter(args, **config_overrides(args))
    print(f"model: {seg.device}")
    metrics, _ = evaluate(seg, args.data, args.images, limit=args.limit, mode=args.mode)
    keys = ["mask_ap", "mask_ap50", "mask_ap75", "box_ap", "box_ap50", "box_ap75"]
    print(format_table([*keys, "images", "median ms", "images/s"],
                       [[*(metrics[k] for k in keys), metrics["images"], metrics["median_ms"], metrics["images_per_s"]]],
                       floatfmt=".1f"))
    if args.json:
        write_json_atomic(Path(args.json), {"model": args.model or args.weights or "default", "device": seg.device,
                                             **metrics})
        print(f"wrote {args.json}")


def cmd_train(args) -> None:
    need_torch("cmlite train")
    import torch

    from lite.checkpoint import resolve_weights
    from lite.train import TrainConfig, train

    from converters.folders import check_dir_path

    check_dir_path(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(variant=args.variant, min_size=args.min_size, max_size=args.max_size, iters=args.iters,
                      batch=args.batch, lr=args.lr, seed=args.seed, maskiou=not args.no_maskiou,
                      warmup=min(args.warmup, args.iters), ckpt_every=args.ckpt_every,
                      init=None if args.init is None else str(resolve_weights(args.init)))
    final = train(cfg, args.data, args.images, args.out, resume=args.resume)
    print(f"trained model: {final}")


def cmd_data_synth(args) -> None:
    from calibration.synth import generate
    from converters.folders import check_dir_path

    check_dir_path(args.out)

    try:
        summary = generate(args.out, args.train, args.val, args.size, args.seed, overwrite=args.overwrite)
    except ValueError as e:
        raise CmliteError(str(e)) from None
    print(f"wrote {summary['train']['images']} train images ({summary['train']['instances']} instances) and "
          f"{summary['val']['images']} val images ({summary['val']['instances']} instances) to {args.out} "
          f"in {summary['seconds']:.1f} s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cmlite", description="CenterMask-Lite on the edge: convert, run, measure.")
    from runtimes import __version__

    parser.add_argument("--version", action="version", version=f"cmlite {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also show the libraries' own log lines (TensorFlow Lite, absl, oneDNN), which are kept "
                             "out otherwise (cmlite -v COMMAND ...)")
    sub = parser.add_subparsers(dest="command", required=True)

    from . import build_engine, predict

    predict.add_parser(sub)

    p = sub.add_parser("convert", help="convert a checkpoint for ONNX Runtime, OpenVINO, TFLite and TensorRT",
                       description="Writes OUT/<target>-<precision>/ with the graphs and manifest.json per pair.")
    p.add_argument("--weights", default="default", help="CenterMask2 / cmlite checkpoint (.pth); default: the "
                                                        "embedded default model")
    p.add_argument("--targets", default="onnx,openvino,tflite", help="comma list of onnx, openvino, tflite, tensorrt (TensorRT: ONNX graphs and profiles; the engines are "
                   "built on the device with `cmlite build-engine`) (default: onnx,openvino,tflite)")
    p.add_argument("--precision", default="fp32,fp16", help="comma list of fp32, fp16, bf16 (OpenVINO only) (default fp32,fp16; int8: "
                                                           "`cmlite quantize`)")
    p.add_argument("--input-size", metavar="HxW", help="fixed graph input size (TFLite always has one; "
                   "default for it: a 4:3 frame at the test size, e.g. 608x800)")
    p.add_argument("--min-size", type=int, help="test size written to the manifest: short side (default: the model's "
                                                "own: 320 for the embedded default, 600 for the official Lite models)")
    p.add_argument("--max-size", type=int, help="test size written to the manifest: long side cap (default: the "
                                                "model's own: 533 for the embedded default, 1000 for the official "
                                                "Lite models)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace <target>-<precision> folders already in --out")
    p.set_defaults(func=cmd_convert, score_thresh=None)

    p = sub.add_parser("eval", help="COCO box and mask AP of a checkpoint or a converted model",
                       description="Box and mask AP (pycocotools; mask AP ranked by the MaskIoU mask score).")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", help="checkpoint (.pth), run in PyTorch; 'default' or nothing: the embedded "
                                       "default model")
    src.add_argument("--model", help="converted model folder")
    p.add_argument("--data", required=True, help="COCO annotations (instances_*.json)")
    p.add_argument("--images", required=True, help="folder of the images the annotations name")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--json", metavar="OUT", help="write the metrics (0-100 scale) as JSON")
    add_mode_arg(p)
    add_runtime_args(p)
    p.set_defaults(func=cmd_eval)

    from . import bench, camera, quantize, report

    quantize.add_parser(sub)
    camera.add_parser(sub)
    bench.add_parser(sub)
    report.add_parser(sub)

    from .demo import cmd_demo

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
    p.add_argument("--clip-frames", type=int, default=90, help="frames of the live clip (default 90)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("data", help="datasets: `cmlite data synth` writes a synthetic COCO dataset")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("synth", help="a deterministic synthetic instance segmentation dataset (COCO format)",
                            description="Writes OUT/train/, OUT/val/ and OUT/annotations/instances_{train,val}.json.")
    p.add_argument("--out", required=True, help="output folder (train/, val/, annotations/)")
    p.add_argument("--train", type=int, default=2000, help="training images (default 2000)")
    p.add_argument("--val", type=int, default=200, help="validation images (default 200)")
    p.add_argument("--size", type=int, default=320, help="image side in pixels (default 320)")
    p.add_argument("--seed", type=int, default=0, help="random seed; val images depend only on it (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset previously written there")
    p.set_defaults(func=cmd_data_synth)

    p = sub.add_parser("train", help="train a CenterMask-Lite variant on a COCO-format dataset",
                       description="Writes OUT/model_final.pth (official layout + metadata), OUT/last.pth "
                                   "(resumable) and OUT/train_log.jsonl.")
    p.add_argument("--data", required=True, help="COCO annotations (instances_train.json)")
    p.add_argument("--images", required=True, help="folder of the training images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--variant", default="V-19-slim-dw-eSE", help="model variant (default V-19-slim-dw-eSE)")
    p.add_argument("--min-size", type=int, default=320, help="train/test short side (default 320)")
    p.add_argument("--max-size", type=int, default=533, help="train/test long side cap (default 533)")
    p.add_argument("--iters", type=int, default=3000, help="training iterations (default 3000)")
    p.add_argument("--batch", type=int, default=8, help="images per iteration (default 8)")
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate, cosine decay (default 2e-3)")
    p.add_argument("--warmup", type=int, default=200, help="linear warm-up iterations (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed of weights and data order (default 0)")
    p.add_argument("--ckpt-every", type=int, default=250, help="write OUT/last.pth every N iterations (default 250)")
    p.add_argument("--no-maskiou", action="store_true", help="train without the MaskIoU head")
    p.add_argument("--init", metavar="WEIGHTS", help="start from these weights ('default': the embedded model; "
                   "an official CenterMask2 checkpoint; layers that depend on the classes start fresh when the "
                   "dataset's classes differ) instead of random ones (default: random)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pth")
    p.add_argument("--threads", type=int, help="CPU threads")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("parity", help="compare converted models with the PyTorch model on images",
                       description="Per-instance box/mask IoU and score difference, and the first stage that "
                                   "diverges beyond the precision's tolerance.")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--weights", help="the checkpoint the models were converted from (default: the embedded default "
                                     "model)")
    p.add_argument("--model", action="append", required=True, help="converted model folder (repeat for more)")
    p.add_argument("--json", metavar="OUT", help="write the full report as JSON")
    p.add_argument("-v", "--verbose", dest="stages", action="store_true",
                   help="print the stage table per model and image (and the libraries' log lines, as cmlite -v)")
    add_runtime_args(p)
    p.set_defaults(func=cmd_parity)
    build_engine.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    args = build_parser().parse_args(argv)
    verbose = os.environ.get("CMLITE_VERBOSE")
    if args.verbose or (args.command == "parity" and getattr(args, "stages", False)):
        os.environ["CMLITE_VERBOSE"] = "1"  # runtimes/quiet.py lets every library line through
    try:
        return args.func(args) or 0  # a command may return its exit code (bench: 1 when a row failed)
    except CmliteError as e:
        print(f"cmlite: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cmlite: interrupted", file=sys.stderr)
        return 130
    finally:  # main() called from Python (tests, scripts) leaves the setting as it found it
        if verbose is None:
            os.environ.pop("CMLITE_VERBOSE", None)
        else:
            os.environ["CMLITE_VERBOSE"] = verbose


if __name__ == "__main__":
    sys.exit(main())
