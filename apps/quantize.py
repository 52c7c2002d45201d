"""`cmlite quantize`: calibrated INT8 folders for ONNX Runtime, OpenVINO, TFLite and TensorRT: OUT/<target>-int8/
per target, graphs and a manifest that records the calibration, the method, the mixed-precision plan and, with
--val, FP32 and INT8 AP."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from cmlite.runtimes.errors import CmliteError

from .model_args import add_size_args, add_targets_arg, comma_list
from .table import plural


def add_parser(sub) -> None:
    p = sub.add_parser("quantize", help="calibrated INT8 models for every target, with a plan chosen by mask AP",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="default", help="checkpoint (.pth); default: the embedded default model")
    p.add_argument("--calib", required=True, metavar="SOURCE",
                   help="calibration frames: an image folder, a COCO file (with --calib-images), a video, or "
                        "the deployed camera: camera:N, gst:PIPELINE or picam:N (grabbed for --camera-seconds)")
    p.add_argument("--calib-images", metavar="DIR", help="the images folder of a COCO --calib file")
    p.add_argument("--calib-count", type=int, default=32, metavar="N", help="frames to use (default 32)")
    p.add_argument("--calib-seed", type=int, default=0, help="seed of the frame pick (default 0)")
    p.add_argument("--camera-seconds", type=float, default=5.0, help="how long to grab camera frames (default 5)")
    add_targets_arg(p)
    p.add_argument("--method", default="minmax", choices=("minmax", "percentile", "entropy"),
                   help="activation range calibration (default minmax)")
    p.add_argument("--val", metavar="ANN", help="COCO annotations of a validation set: search the plan by mask AP "
                                                "and record FP32/INT8 AP in each manifest")
    p.add_argument("--val-images", metavar="DIR", help="images folder of --val")
    p.add_argument("--val-limit", type=int, metavar="N", help="use only the first N validation images")
    p.add_argument("--max-ap-drop", type=float, default=1.0, help="mask AP the plan may lose (default 1.0)")
    p.add_argument("--keep-float", metavar="LIST", help="an explicit plan instead: comma list of block names "
                   "(stem, stage2..5, fpn, cls_tower, bbox_tower, predictors, mask_head, maskiou_head) or module "
                   "names; 'none' quantizes everything")
    p.add_argument("--input-size", metavar="HxW", help="fixed graph input size (TFLite always has one)")
    p.add_argument("--no-reduce-range", action="store_true",
                   help="ONNX Runtime: 8-bit instead of 7-bit weights; only for CPUs with VNNI (AVX2-only CPUs "
                        "saturate and lose accuracy)")
    add_size_args(p, "the manifests")
    p.add_argument("--threads", type=int, help="CPU threads for calibration and evaluation")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace <target>-int8 folders already in --out")
    p.add_argument("--fp32", action="append", metavar="DIR",
                   help="a folder that may hold up-to-date FP32 conversions of the model (`cmlite convert --out`), "
                        "reused as the twins instead of converting again (repeatable; --out is always looked in)")
    p.set_defaults(func=cmd_quantize)


def _keep_float(text: str | None) -> list[str] | None:
    if text is None:
        return None
    if text.strip().lower() == "none":
        return []
    return comma_list(text)


def cmd_quantize(args) -> None:
    from .model_args import load_model, need_torch, parse_hw

    need_torch("cmlite quantize", extra="convert")
    from cmlite import lite
    from cmlite.calibration.frames import read_frames
    from cmlite.calibration.quantize import Validation, check_targets, quantize
    from cmlite.runtimes.manifest import read_manifest

    from .table import format_table

    targets = comma_list(args.targets)
    check_targets(targets)  # before loading anything
    from cmlite.converters.folders import check_dir_path

    check_dir_path(args.out)
    if (args.val is None) != (args.val_images is None):
        raise CmliteError("--val and --val-images go together: the annotations and the folder of their images")
    if args.val_limit is not None and args.val_limit < 1:
        raise CmliteError(f"--val-limit {args.val_limit}: give at least 1 image (or leave it out for every image)")
    if args.max_ap_drop < 0:
        raise CmliteError(f"--max-ap-drop {args.max_ap_drop}: must be 0 or more (mask AP points)")
    fixed = parse_hw(args.input_size)
    frames = read_frames(args.calib, args.calib_count, args.calib_seed, args.calib_images, args.camera_seconds,
                         min_frames=min(8, args.calib_count))
    print(f"calibration: {len(frames.frames)} frames from {frames.kind} {frames.source}"
          + (f" ({len(frames.skipped)} unreadable skipped)" if frames.skipped else "")
          + (f"; --calib-count {args.calib_count} asked for more: the source has only {len(frames.frames)} "
             f"readable" if len(frames.frames) < args.calib_count else ""), file=sys.stderr)
    model = load_model(args.weights)
    overrides = {k: v for k, v in (("min_size", args.min_size), ("max_size", args.max_size)) if v is not None}
    if overrides:
        model.config = model.config.with_(**overrides)
    val = Validation(Path(args.val), Path(args.val_images), args.val_limit) if args.val else None
    t0 = time.perf_counter()
    folders = quantize(model, args.out, targets, frames, args.method, val, args.max_ap_drop,
                       _keep_float(args.keep_float), fixed, lite.resolve_weights(args.weights), args.threads,
                       reduce_range=not args.no_reduce_range, log=lambda m: print(m, file=sys.stderr),
                       overwrite=args.overwrite, fp32_dirs=args.fp32 or [])
    rows = []
    for f in folders:
        m = read_manifest(f)
        acc = m.quantization.get("accuracy", {})
        ap = (lambda k: f"{acc['fp32'][k]:.1f} -> {acc['int8'][k]:.1f}") if acc else (lambda k: "-")
        rows.append([f.name, m.target, ap("mask_ap"), ap("box_ap"), f"{m.size_bytes(f) / 2**20:.1f} MB", str(f)])
    print(format_table(["model", "target", "mask AP fp32 -> int8", "box AP", "size", "folder"], rows))
    plan = m.quantization["plan"]  # the same in every folder
    print(f"plan ({plan['chosen']}): keep float {', '.join(plan['keep_float']) or 'nothing'}")
    print(f"quantized {plural(len(folders), 'model')} in {time.perf_counter() - t0:.0f} s")
